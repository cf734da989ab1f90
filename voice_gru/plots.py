"""Figures written as PNG files: matplotlib on its Agg back end (no display needed), saved atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``matplotlib.pyplot.subplots`` on the Agg back end: ``(figure, axes)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_png(fig: Any, path: str | Path, dpi: int = 100) -> None:
    """Lay ``fig`` out, write it to ``path`` as PNG (atomically: a reader never sees half an image), and close it."""
    import matplotlib.pyplot as plt

    from voice_gru.fileio import atomic_path

    try:
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
