from django import forms

from .models import AuditEvent


class ExportFilterForm(forms.Form):
    """The CSV export's filters (GET parameters); all optional."""

    user = forms.CharField(
        required=False, max_length=150, help_text="Who acted: a username or a user id."
    )
    object_type = forms.CharField(
        required=False, max_length=100, help_text='What it was about, e.g. "auth.user".'
    )
    object_id = forms.CharField(required=False, max_length=64)
    action = forms.ChoiceField(required=False, choices=[("", "any")] + AuditEvent.Action.choices)
    since = forms.DateTimeField(required=False, help_text="From (UTC), inclusive.")
    until = forms.DateTimeField(required=False, help_text="Before (UTC).")

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            raise forms.ValidationError("“until” must be after “since”.")
        return data
