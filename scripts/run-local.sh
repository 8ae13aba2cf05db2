#!/usr/bin/env bash
# Start the web server, a django-q2 worker and the practice CyberTipline together; Ctrl+C stops
# them all.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-8000}
py=.venv/bin/python

# The practice CyberTipline (legal/practice.py): filing goes there unless the operator named an
# endpoint (BAKKME_CYBERTIP_URL, e.g. NCMEC's test environment with its credentials).
practice_port=${BAKKME_CYBERTIP_PRACTICE_PORT:-8010}
export BAKKME_CYBERTIP_PRACTICE_URL="http://127.0.0.1:$practice_port/ispws"
export BAKKME_CYBERTIP_PRACTICE_USERNAME=${BAKKME_CYBERTIP_PRACTICE_USERNAME:-practice}
export BAKKME_CYBERTIP_PRACTICE_PASSWORD=${BAKKME_CYBERTIP_PRACTICE_PASSWORD:-practice}
if [ -z "${BAKKME_CYBERTIP_URL:-}" ]; then
  export BAKKME_CYBERTIP_URL=$BAKKME_CYBERTIP_PRACTICE_URL
  export BAKKME_CYBERTIP_USERNAME=$BAKKME_CYBERTIP_PRACTICE_USERNAME
  export BAKKME_CYBERTIP_PASSWORD=$BAKKME_CYBERTIP_PRACTICE_PASSWORD
fi
echo "CyberTipline filing goes to $BAKKME_CYBERTIP_URL"

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM
$py manage.py practice_cybertipline --host 127.0.0.1 --port "$practice_port" &
pids+=($!)
$py manage.py qcluster &
pids+=($!)
# No persistent database connections under runserver: each request thread would keep its own
# open (README "Configuration", BAKKME_DB_CONN_MAX_AGE).
BAKKME_DB_CONN_MAX_AGE=0 $py manage.py runserver "$host:$port"
