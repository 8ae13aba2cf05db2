"""What every view of the intake API shares: the body limit, and the error answers it declares.

The body limit is checked here, from the declared length (Content-Length), before anything
reads the body: DRF reads a JSON body whole (request.body) before its parser sees it, and Django
refuses one over DATA_UPLOAD_MAX_MEMORY_SIZE with an exception of its own. A test walks the API's
URLs and fails for a view that is not an IntakeAPIView.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.views import APIView

from .parsers import body_too_large


class IntakeAPIView(APIView):
    """A view of the intake API: a body declared longer than the view takes is refused (413)
    unread, after authentication (so an unknown caller learns nothing but 401); a body that is
    not an object is refused (400) with one message saying what the body is."""

    #: What the body is, for the answer to one that is null, a number, a string or a list.
    body_shape = "a JSON object"

    def body_object(self, request) -> dict:
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": [f"The body is {self.body_shape}."]})
        return data

    @property
    def max_body_bytes(self) -> int:
        """The longest JSON body this view takes (LimitedJSONParser reads the same limit)."""
        return settings.BAKKME_API_MAX_BODY_BYTES

    @property
    def max_multipart_bytes(self) -> int | None:
        """The longest multipart body, or None when the view's upload handler refuses an
        over-long upload itself (from the declared length and again as the file streams in)."""
        return None

    def body_limit(self, request) -> int | None:
        if (request.content_type or "").lower().startswith("multipart/"):
            return self.max_multipart_bytes
        return self.max_body_bytes

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        limit = self.body_limit(request)
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            raise ParseError("The Content-Length header is not a number.")
        if limit is not None and int(declared) > limit:
            raise body_too_large(limit)


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


_ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Refused: each field's messages under its name, `non_field_errors` for the "
        "body as a whole, or `detail` when the body is not valid JSON. Nothing was stored.",
    ),
    401: OpenApiResponse(DetailSerializer, description="No token, or not a valid one."),
    413: OpenApiResponse(
        DetailSerializer, description="The body is larger than the limit named in `detail`."
    ),
    415: OpenApiResponse(
        DetailSerializer, description="A content type this endpoint does not take."
    ),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The declared answers for the given error codes, the same on every endpoint."""
    return {code: _ERRORS[code] for code in codes}
