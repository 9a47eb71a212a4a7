"""Job.status: the final COMPLETED_WITH_ERRORS ("finished, some images failed"), 21
characters, so the column widens from 20 to 32.

Widening a varchar in PostgreSQL changes only the catalog (no table rewrite, a brief lock).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_progress_increment"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="status",
            field=models.CharField(
                choices=[
                    ("CREATED", "Created"),
                    ("PENDING", "Pending"),
                    ("STARTED", "Started"),
                    ("SUCCESS", "Success"),
                    ("COMPLETED_WITH_ERRORS", "Completed with errors"),
                    ("FAILURE", "Failure"),
                    ("REVOKED", "Revoked"),
                ],
                db_index=True,
                default="CREATED",
                max_length=32,
            ),
        ),
    ]
