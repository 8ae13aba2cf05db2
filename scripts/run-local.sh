#!/usr/bin/env bash
# Start the web server and a django-q2 worker together; Ctrl+C stops both.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-8000}
py=.venv/bin/python
$py manage.py qcluster &
worker=$!
trap 'kill $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT INT TERM
$py manage.py runserver "$host:$port"
