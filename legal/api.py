"""The platform answers a request for an account's records: POST /api/v1/records/.

The request reached the platform's webhook as an "account_records_request" (legal.freeze); the
answer names it by its id, with an idempotency key, and carries the records: IP events, device
identifiers, messages. Stored by legal.records.receive_answer (one evidence item, all or
nothing). The words here are the platform's: they say what to send, never why.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from reports.api.base import IntakeAPIView, error_responses
from reports.api.serializers import check_platform_datetime

from . import records

MAX_ID = 2**63 - 1
EVENTS = list(records.IP_EVENT_NAMES)


def _items(child, help_text: str):
    return serializers.ListField(
        child=child,
        required=False,
        max_length=settings.BAKKME_API_RECORDS_MAX_ITEMS,
        help_text=f"{help_text} At most BAKKME_API_RECORDS_MAX_ITEMS "
        f"({settings.BAKKME_API_RECORDS_MAX_ITEMS}).",
    )


class RecordsIpEventSerializer(serializers.Serializer):
    ip = serializers.IPAddressField(protocol="both", help_text="IPv4 or IPv6 address.")
    at = serializers.DateTimeField(help_text="When the account used the address.")
    event = serializers.ChoiceField(choices=EVENTS, help_text="What the account did.")
    port = serializers.IntegerField(required=False, min_value=0, max_value=65535)

    def validate_at(self, value):
        return check_platform_datetime(value, "at")


class RecordsDeviceSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=100, help_text="IMEI, IDFA, a fingerprint ...")
    value = serializers.CharField(max_length=500)
    event = serializers.ChoiceField(choices=EVENTS, required=False)
    at = serializers.DateTimeField(required=False)

    def validate_at(self, value):
        return check_platform_datetime(value, "at")


class RecordsMessageSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text="When the message was sent.")
    to = serializers.CharField(max_length=200, help_text="The recipient account or chat id.")
    text = serializers.CharField(max_length=100_000, allow_blank=True, trim_whitespace=False)
    conversation = serializers.CharField(max_length=200, required=False, allow_blank=True)
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.CharField(max_length=200, help_text="The sender account id.")

    def validate_at(self, value):
        return check_platform_datetime(value, "at")


class RecordsSerializer(serializers.Serializer):
    ip_addresses = _items(RecordsIpEventSerializer(), "The account's IP events in the period.")
    device_identifiers = _items(RecordsDeviceSerializer(), "The account's device ids.")
    communication_logs = _items(RecordsMessageSerializer(), "The account's messages in the period.")


class RecordsAnswerInSerializer(serializers.Serializer):
    request = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="The id of the account_records_request."
    )
    idempotency_key = serializers.CharField(
        max_length=200, help_text="The same on every retry of this answer."
    )
    records = RecordsSerializer(help_text="Empty lists (or none) where there is nothing.")


class RecordsStoredSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="answer.pk", help_text="The answer's number.")
    request = serializers.IntegerField(source="answer.request_id")
    sha256 = serializers.CharField(
        source="answer.item.sha256", help_text="SHA-256 of the answer as stored."
    )
    received = serializers.DictField(
        child=serializers.IntegerField(), source="answer.counts", help_text="Entries per type."
    )


class RecordsAnswerView(IntakeAPIView):
    """The platform's answer to an account_records_request."""

    body_shape = "one answer, a JSON object"

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BATCH_BODY_BYTES

    @extend_schema(
        request=RecordsAnswerInSerializer,
        responses={
            201: RecordsStoredSerializer,
            200: RecordsStoredSerializer,
            404: OpenApiResponse(
                OpenApiTypes.OBJECT, description="No such request for this integration."
            ),
            409: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The idempotency key was used for a different answer to the "
                "request (under `idempotency_key`).",
            ),
            **error_responses(400, 401, 413, 415),
        },
        description="Answer an account_records_request with the records it asked for. 201 "
        "when stored; 200 with the same body when this request and idempotency key were seen "
        "with the same answer; 409 when the key was used for a different answer; 404 for a "
        "request this integration was not sent. A refused answer stores nothing.",
    )
    def post(self, request):
        body = self.body_object(request)
        incoming = RecordsAnswerInSerializer(data=body)
        if not incoming.is_valid():
            return Response(incoming.errors, status=status.HTTP_400_BAD_REQUEST)
        data = incoming.validated_data
        try:
            result = records.receive_answer(
                request.user,
                request_id=data["request"],
                idempotency_key=data["idempotency_key"],
                body=body,
                records=data["records"],
            )
        except records.NoSuchRequest:
            raise NotFound("No such request.") from None
        except records.AnswerConflict as exc:
            return Response({"idempotency_key": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(RecordsStoredSerializer(result).data, status=code)
