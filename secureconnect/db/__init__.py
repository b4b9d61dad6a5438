"""Database engines of the service: Django's PostgreSQL and django-cockroachdb backends with a
bounded per-process connection pool (``pool.py``), chosen by ``secureconnect/settings.py``."""
