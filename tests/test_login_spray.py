"""Login lockouts beyond the (username, address) pair, and the CSO's alert on a login spray.

One address failing for many usernames is locked at BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT, one
username failing from many addresses at BAKKME_LOGIN_USERNAME_FAILURE_LIMIT, the pair still at
BAKKME_LOGIN_FAILURE_LIMIT; the lockout page says which without telling whether the username
exists; a spray alerts every CSO once per window and is in the audit trail.
"""

import html
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import RequestFactory

from audit.models import AuditEvent
from staff.models import Notification

from .factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
SPRAYER = "198.51.100.7"


@pytest.fixture
def traveller():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def login(client, username, password, ip):
    return client.post(
        "/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def fails(client, username, ip):
    """A failed login that is not refused by a lockout."""
    response = login(client, username, "wrong", ip)
    assert response.status_code == 200, (username, ip, response.status_code)
    assert b"Please enter the correct" in response.content
    return response


def logs_in(client, username, ip):
    response = login(client, username, PASSWORD, ip)
    assert response.status_code == 302, (username, ip, response.status_code)
    client.logout()


def lockout_message(response) -> str:
    assert response.status_code == 429
    found = re.search(rb'id="lockout-message"[^>]*>(.*?)</p>', response.content, re.S)
    assert found, response.content[:500]
    return html.unescape(found.group(1).decode())


def spray_notifications(user):
    return Notification.objects.filter(recipient=user, kind="login_spray")


# --- Lockouts -------------------------------------------------------------------------------------


def test_spraying_many_usernames_from_one_address_locks_the_address(
    client, settings, traveller, reviewer
):
    limit = settings.BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT
    assert limit > settings.BAKKME_LOGIN_FAILURE_LIMIT
    for n in range(limit - 1):
        fails(client, f"guess{n}", SPRAYER)  # each username once: no pair comes near its limit
    message = lockout_message(login(client, "guess-last", "wrong", SPRAYER))
    assert "Too many failed logins from your address" in message
    assert "for every username" in message

    # Locked for everyone from there, an existing account with its right password too, and in
    # the same words: the page does not tell which usernames exist.
    assert lockout_message(login(client, reviewer.username, PASSWORD, SPRAYER)) == message
    assert lockout_message(login(client, "nobody-at-all", PASSWORD, SPRAYER)) == message
    logs_in(client, reviewer.username, "198.51.100.8")  # another address is not locked

    traveller.shift(timedelta(minutes=settings.BAKKME_LOGIN_COOLOFF_MINUTES, seconds=1))
    logs_in(client, reviewer.username, SPRAYER)


def test_one_username_from_many_addresses_locks_the_username(
    client, settings, traveller, cso, reviewer
):
    limit = settings.BAKKME_LOGIN_USERNAME_FAILURE_LIMIT
    pair = settings.BAKKME_LOGIN_FAILURE_LIMIT
    assert limit > pair
    # One address alone cannot lock the CSO out from everywhere: its pair locks at its limit,
    # and the tries made while locked do not count.
    for _ in range(pair - 1):
        fails(client, cso.username, "203.0.113.1")
    for _ in range(limit + 1):  # the first of these is the pair's last failure
        assert login(client, cso.username, "wrong", "203.0.113.1").status_code == 429
    logs_in(client, cso.username, "203.0.113.2")

    # Many addresses, a few failures each, reach the username's limit.
    for n in range(limit - pair - 1):
        fails(client, cso.username, f"192.0.2.{n + 1}")
    message = lockout_message(login(client, cso.username, "wrong", "192.0.2.250"))
    assert "Too many failed logins for this username from several addresses" in message
    assert "blocked from every address" in message

    # Locked from every address, even with the right password; other usernames are not.
    assert lockout_message(login(client, cso.username, PASSWORD, "203.0.113.3")) == message
    logs_in(client, reviewer.username, "203.0.113.3")

    traveller.shift(timedelta(minutes=settings.BAKKME_LOGIN_COOLOFF_MINUTES, seconds=1))
    logs_in(client, cso.username, "203.0.113.3")


def test_the_pair_still_locks_at_its_limit_and_only_the_pair(client, settings, traveller, reviewer):
    pair = settings.BAKKME_LOGIN_FAILURE_LIMIT
    for _ in range(pair - 1):
        fails(client, reviewer.username, "10.20.0.1")
    message = lockout_message(login(client, reviewer.username, "wrong", "10.20.0.1"))
    assert "Too many failed logins for this username from your address" in message
    assert f"{settings.BAKKME_LOGIN_COOLOFF_MINUTES} minutes" in message

    # A username nobody has locks the same way, with the same words.
    for _ in range(pair - 1):
        fails(client, "nobody-at-all", "10.20.0.1")
    assert lockout_message(login(client, "nobody-at-all", "wrong", "10.20.0.1")) == message

    assert lockout_message(login(client, reviewer.username, PASSWORD, "10.20.0.1")) == message
    logs_in(client, reviewer.username, "10.20.0.2")  # the same username elsewhere
    other = UserFactory(roles=["reviewer"])
    logs_in(client, other.username, "10.20.0.1")  # another username from the same address


def test_a_success_clears_that_username_there_but_not_the_sprays_count(
    client, settings, traveller, reviewer
):
    pair = settings.BAKKME_LOGIN_FAILURE_LIMIT
    limit = settings.BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT
    # A success resets the pair: the same person may mistype again as often.
    for _ in range(pair - 1):
        fails(client, reviewer.username, SPRAYER)
    logs_in(client, reviewer.username, SPRAYER)
    for _ in range(pair - 1):
        fails(client, reviewer.username, SPRAYER)
    logs_in(client, reviewer.username, SPRAYER)

    # A known password does not wipe the count of the other usernames' failures there: the
    # address still locks at its limit.
    for n in range(limit - 1):
        fails(client, f"guess{n}", SPRAYER)
    logs_in(client, reviewer.username, SPRAYER)
    message = lockout_message(login(client, "guess-last", "wrong", SPRAYER))
    assert "Too many failed logins from your address" in message


def test_the_audit_trail_has_the_lockouts(client, settings, traveller, cso):
    pair = settings.BAKKME_LOGIN_FAILURE_LIMIT
    for _ in range(pair):
        login(client, cso.username, "wrong", "10.30.0.1")
    for n in range(settings.BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT):
        login(client, f"guess{n}", "wrong", SPRAYER)
    for n in range(settings.BAKKME_LOGIN_USERNAME_FAILURE_LIMIT - pair):
        login(client, cso.username, "wrong", f"192.0.2.{n + 1}")

    lockouts = AuditEvent.objects.filter(action="lockout").order_by("at", "pk")
    first_pair = lockouts.filter(ip="10.30.0.1").first()
    assert first_pair.object_id == str(cso.pk) and first_pair.detail["username"] == cso.username
    assert first_pair.detail["locked"] == ["username_at_address"]
    assert first_pair.detail["failure_limit"] == pair

    address = lockouts.filter(ip=SPRAYER).get()
    assert address.detail["locked"] == ["address"]
    assert address.detail["failures"] == settings.BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT
    assert address.detail["failure_limit"] == settings.BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT
    assert address.object_id == ""  # the last username tried, which nobody has

    username = lockouts.exclude(ip__in=["10.30.0.1", SPRAYER]).get()
    assert username.object_id == str(cso.pk)
    assert username.detail["locked"] == ["username"]
    assert username.detail["failure_limit"] == settings.BAKKME_LOGIN_USERNAME_FAILURE_LIMIT
    assert username.detail["cooloff_minutes"] == settings.BAKKME_LOGIN_COOLOFF_MINUTES


# --- The CSO's alert ------------------------------------------------------------------------------


def test_every_cso_gets_one_spray_notification_per_window(
    client, settings, traveller, cso, reviewer
):
    other_cso = UserFactory(roles=["child_safety_officer"])
    usernames = settings.BAKKME_LOGIN_SPRAY_USERNAMES
    addresses = settings.BAKKME_LOGIN_SPRAY_ADDRESSES
    window = timedelta(minutes=settings.BAKKME_LOGIN_SPRAY_WINDOW_MINUTES)

    # One address, many usernames: alerted once, however long it goes on within the window.
    for n in range(usernames - 1):
        fails(client, f"guess{n}", SPRAYER)
    assert not spray_notifications(cso).exists()
    for n in range(usernames - 1, usernames + 3):
        fails(client, f"guess{n}", SPRAYER)
    for person in (cso, other_cso):
        alert = spray_notifications(person).get()
        assert SPRAYER in alert.title and f"{usernames} usernames" in alert.title
        assert alert.case_id is None
    assert not spray_notifications(reviewer).exists()

    # One username, many addresses: one more each.
    for n in range(addresses + 2):
        fails(client, reviewer.username, f"192.0.2.{n + 1}")
    for person in (cso, other_cso):
        assert spray_notifications(person).count() == 2
        alert = spray_notifications(person).exclude(title__contains=SPRAYER).get()
        assert f"{addresses} addresses" in alert.title
        assert reviewer.username not in alert.title  # anyone's text stays out of the subject
        assert f"“{reviewer.username}”" in alert.body

    # The spray goes on after the window: one more alert.
    traveller.shift(window + timedelta(seconds=1))
    for n in range(usernames):
        fails(client, f"later{n}", SPRAYER)
    assert spray_notifications(cso).count() == 3
    assert spray_notifications(other_cso).count() == 3

    sprays = AuditEvent.objects.filter(action="login_spray").order_by("at", "pk")
    assert [e.detail["spray"] for e in sprays] == ["address", "username", "address"]
    first, second, third = sprays
    assert str(first.ip) == SPRAYER and first.detail["usernames"] == usernames
    assert first.object_repr == SPRAYER and first.actor is None
    assert second.object_id == str(reviewer.pk) and second.detail["addresses"] == addresses
    assert third.at - first.at > window


@pytest.mark.django_db(transaction=True)
def test_failed_logins_at_the_same_moment_alert_once(settings, cso):
    """Requests crossing the threshold together send one alert, not one each."""
    from audit.actions import record
    from staff.login_spray import detect_login_spray

    for n in range(1, settings.BAKKME_LOGIN_SPRAY_ADDRESSES + 1):
        request = RequestFactory().post("/admin/login/", REMOTE_ADDR=f"192.0.2.{n}")
        record("login_failed", actor=None, object_repr="target", request=request)
    start = threading.Barrier(4)
    errors = []

    def detect(n):
        try:
            start.wait()
            detect_login_spray(username="target", ip=f"192.0.2.{n}")
        except Exception as exc:  # reported below: an assert in a thread would be lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=detect, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert spray_notifications(cso).count() == 1
    assert AuditEvent.objects.filter(action="login_spray").count() == 1
