"""JobLog: indexes for message search and context filters, built without blocking writers.

`to_tsvector('simple', message)` (GIN) finds the candidate lines of a search `q` by their
words; `context jsonb_path_ops` (GIN) serves the context filters (`context @> {...}`). Both
are built CONCURRENTLY: log writers keep inserting while a large table is indexed.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("jobs", "0003_joblog_txid_and_key"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="joblog",
            index=django.contrib.postgres.indexes.GinIndex(
                models.Func(
                    models.Value("simple"),
                    models.F("message"),
                    function="to_tsvector",
                    output_field=django.contrib.postgres.search.SearchVectorField(),
                ),
                name="joblog_message_words_gin",
            ),
        ),
        AddIndexConcurrently(
            model_name="joblog",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["context"], name="joblog_context_gin", opclasses=["jsonb_path_ops"]
            ),
        ),
    ]
