"""Predictive checks: what the priors imply before sampling, and whether the fit reproduces
the data group by group.

``ppc(fit, stat, group)``: for each level j of ``group``, a statistic T (mean, sd, min, max,
median or any function of a 1-D array) of the observed rows, T(y_j), against its posterior
predictive distribution, T(y_j^rep) with y^rep ~ p(y | theta, b) drawn for every posterior
draw. ``p`` is the posterior predictive p-value P(T(y_j^rep) >= T(y_j) | y): values near 0 or
1 flag a group the model does not reproduce; about (1 - prob) of the groups fall outside
their interval by chance alone.

``prior_predictive(formula, data, priors)``: draws of every parameter from its prior and of
a replicated response for each (the full model's likelihood: group effects drawn too),
summarised against the observed response, as brms's ``sample_prior = "only"`` and
``pp_check`` are used to check that priors are sensible.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from . import names
from .design import make_design
from .model import make_model
from .predict import predict
from .sampling import pymc_quiet

__all__ = ["ppc", "prior_predictive", "PriorPredictive", "STATS"]

STATS = {"mean": np.mean, "sd": lambda v, axis: np.std(v, axis=axis, ddof=1), "min": np.min, "max": np.max,
         "median": np.median}  # fmt: skip


def ppc(fit, stat="mean", group: str | None = None, prob: float = 0.9, max_draws: int = 1000,
        random_seed: int | None = 0) -> pd.DataFrame:  # fmt: skip
    """One row per level of ``group`` (or one row, ``all``): n, observed, the predictive mean,
    lower, upper (equal-tailed ``prob`` interval) and p of T (see the module docstring);
    ``max_draws`` posterior draws are used (thinned evenly)."""
    func, label = _statistic(stat)
    yrep = predict(fit, kind="pp", draws=True, random_seed=random_seed)
    rep = yrep.transpose(*names.SAMPLE_DIMS, ...).values.reshape(-1, yrep.sizes["obs"])
    rep = rep[np.linspace(0, len(rep) - 1, min(max_draws, len(rep))).round().astype(int)]
    y = fit.design.y
    if group is None:
        levels, codes = np.array(["all"], dtype=object), np.zeros(len(y), dtype=int)
    else:
        if group not in fit.design.factors:
            raise ValueError(f"group={group!r} is not a grouping factor of the model; it has "
                             f"{', '.join(map(repr, fit.design.factors)) or 'none'}")  # fmt: skip
        factor = fit.design.factors[group]
        levels, codes = np.asarray(factor.levels, dtype=object), factor.codes
    alpha = 1 - prob
    rows = []
    for j, level in enumerate(levels):
        rows_j = codes == j
        observed = float(func(y[rows_j], axis=-1))
        t = np.asarray(func(rep[:, rows_j], axis=-1), dtype=float)
        lower, upper = np.quantile(t, [alpha / 2, 1 - alpha / 2])
        rows.append({"level": level, "n": int(rows_j.sum()), "observed": observed, "mean": t.mean(),
                     "lower": lower, "upper": upper, "p": float(np.mean(t >= observed))})  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs.update(stat=label, group=group or "", prob=prob,
                       outside=int(np.sum((table["observed"] < table["lower"]) | (table["observed"] > table["upper"]))))
    return table


def _statistic(stat):
    if callable(stat):
        def func(values, axis=-1):
            try:
                return stat(values, axis=axis)
            except TypeError:  # a function of a 1-D array only
                return np.apply_along_axis(stat, axis, values)

        return func, getattr(stat, "__name__", "T")
    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)} or a function of an array, not {stat!r}")
    return STATS[stat], stat


@dataclass(frozen=True)
class PriorPredictive:
    """Draws from the priors (``idata``: groups ``prior``, ``prior_predictive``, ``observed_data``)."""

    idata: object = field(repr=False)
    response: str
    observed: np.ndarray = field(repr=False)
    variables: tuple[str, ...] = ()  # the population-level parameters: b, SDs, correlations, sigma

    def table(self, prob: float = 0.9) -> pd.DataFrame:
        """Per statistic (mean, sd, min, max of y): observed value and the prior predictive
        median and equal-tailed ``prob`` interval over replicated data sets."""
        rep = self.idata.prior_predictive[self.response].values.reshape(-1, len(self.observed))
        alpha = 1 - prob
        rows = []
        for label in ("mean", "sd", "min", "max"):
            t = STATS[label](rep, axis=-1)
            lower, median, upper = np.quantile(t, [alpha / 2, 0.5, 1 - alpha / 2])
            rows.append({"stat": label, "observed": float(STATS[label](self.observed, axis=-1)), "median": median,
                         "lower": lower, "upper": upper})  # fmt: skip
        return pd.DataFrame(rows).set_index("stat")

    def parameters(self, prob: float = 0.9) -> pd.DataFrame:
        """The prior's median and ``prob`` interval of each population-level parameter (fixed
        effects, group-level SDs and correlations, the family's own), on the data's scale."""
        alpha = 1 - prob
        rows = []
        for name in self.variables:
            da = self.idata.prior[name]
            flat = da.stack(__s__=names.SAMPLE_DIMS).transpose(..., "__s__")
            for index in np.ndindex(flat.shape[:-1]):
                labels = [str(flat[d].values[i]) for d, i in zip(flat.dims[:-1], index)]
                if len(labels) == 2 and labels[0] >= labels[1]:  # a correlation: each pair once
                    continue
                q = np.quantile(flat.values[index], [alpha / 2, 0.5, 1 - alpha / 2])
                rows.append({"parameter": name + (f"[{', '.join(labels)}]" if labels else ""),
                             "median": q[1], "lower": q[0], "upper": q[2]})  # fmt: skip
        return pd.DataFrame(rows).set_index("parameter")

    def plot(self, num_samples: int = 50):
        """The observed density against ``num_samples`` data sets drawn from the priors."""
        from .plots import plot_prior_predictive

        return plot_prior_predictive(self, num_samples)


def prior_predictive(formula: str, data: pd.DataFrame, priors: dict | None = None, draws: int = 500,
                     family: str | None = None, random_seed: int | None = 0, link: str | None = None,
                     weights=None) -> PriorPredictive:  # fmt: skip
    """What the priors imply before sampling (see the module docstring); ``family``, ``link``
    and ``weights`` as in ``hb.fit``."""
    import pymc as pm

    design = make_design(formula, data, family=family, link=link, weights=weights)
    model = make_model(design, priors, method="full")
    with model.pymc, pymc_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Potentials", category=UserWarning)
        idata = pm.sample_prior_predictive(draws=draws, random_seed=random_seed)
    response = names.observed(design.response)
    replicated = idata.prior_predictive[response]  # its row dimension named as the observed data's
    replicated = replicated.rename({d: "obs" for d in replicated.dims if d not in names.SAMPLE_DIMS})
    idata["prior_predictive"] = xr.Dataset({design.response: replicated})
    idata["observed_data"] = xr.Dataset({design.response: ("obs", design.y)})
    variables = [names.FIXED]
    for block in design.blocks:
        variables += [names.sd(block)] + ([names.cor(block)] if block.correlated else [])
    return PriorPredictive(idata, design.response, design.y, (*variables, *design.family.param_names))
