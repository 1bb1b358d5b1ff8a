"""DICOM times: TM and DT values as seconds, and times of day across midnight.

Header parsing (:mod:`breastlab.dicom.headers`) turns TM values into seconds since
midnight; sorting (:mod:`breastlab.mri.grouping`, :mod:`breastlab.mri.dce`) orders
them across midnight and writes them back as ``HH:MM:SS``.

Example:
    >>> parse_time("102550.25"), datetime_time("20240115102550"), format_tod(37550.0)
    (37550.25, 37550.0, '10:25:50')
    >>> unwrap_midnight([86000.0, 86300.0, 100.0])
    [86000.0, 86300.0, 86500.0]
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

DAY = 86400.0


def parse_time(value: str | None) -> float | None:
    """DICOM TM ``HHMMSS.ffffff`` (also ``HH:MM:SS``, ``HHMM``, ``HH``) -> seconds since midnight."""
    if not value:
        return None
    text = value.strip().replace(":", "")
    if not text:
        return None
    main, _, frac = text.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6) or (frac and not frac.isdigit()):
        return None
    hours = int(main[0:2])
    minutes = int(main[2:4]) if len(main) >= 4 else 0
    seconds = int(main[4:6]) if len(main) >= 6 else 0
    if hours > 24 or minutes > 59 or seconds > 60:
        return None
    total = hours * 3600 + minutes * 60 + seconds
    if frac:
        total += float("0." + frac)
    return float(total)


def datetime_time(value: str | None) -> float | None:
    """Seconds since midnight of a DICOM DT ``YYYYMMDDHHMMSS.ffffff[&ZZXX]``."""
    if not value or len(value) < 10:
        return None
    body = re.split(r"[+-]", value[8:], maxsplit=1)[0]
    return parse_time(body)


def parse_dicom_datetime(value: str | None) -> float | None:
    """DICOM DT (YYYYMMDDHHMMSS[.ffffff][&ZZXX]) → POSIX-like seconds, or None."""
    if not value:
        return None
    text = value.strip().split("+")[0].split("-")[0] if len(value) > 8 else value.strip()
    digits, _, frac = text.partition(".")
    try:
        fmt = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}[len(digits)]
        base = datetime.strptime(digits, fmt).timestamp()
    except (KeyError, ValueError):
        return None
    return base + (float("0." + frac) if frac.isdigit() else 0.0)


def unwrap_midnight(times: Sequence[float]) -> list[float]:
    """Times of day (s) → a monotone-comparable scale across midnight.

    The acquisition is assumed shorter than 12 h: the largest circular gap
    between the sorted times marks the start; times before the start are moved
    to the next day (+86400 s).
    """
    if not times:
        return []
    uniq = sorted(set(t % DAY for t in times))
    if len(uniq) < 2:
        return [t % DAY for t in times]
    gaps = [(uniq[(i + 1) % len(uniq)] - uniq[i]) % DAY for i in range(len(uniq))]
    biggest = max(range(len(gaps)), key=gaps.__getitem__)
    start = uniq[(biggest + 1) % len(uniq)]
    return [(t % DAY) + (DAY if (t % DAY) < start else 0.0) for t in times]


def format_tod(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds % DAY, 3)
    sec = s % 60
    text = f"{sec:06.3f}".rstrip("0").rstrip(".") if sec != int(sec) else f"{int(sec):02d}"
    return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{text}"
