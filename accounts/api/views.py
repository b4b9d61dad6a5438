"""The accounts REST API (/v1/auth/..., /v1/users/me): validate, call one service, shape the answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api.serializers import (
    LoginInput,
    LoginOutput,
    LogoutInput,
    PublicUserSerializer,
    RefreshTokenInput,
    RegisterInput,
    TokenPairOutput,
    UserLookupQuery,
    UserProfileSerializer,
)
from accounts.exceptions import InvalidCredentials
from accounts.selectors import user_find, user_get_active
from accounts.throttles import (
    LoginAccountAddressThrottle,
    LoginAccountThrottle,
    LoginAddressThrottle,
    RefreshThrottle,
    RegisterThrottle,
    UserLookupThrottle,
    record_login_failure,
)
from core.api.throttles import UserThrottle

UNAUTHORIZED = OpenApiResponse(description="UNAUTHORIZED")
CONFLICT = OpenApiResponse(
    description="CONFLICT: the email (compared in its canonical form) or the username is taken (details name which)."
)
RATE_LIMITED = OpenApiResponse(description="RATE_LIMITED: too many attempts; wait Retry-After seconds.")


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class UserRegisterApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RegisterThrottle]

    @extend_schema(
        request=RegisterInput,
        responses={201: UserProfileSerializer, 409: CONFLICT, 429: RATE_LIMITED},
        summary="Create an account",
        tags=["auth"],
    )
    def post(self, request):
        user = services.user_register(**validated(RegisterInput, request.data))
        return Response(UserProfileSerializer(user).data, status=status.HTTP_201_CREATED)


class UserLoginApi(APIView):
    """Failed attempts are counted per (account, client address), per client address and per
    account; over a limit the attempts it covers are refused with 429 until the window has
    passed (``accounts.throttles``)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginAccountAddressThrottle, LoginAddressThrottle, LoginAccountThrottle]

    @extend_schema(
        request=LoginInput,
        responses={200: LoginOutput, 401: UNAUTHORIZED, 429: RATE_LIMITED},
        summary="Log in with email and password",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(LoginInput, request.data)
        try:
            result = services.user_login(email=data["email"], password=data["password"])
        except InvalidCredentials:
            record_login_failure(request, self)
            raise
        return Response(LoginOutput(result).data)


class TokenRefreshApi(APIView):
    """Rotation: each refresh token works once and is answered with its replacement; a spent
    one presented again revokes every token of its session (``accounts.tokens``)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RefreshThrottle]

    @extend_schema(
        request=RefreshTokenInput,
        responses={200: TokenPairOutput, 401: UNAUTHORIZED, 429: RATE_LIMITED},
        summary="A new access token and a new refresh token for a refresh token",
        tags=["auth"],
    )
    def post(self, request):
        pair = services.token_refresh(**validated(RefreshTokenInput, request.data))
        return Response(TokenPairOutput(pair).data)


class UserLogoutApi(APIView):
    @extend_schema(
        request=LogoutInput,
        responses={200: None},
        summary="End my session: revoke the access token of this request, its session's refresh tokens "
        "and the refresh token sent (optional)",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(LogoutInput, request.data)
        services.user_logout(access_claims=request.auth, refresh_token=data.get("refresh_token"))
        return Response(None)


class UserLookupApi(APIView):
    throttle_classes = [UserThrottle, UserLookupThrottle]

    @extend_schema(
        parameters=[UserLookupQuery],
        responses={
            200: PublicUserSerializer,
            404: OpenApiResponse(description="NOT_FOUND: nobody has that email or username."),
        },
        summary="Find someone by exact email or username (to start a conversation)",
        tags=["users"],
    )
    def get(self, request):
        query = UserLookupQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = user_find(query=query.validated_data["q"])
        if user is None:
            raise NotFound("No user with that email or username.")
        return Response(PublicUserSerializer(user).data)


class UserMeApi(APIView):
    @extend_schema(responses=UserProfileSerializer, summary="My account", tags=["users"])
    def get(self, request):
        return Response(UserProfileSerializer(user_get_active(user_id=request.user.id)).data)
