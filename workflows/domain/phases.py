"""TODO docstring."""

from __future__ import annotations

TERMINAL_PHASES = frozenset({"succeeded", "failed", "cancelled", "superseded"})
