"""Variance decomposition from the posterior: components, ICC, R², and change between models.

Every quantity is computed draw by draw, so its table carries a full posterior (mean, sd,
interval) and ``draws=True`` returns the draws themselves for plotting.

Definitions (Gaussian models):

- The variance a grouping factor contributes at covariate values z (a row of that factor's
  Z) is z' G z, summed over the factor's blocks. With random slopes this depends on the
  covariates; without ``at`` it is averaged over the fitted rows, mean_i z_i' G z_i
  (Johnson 2014, as ``performance``/``insight`` compute it), and a warning says so.
- ICC of a factor: its variance over (all group-level variance + sigma²). ``adjusted`` ICC:
  all group-level variance over (group-level + sigma²); ``conditional`` ICC: group-level
  variance over (fixed-effects variance + group-level + sigma²) (Nakagawa, Johnson &
  Schielzeth 2017; ``performance::icc``).
- Nakagawa R²: marginal = var(X beta) / total; conditional = (var(X beta) + group-level) /
  total, with total = var(X beta) + group-level + sigma².
- Bayesian R² (Gelman, Goodrich, Gabry & Vehtari 2019): var(mu) / (var(mu) + sigma²) per
  draw, with mu the fitted values over the rows: X beta + Z b (conditional) or X beta
  (marginal); sigma² is the model's residual variance.

The residual variance is the family's (``Family.residual_variance``): sigma² for the Gaussian.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from . import names
from .summarize import SAMPLE_DIMS, as_draws, block_cholesky, stats

__all__ = ["block_covariance", "factor_variances", "residual_variance", "variance_components", "icc", "r2",
           "variance_reduction"]  # fmt: skip


def block_covariance(fit, block) -> np.ndarray:
    """Draws of the block's covariance matrix G, shape (chain, draw, q, q)."""
    lam = block_cholesky(fit.posterior, [block])
    return lam @ np.swapaxes(lam, -1, -2)


def factor_variances(fit, at: dict | None = None) -> dict[str, np.ndarray]:
    """Draws (chain, draw) of each grouping factor's variance, at ``at`` or averaged over rows."""
    design = fit.design
    if at is not None and not isinstance(at, dict):
        raise TypeError(f"at must be a dict of covariate values such as {{'x': 0}}, not {type(at).__name__}")
    moments = _second_moments(fit, at)
    out = {factor: 0.0 for factor in design.factors}
    for block in design.blocks:
        G = block_covariance(fit, block)
        out[block.group] = out[block.group] + np.einsum("cdkl,kl->cd", G, moments[block.name])
    return out


def _second_moments(fit, at):
    """Per block: mean of z z' over the fitted rows, or z z' at the covariate values ``at``."""
    design = fit.design
    varying = {b.name: b for b in design.blocks if np.ptp(b.Z, axis=0).max() > 0}
    if at is None:
        if varying:
            slopes = sorted({t for b in varying.values() for t in b.terms if t != "(Intercept)"})
            warnings.warn(
                f"the group-level variance depends on {', '.join(slopes)} (random slopes in "
                f"{', '.join(sorted(varying))}); it is averaged over the fitted rows (Johnson 2014). "
                f"Pass at={{...}} to evaluate it at chosen values, e.g. at={{{slopes[0]!r}: 0}}",
                UserWarning,
                stacklevel=5,  # the user's call of fit.icc() / fit.r2() / ...
            )
        return {b.name: b.Z.T @ b.Z / design.n_obs for b in design.blocks}
    from .design import names_in
    from .newdata import evaluate_new_data

    used = sorted({name for b in design.spec.blocks for name in names_in(b.terms, design.columns)})
    unknown = sorted(set(at) - set(used))
    if unknown:
        raise ValueError(f"at= names {unknown}, which no group-level term uses; they use {used or 'no columns'}")
    missing = sorted(set(used) - set(at))
    if missing:
        raise ValueError(f"at= needs a value for {missing}: the group-level variance depends on them")
    frame = pd.DataFrame({k: [v] for k, v in at.items()})
    for b in design.spec.blocks:  # grouping columns are not used for z; any level will do
        for col in b.group_columns:
            if col not in frame:
                frame[col] = [str(design.data[col].iloc[0])]
    new = evaluate_new_data(design, frame, fixed=False)
    return {b.name: np.outer(new.Z[b.name][0], new.Z[b.name][0]) for b in design.blocks}


def residual_variance(fit, trigamma: bool = False) -> np.ndarray:
    """Draws (chain, draw) of the (latent-scale) residual variance, as the fit's family defines it.

    Count families (log link) need the mean count: lambda = exp(eta_bar + the group-level
    intercept variances / 2), Nakagawa, Johnson & Schielzeth (2017), eq. 5 and 6, with eta_bar
    the linear predictor at the predictors' means and the mean offset (their advice to centre
    the covariates, so that lambda is the count of a typical row, not of x = 0 and an exposure
    of 1)."""
    design = fit.design
    family = design.family
    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    lam = None
    if family.latent_residual_variance is not None and family.link == "log":
        beta = post[names.FIXED].transpose(*SAMPLE_DIMS, names.TERM).values
        eta = beta @ design.X.mean(axis=0) + (float(np.mean(design.offset)) if design.offset is not None else 0.0)
        for block in design.blocks:
            if "(Intercept)" in block.terms:
                eta = eta + 0.5 * post[names.sd(block)].sel({names.effect_dim(block): "(Intercept)"}).values ** 2
        lam = np.exp(eta)
    params = {p: post[p].values for p in family.param_names}
    return np.broadcast_to(np.asarray(family.residual_variance(params, lam, trigamma), dtype=float), shape).copy()


def fixed_variance(fit) -> np.ndarray:
    """Draws of var(X beta) over the fitted rows (the variance the fixed effects explain)."""
    X = fit.design.X
    if X.shape[1] == 0:
        return np.zeros(tuple(fit.posterior.sizes[d] for d in SAMPLE_DIMS))
    cov = np.atleast_2d(np.cov(X, rowvar=False))
    beta = fit.posterior[names.FIXED].transpose(*SAMPLE_DIMS, names.TERM).values
    return np.einsum("cdk,kl,cdl->cd", beta, cov, beta)


def variance_components(fit, at=None, prob=0.95, interval="hdi", draws=False):
    """Variance at each level (every grouping factor, the residual) and its share of the total."""
    _need_groups(fit, "variance_components")
    parts = factor_variances(fit, at)
    parts["Residual"] = residual_variance(fit)
    total = sum(parts.values())
    levels = list(parts)
    values = np.stack([np.stack([parts[k], parts[k] / total], axis=-1) for k in levels], axis=-2)
    da = as_draws(values, fit.posterior, ("level", "quantity"), {"level": levels, "quantity": ["variance", "proportion"]})
    if draws:
        return da
    table = stats(da.transpose(*SAMPLE_DIMS, "quantity", "level"), prob, interval).reset_index()
    return table[["level", "quantity", "mean", "sd", "lower", "upper"]]


def icc(fit, at=None, prob=0.95, interval="hdi", draws=False, trigamma=False):
    """Intraclass correlations: one per grouping factor, then the adjusted and conditional ICC.
    Count families: the residual variance is the lognormal approximation, or with
    ``trigamma=True`` the trigamma one (Nakagawa et al. 2017); the definitions say which."""
    _need_groups(fit, "icc")
    parts = factor_variances(fit, at)
    random = sum(parts.values())
    residual = residual_variance(fit, trigamma)
    labels = list(parts) + ["adjusted", "conditional"]
    values = [parts[f] / (random + residual) for f in parts]
    values.append(random / (random + residual))
    values.append(random / (fixed_variance(fit) + random + residual))
    da = as_draws(np.stack(values, axis=-1), fit.posterior, ("icc",), {"icc": labels})
    if draws:
        return da
    table = stats(da, prob, interval).reset_index()
    note = _latent_note(fit, trigamma)
    table.insert(1, "definition", [f"{f} variance / (group-level + residual){note}" for f in parts]
                 + [f"group-level / (group-level + residual){note}",
                    f"group-level / (fixed + group-level + residual){note}"])  # fmt: skip
    return table


def _latent_note(fit, trigamma: bool) -> str:
    """How the residual variance was taken, for a family other than the Gaussian."""
    family = fit.design.family
    if family.link == "identity" and not family.discrete:
        return ""
    if family.latent_residual_variance is None:
        return f", latent scale (residual {family.residual_term})"
    return f", latent scale (residual {'trigamma' if trigamma else 'lognormal'} approximation, {family.residual_term})"


def r2(fit, at=None, prob=0.95, interval="hdi", draws=False):
    """Bayesian R² (conditional and marginal) and Nakagawa's marginal and conditional R²."""
    residual = residual_variance(fit)
    fitted_cond, fitted_marg = _fitted_variances(fit)
    fixed = fixed_variance(fit)
    random = sum(factor_variances(fit, at).values()) if fit.design.blocks else 0.0
    total = fixed + random + residual
    values = {
        "bayes_conditional": fitted_cond / (fitted_cond + residual),
        "bayes_marginal": fitted_marg / (fitted_marg + residual),
        "nakagawa_marginal": fixed / total,
        "nakagawa_conditional": (fixed + random) / total,
    }
    da = as_draws(np.stack(list(values.values()), axis=-1), fit.posterior, ("r2",), {"r2": list(values)})
    if draws:
        return da
    table = stats(da, prob, interval).reset_index()
    e = fit.design.family.residual_term  # sigma^2 for the Gaussian, pi^2/3 for logit
    note = _latent_note(fit, False)
    table.insert(1, "definition", [
        f"var(X beta + Z b) / (var(X beta + Z b) + {e}), Gelman et al. 2019{note}",
        f"var(X beta) / (var(X beta) + {e}), Gelman et al. 2019{note}",
        f"var(X beta) / (var(X beta) + group-level + {e}), Nakagawa & Schielzeth{note}",
        f"(var(X beta) + group-level) / (var(X beta) + group-level + {e}){note}",
    ])  # fmt: skip
    return table


def _fitted_variances(fit, chunk: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the variance over rows of X beta + Z b and of X beta (in chunks of draws)."""
    design = fit.design
    post = fit.posterior
    beta = post[names.FIXED].transpose(*SAMPLE_DIMS, names.TERM).values
    shape = beta.shape[:2]
    beta = beta.reshape(-1, beta.shape[-1])
    effects = []
    for block in design.blocks:
        r = post[names.effects(block)].transpose(*SAMPLE_DIMS, ...).values
        effects.append((r.reshape(-1, *r.shape[2:]), design.factors[block.group].codes, block.Z))
    cond = np.empty(len(beta))
    marg = np.empty(len(beta))
    for start in range(0, len(beta), chunk):
        sl = slice(start, start + chunk)
        mu = beta[sl] @ design.X.T
        marg[sl] = mu.var(axis=1, ddof=1)
        for r, codes, Z in effects:
            mu = mu + np.einsum("snk,nk->sn", r[sl][:, codes, :], Z)
        cond[sl] = mu.var(axis=1, ddof=1)
    return cond.reshape(shape), marg.reshape(shape)


def variance_reduction(small, large, prob=0.95, interval="hdi", draws=False):
    """Proportional reduction of each variance component from ``small`` to ``large``.

    For every variance in both fits (matched by block and term, and the residual), the
    posterior means of the variance in each model, ``reduction`` = 1 - mean(large) /
    mean(small) (the classical "variance explained" by the added predictors), and the
    posterior of 1 - var_large / var_small with the two fits' independent draws paired.
    Both fits must use the same rows of the same data. A random intercept's variance in a
    model with random slopes depends on where the covariates are zero; compare like with like.
    """
    for name, f in (("small", small), ("large", large)):
        if not hasattr(f, "design") or not hasattr(f, "posterior"):
            raise TypeError(f"{name} must be a fit from hb.fit, not {type(f).__name__}")
    if small.design.n_obs != large.design.n_obs or not np.array_equal(small.design.y, large.design.y):
        raise ValueError(
            f"the two fits use different data ({small.design.n_obs} and {large.design.n_obs} rows, or a "
            "different response): variance reduction compares models of the same rows"
        )
    a, b = _variances(small), _variances(large)
    n = min(next(iter(a.values())).size, next(iter(b.values())).size)
    rows, kept = [], []
    for key in list(a) + [k for k in b if k not in a]:
        grp, var1 = key
        row = {"grp": grp, "var1": var1}
        if key in a and key in b:
            va, vb = a[key].reshape(-1)[:n], b[key].reshape(-1)[:n]
            row |= {"var_small": va.mean(), "var_large": vb.mean(), "reduction": 1 - vb.mean() / va.mean()}
            kept.append((key, 1 - vb / va))
        else:
            row |= {"var_small": a[key].mean() if key in a else np.nan,
                    "var_large": b[key].mean() if key in b else np.nan, "reduction": np.nan}  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows)
    labels = [f"{g}:{v}" if v else g for (g, v), _ in kept]
    da = xr.DataArray(np.stack([d for _, d in kept], axis=-1)[None], dims=(*SAMPLE_DIMS, "component"),
                      coords={"component": labels})  # fmt: skip
    if draws:
        return da
    post = stats(da, prob, interval).rename(columns=lambda c: f"reduction_{c}")
    post.index = pd.MultiIndex.from_tuples([k for k, _ in kept], names=["grp", "var1"])
    return table.join(post, on=["grp", "var1"])


def _variances(fit) -> dict[tuple[str, str], np.ndarray]:
    """Variance draws of every group-level term (by block and term) and of the residual."""
    out = {}
    for block in fit.design.blocks:
        sd = fit.posterior[names.sd(block)]
        for term in block.terms:
            out[(block.name, term)] = sd.sel({names.effect_dim(block): term}).values ** 2
    out[("Residual", "")] = residual_variance(fit)
    return out


def _need_groups(fit, what):
    if not fit.design.blocks:
        raise ValueError(f"{what}() needs group-level effects; this model has none (use r2() for R²)")


def sds_at_zero(posterior: xr.Dataset, blocks) -> list[str]:
    """Group-level SDs whose posterior density is highest at zero: lme4 would call the fit
    singular there. Each SD's draws are binned into 10 bins from 0 to their 99th percentile;
    the SD is listed (as ``sd_<block>[term]``) when the first bin holds at least 80% as many
    draws as the fullest (a density flat at 0, as a half-normal's, ties with its neighbours)."""
    found = []
    for block in blocks:
        sd = posterior[names.sd(block)]
        for term in block.terms:
            draws = np.asarray(sd.sel({names.effect_dim(block): term}).values).reshape(-1)
            counts, _ = np.histogram(draws, bins=10, range=(0.0, float(np.quantile(draws, 0.99))))
            if counts[0] >= 0.8 * counts.max():
                found.append(f"{names.sd(block)}[{term}]")
    return found
