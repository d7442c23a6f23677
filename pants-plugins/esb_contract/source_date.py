"""`SOURCE_DATE_EPOCH` (reproducible-builds.org): the time a build records instead of its own,
read by the backend (`created="commit"`) and by the image tool alike."""

from __future__ import annotations

from typing import Optional

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


def parse_source_date_epoch(value: str) -> Optional[int]:
    """Seconds since the epoch, or None when `value` is not a number of them."""
    return int(value) if value.isdigit() else None
