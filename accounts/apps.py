from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Push notifications: choose the provider (may stop start-up) and listen to call events.
        from accounts.push.listener import push_start

        push_start()
