"""Notify live log streams on commit: new lines per statement, and job status changes.

Channel names are those of `ami.jobs.api.wakeups` (LOG_CHANNEL, STATUS_CHANNEL), hard-coded
here because a migration must not change when the code does.

- jobs_joblog, AFTER INSERT FOR EACH STATEMENT with a transition table: one notification per
  INSERT or COPY statement, whatever its row count, listing the distinct job ids it wrote
  (`*`, "wake every stream", when the list would not fit the 8000-byte payload limit).
- jobs_job, AFTER UPDATE OF status FOR EACH ROW when the status changed: the job's id.

PostgreSQL delivers notifications only after the transaction commits (and drops identical
ones within a transaction), so a woken reader finds the lines committed. The cost: a
committing transaction that notified takes a global lock for its queue entry, so log-writing
commits serialize on it (measured in docs/benchmarks.md, "Live tail wakeups").
"""

from django.db import migrations

CREATE = r"""
CREATE FUNCTION jobs_joblog_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    job_ids text;
BEGIN
    SELECT string_agg(DISTINCT job_id::text, ',') INTO job_ids FROM new_lines;
    IF job_ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF octet_length(job_ids) > 7900 THEN
        job_ids := '*';
    END IF;
    PERFORM pg_notify('ami_joblog_lines', job_ids);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_joblog_notify AFTER INSERT ON jobs_joblog
REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION jobs_joblog_notify();

CREATE FUNCTION jobs_job_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ami_job_status', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_job_status_notify AFTER UPDATE OF status ON jobs_job
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION jobs_job_status_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS jobs_job_status_notify ON jobs_job;
DROP FUNCTION IF EXISTS jobs_job_status_notify();
DROP TRIGGER IF EXISTS jobs_joblog_notify ON jobs_joblog;
DROP FUNCTION IF EXISTS jobs_joblog_notify();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_job_status_completed_with_errors"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
