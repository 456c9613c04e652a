"""Fuzz: the long run of tests/integration/test_fuzz_tools.py (every tool over MCP with generated and hostile
arguments; tests/support/fuzz.py has the calls and the properties), with more calls per tool and a fresh seed
each run unless one is given, so each run explores calls the bounded, derandomized run in `make test` does not.

Prints per mode the calls made, how many were refused and the slowest calls; a broken property fails the run
with the shrunk call that broke it (re-run it with the printed seed). Needs no Kubernetes testbed: the test
starts its own Postgres, Temporal dev server and registry.

Run: .venv/bin/python bench/fuzz.py [--examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/integration/test_fuzz_tools.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="calls per tool and mode (default 1000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: a random one)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz: {args.examples} calls per tool and mode, seed {seed}", flush=True)
    env = os.environ | {"FUZZ_EXAMPLES": str(args.examples), "FUZZ_SEED": str(seed)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "--timeout", "0", "-p", "no:cacheprovider", TEST]
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
