import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class LimitedJSONParser(JSONParser):
    """JSON, refused with 413 past the view's `max_body_bytes` before it is read whole."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        view = parser_context.get("view")
        limit = getattr(view, "max_body_bytes", settings.BAKKME_API_MAX_BODY_BYTES)
        too_large = RequestTooLarge(f"The body is larger than {limit} bytes.")
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise too_large
        try:
            return json.loads(body.decode(parser_context.get("encoding", settings.DEFAULT_CHARSET)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
