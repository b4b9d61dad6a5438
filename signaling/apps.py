from django.apps import AppConfig


class SignalingConfig(AppConfig):
    name = "signaling"
    verbose_name = "Signaling"

    def ready(self):
        # Relay call events to sockets (after commit) and count channel-layer drops.
        from signaling.call_events import signaling_start

        signaling_start()
