from csp.constants import UNSAFE_INLINE as CSP_UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from reports.actions import IdempotencyConflict, build_report, ingest_reports, payload_fingerprint
from reports.events import EventConflict, build_event, ingest_events
from reports.events import fingerprint as event_fingerprint

from .base import IntakeAPIView, error_responses
from .serializers import (
    BatchInSerializer,
    BatchResultSerializer,
    EventBatchInSerializer,
    EventBatchSerializer,
    EventInSerializer,
    EventResultSerializer,
    ReportAcceptedSerializer,
    ReportBatchSerializer,
    ReportInSerializer,
)

KEY_CONFLICT = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The idempotency key was used for a different body (under `idempotency_key`).",
)


def _validated_report(integration, payload, serializer=None):
    """An unsaved Report, or the field errors.

    A batch passes one serializer for all its items (as DRF's ListSerializer does with its
    child): building a serializer deep-copies its fields, which costs more than validating.
    """
    if not isinstance(payload, dict):
        return None, {"non_field_errors": ["Each report is a JSON object."]}
    serializer = serializer or ReportInSerializer()
    try:
        data = serializer.run_validation(payload)
    except exceptions.ValidationError as exc:
        return None, as_serializer_error(exc)
    return build_report(integration, data, payload_fingerprint(payload)), None


class ReportCreateView(IntakeAPIView):
    """Take one report from the platform."""

    body_shape = "one report, a JSON object"

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BODY_BYTES

    @extend_schema(
        request=ReportInSerializer,
        responses={
            201: ReportAcceptedSerializer,
            200: ReportAcceptedSerializer,
            409: KEY_CONFLICT,
            **error_responses(400, 401, 413, 415),
        },
        description="201 when stored; 200 with the same body when the idempotency key was seen; "
        "409 when the key was used for a different report.",
    )
    def post(self, request):
        report, errors = _validated_report(request.user, self.body_object(request))
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        (result,) = ingest_reports(request.user, [report])
        if isinstance(result, IdempotencyConflict):
            return Response({"idempotency_key": [str(result)]}, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result.as_response(), status=code)


class ReportBatchView(IntakeAPIView):
    """Take up to BAKKME_API_BATCH_MAX_REPORTS reports; the answer says what became of each."""

    body_shape = 'a JSON object, {"reports": [...]}'

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BATCH_BODY_BYTES

    @extend_schema(
        request=ReportBatchSerializer,
        responses={200: BatchResultSerializer, **error_responses(400, 401, 413, 415)},
        description="200 with one result per report, in order: each stored (201), seen before "
        "(200), invalid (400, with its errors; null or any other non-object included) or a key "
        "conflict (409). 400 for the batch as a whole: not an object with a list of 1 to "
        "BAKKME_API_BATCH_MAX_REPORTS `reports`.",
    )
    def post(self, request):
        batch = BatchInSerializer(data=self.body_object(request))
        batch.is_valid(raise_exception=True)
        results: list[dict | None] = []
        valid = []
        child = ReportInSerializer()
        for index, payload in enumerate(batch.validated_data["reports"]):
            report, errors = _validated_report(request.user, payload, child)
            if errors:
                results.append({"index": index, "status": 400, "errors": errors})
            else:
                results.append(None)
                valid.append((index, report))
        outcomes = ingest_reports(request.user, [report for _, report in valid]) if valid else []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, IdempotencyConflict):
                results[index] = {
                    "index": index,
                    "status": 409,
                    "errors": {"idempotency_key": [str(outcome)]},
                }
            else:
                results[index] = {
                    "index": index,
                    "status": 201 if outcome.created else 200,
                    **outcome.as_response(),
                }
        return Response({"results": results}, status=status.HTTP_200_OK)


@method_decorator(csp_update({"style-src": CSP_UNSAFE_INLINE}), name="dispatch")
class ApiDocsView(SpectacularSwaggerSplitView):
    """The API docs page; a browser without a session is sent to the staff login first.

    The split view serves Swagger UI's start-up script from this URL (?script) instead of inline:
    the Content-Security-Policy allows no inline script. Swagger UI styles its elements inline,
    so this page alone allows inline styles."""

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated) and not self.request.headers.get(
            "Authorization"
        ):
            return redirect_to_login(self.request.get_full_path(), reverse("admin:login"))
        return super().handle_exception(exc)


class EventCreateView(IntakeAPIView):
    """Take account events from the platform: one event, or {"events": [...]}.

    All or nothing: any invalid event (400) or reused key (409) stores none of them.
    """

    body_shape = 'one event (a JSON object) or {"events": [...]}'

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BATCH_BODY_BYTES

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="EventsIn",
            serializers=[EventInSerializer, EventBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={
            201: EventResultSerializer,
            200: EventResultSerializer,
            409: KEY_CONFLICT,
            **error_responses(400, 401, 413, 415),
        },
        description='One event, or {"events": [...]} with up to BAKKME_API_EVENTS_MAX events. '
        "201 when any event was stored; 200 when every key was seen before (same body). "
        "400 stores none: one event's field errors, or for several "
        '{"events": [{"index": i, "errors": {...}}]} naming each invalid one.',
    )
    def post(self, request):
        data = self.body_object(request)
        single = "events" not in data
        if single:
            payloads = [data]
        else:
            batch = EventBatchInSerializer(data=data)
            batch.is_valid(raise_exception=True)
            payloads = batch.validated_data["events"]
        child = EventInSerializer()
        events, errors = [], {}
        for index, payload in enumerate(payloads):
            if not isinstance(payload, dict):
                errors[index] = {"non_field_errors": ["Each event is a JSON object."]}
                continue
            try:
                valid = child.run_validation(payload)
            except exceptions.ValidationError as exc:
                errors[index] = as_serializer_error(exc)
                continue
            events.append(build_event(request.user, valid, event_fingerprint(payload)))
        if errors:
            if single:
                return Response(errors[0], status=status.HTTP_400_BAD_REQUEST)
            body = {"events": [{"index": i, "errors": e} for i, e in errors.items()]}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        try:
            results = ingest_events(request.user, events)
        except EventConflict as exc:
            return Response({"idempotency_key": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        body = {
            "results": [
                {"index": i, "id": r.event.pk, "status": 201 if r.created else 200}
                for i, r in enumerate(results)
            ]
        }
        created = any(r.created for r in results)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
