"""What a person does in the browser, for the journeys: log in (password and second factor),
open an admin page, log out.

These helpers go through the real pages, as a person would; data a journey needs is made
beforehand through the ORM, the factories (tests/factories.py) and the services, in the test
itself (the live server shares the test's database).
"""

from __future__ import annotations

import re

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from staff import two_factor

# tests/factories.py UserFactory's password.
PASSWORD = "correct horse battery staple"


def give_authenticator(user) -> TOTPDevice:
    """The user's confirmed authenticator (a TOTP device), made when they have none: the login
    then asks for its code, as for anyone who enrolled."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(
            user=user, name=two_factor.TOTP_DEVICE_NAME, confirmed=True
        )
    return device


def second_factor_code(user) -> str:
    """A code the second-factor page takes for `user` now: the current code of their
    authenticator, as the app shows it. A TOTP code works once per 30-second step, so when this
    step's code was used already (a second login in the same test) it is a backup code of a new
    set instead."""
    device = give_authenticator(user)
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if device.last_t < totp.t():
        return f"{totp.token():0{device.digits}d}"
    return two_factor.generate_backup_codes(user)[0]


def login(page: Page, user, password: str = PASSWORD) -> None:
    """Log in through the admin's login form and the second-factor page (the user gets an
    authenticator first if they have none); ends on the page the login leads to, logged in."""
    give_authenticator(user)
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Second factor", exact=True)).to_be_visible()
    page.get_by_label("Code").fill(second_factor_code(user))
    page.get_by_role("button", name="Verify").click()
    expect(page).not_to_have_url(re.compile(r"/admin/(login|two-factor)/"))
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {user.get_username()}")


def goto_admin(page: Page, path: str = "") -> None:
    """Open an admin page by its path under /admin/ ("cases/case/", "dashboard/sla/", ...)."""
    response = page.goto(f"/admin/{path.lstrip('/')}")
    assert response is not None and response.ok, f"/admin/{path}: {response and response.status}"


def logout(page: Page) -> None:
    """Log out with the admin's "Log out" button; ends on the logged-out page."""
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("Log in again")).to_be_visible()
