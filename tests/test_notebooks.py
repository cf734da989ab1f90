"""The notebooks in notebooks/ run top to bottom, and the committed copies carry their outputs.

The slow test executes each notebook (quick mode: ``VOICE_GRU_NB_QUICK=1``, fewer epochs and a
shorter stream) with a kernel from this interpreter, into a temporary copy: the committed
notebooks are never modified, and run folders, PNGs and feature caches go under tmp_path (the
dataset folder is read-only in CI). The fast test checks the committed notebooks without a kernel.
Re-execute the committed notebooks with ``.venv/bin/python notebooks/run_all.py``.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
NOTEBOOKS = ("01_data_and_features.ipynb", "02_train_and_evaluate.ipynb", "03_streaming.ipynb")
CELL_TIMEOUT_S = 300  # per cell; the whole quick run takes ~1.5-2 min on a loaded 2-core machine
MAX_BYTES = 1_500_000


def _run_all():
    spec = importlib.util.spec_from_file_location("voice_gru_notebooks_run_all", NB_DIR / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_all_lists_every_notebook():
    assert tuple(_run_all().NOTEBOOKS) == NOTEBOOKS
    assert sorted(p.name for p in NB_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


def test_run_all_writes_a_notebook_whole_or_not_at_all(tmp_path, monkeypatch, capsys):
    """It wrote in place with nbformat.write: a full disk mid-write left broken JSON, the notebook's cells lost. An
    --out that is a file was a traceback."""
    nbformat = pytest.importorskip("nbformat")
    run_all = _run_all()
    src = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), src)
    before = src.read_bytes()

    class FullDisk:
        def __init__(self, nb, **kw):
            pass

        def execute(self):
            pass

    monkeypatch.setattr("nbclient.NotebookClient", FullDisk)
    monkeypatch.setattr(nbformat, "writes", lambda *a, **kw: "{" + "x" * 10)  # then the disk fills up
    real_replace = __import__("os").replace

    def full(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    with pytest.raises(OSError):
        run_all.execute_notebook(src)
    monkeypatch.setattr("os.replace", real_replace)
    assert src.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["n.ipynb"]
    (tmp_path / "afile").write_text("")
    assert run_all.main(["--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == f"run_all: error: --out {tmp_path / 'afile'}: File exists\n"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_outputs(name):
    """Saved with outputs (they read well on a code-hosting site), no errors, small enough."""
    nbformat = pytest.importorskip("nbformat")
    path = NB_DIR / name
    assert path.stat().st_size < MAX_BYTES, f"{name} is {path.stat().st_size / 1e6:.2f} MB: shrink its figures"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "torch.set_num_threads(1)" in code[0].source, "the first code cell must set one torch thread"
    assert "DATA_DIR" in code[0].source and "VOICE_GRU_DATA" in code[0].source
    unexecuted = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unexecuted, f"{name}: code cells {unexecuted} were not executed; run notebooks/run_all.py"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: saved with an error output: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert sum(1 for c in code if c.outputs) >= len(code) // 2, f"{name}: most cells have no saved output"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, shared_data, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("VOICE_GRU_DATA", str(shared_data))
    monkeypatch.setenv("VOICE_GRU_NB_QUICK", "1")
    monkeypatch.setenv("VOICE_GRU_NB_OUT", str(tmp_path / "out"))  # XDG_CACHE_HOME: tmp too (conftest)
    copy = tmp_path / name
    shutil.copyfile(NB_DIR / name, copy)
    before = (NB_DIR / name).read_bytes()

    # cwd notebooks/, as when a person opens it; a failing cell raises CellExecutionError with its traceback
    _run_all().execute_notebook(copy, copy, cwd=NB_DIR, timeout=CELL_TIMEOUT_S)

    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert "quick mode: True" in "".join(o.get("text", "") for o in code[0].outputs)
    assert (NB_DIR / name).read_bytes() == before, "the committed notebook was modified"
    assert copy.stat().st_size < MAX_BYTES


def _stream_text(name: str) -> str:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NB_DIR / name, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_committed_notebooks_show_the_shipped_model_as_it_is(shared_data):
    """The saved outputs were made with the model that ships now: a new model, new thresholds or decision settings
    mean the notebooks must be run again (notebooks/run_all.py), or they tell readers figures of a model that is
    gone. Skipped for another dataset than the one they were saved with (their testing split is another)."""
    import os

    from voice_gru import CommandSpotter
    from voice_gru.evaluate import collect_inputs, evaluate_items, format_report
    from voice_gru.model import resolve_model

    text02 = _stream_text("02_train_and_evaluate.ipynb")
    if f"data: {os.path.relpath(shared_data, REPO)} " not in text02:
        pytest.skip(f"the notebooks were saved with another dataset than {shared_data}")
    spotter = CommandSpotter()
    text03 = _stream_text("03_streaming.ipynb")
    d = spotter.decision
    assert f"thresholds: {spotter.thresholds}" in text03
    assert (f"decision: average over {d.smooth_ms:g} ms, top class above its threshold for {d.min_duration_ms:g} ms, "
            f"no command while _unknown_ reached {d.unknown_veto:g} within {d.unknown_veto_ms:g} ms") in text03
    ckpt = resolve_model(None)
    report = evaluate_items(ckpt, collect_inputs([shared_data], "testing", ckpt.labels), progress=False)
    # the whole report but its speed line: every class's figures and the confusions
    assert format_report(report).rsplit(" unreadable, ", 1)[0] in text02
