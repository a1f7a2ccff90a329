"""API clients: exchanging an e-mail and password for a token, and
`Authorization: Bearer <token>` on every later request."""

from __future__ import annotations

from django.contrib.auth import authenticate, user_logged_in
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from config.errors import ApplicationError
from parking import lockout
from parking.models import ApiToken, User, hash_token


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    status = 400


class TooManyLoginAttempts(exceptions.APIException):
    """429 with Retry-After: this account or this address is locked out (parking/lockout.py)."""

    status_code = 429
    default_code = lockout.LOCKED_OUT_CODE

    def __init__(self) -> None:
        super().__init__(lockout.locked_out_sentence())
        self.wait = lockout.cool_off_seconds()


def password_authenticate(request: Request, *, email: str, password: str) -> User:
    """The account these credentials open, counted as a log-in attempt like the
    website's and the admin's (django-axes sees the request), or a refusal."""
    user = authenticate(request, username=email.strip().lower(), password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):
            raise TooManyLoginAttempts
        raise InvalidCredentials("E-mail address or password is wrong.")
    # What login() announces on the website, so that a successful token request
    # also clears the failures counted for this account and address.
    user_logged_in.send(sender=type(user), request=request, user=user)
    return user


# Every API request runs this: one plain statement, no ORM query building.
_USER_FIELDS = [f.attname for f in User._meta.concrete_fields]
# Whether the token has expired, and whether its last use is worth writing down,
# are asked of the database: it compares its own stored datetimes.
_TOKEN_USER_SQL = (  # built from model metadata only
    "SELECT t.id, t.expires_at <= %s, t.last_used_at IS NULL OR t.last_used_at < %s, "  # noqa: S608
    + ", ".join(f"u.{connection.ops.quote_name(f.column)}" for f in User._meta.concrete_fields)
    + f" FROM {ApiToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id"
    " WHERE t.key_hash = %s AND u.is_active"
)


class TokenExpired(exceptions.APIException):
    """401 token_expired, with the Bearer challenge: get a new token."""

    status_code = 401
    default_code = "token_expired"
    default_detail = "This token has expired. Get a new one from POST /api/v1/auth/token."
    auth_header = 'Bearer error="invalid_token", error_description="The token has expired"'


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
        now = timezone.now()
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            cursor.execute(
                _TOKEN_USER_SQL,
                [adapt(now), adapt(now - ApiToken.LAST_USED_EVERY), hash_token(raw)],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        token_id, expired, unrecorded = row[0], bool(row[1]), bool(row[2])
        if expired:
            raise TokenExpired
        if unrecorded:
            ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
        user = User.from_db(connection.alias, _USER_FIELDS, row[3:])
        token = ApiToken(id=token_id, user=user)
        return user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
