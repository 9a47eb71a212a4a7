import psycopg
import pytest

from ami_lab.loadtest.lock_sampler import LockSampler
from tests.support.polling import wait_until


@pytest.mark.django_db(transaction=True)
def test_sampler_sees_a_session_waiting_on_the_job_row(job, test_database_url):
    sampler = LockSampler(test_database_url, interval=0.05)
    sampler.start()
    wait_until(lambda: sampler.stats.samples, "the sampler's first sample", interval=0.01)
    holder = psycopg.connect(test_database_url)
    holder.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", (job.pk,))
    waiter = psycopg.connect(test_database_url, autocommit=True)
    waiter.execute("SET lock_timeout = '1s'")
    with pytest.raises(psycopg.errors.LockNotAvailable):
        waiter.execute("""UPDATE "jobs_job" SET name = 'x' WHERE id = %s""", (job.pk,))
    holder.rollback()
    stats = sampler.stop()
    holder.close()
    waiter.close()
    assert stats.max_waiters == 1
    assert stats.waiter_seconds > 0.3
