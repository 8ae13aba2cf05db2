"""POST /api/v1/match/: which bank entries a file or a hash matches (HMA's lookup, ours).

A multipart `file` is hashed (MD5, SHA-256, PDQ for an image) in memory and never stored; or
JSON {"signal_type": "pdq"|"md5"|"sha256", "hash": "<hex>"}. Matching is reports/matching.py.
"""

from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from detection import matching
from detection.hashbanks import normalise_hash
from reports.api.base import IntakeAPIView, error_responses
from reports.api.parsers import LimitedJSONParser

from ..models import SignalType


@extend_schema_field(OpenApiTypes.BINARY)
class _UploadField(serializers.FileField):
    pass


class MatchInSerializer(serializers.Serializer):
    file = _UploadField(required=False, allow_empty_file=False)
    signal_type = serializers.ChoiceField(choices=SignalType.choices, required=False)
    hash = serializers.CharField(required=False, max_length=64)

    def validate_file(self, value):
        if value.size > settings.BAKKME_MATCH_MAX_FILE_BYTES:
            raise serializers.ValidationError(
                f"The file is larger than {settings.BAKKME_MATCH_MAX_FILE_BYTES} bytes."
            )
        return value

    def validate(self, data):
        if "file" in data:
            if "hash" in data or "signal_type" in data:
                raise serializers.ValidationError("Send a file or a hash, not both.")
            return data
        missing = {f: ["This field is required."] for f in ("signal_type", "hash") if f not in data}
        if missing:
            raise serializers.ValidationError(missing)
        try:
            data["hash"] = normalise_hash(data["signal_type"], data["hash"])
        except ValueError as exc:
            raise serializers.ValidationError({"hash": [str(exc)]}) from None
        return data


class MatchOutSerializer(serializers.Serializer):
    bank = serializers.CharField()
    entry = serializers.IntegerField()
    signal_type = serializers.CharField()
    distance = serializers.IntegerField(help_text="Hamming distance (0 for exact hashes).")


class MatchesSerializer(serializers.Serializer):
    matches = MatchOutSerializer(many=True)


class InMemoryUpload(MemoryFileUploadHandler):
    """The file to match stays in memory, whatever its size: it may be CSAM, and Django's
    default handlers write an upload over FILE_UPLOAD_MAX_MEMORY_SIZE to a plaintext temporary
    file. The view refuses a body over its limit from the declared length first, so memory is
    bounded by BAKKME_MATCH_MAX_FILE_BYTES."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.activated = True


class MatchView(IntakeAPIView):
    """Match a file or a hash against the enabled hash banks."""

    parser_classes = [LimitedJSONParser, MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers = [InMemoryUpload(request)]  # before anything reads the body
        return super().initialize_request(request, *args, **kwargs)

    body_shape = 'a JSON object, {"signal_type": ..., "hash": ...}, or a form with a file'

    @property
    def max_multipart_bytes(self):
        return settings.BAKKME_MATCH_MAX_FILE_BYTES + settings.BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES

    @extend_schema(
        request=MatchInSerializer,
        responses={200: MatchesSerializer, **error_responses(400, 401, 413, 415)},
    )
    def post(self, request):
        given = MatchInSerializer(data=self.body_object(request))
        if not given.is_valid():
            return Response(given.errors, status=status.HTTP_400_BAD_REQUEST)
        data = given.validated_data
        if "file" in data:
            found = matching.match_file(data["file"].read())
        else:
            found = matching.match_query(data["signal_type"], data["hash"])
        return Response({"matches": [m.as_json() for m in found]})
