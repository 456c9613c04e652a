"""The phases of a deployment that end it: tools wait for one, the store never counts such a deployment as
running. Pure, shared by the tools and the store."""

from __future__ import annotations

TERMINAL_PHASES = frozenset({"succeeded", "failed", "cancelled", "superseded"})
