"""The CyberTipline draft form legal staff edit (legal/draft.py holds the rules).

One form for the incident and a formset per repeating part: the reported people, their IP
capture events, the victims, the suggested victims to confirm, the intended recipients and the
files. Choices are the enumerations of NCMEC's schema; dates are ISO 8601 (a datetime-local
picker; anything else, a date without a time or a time the zone makes ambiguous, is refused).
After a save the schema's problems are put back next to the field they concern
(DraftEditor.add_problems); what concerns no field shows at the top.
"""

import re

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.forms.utils import ErrorDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from bakkme_safety.policy import AgeBand
from detection.rules import MINOR_BANDS

from .cybertip_xml import enumeration, flags

# A date with a time (seconds and an offset optional); never a date alone or a local format
# such as 01/02/2026, whose day and month could be read either way.
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_ISO_FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
_TEXTAREA = {"rows": 2, "cols": 60}


def _words(name: str) -> str:
    """reportAnnotations names as words: "csamSolicitation" -> "csam solicitation"."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()


def _choices(values, blank: str | None = None) -> list[tuple[str, str]]:
    choices = [(v, v) for v in values]
    return [("", blank), *choices] if blank is not None else choices


class IsoDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs={"step": 1, **(attrs or {})}, format="%Y-%m-%dT%H:%M:%S")


class IsoDateTimeField(forms.DateTimeField):
    """A date and time in ISO 8601, read in the current time zone when it has no offset."""

    widget = IsoDateTimeInput
    input_formats = _ISO_FORMATS

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text",
            f"YYYY-MM-DDTHH:MM[:SS], {timezone.get_current_timezone_name()} unless an offset "
            "is given.",
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not _ISO_DATETIME.match(value.strip()):
            raise ValidationError(
                "Enter the date and the time as YYYY-MM-DDTHH:MM (ISO 8601, 24-hour).",
                code="invalid",
            )
        return super().to_python(value)


class EmailListField(forms.CharField):
    """E-mail addresses, one a line."""

    widget = forms.Textarea(attrs=_TEXTAREA)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        text = super().to_python(value)
        return [line.strip() for line in (text or "").splitlines() if line.strip()]

    def validate(self, value):
        super().validate(value)
        bad = []
        for line in value:
            try:
                validate_email(line)
            except ValidationError:
                bad.append(line)
        if bad:
            raise ValidationError(f"Not an e-mail address: {', '.join(bad)}.", code="invalid")


def _text(label="", *, max_length=200, area=False, **kwargs):
    widget = forms.Textarea(attrs=_TEXTAREA) if area else None
    return forms.CharField(
        label=label or None, max_length=max_length, required=False, widget=widget, **kwargs
    )


def _when(value):
    """A stored ISO date-time as the datetime the widget shows (in the current time zone)."""
    return parse_datetime(value) if isinstance(value, str) and value else value or None


def _iso(value) -> str:
    return value.isoformat(timespec="seconds") if value else ""


class DraftForm(forms.Form):
    """The incident: incidentSummary and the report's additionalInfo."""

    incident_type = forms.ChoiceField(
        required=False,
        choices=_choices(enumeration("incidentType"), "(none fits: the report cannot be sent)"),
    )
    incident_date_time = IsoDateTimeField(required=False, label="Incident time")
    incident_date_time_description = _text("About the incident time", max_length=1000)
    escalate_reason = _text(
        "Escalate to high priority: why",
        max_length=2000,
        area=True,
        help_text="Only for an immediate risk to a child; empty: no escalation.",
    )
    report_annotations = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, _words(name)) for name in flags("reportAnnotations")],
    )
    additional_info = _text("Additional information", max_length=10000, area=True)

    def row(self) -> dict:
        data = dict(self.cleaned_data)
        data["incident_date_time"] = _iso(data["incident_date_time"])
        return data


class PersonForm(forms.Form):
    esp_id = _text("ESP id", max_length=100)
    screen_name = _text(max_length=150)
    emails = EmailListField(label="E-mail (one a line)", required=False)
    additional_info = _text(max_length=2000, area=True)


class IpEventForm(forms.Form):
    account = _text("Account (ESP id)", max_length=100)
    ip_address = forms.GenericIPAddressField(label="IP address", required=False)
    event_name = forms.ChoiceField(
        label="Event", required=False, choices=_choices(enumeration("ipCaptureType"), "")
    )
    date_time = IsoDateTimeField(required=False, label="Time")

    def row(self) -> dict:
        return {**self.cleaned_data, "date_time": _iso(self.cleaned_data["date_time"])}


class VictimForm(forms.Form):
    esp_id = _text("ESP id", max_length=100)
    screen_name = _text(max_length=150)
    first_name = _text(max_length=100, help_text="Only what legal staff know; never filled in.")
    last_name = _text(max_length=100)
    age = forms.IntegerField(required=False, min_value=0, max_value=17, help_text="Under 18.")
    estimated_age = forms.ChoiceField(
        label="Estimated age range",
        required=False,
        choices=[("", ""), *[(b.value, b.label) for b in AgeBand if b in MINOR_BANDS]],
    )
    additional_info = _text(max_length=2000, area=True)
    suggestion = forms.CharField(required=False, widget=forms.HiddenInput)


class SuggestionForm(forms.Form):
    DECISIONS = [
        ("keep", "decide later"),
        ("confirm", "add as a victim"),
        ("dismiss", "not a victim"),
    ]
    decision = forms.ChoiceField(choices=DECISIONS, initial="keep", widget=forms.RadioSelect)


class RecipientForm(forms.Form):
    esp_id = _text("ESP id", max_length=100)
    screen_name = _text(max_length=150)
    email = forms.EmailField(label="E-mail", required=False)
    additional_info = _text(max_length=2000, area=True)


class FileEntryForm(forms.Form):
    relevance = forms.ChoiceField(choices=_choices(enumeration("fileRelevance")))
    classification = forms.ChoiceField(
        label="Industry classification",
        required=False,
        choices=_choices(enumeration("fileClassification"), "(not classified)"),
    )
    annotations = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, _words(name)) for name in flags("fileAnnotations")],
    )
    publicly_available = forms.BooleanField(required=False)
    viewed_by_esp = forms.BooleanField(required=False, label="A person here viewed it")
    additional_info = _text(max_length=2000, area=True)


def _formset(form, *, extra=1):
    return forms.formset_factory(form, extra=extra, can_delete=extra > 0)


# The repeating parts: draft key -> (formset, its heading on the page).
FORMSETS = {
    "reported_people": (_formset(PersonForm), "Reported people"),
    "ip_events": (_formset(IpEventForm), "IP capture events of the reported people"),
    "suggested_victims": (
        _formset(SuggestionForm, extra=0),
        "Suggested victims (from our data; not sent unless added)",
    ),
    "victims": (_formset(VictimForm), "Victims"),
    "intended_recipients": (_formset(RecipientForm), "Intended recipients"),
    "files": (_formset(FileEntryForm, extra=0), "Files"),
}
_DATES = {"ip_events": ("date_time",)}


def _initial(name: str, rows: list[dict]) -> list[dict]:
    if name == "suggested_victims":
        return [{"decision": "keep"} for _ in rows]
    dates = _DATES.get(name, ())
    return [{k: _when(v) if k in dates else v for k, v in row.items()} for row in rows]


class DraftEditor:
    """The draft's form and formsets together: bound to a POST or showing the saved draft.

    The saved draft gives what the rows are about (the files' items, the suggestions' keys):
    a POST only says what legal staff changed. `disabled` shows it read-only."""

    def __init__(self, draft: dict, data=None, *, disabled: bool = False, item_labels=None):
        self.draft = draft
        self.item_labels = item_labels or {}
        self.top_errors: list[str] = []
        initial = {**draft, "incident_date_time": _when(draft.get("incident_date_time"))}
        self.form = DraftForm(data, initial=initial, prefix="draft")
        self.formsets = {
            name: formset(data, initial=_initial(name, draft.get(name, [])), prefix=name)
            for name, (formset, _) in FORMSETS.items()
        }
        self._rows: dict[str, list[int]] = {}
        if disabled:
            for form in self.forms():
                for field in form.fields.values():
                    field.disabled = True

    def forms(self):
        yield self.form
        for formset in self.formsets.values():
            yield from formset.forms

    def parts(self):
        """(name, label, formset, [(form, what the row is about)]) for the template: the files
        and the suggested victims are described from the saved draft."""
        for name, (_, label) in FORMSETS.items():
            formset = self.formsets[name]
            saved = self.draft.get(name, [])
            about = [self._about(name, saved[i]) if i < len(saved) else "" for i in
                     range(len(formset.forms))]  # fmt: skip
            yield name, label, formset, list(zip(formset.forms, about, strict=True))

    def _about(self, name: str, row: dict) -> str:
        if name == "files":
            return self.item_labels.get(row.get("item"), f"evidence #{row.get('item')}")
        if name == "suggested_victims":
            age = row.get("age")
            band = dict(AgeBand.choices).get(row.get("age_band"), "")
            told = f"age {age}" if age is not None else f"age band {band or 'unknown'}"
            return f"{row.get('esp_id')}, {told}: {'; '.join(row.get('sources', []))}"
        return ""

    def is_valid(self) -> bool:
        valid = self.form.is_valid()
        each = [formset.is_valid() for formset in self.formsets.values()]  # errors of all
        valid = all(each) and valid
        for name in ("files", "suggested_victims"):
            if self.formsets[name].total_form_count() != len(self.draft.get(name, [])):
                self.top_errors.append(
                    "The case's evidence or suggestions changed while you edited: reload the "
                    "page and make your changes again."
                )
                valid = False
        return valid

    def _kept(self, name: str):
        for index, form in enumerate(self.formsets[name].forms):
            data = form.cleaned_data
            if data and not data.get("DELETE"):
                yield index, form

    def draft_data(self) -> dict:
        """What legal staff entered, in the draft's shape (legal/draft.py)."""
        data = self.form.row()
        for name in ("reported_people", "ip_events", "victims", "intended_recipients"):
            rows, self._rows[name] = [], []
            for index, form in self._kept(name):
                row = form.row() if hasattr(form, "row") else dict(form.cleaned_data)
                row.pop("DELETE", None)
                rows.append(row)
                self._rows[name].append(index)
            data[name] = rows
        saved_files = self.draft.get("files", [])
        data["files"] = [
            {**dict(form.cleaned_data), "item": saved_files[index]["item"]}
            for index, form in enumerate(self.formsets["files"].forms)
        ]
        self._rows["files"] = list(range(len(saved_files)))
        return data

    def suggestion_keys(self, decision: str) -> list[str]:
        saved = self.draft.get("suggested_victims", [])
        return [
            saved[index]["key"]
            for index, form in enumerate(self.formsets["suggested_victims"].forms)
            if form.cleaned_data.get("decision") == decision
        ]

    def add_problems(self, problems) -> None:
        """Put each problem next to the field it names ("incident_type", "ip_events.2.date_time"
        ...); a problem naming no field we show goes to the top of the form. Works on the
        refused POST and on the saved draft shown unbound (its rows are the draft's rows)."""
        for problem in problems:
            message = _friendly(problem.message)
            if problem.field.count(".") >= 2:
                name, index, field = problem.field.split(".", 2)
                forms_ = self.formsets[name].forms if name in self.formsets else []
                rows = self._rows.get(name, range(len(forms_)))
                if index.isdigit() and int(index) < len(rows):
                    form = forms_[rows[int(index)]]
                    _note(form, field if field in form.fields else None, message)
                    continue
            elif problem.field in self.form.fields:
                _note(self.form, problem.field, message)
                continue
            self.top_errors.append(f"{problem.path}: {message}")


_EXPECTED = re.compile(r"Expected is \( ?([A-Za-z]+)")


def _friendly(message: str) -> str:
    """lxml's words for a rule of NCMEC's schema, said plainly (its own words otherwise)."""
    if not message.startswith("Element "):  # one of our own checks
        return message
    if "[facet 'enumeration']" in message:
        return "NCMEC's schema accepts only the values listed here."
    if "xs:dateTime" in message:
        return "NCMEC's schema needs a date and a time here."
    expected = _EXPECTED.search(message)
    if expected:
        return f"NCMEC's schema requires {_words(expected.group(1))} here."
    return f"NCMEC's schema refuses this: {message}"


def _note(form: forms.Form, field: str | None, message: str) -> None:
    """An error next to a field: add_error on a bound form; on an unbound one (the saved draft
    shown as it is) the error list the template reads, as Form.add_error would fill it."""
    if form.is_bound:
        form.add_error(field, message)
        return
    if form._errors is None:
        form._errors = ErrorDict()
    key = field or NON_FIELD_ERRORS
    if key not in form._errors:
        if field is None:
            form._errors[key] = form.error_class(error_class="nonfield", renderer=form.renderer)
        else:
            form._errors[key] = form.error_class(
                renderer=form.renderer, field_id=form[field].auto_id
            )
    form._errors[key].append(message)
