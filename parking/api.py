"""Account API: sign up, get a bearer token, and revoke it; the driver's saved cards."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.net import client_ip
from parking import limits
from parking.authentication import BearerTokenAuthentication, password_authenticate
from parking.services import api_token_create, api_token_revoke, saved_card_remove, user_signup
from payments.services import payment_cards_list

# The error format of every API answer that is not a success (config/api.py).
ERROR = inline_serializer(
    "Error",
    {
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "fields": serializers.DictField(required=False),
    },
)


class CredentialsSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RegisterSerializer(CredentialsSerializer):
    full_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class _AuthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


class TooManySignups(exceptions.APIException):
    """429 with Retry-After: more sign-ups from this address than THROTTLE_SIGNUP_RATE."""

    status_code = 429
    default_code = "too_many_signups"
    default_detail = (
        "Too many accounts were asked for from this address in a short time. Try again later."
    )

    def __init__(self, wait: int) -> None:
        super().__init__()
        self.wait = wait


SIGNED_UP = (
    "Check your e-mail: we have sent a message to this address. If it has no account yet, "
    "the link in it opens one; if it has one, the message says how to log in."
)


class RegisterApi(_AuthApi):
    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: inline_serializer(
                "Registered", {"email": serializers.EmailField(), "detail": serializers.CharField()}
            ),
            400: OpenApiResponse(ERROR, description="`weak_password`, or a field error."),
            429: OpenApiResponse(
                ERROR,
                description="`too_many_signups`: more sign-ups from this address than "
                "THROTTLE_SIGNUP_RATE (`Retry-After`). `throttled`: more token or register "
                "requests than THROTTLE_AUTH_RATE.",
            ),
        },
        auth=[],
        tags=["auth"],
        description="Start an account. The answer is the same whether the address already "
        "has an account or not: the e-mail tells. A new address gets a link that opens the "
        "account (on the website; then POST /auth/token works with this password); an "
        "address with an account gets a note saying how to log in or reset its password.",
    )
    def post(self, request):
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wait = limits.SIGNUPS_PER_CLIENT.hit(client_ip(request))
        if wait is not None:
            raise TooManySignups(wait)
        email = user_signup(**data.validated_data)
        return Response({"email": email, "detail": SIGNED_UP}, status=status.HTTP_201_CREATED)


class TokenApi(_AuthApi):
    """POST: e-mail and password for a new token. DELETE: revoke the token the
    request is made with."""

    def _revoking(self) -> bool:
        # Django's request when DRF asks for authenticators, DRF's after; none
        # while the schema is generated (extend_schema below says it all then).
        return getattr(self.request, "method", None) == "DELETE"

    def get_authenticators(self):
        return [BearerTokenAuthentication()] if self._revoking() else []

    def get_permissions(self):
        return [IsAuthenticated()] if self._revoking() else [AllowAny()]

    @extend_schema(
        request=CredentialsSerializer,
        responses={
            200: inline_serializer(
                "Token",
                {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()},
            ),
            400: OpenApiResponse(ERROR, description="`invalid_credentials`, or a field error."),
            429: OpenApiResponse(
                ERROR,
                description="`too_many_login_attempts`: too many failed log-ins for this "
                "account or from this address (LOGIN_FAILURE_LIMIT); logging in is paused "
                "for LOGIN_COOLOFF_MINUTES, even with the right password (`Retry-After`). "
                "`throttled`: more token or register requests than THROTTLE_AUTH_RATE.",
            ),
        },
        auth=[],
        tags=["auth"],
        description="Exchange an e-mail and password for a bearer token. A token works "
        "for API_TOKEN_LIFETIME_DAYS (30) until `expires_at`, then answers 401 "
        "`token_expired`; changing or resetting the password revokes all of a driver's "
        "tokens.",
    )
    def post(self, request):
        data = CredentialsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = password_authenticate(request, **data.validated_data)
        issued = api_token_create(user=user)
        return Response({"token": issued.token, "expires_at": issued.expires_at})

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="The token is revoked: it no longer works."),
            401: OpenApiResponse(
                ERROR, description="No token, an unknown or revoked one, or `token_expired`."
            ),
        },
        auth=[{"bearerAuth": []}],
        tags=["auth"],
        description="Revoke the token this request is made with (log an app out).",
    )
    def delete(self, request):
        api_token_revoke(user=request.user, token_id=request.auth.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SavedCardSerializer(serializers.Serializer):
    id = serializers.CharField(
        help_text="The PaymentMethod id: pass it to complete as payment_token."
    )
    brand = serializers.CharField(help_text="visa, mastercard, amex…")
    last4 = serializers.CharField()
    exp_month = serializers.IntegerField()
    exp_year = serializers.IntegerField()


def saved_card_data(card) -> dict:
    return {
        "id": card.id,
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
    }


class SavedCardListApi(APIView):
    @extend_schema(
        responses={
            200: SavedCardSerializer(many=True),
            503: OpenApiResponse(
                ERROR, description="`payment_provider_unavailable`: Stripe did not answer."
            ),
        },
        tags=["account"],
        description="The cards saved on the driver's account (every card a booking was paid "
        "with is saved, so that an overstay or an extension can be charged to it). Pay a "
        "new booking in one tap by passing a card's `id` to `complete` as `payment_token`.",
    )
    def get(self, request):
        return Response([saved_card_data(card) for card in payment_cards_list(user=request.user)])


class SavedCardApi(APIView):
    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="The card is removed: no longer offered or charged."),
            404: OpenApiResponse(
                ERROR, description="`payment_method_not_found`: no such card of yours."
            ),
            409: OpenApiResponse(
                ERROR,
                description="`card_in_use`: a booking not settled yet is paid with this card.",
            ),
            503: OpenApiResponse(
                ERROR, description="`payment_provider_unavailable`: Stripe did not answer."
            ),
        },
        tags=["account"],
        description="Remove a saved card (Stripe: detach it from the driver's Customer).",
    )
    def delete(self, request, payment_method_id: str):
        saved_card_remove(user=request.user, payment_method_id=payment_method_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
