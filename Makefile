# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench install browser-deps clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed browser-deps

# Debian's chromium and chromium-driver for the browser tests (tests/browser/), with apt-get when
# /usr/bin/chromium is missing; Playwright drives that browser and never downloads its own.
browser-deps:
	@./scripts/install-chromium.sh

# Local run on the embedded defaults: SQLite in var/, django-q2's ORM broker, evidence encrypted
# in var/evidence/ with a master key generated once into var/evidence.key, the custody ledger
# and the audit trail keyed with a ledger key generated once into var/ledger.key.
EVIDENCE_KEY_FILE := var/evidence.key
LEDGER_KEY_FILE := var/ledger.key
KEYS = BAKKME_EVIDENCE_KEY=$$(cat $(EVIDENCE_KEY_FILE)) BAKKME_LEDGER_KEY=$$(cat $(LEDGER_KEY_FILE))

$(EVIDENCE_KEY_FILE) $(LEDGER_KEY_FILE):
	@mkdir -p var
	@umask 077 && $(PYTHON) -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())" > $@
	@echo "Generated a local key in $@ (keep it: the local vault and ledgers need it)."

run: install $(EVIDENCE_KEY_FILE) $(LEDGER_KEY_FILE)
	@mkdir -p var
	BAKKME_DEBUG=1 $(KEYS) $(PY) manage.py migrate --noinput
	@if [ ! -f var/.demo-seeded ]; then \
	  BAKKME_DEBUG=1 $(KEYS) $(PY) manage.py seed_demo | tee var/demo-accounts.txt && touch var/.demo-seeded; \
	  echo "(demo accounts saved in var/demo-accounts.txt)"; \
	fi
	@echo ""
	@echo "Log in at http://$(HOST):$(PORT)/admin/ with an account from var/demo-accounts.txt"
	@echo "API docs: http://$(HOST):$(PORT)/api/docs/    Stop with Ctrl+C."
	@echo ""
	BAKKME_DEBUG=1 $(KEYS) ./scripts/run-local.sh $(HOST) $(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks need PostgreSQL: DATABASE_URL=postgres://... make bench (figures: bench/RESULTS.md)
bench: install
	$(PY) bench/run.py
	$(PY) bench/sla_sweep.py
	$(PY) bench/evidence.py
	$(PY) bench/pdq.py
	$(PY) bench/pdq.py --size 100000 --queries 10000
	$(PY) bench/exact_hashes.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
