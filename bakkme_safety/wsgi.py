"""The WSGI application (gunicorn, or any WSGI server).

A WSGI server runs no system checks, so the one that matters most is run here, at import: a
process whose evidence key cannot open the vault's data keys, or whose ledger key is not the one
the ledgers are signed with, refuses to boot (ImproperlyConfigured) rather than serve and store
new evidence or ledger events under the wrong key (evidence/checks.py).
"""

import os

from django.core.wsgi import get_wsgi_application
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakkme_safety.settings")
application = get_wsgi_application()

from evidence.checks import (  # noqa: E402  (needs the apps loaded)
    prove_keys_open_the_vault,
    prove_ledger_key_continues_the_chains,
)

prove_keys_open_the_vault()
prove_ledger_key_continues_the_chains()
# The check's connection is not handed on: a server that imports the application before
# forking its workers (gunicorn --preload) must not share it between them.
connections.close_all()
