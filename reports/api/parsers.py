import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def body_too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The body is larger than the limit of {limit:,} bytes.")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def nested_deeper_than(json_text: str, limit: int) -> bool:
    """Whether the arrays and objects of a valid JSON text nest more than `limit` levels
    (`{}` is 1, `{"a": []}` is 2).

    Read from the text at the speed of bytes methods (walking the parsed value in Python takes
    seconds on 8 MiB of empty lists), and nothing recurses: escapes go, then strings (every quote
    left opens or closes one), then everything but the brackets; each pass then removes the
    innermost pairs, and a bracket left after `limit` passes is deeper."""
    raw = json_text.encode("utf-8", "surrogatepass")
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(raw.split(b'"')[::2])
    # Valid JSON closes what it opens, so {} may count as [] for the depth.
    brackets = outside_strings.translate(_CURLY_AS_SQUARE, _NOT_A_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


class LimitedJSONParser(JSONParser):
    """Strict JSON (no NaN or Infinity), at most the view's `max_body_bytes` long and
    BAKKME_API_MAX_JSON_DEPTH levels deep.

    A declared length over the limit is refused before the body is read, in
    reports.api.base.IntakeAPIView; the parser counts what it is given all the same. Deeper
    nesting than any payload of the API needs is refused because Python's json, copy and the
    serializers recurse, and at about a thousand levels that recursion fails."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        view = parser_context.get("view")
        limit = getattr(view, "max_body_bytes", settings.BAKKME_API_MAX_BODY_BYTES)
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise body_too_large(limit)
        depth = settings.BAKKME_API_MAX_JSON_DEPTH
        too_deep = ParseError(f"The body is not valid JSON: nested deeper than {depth} levels.")
        try:
            text = body.decode(parser_context.get("encoding", settings.DEFAULT_CHARSET))
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise too_deep from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
        if nested_deeper_than(text, depth):
            raise too_deep
        return data
