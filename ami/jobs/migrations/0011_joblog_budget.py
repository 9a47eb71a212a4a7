"""The per-job log budget's shared counts (`ami.jobs.logging.budget`): an ordinary table,
one row per job that logged, written by guarded upserts (`ami.jobs.locking`). No foreign-key
constraint on the job, like JobLog's: its check would lock the job row."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0010_joblog_partitioned'),
    ]

    operations = [
        migrations.CreateModel(
            name='JobLogBudget',
            fields=[
                ('job', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='log_budget', serialize=False, to='jobs.job')),
                ('lines_reserved', models.BigIntegerField(default=0)),
                ('bytes_reserved', models.BigIntegerField(default=0)),
                ('last_grant_lines', models.BigIntegerField(default=0)),
                ('last_grant_bytes', models.BigIntegerField(default=0)),
                ('elided_lines', models.BigIntegerField(default=0)),
                ('elided_bytes', models.BigIntegerField(default=0)),
            ],
        ),
    ]
