"""The sampler contract: what every way of sampling a ``Model`` implements (as PyMC's
``pymc/sampling/external/base.py`` closes its external samplers behind one class).

A ``Method`` says

- ``applies(design, priors)``: "" where it can sample the model, else why not, in words that
  end a sentence ("it samples Gaussian models ..."); the choice (``choice.choose_method``)
  reads it and nothing else;
- ``integrated(design)`` and ``parameterize(design, priors, parameterization)``: which
  factors' effects it integrates out, and how it samples the others;
- ``pack(design, priors, parameterization)``: the model as data for its kernels (or None
  where it needs none), made once by ``model.make_model``;
- ``run(model, settings, options)``: the draws, as a DataTree whose posterior has the PyMC
  model's names (``core.posterior``): one signature for every method, with the settings all
  share (``Settings``) and its own options as one object of ``options_type``;
- ``complete(model, idata, seed)``: what the sampler did not draw (the exact effects of
  integrated-out factors, the per-group log-likelihood); most methods have nothing to add.

``name`` is what ``fit.method`` reports (which effects are integrated out: ``marginal``,
``full``, ``laplace``, ``gibbs``), ``sampler`` what ``fit.sampler`` reports, ``advice`` what a
poorly mixed fit's warning adds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..core.parameters import priors_packable
from ..parameterization import choose_parameterization

__all__ = ["Method", "Settings", "NutsOptions", "PymcOptions", "GibbsOptions"]


@dataclass(frozen=True)
class Settings:
    """What every method takes: draws kept and tuning steps a chain, chains, the user's
    ``random_seed`` (each method derives its own streams from it) and the progress bar."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int | None = None
    progressbar: bool = True

    def __post_init__(self):
        for name, low in (("draws", 1), ("tune", 0), ("chains", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")


def check_target_accept(value) -> None:
    if not 0 < value < 1:
        raise ValueError(f"target_accept must be between 0 and 1, not {value!r}")


@dataclass(frozen=True)
class NutsOptions:
    """nutpie on a packed model: the step size's target acceptance and nutpie's own settings
    (``nuts={...}``: ``adaptation``, ``maxdepth``, ...)."""

    target_accept: float = 0.9
    nuts: dict = field(default_factory=dict)

    def __post_init__(self):
        check_target_accept(self.target_accept)


@dataclass(frozen=True)
class PymcOptions:
    """NUTS on the PyMC model: ``nuts_sampler`` ("nutpie" compiles the model, "pymc" runs
    PyMC's own NUTS), the target acceptance, and the options ``pymc.sample`` takes (checked
    by name before any sampling)."""

    nuts_sampler: str = "pymc"
    target_accept: float = 0.9
    sample: dict = field(default_factory=dict)

    def __post_init__(self):
        check_target_accept(self.target_accept)


@dataclass(frozen=True)
class GibbsOptions:
    """The Gibbs sampler has no options: no step size, no tuning but the dropped sweeps."""


class Method(ABC):
    """One way of sampling a model (see the module docstring)."""

    name: str
    sampler: str
    options_type: type
    advice: str = ""

    @abstractmethod
    def applies(self, design, priors) -> str:
        """"" where this method can sample the model, else why not."""

    @abstractmethod
    def pack(self, design, priors, parameterization: dict):
        """The model as data for this method's kernels, or None."""

    @abstractmethod
    def run(self, model, settings: Settings, options):
        """The draws: a DataTree whose posterior has the PyMC model's names and dims."""

    def complete(self, model, idata, seed):
        """``idata`` with what the sampler did not draw; ``seed`` a SeedSequence or None."""
        return idata

    def integrated(self, design) -> tuple[str, ...]:
        """The grouping factors whose effects this method integrates out (none by default)."""
        return ()

    def parameterize(self, design, priors, parameterization) -> dict:
        """``centered`` or ``noncentered`` for each block whose effects are sampled
        (``parameterization.choose_parameterization``; correlated blocks can be centred where
        the kernels evaluate every prior, as the packed sampled model does)."""
        integrated = self.integrated(design)
        sampled = [b for b in design.blocks if b.group not in integrated]
        return choose_parameterization(design, parameterization, sampled, correlated_centred=priors_packable(priors))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: method={self.name!r}, sampler={self.sampler!r}>"
