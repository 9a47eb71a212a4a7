"""PostgreSQL as Django's backend, with a connection pool that replaces dead connections
without waiting (`base.DatabaseWrapper`). Settings: `DATABASES[...]["ENGINE"] =
"ami.main.database"`."""
