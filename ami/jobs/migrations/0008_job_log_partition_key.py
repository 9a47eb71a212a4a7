"""Job.log_partition_key: the key of the JobLog partition that holds the job's lines.

Existing jobs get 1970-01-01, the key of the legacy partition (migration 0010 attaches the
old table under that key, so their old and new lines stay together); a new job gets its
creation time. Adding a column with a constant default rewrites nothing.
"""

from datetime import UTC, datetime

import django.utils.timezone
from django.db import migrations, models

LEGACY_KEY = datetime(1970, 1, 1, tzinfo=UTC)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0007_joblog_notify"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="log_partition_key",
            field=models.DateTimeField(db_index=True, default=LEGACY_KEY, editable=False),
        ),
        migrations.AlterField(
            model_name="job",
            name="log_partition_key",
            field=models.DateTimeField(
                db_index=True, default=django.utils.timezone.now, editable=False
            ),
        ),
    ]
