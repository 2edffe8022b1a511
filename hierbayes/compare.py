"""Model comparison: ``hb.compare`` (alias ``hb.anova``), pointwise log-likelihoods and WAIC.

Every model is scored on the same units, so any two fits of the same rows compare:

- ``by="row"`` (default): log p(y_i | theta, b), one term per row, given the group effects b
  (on the integrated-out path, the exact draws of b made after sampling). LOO then estimates
  how well the model predicts a *new observation* in a known group; a model with no bars has
  the same terms.
- ``by="group"``: one term per level of the grouping factor g (the integrated-out factor, or
  ``by="<factor>"``): log p(y_j | theta) with g's effects integrated out,
  log N(y_j | X_j beta (+ other factors' effects), sigma² I + Z_j Lambda Lambda' Z_j'),
  so LOO leaves out a whole group: how well it predicts a *new school*. A model without
  effects on g has log p(y_j | theta) = sum_i log p(y_ij | theta, b) over the group's rows.

PSIS-LOO, its SEs, the differences and the stacking weights come from arviz-stats
(``loo``, ``compare``). WAIC (Watanabe 2010) is not in arviz-stats 1.x, so it is written out
here: elpd_waic = sum_i (log mean_s p(y_i | theta_s) - var_s log p(y_i | theta_s)).

The frequentist columns refit each model by maximum likelihood (statsmodels MixedLM, or OLS
for a model with no bars) and lay them out as R's ``anova()``: npar, AIC, BIC, logLik,
deviance and the likelihood-ratio test of each model against the one above it (by npar).
REML likelihoods of models with different fixed effects do not compare, hence ML; the
chi-square p-value is conservative for a variance tested at its boundary (0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from . import names
from .frequentist import UnsupportedStructure, fit_mixedlm
from .marginal.density import pack_model
from .marginal.draws import complete
from .marginal.stats import integrated_factors, marginal_applies, sampled_blocks
from .predict import predict
from .summarize import check_memory

__all__ = ["compare", "anova", "Comparison", "pointwise_loglik", "loo", "waic", "ComparisonError"]

BY = ("row", "group")


class ComparisonError(ValueError):
    """The fits cannot be compared: different rows, response or units."""


@dataclass(frozen=True, repr=False)
class Comparison:
    """``table``: the Bayesian comparison, best first (arviz-stats ``compare`` columns);
    ``anova``: the ML fits as R's ``anova()`` prints them; ``loo``: each model's ELPDData."""

    table: pd.DataFrame
    anova: pd.DataFrame
    by: str
    loo: dict = field(repr=False)
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        unit = "row (a new observation in a known group)" if self.by == "row" else f"{self.by} (a new {self.by})"
        lines = [f"Model comparison by PSIS-LOO; one term per {unit}", self.table.to_string(float_format="{:.2f}".format)]
        if len(self.anova):
            lines += ["", "Models refitted by maximum likelihood (not REML), as R's anova() does:",
                      self.anova.to_string(float_format=_anova_format, na_rep="")]  # fmt: skip
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__

    def plot(self, models=None):
        """Each model's elpd difference from the best, with its SE (arviz-plots ``plot_compare``);
        ``models``: only these rows (the best model among them)."""
        from .plots import plot_comparison

        return plot_comparison(self, models)

    def _repr_html_(self) -> str:
        parts = [self.table.to_html(float_format="{:.2f}".format)]
        if len(self.anova):
            parts += ["<p>Maximum-likelihood refits (R's <code>anova()</code> layout):</p>",
                      self.anova.to_html(float_format=_anova_format, na_rep="")]  # fmt: skip
        parts += [f"<p><em>Note: {n}</em></p>" for n in self.notes]
        return "\n".join(parts)


def _anova_format(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.2f}"


def compare(*fits, by: str = "row", waic: bool = False, frequentist: bool = True, **named) -> Comparison:
    """Compare fits of the same rows and response: ``hb.compare(m1, m2)`` (named by their
    formulas) or ``hb.compare(ri=m1, rs=m2)``. See the module docstring for ``by``;
    ``waic=True`` adds elpd_waic and p_waic; ``frequentist=False`` skips the ML refits."""
    formulas = [f.spec.formula for f in fits]
    clashes = sorted({f for f in formulas if formulas.count(f) > 1} | (set(formulas) & set(named)))
    if clashes:
        raise ComparisonError(f"two fits would be named {clashes[0]!r}: pass them by keyword (a=..., b=...)")
    models = {**dict(zip(formulas, fits)), **named}
    if len(models) < 2:
        raise ComparisonError("compare needs two or more fits")
    factor = _check_comparable(models, by)
    labels = _group_labels(models, factor) if factor else None
    trees = {name: _tree(fit, pointwise_loglik(fit, by, labels)) for name, fit in models.items()}
    with warnings.catch_warnings():  # Pareto k above 0.7: the table's pareto_k_bad and a note say it
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
        elpd = {name: azs.loo(tree) for name, tree in trees.items()}
    table = azs.compare(elpd, round_to="none")
    table = table.rename(columns={"elpd": "elpd_loo", "p": "p_loo", "se": "elpd_se", "dse": "diff_se"})
    table["pareto_k_bad"] = [int(np.sum(np.asarray(elpd[m].pareto_k) > elpd[m].good_k)) for m in table.index]
    if waic:
        w = {name: waic_of(next(iter(tree.log_likelihood.data_vars.values()))) for name, tree in trees.items()}
        table["elpd_waic"] = [w[m]["elpd_waic"] for m in table.index]
        table["p_waic"] = [w[m]["p_waic"] for m in table.index]
    keep = [c for c in ("rank", "elpd_loo", "elpd_se", "p_loo", "elpd_diff", "diff_se", "weight", "pareto_k_bad",
                        "elpd_waic", "p_waic") if c in table]  # fmt: skip
    table = table[keep]
    table.index.name = "model"
    notes = []
    if table["pareto_k_bad"].any():
        notes.append("some Pareto k are above the threshold: those LOO estimates are unreliable "
                     "(refit without the row or group, or use K-fold CV)")  # fmt: skip
    anova_table, freq_notes = ml_anova(models) if frequentist else (pd.DataFrame(), [])
    return Comparison(table, anova_table, factor or "row", elpd, tuple(notes + freq_notes))


anova = compare


def pointwise_loglik(fit, by: str = "row", group_labels=None) -> xr.DataArray:
    """The pointwise log-likelihood draws (chain, draw, unit) of ``fit`` on the units of ``by``
    (see the module docstring). ``group_labels`` (``by`` a factor the fit has no effects on):
    each row's level of that factor."""
    post = fit.posterior
    family = fit.design.family
    if by == "row":
        n_draws = post.sizes["chain"] * post.sizes["draw"]
        by_group = integrated_factors(fit.design) if marginal_applies(fit.design)[0] else ()
        advice = (f"compare by group instead (by={by_group[0]!r}: one term a group), " if by_group else ""
                  ) + "or fit fewer draws (draws=...)"
        check_memory(5 * 8 * n_draws * fit.design.n_obs,  # the draws, the log-likelihood, PSIS's copies
                     f"leave-one-row-out for {fit.design.n_obs:,} rows x {n_draws:,} draws", advice)  # fmt: skip
        mu = predict(fit, draws=True)  # the mean of each row given the (drawn) group effects
        params = {p: post[p].transpose(*names.SAMPLE_DIMS).values[..., None] for p in family.param_names}
        return mu.copy(data=family.loglik(fit.design.y, mu.values, params, fit.design.trials))
    factor = _factor(fit, by)
    stored = fit.idata.children.get("log_likelihood")
    if stored is not None:
        ll = next(iter(stored.dataset.data_vars.values()))
        if factor in ll.dims:
            return ll
    if factor in fit.design.factors:  # full path: integrate the factor's effects out, draw by draw
        applies, why = marginal_applies(fit.design)
        if not applies:
            raise ComparisonError(f"by={factor!r}: leave-one-{factor}-out needs the group effects integrated out "
                                  f"exactly, and for {fit.spec.formula!r} {why}; compare by='row'")  # fmt: skip
        if factor not in integrated_factors(fit.design):
            raise ComparisonError(f"by={factor!r}: leave-one-{factor}-out is available for the factor whose "
                                  f"effects can be integrated out ({', '.join(integrated_factors(fit.design))})")  # fmt: skip
        packed = None if sampled_blocks(fit.design) else pack_model(fit.design, fit.priors)
        _, ll = complete(fit.design, post, packed, random_seed=0)
        return ll
    if group_labels is None:
        raise ComparisonError(f"the model {fit.spec.formula!r} has no grouping factor {factor!r}")
    rows = pointwise_loglik(fit, "row")
    codes, levels = pd.factorize(pd.Series(group_labels), sort=False)
    summed = np.zeros((*rows.shape[:2], len(levels)))
    np.add.at(summed.transpose(2, 0, 1), codes, np.moveaxis(rows.values, -1, 0))
    return xr.DataArray(summed, dims=(*names.SAMPLE_DIMS, factor),
                        coords={"chain": rows["chain"].values, "draw": rows["draw"].values, factor: list(levels)})  # fmt: skip


def loo(fit, by: str = "row", **kwargs):
    """PSIS-LOO (arviz-stats ``loo``) of one fit on the units of ``by`` (see the module docstring)."""
    return azs.loo(_tree(fit, pointwise_loglik(fit, by)), **kwargs)


def waic(fit, by: str = "row") -> pd.Series:
    """WAIC of one fit: elpd_waic, its SE, p_waic and the number of terms with var > 0.4."""
    return pd.Series(waic_of(pointwise_loglik(fit, by)))


def waic_of(ll: xr.DataArray) -> dict:
    """elpd_waic = sum(lppd_i - p_i), lppd_i = log mean_s exp(ll_si), p_i = var_s(ll_si)."""
    s = ll.transpose(*names.SAMPLE_DIMS, ...).values.reshape(ll.sizes["chain"] * ll.sizes["draw"], -1)
    lppd = special.logsumexp(s, axis=0) - np.log(len(s))
    p = np.var(s, axis=0, ddof=1)
    terms = lppd - p
    return {"elpd_waic": float(terms.sum()), "se": float(np.sqrt(len(terms) * np.var(terms))),
            "p_waic": float(p.sum()), "n_var_above_0.4": int(np.sum(p > 0.4))}  # fmt: skip


def ml_anova(models: dict) -> tuple[pd.DataFrame, list[str]]:
    """The ML refits in R's ``anova()`` layout, ordered by npar, with the LRT of each row
    against the row above it; models statsmodels cannot fit get a note and no row."""
    rows, notes = [], []
    for name, fit in models.items():
        try:
            ll, npar = _ml_fit(fit)
        except UnsupportedStructure as err:
            notes.append(f"{name}: no ML fit ({err})")
            continue
        n = fit.design.n_obs
        rows.append({"model": name, "npar": npar, "AIC": -2 * ll + 2 * npar, "BIC": -2 * ll + np.log(n) * npar,
                     "logLik": ll, "deviance": -2 * ll})  # fmt: skip
    if not rows:
        return pd.DataFrame(), notes
    table = pd.DataFrame(rows).sort_values("npar", kind="stable").set_index("model")
    chisq = 2 * table["logLik"].diff()
    df = table["npar"].diff()
    table["Chisq"] = chisq.clip(lower=0)
    table["Df"] = df
    table["Pr(>Chisq)"] = [stats.chi2.sf(c, d) if d > 0 else np.nan for c, d in zip(table["Chisq"], df)]
    if len(table) > 1:
        notes.append("the chi-square p-value is conservative when a variance is tested at 0 (its boundary)")
    return table, notes


def _ml_fit(fit) -> tuple[float, int]:
    """The ML log-likelihood and the number of parameters (fixed, variance, residual)."""
    design = fit.design
    if not design.family.integrates_exactly:
        raise UnsupportedStructure(f"the ML columns are for Gaussian models; statsmodels has no exact {design.family.name} "
                                   "GLMM")  # fmt: skip
    npar = len(design.fixed_terms) + 1
    for block in design.blocks:
        npar += block.size * (block.size + 1) // 2 if block.correlated else block.size
    if not design.blocks:  # ordinary least squares (its ML residual variance is RSS / n)
        from statsmodels.regression.linear_model import OLS

        return float(OLS(design.y, design.X).fit().llf), npar
    return fit_mixedlm(design, "ML").log_lik, npar


def _tree(fit, ll: xr.DataArray) -> xr.DataTree:
    return xr.DataTree.from_dict({"posterior": fit.posterior, "log_likelihood": xr.Dataset({fit.design.response: ll})})


def _factor(fit, by: str) -> str:
    if by == "group":
        if not fit.design.factors:
            raise ComparisonError(f"by='group': the model {fit.spec.formula!r} has no grouping factor; "
                                  "name the factor (by='school') to score it per group")  # fmt: skip
        return integrated_factors(fit.design)[0]
    return by


def _check_comparable(models: dict, by: str) -> str | None:
    """Refuse fits whose units differ; return the grouping factor of ``by`` (None for rows)."""
    (first, ref), *rest = models.items()
    for name, fit in rest:
        if fit.design.response != ref.design.response:
            raise ComparisonError(f"{name!r} models {fit.design.response!r} and {first!r} models "
                                  f"{ref.design.response!r}: compare models of the same response")  # fmt: skip
        if fit.design.n_obs != ref.design.n_obs or not fit.rows_used.equals(ref.rows_used):
            raise ComparisonError(
                f"{name!r} uses {fit.design.n_obs} rows and {first!r} {ref.design.n_obs}"
                f" ({fit.design.n_dropped} and {ref.design.n_dropped} dropped for missing values): "
                "compare fits to the same rows (drop the missing values before fitting)")
        if not np.array_equal(fit.design.y, ref.design.y):
            raise ComparisonError(f"{name!r} and {first!r} were fitted to different data: the "
                                  f"{fit.design.response!r} values differ")  # fmt: skip
        a, b = fit.design.family, ref.design.family
        if a.discrete != b.discrete or a.has_trials != b.has_trials:  # a pmf against a density: no common scale
            raise ComparisonError(f"{name!r} is a {a.name} model and {first!r} a {b.name} one: their likelihoods "
                                  "are not on one scale (a probability against a density, or other units)")  # fmt: skip
    if by == "row":
        return None
    if by == "group":
        factors = {_factor(f, by) for f in models.values() if f.design.factors}
        if not factors or len(factors) > 1 or any(not f.design.factors for f in models.values()):
            raise ComparisonError(
                "by='group' needs every model to integrate out the same grouping factor; these have "
                + ", ".join(f"{n!r}: {_factor(f, by) if f.design.factors else 'none'}" for n, f in models.items())
                + "; name the factor, e.g. by='school'")
        return factors.pop()
    if not any(by in f.design.factors for f in models.values()):
        raise ComparisonError(f"by={by!r}: no model has a grouping factor {by!r}; use 'row', 'group' or a factor")
    return by


def _group_labels(models: dict, factor: str) -> np.ndarray:
    """Each row's level of ``factor``, from a model that has it (all use the same rows)."""
    fit = next(f for f in models.values() if factor in f.design.factors)
    f = fit.design.factors[factor]
    return np.asarray(f.levels, dtype=object)[f.codes]
