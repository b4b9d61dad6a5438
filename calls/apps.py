import os
import sys

from django.apps import AppConfig

SERVER_PROGRAMS = ("daphne", "uvicorn", "gunicorn", "hypercorn")
SERVING_COMMANDS = ("runserver", "runworker")
# python -m secureconnect.server (the production server): argv[0] is .../secureconnect/server/__main__.py
PRODUCTION_SERVER_MAIN = os.path.join("secureconnect", "server", "__main__.py")


def process_serves_requests(argv: list[str] | None = None, environ=None) -> bool:
    """True for the production server, daphne and friends and `manage.py runserver` (its serving child only),
    False for every other management command (migrate, shell, test, ...) and for pytest."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if argv and argv[0].endswith(PRODUCTION_SERVER_MAIN):
        return True
    program = os.path.basename(argv[0]) if argv else ""
    if program == "__main__.py":  # python -m daphne: argv[0] is .../daphne/__main__.py
        program = os.path.basename(os.path.dirname(argv[0]))
    if program in SERVER_PROGRAMS:
        return True
    if len(argv) > 1 and argv[1] in SERVING_COMMANDS:
        # runserver's autoreloader runs us twice; only the child (RUN_MAIN) serves.
        return environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


class CallsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "calls"
    verbose_name = "Calls"

    def ready(self):
        # No queries here (Django advises against them in ready()): only decide whether this
        # process serves, and if so start the supervisor thread, which waits for the apps.
        from django.conf import settings

        from calls import background_threads

        if settings.DB_STARTUP_MODE != "off" and process_serves_requests():
            background_threads.start()
