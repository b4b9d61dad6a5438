"""The persistence layer: whether the database is reachable, what to do when it is not.

- ``state``: the one process-wide record of the persistence state (starting, operational,
  limited) and what the last check found.
- ``errors``: which database errors can heal (retry) and which cannot (report at once).
- ``transactions``: the one helper every write goes through (retries SQLSTATE 40001).
- ``spool``: the durable local journal that holds call writes while the database is away.
- ``store``: loads and saves a call, from and to the database or the spool.
- ``supervisor``: the start-up check with backoff, the breaker's probes, and replay.
"""
