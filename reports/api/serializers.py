from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from bakkme_safety.policy import AgeBand, Category, Priority, Source, Surface

# --- Dates the platform gives ------------------------------------------------------------------


def check_platform_datetime(value, name: str):
    """A moment on the platform (received_at, occurred_at): not before BAKKME_API_MAX_PAST_DAYS
    ago, not more than BAKKME_RECEIVED_AT_MAX_SKEW_SECONDS ahead of our clock."""
    now = timezone.now()
    skew = settings.BAKKME_RECEIVED_AT_MAX_SKEW_SECONDS
    if value > now + timedelta(seconds=skew):
        raise serializers.ValidationError(
            f"{name} is in the future (more than {skew} seconds ahead of our clock)."
        )
    days = settings.BAKKME_API_MAX_PAST_DAYS
    earliest = now - timedelta(days=days)
    if value < earliest:
        raise serializers.ValidationError(
            f"{name} is before {earliest:%Y-%m-%d %H:%M} UTC: the API takes nothing older "
            f"than {days} days."
        )
    return value


def _tomorrow():
    # A date is the platform's local date: tomorrow in UTC is already today east of it.
    return (timezone.now() + timedelta(days=1)).date()


def _years_before(day, years: int):
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def check_platform_date(value, name: str):
    """A day on the platform (an account's created_at): within the same bounds, by the day."""
    if value is None:
        return value
    if value > _tomorrow():
        raise serializers.ValidationError(f"{name} is in the future.")
    days = settings.BAKKME_API_MAX_PAST_DAYS
    earliest = (timezone.now() - timedelta(days=days)).date()
    if value < earliest:
        raise serializers.ValidationError(
            f"{name} is before {earliest:%Y-%m-%d}: the API takes nothing older than {days} days."
        )
    return value


class ReportedAccountSerializer(serializers.Serializer):
    platform_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    username = serializers.CharField(max_length=150, required=False, allow_blank=True)
    date_of_birth = serializers.DateField(required=False, allow_null=True)
    age_band = serializers.ChoiceField(choices=AgeBand.choices, required=False, allow_blank=True)
    created_at = serializers.DateField(
        required=False, allow_null=True, help_text="When the account was created."
    )

    def validate_date_of_birth(self, value):
        if value is None:
            return value
        if value > _tomorrow():
            raise serializers.ValidationError("The date of birth is in the future.")
        years = settings.BAKKME_API_MAX_PERSON_AGE_YEARS
        earliest = _years_before(timezone.now().date(), years)
        if value < earliest:
            raise serializers.ValidationError(
                f"The date of birth is before {earliest:%Y-%m-%d}: nobody is older than "
                f"{years} years."
            )
        return value

    def validate_created_at(self, value):
        return check_platform_date(value, "created_at")


class ContentSerializer(serializers.Serializer):
    platform_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    type = serializers.SlugField(max_length=32, required=False, allow_blank=True)
    text = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100_000,
        help_text="The reported content's text (caption, comment or message): scanned for the "
        "lexicon's terms and blocked links.",
    )
    url = serializers.URLField(max_length=2000, required=False, allow_blank=True)


class ReporterSerializer(serializers.Serializer):
    platform_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    anonymous = serializers.BooleanField(required=False, default=False)
    contact = serializers.CharField(
        max_length=254,
        required=False,
        allow_blank=True,
        help_text="For acknowledgments; never shown to the reported party.",
    )

    def validate(self, attrs):
        if attrs.get("anonymous") and attrs.get("platform_id"):
            raise serializers.ValidationError(
                {"platform_id": ["An anonymous reporter has no platform_id."]}
            )
        return attrs


class ReportInSerializer(serializers.Serializer):
    """One report from the platform."""

    idempotency_key = serializers.CharField(max_length=200)
    source = serializers.ChoiceField(choices=Source.choices)
    category = serializers.ChoiceField(choices=Category.choices)
    surface = serializers.ChoiceField(choices=Surface.choices)
    received_at = serializers.DateTimeField(help_text="When the platform received the report.")
    reported_account = ReportedAccountSerializer(required=False)
    content = ContentSerializer(required=False)
    reporter = ReporterSerializer(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=100_000)

    def validate_received_at(self, value):
        return check_platform_datetime(value, "received_at")

    def validate(self, attrs):
        account = attrs.get("reported_account") or {}
        content = attrs.get("content") or {}
        if not account.get("platform_id") and not content.get("platform_id"):
            raise serializers.ValidationError(
                {
                    "reported_account": [
                        "Give reported_account.platform_id, or content.platform_id when "
                        "the account is not known: a report needs a subject."
                    ]
                }
            )
        return attrs


class ReportAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    case = serializers.IntegerField()
    priority = serializers.ChoiceField(choices=[p.label for p in Priority])
    due_at = serializers.DateTimeField()


class BatchInSerializer(serializers.Serializer):
    """A batch as it is checked: any items (even null), each report is answered on its own."""

    reports = serializers.ListField(child=serializers.JSONField(allow_null=True), allow_empty=False)

    def validate_reports(self, value):
        limit = settings.BAKKME_API_BATCH_MAX_REPORTS
        if len(value) > limit:
            raise serializers.ValidationError(
                f"A batch holds at most {limit} reports; this one has {len(value)}."
            )
        return value


class ReportBatchSerializer(serializers.Serializer):
    """A batch as the schema documents it: a list of reports."""

    reports = ReportInSerializer(
        many=True,
        allow_empty=False,
        help_text="Up to BAKKME_API_BATCH_MAX_REPORTS reports; each is answered on its own.",
    )


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(
        help_text="201 stored, 200 repeated key, 400 invalid, 409 key conflict"
    )
    id = serializers.IntegerField(required=False)
    case = serializers.IntegerField(required=False)
    priority = serializers.CharField(required=False)
    due_at = serializers.DateTimeField(required=False)
    errors = serializers.DictField(required=False)


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)


# --- Account events (POST /api/v1/events/) -----------------------------------------------------

IDENTIFIER_EVENT_TYPES = ("account_created", "login")
TARGETED_EVENT_TYPES = ("message_sent", "follow_request", "gift_or_payment", "group_invite")


class EventPartySerializer(serializers.Serializer):
    platform_id = serializers.CharField(max_length=100)
    age = serializers.IntegerField(min_value=0, max_value=150, required=False, allow_null=True)
    age_band = serializers.ChoiceField(choices=AgeBand.choices, required=False, allow_blank=True)


class EventIdentifiersSerializer(serializers.Serializer):
    device_fingerprint = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    ip = serializers.IPAddressField(required=False, allow_blank=True)


class EventInSerializer(serializers.Serializer):
    """One account event from the platform."""

    idempotency_key = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(
        choices=[
            "message_sent",
            "follow_request",
            "gift_or_payment",
            "group_invite",
            "account_created",
            "login",
        ]
    )
    occurred_at = serializers.DateTimeField()
    actor = EventPartySerializer()
    target = EventPartySerializer(required=False, allow_null=True)
    mutual_followers = serializers.BooleanField(required=False, allow_null=True, default=None)
    surface = serializers.ChoiceField(choices=Surface.choices, required=False, allow_blank=True)
    identifiers = EventIdentifiersSerializer(required=False)

    def validate_occurred_at(self, value):
        return check_platform_datetime(value, "occurred_at")

    def validate(self, attrs):
        kind = attrs["type"]
        if kind in TARGETED_EVENT_TYPES and not attrs.get("target"):
            raise serializers.ValidationError({"target": [f"A {kind} event needs a target."]})
        if attrs.get("identifiers") and kind not in IDENTIFIER_EVENT_TYPES:
            raise serializers.ValidationError(
                {"identifiers": ["Only account_created and login events carry identifiers."]}
            )
        return attrs


class EventBatchInSerializer(serializers.Serializer):
    """Events as they are checked: any items (even null), each refused with its index."""

    events = serializers.ListField(child=serializers.JSONField(allow_null=True), allow_empty=False)

    def validate_events(self, value):
        limit = settings.BAKKME_API_EVENTS_MAX
        if len(value) > limit:
            raise serializers.ValidationError(
                f"A request holds at most {limit} events; this one has {len(value)}."
            )
        return value


class EventBatchSerializer(serializers.Serializer):
    """Several events as the schema documents them."""

    events = EventInSerializer(
        many=True,
        allow_empty=False,
        help_text="Up to BAKKME_API_EVENTS_MAX events, stored all or none.",
    )


class EventAcceptedSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 stored, 200 repeated key")


class EventResultSerializer(serializers.Serializer):
    results = EventAcceptedSerializer(many=True)
