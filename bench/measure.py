"""The measures: API intake (single, batch), the queue changelist, "next case".

Each runs the real code path: the API and the admin through django.test.Client (URL routing,
middleware, authentication, serializers, templates; no network or WSGI server), "next case"
through cases.actions.claim_next_case. Timed runs do not capture queries; separate runs under
CaptureQueriesContext count them and keep the slowest query for EXPLAIN.
"""

import json
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.test import Client as DjangoClient
from django.test.utils import CaptureQueriesContext

from bench.fill import CATEGORIES, SOURCES, SURFACES

HOST = {"HTTP_HOST": "localhost"}  # in the default BAKKME_ALLOWED_HOSTS


class Client(DjangoClient):
    """Every request over https, as behind the TLS proxy: production settings redirect http."""

    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


# Every report the bench sends has a new idempotency key, so the API should answer 201 ("stored");
# the answers are counted, and any other status shows in the results.


@dataclass
class Measure:
    label: str
    ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    slowest_sql: str = ""
    slowest_sql_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    @property
    def p90(self) -> float:
        if len(self.ms) < 2:
            return self.ms[0]
        return statistics.quantiles(self.ms, n=10, method="inclusive")[-1]

    def record_queries(self, captured: CaptureQueriesContext) -> None:
        self.queries.append(len(captured.captured_queries))
        for query in captured.captured_queries:
            ms = float(query["time"]) * 1000
            if ms > self.slowest_sql_ms:
                self.slowest_sql_ms, self.slowest_sql = ms, query["sql"]

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "n": len(self.ms),
            "median_ms": self.median,
            "p90_ms": self.p90,
            "query_counts": sorted(set(self.queries)),
        }


def _weighted(rng: random.Random, choices) -> str:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights)[0]


def report_payload(rng: random.Random, key: str, account_id: str, username: str) -> dict:
    """An API body like tests/factories.report_payload, with the fill's category mix."""
    surface = _weighted(rng, SURFACES)
    received = datetime.now(UTC) - timedelta(seconds=rng.randint(5, 900))
    return {
        "idempotency_key": key,
        "source": _weighted(rng, SOURCES),
        "category": _weighted(rng, CATEGORIES),
        "surface": surface,
        "received_at": received.isoformat(),
        "reported_account": {"platform_id": account_id, "username": username},
        "content": {
            "platform_id": f"{key}-c",
            "type": surface,
            "text": "Reported content, placeholder text of a typical length for a message.",
            "url": f"https://bakkme.example/{surface}/{key}",
        },
        "reporter": {"platform_id": f"u-{rng.randint(1, 10**6)}", "anonymous": False},
        "description": "Reported in the app.",
    }


class Subjects:
    """Who the intake's reports are about: new accounts, open cases' and decided cases'."""

    def __init__(self, run_id: str, rng: random.Random):
        self.run_id, self.rng, self.new = run_id, rng, 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT account_platform_id, account_username FROM cases_case"
                " WHERE state IN ('new', 'in_review', 'escalated') AND account_platform_id <> ''"
                " ORDER BY random() LIMIT 3000"
            )
            self.open = cursor.fetchall()
            cursor.execute(
                "SELECT account_platform_id, account_username FROM cases_case"
                " WHERE state = 'decided' AND account_platform_id <> ''"
                " ORDER BY random() LIMIT 400"
            )
            self.decided = cursor.fetchall()

    def fresh(self) -> tuple[str, str]:
        self.new += 1
        return f"bench-{self.run_id}-{self.new}", f"bench_user_{self.run_id}_{self.new}"

    def pick(self) -> tuple[str, str]:
        """65% a new subject, 30% an open case's, 5% a decided case's (the case reopens)."""
        draw = self.rng.random()
        if draw < 0.30 and self.open:
            return self.rng.choice(self.open)
        if draw < 0.35 and self.decided:
            return self.decided.pop()
        return self.fresh()


def _api_client(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {token}", **HOST)


def measure_intake_single(token: str, subjects: Subjects, requests: int) -> Measure:
    """POST /api/v1/reports/, one report a request, one after the other."""
    client = _api_client(token)
    measure = Measure("API intake, single")
    keys = iter(range(1, 10**9))
    statuses = Counter()

    def post():
        account, username = subjects.pick()
        body = report_payload(subjects.rng, f"{subjects.run_id}-s{next(keys)}", account, username)
        started = time.perf_counter()
        response = client.post("/api/v1/reports/", json.dumps(body), "application/json")
        elapsed = (time.perf_counter() - started) * 1000
        # 201; 200 for a new key is the bug described at the top.
        assert response.status_code in (200, 201), (response.status_code, response.content[:500])
        statuses[response.status_code] += 1
        return elapsed

    for _ in range(5):  # warm-up: imports, connection, caches
        post()
    wall = time.perf_counter()
    measure.ms = [post() for _ in range(requests)]
    wall = time.perf_counter() - wall
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            post()
        measure.record_queries(captured)
    measure.extra = {
        "requests": requests,
        "wall_s": wall,
        "reports_per_s": requests / wall,
        "statuses": dict(statuses),
    }
    return measure


def measure_intake_batch(token: str, subjects: Subjects, batches: int, size: int) -> Measure:
    """POST /api/v1/reports/batch/ with `size` reports each; some subjects twice in a batch."""
    client = _api_client(token)
    measure = Measure(f"API intake, batch of {size}")
    keys = iter(range(1, 10**9))
    statuses = Counter()

    def post():
        body = []
        for _ in range(size):
            if body and subjects.rng.random() < 0.05:  # another report about the same subject
                previous = subjects.rng.choice(body)["reported_account"]
                account, username = previous["platform_id"], previous["username"]
            else:
                account, username = subjects.pick()
            key = f"{subjects.run_id}-b{next(keys)}"
            body.append(report_payload(subjects.rng, key, account, username))
        data = json.dumps({"reports": body})
        started = time.perf_counter()
        response = client.post("/api/v1/reports/batch/", data, "application/json")
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (response.status_code, response.content[:500])
        for item in response.json()["results"]:
            assert item["status"] in (200, 201), item
            statuses[item["status"]] += 1
        return elapsed

    post()  # warm-up
    measure.ms = [post() for _ in range(batches)]
    with CaptureQueriesContext(connection) as captured:
        post()
    measure.record_queries(captured)
    total_s = sum(measure.ms) / 1000
    measure.extra = {
        "batches": batches,
        "batch_size": size,
        "wall_s": total_s,
        "reports_per_s": batches * size / total_s,
        "statuses": dict(statuses),
    }
    return measure


def queue_variants(sample: dict) -> list[tuple[str, str]]:
    """(label, query string) of the changelist views measured."""
    return [
        ("queue (default: open cases, most urgent first)", ""),
        ("search: account id", f"?q={sample['account_id']}"),
        ("search: username", f"?q={sample['username']}"),
        ("search: content id (a later report's)", f"?q={sample['content_id']}"),
        ("search: account id, all states", f"?q={sample['account_id']}&state=all"),
        ("filter: priority P1", "?priority__exact=1"),
        ("filter: category grooming, all states", "?category__exact=grooming&state=all"),
        ("filter: assigned to me", "?assigned=mine"),
        ("filter: all states, page 20", "?state=all&p=20"),
    ]


def queue_sample() -> dict:
    """Search terms that find one open case: its account, username, a later report's content."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.account_platform_id, c.account_username, r.content_platform_id"
            " FROM cases_case c JOIN reports_report r ON r.case_id = c.id"
            " WHERE c.state = 'new' AND c.account_platform_id LIKE 'u-%%'"
            " AND c.report_count > 1 AND r.content_platform_id <> c.content_platform_id"
            " ORDER BY c.id LIMIT 1"
        )
        account_id, username, content_id = cursor.fetchone()
    return {"account_id": account_id, "username": username, "content_id": content_id}


def staff_client(user) -> Client:
    """A client logged in as `user` past the second factor, as staff work: the session names a
    confirmed device of the user, the way django_otp.login leaves it."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    client = Client(**HOST)
    client.force_login(user)
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name="bench factor", defaults={"confirmed": True}
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def measure_queue(reviewer, variants, repeat: int) -> list[Measure]:
    """GET /admin/cases/case/ as a reviewer: the triage queue changelist.

    The views take turns (one GET of each per round), so a burst of load from elsewhere on the
    machine falls on all of them rather than on one.
    """
    client = staff_client(reviewer)
    measures = [
        Measure(label, extra={"url": f"/admin/cases/case/{query}"}) for label, query in variants
    ]

    def get(measure):
        started = time.perf_counter()
        response = client.get(measure.extra["url"])
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (measure.extra["url"], response.status_code)
        return elapsed, response

    for _ in range(2):
        for measure in measures:
            get(measure)
    for _ in range(repeat):
        for measure in measures:
            measure.ms.append(get(measure)[0])
    for measure in measures:
        for _ in range(3):
            with CaptureQueriesContext(connection) as captured:
                _, response = get(measure)
            measure.record_queries(captured)
        measure.extra["rows"] = response.content.count(b'class="field-case_number"')
    return measures


def measure_dashboard(cso, repeat: int) -> Measure:
    """GET /admin/dashboard/ as the Child Safety Officer: the default view (the last 30 days)."""
    client = staff_client(cso)
    measure = Measure("CSO dashboard (last 30 days)", extra={"url": "/admin/dashboard/"})

    def get():
        started = time.perf_counter()
        response = client.get(measure.extra["url"])
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.status_code
        return elapsed

    for _ in range(2):
        get()
    measure.ms = [get() for _ in range(repeat)]
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            get()
        measure.record_queries(captured)
    return measure


def clear_p0_queue() -> int:
    """Decide the open P0 cases: the usual state of the queue, since P0 cases (1-hour SLA) are
    taken within minutes. "Next case" then has to find the most urgent P1. The run's restore
    (bench/fill.py) puts them back."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE cases_case SET state = 'decided', decided_at = now(),"
            " first_action_at = coalesce(first_action_at, now()), assignee_id = NULL,"
            " claimed_at = NULL, claim_expires_at = NULL"
            " WHERE priority = 0 AND state IN ('new', 'in_review', 'escalated')"
        )
        return cursor.rowcount


def measure_next_case(
    reviewer_pk: int, rounds: int, per_round: int, label: str = "next case (claim_next_case)"
) -> Measure:
    """claim_next_case as a reviewer would: each round claims `per_round` cases in a row (each
    the next most urgent free one), then releases them all, so the queue is not drained.

    The user is loaded afresh before each claim (untimed), as a request would, so the
    permission lookups are part of the figure.
    """
    from django.contrib.auth import get_user_model

    from cases.actions import claim_next_case, release_claim

    User = get_user_model()
    measure = Measure(label, extra={"rounds": rounds, "per_round": per_round})

    def claim(held):
        user = User.objects.get(pk=reviewer_pk)
        started = time.perf_counter()
        case = claim_next_case(user)
        elapsed = (time.perf_counter() - started) * 1000
        assert case is not None, "the queue is empty"
        held.append(case)
        return elapsed

    def release(held):
        user = User.objects.get(pk=reviewer_pk)
        for case in held:
            release_claim(case, actor=user)

    held = []
    claim(held)  # warm-up
    release(held)
    for _ in range(rounds):
        held = []
        measure.ms.extend(claim(held) for _ in range(per_round))
        release(held)
    held = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            claim(held)
        measure.record_queries(captured)
    release(held)
    return measure


def explain(sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured SELECT, rolled back (it may lock rows)."""
    if not sql.lstrip().upper().startswith("SELECT"):
        return ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)  # no params: % is literal
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan
