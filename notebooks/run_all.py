"""Execute the notebooks top to bottom and write them back with their outputs.

    .venv/bin/python notebooks/run_all.py                  # all notebooks, in place
    .venv/bin/python notebooks/run_all.py 02_train_and_evaluate.ipynb
    .venv/bin/python notebooks/run_all.py --quick --out /tmp/nb   # the test's settings, copies elsewhere

The kernel is this interpreter (the project's venv): whatever ``python3`` kernel another Jupyter
installation registered is not used. Each notebook runs with ``notebooks/`` as its working
directory. Environment variables the notebooks read: ``VOICE_GRU_DATA`` (dataset root, default
``../shared/speech_commands`` beside the repository), ``VOICE_GRU_NB_OUT`` (run folders and PNGs,
default ``runs/notebooks``), ``VOICE_GRU_NB_QUICK=1`` (less work: fewer epochs, a shorter stream).
``tests/test_notebooks.py`` imports ``execute_notebook`` from here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent
NOTEBOOKS = ("01_data_and_features.ipynb", "02_train_and_evaluate.ipynb", "03_streaming.ipynb")


def _kernel_manager():
    """A kernel manager whose kernel is ``sys.executable -m ipykernel_launcher``."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    class ThisInterpreter(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Python 3 (ipykernel)", language="python")

    return KernelManager(kernel_name="python3", kernel_spec_manager=ThisInterpreter())


def execute_notebook(src: str | Path, dst: str | Path | None = None, cwd: str | Path = NOTEBOOK_DIR,
                     timeout: int = 900) -> float:
    """Run notebook ``src`` (cell timeout ``timeout`` s), write it with outputs to ``dst`` (default:
    in place); return the seconds it took. A failing cell raises ``nbclient``'s CellExecutionError
    and nothing is written."""
    import nbformat
    from nbclient import NotebookClient

    src = Path(src)
    nb = nbformat.read(src, as_version=4)
    km = _kernel_manager()
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(cwd)}},
                            coalesce_streams=True, record_timing=False)
    t0 = time.perf_counter()
    try:
        client.execute()
    finally:  # a kernel manager passed in is not shut down by nbclient
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - t0
    for cell in nb.cells:  # progress bars that cleared themselves leave whitespace-only stderr behind
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and not o.text.strip())]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    from voice_gru.fileio import write_text

    # written whole or not at all: a full disk mid-write left the notebook in place as broken JSON, its cells lost
    write_text(Path(dst) if dst else src, nbformat.writes(nb) + "\n")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"notebooks to run (default: {' '.join(NOTEBOOKS)})")
    p.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="set VOICE_GRU_NB_QUICK=1 (less work, for checks)")
    p.add_argument("--out", help="write the executed notebooks into this folder instead of in place")
    args = p.parse_args(argv)
    if args.quick:
        os.environ["VOICE_GRU_NB_QUICK"] = "1"
    names = args.names or list(NOTEBOOKS)
    if args.out:
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file of that name, a read-only disk: one line, not a traceback
            print(f"run_all: error: --out {args.out}: {exc.strerror}", file=sys.stderr)
            return 2
    total = 0.0
    for name in names:
        src = NOTEBOOK_DIR / Path(name).name
        if not src.is_file():
            print(f"run_all: error: {src}: no such notebook", file=sys.stderr)
            return 2
        dst = Path(args.out) / src.name if args.out else src
        print(f"{src.name}: running ...", flush=True)
        seconds = execute_notebook(src, dst, timeout=args.timeout)
        total += seconds
        print(f"{src.name}: {seconds:.0f} s, {dst.stat().st_size / 1e6:.2f} MB -> {dst}", flush=True)
    print(f"all done in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
