"""Prometheus metrics of the persistence layer (served at /metrics)."""

from prometheus_client import Counter, Gauge

connection_attempts = Counter(
    "secureconnect_db_connection_attempts",
    "Database connection attempts by the start-up check and the breaker's probes.",
    ["result"],
)
retries_before_success = Gauge(
    "secureconnect_db_retries_before_success",
    "Failed attempts before the last successful connection.",
)
time_to_first_connection = Gauge(
    "secureconnect_db_time_to_first_connection_seconds",
    "Seconds from process start-up to the first successful database connection.",
)
limited_mode_entries = Counter(
    "secureconnect_persistence_limited_mode_entries",
    "Times the service entered limited mode (database away, writes spooled).",
)
persistence_state = Gauge(
    "secureconnect_persistence_state",
    "1 for the current persistence state, 0 for the others.",
    ["state"],
)
spool_depth = Gauge("secureconnect_spool_depth", "Call writes waiting in the spool for the database.")
spool_quarantined = Gauge(
    "secureconnect_spool_quarantined_entries",
    "Journaled call writes the replay could not apply (for a reason that is not an outage), kept in "
    "the spool's quarantine until retried (manage.py replay_spool --quarantined) or discarded.",
)
spool_replayed = Counter("secureconnect_spool_replayed_records", "Spooled call writes replayed into the database.")
spool_refused = Counter("secureconnect_spool_refused_writes", "Writes refused because the spool was full or too old.")
