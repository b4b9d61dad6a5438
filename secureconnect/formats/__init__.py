"""Date and time formats for the admin (``FORMAT_MODULE_PATH``): seconds and the time zone's name
on every time, so support staff can line up what they read with the logs."""
