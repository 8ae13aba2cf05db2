from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from reports.models import Integration, hash_token


class IntegrationTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <token>`, one token per platform integration, stored hashed."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Give the header as 'Authorization: Token <token>'."
            )
        try:
            token = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        integration = Integration.objects.filter(
            token_hash=hash_token(token), is_active=True
        ).first()
        if integration is None:
            raise exceptions.AuthenticationFailed("The token is not valid.")
        return integration, None

    def authenticate_header(self, request):
        return self.keyword


class IntegrationTokenScheme(OpenApiAuthenticationExtension):
    target_class = IntegrationTokenAuthentication
    name = "IntegrationToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Token-based authentication: `Token <token>`.",
        }
