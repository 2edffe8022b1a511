"""The one place a model's way of sampling is chosen, and the reason recorded with it.

``method`` (what the user asks: "auto", "marginal", "full", "laplace", "gibbs") says which
group effects are integrated out; ``sampler`` ("auto", "nutpie", "pymc") and the sampler
options say what may run NUTS. ``choose_method`` turns them into one ``Method`` of the
contract (``base``), its options and a sentence that says why:

- ``gibbs`` (``gibbs.Gibbs``) when asked, or by ``auto`` for crossed factors of a Gaussian
  model whose blocks have one term and whose groups are all well informed (every block's
  information ratio over ``GIBBS_INFORMATION``, at least ``GIBBS_GROUPS`` groups a factor),
  unless a sampler, sampler options or a parameterisation is given (those ask for NUTS);
- ``laplace`` (``laplace.Laplace``) only when asked;
- otherwise ``marginal`` (``integrated.Integrated``: Gaussian effects integrated out) where it
  applies, else ``full`` (``full.Full``), both nutpie on the packed kernels; NUTS on the PyMC
  model (``pymc.PyMC``, the same form) where those cannot serve: ``sampler="pymc"``, a prior
  the kernels do not evaluate, or options only ``pymc.sample`` takes.

Every refusal is a ``ValueError`` (or ``TypeError`` for an unknown option) raised here, before
any sampling, naming what to use instead.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ..marginal.stats import integrated_factors, marginal_applies
from ..parameterization import well_informed
from .base import GibbsOptions, Method, NutsOptions, PymcOptions
from .full import Full
from .gibbs import Gibbs
from .integrated import Integrated
from .laplace import Laplace
from .pymc import PyMC, check_sampler_options

__all__ = ["METHODS", "Choice", "choose_method", "available_sampler", "GIBBS_INFORMATION", "GIBBS_GROUPS"]

METHODS = ("auto", "marginal", "full", "laplace", "gibbs")
# method="auto" samples crossed factors by Gibbs when every block's information ratio exceeds
# this (centred NUTS needs 1): in the crossed SBC class, Gibbs fits of true ratios 1-3 had bulk
# ESS down to 7 of 1000 draws; run.py crossed's design estimates 4.4 (true 6)
GIBBS_INFORMATION = 3.0
# ... and every factor has this many groups: with fewer, the ratio's estimate is noisy and the
# SD's posterior reaches down to where centred Gibbs sticks (the crossed SBC class, 8 x 10
# groups: a fit estimated above 3, true 0.7, R-hat 1.23)
GIBBS_GROUPS = 20


@dataclass(frozen=True)
class Choice:
    """The method chosen, its options, and why (``fit.method_reason``)."""

    method: Method
    options: object
    reason: str


def available_sampler(sampler: str = "auto") -> str:
    """``auto`` is nutpie when installed (compiled NUTS, fastest here), else PyMC's."""
    if sampler not in ("auto", "nutpie", "pymc"):
        raise ValueError(f"sampler must be 'auto', 'nutpie' or 'pymc', not {sampler!r}")
    if sampler == "auto":
        return "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    if sampler == "nutpie" and not importlib.util.find_spec("nutpie"):
        raise ImportError("sampler='nutpie' needs the nutpie package: pip install nutpie")
    return sampler


def choose_method(design, priors, method: str = "auto", parameterization="auto", sampler: str = "auto",
                  options: dict | None = None, target_accept: float = 0.9) -> Choice:  # fmt: skip
    """The ``Choice`` for ``design`` and ``priors`` (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    options = dict(options or {})
    nuts_sampler = available_sampler(sampler)
    nuts = NutsOptions(target_accept, dict(options.get("nuts") or {}))
    others = sorted(set(options) - {"nuts"})  # options only pymc.sample takes
    gibbs = Gibbs()
    if method == "gibbs":
        if sampler != "auto" or options:
            raise ValueError(f"method='gibbs' runs hierbayes' own Gibbs sampler: it takes no sampler={sampler!r} "
                             f"and no sampler options ({', '.join(sorted(options)) or 'none given'}); use "
                             "method='auto' or 'full' for NUTS")  # fmt: skip
        why = gibbs.applies(design, priors)
        if why:
            raise ValueError(f"method='gibbs' does not apply: {why}; use method='auto'")
        return Choice(gibbs, GibbsOptions(), "method='gibbs' asked for")
    if method == "laplace":
        laplace = Laplace()
        why = laplace.applies(design, priors)
        if why:
            raise ValueError(f"method='laplace' does not apply: {why}; use method='full'")
        if nuts_sampler != "nutpie" or others:
            raise ValueError("method='laplace' is sampled by nutpie on hierbayes' own kernels: it needs sampler='nutpie' "
                             "(or 'auto' with nutpie installed) and no other sampler options than nuts=")  # fmt: skip
        return Choice(laplace, nuts, "method='laplace' asked for")
    ok, why_not = marginal_applies(design)
    if method == "marginal" and not ok:
        raise ValueError(f"method='marginal' does not apply: {why_not}; use method='full'")
    marginal = method == "marginal" or (method == "auto" and ok)
    if method == "auto" and marginal:
        crossed = len(integrated_factors(design)) < len({b.group for b in design.blocks})
        nuts_asked = sampler != "auto" or bool(options) or parameterization != "auto"
        if crossed and not nuts_asked and not gibbs.applies(design, priors):
            fewest = min(design.factors[b.group].n_levels for b in design.blocks)
            if fewest >= GIBBS_GROUPS and well_informed(design, GIBBS_INFORMATION):
                return Choice(gibbs, GibbsOptions(),
                              f"crossed factors whose groups are all well informed (information ratio over "
                              f"{GIBBS_INFORMATION:g} for every block, {fewest} groups or more a factor)")  # fmt: skip
    if method == "auto":
        factors = " and ".join(integrated_factors(design)) if marginal else ""
        reason = (f"the Gaussian group effects of {factors} integrated out exactly" if marginal
                  else f"every group effect sampled: {why_not}")  # fmt: skip
    else:
        reason = f"method={method!r} asked for"
    check_sampler_options(options, nuts_sampler)
    packed = Integrated() if marginal else Full()
    why = packed.applies(design, priors)
    if nuts_sampler == "nutpie" and not why and not others:
        return Choice(packed, nuts, f"{reason}; nutpie on hierbayes' kernels")
    if nuts_sampler == "pymc":
        because = f"sampler={sampler!r}" if sampler == "pymc" else "nutpie, which is not installed"
    else:
        because = why or f"options only pymc.sample takes ({', '.join(others)})"
    name = "marginal" if marginal else "full"
    return Choice(PyMC(name, nuts_sampler), PymcOptions(nuts_sampler, target_accept, options),
                  f"{reason}; NUTS on the PyMC model ({'nutpie' if nuts_sampler == 'nutpie' else 'PyMC'}), "
                  f"because of {because}")  # fmt: skip
