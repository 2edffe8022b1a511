"""``hb.fit`` and ``hb.build``: the stages chained, nothing else.

    parse_formula -> make_design -> make_priors -> make_model -> sample_model -> FitResult

as lme4's ``lmer`` chains ``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``.
"""

from __future__ import annotations

import pandas as pd

from .design import make_design
from .formula import parse_formula
from .model import make_model
from .priors import make_priors
from .results import FitResult
from .sampling import sample_model

__all__ = ["fit", "build"]


def build(formula: str, data: pd.DataFrame, family: str | None = None, priors: dict | None = None,
          reference: dict | None = None, parameterization: str | dict = "auto", method: str = "full",
          link: str | None = None):  # fmt: skip
    """The unsampled ``pymc.Model`` of a formula, for users who want to change it first.

    ``method="full"`` (default here) keeps the group effects in the model; ``"marginal"``
    integrates them out (``hb.fit`` then draws them afterwards)."""
    design = make_design(parse_formula(formula), data, reference=reference, family=family, link=link)
    return make_model(design, make_priors(design, priors), method, parameterization).pymc


def fit(
    formula: str,
    data: pd.DataFrame,
    family: str | None = None,
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
    link: str | None = None,
    weights=None,
    **kwargs,
) -> FitResult:
    """Fit a Bayesian mixed model written as an lme4 formula.

    ``family``: "gaussian" (default), "student_t" ("t"), "bernoulli", "binomial" (a 0/1
    response is Bernoulli; ``cbind(s, f)`` and ``p(s, n)`` responses imply it), "poisson",
    "negativebinomial"; ``link`` another link than the family's canonical one (``"probit"``);
    ``weights`` (a column name or array) the trials of a binomial proportion response.

    ``priors`` overrides the data-scaled defaults by brms parameter name (``"b"``,
    ``"sd_school"``, ``"cor"``, ``"sigma"``...); ``reference`` picks the reference level of
    categorical columns (``{"schgend": "mixed"}``). Everything is checked before sampling.
    Divergences, R-hat > 1.01 and ESS < 400 are reported as warnings that say what to try.
    ``parameterization`` ("auto", "centered", "noncentered", or a dict by block name) chooses
    how group effects are sampled; "auto" centres one-term blocks whose groups are well informed.
    ``method``: "marginal" integrates the group effects out of the sampler and draws them
    exactly afterwards (both factors when two are nested; with crossed factors, those of the
    factor with the most levels, the others sampled); "full" samples them all; "laplace"
    integrates a GLMM's effects of one grouping factor out by a Laplace approximation (logit
    binomial, log Poisson and negative binomial; opt-in); "gibbs" draws every quantity from its
    exact conditional in turn (``hierbayes.methods.gibbs``: Gaussian models whose blocks have one term);
    "auto" (the default) picks gibbs for crossed factors whose groups are all well informed
    (unless a ``sampler`` or NUTS options are given), else marginal where it applies, else full.
    ``fit.method`` says which was used and ``fit.method_reason`` why (``hierbayes.methods.choice``);
    the sampler never changes which factors are integrated out. nutpie samples a packed model
    (no per-model compile step): ``hierbayes.marginal`` for one grouping factor or two nested
    ones, ``hierbayes.sampled`` for the full model and for crossed factors (the largest
    integrated out). Other keyword arguments are sampler options: ``nuts={...}`` nutpie's own,
    anything else ``pymc.sample``'s (which then samples the PyMC model).
    """
    design = make_design(parse_formula(formula), data, reference=reference, family=family, link=link, weights=weights)
    model = make_model(design, make_priors(design, priors), method, parameterization, sampler, kwargs, target_accept)
    sampled = sample_model(model, draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar)
    return FitResult(built=model, idata=sampled.idata, sampler=sampled.sampler, diagnostics=sampled.diagnostics,
                     random_seed=random_seed)  # fmt: skip
