"""Compile every kernel once, ahead of the first fit (``scripts/setup.sh`` runs this after
installing), or load it from numba's disk cache: a tiny model of each kind goes through the
contract of its method (pack, run a few draws, complete), so whatever a fit calls is compiled
with the signatures it is called with.

numba's disk cache keys a kernel on its own module's source file, not on the modules of the
kernels it calls, so a kernel compiled against an older layout or callee would be loaded
unchanged. ``forget_stale_kernels`` (run first here, and by the test suite's conftest) deletes
the cached kernels of the package whenever the text of any kernel module changed since they
were compiled; nothing is deleted at import time.

    python -m hierbayes.methods.warm
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["warm_up", "forget_stale_kernels"]

KERNEL_FOLDERS = ("core", "marginal", "sampled", "methods")


def forget_stale_kernels() -> bool:
    """Delete numba's cached kernels of the package when the text of a kernel module changed
    since they were compiled (a hash kept beside them); whether it deleted any. Best effort:
    a read-only install keeps its cache."""
    package = Path(__file__).parent.parent
    sources = sorted(path for folder in KERNEL_FOLDERS for path in package.joinpath(folder).glob("*.py")
                     if "numba" in path.read_text())  # the modules with kernels
    try:
        digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()
        marker = package / "__pycache__" / "kernels.sha256"
        if marker.exists() and marker.read_text() == digest:
            return False
        for folder in {path.parent / "__pycache__" for path in sources}:
            for cached in [*folder.glob("*.nbi"), *folder.glob("*.nbc")]:
                cached.unlink(missing_ok=True)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(digest)
        return True
    except OSError:
        return False


def warm_up(progress: bool = False) -> None:
    """Each method's kernels, through its contract, on a tiny model of every kind it packs
    differently (one factor, nested with one and two effects a class, crossed, a GLMM full and
    by Laplace, Gibbs)."""
    import warnings

    import pandas as pd

    from ..design import make_design
    from ..priors import make_priors
    from .base import Settings
    from .choice import choose_method

    forget_stale_kernels()
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.normal(size=24), "x": rng.normal(size=24), "g": list("abc") * 8,
                         "h": list("abcdef") * 4, "c": list("abcd") * 6, "k": rng.integers(0, 2, 24)})  # h in g, c crossed
    cases = [("y ~ x + (x | g)", "gaussian", "marginal"), ("y ~ x + (x | g) + (1 | g:h)", "gaussian", "marginal"),
             ("y ~ x + (x | g) + (x | g:h)", "gaussian", "marginal"), ("y ~ x + (1 | g) + (1 | c)", "gaussian", "marginal"),
             ("k ~ x + (x | g)", "bernoulli", "full"), ("k ~ x + (x | g)", "bernoulli", "laplace"),
             ("y ~ x + (1 | g) + (x || c)", "gaussian", "gibbs")]  # fmt: skip
    settings = Settings(draws=2, tune=2, chains=2, seed=0, progressbar=False)  # two chains: the layouts a fit passes
    for formula, family, method in cases:
        if progress:
            print(f"    {method:8} {family:9} {formula}", flush=True)
        design = make_design(formula, data, family=family)
        priors = make_priors(design)
        choice = choose_method(design, priors, method)
        way = choice.method
        chosen = way.parameterize(design, priors, "auto")
        model = _Warm(design, priors, way.pack(design, priors, chosen))
        if hasattr(model.packed, "logp"):  # called from Python before sampling: its own compile
            model.packed.logp(model.packed.initial_point(0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = way.run(model, settings, choice.options)
            way.complete(model, idata, np.random.SeedSequence(0))


class _Warm:
    """The parts of a ``model.Model`` a method reads (this module sits below ``model``)."""

    def __init__(self, design, priors, packed):
        self.design, self.priors, self.packed = design, priors, packed


if __name__ == "__main__":
    warm_up(progress=True)
