"""Push notifications: the devices users register, and the pushes that ring them for calls.

``models`` (Device), ``services`` / ``selectors`` (device writes and reads), ``api`` (the
/v1/devices endpoints), ``notifications`` (what each push says), ``providers`` and ``firebase``
(who delivers it; only ``firebase`` imports the SDK), ``delivery`` (send to users' devices with
retries), ``worker`` (off the request path) and ``listener`` (which call event sends what).
"""
