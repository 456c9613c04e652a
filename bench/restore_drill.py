"""RTO of the restore drill (mcp_server/devenv/drill.py): everything destroyed (database, Temporal's state, the
whole testbed), the Plane A backup restored into a fresh Postgres, a worker started; prints the seconds from
"worker started" to "every app serving at its URL", beside the floor measured in the same run: the testbed
rebuilt from nothing, which any recovery waits for first. Root only (it runs the testbed's nodes)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from mcp_server.devenv.drill import restore_drill
from mcp_server.devenv.embedded import Testbed
from tests.fakes.fake_longhorn import fake_longhorn


async def main() -> int:
    tb = Testbed()
    if not tb.built():
        print("restore drill: the testbed is not built (`deploy-mcp testbed build`): nothing measured")
        return 1
    tb.down()
    tb.up(node=True, nodes=2)
    try:
        with tempfile.TemporaryDirectory(prefix="drill-") as work:
            os.chmod(work, 0o755)  # noqa: S103 (the embedded Postgres runs as its own user under root)
            r = await restore_drill(tb, Path(work), fake_longhorn, say=lambda m: print(m, file=sys.stderr))
    finally:
        tb.down()
    print(f"restore drill RTO (worker started -> 2 apps serving at their URLs): {r.rto_seconds:.1f} s")
    print(f"  Plane A restore into a fresh Postgres: {r.restore_seconds:.1f} s")
    print(f"  before it, not in the RTO: the testbed rebuilt from an empty state in {r.rebuild_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
