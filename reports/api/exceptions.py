import logging

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's answers for API errors; anything else is logged and answered as JSON, never HTML."""
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in the API", exc_info=exc)
        response = Response(
            {"detail": "Internal error; the request was not stored."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return response
