"""Stage 6: Model + Sampled -> FitResult, the posterior read the way lme4 users read a fit.

Tables are pandas DataFrames of posterior means, SDs and intervals (95% equal-tailed by
default; ``interval="hdi"`` for highest density). Nothing here re-fits the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from . import names
from .design import Design
from .lazy import LazyModule
from .model import Model
from .priors import Priors
from .sampling import Diagnostics
from .names import SAMPLE_DIMS as _SAMPLE_DIMS
from .summarize import stats as _stats

pm = LazyModule("pymc")

__all__ = ["FitResult"]


@dataclass(frozen=True)
class FitResult:
    """A sampled model: ``idata`` (ArviZ DataTree) plus what made it (``built``: the
    ``hierbayes.model.Model`` that was sampled)."""

    built: Model = field(repr=False)
    idata: object = field(repr=False)
    sampler: str
    diagnostics: Diagnostics
    random_seed: int | None = None  # as passed to hb.fit: the same seed gives the same draws

    @property
    def design(self) -> Design:
        return self.built.design

    @property
    def priors(self) -> Priors:
        return self.built.priors

    @property
    def method(self) -> str:
        """``marginal``: group effects integrated out and drawn exactly afterwards; ``full``;
        ``laplace``; ``gibbs``: every quantity drawn from its conditional in turn."""
        return self.built.method

    @property
    def method_reason(self) -> str:
        """Why ``method`` was chosen, and what ran it (``hierbayes.methods.choice``)."""
        return self.built.reason

    @property
    def algorithm(self) -> str:
        """How the draws were made, in words."""
        return "Gibbs sampling (hierbayes.methods.gibbs)" if self.sampler == "gibbs" else f"NUTS via {self.sampler}"

    @property
    def integrated(self) -> tuple[str, ...]:
        """The grouping factors whose effects were integrated out (empty for ``full``)."""
        return self.built.integrated

    @property
    def model(self) -> pm.Model:
        """The PyMC model (built on first use when the packed model was sampled)."""
        return self.built.pymc

    @property
    def spec(self):
        return self.design.spec

    @property
    def rows_used(self) -> pd.Index:
        """The index labels of the data rows the fit used (rows with a missing value are dropped)."""
        return self.design.rows_used

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata.posterior.dataset

    @property
    def plot(self):
        """Figures: ``fit.plot.forest()``, ``.variance()``, ``.caterpillar()``, ``.shrinkage()``,
        ``.fitted(x)``, ``.ppc()``, ``.trace()``, ``.rank()``, ``.ranks()`` (see ``hierbayes.plots``)."""
        from .plots import PlotAccessor

        return PlotAccessor(self)

    # --- tables -----------------------------------------------------------------------------

    def fixef(self, prob: float = 0.95, interval: str = "eti", rope=None, exponentiate: bool = False) -> pd.DataFrame:
        """Fixed effects: index = term, columns mean, sd, lower, upper, r_hat, ess_bulk. With
        ``rope=(low, high)`` (or a dict by term) also ``pd``, the probability of direction, and
        ``in_rope``, the % of the interval inside that region of practical equivalence.
        ``exponentiate=True``: exp(b) draw by draw: odds ratios (logit link), rate ratios (log
        link); the intercept becomes the baseline odds or rate."""
        b = self.posterior[names.FIXED]
        table = _stats(np.exp(b) if exponentiate else b, prob, interval).reset_index(drop=True)
        table = pd.concat([table, _diagnostics(self.idata, names.FIXED)], axis=1)
        table.index = list(self.design.fixed_terms)
        table.index.name = "term"
        if rope is not None:
            from .hypothesis import direction_and_rope

            table = table.join(direction_and_rope(self, rope, prob, interval))
        return table

    def hypothesis(self, hypotheses, prob: float = 0.95, random_seed: int | None = 0) -> pd.DataFrame:
        """brms's ``hypothesis()``: ``fit.hypothesis("sexM > 0")``, ``"schgendboys = schgendgirls"``;
        posterior probability, evidence ratio (Savage-Dickey Bayes factor for ``=``); see
        ``hierbayes.hypothesis``."""
        from .hypothesis import hypothesis

        return hypothesis(self, hypotheses, prob, random_seed)

    def ranef(self, group: str | None = None, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """Group deviations b from the fixed effects, one row per grouping-factor level and term.

        Columns: grp, level, term, mean, sd, lower, upper (broom.mixed's ``ran_vals`` layout).
        Blocks that share a grouping factor (``(x || g)``) are reported under that factor.
        """
        rows = []
        for block in self._blocks(group):
            r = self.posterior[names.effects(block)]
            table = _stats(r, prob, interval).reset_index()
            table.columns = ["level", "term", *table.columns[2:]]
            table.insert(0, "grp", block.group)
            rows.append(table)
        return _sorted_by_level(pd.concat(rows, ignore_index=True), self.design)

    def coef(self, group: str | None = None, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """Group-level coefficients: fixed effect + that group's deviation, per level and term.

        As lme4's ``coef()``: every fixed term appears for every level; terms without a
        group-level effect in that factor are the fixed effect alone.
        """
        b = self.posterior[names.FIXED]
        tables = []
        for factor in self._factors(group):
            levels = self.design.factors[factor].levels
            draws = b.expand_dims({factor: list(levels)}).copy()  # (factor, chain, draw, term)
            draws = draws.transpose(*_SAMPLE_DIMS, factor, names.TERM)
            extra = []
            for block in self.design.blocks:
                if block.group != factor:
                    continue
                r = self.posterior[names.effects(block)]
                for term in block.terms:
                    rv = r.sel({names.effect_dim(block): term}, drop=True)
                    if term in self.design.fixed_terms:
                        draws.loc[{names.TERM: term}] = draws.sel({names.TERM: term}) + rv
                    else:
                        extra.append(rv.expand_dims({names.TERM: [term]}))
            if extra:
                draws = xr.concat([draws, *[e.transpose(*draws.dims) for e in extra]], dim=names.TERM)
            table = _stats(draws, prob, interval).reset_index()
            table.columns = ["level", "term", *table.columns[2:]]
            table.insert(0, "grp", factor)
            tables.append(table)
        return _sorted_by_level(pd.concat(tables, ignore_index=True), self.design)

    def varcorr(self, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """Variance components in the layout of lme4's ``as.data.frame(VarCorr(m))``.

        Columns grp, var1, var2 (empty on SD rows), then the posterior mean, sd, lower and
        upper of the SD (or of the correlation), and ``vcov``: the posterior mean of the
        variance (or covariance). The residual is grp ``Residual``.
        """
        rows = []
        for block in self.design.blocks:
            effect, effect_bis = names.effect_dim(block), names.effect_dim_bis(block)
            sd = self.posterior[names.sd(block)]
            for term in block.terms:
                s = sd.sel({effect: term})
                rows.append(_row(block.name, term, "", s, (s**2).mean(), prob, interval))
            if block.correlated:
                cor = self.posterior[names.cor(block)]
                for i, t1 in enumerate(block.terms):
                    for t2 in block.terms[i + 1 :]:
                        c = cor.sel({effect: t1, effect_bis: t2})
                        cov = (c * sd.sel({effect: t1}) * sd.sel({effect: t2})).mean()
                        rows.append(_row(block.name, t1, t2, c, cov, prob, interval))
        if names.SIGMA in self.design.family.param_names:  # the residual SD (Gaussian, Student-t)
            sigma = self.posterior[names.SIGMA]
            rows.append(_row("Residual", "", "", sigma, (sigma**2).mean(), prob, interval))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "mean", "sd", "lower", "upper", "vcov"])

    # --- what the fit says (variance.py, groups.py, predict.py, frequentist.py) -----------------

    def variance_components(self, at: dict | None = None, prob: float = 0.95, interval: str = "hdi",
                            draws: bool = False):  # fmt: skip
        """Variance at each level (grouping factors, residual) and its proportion of the total.

        Columns level, quantity (``variance`` or ``proportion``), mean, sd, lower, upper. With
        random slopes the group-level variance depends on the covariates: pass ``at``
        (``{"standLRT": 0}``), or it is averaged over the fitted rows and a warning says so.
        """
        from .variance import variance_components

        return variance_components(self, at, prob, interval, draws)

    def icc(self, at: dict | None = None, prob: float = 0.95, interval: str = "hdi", draws: bool = False,
            trigamma: bool = False):  # fmt: skip
        """Intraclass correlations: per grouping factor, adjusted and conditional (``performance::icc``);
        other families on the latent scale (``trigamma``: that approximation for counts)."""
        from .variance import icc

        return icc(self, at, prob, interval, draws, trigamma)

    def r2(self, at: dict | None = None, prob: float = 0.95, interval: str = "hdi", draws: bool = False):
        """Bayesian R² (Gelman et al. 2019; conditional, marginal) and Nakagawa's marginal/conditional R²."""
        from .variance import r2

        return r2(self, at, prob, interval, draws)

    def shrinkage(self, group: str | None = None, term: str | None = None, prob: float = 0.95,
                  interval: str = "hdi") -> pd.DataFrame:  # fmt: skip
        """Per group: size, no-pooling, complete-pooling and partial-pooling (posterior) estimates."""
        from .groups import shrinkage

        return shrinkage(self, group, term, prob, interval)

    def ranks(self, term: str = "(Intercept)", group: str | None = None, descending: bool = True,
              prob: float = 0.95, draws: bool = False):  # fmt: skip
        """Posterior distribution of each group's rank on ``term`` (median rank, interval, P(first))."""
        from .groups import ranks

        return ranks(self, term, group, descending, prob, draws)

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, kind: str = "mean",
                prob: float = 0.95, interval: str = "hdi", draws: bool = False,
                allow_new_levels: bool = True, random_seed: int | None = None):  # fmt: skip
        """Predictions like lme4's ``predict``: ``re_form=None`` (all effects) or NA (population).

        ``kind="pp"`` adds residual noise (posterior predictive). New levels of a grouping
        factor get effects drawn from the population distribution. See ``hierbayes.predict``.
        """
        from .predict import predict

        return predict(self, newdata, re_form, kind, prob, interval, draws, allow_new_levels, random_seed)

    def ppc(self, stat="mean", group: str | None = None, prob: float = 0.9, random_seed: int | None = 0) -> pd.DataFrame:
        """Posterior predictive check of ``stat`` (mean, sd, min, max, median or a function) per
        level of ``group``: observed, predictive mean and interval, p (``hierbayes.checks``);
        ``fit.plot.ppc(stat=..., group=...)`` draws it."""
        from .checks import ppc

        return ppc(self, stat, group, prob, random_seed=random_seed)

    def compare_frequentist(self, method: str = "REML", reference=None, prob: float = 0.95,
                            interval: str = "hdi") -> pd.DataFrame:  # fmt: skip
        """The REML/ML fit (statsmodels MixedLM, or ``reference`` numbers) next to the posterior."""
        from .frequentist import compare_frequentist

        return compare_frequentist(self, method, reference, prob, interval)

    def report(self, out, at: dict | None = None, frequentist: str | None = "REML", figures: bool = True,
               comparison=None):  # fmt: skip
        """Write index.html (self-contained), report.md, CSV tables and figures into ``out``.

        ``at``: covariate values for the ICC of random-slope models; ``frequentist``: REML, ML
        or None for the side-by-side fit; ``comparison``: an ``hb.compare`` result to include.
        Returns the path of index.html.
        """
        from .report import write_report

        return write_report(self, out, at=at, frequentist=frequentist, figures=figures, comparison=comparison)

    def loo(self, by: str = "row", **kwargs):
        """PSIS-LOO (arviz-stats ``loo``): ``by="row"`` scores each row given its group's
        effects (a new observation in a known group), ``by="group"`` each level of the
        integrated-out factor with its effects integrated out (a new group). Any two fits of
        the same rows compare on either; see ``hierbayes.compare``."""
        from .compare import loo

        return loo(self, by, **kwargs)

    def waic(self, by: str = "row") -> pd.Series:
        """WAIC on the units of ``by`` (as ``loo``): elpd_waic, se, p_waic. Prefer LOO."""
        from .compare import waic

        return waic(self, by)

    def prior_table(self) -> pd.DataFrame:
        """Every parameter's prior (class, group, coef, prior, source), like brms's prior_summary."""
        return self.priors.table()

    # --- text -------------------------------------------------------------------------------

    def summary(self, prob: float = 0.95) -> str:
        """A text that reads like lmer's summary, with posterior means, SDs and intervals."""
        d = self.design
        post = self.posterior
        n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
        pct = f"{prob:.0%}"
        lines = [
            f"{d.family.summary_title}, {self.algorithm}"
            + (f", group effects of {self._integrated()} integrated out (drawn exactly afterwards)"
               if self.method == "marginal" else "")
            + (f", group effects of {self._integrated()} integrated out by a Laplace approximation (drawn from it "
               "afterwards)" if self.method == "laplace" else ""),
            f"Formula: {d.spec.formula}",
            f"   Data: {d.n_obs} observations" + (f"; {d.dropped_text()}" if d.n_dropped else ""),
            f" Draws: {n_chains} chains x {n_draws} (after warm-up); intervals are {pct} equal-tailed"
            + (f"; seed {self.random_seed}" if self.random_seed is not None else ""),
            *([f"Method: {self.method}: {self.method_reason}"] if self.method_reason else []),
            "",
        ]
        if d.blocks:
            vc = self.varcorr(prob)
            lines.append(f"Random effects (posterior mean of each SD, its {pct} equal-tailed interval; correlations):")
            lines.append(_random_effects_text(vc, d))
            groups = ", ".join(f"{name}, {f.n_levels}" for name, f in d.factors.items())
            lines.append(f"Number of obs: {d.n_obs}, groups:  {groups}")
        elif names.SIGMA in d.family.param_names:
            s = _stats(post[names.SIGMA], prob, "eti").iloc[0]
            lines.append(f"Residual SD: {s['mean']:.4g} ({pct} equal-tailed interval {s['lower']:.4g} to {s['upper']:.4g})")
        for p in d.family.params:
            if p.name != names.SIGMA:
                s = _stats(post[p.name], prob, "eti").iloc[0]
                lines.append(f"{p.name} ({p.description}): {s['mean']:.4g} ({pct} equal-tailed interval "
                             f"{s['lower']:.4g} to {s['upper']:.4g})")  # fmt: skip
        lines += ["", "Fixed effects:"]
        fe = self.fixef(prob).rename(
            columns={"mean": "Estimate", "sd": "Est.Error", "lower": f"l-{pct}", "upper": f"u-{pct}",
                     "r_hat": "R-hat", "ess_bulk": "ESS"}  # fmt: skip
        )
        fe["ESS"] = fe["ESS"].round().astype(int)
        fe.index.name = None
        lines.append(fe.to_string(float_format=lambda v: f"{v:.4g}"))
        lines += ["", f"Diagnostics: {self.diagnostics.line()}"]
        for message in self.diagnostics.messages:
            lines.append(f"  Warning: {message}")
        from .variance import sds_at_zero

        at_zero = sds_at_zero(post, d.blocks)
        if at_zero:
            lines.append(f"  Note: the posterior of {', '.join(at_zero)} is highest at 0 (lme4 would report a "
                         "singular fit): the data hardly tell that variance from zero; its interval shows how "
                         "large it could still be. Dropping the term is an option.")  # fmt: skip
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # --- helpers ----------------------------------------------------------------------------

    def _integrated(self) -> str:
        """The factors whose effects were integrated out, as the summary names them."""
        return " and ".join(repr(n) for n in self.integrated)

    def _blocks(self, group):
        blocks = [b for b in self.design.blocks if group is None or b.group == group]
        if not blocks:
            raise ValueError(self._no_group(group))
        return blocks

    def _factors(self, group):
        if group is None:
            return list(self.design.factors)
        if group not in self.design.factors:
            raise ValueError(self._no_group(group))
        return [group]

    def _no_group(self, group) -> str:
        if not self.design.factors:
            return "this model has no group-level effects"
        return f"no grouping factor {group!r}; the model has {', '.join(map(repr, self.design.factors))}"


def _diagnostics(idata, name: str) -> pd.DataFrame:
    rhat = azs.rhat(idata, var_names=[name])[name].values.reshape(-1)
    ess = azs.ess(idata, var_names=[name], method="bulk")[name].values.reshape(-1)
    return pd.DataFrame({"r_hat": rhat, "ess_bulk": ess})


def _row(grp, var1, var2, da, vcov, prob, interval) -> dict:
    s = _stats(da, prob, interval).iloc[0]
    return {"grp": grp, "var1": var1, "var2": var2, "mean": s["mean"], "sd": s["sd"],
            "lower": s["lower"], "upper": s["upper"], "vcov": float(vcov)}  # fmt: skip


def _sorted_by_level(table: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Keep levels in the factor's order (not alphabetical) and terms in model order."""
    order = {(g, lv): i for g, f in design.factors.items() for i, lv in enumerate(f.levels)}
    key = table.apply(lambda r: order[(r["grp"], r["level"])], axis=1)
    return table.assign(_k=key).sort_values(["grp", "_k"], kind="stable").drop(columns="_k").reset_index(drop=True)


def _random_effects_text(vc: pd.DataFrame, design: Design) -> str:
    """lmer's Groups / Name / Std.Dev. / Corr table, with the posterior interval added."""
    gw = max([10, len("Residual")] + [len(b.name) for b in design.blocks])  # column widths fit the names
    nw = max([14] + [len(t) for b in design.blocks for t in b.terms])
    lines = [f" {'Groups':<{gw}} {'Name':<{nw}} {'Std.Dev.':>9} {'lower':>9} {'upper':>9}  Corr"]
    for block in design.blocks:
        sds = vc[(vc.grp == block.name) & (vc.var2 == "")]
        cors = vc[(vc.grp == block.name) & (vc.var2 != "")]
        for i, (_, row) in enumerate(sds.iterrows()):
            corr = []
            for t in block.terms[:i]:
                c = cors[(cors.var1 == t) & (cors.var2 == row.var1)]
                corr.append(f"{c['mean'].iloc[0]:5.2f}")
            grp = block.name if i == 0 else ""
            lines.append(
                f" {grp:<{gw}} {row.var1:<{nw}} {row['mean']:>9.4g} {row['lower']:>9.4g} {row['upper']:>9.4g}  {' '.join(corr)}"
            )
    for _, res in vc[vc.grp == "Residual"].iterrows():
        lines.append(f" {'Residual':<{gw}} {'':<{nw}} {res['mean']:>9.4g} {res['lower']:>9.4g} {res['upper']:>9.4g}")
    return "\n".join(lines)
