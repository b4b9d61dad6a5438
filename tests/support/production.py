"""Values a production process accepts: random secrets (fixed here so that runs repeat) and the
environment of a production daphne on loopback."""

from __future__ import annotations

from pathlib import Path

from bench.processes import METRICS_TOKEN

SECRET_KEY = "Y7T3t4oBXGa4zC_37R0AItwA1gaJmoK1q4S7-c3I2VN_rskVvhOgPKbM9ft3hIg1"
JWT_SECRET = "gGcN9U5OVjMkm0aTpHeBQ2K3ZwxLESmdx9Mbxey3N2AoI3X3"
TURN_SECRET = "I8IP1YWZXm5epCqg-R8qIxM3LuFr6ZIN"


def production_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What a production process needs to start: ENV=production, strong secrets, loopback as its
    host, plain HTTP allowed (no redirect), and an SQLite file of its own (never migrated)."""
    return {
        "ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "JWT_SECRET": JWT_SECRET,
        "METRICS_TOKEN": METRICS_TOKEN,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CORS_ALLOWED_ORIGINS": "",
        "NUM_PROXIES": "0",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path}/production.sqlite3",
        "REDIS_URL": "",
        "DB_STARTUP_MODE": "off",
        "SPOOL_PATH": str(tmp_path / "production-spool.sqlite3"),
        "PUSH_PROVIDER": "none",
        **overrides,
    }
