"""``hb.fit``: the stages chained (formula -> design -> priors -> model -> NUTS -> FitResult)."""

from __future__ import annotations

import warnings

import pandas as pd

from .build import build_model
from .design import make_design
from .formula import parse_formula
from .priors import make_priors
from .results import FitResult
from .sampling import SamplingWarning, available_sampler, diagnose, sample

__all__ = ["fit", "build"]

FAMILIES = ("gaussian",)


def build(formula: str, data: pd.DataFrame, family: str = "gaussian", priors: dict | None = None,
          reference: dict | None = None, parameterization: str | dict = "auto"):
    """The unsampled ``pymc.Model`` of a formula, for users who want to change it first."""
    _check_family(family)
    design = make_design(parse_formula(formula), data, reference=reference)
    return build_model(design, make_priors(design, priors), parameterization)


def fit(
    formula: str,
    data: pd.DataFrame,
    family: str = "gaussian",
    priors: dict | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    sampler: str = "auto",
    progressbar: bool = True,
    reference: dict | None = None,
    target_accept: float = 0.9,
    parameterization: str | dict = "auto",
    **kwargs,
) -> FitResult:
    """Fit a Bayesian mixed model written as an lme4 formula.

    ``priors`` overrides the data-scaled defaults by brms parameter name (``"b"``,
    ``"sd_school"``, ``"cor"``, ``"sigma"``...); ``reference`` picks the reference level of
    categorical columns (``{"schgend": "mixed"}``). Everything is checked before sampling.
    Divergences, R-hat > 1.01 and ESS < 400 are reported as warnings that say what to try.
    ``parameterization`` ("auto", "centered", "noncentered", or a dict by block name) chooses
    how group effects are sampled; "auto" centres one-term blocks whose groups are well informed.
    """
    _check_family(family)
    sampler = available_sampler(sampler)
    design = make_design(parse_formula(formula), data, reference=reference)
    resolved = make_priors(design, priors)
    model = build_model(design, resolved, parameterization)
    idata = sample(model, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                   sampler=sampler, progressbar=progressbar, target_accept=target_accept, **kwargs)
    watched = ["b", "sigma"] + [f"{p}_{b.name}" for b in design.blocks for p in ("sd", "r")]
    watched += [f"cor_{b.name}" for b in design.blocks if b.correlated]
    diagnostics = diagnose(idata, watched)
    for message in diagnostics.messages:
        warnings.warn(message, SamplingWarning, stacklevel=2)
    return FitResult(design=design, priors=resolved, model=model, idata=idata, sampler=sampler,
                     diagnostics=diagnostics)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not supported yet; available: {', '.join(FAMILIES)}")
