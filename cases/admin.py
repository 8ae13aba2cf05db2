"""The reviewers' workspace: the triage queue, "next case" and the case page.

Thin: every change goes through cases.actions; every list goes through Case.visible_to.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from bakkme_safety.policy import ActionType
from bakkme_safety.roles import Role
from core.admin import ReadOnlyAdminMixin
from core.paginators import EstimatedCountPaginator
from deliveries.signing import configured as webhook_configured
from detection.behaviour import with_events
from reports.queries import cases_matching
from staff import exposure

from . import actions
from .admin_scoping import CaseScopedAdminMixin
from .forms import DecisionForm, EscalationForm, NoteForm, ReopenForm
from .models import OPEN_STATES, Case, CaseState, EnforcementAction
from .sla import sla_status


class QueueStateFilter(admin.SimpleListFilter):
    """The queue shows open cases unless the reviewer asks for others."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open (default)"), *CaseState.choices, ("all", "All")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "open":
            return queryset.filter(state__in=OPEN_STATES)
        if value == "all":
            return queryset
        return queryset.filter(state=value)


class AssigneeFilter(admin.RelatedOnlyFieldListFilter):
    """The people holding a case. Decided and closed cases have no assignee, so the choices
    come from the held cases, not from every case ever handled."""

    def field_choices(self, field, request, model_admin):
        holders = (
            model_admin.get_queryset(request)
            .filter(assignee__isnull=False)
            .distinct()
            .values_list("assignee__pk", flat=True)
        )
        return field.get_choices(
            include_blank=False,
            limit_choices_to={"pk__in": holders},
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class MineFilter(admin.SimpleListFilter):
    title = _("assigned")
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("mine", "Mine"), ("nobody", "Unassigned")]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return queryset.filter(assignee=request.user)
        if self.value() == "nobody":
            return queryset.filter(assignee__isnull=True)
        return queryset


class EscalatedToFilter(admin.SimpleListFilter):
    title = _("escalated to")
    parameter_name = "escalated_to"

    def lookups(self, request, model_admin):
        return [(r, label) for r, label in Case._meta.get_field("escalated_to").choices if r]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(escalated_to=self.value())
        return queryset


@admin.register(Case)
class CaseAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = (
        "case_number",
        "priority_badge",
        "category",
        "sla_remaining",
        "state",
        "assignee",
        "report_count",
        "account_username",
        "escalated_to",
    )
    list_display_links = ("case_number",)
    list_filter = (
        QueueStateFilter,
        "priority",
        "category",
        "surface",
        MineFilter,
        ("assignee", AssigneeFilter),
        EscalatedToFilter,
    )
    list_select_related = ("assignee",)
    ordering = ("priority", "due_at", "pk")
    search_help_text = "Platform account id, username, or content id"
    search_fields = ("account_platform_id",)  # the search box; get_search_results does the work
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    change_list_template = "admin/cases/case/change_list.html"

    # --- Who sees what ---------------------------------------------------------------------

    def get_queryset(self, request):
        return Case.objects.visible_to(request.user)

    def has_view_permission(self, request, obj=None):
        if obj is not None:
            return self.get_queryset(request).filter(pk=obj.pk).exists()
        return request.user.has_perm("cases.view_case") or self.get_queryset(request).exists()

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return cases_matching(queryset, term), False

    # --- Columns ---------------------------------------------------------------------------

    @admin.display(description="case", ordering="pk")
    def case_number(self, case):
        return f"#{case.pk}"

    @admin.display(description="priority", ordering="priority")
    def priority_badge(self, case):
        return case.priority_label

    @admin.display(description="SLA", ordering="due_at")
    def sla_remaining(self, case):
        if case.state not in OPEN_STATES:
            return "—"
        status = sla_status(case.sla_started_at, case.due_at, timezone.now())
        return format_html(
            '<span class="sla sla-{}">{}: {}</span>', status.state, status.state, status.describe()
        )

    # --- The workspace ---------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("next/", wrap(self.next_case_view), name="cases_case_next"),
            path("<int:case_id>/decide/", wrap(self.decide_view), name="cases_case_decide"),
            path("<int:case_id>/escalate/", wrap(self.escalate_view), name="cases_case_escalate"),
            path("<int:case_id>/note/", wrap(self.note_view), name="cases_case_note"),
            path("<int:case_id>/release/", wrap(self.release_view), name="cases_case_release"),
            path("<int:case_id>/close/", wrap(self.close_view), name="cases_case_close"),
            path("<int:case_id>/reopen/", wrap(self.reopen_view), name="cases_case_reopen"),
            path(
                "<int:case_id>/checklist/<slug:item>/",
                wrap(self.checklist_view),
                name="cases_case_checklist",
            ),
            *super().get_urls(),
        ]

    def _case_or_404(self, request, case_id) -> Case:
        case = self.get_queryset(request).filter(pk=case_id).select_related("assignee").first()
        if case is None:
            raise Http404("No such case, or not one you may see.")
        return case

    def _to_case(self, case):
        return redirect(reverse("admin:cases_case_change", args=[case.pk]))

    def next_case_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require_any(request, "cases.claim_case")
        try:
            case = actions.claim_next_case(request.user)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return redirect("admin:cases_case_changelist")
        notice = exposure.break_notice(request.user)
        if notice:
            messages.warning(request, notice)
        if case is None:
            messages.info(request, "The queue is empty: no case is waiting for you.")
            return redirect("admin:cases_case_changelist")
        messages.success(
            request, f"Case #{case.pk} is yours until {case.claim_expires_at:%H:%M} UTC."
        )
        return self._to_case(case)

    def changelist_view(self, request, extra_context=None):
        notice = ""
        if request.user.has_perm("cases.claim_case"):
            notice = exposure.break_notice(request.user)
        return super().changelist_view(request, {**(extra_context or {}), "break_notice": notice})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            raise Http404("No such case.")
        case = self._case_or_404(request, int(object_id))
        return self._workspace(request, case)

    def _workspace(self, request, case, **forms):
        user = request.user
        reports = list(case.reports.order_by("received_at", "pk"))
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Case #{case.pk}",
            "case": case,
            "reports": reports,
            "account": _account_summary(reports),
            "sla": sla_status(case.sla_started_at, case.due_at, now)
            if case.state in OPEN_STATES
            else None,
            "timeline": actions.timeline(case),
            "decisions": case.decisions.select_related("decided_by"),
            "actions": case.actions.all(),
            "detections": with_events(list(case.detections.select_related("reviewed_by"))),
            "show_contact": user.has_perm("reports.view_reporter_contact"),
            "can_decide": case.state in OPEN_STATES and actions.can_decide(user, case),
            # A decided case can still be handed to legal (cases.actions.escalate_case).
            "can_escalate": (case.state in OPEN_STATES or case.state == CaseState.DECIDED)
            and user.has_perm("cases.escalate_case"),
            "can_note": user.has_perm("cases.add_note"),
            "can_release": case.assignee_id is not None
            and (case.assignee_id == user.pk or user.has_perm("cases.decide_case")),
            "can_close": case.state == CaseState.DECIDED and user.has_perm("cases.close_case"),
            "can_reopen": case.state in (CaseState.DECIDED, CaseState.CLOSED)
            and user.has_perm("cases.reopen_case"),
            "can_claim": user.has_perm("cases.claim_case"),
            "claim_active": case.claim_is_active(now),
            "decision_form": forms.get("decision_form") or DecisionForm(),
            "escalation_form": forms.get("escalation_form")
            or EscalationForm(decided=case.state == CaseState.DECIDED),
            "note_form": forms.get("note_form") or NoteForm(),
            "reopen_form": forms.get("reopen_form") or ReopenForm(),
            "checklist": list(case.checklist.select_related("done_by")),
            "can_tick": user.has_perm("cases.escalate_case") or user.has_perm("cases.decide_case"),
        }
        return TemplateResponse(request, "admin/cases/case/workspace.html", context)

    def _post_only(self, request):
        if request.method != "POST":
            raise Http404("Use the form on the case page.")

    def _require_any(self, request, *perms):
        """403 before reading the form for someone whose role cannot do this at all (the
        services still decide the finer rules, e.g. only the assignee decides a claimed case)."""
        if not any(request.user.has_perm(perm) for perm in perms):
            raise PermissionDenied("Your role cannot do this.")

    def decide_view(self, request, case_id):
        """Decide in two steps: the form shows the actions that will follow, then confirm."""
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.claim_case", "cases.decide_case")
        form = DecisionForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The decision is not complete: see the form.")
            return self._workspace(request, case, decision_form=form)
        decision = form.decision()
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "admin/cases/case/decide_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "opts": self.opts,
                    "title": f"Confirm the decision on case #{case.pk}",
                    "case": case,
                    "form": form,
                    "decision": decision,
                    "actions": [ActionType(a).label for a in decision.actions()],
                },
            )
        try:
            actions.decide_case(case, decision, actor=request.user)
        except (PermissionDenied, actions.InvalidTransition) as exc:
            messages.error(request, str(exc))
            return self._to_case(case)
        messages.success(request, f"Case #{case.pk} decided.")
        return self._to_case(case)

    def escalate_view(self, request, case_id):
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.escalate_case")
        form = EscalationForm(request.POST, decided=case.state == CaseState.DECIDED)
        if not form.is_valid():
            return self._workspace(request, case, escalation_form=form)
        try:
            actions.escalate_case(case, actor=request.user, **form.cleaned_data)
        except (PermissionDenied, actions.InvalidTransition, ValueError) as exc:
            messages.error(request, str(exc))
            return self._to_case(case)
        messages.success(request, f"Case #{case.pk} escalated.")
        return redirect("admin:cases_case_changelist")

    def note_view(self, request, case_id):
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.add_note")
        form = NoteForm(request.POST)
        if not form.is_valid():
            return self._workspace(request, case, note_form=form)
        try:
            actions.add_note(case, actor=request.user, text=form.cleaned_data["text"])
        except (PermissionDenied, ValueError) as exc:
            messages.error(request, str(exc))
        return self._to_case(case)

    def release_view(self, request, case_id):
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.claim_case", "cases.decide_case")
        try:
            actions.release_claim(case, actor=request.user)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return self._to_case(case)
        messages.info(request, f"Case #{case.pk} is back in the queue.")
        return redirect("admin:cases_case_changelist")

    def close_view(self, request, case_id):
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.close_case")
        try:
            actions.close_case(case, actor=request.user)
        except (PermissionDenied, actions.InvalidTransition) as exc:
            messages.error(request, str(exc))
        return self._to_case(case)

    def reopen_view(self, request, case_id):
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.reopen_case")
        form = ReopenForm(request.POST)
        if not form.is_valid():
            return self._workspace(request, case, reopen_form=form)
        try:
            actions.reopen_case(case, actor=request.user, reason=form.cleaned_data["reason"])
        except (PermissionDenied, actions.InvalidTransition, ValueError) as exc:
            messages.error(request, str(exc))
        return self._to_case(case)

    def checklist_view(self, request, case_id, item):
        self._post_only(request)
        case = self._case_or_404(request, case_id)
        self._require_any(request, "cases.escalate_case", "cases.decide_case")
        try:
            actions.tick_checklist_item(case, item, actor=request.user)
        except (PermissionDenied, ValueError) as exc:
            messages.error(request, str(exc))
        return self._to_case(case)


def _account_summary(reports) -> dict:
    """What the reports say about the reported account, latest value first."""
    summary = {}
    for report in reversed(reports):
        for field in (
            "account_platform_id",
            "account_username",
            "account_date_of_birth",
            "account_age_band",
            "account_created_at",
        ):
            value = getattr(report, field)
            if value and field not in summary:
                summary[field] = value
    return summary


@admin.register(EnforcementAction)
class EnforcementActionAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The actions and their delivery to the platform's webhook (read-only; deliveries/outbox.py).
    The CSO may send failed ones again (an admin action, through the service)."""

    list_display = (
        "id",
        "case",
        "type",
        "status",
        "delivery",
        "attempts",
        "last_response_code",
        "account_platform_id",
        "created_at",
    )
    list_filter = ("status", "type")
    list_select_related = ("case",)
    show_full_result_count = False
    actions = ["retry_delivery"]
    fields = (
        "case",
        "decision",
        "type",
        "status",
        "delivery",
        "account_platform_id",
        "content_platform_id",
        "restricted_feature",
        "created_at",
        "attempts",
        "first_attempt_at",
        "last_attempt_at",
        "next_attempt_at",
        "sent_at",
        "last_response_code",
        "last_response_body",
        "last_error",
    )
    readonly_fields = fields

    @admin.display(description=_("delivery"))
    def delivery(self, obj):
        return webhook_delivery_state(obj, timezone.now())

    def has_retry_permission(self, request):
        user = request.user
        return user.is_superuser or user.groups.filter(name=Role.CHILD_SAFETY_OFFICER).exists()

    @admin.action(description=_("Retry the delivery of the selected failed actions"))
    def retry_delivery(self, request, queryset):
        retried = sum(
            actions.retry_delivery(action, actor=request.user)
            for action in queryset.filter(status=EnforcementAction.Status.FAILED)
        )
        self.message_user(request, f"{retried} deliveries queued again.", messages.SUCCESS)

    retry_delivery.allowed_permissions = ("retry",)


def webhook_delivery_state(obj, now) -> str:
    """A delivery's state in words, for the admin (waiting for a webhook to be configured, in
    flight, retrying at, sent, failed)."""
    if obj.status == EnforcementAction.Status.PENDING:
        if obj.type not in settings.BAKKME_WEBHOOK_ACTION_TYPES:
            return "not sent to the platform"
        if not webhook_configured():
            return "waiting: no platform webhook configured"
        if obj.in_flight_until and obj.in_flight_until > now:
            return "in flight"
        if obj.next_attempt_at and obj.next_attempt_at > now:
            return f"retrying at {obj.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        return "due"
    if obj.status in (EnforcementAction.Status.SENT, EnforcementAction.Status.CONFIRMED):
        return f"delivered {obj.sent_at:%Y-%m-%d %H:%M:%S} UTC" if obj.sent_at else "delivered"
    if obj.status == EnforcementAction.Status.FAILED and obj.attempts:
        return f"failed after {obj.attempts} attempts"
    return obj.get_status_display()
