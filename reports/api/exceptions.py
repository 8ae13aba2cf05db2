import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .parsers import body_too_large

logger = logging.getLogger(__name__)


def _as_api_exception(exc):
    """Django's own refusals of a request body, as the API's answers.

    IntakeAPIView refuses an over-long body from its declared length first; these come from
    Django's caps on the part of a multipart body that is held in memory (its fields, not its
    files): DATA_UPLOAD_MAX_MEMORY_SIZE, _NUMBER_FIELDS and _NUMBER_FILES."""
    if isinstance(exc, RequestDataTooBig):
        return body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, TooManyFieldsSent):
        return ParseError(
            f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields."
        )
    if isinstance(exc, TooManyFilesSent):
        return ParseError(f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files.")
    return exc


def exception_handler(exc, context):
    """DRF's answers for API errors; anything else is logged and answered as JSON, never HTML."""
    response = drf_exception_handler(_as_api_exception(exc), context)
    if response is None:
        logger.exception("Unhandled error in the API", exc_info=exc)
        response = Response(
            {"detail": "Internal error; the request was not stored."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return response
