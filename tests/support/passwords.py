"""Password hashing for tests: Django's PBKDF2 with one iteration.

Django's default (PBKDF2-SHA256, 1,000,000 iterations) takes 0.5-0.7 s per hash on this
2-core machine, and every `member` or `outsider` fixture hashes a password: minutes over
the suite. The hashes stay standard `pbkdf2_sha256$<iterations>$...` strings, which any
process verifies with its own settings (the iteration count is part of the hash), so a
browser test still signs in through the real web server. That server finds the count too
low and re-hashes on the first sign-in, as it does after an upgrade of Django.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher

HASHERS = ["tests.support.passwords.OneIterationPBKDF2PasswordHasher"]


class OneIterationPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
