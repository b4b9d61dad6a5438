"""The persistence layer: whether the database is reachable, what to do when it is not.

- ``state``: the one process-wide record of the persistence state (starting, operational,
  limited) and what the last check found.
- ``spool``: the durable local journal that holds call writes while the database is away, and
  the quarantine of entries the replay could not apply.
- ``store``: loads and saves a call, from and to the database or the spool; replays a journaled
  call by natural key.
- ``supervisor``: the start-up check with backoff, the breaker's probes, and replay.
- ``snapshots``: the codec of a call's snapshot (the spool's and the cache's record).
- ``metrics``: the layer's Prometheus metrics.

Which database errors heal (``core.db_errors``) and the one retrying write helper
(``core.transactions.run_in_transaction``) live in the leaf, where ``accounts`` can use them too.
"""
