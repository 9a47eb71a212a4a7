"""JobLog partitioning, step 2 of 2: `jobs_joblog` becomes a table partitioned by job start.

Lines are partitioned by `job_partition_key`, their job's `log_partition_key` (its creation
time), by range: one partition per day or week of job starts, made ahead of time by
`ami.jobs.log_partitions`, which also drops whole partitions for retention. A job's lines
all sit in one partition, and every read names the key, so a read touches one partition.

The old table becomes the legacy partition, `jobs_joblog_legacy`, for keys before
1970-01-02: every line it holds and every job created before this migration have the key
1970-01-01 (migrations 0008 and 0009). It is attached in place, in one short transaction:
its indexes are renamed and attached to the parent's (same definitions; the readers' index
is the one with the key 0009 built, the old one is dropped), its primary key and write-key
constraint move to the indexes 0009 built, and the bound check validated in 0009 spares
the scan. Dropping it later is an ordinary retention drop.

Django's state keeps `id` as the primary key (the admin and the ORM look rows up by id);
the database's key is (id, job_partition_key), as PostgreSQL requires of a partitioned
table. The id sequence moves to the parent, so dropping a partition never drops it; the
NOTIFY trigger (0007) moves to the parent, which fires it once per statement for all
partitions.
"""

from django.db import migrations, models

INDEXES = {  # the name on the parent (Django's) -> the name on the legacy partition
    "joblog_created_brin": "jobs_joblog_legacy_created_brin",
    "joblog_message_words_gin": "jobs_joblog_legacy_words_gin",
    "joblog_context_gin": "jobs_joblog_legacy_context_gin",
}
RENAME_INDEXES = "\n".join(f"ALTER INDEX {old} RENAME TO {new};" for old, new in INDEXES.items())
RESTORE_INDEX_NAMES = "\n".join(
    f"ALTER INDEX {new} RENAME TO {old};" for old, new in INDEXES.items()
)

NOTIFY_TRIGGER = """
CREATE TRIGGER jobs_joblog_notify AFTER INSERT ON {table}
REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION jobs_joblog_notify();
"""

PARTITION = f"""
ALTER TABLE jobs_joblog RENAME TO jobs_joblog_legacy;
DROP INDEX joblog_job_txid_idx;  -- 0009 built its successor, with the partition key
{RENAME_INDEXES}
DROP TRIGGER jobs_joblog_notify ON jobs_joblog_legacy;
ALTER TABLE jobs_joblog_legacy
    DROP CONSTRAINT jobs_joblog_pkey,
    ADD CONSTRAINT jobs_joblog_legacy_pkey PRIMARY KEY USING INDEX jobs_joblog_legacy_pkey,
    DROP CONSTRAINT jobs_joblog_key_key,
    ADD CONSTRAINT jobs_joblog_legacy_key UNIQUE USING INDEX jobs_joblog_legacy_key,
    ALTER COLUMN job_partition_key DROP DEFAULT;

CREATE TABLE jobs_joblog (
    id bigint NOT NULL DEFAULT jobs_joblog_next_id(),
    level smallint NOT NULL CONSTRAINT jobs_joblog_level_check CHECK (level >= 0),
    message text NOT NULL,
    context jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    job_id bigint NOT NULL,
    txid bigint NOT NULL DEFAULT jobs_joblog_txid(),
    key uuid,
    job_partition_key timestamptz NOT NULL,
    CONSTRAINT jobs_joblog_pkey PRIMARY KEY (id, job_partition_key),
    CONSTRAINT jobs_joblog_key_partition_key UNIQUE (key, job_partition_key)
) PARTITION BY RANGE (job_partition_key);
CREATE INDEX joblog_job_key_txid_idx ON jobs_joblog (job_id, job_partition_key, txid, id);
CREATE INDEX joblog_created_brin ON jobs_joblog USING brin (created_at);
CREATE INDEX joblog_message_words_gin ON jobs_joblog
    USING gin (to_tsvector('simple'::regconfig, message));
CREATE INDEX joblog_context_gin ON jobs_joblog USING gin (context jsonb_path_ops);
ALTER SEQUENCE jobs_joblog_id_seq OWNED BY jobs_joblog.id;

ALTER TABLE jobs_joblog ATTACH PARTITION jobs_joblog_legacy
    FOR VALUES FROM (MINVALUE) TO ('1970-01-02 00:00:00+00');
ALTER TABLE jobs_joblog_legacy DROP CONSTRAINT jobs_joblog_legacy_bound;
{NOTIFY_TRIGGER.format(table="jobs_joblog")}
"""

LEGACY_INDEXES = f"""
CREATE INDEX jobs_joblog_legacy_job_key_txid ON jobs_joblog_legacy
    (job_id, job_partition_key, txid, id);
CREATE INDEX {INDEXES["joblog_created_brin"]} ON jobs_joblog_legacy USING brin (created_at);
CREATE INDEX {INDEXES["joblog_message_words_gin"]} ON jobs_joblog_legacy
    USING gin (to_tsvector('simple'::regconfig, message));
CREATE INDEX {INDEXES["joblog_context_gin"]} ON jobs_joblog_legacy
    USING gin (context jsonb_path_ops);
"""

# Back to one table: every line of the dated partitions moves into the legacy one (made
# anew if retention dropped it).
UNPARTITION = f"""
DROP TRIGGER jobs_joblog_notify ON jobs_joblog;
DO $$ BEGIN
IF to_regclass('jobs_joblog_legacy') IS NULL THEN
    CREATE TABLE jobs_joblog_legacy (LIKE jobs_joblog INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
    ALTER TABLE jobs_joblog_legacy
        ADD CONSTRAINT jobs_joblog_legacy_pkey PRIMARY KEY (id, job_partition_key),
        ADD CONSTRAINT jobs_joblog_legacy_key UNIQUE (key, job_partition_key);
    {LEGACY_INDEXES}
ELSE
    ALTER TABLE jobs_joblog DETACH PARTITION jobs_joblog_legacy;
END IF;
END $$;
ALTER SEQUENCE jobs_joblog_id_seq OWNED BY jobs_joblog_legacy.id;
INSERT INTO jobs_joblog_legacy SELECT * FROM jobs_joblog;
DROP TABLE jobs_joblog;
ALTER TABLE jobs_joblog_legacy RENAME TO jobs_joblog;
{RESTORE_INDEX_NAMES}
CREATE INDEX joblog_job_txid_idx ON jobs_joblog (job_id, txid, id);
UPDATE jobs_joblog SET job_partition_key = '1970-01-01 00:00:00+00';
ALTER TABLE jobs_joblog
    ALTER COLUMN job_partition_key SET DEFAULT '1970-01-01 00:00:00+00',
    DROP CONSTRAINT jobs_joblog_legacy_pkey,
    ADD CONSTRAINT jobs_joblog_pkey PRIMARY KEY (id),
    DROP CONSTRAINT jobs_joblog_legacy_key,
    ADD CONSTRAINT jobs_joblog_key_key UNIQUE (key),
    ADD CONSTRAINT jobs_joblog_legacy_bound CHECK (job_partition_key < '1970-01-02 00:00:00+00');
CREATE UNIQUE INDEX jobs_joblog_legacy_pkey ON jobs_joblog (id, job_partition_key);
CREATE UNIQUE INDEX jobs_joblog_legacy_key ON jobs_joblog (key, job_partition_key);
{NOTIFY_TRIGGER.format(table="jobs_joblog")}
"""


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_joblog_partition_prepare"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(PARTITION, UNPARTITION)],
            state_operations=[
                migrations.AddField(
                    model_name="joblog",
                    name="job_partition_key",
                    field=models.DateTimeField(editable=False),
                    preserve_default=False,
                ),
                migrations.AlterField(
                    model_name="joblog",
                    name="key",
                    field=models.UUIDField(blank=True, editable=False, null=True),
                ),
                migrations.RemoveIndex(model_name="joblog", name="joblog_job_txid_idx"),
                migrations.AddIndex(
                    model_name="joblog",
                    index=models.Index(
                        fields=["job", "job_partition_key", "txid", "id"],
                        name="joblog_job_key_txid_idx",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="joblog",
                    constraint=models.UniqueConstraint(
                        fields=("key", "job_partition_key"), name="jobs_joblog_key_partition_key"
                    ),
                ),
            ],
        ),
    ]
