"""The second-factor pages under /admin/two-factor/, and the login page shown on a lockout.

Thin: the rules are in staff.two_factor. These pages are for a member of staff who gave
their password but has no verified factor yet, so they show no admin navigation.
"""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from . import lockout, two_factor


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )


def _next_url(request) -> str:
    target = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:index")


def _with_next(url_name: str, next_url: str):
    return redirect_to_login(next_url, reverse(url_name))


def _page(request, template: str, title: str, **context):
    """An admin-looking page without the admin's navigation (the user is not verified yet)."""
    site = admin.site
    response = render(
        request,
        template,
        {
            "site_title": site.site_title,
            "site_header": site.site_header,
            "site_url": None,
            "has_permission": False,
            "is_nav_sidebar_enabled": False,
            "available_apps": [],
            "is_popup": False,
            "title": title,
            "next": context.pop("next", ""),
            "next_field": REDIRECT_FIELD_NAME,
            **context,
        },
    )
    return response


def _staff(user):
    if not (user.is_active and user.is_staff):
        raise PermissionDenied


@never_cache
@sensitive_post_parameters("code")
@login_required
def verify(request):
    """A code from the authenticator app or a backup code; then on to where the user was going."""
    user = request.user
    _staff(user)
    next_url = _next_url(request)
    if two_factor.is_verified(user):
        return redirect(next_url)
    if not two_factor.has_authenticator(user):
        return _with_next("two_factor:enrol", next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = two_factor.verify(user, form.cleaned_data["code"], request=request)
        if outcome.device is not None:
            otp_login(request, outcome.device)
            request.session.cycle_key()  # a new session key for the raised privilege
            return redirect(next_url)
        form.add_error("code", outcome.error)
    return _page(request, "admin/two_factor/verify.html", "Second factor", form=form, next=next_url)


@never_cache
@sensitive_post_parameters("code")
@login_required
def enrol(request):
    """First login: set up the authenticator app; confirming it shows the backup codes once."""
    user = request.user
    _staff(user)
    next_url = _next_url(request)
    if two_factor.is_verified(user) or two_factor.has_authenticator(user):
        # Adding an authenticator to an account that has one needs an admin to reset it first.
        return _with_next("two_factor:verify", next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = two_factor.confirm_enrolment(user, form.cleaned_data["code"], request=request)
        if outcome.device is not None:
            otp_login(request, outcome.device)
            request.session.cycle_key()
            return _page(
                request,
                "admin/two_factor/backup_codes.html",
                "Your backup codes",
                codes=outcome.codes,
                next=next_url,
            )
        form.add_error("code", outcome.error)
    device = two_factor.pending_authenticator(user)
    return _page(
        request,
        "admin/two_factor/enrol.html",
        "Set up your second factor",
        form=form,
        next=next_url,
        secret=two_factor.secret_text(device),
        qr_svg=two_factor.qr_svg(device),
        issuer=settings.OTP_TOTP_ISSUER,
    )


@never_cache
@login_required
def backup_codes(request):
    """A verified member of staff makes a new set of backup codes (the old ones stop working)."""
    user = request.user
    _staff(user)
    if not two_factor.is_verified(user):
        return _with_next("two_factor:verify", request.get_full_path())
    next_url = _next_url(request)
    if request.method == "POST":
        codes = two_factor.generate_backup_codes(user, request=request)
        return _page(
            request,
            "admin/two_factor/backup_codes.html",
            "Your new backup codes",
            codes=codes,
            next=next_url,
        )
    return _page(
        request,
        "admin/two_factor/backup_codes.html",
        "Backup codes",
        codes=None,
        left=two_factor.backup_codes_left(user),
        next=next_url,
    )


@require_POST
def logout(request):
    """Log out, verified or not (the admin's own logout needs a verified session)."""
    auth_logout(request)
    return redirect("admin:login")


# What the lockout page says, by what is locked (staff.lockout), widest first. The same
# words whether or not the username exists: failures of unknown usernames count alike.
LOCKOUT_MESSAGES = {
    "address": "Too many failed logins from your address. Logging in from here is blocked "
    "for every username",
    "username": "Too many failed logins for this username from several addresses. Logging in "
    "with this username is blocked from every address",
    "username_at_address": "Too many failed logins for this username from your address. "
    "Logging in with this username from here is blocked",
}


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' AXES_LOCKOUT_CALLABLE: the admin login page, saying what is locked."""
    site = admin.site
    minutes = settings.BAKKME_LOGIN_COOLOFF_MINUTES
    locked = lockout.lockout_state(request, credentials).locked
    what = next(
        (text for scope, text in LOCKOUT_MESSAGES.items() if scope in locked),
        "Too many failed logins. Logging in is blocked",
    )
    message = f"{what} for {minutes} minutes; try again later, or ask an admin to unlock it."
    context = {
        **site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "form": (site.login_form or AdminAuthenticationForm)(request),
        REDIRECT_FIELD_NAME: _next_url(request),
        "lockout_message": message,
    }
    return render(request, "admin/two_factor/lockout.html", context, status=429)
