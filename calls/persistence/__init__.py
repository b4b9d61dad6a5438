"""The persistence layer: whether the database is reachable, what to do when it is not.

- ``state``: the one process-wide record of the persistence state (starting, operational,
  limited) and what the last check found.
- ``errors``: which database errors can heal (retry), which cannot (report at once), and which
  leave a commit's outcome unknown (journal, replay by natural key).
- ``transactions``: the one helper every write goes through (retries SQLSTATE 40001).
- ``spool``: the durable local journal that holds call writes while the database is away, and
  the quarantine of entries the replay could not apply.
- ``store``: loads and saves a call, from and to the database or the spool; replays a journaled
  call by natural key.
- ``supervisor``: the start-up check with backoff, the breaker's probes, and replay.
"""
