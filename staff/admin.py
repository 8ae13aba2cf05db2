"""Each person's notifications (unread first) and their shift; the staff compliance record
(kept by the CSO and admins), each person's own compliance page and their CSAE duties switch."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from simple_history.admin import SimpleHistoryAdmin

from cases.admin_scoping import CaseScopedAdminMixin
from cases.visibility import visible_case_ids
from core.admin import ReadOnlyAdminMixin
from core.formatting import format_duration

from . import actions, compliance, exposure, privileges
from .models import Notification, PrivilegeRequest, StaffProfile


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("no", "Unread"), ("yes", "Read")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(read_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(read_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("title_link", "kind", "created_at", "read_at", "email_status")
    list_filter = (ReadFilter, "kind")
    actions = ["mark_read"]
    show_full_result_count = False
    list_per_page = 50

    def scope_queryset(self, queryset, request):
        # Everyone sees their own notifications only, and of those the ones about cases they
        # may still see (or about none).
        own = queryset.filter(recipient=request.user)
        return own.filter(Q(case__isnull=True) | Q(case__in=visible_case_ids(request.user)))

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and self._in_scope(request, obj)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="notification", ordering="created_at")
    def title_link(self, notification):
        return format_html(
            '<a href="{}" class="{}">{}</a>',
            reverse("admin:staff_notification_open", args=[notification.pk]),
            "notification-read" if notification.read_at else "notification-unread",
            notification.title,
        )

    @admin.action(description="Mark as read")
    def mark_read(self, request, queryset):
        count = actions.mark_read(request.user, list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} marked as read.")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/open/", wrap(self.open_view), name="staff_notification_open"),
            path("read-all/", wrap(self.read_all_view), name="staff_notification_read_all"),
            path("shift/", wrap(self.shift_view), name="staff_shift"),
            *super().get_urls(),
        ]

    def open_view(self, request, pk):
        """Mark read and go to the case (or to the list, for a digest of several)."""
        notification = self.get_queryset(request).filter(pk=pk).first()
        if notification is None:
            raise Http404("No such notification.")
        actions.mark_read(request.user, [pk])
        if notification.case_id:
            return redirect(reverse("admin:cases_case_change", args=[notification.case_id]))
        if notification.case_ids:
            ids = ",".join(str(i) for i in notification.case_ids[:200])
            return redirect(reverse("admin:cases_case_changelist") + f"?state=all&id__in={ids}")
        return redirect("admin:staff_notification_changelist")

    def read_all_view(self, request):
        if request.method != "POST":
            raise Http404("Use the button.")
        actions.mark_read(request.user)
        return redirect("admin:staff_notification_changelist")

    def shift_view(self, request):
        """Start or end the shift: who is on duty gets the SLA warnings and emergencies."""
        if request.method != "POST":
            raise Http404("Use the button.")
        on = request.POST.get("on_shift") == "1"
        actions.set_on_shift(request.user, on)
        messages.success(request, "You are on shift." if on else "Your shift has ended.")
        return _back(request)


def _back(request, default: str = "admin:index"):
    """Back to the page the form was on (this site only)."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        target = reverse(default)
    return redirect(target)


RECORD_FIELDS = (
    "csae_training_on",
    "general_training_on",
    "background_check",
    "background_checked_on",
)


class ComplianceRecordForm(forms.ModelForm):
    class Meta:
        model = StaffProfile
        fields = ("user", *RECORD_FIELDS)
        widgets = {f: forms.DateInput(attrs={"type": "date"}) for f in RECORD_FIELDS if "_on" in f}

    def clean(self):
        data = super().clean()
        errors = compliance.record_errors(
            **{f: data.get(f) for f in RECORD_FIELDS}, on=compliance.today()
        )
        for name, message in errors.items():
            if name not in self.errors:
                self.add_error(name, message)
        return data


@admin.register(StaffProfile)
class StaffProfileAdmin(SimpleHistoryAdmin):
    """The compliance record: the CSO and admins keep trainings and background checks here
    (through staff.actions.update_compliance_record, which records who changed what).

    Whether someone left CSAE duties is theirs: it is in the history, never a column here, on
    the dashboard or in an export.
    """

    form = ComplianceRecordForm
    list_display = (
        "user",
        "csae_training_on",
        "csae_training_state",
        "general_training_on",
        "general_training_state",
        "background_check",
        "background_checked_on",
        "on_shift",
    )
    list_select_related = ("user",)
    list_filter = ("background_check", "on_shift")
    search_fields = ("user__username",)
    ordering = ("user__username",)
    show_full_result_count = False
    list_per_page = 100
    history_list_display = RECORD_FIELDS

    def get_fields(self, request, obj=None):
        return RECORD_FIELDS if obj is not None else ("user", *RECORD_FIELDS)

    def has_delete_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # Staff without a record yet.
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(is_staff=True, staff_profile__isnull=True)
                .order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        # Nobody keeps their own compliance record: it is what opens child-safety work.
        if obj is not None and obj.user_id == request.user.pk:
            return False
        return super().has_change_permission(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id is not None:
            profile = self.get_object(request, unquote(object_id))
            if profile is not None and profile.user_id == request.user.pk:
                # The rule is actions.update_compliance_record's; this only gives its reason
                # where Django would refuse the read-only page without one.
                raise PermissionDenied(actions.OWN_RECORD_REFUSED)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        profile = actions.update_compliance_record(
            obj.user, actor=request.user, **{f: form.cleaned_data[f] for f in RECORD_FIELDS}
        )
        obj.pk = profile.pk

    def _state(self, profile, which: str) -> str:
        training = getattr(compliance.status_of(profile, compliance.today()), which)
        if training.state == "missing":
            return "none recorded"
        if training.state == "expired":
            return f"expired on {training.expires_on:%Y-%m-%d}"
        soon = " (due soon)" if training.state == "due_soon" else ""
        return f"until {training.expires_on:%Y-%m-%d}{soon}"

    @admin.display(description="CSAE training valid")
    def csae_training_state(self, profile):
        return self._state(profile, "csae_training")

    @admin.display(description="general training valid")
    def general_training_state(self, profile):
        return self._state(profile, "general_training")

    # --- Each person's own page and their CSAE duties ----------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("mine/", wrap(self.my_compliance_view), name="staff_my_compliance"),
            path("csae-duties/", wrap(self.csae_duties_view), name="staff_csae_duties"),
            *super().get_urls(),
        ]

    def my_compliance_view(self, request):
        """Any member of staff: their own trainings, background check, CSAE duties and
        exposure this shift."""
        user = request.user
        now = timezone.now()
        status = compliance.compliance_status(user, now)
        spent = exposure.shift_exposure(user, now)
        context = {
            **self.admin_site.each_context(request),
            "title": "My compliance",
            "status": status,
            "csae_role": user.has_perm("cases.view_child_safety_case"),
            "may_handle": compliance.may_handle_child_safety(user, now),
            "exposure": format_duration(spent),
            "exposure_limit": format_duration(exposure.limit()),
            "at_limit": spent >= exposure.limit(),
        }
        return TemplateResponse(request, "admin/staff/my_compliance.html", context)

    def csae_duties_view(self, request):
        """Leave (or rejoin) CSAE duties: one POST, no approval."""
        if request.method != "POST":
            raise Http404("Use the button.")
        if request.POST.get("csae_duties") == "leave":
            released = actions.leave_csae_duties(request.user)
            text = "You left CSAE duties: child-safety cases are no longer in your queue."
            if released:
                cases = ", ".join(f"#{pk}" for pk in released)
                text += f" The child-safety cases you held went back to the queue ({cases})."
            messages.success(request, text)
        elif request.POST.get("csae_duties") == "rejoin":
            status = actions.rejoin_csae_duties(request.user)
            if status.may_handle_child_safety:
                messages.success(request, "You are back on CSAE duties.")
            else:
                messages.warning(
                    request,
                    "You are back on CSAE duties, but child-safety cases stay closed to you: "
                    + "; ".join(status.missing)
                    + ".",
                )
        else:
            return HttpResponseBadRequest("Say whether you leave or rejoin CSAE duties.")
        return _back(request, "admin:staff_my_compliance")


# --- Accounts: who may change whose access (staff.privileges) -----------------------------------

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(DjangoUserAdmin):
    """Django's user admin with the access rules of staff.privileges: no one changes their own
    access, only superusers edit superusers, privileged roles take two people. A refused edit
    is a 403 that says why (templates/403.html), and nothing of it is saved."""

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False  # shown read-only; a POST is refused with the reason below
        return super().has_change_permission(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id is not None:
            target = self.get_object(request, unquote(object_id))
            if target is not None and target.is_superuser and not request.user.is_superuser:
                raise PermissionDenied("Only a superuser edits a superuser's account.")
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            stored = User.objects.get(pk=obj.pk)
            privileges.check_user_change(request.user, stored, _user_change(stored, form))
        super().save_model(request, obj, form, change)

    def user_change_password(self, request, id, form_url=""):
        target = self.get_object(request, unquote(id))
        if target is not None:
            privileges.check_password_set(request.user, target)
        return super().user_change_password(request, id, form_url)


def _user_change(stored, form) -> privileges.UserChange:
    """What the submitted user form would change on the stored account."""
    data, changed = form.cleaned_data, set(form.changed_data)
    flags = {flag: data[flag] for flag in privileges.OWN_FLAGS if flag in changed}
    before = set(stored.groups.values_list("name", flat=True))
    after = {group.name for group in data["groups"]} if "groups" in data else before
    return privileges.UserChange(
        flags=flags,
        groups_added=frozenset(after - before),
        groups_removed=frozenset(before - after),
        permissions_changed="user_permissions" in changed,
    )


class PrivilegeRequestForm(forms.ModelForm):
    class Meta:
        model = PrivilegeRequest
        fields = ("user", "privilege", "reason")


class DecisionForm(forms.Form):
    note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Note (why, if refused)"
    )


@admin.register(PrivilegeRequest)
class PrivilegeRequestAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    """Granting a privileged role takes two people: one asks here ("Add"), a second approves or
    refuses on the request's page (staff.privileges)."""

    list_display = ("user", "privilege", "status", "requested_by", "requested_at", "decided_by")
    list_filter = ("status", "privilege")
    list_select_related = ("user", "requested_by", "decided_by")
    search_fields = ("user__username", "requested_by__username")
    readonly_fields = (
        "user",
        "privilege",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
    )
    fields = readonly_fields
    change_form_template = "admin/staff/privilegerequest/change_form.html"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("auth.view_user")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return request.user.has_perm(privileges.MANAGE_USERS)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:request_id>/decide/",
                wrap(self.decide_view),
                name="staff_privilegerequest_decide",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PrivilegeRequestForm(request.POST or None)
        form.fields["user"].queryset = User.objects.filter(is_active=True).order_by("username")
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                asked = privileges.request_privilege(
                    data["user"], data["privilege"], actor=request.user, reason=data["reason"]
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(
                    request,
                    f"Asked for {asked.get_privilege_display()} for {asked.user}: a second "
                    "administrator (not you, not them) approves it.",
                )
                return redirect("admin:staff_privilegerequest_change", asked.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Ask for a privileged role",
            "form": form,
        }
        return TemplateResponse(request, "admin/staff/privilegerequest/add.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        asked = self.get_object(request, object_id)
        extra = {
            "decision_form": DecisionForm(),
            "can_decide": asked is not None and privileges.may_decide(request.user, asked),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def decide_view(self, request, request_id):
        if request.method != "POST":
            raise Http404("Use the buttons on the request's page.")
        asked = self.get_queryset(request).filter(pk=request_id).first()
        if asked is None or not self.has_view_permission(request, asked):
            raise Http404("No such request.")
        form = DecisionForm(request.POST)
        form.is_valid()
        note = form.cleaned_data.get("note", "")
        try:
            if request.POST.get("decision") == "approve":
                privileges.approve_privilege(asked, actor=request.user, note=note)
                messages.success(
                    request, f"Approved: {asked.user} has {asked.get_privilege_display()}."
                )
            elif request.POST.get("decision") == "reject":
                privileges.reject_privilege(asked, actor=request.user, note=note)
                messages.success(request, "Refused: nothing was granted.")
            else:
                return HttpResponseBadRequest("Say whether you approve or refuse.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("admin:staff_privilegerequest_change", asked.pk)
