"""WebSocket routes (mounted by secureconnect/asgi.py)."""

from django.urls import re_path

from signaling.consumers import EventsConsumer, SignalingConsumer

websocket_urlpatterns = [
    re_path(r"^v1/calls/ws/signaling/?$", SignalingConsumer.as_asgi()),
    re_path(r"^v1/ws/events/?$", EventsConsumer.as_asgi()),
]
