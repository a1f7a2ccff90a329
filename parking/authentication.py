"""`Authorization: Bearer <token>` for API clients."""

from __future__ import annotations

from django.db import connection
from rest_framework import authentication, exceptions

from parking.models import ApiToken, User, hash_token

# Every API request runs this: one plain statement, no ORM query building.
_USER_FIELDS = [f.attname for f in User._meta.concrete_fields]
_TOKEN_USER_SQL = (  # built from model metadata only
    "SELECT t.id, "  # noqa: S608
    + ", ".join(f"u.{connection.ops.quote_name(f.column)}" for f in User._meta.concrete_fields)
    + f" FROM {ApiToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id"
    " WHERE t.key_hash = %s AND u.is_active"
)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Malformed token.") from exc
        with connection.cursor() as cursor:
            cursor.execute(_TOKEN_USER_SQL, [hash_token(raw)])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        user = User.from_db(connection.alias, _USER_FIELDS, row[1:])
        token = ApiToken(id=row[0], user=user)
        return user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
