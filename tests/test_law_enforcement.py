"""Law-enforcement referrals and requests: a preservation request places holds; legal staff act
on the cases visible to them; auditors read."""

from datetime import date

import pytest
from django.core.exceptions import PermissionDenied

from evidence import access
from evidence.models import LegalHold
from legal import actions
from legal.models import LawEnforcementReferral, LawEnforcementRequest

from .factories import make_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(integration):
    return make_report(
        integration, category="grooming", reported_account={"platform_id": "u-9"}
    ).case


@pytest.fixture
def granted(case, legal, cso):
    access.grant(case, legal, by=cso, reason="placeholder reason")
    return legal


def preservation(**extra):
    return LawEnforcementRequest(
        agency="Placeholder Police",
        process_type=LawEnforcementRequest.ProcessType.PRESERVATION_REQUEST,
        reference="PR-1",
        received_on=date(2026, 1, 5),
        **extra,
    )


def test_a_preservation_request_holds_its_cases_and_accounts(case, granted):
    request = actions.save_request(
        preservation(account_platform_ids="u-77\n\nu-78\n"), granted, cases=[case]
    )
    holds = LegalHold.objects.filter(authority="law_enforcement_request").order_by("pk")
    assert [(h.case_id, h.account_platform_id) for h in holds] == [
        (case.pk, ""),
        (None, "u-77"),
        (None, "u-78"),
    ]
    assert all(h.authority_reference == "PR-1" and h.expires_at is None for h in holds)
    assert all(h.placed_by == granted and h.is_active() for h in holds)
    assert set(request.holds.all()) == set(holds)
    # Saved again (an edit): nothing is held twice.
    request.notes = "placeholder note"
    actions.save_request(request, granted, cases=[case])
    assert LegalHold.objects.filter(authority="law_enforcement_request").count() == 3
    assert request.history.first().history_user == granted


def test_other_legal_process_places_no_hold(case, granted):
    request = preservation()
    request.process_type = LawEnforcementRequest.ProcessType.SUBPOENA
    actions.save_request(request, granted, cases=[case])
    assert not LegalHold.objects.exists()


def test_legal_staff_link_only_cases_they_see(case, legal):
    with pytest.raises(PermissionDenied):
        actions.save_request(preservation(), legal, cases=[case])
    assert not LawEnforcementRequest.objects.exists() and not LegalHold.objects.exists()


def test_a_referral_of_a_p0_case_is_an_emergency(integration, cso):
    p0 = make_report(integration, category="imminent_danger").case
    assert p0.priority == 0
    referral = actions.save_referral(
        LawEnforcementReferral(
            case=p0, agency="Placeholder Police", country="US", contact="desk", sent="summary"
        ),
        cso,
    )
    assert referral.emergency and referral.created_by == cso
    assert referral.history.first().history_user == cso


def test_a_referral_needs_the_case_visible(case, legal):
    with pytest.raises(PermissionDenied):
        actions.save_referral(
            LawEnforcementReferral(case=case, agency="A", country="US", contact="c", sent="s"),
            legal,
        )


def test_legal_records_a_preservation_request_in_the_admin(client, case, granted):
    client.force_login(granted)
    response = client.post(
        "/admin/legal/lawenforcementrequest/add/",
        {
            "agency": "Placeholder Police",
            "process_type": "preservation_request",
            "reference": "PR-2",
            "received_on": "2026-01-05",
            "cases": str(case.pk),
            "account_platform_ids": "u-9",
            "notes": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    request = LawEnforcementRequest.objects.get()
    assert list(request.cases.all()) == [case] and request.created_by == granted
    assert LegalHold.objects.filter(authority_reference="PR-2").count() == 2


def test_the_admin_refuses_a_case_legal_does_not_see(client, case, legal):
    client.force_login(legal)
    response = client.post(
        "/admin/legal/lawenforcementrequest/add/",
        {
            "agency": "Placeholder Police",
            "process_type": "preservation_request",
            "received_on": "2026-01-05",
            "cases": str(case.pk),
        },
    )
    assert response.status_code == 200
    # The same answer as for a case number that does not exist: nothing tells them apart.
    hidden = response.context["adminform"].form.errors["cases"]
    missing = (
        client.post(
            "/admin/legal/lawenforcementrequest/add/",
            {
                "agency": "Placeholder Police",
                "process_type": "preservation_request",
                "received_on": "2026-01-05",
                "cases": "999999",
            },
        )
        .context["adminform"]
        .form.errors["cases"]
    )
    assert hidden == [m.replace("999999", str(case.pk)) for m in missing]
    assert not LegalHold.objects.exists()


def test_auditors_read_but_do_not_write(client, case, granted, auditor):
    request = actions.save_request(preservation(), granted, cases=[case])
    client.force_login(auditor)
    assert client.get(f"/admin/legal/lawenforcementrequest/{request.pk}/change/").status_code == 200
    assert client.get("/admin/legal/lawenforcementrequest/add/").status_code == 403
    assert (
        client.post(f"/admin/legal/lawenforcementrequest/{request.pk}/change/", {}).status_code
        == 403
    )
