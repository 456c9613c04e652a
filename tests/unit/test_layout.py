"""The layout's rules that import-linter cannot state on its own.

- every module at the top of `workflows/` is a workflow definition, and every definition is in the contract
  that forbids I/O imports (a new definition cannot slip past it, as `workflows.build` once did);
- the build pods' shell scripts are package data next to their renderer;
- no fake lives in a product package.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _source_modules(contract_name_start: str) -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    found = [c for c in contracts if str(c["name"]).startswith(contract_name_start)]
    assert len(found) == 1, contract_name_start
    return {str(m) for m in found[0]["source_modules"]}


def test_every_top_level_workflows_module_is_a_checked_definition() -> None:
    top = {f"workflows.{p.stem}" for p in (ROOT / "workflows").glob("*.py") if p.stem != "__init__"}
    assert _source_modules("Workflow definitions import no I/O library") == top
    for definition in top:
        text = (ROOT / "workflows" / f"{definition.split('.')[1]}.py").read_text()
        assert "@workflow.defn" in text, f"{definition} is at the top of workflows/ but defines no workflow"


def test_build_scripts_are_files_beside_their_renderer() -> None:
    scripts = ROOT / "workflows" / "render" / "scripts"
    assert {p.name for p in scripts.glob("*.sh")} >= {"clone.sh", "build.sh"}


def test_fakes_live_only_under_tests_fakes() -> None:
    product = [p for d in ("mcp_server", "tools", "workflows", "prompts") for p in (ROOT / d).rglob("*.py")]
    named_fake = [p.relative_to(ROOT) for p in product if "fake" in p.stem.lower()]
    assert named_fake == []
