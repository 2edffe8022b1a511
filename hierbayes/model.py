"""Stage 4: Design + Priors -> Model: how the model is sampled, packed as data for its kernels.

``make_model`` asks ``methods.choice.choose_method`` for the way of sampling (the one place it
is chosen, with its reason) and lets that method decide which factors' effects are integrated
out, how sampled group effects are parameterised (``parameterization``) and how the model is
packed: the sufficient statistics where Gaussian effects are integrated out
(``marginal.density``), the rows where effects are sampled (``sampled.density``, any family;
with crossed factors of a Gaussian model the largest factor integrated out there), the rows
and codes of a Gibbs sweep (``methods.gibbs``), or nothing for the PyMC model. The ``Model``
builds its ``pymc.Model`` (``pymc_model``) on first use only: the default methods never need
one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .design import Design
from .methods.base import Method
from .methods.choice import choose_method
from .priors import Priors, make_priors
from .pymc_model import build_pymc, coords

__all__ = ["Model", "make_model", "build_model"]


@dataclass(frozen=True)
class Model:
    """What is sampled: the design, its priors, the method (``marginal``, ``full``, ``laplace``,
    ``gibbs``), the factors whose effects are integrated out, how sampled blocks are
    parameterised, the packed model the method's kernels read, the method itself with its
    options and why it was chosen. ``pymc`` builds the PyMC model on first use."""

    design: Design = field(repr=False)
    priors: Priors = field(repr=False)
    method: str
    integrated: tuple[str, ...]
    parameterization: dict = field(repr=False)
    packed: object = field(default=None, repr=False)
    sampler: Method | None = field(default=None, repr=False)  # the way of sampling (``methods``)
    options: object = field(default=None, repr=False)  # the sampler's own options
    reason: str = ""  # why this method (``fit.method_reason``)

    @cached_property
    def pymc(self):
        """The ``pymc.Model`` (built once, on first use); change it freely before sampling."""
        return build_pymc(self)


def make_model(design: Design, priors: Priors | dict | None = None, method: str = "auto",
               parameterization: str | dict = "auto", sampler: str = "auto", options: dict | None = None,
               target_accept: float = 0.9) -> Model:  # fmt: skip
    """How ``design`` is sampled (see the module docstring); builds nothing in PyMC yet.
    ``sampler`` and ``options`` (what ``hb.fit`` passes on to the sampler) take part in the
    choice: NUTS options rule out the Gibbs sampler, PyMC's options the packed kernels."""
    priors = make_priors(design, priors)
    choice = choose_method(design, priors, method, parameterization, sampler, options, target_accept)
    coords(design)  # a grouping factor named like a posterior variable fails here, before sampling
    chosen = choice.method.parameterize(design, priors, parameterization)
    return Model(design, priors, choice.method.name, choice.method.integrated(design), chosen,
                 choice.method.pack(design, priors, chosen), choice.method, choice.options, choice.reason)  # fmt: skip


def build_model(
    design: Design, priors: Priors | dict | None = None, parameterization: str | dict = "auto",
    method: str = "full",
):
    """The PyMC model of ``design``; change it freely before sampling.

    ``method="marginal"`` integrates the group effects out (see ``hierbayes.marginal``): the
    model then has no ``r_<block>`` variables; ``hb.fit`` draws them exactly after sampling.
    """
    return make_model(design, priors, method, parameterization).pymc
