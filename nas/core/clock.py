"""Durations as people read them in progress lines: ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``seconds`` rounded to the unit that still matters: seconds below a minute, minutes below an hour."""
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


__all__ = ["duration"]
