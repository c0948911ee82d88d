"""The scripts in examples/ run and reach what they claim."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_pytorch_style_loop_learns(capsys):
    runpy.run_path(str(EXAMPLES / "pytorch_style.py"), run_name="__main__")
    out = capsys.readouterr().out
    line = [s for s in out.splitlines() if s.startswith("final loss")][0]
    final = float(line.split()[2])
    variance = float(line.split("variance of y:")[1].strip(" )"))
    assert final < 0.05 * variance  # noise variance is 0.01 of ~5.3
