from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Push notifications"

    def ready(self):
        # Choose the provider (may stop start-up) and listen to call events (after commit).
        from push.listener import push_start

        push_start()
