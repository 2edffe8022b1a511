"""Figures of a fit, on ArviZ 1.x (arviz-plots, matplotlib backend) and matplotlib.

Every function takes a fit and returns a ``matplotlib.figure.Figure``: a notebook shows it, a
script saves it (``fig.savefig("forest.png")``). ``fit.plot.<name>(...)`` calls the same
functions. Distributions, trace, rank and posterior predictive plots are drawn by arviz-plots;
the forest (the intercept on a scale of its own, the frequentist estimate beside each term) and
the multilevel figures arviz-plots has no plot for (caterpillar, shrinkage, fitted lines, rank
uncertainty) are drawn here in the same style. Every posterior interval is equal-tailed.
"""

from __future__ import annotations

import contextlib
import textwrap
import warnings

import arviz_plots as azp
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.patches import FancyArrowPatch

from . import names
from .response import first_part
from .sampling import pymc_quiet
from .summarize import SAMPLE_DIMS

__all__ = [
    "plot_forest", "plot_variance", "plot_caterpillar", "plot_shrinkage", "plot_fitted", "plot_ppc",
    "plot_trace", "plot_rank", "plot_ranks", "at_text", "PlotAccessor",
]  # fmt: skip

POINT = "#1f4e79"  # posterior
OTHER = "#c0504d"  # no pooling / frequentist
GREY = "#9a9a9a"
PRIOR = "#b8b8b8"  # a prior, drawn faint behind its posterior
FREQ_OFFSET = 0.25  # the frequentist estimate sits this far below its term's posterior interval
STYLE = {"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
         "font.size": 10, "figure.dpi": 100}  # fmt: skip


@contextlib.contextmanager
def _style():
    """STYLE for the figures drawn inside, restoring only those settings afterwards.
    (``plt.rc_context`` restores every rcParam, ``interactive`` too: entered before a notebook's
    inline backend is first activated, it turned it off, and later figures were not shown.)"""
    old = {key: mpl.rcParams[key] for key in STYLE}
    mpl.rcParams.update(STYLE)
    try:
        yield
    finally:
        mpl.rcParams.update(old)


def _figure(pc, taller: float = 1.0) -> plt.Figure:
    """The figure of an arviz-plots collection, laid out so titles, ticks and legends do not overlap."""
    fig = pc.viz["figure"].item()
    fig.set_layout_engine("constrained")
    if taller != 1.0:
        fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() * taller)
    return fig


def parameters(fit, draws: xr.Dataset | None = None, fixed: bool = True) -> xr.Dataset:
    """The parameters users read, one variable each: b (unless ``fixed`` is false), sd_<block>,
    cor_<block> (one coordinate per pair of terms, ``t1:t2``; the diagonal dropped), and the
    family's own parameters (sigma for the Gaussian).
    From the posterior, or from ``draws`` (e.g. prior draws) holding the same variables."""
    post = fit.posterior if draws is None else draws
    out = {names.FIXED: post[names.FIXED]} if fixed else {}
    for block in fit.design.blocks:
        out[names.sd(block)] = post[names.sd(block)]
        if block.correlated:
            effect, effect_bis = names.effect_dim(block), names.effect_dim_bis(block)
            cor = post[names.cor(block)]
            pairs = [(a, b) for i, a in enumerate(block.terms) for b in block.terms[i + 1 :]]
            values = np.stack([cor.sel({effect: a, effect_bis: b}).values for a, b in pairs], axis=-1)
            out[names.cor(block)] = xr.DataArray(
                values, dims=(*SAMPLE_DIMS, f"{block.name}__pair"),
                coords={f"{block.name}__pair": [f"{a}:{b}" for a, b in pairs]},
            )  # fmt: skip
    for name in fit.design.family.param_names:
        out[name] = post[name]
    return xr.Dataset(out, coords={"chain": post["chain"], "draw": post["draw"]})


def _tree(**groups) -> xr.DataTree:
    return xr.DataTree.from_dict({name: ds for name, ds in groups.items()})


def plot_forest(fit, terms=None, frequentist=None, prob: float = 0.95) -> plt.Figure:
    """Fixed effects: posterior mean, 50% (thick) and ``prob`` (thin) equal-tailed intervals.

    With other terms, the intercept gets a panel and scale of its own on top (it is on the
    response's scale; the others are slopes or contrasts). ``frequentist`` ("REML", "ML", or a
    ``compare_frequentist`` table) adds each term's estimate and 95% Wald CI in red, just
    below that term's posterior interval.
    """
    all_terms = list(fit.design.fixed_terms)
    terms = all_terms if terms is None else list(terms)
    unknown = [t for t in terms if t not in all_terms]
    if unknown:
        raise ValueError(f"no fixed effect {unknown[0]!r}; the model has {all_terms}")
    outer, inner = fit.fixef(prob, interval="eti"), fit.fixef(0.5, interval="eti")
    freq = None
    if frequentist is not None:
        table = fit.compare_frequentist(frequentist) if isinstance(frequentist, str) else frequentist
        freq = table[table.kind == "fixed"].set_index("var1")
    others = [t for t in terms if t != "(Intercept)"]
    panels = [["(Intercept)"], others] if others and len(others) < len(terms) else [terms]
    heights = [len(p) + 0.5 for p in panels]
    with _style():
        fig, axes = plt.subplots(len(panels), 1, figsize=(6.5, 1.2 + 0.42 * sum(heights)), squeeze=False,
                                 height_ratios=heights, layout="constrained")  # fmt: skip
        for ax, shown in zip(axes[:, 0], panels):
            y = np.arange(len(shown), dtype=float)[::-1]
            o, i = outer.loc[shown], inner.loc[shown]
            ax.hlines(y, o["lower"], o["upper"], color=POINT, lw=1, label=f"{prob:.0%} equal-tailed interval")
            ax.hlines(y, i["lower"], i["upper"], color=POINT, lw=3.5, label="50% equal-tailed interval")
            ax.plot(o["mean"], y, "o", color=POINT, mfc="white", ms=6, label="posterior mean")
            if freq is not None:
                _frequentist_marks(ax, freq, shown, y)
            ax.set_yticks(y, shown)
            ax.set_ylim(-0.6, len(shown) - 0.4)
            ax.grid(axis="y", visible=False)
            lo, hi = ax.get_xlim()
            if lo < 0 < hi:
                ax.axvline(0, color=GREY, ls="--", lw=0.8, zorder=0)
        axes[-1, 0].set_xlabel("fixed effect (posterior mean and equal-tailed intervals)")
        entries = {}  # one legend entry per label, from every panel
        for ax in axes[:, 0]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                entries.setdefault(label, handle)
        axes[0, 0].legend(entries.values(), entries.keys(), loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2,
                          fontsize=8, frameon=False, borderaxespad=0)  # above the data, never on it
    return fig


def _frequentist_marks(ax, freq, terms, y):
    """Each term's frequentist estimate and CI, FREQ_OFFSET below its posterior interval."""
    for term, yk in zip(terms, y):
        if term not in freq.index:
            continue
        r = freq.loc[term]
        est, lo, hi = r["freq_estimate"], r["freq_lower"], r["freq_upper"]
        has_ci = np.isfinite(lo) and np.isfinite(hi)
        label = f"{r['source']} estimate" + (", 95% Wald CI" if has_ci else "")
        xerr = [[est - lo], [hi - est]] if has_ci else None
        ax.errorbar([est], [yk - FREQ_OFFSET], xerr=xerr, fmt="s", color=OTHER, ms=4, lw=1, label=label)


# --- arviz-plots ------------------------------------------------------------------------------


def plot_variance(fit, prior: bool = False, at: dict | None = None, random_seed: int | None = 0,
                  prob: float = 0.95) -> plt.Figure:  # fmt: skip
    """Posterior density, mean and ``prob`` equal-tailed interval of every SD, correlation and
    the residual SD, and the ICC of each grouping factor (at ``at``: see ``at_text``).

    ``prior=True``: each parameter's posterior with its prior as a faint line, over the
    posterior's range (its 0.5-99.5% quantiles, padded); the ICC is left out then.
    """
    params = parameters(fit).drop_vars(names.FIXED)
    with _style():
        if prior:
            import pymc as pm

            wanted = [names.sd(b) for b in fit.design.blocks] + list(fit.design.family.param_names)
            wanted += [names.cor(b) for b in fit.design.blocks if b.correlated]
            with fit.model, pymc_quiet(), warnings.catch_warnings():
                # the marginal likelihood is a Potential; the prior rightly ignores it
                warnings.filterwarnings("ignore", message="The effect of Potentials")
                draws = pm.sample_prior_predictive(draws=1000, var_names=wanted, random_seed=random_seed)
            prior_ds = parameters(fit, draws.prior.dataset, fixed=False)
            pc = azp.plot_prior_posterior(_tree(posterior=params, prior=prior_ds), backend="matplotlib",
                                          aes={"color": ["group"]}, color=[PRIOR, POINT])  # fmt: skip
            _posterior_range(pc, params)
        else:
            if fit.design.blocks:
                icc = fit.icc(at=at, draws=True)
                factors = list(fit.design.factors)
                params["ICC"] = icc.sel(icc=factors).rename(icc="factor")
            pc = azp.plot_dist(_tree(posterior=params), ci_kind="eti", ci_prob=prob, backend="matplotlib")
            pc.viz["figure"].item().suptitle(f"Posterior density, mean and {prob:.0%} equal-tailed interval",
                                             fontsize=10)  # fmt: skip
            where = at_text(fit, at)
            if fit.design.blocks and where:
                for factor in factors:
                    title = pc.viz["title"]["ICC"].sel(factor=factor).item()
                    title.set_text(f"ICC {factor}\n" + "\n".join(textwrap.wrap(where, 34)))
    return _figure(pc, taller=1.4)


def _posterior_range(pc, params):
    """Each panel's x-axis: the posterior's 0.5-99.5% quantiles, padded by 15% a side."""
    for name, da in params.data_vars.items():
        dims = [d for d in da.dims if d not in SAMPLE_DIMS]
        for coord in (dict(zip(dims, c)) for c in np.ndindex(*[da.sizes[d] for d in dims])):
            draws = da.isel(coord).values.ravel()
            lo, hi = np.quantile(draws, [0.005, 0.995])
            pad = 0.15 * (hi - lo)
            pc.viz["plot"][name].isel(coord).item().set_xlim(lo - pad, hi + pad)


def at_text(fit, at: dict | None) -> str:
    """Where a group-level variance (ICC, variance shares, Nakagawa R²) was evaluated: at the
    covariate values ``at``, averaged over the fitted rows (random slopes and no ``at``), or ""
    when it does not depend on covariates (random intercepts only)."""
    if at:
        return "evaluated at " + ", ".join(f"{name} = {value}" for name, value in at.items())
    slopes = sorted({t for b in fit.design.blocks if np.ptp(b.Z, axis=0).max() > 0 for t in b.terms
                     if t != "(Intercept)"})  # fmt: skip
    return f"averaged over the fitted rows (random slopes on {', '.join(slopes)})" if slopes else ""


def plot_trace(fit, var_names=None) -> plt.Figure:
    """Trace and density of each parameter users read, one colour per chain (for diagnosing
    the sampler: the chains should overlap)."""
    params = parameters(fit)
    with _style():
        pc = azp.plot_trace_dist(_tree(posterior=params), var_names=var_names, compact=False, backend="matplotlib")
        fig = _figure(pc)
        pc.add_legend("chain", title="chain", loc="outside upper center", ncol=params.sizes["chain"])
    return fig


def plot_rank(fit, var_names=None) -> plt.Figure:
    """Rank plots per chain (uniform when the chains agree)."""
    params = parameters(fit)
    with _style():
        pc = azp.plot_rank(_tree(posterior=params), var_names=var_names, backend="matplotlib")
    return _figure(pc)


def plot_ppc(fit, num_samples: int = 50, stat=None, group: str | None = None, prob: float = 0.9,
             random_seed: int | None = 0) -> plt.Figure:  # fmt: skip
    """Posterior predictive check: the data's density against replicated data sets; with
    ``group`` (and ``stat``, default the mean), each group's statistic against its predictive
    interval (``hierbayes.checks.ppc``)."""
    if group is not None or stat is not None:
        label = first_part(fit.design.response)  # the successes of a binomial response
        return _plot_group_ppc(fit.ppc(stat or "mean", group, prob, random_seed=random_seed), label)
    name = fit.design.response
    yrep = fit.predict(kind="pp", draws=True, random_seed=random_seed)
    tree = _tree(posterior_predictive=xr.Dataset({name: yrep}),
                 observed_data=xr.Dataset({name: ("obs", fit.design.y)}))  # fmt: skip
    return _density_overlay(tree, name, num_samples, "replicated data sets")


def plot_prior_predictive(pp, num_samples: int = 50) -> plt.Figure:
    """The observed density against data sets drawn from the priors (``hb.prior_predictive``)."""
    # passed as the predictive group: plot_ppc_dist draws the observed data only against that
    tree = _tree(posterior_predictive=pp.idata.prior_predictive.dataset, observed_data=pp.idata.observed_data.dataset)
    return _density_overlay(tree, pp.response, num_samples, "data sets drawn from the priors")


def plot_comparison(comparison, models=None) -> plt.Figure:
    """``hb.compare``'s table as arviz-plots draws it: elpd difference from the best, ± its SE."""
    table = comparison.table.rename(columns={"diff_se": "dse"})
    if models is not None:
        unknown = set(models) - set(table.index)
        if unknown:
            raise ValueError(f"no model(s) {sorted(unknown)} in the comparison; it has {', '.join(table.index)}")
        table = table.loc[[m for m in table.index if m in set(models)]]
    with _style():
        pc = azp.plot_compare(table, backend="matplotlib")
    fig = _figure(pc)
    fig.axes[0].set_xlabel(f"elpd_loo difference from the best model (one term per {comparison.by})")
    return fig


def _density_overlay(tree, name, num_samples, what) -> plt.Figure:
    with _style():
        pc = azp.plot_ppc_dist(tree, num_samples=num_samples, backend="matplotlib")
        observed = pc.viz["observed_dist"][name].values.ravel()[0]
        replicated = pc.viz["predictive_dist"][name].values.ravel()[0]
        observed.axes.legend([observed, replicated], ["observed data", f"{num_samples} {what}"],
                             loc="upper left", fontsize=8)  # fmt: skip
    return _figure(pc)


def _plot_group_ppc(table: pd.DataFrame, response: str) -> plt.Figure:
    """Observed statistic per group (dots; red outside) against its predictive interval."""
    t = table.sort_values("mean").reset_index(drop=True)
    outside = (t["observed"] < t["lower"]) | (t["observed"] > t["upper"])
    stat, group, prob = t.attrs["stat"], t.attrs["group"] or "data", t.attrs["prob"]
    with _style():
        fig, ax = plt.subplots(figsize=(max(6.0, min(14.0, 0.12 * len(t) + 3)), 4))
        x = np.arange(len(t))
        ax.vlines(x, t["lower"], t["upper"], color="0.6", lw=2, label=f"{prob:.0%} predictive interval")
        ax.scatter(x[~outside], t["observed"][~outside], s=14, color="C0", zorder=3, label="observed")
        ax.scatter(x[outside], t["observed"][outside], s=18, color="C3", zorder=3, label="observed, outside")
        ax.set_xlabel(f"{group} (ordered by the predicted {stat})")
        ax.set_ylabel(f"{stat} of {response}")
        if len(t) > 40:
            ax.set_xticks([])
        else:
            ax.set_xticks(x, [str(v) for v in t["level"]], rotation=90, fontsize=7)
        expected = (1 - prob) * len(t)
        ax.set_title(f"{stat} of {response} per {group}: {int(outside.sum())} of {len(t)} outside their "
                     f"{prob:.0%} intervals ({expected:.1f} expected by chance)", fontsize=10)  # fmt: skip
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
    return fig


# --- multilevel figures -----------------------------------------------------------------------


def plot_caterpillar(fit, term: str = "(Intercept)", group: str | None = None, kind: str = "ranef",
                     prob: float = 0.95) -> plt.Figure:  # fmt: skip
    """Every group's effect on ``term`` with its interval, sorted (``kind``: ranef or coef)."""
    from .groups import one_factor, group_term

    if kind not in ("ranef", "coef"):
        raise ValueError(f"kind must be 'ranef' (deviations) or 'coef' (group coefficients), not {kind!r}")
    factor = one_factor(fit, group, "plot_caterpillar")
    terms = fit.design.group_terms(factor)
    term = group_term(term, terms, factor)
    table = getattr(fit, kind)(factor, prob=prob)
    table = table[table.term == term].sort_values("mean").reset_index(drop=True)
    J = len(table)
    with _style():
        fig, ax = plt.subplots(figsize=(6, max(3, min(0.16 * J + 1, 14))))
        y = np.arange(J)
        ax.hlines(y, table["lower"], table["upper"], color=POINT, lw=1,
                  label=f"{prob:.0%} equal-tailed interval")  # fmt: skip
        ax.plot(table["mean"], y, "o", color=POINT, ms=3, label="posterior mean")
        ref = 0.0 if kind == "ranef" else float(fit.posterior[names.FIXED].sel({names.TERM: term}).mean()) if term in fit.design.fixed_terms else 0.0
        ax.axvline(ref, color=GREY, ls="--", lw=1)
        _level_ticks(ax, y, table["level"])
        ax.set_ylabel(factor)
        what = "deviation from the fixed effect" if kind == "ranef" else "group coefficient"
        ax.set_xlabel(f"{term}: {what}")
        ax.set_title(f"{factor}: {J} groups, sorted", fontsize=10)
        fig.tight_layout()
    return fig


def plot_shrinkage(fit, group: str | None = None, terms=None) -> plt.Figure:
    """No-pooling estimates against partial-pooling posterior means, arrows per group, marker
    area by group size. One term: estimates against group size; two terms: the 2-D version
    (e.g. intercept against slope)."""
    from .groups import one_factor

    factor = one_factor(fit, group, "plot_shrinkage")
    table = fit.shrinkage(factor)
    available = list(dict.fromkeys(table["term"]))
    terms = available[:2] if terms is None else ([terms] if isinstance(terms, str) else list(terms))
    for t in terms:
        if t not in available:
            raise ValueError(f"{t!r} is not a group-level term of {factor!r}; its terms are {available}")
    with _style():
        fig, ax = plt.subplots(figsize=(6.5, 5))
        if len(terms) == 1:
            t = table[table.term == terms[0]]
            n = t["n"].to_numpy()
            balanced = np.unique(n).size == 1  # group size says nothing: order by the own estimate
            x = np.argsort(np.argsort(t["no_pooling"].fillna(t["mean"]).to_numpy(), kind="stable")) + 1 if balanced else n
            ax.scatter(x, t["no_pooling"], s=12 + 2 * np.sqrt(n), facecolors="none", edgecolors=OTHER,
                       label="no pooling (own data)")  # fmt: skip
            ax.scatter(x, t["mean"], s=12 + 2 * np.sqrt(n), color=POINT, label="partial pooling (posterior mean)")
            for xi, a, b in zip(x, t["no_pooling"], t["mean"]):
                if np.isfinite(a):
                    _arrow(ax, (xi, a), (xi, b))
            ax.axhline(_population(fit, terms[0]), color="k", ls="--", lw=1, label="population (fixed effect)")
            if balanced:
                ax.set_xlabel(f"{factor}, ordered by its own estimate (each has {n[0]} rows)")
            else:
                ax.set_xscale("log")
                ax.set_xlabel(f"rows per {factor} (log scale)")
            ax.set_ylabel(terms[0])
        else:
            a = table[table.term == terms[0]].reset_index(drop=True)
            b = table[table.term == terms[1]].reset_index(drop=True)
            size = 12 + 2 * np.sqrt(a["n"].to_numpy())
            ax.scatter(a["no_pooling"], b["no_pooling"], s=size, facecolors="none", edgecolors=OTHER,
                       label="no pooling (own data)")  # fmt: skip
            ax.scatter(a["mean"], b["mean"], s=size, color=POINT, label="partial pooling (posterior mean)")
            for x0, y0, x1, y1 in zip(a["no_pooling"], b["no_pooling"], a["mean"], b["mean"]):
                if np.isfinite(x0) and np.isfinite(y0):
                    _arrow(ax, (x0, y0), (x1, y1))
            ax.plot([_population(fit, terms[0])], [_population(fit, terms[1])], "k+", ms=14, mew=2,
                    label="population (fixed effects)")  # fmt: skip
            ax.set_xlabel(terms[0])
            ax.set_ylabel(terms[1])
            _robust_limits(ax.set_xlim, a)
            outside = _robust_limits(ax.set_ylim, b) | _outside(a)
        if len(terms) == 1:
            outside = _robust_limits(ax.set_ylim, t)
        ax.legend(fontsize=8, loc="best")
        note = f" ({int(outside.sum())} extreme no-pooling estimates outside the view)" if outside.any() else ""
        ax.set_title(f"Shrinkage of {factor} estimates{note}", fontsize=10)
        fig.tight_layout()
    return fig


def _arrow(ax, start, end):
    """A grey arrow from a group's own estimate to its posterior mean. A patch, so the axes clip
    it (an annotation's arrow from an estimate outside the view would cross the figure)."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="->", mutation_scale=10, color=GREY, lw=0.7))


def _bounds(t):
    """A view of the partial-pooling estimates and the central 95% of the no-pooling ones:
    one group with a handful of rows can put its own estimate far away."""
    own = t["no_pooling"].to_numpy()
    own = own[np.isfinite(own)]
    lo, hi = np.quantile(own, [0.025, 0.975]) if len(own) else (np.inf, -np.inf)
    lo, hi = min(lo, t["lower"].min(), t["mean"].min()), max(hi, t["upper"].max(), t["mean"].max())
    pad = 0.08 * (hi - lo)
    return lo - pad, hi + pad


def _outside(t):
    lo, hi = _bounds(t)
    return ((t["no_pooling"] < lo) | (t["no_pooling"] > hi)).to_numpy()


def _robust_limits(setter, t):
    setter(*_bounds(t))
    return _outside(t)


def _level_ticks(ax, y, levels):
    """One tick label per group, smaller as groups multiply; none beyond 80 (unreadable)."""
    J = len(levels)
    ax.set_yticks(y, list(levels) if J <= 80 else [""] * J, fontsize=9 if J <= 20 else 7 if J <= 40 else 6)


def _population(fit, term):
    return float(fit.posterior[names.FIXED].sel({names.TERM: term}).mean()) if term in fit.design.fixed_terms else 0.0


def plot_fitted(fit, x: str, group: str | None = None, levels=None, facet: bool = False,
                prob: float = 0.95, points: bool = True) -> plt.Figure:  # fmt: skip
    """The population line with its band, every group's posterior mean line (grey), and the
    chosen ``levels`` highlighted with their data points (``facet=True``: a panel each).

    Other covariates are held at their mean (numeric) or reference level (categorical).
    """
    from .groups import one_factor

    design = fit.design
    data = design.data
    if x not in data.columns or not pd.api.types.is_numeric_dtype(data[x]):
        raise ValueError(f"x must be a numeric column the model uses, not {x!r}")
    factor = one_factor(fit, group, "plot_fitted")
    all_levels = list(design.factors[factor].levels)
    if levels is None:
        levels = all_levels[:: max(1, len(all_levels) // 4)][:4]
    levels = [str(lv) for lv in levels]
    unknown = [lv for lv in levels if lv not in all_levels]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a level of {factor!r}")
    grid = np.linspace(data[x].min(), data[x].max(), 40)
    base = {}
    for col in data.columns:
        if col == x:
            continue
        if col in design.categories:
            base[col] = design.categories[col][0]
        elif pd.api.types.is_numeric_dtype(data[col]):
            base[col] = float(data[col].mean())
    group_cols = [c for b in design.spec.blocks if b.group == factor for c in b.group_columns]
    if len(group_cols) != 1:
        raise ValueError(f"plot_fitted needs a grouping factor of one column; {factor!r} combines {group_cols}")
    gcol = group_cols[0]
    population = fit.predict(pd.DataFrame({**base, x: grid, gcol: all_levels[0]}), re_form="NA", prob=prob,
                             interval="eti")
    frames = [pd.DataFrame({**base, x: grid, gcol: lv}) for lv in all_levels]
    lines = fit.predict(pd.concat(frames, ignore_index=True), re_form="(1 | " + ":".join(f"`{c}`" for c in factor.split(":")) + ")")["mean"].to_numpy()
    lines = lines.reshape(len(all_levels), len(grid))
    colors = plt.get_cmap("tab10")
    with _style():
        panels = levels if facet else [None]
        ncol = min(len(panels), 4)
        nrow = int(np.ceil(len(panels) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol + 1, 3 * nrow + 0.5), squeeze=False, sharey=True)
        for k, panel in enumerate(panels):
            ax = axes.flat[k]
            ax.plot(grid, lines.T, color=GREY, lw=0.5, alpha=0.5)
            ax.fill_between(grid, population["lower"], population["upper"], color="k", alpha=0.15)
            ax.plot(grid, population["mean"], color="k", lw=2, label="population")
            for c, lv in enumerate(levels if panel is None else [panel]):
                colour = colors(levels.index(lv) % 10)
                ax.plot(grid, lines[all_levels.index(lv)], color=colour, lw=1.8, label=f"{factor} {lv}")
                if points:
                    rows = data[data[gcol].astype(str) == lv]
                    ax.plot(rows[x], design.y[data[gcol].astype(str).to_numpy() == lv], "o", color=colour, ms=3)
            ax.set_xlabel(x)
            ax.set_title(f"{factor} {panel}" if panel is not None else "", fontsize=9)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        axes.flat[0].set_ylabel(design.response)
        axes.flat[0].legend(fontsize=7, loc="best")
        fig.suptitle(f"Population line ({prob:.0%} equal-tailed band) and each {factor}'s line", fontsize=10)
        fig.tight_layout()
    return fig


def plot_ranks(fit, term: str = "(Intercept)", group: str | None = None, prob: float = 0.95,
               descending: bool = True) -> plt.Figure:  # fmt: skip
    """Each group's posterior rank (median and interval), sorted: how sure is "the best"?"""
    table = fit.ranks(term=term, group=group, prob=prob, descending=descending)
    J = len(table)
    with _style():
        fig, ax = plt.subplots(figsize=(6, max(3, min(0.16 * J + 1, 14))))
        y = np.arange(J)[::-1]
        ax.hlines(y, table["lower"], table["upper"], color=POINT, lw=1)
        ax.plot(table["rank_median"], y, "o", color=POINT, ms=3)
        _level_ticks(ax, y, table["level"])
        ax.set_ylabel(table["grp"].iloc[0])
        ax.set_xlabel(f"rank of {table['term'].iloc[0]} (1 = {'highest' if descending else 'lowest'}), "
                      f"median and {prob:.0%} equal-tailed interval")  # fmt: skip
        ax.set_xlim(0.5, J + 0.5)
        fig.tight_layout()
    return fig


class PlotAccessor:
    """``fit.plot.<name>(...)``: the figures of this fit (see ``hierbayes.plots``)."""

    def __init__(self, fit):
        self._fit = fit

    def forest(self, **kw):
        return plot_forest(self._fit, **kw)

    def variance(self, **kw):
        return plot_variance(self._fit, **kw)

    def caterpillar(self, **kw):
        return plot_caterpillar(self._fit, **kw)

    def shrinkage(self, **kw):
        return plot_shrinkage(self._fit, **kw)

    def fitted(self, x, **kw):
        return plot_fitted(self._fit, x, **kw)

    def ppc(self, **kw):
        return plot_ppc(self._fit, **kw)

    def trace(self, **kw):
        return plot_trace(self._fit, **kw)

    def rank(self, **kw):
        return plot_rank(self._fit, **kw)

    def ranks(self, **kw):
        return plot_ranks(self._fit, **kw)
