"""NUTS on the PyMC model (``Model.pymc``): PyMC's own sampler, or nutpie compiling the graph.

Taken where the packed kernels cannot serve: a prior they do not evaluate, ``sampler="pymc"``,
or sampler options only ``pymc.sample`` takes. The model is the same: with ``method=
"marginal"`` the same factors are integrated out (the kernels through PyTensor's Op, crossed
designs in PyTensor arithmetic) and their effects drawn exactly afterwards, as the packed
method does (``integrated.complete_integrated``).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging

import numpy as np

from ..core.parameters import priors_packable
from ..lazy import LazyModule
from ..marginal.density import pack_model
from ..marginal.stats import integrated_blocks, integrated_factors, marginal_applies, sampled_blocks
from ..sampled.density import pack_sampled
from .base import Method, PymcOptions
from .integrated import complete_integrated
from .nutpie import nutpie_settings

pm, pytensor = LazyModule("pymc"), LazyModule("pytensor")

__all__ = ["PyMC", "sample", "check_sampler_options", "pymc_quiet"]


class PyMC(Method):
    """NUTS on ``model.pymc``, of the ``marginal`` or the ``full`` form."""

    options_type = PymcOptions

    def __init__(self, name: str = "full", nuts_sampler: str = "pymc"):
        self.name, self.sampler = name, nuts_sampler

    def applies(self, design, priors) -> str:
        return marginal_applies(design)[1] if self.name == "marginal" else ""

    def integrated(self, design) -> tuple[str, ...]:
        return integrated_factors(design) if self.name == "marginal" else ()

    def pack(self, design, priors, parameterization):
        """The integrated-out likelihood's buffer for the Op (one factor or two nested); with
        crossed factors the sampled model's rows where the kernels evaluate every prior, which
        then draw the integrated effects afterwards."""
        if self.name != "marginal":
            return None
        if not sampled_blocks(design):
            return pack_model(design, priors)
        if priors_packable(priors):
            return pack_sampled(design, priors, parameterization, integrated=tuple(integrated_blocks(design)))
        return None

    def run(self, model, settings, options: PymcOptions):
        return sample(model.pymc, draws=settings.draws, tune=settings.tune, chains=settings.chains,
                      random_seed=settings.seed, sampler=options.nuts_sampler, target_accept=options.target_accept,
                      progressbar=settings.progressbar, **options.sample)  # fmt: skip

    def complete(self, model, idata, seed):
        return complete_integrated(model, idata, seed) if self.name == "marginal" else idata


@contextlib.contextmanager
def pymc_quiet():
    """PyMC logs what it samples at INFO ("NUTS[nutpie]: [...]", "Sampling: [...]") whatever the
    progress bar; a fit prints only the progress bar (when asked) and warnings."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_sampler_options(options: dict, sampler: str) -> None:
    """Refuse, before sampling, an option that PyMC's ``sample`` (with PyMC's own sampler, also
    its NUTS) does not take, naming the nearest valid one: nutpie's ``seed`` is ``random_seed``
    here. Else a misspelt option reached PyMC only after the whole PyMC model was built."""
    unknown = set(options) - {"nuts"}
    if not unknown:
        return
    valid = set(inspect.signature(pm.sample).parameters) | {"target_accept"}
    if sampler == "pymc":
        hmc = pm.step_methods.hmc
        valid |= set(inspect.signature(hmc.NUTS.__init__).parameters)
        valid |= set(inspect.signature(hmc.base_hmc.BaseHMC.__init__).parameters)
    valid -= {"self", "kwargs", "model", "vars"}
    for name in sorted(unknown - valid):
        near = ["random_seed"] if name == "seed" else difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]!r}?" if near else "; nutpie's own options go in nuts={...}"
        raise TypeError(f"hb.fit() got an unexpected keyword argument {name!r}{hint}")


def sample(model, *, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed: int | None = None,
           sampler: str = "pymc", target_accept: float = 0.9, progressbar: bool = True, **kwargs):  # fmt: skip
    """Run NUTS on the ``pymc.Model`` ``model`` (``sampler``: "pymc" or "nutpie"); returns the
    ArviZ DataTree. The same seed gives the same draws."""
    if sampler == "nutpie":
        kwargs["nuts"] = nutpie_settings(kwargs.pop("nuts", None), _n_parameters(model))
    # PyTensor compiles for numba with fastmath on: LLVM may then reorder arithmetic, so code
    # compiled in this process and the same code loaded from PyTensor's disk cache round
    # differently, and the same seed gave other draws depending on what the cache held.
    exact = pytensor.config.change_flags(numba__fastmath=False)
    with model, pymc_quiet(), exact:
        return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed, nuts_sampler=sampler,
                         target_accept=target_accept, progressbar=progressbar,
                         compute_convergence_checks=False, **kwargs)  # fmt: skip  # ours follow, with advice


def _n_parameters(model) -> int:
    """How many numbers NUTS samples (the size of the unconstrained space)."""
    return int(sum(np.size(v) for v in model.initial_point().values()))
