"""The persistence layer: whether the database is reachable, what to do when it is not.

- ``availability``: the one process-wide record of whether the database can be used (starting,
  operational, limited), and ``report_outage``, the one door for saying it went away.
- ``database_only``: writes and reads only the database can take: 503 while it is away.
- ``routing``: where a call write goes (the database or the spool) and where a call read comes from.
- ``sources``: loading and saving a call in the database or in the spool.
- ``snapshot_cache``: each call's latest state and each conversation's members, for outages.
- ``snapshots``: the codec of a call as a plain dict (spool entries, cache values).
- ``spool``: the durable local journal that holds call writes while the database is away, and
  the quarantine of entries the replay could not apply.
- ``replay``: writing journaled call states into the database by natural key, in batches.
- ``supervisor``: the start-up check with backoff, the breaker's probes, and the replay loop
  (handed the replay functions by ``calls.background_threads``, so it imports none of the
  above but ``availability``, ``metrics`` and ``spool``).
- ``metrics``: the layer's Prometheus metrics.

Which database errors heal (``core.db_errors``) and the one retrying write helper
(``core.transactions.run_in_transaction``) live in the leaf, where ``accounts`` can use them too.
"""
