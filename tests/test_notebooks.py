"""The notebooks in ``notebooks/`` run top to bottom.

Each notebook's code cells are executed in order in one namespace, as a kernel would run
them (no Jupyter kernel needed, so this runs with the test extras alone; plots use the
non-interactive Agg backend when matplotlib is installed, and the notebooks print a hint
instead when it is not). A notebook that raises fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch, capsys):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    namespace: dict = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        assert not cell.get("outputs"), f"{path.name} cell {i}: commit notebooks without outputs"
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Traceback" not in out
    # The quickstart's own checks, printed as it runs.
    if path.name == "quickstart.ipynb":
        assert "restored identical parameters: True" in out
        assert float(out.split("max difference to finite differences:")[1].split()[0]) < 1e-6
