"""Emptying the test database after a transactional test: DELETE, not TRUNCATE.

Django empties the database after every `transaction=True` test (`flush`) with one TRUNCATE
of every table, then re-creates the content types and permissions (post_migrate). A
TRUNCATE makes new files for each of the ~30 tables and their indexes and syncs them at
commit: 0.25-0.5 s per test on a 2-core machine (with post_migrate), minutes over the
suite's ~1,300 transactional tests. The few rows a test leaves are gone as surely with a
DELETE of every table, in one transaction: 15-70 ms. Django makes every foreign key
DEFERRABLE INITIALLY DEFERRED, so the order of the DELETEs does not matter; a key made
otherwise (raw SQL in a migration) would make the flush fail loudly, never pass silently.

Content types and permissions are the models' own metadata, the same rows before and after
any test: they are kept, and post_migrate (still sent by `flush`) re-creates any a test
removed. Keeping them also keeps their ids, so ContentType's cache stays right.

Same end state as Django's flush otherwise: sequences are not reset by either (Django resets
them only for `reset_sequences=True`, which keeps its TRUNCATE ... RESTART IDENTITY, as does
`allow_cascade`). The job log's NOTIFY triggers fire on INSERT and UPDATE, not DELETE.

post_migrate itself is most of what is left: its two receivers (contenttypes' and auth's)
read every app's content types and permissions, 20-30 ms per flush, only to find nothing
missing. `post_migrate_unless_intact` first reads both tables whole (two queries, ~1 ms);
if they are row for row (ids included) what they were right after the last post_migrate,
sending it again would create nothing, and it is skipped. Otherwise (a test removed or
changed a row) it is sent as Django sends it. Any other receiver connected to post_migrate
(none today) could do something else: then it is always sent.
"""

from __future__ import annotations

import weakref

from django.core.management.sql import emit_post_migrate_signal
from django.db import connections
from django.db.backends.postgresql.operations import DatabaseOperations
from django.db.models.signals import post_migrate

KEPT_TABLES = frozenset({"django_content_type", "auth_permission"})
# post_migrate receivers that only create missing content types and permissions.
METADATA_RECEIVERS = frozenset({
    "django.contrib.contenttypes.management.create_contenttypes",
    "django.contrib.auth.management.create_permissions",
})  # fmt: skip

_truncate = DatabaseOperations.sql_flush
_intact: dict[str, tuple] = {}  # database alias -> the metadata rows after post_migrate


def sql_flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    if reset_sequences or allow_cascade or not tables:
        return _truncate(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    deletes = [
        f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
        for table in sorted(tables)
        if table not in KEPT_TABLES
    ]
    return ["SET CONSTRAINTS ALL DEFERRED;", *deletes]


def post_migrate_unless_intact(verbosity, interactive, db, **kwargs):
    """`emit_post_migrate_signal`, skipped when it would find nothing to create."""
    if _only_metadata_receivers() and _intact.get(db) == _metadata_rows(db):
        return
    emit_post_migrate_signal(verbosity, interactive, db, **kwargs)
    _intact[db] = _metadata_rows(db)


def _metadata_rows(db: str) -> tuple:
    with connections[db].cursor() as cursor:
        cursor.execute("SELECT id, app_label, model FROM django_content_type ORDER BY id")
        content_types = tuple(cursor.fetchall())
        cursor.execute(
            "SELECT id, content_type_id, codename, name FROM auth_permission ORDER BY id"
        )
        return content_types, tuple(cursor.fetchall())


def _only_metadata_receivers() -> bool:
    names = set()
    for _key, receiver, *_ in post_migrate.receivers:
        function = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
        if function is not None:
            names.add(f"{function.__module__}.{function.__qualname__}")
    return names <= METADATA_RECEIVERS
