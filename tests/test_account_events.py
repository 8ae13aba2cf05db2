"""Account events, behaviour rules and ban evasion (README "Detection"). Placeholder ids only."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cases.models import Case
from detection import rules
from detection.models import Detection
from reports.models import AccountEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/events/"


def event(n, **overrides) -> dict:
    body = {
        "idempotency_key": f"e-{n}",
        "type": "message_sent",
        "occurred_at": (timezone.now() - timedelta(minutes=30) + timedelta(seconds=n)).isoformat(),
        "actor": {"platform_id": "adult-1", "age": 34},
        "target": {"platform_id": f"minor-{n}", "age_band": "13_15"},
        "mutual_followers": False,
        "surface": "message",
    }
    body.update(overrides)
    return body


# --- The API -------------------------------------------------------------------------------------


def test_one_event_is_stored_once(api, integration):
    body = event(1)
    first = api.post(URL, body, format="json")
    assert first.status_code == 201, first.json()
    again = api.post(URL, body, format="json")
    assert again.status_code == 200
    assert again.json()["results"][0]["id"] == first.json()["results"][0]["id"]
    assert again.json()["results"][0]["status"] == 200
    stored = AccountEvent.objects.get()
    assert stored.integration == integration
    assert (stored.actor_age, stored.target_age_band, stored.mutual_followers) == (
        34,
        "13_15",
        False,
    )


def test_a_batch_is_all_or_nothing(api):
    bad = event(2, type="shouting", target=None)
    response = api.post(URL, {"events": [event(1), bad]}, format="json")
    assert response.status_code == 400
    (item,) = response.json()["events"]
    assert item["index"] == 1 and "type" in item["errors"]
    assert not AccountEvent.objects.exists()

    response = api.post(URL, {"events": [event(1), event(2)]}, format="json")
    assert response.status_code == 201
    assert [r["status"] for r in response.json()["results"]] == [201, 201]
    # A key reused for another event: 409 and nothing of the batch stored.
    response = api.post(URL, {"events": [event(3), event(1, surface="chat")]}, format="json")
    assert response.status_code == 409
    assert AccountEvent.objects.count() == 2


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"target": None}, "target"),
        ({"actor": {"age": 30}}, "actor"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"identifiers": {"email": "a@example.com"}}, "identifiers"),
        ({"actor": {"platform_id": "x", "age_band": "old"}}, "actor"),
    ],
)
def test_field_errors(api, overrides, field):
    response = api.post(URL, event(1, **overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not AccountEvent.objects.exists()


def test_batch_limit(api, settings):
    settings.BAKKME_API_EVENTS_MAX = 2
    response = api.post(URL, {"events": [event(i) for i in range(3)]}, format="json")
    assert response.status_code == 400
    assert "events" in response.json()


def test_no_token_no_entry(client):
    assert client.post(URL, event(1), content_type="application/json").status_code == 401


# --- The rules, as pure functions ----------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
WINDOW = timedelta(hours=24)


@dataclass
class E:
    id: int
    target_platform_id: str
    type: str = "message_sent"
    occurred_at: datetime = NOW
    actor_age: int | None = 30
    actor_age_band: str = ""
    target_age: int | None = None
    target_age_band: str = "13_15"
    mutual_followers: bool | None = False
    surface: str = "message"


def test_adult_and_minor_from_age_or_band():
    assert rules.is_adult(18, "") and not rules.is_adult(17, "18_plus")
    assert rules.is_adult(None, "18_plus") and not rules.is_adult(None, "unknown")
    assert rules.is_minor(None, "under_13") and rules.is_minor(None, "16_17")
    assert not rules.is_minor(None, "unknown") and not rules.is_minor(None, "")


def test_minor_contacts_on_both_sides_of_the_threshold():
    four = [E(i, f"m{i}") for i in range(4)]
    assert rules.minor_contacts(four, NOW, window=WINDOW, threshold=5) is None
    five = [*four, E(9, "m9")]
    hit = rules.minor_contacts(five, NOW, window=WINDOW, threshold=5)
    assert hit["counts"]["distinct_minors"] == 5 and hit["events"] == [0, 1, 2, 3, 9]


def test_minor_contacts_counts_only_what_the_rule_says():
    base = [E(i, f"m{i}") for i in range(4)]
    for extra in [
        E(5, "m0"),  # the same minor again
        E(5, "m5", mutual_followers=True),
        E(5, "m5", target_age_band="18_plus"),
        E(5, "m5", target_age_band="unknown"),
        E(5, "m5", occurred_at=NOW - WINDOW - timedelta(seconds=1)),
        E(5, "m5", type="follow_request"),
    ]:
        assert rules.minor_contacts([*base, extra], NOW, window=WINDOW, threshold=5) is None
    minor_actor = [E(i, f"m{i}", actor_age=16) for i in range(6)]
    assert rules.minor_contacts(minor_actor, NOW, window=WINDOW, threshold=5) is None


def test_gifts_to_minors_on_both_sides_of_the_threshold():
    gift = {"type": "gift_or_payment", "surface": "live_stream"}
    two = [E(1, "m1", **gift), E(2, "m1", **gift)]
    assert rules.gifts_to_minors(two, NOW, window=WINDOW, threshold=3) is None
    assert (
        rules.gifts_to_minors(
            [*two, E(3, "m2", **{**gift, "surface": "post"})], NOW, window=WINDOW, threshold=3
        )
        is None
    )
    assert (
        rules.gifts_to_minors(
            [*two, E(3, "m2", target_age=19, target_age_band="", **gift)],
            NOW,
            window=WINDOW,
            threshold=3,
        )
        is None
    )
    hit = rules.gifts_to_minors([*two, E(3, "m2", **gift)], NOW, window=WINDOW, threshold=3)
    assert hit["counts"] == {"gifts": 3, "distinct_minors": 2}


# --- Rules at intake -----------------------------------------------------------------------------


def test_a_hit_raises_one_behaviour_detection_on_the_adults_case(api, settings):
    settings.BAKKME_RULE_MINOR_CONTACTS = 3
    response = api.post(URL, {"events": [event(1), event(2)]}, format="json")
    assert response.status_code == 201
    assert not Detection.objects.exists()
    response = api.post(URL, event(3), format="json")
    assert response.status_code == 201
    detection = Detection.objects.get()
    assert detection.method == "behaviour"
    assert detection.matched["rule"] == rules.MINOR_CONTACTS
    assert detection.matched["counts"]["distinct_minors"] == 3
    ids = sorted(AccountEvent.objects.values_list("pk", flat=True))
    assert detection.matched["events"] == ids
    case = detection.case
    assert case.account_platform_id == "adult-1"
    assert case.priority == 1 and case.category == "grooming" and case.is_child_safety
    # More events in the same window: no second detection.
    api.post(URL, {"events": [event(4), event(5)]}, format="json")
    assert Detection.objects.count() == 1
    assert Case.objects.count() == 1


def test_the_adults_existing_case_is_joined(api, integration, settings):
    from .factories import make_report

    settings.BAKKME_RULE_GIFTS_TO_MINORS = 2
    report = make_report(integration, reported_account={"platform_id": "adult-1"})
    gift = {"type": "gift_or_payment", "surface": "live_stream"}
    api.post(URL, {"events": [event(1, **gift), event(2, **gift)]}, format="json")
    detection = Detection.objects.get()
    assert detection.case_id == report.case_id
    assert detection.matched["rule"] == rules.GIFTS_TO_MINORS


def test_rules_are_set_based(api, settings):
    settings.BAKKME_RULE_MINOR_CONTACTS = 2
    small = [event(i) for i in range(2)]
    big = [
        event(100 + i, actor={"platform_id": f"adult-{i % 10}", "age_band": "18_plus"})
        for i in range(60)
    ]
    with CaptureQueriesContext(connection) as few:
        api.post(URL, {"events": small}, format="json")
    with CaptureQueriesContext(connection) as many:
        api.post(URL, {"events": big}, format="json")
    assert Detection.objects.count() == 10  # adult-1 once: its window already had a hit
    assert len(many) <= len(few) + 5


# --- Ban evasion ---------------------------------------------------------------------------------


def login(n, account, **identifiers) -> dict:
    return {
        "idempotency_key": f"login-{n}",
        "type": "login",
        "occurred_at": (timezone.now() - timedelta(minutes=10)).isoformat(),
        "actor": {"platform_id": account},
        "identifiers": identifiers,
    }


@pytest.mark.parametrize(
    "given, normalised",
    [
        ("First.Last+tag@GoogleMail.com", "firstlast@gmail.com"),
        ("f.i.r.s.t.last@gmail.com", "firstlast@gmail.com"),
        ("Some.One+tag@Example.org", "some.one+tag@example.org"),
    ],
)
def test_email_normalisation(given, normalised):
    from detection.banevasion import normalise_email

    assert normalise_email(given) == normalised


@pytest.fixture
def banned_case(api, integration, senior, django_capture_on_commit_callbacks):
    from cases import actions
    from cases.actions import DecisionInput

    from .factories import make_report

    api.post(
        URL,
        login(1, "banned-1", email="First.Last@gmail.com", device_fingerprint="dev-1"),
        format="json",
    )
    case = make_report(integration, reported_account={"platform_id": "banned-1"}).case
    with django_capture_on_commit_callbacks():
        actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)
    return case


def test_a_permanent_ban_lists_the_accounts_identifiers(banned_case):
    import hashlib

    from detection.models import BanEvasionIdentifier

    listed = set(
        BanEvasionIdentifier.objects.filter(source_case=banned_case).values_list("kind", "value")
    )
    assert listed == {
        ("device", "dev-1"),
        ("email_hash", hashlib.sha256(b"firstlast@gmail.com").hexdigest()),
    }


def test_an_email_variant_raises_a_p1_case_linked_to_the_original(
    api, banned_case, settings, client, senior
):
    from cases.models import CaseEvent, EnforcementAction

    settings.BAKKME_BAN_EVASION_AUTO_TERMINATE = True
    event = {
        **login(2, "new-1", email="firstlast+x@googlemail.com"),
        "type": "account_created",
    }
    assert api.post(URL, event, format="json").status_code == 201
    case = Case.objects.get(account_platform_id="new-1")
    assert case.priority == 1 and case.is_child_safety
    note = case.events.get(type=CaseEvent.Type.NOTE_ADDED)
    assert note.payload["ban_evasion_of_case"] == banned_case.pk
    assert f"case {banned_case.pk}" in note.payload["text"]
    (action,) = EnforcementAction.objects.filter(case=case)
    assert action.type == "permanent_ban" and action.decision is None
    (detection,) = Detection.objects.filter(case=case)
    assert detection.method == "ban_evasion" and detection.outcome == "pending"
    assert detection.matched["original_case"] == banned_case.pk
    assert detection.matched["kinds"] == ["email_hash"]
    assert detection.matched["action"] == action.pk
    client.force_login(senior)
    page = client.get(f"/admin/cases/case/{case.pk}/change/").content.decode()
    assert f'href="/admin/cases/case/{banned_case.pk}/change/">case #{banned_case.pk}' in page
    # Logging in again: no second case or action.
    api.post(URL, login(3, "new-1", email="firstlast@gmail.com"), format="json")
    assert Case.objects.filter(account_platform_id="new-1").count() == 1
    assert EnforcementAction.objects.filter(case=case).count() == 1
    assert Detection.objects.filter(case=case).count() == 1


def test_no_termination_when_the_setting_is_off_and_no_hit_for_others(api, banned_case, settings):
    from cases.models import EnforcementAction

    settings.BAKKME_BAN_EVASION_AUTO_TERMINATE = False
    api.post(URL, login(2, "new-2", device_fingerprint="dev-1"), format="json")
    case = Case.objects.get(account_platform_id="new-2")
    assert not EnforcementAction.objects.filter(case=case).exists()
    # An unrelated e-mail, and the banned account itself: nothing.
    api.post(URL, login(3, "new-3", email="someone.else@gmail.com"), format="json")
    api.post(URL, login(4, "banned-1", device_fingerprint="dev-1"), format="json")
    assert not Case.objects.filter(account_platform_id="new-3").exists()
    assert Case.objects.filter(account_platform_id="banned-1").count() == 1


@pytest.mark.parametrize("sent", [False, True])
def test_overturning_a_ban_evasion_detection_undoes_the_termination(
    api, banned_case, senior, settings, sent
):
    from cases.models import EnforcementAction
    from detection.actions import review_detection

    settings.BAKKME_BAN_EVASION_AUTO_TERMINATE = True
    api.post(URL, login(2, "new-4", device_fingerprint="dev-1"), format="json")
    case = Case.objects.get(account_platform_id="new-4")
    (action,) = EnforcementAction.objects.filter(case=case)
    if sent:  # the platform was told: it may have suspended the account
        action.status = EnforcementAction.Status.SENT
        action.save()
    review_detection(Detection.objects.get(case=case), actor=senior, confirmed=False)
    action.refresh_from_db()
    reinstated = EnforcementAction.objects.filter(case=case, type="reinstate")
    if sent:
        assert action.status == "sent"
        assert reinstated.get().account_platform_id == "new-4"
    else:
        assert action.status == "cancelled"
        assert not reinstated.exists()


def test_confirming_a_ban_evasion_detection_lists_the_new_accounts_identifiers(
    api, banned_case, senior
):
    from detection.actions import review_detection
    from detection.models import BanEvasionIdentifier

    api.post(URL, login(2, "new-7", device_fingerprint="dev-1", ip="198.51.100.4"), format="json")
    case = Case.objects.get(account_platform_id="new-7")
    assert not BanEvasionIdentifier.objects.filter(account_platform_id="new-7").exists()
    review_detection(Detection.objects.get(case=case), actor=senior, confirmed=True)
    listed = BanEvasionIdentifier.objects.filter(account_platform_id="new-7", source_case=case)
    assert set(listed.values_list("kind", "value")) == {
        ("device", "dev-1"),
        ("ip", "198.51.100.4"),
    }
    # A third account on that address now matches the evader's case as well.
    api.post(URL, login(3, "new-8", ip="198.51.100.4"), format="json")
    third = Detection.objects.get(case__account_platform_id="new-8")
    assert third.matched["original_case"] == case.pk


def test_an_ip_matches_only_while_the_banned_account_recently_used_it(
    api, integration, senior, settings, django_capture_on_commit_callbacks
):
    from cases import actions
    from cases.actions import DecisionInput

    from .factories import make_report

    settings.BAKKME_BAN_EVASION_IP_DAYS = 30
    old = {**login(1, "banned-2", ip="192.0.2.7")}
    old["occurred_at"] = (timezone.now() - timedelta(days=40)).isoformat()
    api.post(URL, old, format="json")
    case = make_report(integration, reported_account={"platform_id": "banned-2"}).case
    with django_capture_on_commit_callbacks():
        actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)
    # The banned account used the address 40 days ago: a new account on it now is not a hit.
    api.post(URL, login(2, "new-5", ip="192.0.2.7"), format="json")
    assert not Case.objects.filter(account_platform_id="new-5").exists()
    # Within the window (the policy number changed), the same address is.
    settings.BAKKME_BAN_EVASION_IP_DAYS = 60
    api.post(URL, login(3, "new-6", ip="192.0.2.7"), format="json")
    assert Detection.objects.get(case__account_platform_id="new-6").matched["kinds"] == ["ip"]


def test_the_ban_evasion_list_is_searched_by_an_email_variant(banned_case, client, senior):
    from django.urls import reverse

    client.force_login(senior)
    url = reverse("admin:detection_banevasionidentifier_changelist")
    response = client.get(url, {"q": "first.last+other@googlemail.com"})
    assert response.status_code == 200
    assert [r.kind for r in response.context["cl"].result_list] == ["email_hash"]
    response = client.get(url, {"q": "someone.else@gmail.com"})
    assert list(response.context["cl"].result_list) == []
    response = client.get(url, {"q": "banned-1"})
    assert len(response.context["cl"].result_list) == 2


def test_the_case_page_shows_the_events_behind_a_behaviour_detection(api, client, senior, settings):
    settings.BAKKME_RULE_MINOR_CONTACTS = 2
    api.post(URL, {"events": [event(1), event(2)]}, format="json")
    detection = Detection.objects.get()
    client.force_login(senior)
    response = client.get(f"/admin/cases/case/{detection.case_id}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert rules.MINOR_CONTACTS in page
    assert "minor-1" in page and "minor-2" in page
    # And the events are in their own admin list.
    response = client.get("/admin/reports/accountevent/", {"q": "adult-1"})
    assert len(response.context["cl"].result_list) == 2
