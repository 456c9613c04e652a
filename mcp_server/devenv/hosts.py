"""Names of the dev edge's apps in a hosts file, so every HTTP client on the machine resolves them: glibc's
resolver does not resolve `*.localhost` (curl and browsers do it themselves), but it reads /etc/hosts. dev
keeps one marked block in it, rewritten as Ingresses come and go and removed when dev stops; nothing outside
the block is touched. Part of the dev harness, not the product."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

BEGIN, END = "# BEGIN deploy-mcp dev (managed; removed when dev stops)", "# END deploy-mcp dev"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def without_block(text: str) -> str:
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == BEGIN:
            inside = True
        elif line.rstrip("\n") == END and inside:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def with_block(text: str, names: Iterable[str], address: str = "127.0.0.1") -> str:
    """`text` with the block naming `names` (sorted, only valid host names) at `address`; none: no block."""
    base = without_block(text)
    valid = sorted({n for n in names if _NAME.match(n)})
    if not valid:
        return base
    if base and not base.endswith("\n"):
        base += "\n"
    return base + "\n".join([BEGIN, *(f"{address} {n}" for n in valid), END]) + "\n"


class HostsFile:
    """One hosts file's dev block, written in place (the file may be a bind mount: it is not replaced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: str | None = None

    def sync(self, names: Iterable[str]) -> bool:
        """Make the block name exactly `names`; True when the file changed."""
        text = self.path.read_text() if self.path.exists() else ""
        new = with_block(text, names)
        if new == text:
            return False
        with open(self.path, "r+" if self.path.exists() else "w") as f:
            f.write(new)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return True

    def clear(self) -> None:
        if self.path.exists():
            self.sync(())
