"""Kubernetes quantities (workflows.domain.quantities): every suffix read exactly, sizes in whole GiB rounded up,
refusal of what is not a quantity, and the volume resize shrink check fed sizes the old parser misread
("5G", "5000M", "2e9" and "1Ei" read as 0 GiB, "1.5Gi" as 1)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from temporalio.exceptions import ApplicationError

from workflows.activities.volume import VolumeActivities
from workflows.domain.quantities import GIB, gib, holds_gib, quantity
from workflows.domain.specs import VolumeSpec
from workflows.domain.volume_contract import VolumeOp


@pytest.mark.parametrize(("text", "value"), [
    ("1Ki", 2**10), ("1Mi", 2**20), ("1Gi", 2**30), ("1Ti", 2**40), ("1Pi", 2**50), ("1Ei", 2**60),
    ("1k", 10**3), ("1M", 10**6), ("1G", 10**9), ("1T", 10**12), ("1P", 10**15), ("1E", 10**18),
    ("1500m", Decimal("1.5")), ("7", 7), ("0", 0),
    ("2e9", 2 * 10**9), ("2E9", 2 * 10**9), ("5e-1", Decimal("0.5")), ("1.5e+3", 1500),
    ("1.5Gi", 3 * 2**29), (".5Ki", 512), ("2.Mi", 2 * 2**20), ("+3k", 3000), ("-1k", -1000), (" 3Gi ", 3 * 2**30),
])
def test_each_suffix_is_read_exactly(text: str, value: int | Decimal) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "junk", "Gi", "1GiB", "1 Gi", "1gi", "1K", "1e", "1e1.5", "0x10", "1.2.3",
                                  "1Gi1", "--1"])
def test_what_is_not_a_quantity_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity") as info:
        quantity(text)
    assert repr(text) in str(info.value)


def test_storage_quantities_in_gib() -> None:
    assert [gib(q) for q in ("3Gi", "1Ti", "512Mi", "2048Mi", str(5 * 2**30), None, "", "0")] == [
        3, 1024, 1, 2, 5, 0, 0, 0]
    with pytest.raises(ValueError, match="'junk' is not a Kubernetes quantity"):  # was 0: see test_quantities
        gib("junk")


@pytest.mark.parametrize(("size", "whole"), [
    ("5G", 5), ("5000M", 5), ("2e9", 2), ("1Ei", 2**30), ("1.5Gi", 2), ("1Gi", 1), ("1024Mi", 1), ("1025Mi", 2),
    ("1m", 1), ("10Gi", 10), ("1Ti", 1024), (str(5 * GIB), 5), (str(5 * GIB + 1), 6), (None, 0), ("  ", 0), ("0", 0),
])
def test_gib_rounds_up_to_whole_gib(size: str | None, whole: int) -> None:
    assert gib(size) == whole


def test_gib_refuses_junk_and_negative_sizes() -> None:
    with pytest.raises(ValueError, match="'junk' is not a Kubernetes quantity"):
        gib("junk")
    with pytest.raises(ValueError, match="'-1Gi' is a negative size"):
        gib("-1Gi")


def test_holds_gib_compares_exactly() -> None:
    assert holds_gib("2Gi", 2) and holds_gib("2049Mi", 2) and holds_gib("3G", 2)
    assert not holds_gib("1.5Gi", 2) and not holds_gib("2G", 2) and not holds_gib(None, 1) and not holds_gib("", 1)


class _Claims:
    """The two Kube calls volume_resize makes, over one claim whose requested and bound sizes are given."""

    def __init__(self, requested: str) -> None:
        self.pvc: dict[str, Any] = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"namespace": "ns", "name": "data"},
            "spec": {"resources": {"requests": {"storage": requested}}}, "status": {"capacity": {}}}
        self.patches: list[dict[str, Any]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.pvc

    async def patch(self, obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(body)
        storage = body["spec"]["resources"]["requests"]["storage"]
        self.pvc["spec"]["resources"]["requests"]["storage"] = storage
        self.pvc["status"]["capacity"]["storage"] = storage  # expanded at once
        return self.pvc


def _resize(requested: str, size_gib: int) -> _Claims:
    claims = _Claims(requested)
    spec = VolumeSpec(tenant="acme", project="web", namespace="ns", name="data", claim="data", size_gib=size_gib,
                      storage_class="longhorn")
    activities = VolumeActivities(claims, store=None)  # type: ignore[arg-type]
    asyncio.run(activities.volume_resize(VolumeOp(op="resize", volume_id=uuid4(), spec=spec)))
    return claims


@pytest.mark.parametrize(("requested", "smaller"), [
    ("5G", 4), ("5000M", 4), ("2e9", 1), ("1.5Gi", 1), ("1Ei", 16384), ("10Gi", 9),
])
def test_resize_refuses_to_shrink_claims_written_with_any_suffix(requested: str, smaller: int) -> None:
    with pytest.raises(ApplicationError) as info:
        _resize(requested, smaller)
    assert info.value.type == "VolumeShrink" and info.value.non_retryable
    assert f"{gib(requested)} GiB now, {smaller} GiB asked" in str(info.value)


@pytest.mark.parametrize(("requested", "size"), [("5G", 5), ("2e9", 2), ("1.5Gi", 2), ("10Gi", 10), ("512Mi", 1)])
def test_resize_grows_to_a_size_that_holds_the_claim(requested: str, size: int) -> None:
    claims = _resize(requested, size)
    assert claims.patches == [{"spec": {"resources": {"requests": {"storage": f"{size}Gi"}}}}]
