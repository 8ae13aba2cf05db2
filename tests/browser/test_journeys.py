"""Journeys walked in a real browser, as each role does them (issue 17, "Real browser tests").

Each test sets up its data through the factories and actions, then does only what a person
does on the pages (helpers: login, goto_admin, logout) and checks what the person sees.
"""

import re

from playwright.sync_api import expect

from ..factories import UserFactory, make_report
from .helpers import login, logout


def test_a_reviewer_logs_in_with_the_second_factor_takes_the_next_case_and_logs_out(page):
    reviewer = UserFactory(username="rita", roles=["reviewer"])
    case = make_report(category="grooming").case

    login(page, reviewer)
    expect(page.get_by_role("link", name="BakkMe Safety back office")).to_be_visible()

    # The admin index lists the Cases app and, in it, the Cases list.
    page.get_by_role("rowheader", name="Cases").get_by_role("link").click()
    page.get_by_role("button", name="Next case").click()

    expect(page).to_have_title(re.compile(rf"^Case #{case.pk} \|"))
    expect(page.get_by_role("heading", name=f"Case #{case.pk}")).to_be_visible()
    expect(page.get_by_text(f"Case #{case.pk} is yours until")).to_be_visible()
    expect(page.get_by_text("Held by rita")).to_be_visible()

    logout(page)
    page.goto("/admin/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_legal_staff_find_a_csam_decision_on_their_desk_edit_the_draft_and_file_it(
    page, settings, monkeypatch
):
    """Issue 14: a senior decides "Distributing CSAM"; the legal member lands on the desk, opens
    the draft, saves an edit, files it against the practice endpoint, watches the steps and
    sees NCMEC's report id."""
    import io
    import threading

    from cases import actions
    from cases.actions import DecisionInput
    from evidence import vault
    from evidence.samples import pattern_png
    from legal import actions as legal_actions
    from legal.practice import PracticeCyberTipline

    practice = PracticeCyberTipline("esp-practice", "placeholder-password").start()
    settings.BAKKME_CYBERTIP_URL = practice.url
    settings.BAKKME_CYBERTIP_PRACTICE_URL = practice.url
    settings.BAKKME_CYBERTIP_USERNAME = practice.username
    settings.BAKKME_CYBERTIP_PASSWORD = practice.password
    settings.BAKKME_CYBERTIP_REFRESH_SECONDS = 1
    # The File button queues the filing; here a thread plays the worker (the test settings run
    # tasks inline, which would hide the steps), against a practice endpoint that answers
    # each upload a little late.
    queued = []
    monkeypatch.setattr(legal_actions, "_queue_filing", queued.append)
    practice.fault("/upload", ("slow", 1.5), ("slow", 1.5))

    senior = UserFactory(username="sam", roles=["senior_reviewer"])
    lawyer = UserFactory(username="lee", roles=["legal"])
    report = make_report(category="csam", surface="image")
    case = report.case
    for seed in (51, 52):
        vault.collect(io.BytesIO(pattern_png(seed=seed)), case=case, report=report)
    actions.decide_case(case, DecisionInput("csam_distribution", "placeholder"), actor=senior)

    login(page, lawyer)
    expect(page.get_by_role("heading", name="Legal desk: what legal staff owe")).to_be_visible()
    page.get_by_role("link", name=f"CyberTipline report of case #{case.pk}").click()
    expect(page.get_by_text("Practice (local, nothing reaches NCMEC)").first).to_be_visible()

    page.locator("#cybertip-draft").get_by_label("Additional information").first.fill(
        "Placeholder note from the legal desk."
    )
    page.get_by_role("button", name="Save the draft").click()
    expect(page.get_by_text("The draft was saved; the report validates.")).to_be_visible()

    page.get_by_label("I reviewed this report; send it to NCMEC now.").check()
    page.get_by_role("button", name="File the report").click()
    expect(page.get_by_text("Filing started")).to_be_visible()

    worker = threading.Thread(target=lambda: [legal_actions.run_filing(pk) for pk in queued])
    worker.start()
    try:
        expect(page.locator("#filing-step")).to_contain_text("Uploading", timeout=15_000)
        expect(page.locator("#filing-status h2")).to_contain_text("NCMEC report", timeout=20_000)
    finally:
        worker.join(timeout=30)
        practice.stop()
    report_id = page.locator("#filing-status h2").inner_text().rsplit(" ", 1)[-1]
    assert practice.reports[report_id]["state"] == "finished"
    expect(page.locator("#filing-status h2")).to_contain_text("Finished")
