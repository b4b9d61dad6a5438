"""/v1/devices: register, list and remove the current user's push devices.

Project defaults apply: JWT authentication, IsAuthenticated, the envelope, throttling.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from push.api.serializers import DeviceRegisterSerializer, DeviceSerializer, is_well_formed_token
from push.exceptions import DeviceNotFound
from push.selectors import device_list
from push.services import device_delete, device_register


class DeviceListCreateApi(APIView):
    """GET lists the current user's devices; POST registers or refreshes one (201 new, 200 known)."""

    @extend_schema(
        responses=DeviceSerializer(many=True),
        summary="My devices, most recently seen first",
        tags=["devices"],
        operation_id="devices_list",
    )
    def get(self, request):
        return Response(DeviceSerializer(device_list(user_id=request.user.id), many=True).data)

    @extend_schema(
        request=DeviceRegisterSerializer,
        responses={200: DeviceSerializer, 201: DeviceSerializer},
        summary="Register a device, or refresh a known one",
        tags=["devices"],
    )
    def post(self, request):
        serializer = DeviceRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device, created = device_register(user_id=request.user.id, **serializer.validated_data)
        return Response(
            DeviceSerializer(device).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class DeviceDetailApi(APIView):
    """DELETE removes one of the current user's devices; someone else's is 404, like a missing one."""

    @extend_schema(
        parameters=[OpenApiParameter("token", str, OpenApiParameter.PATH, description="The device token.")],
        responses={204: None},
        summary="Remove one of my devices",
        tags=["devices"],
    )
    def delete(self, request, token: str):
        # A token that could never be registered is nobody's device; and PostgreSQL refuses a
        # query holding a NUL character, which a path may carry (%00).
        if not is_well_formed_token(token):
            raise NotFound("Device not found.")
        try:
            device_delete(user_id=request.user.id, token=token)
        except DeviceNotFound:
            raise NotFound("Device not found.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
