"""JobLog partitioning, step 1 of 2: give the existing table the partition key and indexes.

Nothing here blocks log writers: the new column has a constant default (no rewrite), the
two unique indexes a partition needs (the parent's primary key and write-key constraint
both include the partition key) are built CONCURRENTLY, and the bound check is added NOT
VALID, then validated under a lock that lets writes through. The index readers page by
gains the key, `(job_id, job_partition_key, txid, id)`, also built CONCURRENTLY: with the
key only filtered, the planner estimates a job's share of a partition badly and sorts.
Migration 0010 then attaches the table as the legacy partition without scanning it.
"""

from django.db import migrations

ADD_KEY = """
ALTER TABLE jobs_joblog
    ADD COLUMN job_partition_key timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00'
"""

ADD_BOUND = """
ALTER TABLE jobs_joblog ADD CONSTRAINT jobs_joblog_legacy_bound
    CHECK (job_partition_key < '1970-01-02 00:00:00+00') NOT VALID
"""


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("jobs", "0008_job_log_partition_key"),
    ]

    operations = [
        migrations.RunSQL(ADD_KEY, "ALTER TABLE jobs_joblog DROP COLUMN job_partition_key"),
        migrations.RunSQL(
            "CREATE UNIQUE INDEX CONCURRENTLY jobs_joblog_legacy_pkey "
            "ON jobs_joblog (id, job_partition_key)",
            "DROP INDEX IF EXISTS jobs_joblog_legacy_pkey",
        ),
        migrations.RunSQL(
            "CREATE UNIQUE INDEX CONCURRENTLY jobs_joblog_legacy_key "
            "ON jobs_joblog (key, job_partition_key)",
            "DROP INDEX IF EXISTS jobs_joblog_legacy_key",
        ),
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY jobs_joblog_legacy_job_key_txid "
            "ON jobs_joblog (job_id, job_partition_key, txid, id)",
            "DROP INDEX IF EXISTS jobs_joblog_legacy_job_key_txid",
        ),
        migrations.RunSQL(
            ADD_BOUND, "ALTER TABLE jobs_joblog DROP CONSTRAINT IF EXISTS jobs_joblog_legacy_bound"
        ),
        migrations.RunSQL(
            "ALTER TABLE jobs_joblog VALIDATE CONSTRAINT jobs_joblog_legacy_bound",
            migrations.RunSQL.noop,
        ),
    ]
