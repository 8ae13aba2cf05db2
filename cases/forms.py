from django import forms

from bakkme_safety import policy
from bakkme_safety.policy import RestrictedFeature, Severity, Violation
from bakkme_safety.roles import ESCALATION_ROLES, Role

from .actions import DecisionInput


class DecisionForm(forms.Form):
    violation = forms.ChoiceField(choices=Violation.choices)
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000)
    enticement = forms.BooleanField(
        required=False, label="Enticement of a minor (18 U.S.C. 2422(b)): also report to NCMEC"
    )
    severity = forms.ChoiceField(choices=[("", "—"), *Severity.choices], required=False)
    restricted_feature = forms.ChoiceField(
        choices=[("", "—"), *RestrictedFeature.choices], required=False, label="Feature to restrict"
    )

    def clean(self):
        data = super().clean()
        violation = data.get("violation")
        if not violation:
            return data
        needs = policy.violation_needs(violation)
        if "severity" in needs and not data.get("severity"):
            self.add_error("severity", "Say how severe it is: the action depends on it.")
        if "feature" in needs and not data.get("restricted_feature"):
            self.add_error("restricted_feature", "Say which feature to restrict.")
        if "enticement" not in needs:
            data["enticement"] = False
        if "severity" not in needs:
            data["severity"] = ""
        if "feature" not in needs:
            data["restricted_feature"] = ""
        return data

    def decision(self) -> DecisionInput:
        d = self.cleaned_data
        return DecisionInput(
            violation=d["violation"],
            rationale=d["rationale"],
            enticement=d["enticement"],
            severity=d["severity"],
            restricted_feature=d["restricted_feature"],
        )


class EscalationForm(forms.Form):
    to_role = forms.ChoiceField(choices=[(r.value, r.label) for r in ESCALATION_ROLES], label="To")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000)

    def __init__(self, *args, decided: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if decided:  # a decided case is only handed to legal (cases.actions.escalate_case)
            self.fields["to_role"].choices = [(Role.LEGAL.value, Role.LEGAL.label)]


class NoteForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000, label="Note"
    )


class ReopenForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000)
