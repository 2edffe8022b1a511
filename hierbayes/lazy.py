"""Libraries imported at their first use. The default path (the numba kernels, run by nutpie)
builds no PyMC model, so ``import hierbayes`` and a fit leave PyMC and PyTensor unimported
(about a second) until a PyMC model is built, a prior predictive drawn, or a plot drawn."""

from __future__ import annotations

import importlib

__all__ = ["LazyModule"]


class LazyModule:
    """Stands for the module ``name``: the first attribute read imports it."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported at first use>"
