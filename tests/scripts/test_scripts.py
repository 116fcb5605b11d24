"""Every benchmark script starts the way its docstring says to run it: `python scripts/<name>.py`.

They are never run by the suite (they print figures, they assert nothing), so an import they lose
would otherwise go unnoticed until someone needs the figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "scripts"
RUNNABLE = sorted(p for p in SCRIPTS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_the_benchmark_scripts_are_found() -> None:
    assert {p.name for p in RUNNABLE} >= {"bench.py", "bench_turns.py", "bench_live.py"}


@pytest.mark.parametrize("script", RUNNABLE, ids=lambda p: p.name)
def test_a_script_starts_and_explains_its_arguments(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=SCRIPTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
