"""Which implementation the live path's inner loops use: compiled (``voice_gru.jit_kernels``, numba)
or NumPy calls, and the loader that falls back from one to the other.

Kept apart from ``jit_kernels`` because that module imports numba at once: where numba or llvmlite
is broken, importing it fails, and the live path must still run (on the NumPy code, with a warning).
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

KERNELS = ("numba", "numpy")


def check_kernel(kernel: str, what: str) -> None:
    """Raise ValueError unless ``kernel`` is one of ``KERNELS`` (``what`` names the caller's part)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown {what} kernel '{kernel}' (expected one of {', '.join(KERNELS)})")


def compiled_kernels() -> ModuleType | None:
    """The module ``voice_gru.jit_kernels``, its kernels loaded, or None (with a warning) where numba cannot load them."""
    try:  # imported here: numba's import costs ~0.3 s, and only the live path needs it
        kernels = importlib.import_module("voice_gru.jit_kernels")
        kernels.warm()
        return kernels
    except Exception as e:  # a broken numba/llvmlite install must not stop the live path
        warnings.warn(f"compiled kernels unavailable ({type(e).__name__}: {e}); using the NumPy code", RuntimeWarning,
                      stacklevel=3)
        return None
