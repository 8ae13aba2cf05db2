"""Real-browser tests: Playwright for Python driving Debian's Chromium against a live server.

What the fixtures give a journey (README "Browser tests"; how to write one: tests/browser/
helpers.py and test_journeys.py):

- one live server for the whole run (pytest-django's, bound to 127.0.0.1; it serves the static
  files from the apps' folders, as StaticLiveServerTestCase does), and a clean database per test
  (these tests use the transactional database: the server's threads see what the test stores);
- one Chromium for the browser tests (/usr/bin/chromium, never a downloaded one; headless,
  offline flags), and a fresh browser context (cookies, storage) per test: `page`, and
  `open_page()` for a second person in the same test;
- every test under tests/browser/ is marked `browser`: `-m "not browser"` skips them;
- a failing test saves a screenshot and the HTML of each of its pages under
  var/browser-failures/<test name>.png / .html (the folder holds the latest run's failures);
- a page that asks for anything but the live server (a CDN, a font, a tracker), or names a
  static file the server does not have, fails its test: the back office runs on a closed
  network, on its own static files.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from pytest_django.live_server_helper import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
# Offline and quiet: no first-run pages, no component or safe-browsing updates, no sync, no
# metrics, no QUIC; host names other than the live server's do not resolve at all. Headless with
# no GPU; --no-sandbox because CI runs as root (Chromium's sandbox refuses root).
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
# The window of a reviewer's laptop (issue 17: the queue must fit 1280 px).
VIEWPORT = {"width": 1280, "height": 800}
# Seconds a step may wait for an element or a page before it fails: short, a page here answers
# in well under a second, and a broken journey should fail fast.
STEP_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 20_000

BROWSER_DIR = Path(__file__).resolve().parent
FAILURES_DIR = BROWSER_DIR.parents[1] / "var" / "browser-failures"  # var/ is not in git

_pages_key = pytest.StashKey[list]()


# --- Marking and failure capture ------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Every test under tests/browser/ is a browser test (before `-m` selects)."""
    for item in items:
        if BROWSER_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails keeps what the browser showed: a screenshot and the HTML of each
    page it opened, named after the test; the report says where they are."""
    report = yield
    pages = item.stash.get(_pages_key, [])
    if report.failed and report.when in ("setup", "call") and pages:
        saved = _save_failure(item.name, pages)
        report.sections.append(("browser failure", "\n".join(saved)))
    return report


def _save_failure(test_name: str, pages) -> list[str]:
    FAILURES_DIR.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")
    saved = []
    for n, page in enumerate(pages, start=1):
        name = stem if n == 1 else f"{stem}-{n}"
        if page.is_closed():
            continue
        try:
            png, html = FAILURES_DIR / f"{name}.png", FAILURES_DIR / f"{name}.html"
            page.screenshot(path=png, full_page=True)
            html.write_text(page.content(), encoding="utf-8")
            saved.append(f"{page.url}\n  screenshot: {png}\n  html: {html}")
            saved.extend(f"  {line}" for line in getattr(page, "bakkme_console", []))
        except Exception as exc:  # a crashed page must not hide the test's own failure
            saved.append(f"{page.url}: no screenshot ({exc})")
    return saved


# --- The server and the browser --------------------------------------------------------------


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, on 127.0.0.1 (the only address Chromium resolves here) unless
    --liveserver says otherwise; one for the whole run. Tests that use it get the transactional
    database (pytest-django's _live_server_helper)."""
    server = LiveServer(request.config.getvalue("liveserver") or "127.0.0.1")
    yield server
    server.stop()


@pytest.fixture(scope="package")
def _playwright():
    """Playwright's sync API, once for tests/browser/.

    The sync API keeps an asyncio loop running in the main thread while it is started, so Django
    would refuse the tests' own ORM calls (SynchronousOnlyOperation). The ORM calls of these
    tests are synchronous code in the main thread, so the check is lifted while Playwright runs,
    and only then: package scope stops it when the browser tests are done, before other tests.
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests use Debian's Chromium. Install it with "
            "`make install` as root (or `apt-get install chromium chromium-driver`), or skip "
            "the browser tests with `-m 'not browser'`.",
            pytrace=False,
        )
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    shutil.rmtree(FAILURES_DIR, ignore_errors=True)  # only this run's failures stay
    playwright = sync_playwright().start()
    try:
        yield playwright
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(_playwright):
    """Debian's Chromium, started once for the browser tests."""
    from playwright.sync_api import expect

    browser = _playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        chromium_sandbox=False,  # Playwright then passes --no-sandbox
        args=CHROMIUM_ARGS,
    )
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    yield browser
    browser.close()


@pytest.fixture
def open_page(request, browser, live_server):
    """Opens a page in a new browser context: a person of their own (own cookies, own session).

    `open_page()` in a test gives a second or third person; `page` is the first. Relative URLs
    go to the live server. Every page is screenshotted when the test fails, and must ask nothing
    of any other host.
    """
    contexts = []
    pages = request.node.stash.setdefault(_pages_key, [])
    offsite: list[str] = []
    missing_static: list[str] = []
    server = urlsplit(live_server.url).netloc
    static_path = urlsplit(settings.STATIC_URL).path
    static_path = static_path if static_path.startswith("/") else f"/{static_path}"

    def note_offsite(req):
        parts = urlsplit(req.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != server:
            offsite.append(req.url)

    def note_missing_static(response):
        if response.status >= 400 and urlsplit(response.url).path.startswith(static_path):
            missing_static.append(f"{response.status} {response.url}")

    def open_one():
        context = browser.new_context(
            base_url=live_server.url,
            viewport=VIEWPORT,
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        context.on("request", note_offsite)
        context.on("response", note_missing_static)
        contexts.append(context)
        page = context.new_page()
        _keep_console(page)
        pages.append(page)
        return page

    yield open_one
    for context in contexts:
        context.close()
    problems = []
    if offsite:
        problems.append(f"the pages asked other hosts than the live server: {sorted(set(offsite))}")
    if missing_static:
        problems.append(f"static files the pages name are missing: {sorted(set(missing_static))}")
    if problems:
        pytest.fail("; ".join(problems))


def _keep_console(page) -> None:
    """The page's script errors and console errors (a CSP refusal shows there), for the failure
    report."""
    page.bakkme_console = []
    page.on("pageerror", lambda exc: page.bakkme_console.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: msg.type == "error" and page.bakkme_console.append(f"console: {msg.text}"),
    )


@pytest.fixture
def page(open_page):
    """The test's browser page (a fresh context: nobody logged in)."""
    return open_page()
