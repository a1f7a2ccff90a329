"""Teach drf-spectacular how our bearer tokens look in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "parking.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The token from POST /api/v1/auth/token.",
        }


class GateKeyScheme(OpenApiAuthenticationExtension):
    target_class = "lots.authentication.GateKeyAuthentication"
    name = "gateKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A gate device's key (`manage.py gate_key create`).",
        }
