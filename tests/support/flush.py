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
"""

from __future__ import annotations

from django.db.backends.postgresql.operations import DatabaseOperations

KEPT_TABLES = frozenset({"django_content_type", "auth_permission"})

_truncate = DatabaseOperations.sql_flush


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
