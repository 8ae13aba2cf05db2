"""Detections (README "Detection"): link normalisation, the lexicon, blocked links at intake,
reviewing an automatic hash action, and the internal bank fed by CSAM decisions. Neutral
placeholder terms only."""

import hashlib
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases import actions
from cases.actions import DecisionInput
from detection import matching, textsignals
from detection.actions import review_detection
from detection.models import BlockedLink, Detection, HashBank, HashEntry, LexiconTerm
from evidence import vault
from evidence.samples import pattern_png
from reports.actions import ingest_reports

from .factories import make_report, report_payload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_caches(settings):
    settings.BAKKME_PDQ_INDEX_REFRESH_SECONDS = 0
    settings.BAKKME_LEXICON_REFRESH_SECONDS = 0
    matching.reset_index()
    textsignals.reset_lexicon()
    yield
    matching.reset_index()
    textsignals.reset_lexicon()


@pytest.mark.parametrize(
    "given, normalised",
    [
        ("HTTP://Example.COM/Path", "example.com/Path"),  # host case; path case kept
        ("https://example.com/a", "example.com/a"),  # scheme
        ("example.com/a", "example.com/a"),
        ("http://www.example.com/a", "example.com/a"),  # www.
        ("https://example.com/a/", "example.com/a"),  # trailing slash
        ("https://example.com/", "example.com"),
        ("https://example.com/%7Euser/a%20b", "example.com/~user/a%20b"),  # percent-encoding
        ("https://example.com/~user/a b", "example.com/~user/a%20b"),
        ("https://example.com/%7euser", "example.com/~user"),
        ("http://example.com:80/a", "example.com/a"),  # default ports
        ("https://example.com:443/a", "example.com/a"),
        ("https://example.com:8080/a", "example.com:8080/a"),
        ("https://user@Example.com/a#frag", "example.com/a"),
    ],
)
def test_url_normalisation(given, normalised):
    assert textsignals.normalise_url(given) == normalised


def test_a_domain_entry_matches_its_subdomains_and_a_url_entry_only_its_url():
    BlockedLink.objects.create(value="blocked.example", kind="domain")
    BlockedLink.objects.create(value="other.example/x", kind="url")
    hits = textsignals.blocked_links(
        [
            textsignals.normalise_url("https://cdn.files.blocked.example/a"),
            textsignals.normalise_url("https://www.blocked.example"),
            textsignals.normalise_url("https://notblocked.example/a"),
            textsignals.normalise_url("https://other.example/x/"),
            textsignals.normalise_url("https://other.example/y"),
        ]
    )
    assert set(hits) == {"cdn.files.blocked.example/a", "blocked.example", "other.example/x"}


def test_a_lexicon_hit_records_its_spans_on_the_case(integration):
    term = LexiconTerm.objects.create(pattern=r"codeword-alpha\d*", category="grooming", weight=3)
    report = make_report(
        integration,
        content={"platform_id": "m-1", "type": "message", "text": "hello CODEWORD-alpha7 there"},
        description="see codeword-alpha",
    )
    (detection,) = Detection.objects.filter(case=report.case, method="keyword")
    spans = detection.matched["spans"]
    assert [(s["field"], s["span"]) for s in spans] == [
        ("content_text", [6, 21, "CODEWORD-alpha7"]),
        ("description", [4, 18, "codeword-alpha"]),
    ]
    assert {s["term"] for s in spans} == {term.pk}
    assert detection.matched["score"] == 3 and detection.report == report


def test_a_blocked_link_in_a_report_raises_a_link_detection(integration):
    BlockedLink.objects.create(value="blocked.example", kind="domain")
    report = make_report(
        integration,
        content={
            "platform_id": "m-2",
            "type": "message",
            "text": "go to WWW.Files.Blocked.example/a/.",
        },
    )
    (detection,) = Detection.objects.filter(case=report.case, method="link")
    assert detection.matched["url"] == "files.blocked.example/a"


@pytest.mark.parametrize("pattern", ["(unclosed", "a{2,1}", "x*"])
def test_a_bad_pattern_is_refused(pattern, client, senior):
    with pytest.raises(ValueError):
        textsignals.compile_pattern(pattern)
    client.force_login(senior)
    response = client.post(
        reverse("admin:detection_lexiconterm_add"),
        {"pattern": pattern, "category": "grooming", "weight": 1, "enabled": "on"},
    )
    assert response.status_code == 200
    assert "pattern" in response.context["adminform"].form.errors
    assert not LexiconTerm.objects.exists()


def test_a_pattern_that_runs_out_of_time_is_cut_short_and_counted(integration, settings):
    """A pattern that backtracks catastrophically on a text ((a|aa)+$ on forty a's and a full
    stop takes billions of steps) stops at the timeout: the report is stored, the other terms
    still match, and the slow term shows its timeout in the admin."""
    settings.BAKKME_LEXICON_TIMEOUT_SECONDS = 0.01
    slow = LexiconTerm.objects.create(pattern=r"(a|aa)+$", category="grooming")
    LexiconTerm.objects.create(pattern="codeword-alpha", category="grooming")
    report = make_report(
        integration,
        content={
            "platform_id": "m-3",
            "type": "message",
            "text": "codeword-alpha " + "a" * 40 + ".",
        },
    )
    (detection,) = Detection.objects.filter(case=report.case, method="keyword")
    assert [s["span"][2] for s in detection.matched["spans"]] == ["codeword-alpha"]
    slow.refresh_from_db()
    assert slow.timeouts == 1 and slow.last_timeout_at is not None
    assert slow.history.count() == 1  # counting is not an edit


def test_the_lexicon_admin_shows_timeouts(client, senior):
    LexiconTerm.objects.create(pattern="codeword-alpha", category="grooming")
    LexiconTerm.objects.filter(pattern="codeword-alpha").update(timeouts=4)
    client.force_login(senior)
    response = client.get(reverse("admin:detection_lexiconterm_changelist"))
    assert response.status_code == 200
    assert "timeouts" in response.content.decode().lower()
    assert response.context["cl"].result_list[0].timeouts == 4


def test_intake_costs_the_same_queries_for_5_and_50_reports(integration):
    LexiconTerm.objects.create(pattern="placeholder-term-1", category="grooming")
    BlockedLink.objects.create(value="blocked.example", kind="domain")

    def batch(n, tag):
        from reports.actions import build_report, payload_fingerprint
        from reports.api.serializers import ReportInSerializer

        reports = []
        for i in range(n):
            payload = report_payload(
                content={
                    "platform_id": f"{tag}-{i}",
                    "type": "message",
                    "text": f"placeholder-term-1 https://blocked.example/{i}",
                },
                reported_account={"platform_id": "u-same"},
            )
            serializer = ReportInSerializer(data=payload)
            serializer.is_valid(raise_exception=True)
            reports.append(
                build_report(integration, serializer.validated_data, payload_fingerprint(payload))
            )
        return reports

    def signal_queries(n, tag):
        reports = batch(n, tag)
        textsignals.lexicon()  # compiled once per process, not per batch
        with CaptureQueriesContext(connection) as ctx:
            ingest_reports(integration, reports)
        tables = ("detection_lexiconterm", "detection_blockedlink", "detection_detection")
        return [q for q in ctx.captured_queries if any(t in q["sql"] for t in tables)]

    few, many = signal_queries(5, "a"), signal_queries(50, "b")
    assert len(few) == len(many) <= 4
    assert Detection.objects.filter(method="keyword").count() == 55
    assert Detection.objects.filter(method="link").count() == 55


def _hash_case(integration, seed):
    data = pattern_png(seed=seed)
    bank = HashBank.objects.create(name=f"ncmec-{seed}", source="ncmec", is_csam=True)
    entry = HashEntry.objects.create(
        bank=bank, signal_type="md5", value=hashlib.md5(data).hexdigest()
    )
    report = make_report(integration, category="other", surface="post")
    item = vault.collect(io.BytesIO(data), case=report.case, report=report)
    (detection,) = Detection.objects.filter(case=report.case, method="hash")
    return item, entry, detection


def test_overturning_a_hash_detection_reinstates_cancels_and_counts_a_false_positive(
    integration, senior, client
):
    item, entry, detection = _hash_case(integration, seed=31)
    assert detection.matched["entry"] == entry.pk and detection.item == item
    case = item.case
    remove, suspend = case.actions.order_by("type")
    remove.status = "sent"  # the platform carried the removal out; the suspension is pending
    remove.save()
    review_detection(detection, actor=senior, confirmed=False)
    detection.refresh_from_db()
    assert detection.outcome == "overturned" and detection.reviewed_by == senior
    suspend.refresh_from_db()
    assert suspend.status == "cancelled"
    assert list(case.actions.filter(type="reinstate").values_list("status", flat=True)) == [
        "pending"
    ]
    entry.refresh_from_db()
    assert entry.false_positives == 1
    client.force_login(senior)
    page = client.get(reverse("admin:detection_hashbank_changelist"))
    assert {b.name: b.n_false for b in page.context["cl"].result_list}[entry.bank.name] == 1
    with pytest.raises(actions.InvalidTransition):
        review_detection(detection, actor=senior, confirmed=True)


def test_confirming_keeps_the_actions(integration, senior):
    item, entry, detection = _hash_case(integration, seed=32)
    review_detection(detection, actor=senior, confirmed=True)
    detection.refresh_from_db()
    assert detection.outcome == "confirmed"
    assert set(item.case.actions.values_list("status", flat=True)) == {"pending"}
    assert not item.case.actions.filter(type="reinstate").exists()
    entry.refresh_from_db()
    assert entry.false_positives == 0


def test_the_detection_admin_action_is_for_seniors_and_the_cso(integration, client, senior):
    _, _, detection = _hash_case(integration, seed=33)
    client.force_login(senior)
    client.post(
        reverse("admin:detection_detection_changelist"),
        {"action": "overturn", "_selected_action": [detection.pk]},
    )
    detection.refresh_from_db()
    assert detection.outcome == "overturned"
    page = client.get(reverse("admin:cases_case_change", args=[detection.case_id]))
    assert b"case-detections" in page.content


def test_a_csam_decision_adds_the_evidence_hashes_to_the_internal_bank_once(
    integration, senior, settings
):
    data = pattern_png(seed=34)
    report = make_report(integration, category="csam", surface="image")
    item = vault.collect(io.BytesIO(data), case=report.case, report=report)
    actions.decide_case(
        report.case, DecisionInput("csam_distribution", "placeholder"), actor=senior
    )
    bank = HashBank.objects.get(name=settings.BAKKME_INTERNAL_HASH_BANK)
    assert bank.source == "internal" and bank.is_csam
    values = dict(bank.entries.values_list("signal_type", "value"))
    assert values["md5"] == item.md5 and values["sha256"] == item.sha256
    assert values.get("pdq") == (item.pdq or None)
    count = bank.entries.count()
    case = report.case
    case.refresh_from_db()
    actions.reopen_case(case, actor=senior, reason="placeholder")
    case.refresh_from_db()
    actions.decide_case(case, DecisionInput("csam_possession", "placeholder"), actor=senior)
    assert bank.entries.count() == count


def test_every_detection_records_its_method(integration):
    LexiconTerm.objects.create(pattern="codeword-alpha", category="grooming")
    BlockedLink.objects.create(value="blocked.example/x", kind="url")
    _hash_case(integration, seed=35)
    make_report(
        integration,
        content={
            "platform_id": "m-9",
            "type": "message",
            "text": "codeword-alpha blocked.example/x",
        },
    )
    methods = set(Detection.objects.values_list("method", flat=True))
    assert methods == {"hash", "keyword", "link"}
    assert not Detection.objects.filter(method="").exists()


def test_a_blocked_link_made_in_code_is_stored_normalised(db):
    from detection.models import BlockedLink

    link = BlockedLink.objects.create(kind="url", value="HTTPS://WWW.Example.test:443/Path/")
    assert link.value == textsignals.normalise_url("https://example.test/Path")


def test_message_logs_collected_as_evidence_meet_the_lexicon_and_the_blocked_links(integration):
    import io
    import json

    from evidence import vault
    from evidence.models import EvidenceKind

    LexiconTerm.objects.create(pattern="codeword-alpha", category="grooming")
    BlockedLink.objects.create(value="blocked.example", kind="domain")
    case = make_report(integration).case
    log = [
        {"from": "u-1", "text": "placeholder hello"},
        {"from": "u-2", "text": "see codeword-alpha at https://files.blocked.example/x"},
    ]
    item = vault.collect(
        io.BytesIO(json.dumps(log).encode()), case=case, kind=EvidenceKind.COMMUNICATION_LOG
    )
    found = {d.method: d for d in Detection.objects.filter(item=item)}
    assert set(found) == {"keyword", "link"}
    assert found["keyword"].matched["spans"][0]["field"] == "message[1]"
    assert all(d.case_id == case.pk for d in found.values())
    # A file that is not a message log is preserved and left alone.
    vault.collect(io.BytesIO(b"not json"), case=case, kind=EvidenceKind.COMMUNICATION_LOG)
    assert Detection.objects.filter(case=case).count() == 2
