"""Prometheus metrics of signaling and the channel layer (served at /metrics)."""

from prometheus_client import Counter, Gauge

open_sockets = Gauge(
    "secureconnect_ws_open_sockets",
    "WebSocket connections this process holds, by socket (signaling or events).",
    ["socket"],
)
refused_sockets = Counter(
    "secureconnect_ws_refused_sockets",
    "WebSocket connections refused or closed by the server, by close code.",
    ["socket", "code"],
)
relayed_messages = Counter(
    "secureconnect_signaling_relayed_messages",
    "Signaling messages accepted from a client and relayed, by type.",
    ["type"],
)
invalid_messages = Counter(
    "secureconnect_signaling_invalid_messages",
    "Client messages answered with an error, by error code.",
    ["code"],
)
layer_dropped_messages = Counter(
    "secureconnect_channel_layer_dropped_messages",
    "Messages the channel layer dropped because a queue was at capacity, by where it happened.",
    ["where"],
)
layer_failures = Counter(
    "secureconnect_channel_layer_failures",
    "Channel-layer operations that failed (Redis unreachable), by operation.",
    ["operation"],
)
handler_failures = Counter(
    "secureconnect_ws_handler_failures",
    "Socket handlers that raised: the socket was closed with 1011 and its resources released, by socket.",
    ["socket"],
)
resume_buffer_dropped = Counter(
    "secureconnect_resume_buffer_dropped",
    "Messages for a reconnecting participant dropped because the resume buffer was full.",
)
layer_reconnects = Counter(
    "secureconnect_channel_layer_reconnects",
    "Times a channel-layer shard's subscriber connection was lost (then re-established), by shard.",
    ["shard"],
)
layer_cut_channels = Counter(
    "secureconnect_channel_layer_cut_channels",
    "Socket channels whose subscription was cut with a shard's connection (closed with 4503), by shard.",
    ["shard"],
)
