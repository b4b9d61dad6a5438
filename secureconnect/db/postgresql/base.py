"""Django's PostgreSQL backend, with connections from the process's pool (secureconnect/db/pool.py)."""

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from secureconnect.db.pool import PooledConnectionMixin


class DatabaseWrapper(PooledConnectionMixin, PostgresDatabaseWrapper):
    pass
