"""Account API: register and get a bearer token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from parking.authentication import password_authenticate
from parking.services import api_token_create, user_register


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


class RegisterApi(_AuthApi):
    @extend_schema(
        request=RegisterSerializer,
        responses={201: inline_serializer("Registered", {"email": serializers.EmailField()})},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return Response({"email": user.email}, status=status.HTTP_201_CREATED)


class TokenApi(_AuthApi):
    @extend_schema(
        request=CredentialsSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField()})},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        data = CredentialsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = password_authenticate(request, **data.validated_data)
        return Response({"token": api_token_create(user=user)})
