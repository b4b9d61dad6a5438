"""The one time format: ISO 8601 in UTC with a Z."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.timefmt import iso_z

pytestmark = pytest.mark.portable


def test_utc_is_written_with_a_z():
    assert iso_z(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678901Z"


def test_timespec_is_datetime_isoformats():
    assert (
        iso_z(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), timespec="milliseconds") == "2026-01-02T03:04:05.678Z"
    )


def test_another_offset_is_converted_to_utc():
    paris = timezone(timedelta(hours=1))
    assert iso_z(datetime(2026, 1, 2, 4, 4, 5, tzinfo=paris)) == "2026-01-02T03:04:05Z"
