"""Exact time: integer microseconds inside the library, float seconds only at the JSON edge."""

from __future__ import annotations

from fractions import Fraction

US_PER_S = 1_000_000


def s_to_us(seconds: float | Fraction | int) -> int:
    """Seconds -> integer microseconds, rounded half away from zero (never truncated)."""
    frac = Fraction(seconds) if not isinstance(seconds, Fraction) else seconds
    value = frac * US_PER_S
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


def us_to_s(us: int, ndigits: int = 3) -> float:
    """Microseconds -> float seconds for JSON, rounded to ``ndigits`` (milliseconds by default)."""
    return round(us / US_PER_S, ndigits)


def fmt_clock(us: int) -> str:
    """``H:MM:SS.mmm`` for humans."""
    ms = (us + 500) // 1000
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}"
