"""Gate hardware authenticates with `Authorization: Bearer <gate key>`."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions

from lots.models import GateDevice
from lots.services import gate_touch, hash_key


class GateKeyAuthentication(authentication.BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request) -> tuple[AnonymousUser, GateDevice] | None:
        header = authentication.get_authorization_header(request).split()
        if not header:
            raise exceptions.NotAuthenticated("A gate key is required.")
        if header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed("Use: Authorization: Bearer <gate key>.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Malformed gate key.") from exc
        gate = (
            GateDevice.objects.select_related("lot")
            .filter(key_hash=hash_key(raw), is_active=True)
            .first()
        )
        if gate is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked gate key.")
        gate_touch(gate=gate)
        return AnonymousUser(), gate

    def authenticate_header(self, request) -> str:
        return "Bearer"


class IsGate(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, GateDevice)
