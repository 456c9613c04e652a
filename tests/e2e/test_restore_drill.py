"""The restore drill (mcp_server/devenv/drill.py): two apps and their backups; then the database, Temporal's
state and the whole testbed are destroyed; a fresh Postgres gets the Plane A backup, a new worker starts, and
with no call both apps serve again at their URLs, the secret decrypted, the volume's data back from its Longhorn
backup, release history and rollback intact. Runs after every other test: it rebuilds the testbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_server.devenv.drill import GREETING, restore_drill
from mcp_server.devenv.embedded import Testbed
from tests.fakes.fake_longhorn import fake_longhorn

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.drill, pytest.mark.timeout(900)]


async def test_everything_destroyed_comes_back_from_the_backups(needs_node: Testbed, workdir: Path) -> None:
    work = workdir / "drill"  # not pytest's 0700 tmp: the embedded Postgres runs as its own user under root
    work.mkdir()
    result = await restore_drill(needs_node, work, fake_longhorn)
    assert result.served == {"data": "3", "sec": f"v2:{GREETING}"}, result  # the volume's data, the secret
    assert result.rto_seconds < 120, result
    assert result.releases_after == 2, result  # the history came back with the database
    assert result.rolled_back_to == f"v1:{GREETING}", result
    # the reconciler re-created the claim from the backup it imported, and said so
    assert any(r.startswith("VolumeSnapshotContent/import-") for r in result.repaired), result.repaired
    assert any(r.startswith("PersistentVolumeClaim/") for r in result.repaired), result.repaired
    print(f"restore drill: RTO {result.rto_seconds:.1f} s, database restore {result.restore_seconds:.1f} s, "
          f"testbed rebuilt in {result.rebuild_seconds:.1f} s")
