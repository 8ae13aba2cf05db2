#!/usr/bin/env bash
# Start the web server and a django-q2 worker together; Ctrl+C stops both.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-8000}
py=.venv/bin/python
$py manage.py qcluster &
worker=$!
trap 'kill $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT INT TERM
# No persistent database connections under runserver: each request thread would keep its own
# open (README "Configuration", BAKKME_DB_CONN_MAX_AGE).
BAKKME_DB_CONN_MAX_AGE=0 $py manage.py runserver "$host:$port"
