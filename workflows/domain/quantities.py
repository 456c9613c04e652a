"""Kubernetes resource quantities ("512Mi", "5G", "2e9", "1500m", plain bytes) read exactly, and storage sizes in
whole GiB, the unit platform volumes use.

Pure, so the volume activities and the fake Longhorn controller read sizes the same way. Kubernetes itself
accepts any quantity in `resources.requests.storage` and `status.capacity.storage`, so every suffix of its
grammar (`k8s.io/apimachinery/pkg/api/resource`) is read here: binary Ki Mi Gi Ti Pi Ei, decimal n u m k M G T P E
(metrics-server reports CPU in n),
and decimal exponents (e/E). Arithmetic is Decimal, so "1.5Gi" is 1.5 GiB and "1Ei" is 2**30 GiB, not a float
rounded on the way.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

GIB = 2**30

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("0.001"), "": Decimal(1), "k": Decimal(10**3),
    "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
}

# <sign><digits>[.<digits>] or .<digits>, then a suffix or an exponent (e/E and a signed integer).
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)")


def quantity(text: str) -> Decimal:
    """The exact value of the Kubernetes quantity `text` ("1.5Gi" -> 1610612736); ValueError naming `text` for
    anything that is not a quantity."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 10Gi, 5G, 2e9 or 512Mi)")
    number, exponent, suffix = match.groups()
    if exponent is not None:
        return Decimal(number).scaleb(int(exponent[1:]))
    return Decimal(number) * _SUFFIXES[suffix or ""]


def gib(size: str | None) -> int:
    """`size` in whole GiB, rounded up: 0 for None or blank (no size known, e.g. a claim not yet bound).

    Up, because the resize shrink check asks whether a claim of N GiB would be smaller than the claim now: a
    claim of 1.5Gi holds more than 1 GiB, so asking for 1 GiB must count as shrinking (Kubernetes refuses any
    request below the current one), and a non-zero size below 1 GiB counts as 1. ValueError for a negative size
    and for anything that is not a quantity.
    """
    if size is None or not str(size).strip():
        return 0
    value = quantity(str(size))
    if value < 0:
        raise ValueError(f"{size!r} is a negative size")
    return math.ceil(value / GIB)


def holds_gib(size: str | None, wanted_gib: int) -> bool:
    """Whether `size` (None: unknown) is at least `wanted_gib` GiB, compared exactly: "1.5Gi" does not hold 2 GiB
    even though it rounds up to 2."""
    if size is None or not str(size).strip():
        return False
    return quantity(str(size)) >= wanted_gib * GIB
