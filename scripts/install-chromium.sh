#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the browser tests (tests/browser/), installed with
# apt-get when /usr/bin/chromium is missing; nothing to do when they are there. Playwright drives
# this browser: it never downloads one of its own (no `playwright install`).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  # Not fatal: `make run` needs no browser. The browser tests stop with the same advice.
  echo "make install: the browser tests need Debian's chromium and chromium-driver, which only" >&2
  echo "  root can install: sudo apt-get install chromium chromium-driver" >&2
  echo "  (or skip the browser tests: .venv/bin/python -m pytest -m 'not browser')" >&2
  exit 0
fi

echo "Installing Debian's chromium and chromium-driver for the browser tests (apt-get)..."
mkdir -p var
log=var/apt-chromium.log
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be older than the mirror: update them first.
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "make install: apt-get could not install chromium (full log: $log)" >&2
  exit 1
fi
/usr/bin/chromium --version 2>/dev/null  # its wrapper script warns about memory on some machines
