"""The web processes' entry point (uvicorn `ami.asgi:application`).

Web processes take their database connections from a pool (`AMI_DB_POOL`, ami/settings.py)
unless the environment says otherwise; Celery workers and commands do not.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
os.environ.setdefault("AMI_DB_POOL", "1")
application = get_asgi_application()
