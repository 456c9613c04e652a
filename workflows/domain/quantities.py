"""Kubernetes storage quantities ("512Mi", "3Gi", "1Ti", plain bytes) in whole GiB, the unit volumes use."""

from __future__ import annotations

_FACTORS = {"Ki": 1 / 1024**2, "Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0, "Pi": 1024.0**2}


def gib(quantity: str | None) -> int:
    """Whole GiB in `quantity` (a non-zero size below 1 GiB counts as 1); 0 for None or an unparsable value."""
    q = str(quantity or "").strip()
    try:
        for suffix, factor in _FACTORS.items():
            if q.endswith(suffix):
                value = float(q[: -len(suffix)]) * factor
                break
        else:
            value = int(q) / 2**30
    except ValueError:
        return 0
    return max(1, int(value)) if value > 0 else 0
