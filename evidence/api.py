"""The platform sends a report's media: POST /api/v1/reports/{id}/media/ (multipart).

The file is streamed to a temporary file on disk by evidence.forms.EvidenceUploadHandler (never
whole in memory, stopped at BAKKME_EVIDENCE_MAX_BYTES) and from there into the vault. The API's
JSON body limit does not apply: this view parses multipart only, and Django's
DATA_UPLOAD_MAX_MEMORY_SIZE counts the form's fields, not its files.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from reports.api.base import IntakeAPIView, error_responses
from reports.api.parsers import RequestTooLarge
from reports.models import Report

from . import vault, viewing
from .forms import UploadTooLarge, too_large_message, use_evidence_upload_handler
from .models import EvidenceKind, EvidenceProblem


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file part of the multipart body (documented as binary, not as a URL)."""


class MediaInSerializer(serializers.Serializer):
    file = UploadField(allow_empty_file=False, help_text="The file, as the platform holds it.")
    kind = serializers.ChoiceField(
        choices=EvidenceKind.choices, required=False, default=EvidenceKind.MEDIA
    )


class MediaStoredSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The evidence item's number.")
    case = serializers.IntegerField(source="case_id")
    kind = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    md5 = serializers.CharField()
    media_type = serializers.CharField(help_text="Detected from the bytes, not from the name.")
    pdq = serializers.SerializerMethodField(help_text="PDQ hash (64 hex digits) of an image.")
    pdq_quality = serializers.IntegerField(allow_null=True)
    problem = serializers.ChoiceField(
        choices=EvidenceProblem.choices,
        help_text="Empty, or why an image could not be analysed (it is preserved all the same).",
    )

    def get_pdq(self, item) -> str | None:
        return item.pdq or None


class ReportMediaView(IntakeAPIView):
    """Take one media file of a report the calling integration sent.

    Its upload handler refuses an over-long upload itself (max_multipart_bytes stays None)."""

    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        use_evidence_upload_handler(request)  # before DRF or anything reads the body
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": MediaInSerializer},
        responses={
            201: MediaStoredSerializer,
            400: OpenApiResponse(description="Field errors, e.g. no `file`."),
            404: OpenApiResponse(description="No such report of this integration."),
            413: OpenApiResponse(description="The file is larger than the limit."),
            **error_responses(401, 415),
        },
        description="Preserve a file of the report as evidence of its case: stored encrypted, "
        "hashed (SHA-256, MD5, PDQ for images) and typed from its bytes. A corrupt image or a "
        "decompression bomb is preserved and flagged in `problem` (201).",
    )
    def post(self, request, report_id: int):
        report = (
            Report.objects.filter(pk=report_id, integration=request.user)
            .select_related("case")
            .first()
        )
        if report is None:
            raise NotFound("No such report.")
        try:
            incoming = MediaInSerializer(data=request.data)
        except UploadTooLarge as exc:
            raise RequestTooLarge(str(exc)) from None
        if not incoming.is_valid():
            return Response(incoming.errors, status=status.HTTP_400_BAD_REQUEST)
        try:
            item = viewing.collect_upload(
                incoming.validated_data["file"],
                case=report.case,
                kind=incoming.validated_data["kind"],
                report=report,
                integration=request.user,
            )
        except vault.EvidenceTooLarge:
            raise RequestTooLarge(too_large_message()) from None
        return Response(MediaStoredSerializer(item).data, status=status.HTTP_201_CREATED)
