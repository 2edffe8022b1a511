"""``hb.fit``: the stages chained (formula -> design -> priors -> model -> NUTS -> FitResult)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .build import build_model, choose_method, observed_name
from .marginal import integrated_factor, nested_factors, packed_applies
from .design import make_design
from .formula import parse_formula
from .priors import make_priors
from .results import FitResult
from .sampling import SamplingWarning, available_sampler, diagnose, model_fingerprint, sample, sample_packed

__all__ = ["fit", "build"]

FAMILIES = ("gaussian",)


def build(formula: str, data: pd.DataFrame, family: str = "gaussian", priors: dict | None = None,
          reference: dict | None = None, parameterization: str | dict = "auto", method: str = "full"):
    """The unsampled ``pymc.Model`` of a formula, for users who want to change it first.

    ``method="full"`` (default here) keeps the group effects in the model; ``"marginal"``
    integrates them out (``hb.fit`` then draws them afterwards)."""
    _check_family(family)
    design = make_design(parse_formula(formula), data, reference=reference)
    return build_model(design, make_priors(design, priors), parameterization, method)


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
    method: str = "auto",
    **kwargs,
) -> FitResult:
    """Fit a Bayesian mixed model written as an lme4 formula.

    ``priors`` overrides the data-scaled defaults by brms parameter name (``"b"``,
    ``"sd_school"``, ``"cor"``, ``"sigma"``...); ``reference`` picks the reference level of
    categorical columns (``{"schgend": "mixed"}``). Everything is checked before sampling.
    Divergences, R-hat > 1.01 and ESS < 400 are reported as warnings that say what to try.
    ``parameterization`` ("auto", "centered", "noncentered", or a dict by block name) chooses
    how group effects are sampled; "auto" centres one-term blocks whose groups are well informed.
    ``method``: "marginal" integrates the group effects out of the sampler and draws them
    exactly afterwards (both factors when two are nested; with crossed factors, those of the
    factor with the most levels, the others sampled); "full" samples them all; "auto" (the
    default) picks marginal where it applies. ``fit.method`` says which was used. With one
    grouping factor or two nested ones and nutpie, the marginal model is sampled by
    ``hierbayes.marginal_numba`` (no per-model compile step); other models are built in PyMC
    and compiled by nutpie.
    """
    _check_family(family)
    sampler = available_sampler(sampler)
    design = make_design(parse_formula(formula), data, reference=reference)
    resolved = make_priors(design, priors)
    method = choose_method(design, method)
    model = build_model(design, resolved, parameterization, method)
    packed = None  # the numba-written model, where it applies (see hierbayes.marginal_numba)
    if method == "marginal" and sampler == "nutpie" and set(kwargs) <= {"nuts"} and packed_applies(design, resolved):
        idata, packed = sample_packed(design, resolved, draws=draws, tune=tune, chains=chains,
                                      random_seed=random_seed, target_accept=target_accept, progressbar=progressbar,
                                      nuts=kwargs.get("nuts"))  # fmt: skip
    else:  # nutpie reuses the compiled model of an identical earlier fit in this process
        key = model_fingerprint(design.spec, design.y, design.X, [(b.name, b.Z, b.correlated) for b in design.blocks],
                                [(f.levels, f.codes) for f in design.factors.values()], resolved.table().to_csv(),
                                method, parameterization)  # fmt: skip
        idata = sample(model, draws=draws, tune=tune, chains=chains, random_seed=random_seed, sampler=sampler,
                       progressbar=progressbar, target_accept=target_accept, cache_key=key, **kwargs)
    integrated = []
    if method == "marginal":
        from .marginal import draw_group_effects, draw_nested_group_effects

        seed = None if random_seed is None else np.random.SeedSequence(random_seed).spawn(1)[0]
        if packed is not None and packed.nested:  # both nested factors integrated out
            effects, loglik = draw_nested_group_effects(design, idata.posterior.dataset, packed, random_seed=seed)
            integrated = list(nested_factors(design))
        else:
            effects, loglik = draw_group_effects(design, idata.posterior.dataset, random_seed=seed)
            integrated = [integrated_factor(design)]
        for name, draws_ in effects.items():
            idata.posterior[name] = draws_
        idata["posterior"].attrs["integrated_factors"] = ", ".join(integrated)
        # one term per group: LOO from it leaves out a whole group (see FitResult.loo)
        idata["log_likelihood"] = xr.Dataset({observed_name(design): loglik})
    # sampled group effects are checked too; exact draws afterwards (marginal) need no check
    exact = {b.name for b in design.blocks if b.group in integrated}
    watched = ["b", "sigma"] + [f"sd_{b.name}" for b in design.blocks]
    watched += [f"r_{b.name}" for b in design.blocks if b.name not in exact]
    watched += [f"cor_{b.name}" for b in design.blocks if b.correlated]
    diagnostics = diagnose(idata, watched)
    for message in diagnostics.messages:
        warnings.warn(message, SamplingWarning, stacklevel=2)
    return FitResult(design=design, priors=resolved, model=model, idata=idata, sampler=sampler,
                     diagnostics=diagnostics, method=method, random_seed=random_seed)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not supported yet; available: {', '.join(FAMILIES)}")
