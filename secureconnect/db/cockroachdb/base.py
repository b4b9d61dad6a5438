"""django-cockroachdb's backend, with connections from the process's pool (secureconnect/db/pool.py)."""

from django_cockroachdb.base import DatabaseWrapper as CockroachDatabaseWrapper

from secureconnect.db.pool import PooledConnectionMixin


class DatabaseWrapper(PooledConnectionMixin, CockroachDatabaseWrapper):
    pass
