from csp.constants import UNSAFE_INLINE as CSP_UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView

from reports.events import EventConflict, build_event, ingest_events
from reports.events import fingerprint as event_fingerprint
from reports.services import IdempotencyConflict, build_report, ingest_reports, payload_fingerprint

from .serializers import (
    BatchInSerializer,
    BatchResultSerializer,
    EventBatchInSerializer,
    EventInSerializer,
    EventResultSerializer,
    ReportAcceptedSerializer,
    ReportInSerializer,
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


class ReportCreateView(APIView):
    """Take one report from the platform."""

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BODY_BYTES

    @extend_schema(
        request=ReportInSerializer,
        responses={201: ReportAcceptedSerializer, 200: ReportAcceptedSerializer},
        description="201 when stored; 200 with the same body when the idempotency key was seen; "
        "409 when the key was used for a different report.",
    )
    def post(self, request):
        report, errors = _validated_report(request.user, request.data)
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        (result,) = ingest_reports(request.user, [report])
        if isinstance(result, IdempotencyConflict):
            return Response({"idempotency_key": [str(result)]}, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result.as_response(), status=code)


class ReportBatchView(APIView):
    """Take up to BAKKME_API_BATCH_MAX_REPORTS reports; the answer says what became of each."""

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BATCH_BODY_BYTES

    @extend_schema(request=BatchInSerializer, responses={200: BatchResultSerializer})
    def post(self, request):
        batch = BatchInSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        results: list[dict | None] = []
        valid = []
        child = ReportInSerializer()
        for index, payload in enumerate(request.data["reports"]):
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


class EventCreateView(APIView):
    """Take account events from the platform: one event, or {"events": [...]}.

    All or nothing: any invalid event (400) or reused key (409) stores none of them.
    """

    @property
    def max_body_bytes(self):
        return settings.BAKKME_API_MAX_BATCH_BODY_BYTES

    @extend_schema(
        request=EventInSerializer,
        responses={201: EventResultSerializer, 200: EventResultSerializer},
        description='One event, or {"events": [...]} with up to BAKKME_API_EVENTS_MAX events. '
        "201 when any event was stored; 200 when every key was seen before (same body).",
    )
    def post(self, request):
        data = request.data
        if isinstance(data, dict) and "events" in data:
            batch = EventBatchInSerializer(data=data)
            batch.is_valid(raise_exception=True)
            payloads = data["events"]
        else:
            payloads = [data]
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
            if len(payloads) == 1 and "events" not in data:
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
