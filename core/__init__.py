"""The leaf under every app: pieces with no knowledge of any app (they import only Django,
DRF and libraries). ``exceptions`` (the one application error base), ``timefmt`` (ISO 8601
with ``Z``), ``db_errors`` and ``transactions`` (telling database errors apart, the one write
retry), ``api`` (the envelope, renderer, parser, exception handler and throttle base every
app's views use).
"""
