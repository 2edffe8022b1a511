"""The frequentist fit of the same model, side by side with the posterior.

``fit_mixedlm`` fits the design by REML or ML with statsmodels' MixedLM where it can express
the structure: group-level blocks (correlated or not) on one grouping factor, plus random
intercepts or independent slopes of factors nested in it (variance components within
groups), or only independent terms on crossed factors (variance components in one group).
Correlated blocks on two or more factors, or a correlated block on a factor that the others
are not nested in, are refused with a message that says so; pass lme4's numbers as
``reference=`` instead.

Standard errors: fixed effects from MixedLM. Variance parameters: MixedLM gives SEs of the
variances relative to the residual variance; the SD's SE uses them with the residual
variance held at its estimate (MixedLM profiles it out), and the correlation's SE is the
delta method (exact in that scale). 95% intervals are Wald intervals on the log-SD and
Fisher-z scales; lme4's profile intervals differ somewhat, mostly for small SDs.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import names

__all__ = ["FrequentistFit", "fit_mixedlm", "compare_frequentist", "UnsupportedStructure"]

Z95 = 1.959963984540054


class UnsupportedStructure(ValueError):
    """statsmodels' MixedLM cannot fit this random-effects structure."""


@dataclass(frozen=True)
class FrequentistFit:
    """Estimates in lme4's layout: parameter table (fixed, sd, cor, sigma rows) and fit facts."""

    table: pd.DataFrame  # kind, grp, var1, var2, estimate, se, lower, upper
    method: str
    source: str
    log_lik: float = np.nan
    converged: bool = True


def fit_mixedlm(design, method: str = "REML") -> FrequentistFit:
    """Fit ``design`` by REML or ML with statsmodels' MixedLM (see the module docstring)."""
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams, VCSpec

    method = _method(method)
    if not design.family.integrates_exactly:
        raise UnsupportedStructure(f"statsmodels has no exact fit of a {design.family.label} mixed model (its "
                                   "BinomialBayesMixedGLM and PoissonBayesMixedGLM are variational approximations); "
                                   "pass lme4's glmer numbers as reference=")  # fmt: skip
    if not design.blocks:
        raise UnsupportedStructure("the model has no group-level effects; fit it with ordinary least squares")
    outer, outer_blocks, vc_blocks = _structure(design)
    n = design.n_obs
    groups = design.factors[outer].codes if outer else np.zeros(n, dtype=int)
    n_groups = int(groups.max()) + 1
    rows_of = [np.flatnonzero(groups == g) for g in range(n_groups)]

    exog_re = np.column_stack([b.Z for b in outer_blocks]) if outer_blocks else np.zeros((n, 0))
    k_re = exog_re.shape[1]
    free = None
    if any(not b.correlated for b in outer_blocks) and k_re > 1:
        pattern = np.zeros((k_re, k_re))
        start = 0
        for b in outer_blocks:
            pattern[start : start + b.size, start : start + b.size] = 1 if b.correlated else np.eye(b.size)
            start += b.size
        free = MixedLMParams.from_components(fe_params=np.ones(design.X.shape[1]), cov_re=pattern,
                                             vcomp=np.ones(len(vc_blocks)))  # fmt: skip
    exog_vc = None
    if vc_blocks:
        vc_names, colnames, mats = [], [], []
        for b in vc_blocks:
            codes = design.factors[b.group].codes
            vc_names.append(b.name)
            cols, ms = [], []
            for rows in rows_of:
                present = np.unique(codes[rows])
                ind = (codes[rows][:, None] == present[None, :]) * b.Z[rows, :1]
                cols.append([str(k) for k in present])
                ms.append(ind)
            colnames.append(cols)
            mats.append(ms)
        exog_vc = VCSpec(vc_names, colnames, mats)

    model = MixedLM(design.y, design.X, groups=groups, exog_re=exog_re, exog_vc=exog_vc)
    result = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for optimizer in (["bfgs"], ["lbfgs"], ["powell"], ["nm", "bfgs"]):
            try:
                result = model.fit(reml=method == "REML", free=free, method=optimizer)
            except (np.linalg.LinAlgError, ValueError):
                continue
            if result.converged and np.isfinite(result.llf):
                break
    if result is None or not np.isfinite(result.llf):
        raise RuntimeError(f"statsmodels MixedLM did not converge on {design.spec.formula!r} ({method})")
    return FrequentistFit(
        table=_table(design, result, outer_blocks, vc_blocks),
        method=method,
        source=f"statsmodels MixedLM ({method})",
        log_lik=float(result.llf),
        converged=bool(result.converged),
    )


def _structure(design):
    """(outer factor or None, its blocks, the blocks fitted as variance components)."""
    factors = list(design.factors)
    multi = sorted({b.group for b in design.blocks if b.size > 1})
    if len(multi) > 1:
        raise UnsupportedStructure(
            f"statsmodels MixedLM fits correlated group-level effects on one grouping factor only; this "
            f"model has them on {', '.join(map(repr, multi))}. Pass lme4's estimates as reference= instead"
        )
    candidates = multi or factors
    outer = next((f for f in candidates if all(_nested(design, g, f) for g in factors if g != f)), None)
    if multi and outer is None:
        others = [g for g in factors if g != multi[0] and not _nested(design, g, multi[0])]
        raise UnsupportedStructure(
            f"statsmodels MixedLM can fit correlated effects on {multi[0]!r} only together with factors "
            f"nested in it; {', '.join(map(repr, others))} is crossed with it. Pass lme4's estimates "
            "as reference= instead"
        )
    outer_blocks = [b for b in design.blocks if b.group == outer]
    vc_blocks = [b for b in design.blocks if b.group != outer]
    return outer, outer_blocks, vc_blocks


def _nested(design, inner: str, outer: str) -> bool:
    """Every level of ``inner`` lies within one level of ``outer``."""
    a, b = design.factors[inner].codes, design.factors[outer].codes
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == design.factors[inner].n_levels


def _table(design, result, outer_blocks, vc_blocks) -> pd.DataFrame:
    p = design.X.shape[1]
    scale = float(result.scale)
    params = np.asarray(result.params)
    cov = np.asarray(result.cov_params())
    rows = []
    fe, se = np.asarray(result.fe_params), np.asarray(result.bse_fe)
    for k, term in enumerate(design.fixed_terms):
        rows.append(_fixed_row(term, fe[k], se[k]))

    k_re = sum(b.size for b in outer_blocks)
    tril = list(zip(*np.tril_indices(k_re)))
    index = {pair: p + i for i, pair in enumerate(tril)}  # packed position of cov_re[i, j] in params
    cov_re = np.asarray(result.cov_re)
    start = 0
    for b in outer_blocks:
        for i, t in enumerate(b.terms):
            pos = index[(start + i, start + i)]
            rows.append(_sd_row(b.name, t, cov_re[start + i, start + i], _se(cov, pos) * scale))
        if b.correlated:
            for i, t1 in enumerate(b.terms):
                for j in range(i + 1, b.size):
                    ii, jj, ij = start + i, start + j, (start + j, start + i)
                    cij, cii, cjj = params[index[ij]], params[index[(ii, ii)]], params[index[(jj, jj)]]
                    r = cij / np.sqrt(cii * cjj)
                    grad = np.zeros(len(params))
                    grad[index[ij]] = 1 / np.sqrt(cii * cjj)
                    grad[index[(ii, ii)]] = -r / (2 * cii)
                    grad[index[(jj, jj)]] = -r / (2 * cjj)
                    r_se = float(np.sqrt(max(grad @ cov @ grad, 0.0))) if np.all(np.isfinite(cov)) else np.nan
                    rows.append(_cor_row(b.name, t1, b.terms[j], r, cov_re[ij], r_se))
        start += b.size
    vcomp = np.asarray(result.vcomp)
    for k, b in enumerate(vc_blocks):
        rows.append(_sd_row(b.name, b.terms[0], vcomp[k], _se(cov, p + len(tril) + k) * scale))
    sigma = np.sqrt(scale)
    rows.append({"kind": "sigma", "grp": "Residual", "var1": "", "var2": "", "estimate": sigma, "se": np.nan,
                 "lower": np.nan, "upper": np.nan, "vcov": scale})  # fmt: skip
    return pd.DataFrame(rows)


def _se(cov, pos) -> float:
    v = cov[pos, pos] if pos < len(cov) else np.nan
    return float(np.sqrt(v)) if np.isfinite(v) and v >= 0 else np.nan


def _fixed_row(term, estimate, se):
    return {"kind": "fixed", "grp": "", "var1": term, "var2": "", "estimate": float(estimate), "se": float(se),
            "lower": estimate - Z95 * se, "upper": estimate + Z95 * se, "vcov": np.nan}  # fmt: skip


def _sd_row(grp, term, variance, variance_se):
    sd = float(np.sqrt(max(variance, 0.0)))
    se = variance_se / (2 * sd) if sd > 0 else np.nan
    half = Z95 * se / sd if sd > 0 else np.nan
    return {"kind": "sd", "grp": grp, "var1": term, "var2": "", "estimate": sd, "se": se,
            "lower": sd * np.exp(-half), "upper": sd * np.exp(half), "vcov": float(variance)}  # fmt: skip


def _cor_row(grp, t1, t2, r, covariance, se):
    z, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), Z95 * se / max(1 - r**2, 1e-12)
    return {"kind": "cor", "grp": grp, "var1": t1, "var2": t2, "estimate": float(r), "se": se,
            "lower": np.tanh(z - half), "upper": np.tanh(z + half), "vcov": float(covariance)}  # fmt: skip


# --- reference numbers from elsewhere ----------------------------------------------------------


def reference_fit(reference, design, method: str | None = None) -> FrequentistFit:
    """Numbers a user got elsewhere, as a FrequentistFit.

    ``reference`` is one record in the layout of lme4_reference.json (``fixef``,
    ``fixef_se``, ``varcorr`` as lme4's ``as.data.frame(VarCorr(m))`` rows), a list of such
    records or a path to such a JSON file (the record whose formula matches the fit's, and
    ``method`` if several do), or a flat dict by parameter name: fixed-effect terms,
    ``sd_<block>__<term>``, ``cor_<block>__<term1>__<term2>`` and ``sigma``.
    """
    if isinstance(reference, (str, Path)):
        path = Path(reference)
        if not path.is_file():
            raise FileNotFoundError(f"reference file {str(path)!r} not found")
        reference = json.loads(path.read_text())
    if isinstance(reference, list):
        reference = _pick_record(reference, design, method)
    if not isinstance(reference, dict):
        raise TypeError(f"reference must be a dict, a list of lme4 records or a JSON path, not {type(reference).__name__}")
    if "fixef" in reference:
        return _from_lme4_record(reference, design)
    return _from_flat(reference, design)


def _pick_record(records, design, method):
    wanted = _normal(design.spec.formula)
    matches = [r for r in records if isinstance(r, dict) and _normal(str(r.get("formula", ""))) == wanted]
    if method is not None and len(matches) > 1:
        matches = [r for r in matches if str(r.get("method", "")).upper() == _method(method)] or matches
    if not matches:
        have = ", ".join(repr(r.get("formula")) for r in records[:8])
        raise ValueError(f"no reference record has the formula {design.spec.formula!r}; the records have {have}")
    return matches[0]


def _normal(formula: str) -> str:
    return re.sub(r"\s+", "", formula)


def _from_lme4_record(rec, design) -> FrequentistFit:
    fixef, fixef_se = rec["fixef"], rec.get("fixef_se", {}) or {}
    missing = [t for t in design.fixed_terms if t not in fixef]
    if missing:
        raise ValueError(f"the reference has no fixed effect {missing[0]!r}; it has {list(fixef)}")
    rows = [_fixed_row(t, fixef[t], fixef_se.get(t, np.nan)) for t in design.fixed_terms]
    vc = rec.get("varcorr", [])
    vc = ast.literal_eval(vc) if isinstance(vc, str) else vc
    nan = dict(se=np.nan, lower=np.nan, upper=np.nan)
    for r in vc:
        grp, v1, v2 = str(r.get("grp")), _blank(r.get("var1")), _blank(r.get("var2"))
        if grp == "Residual":
            rows.append({"kind": "sigma", "grp": grp, "var1": "", "var2": "", "estimate": r["sdcor"], **nan,
                         "vcov": r.get("vcov", np.nan)})  # fmt: skip
        else:
            rows.append({"kind": "cor" if v2 else "sd", "grp": grp, "var1": v1, "var2": v2,
                         "estimate": r["sdcor"], **nan, "vcov": r.get("vcov", np.nan)})  # fmt: skip
    method = str(rec.get("method", "")).upper()
    return FrequentistFit(table=pd.DataFrame(rows), method=method, source=f"reference ({method or 'given'})",
                          log_lik=float(rec.get("logLik", np.nan)))  # fmt: skip


def _blank(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) in ("NA", "nan") else str(v)


def _from_flat(ref, design) -> FrequentistFit:
    known = {}
    for t in design.fixed_terms:
        known[t] = ("fixed", "", t, "")
    for b in design.blocks:
        for i, t in enumerate(b.terms):
            known[f"{names.sd(b)}__{t}"] = ("sd", b.name, t, "")
            if b.correlated:
                for t2 in b.terms[i + 1 :]:
                    known[f"{names.cor(b)}__{t}__{t2}"] = ("cor", b.name, t, t2)
    known[names.SIGMA] = ("sigma", "Residual", "", "")
    rows = []
    for name, value in ref.items():
        if name not in known:
            raise ValueError(f"reference names unknown parameter {name!r}; the model's are {list(known)}")
        kind, grp, v1, v2 = known[name]
        est, se = (value.get("estimate"), value.get("se", np.nan)) if isinstance(value, dict) else (value, np.nan)
        est, se = float(est), float(se)
        if kind == "fixed":
            rows.append(_fixed_row(v1, est, se))
        else:
            rows.append({"kind": kind, "grp": grp, "var1": v1, "var2": v2, "estimate": est, "se": se,
                         "lower": np.nan, "upper": np.nan, "vcov": np.nan})  # fmt: skip
    return FrequentistFit(table=pd.DataFrame(rows), method="", source="reference (given)")


# --- side by side ------------------------------------------------------------------------------


def compare_frequentist(fit, method="REML", reference=None, prob=0.95, interval="hdi") -> pd.DataFrame:
    """Frequentist estimate, SE and 95% CI next to the posterior mean, sd and interval.

    One row per fixed effect and variance parameter (SDs, correlations, residual SD), in
    lme4's layout; ``diff_sd`` = (posterior mean - estimate) / posterior sd. The frequentist
    side is statsmodels' MixedLM (``method`` REML or ML), or ``reference`` when given.
    """
    freq = reference_fit(reference, fit.design, method) if reference is not None else fit_mixedlm(fit.design, method)
    posterior = _posterior_rows(fit, prob, interval)
    table = freq.table.rename(columns={"estimate": "freq_estimate", "se": "freq_se", "lower": "freq_lower",
                                       "upper": "freq_upper"}).drop(columns="vcov")  # fmt: skip
    merged = posterior.merge(table, on=["kind", "grp", "var1", "var2"], how="left")
    unmatched = table.merge(posterior[["kind", "grp", "var1", "var2"]], how="left", indicator=True)
    extra = unmatched[unmatched["_merge"] == "left_only"]
    if len(extra):
        row = extra.iloc[0]
        raise ValueError(
            f"the frequentist side has a {row['kind']} row {row['grp']}/{row['var1']}/{row['var2']} that this "
            "model does not have: is it the same model?"
        )
    merged["diff_sd"] = (merged["post_mean"] - merged["freq_estimate"]) / merged["post_sd"]
    merged.insert(0, "source", freq.source)
    return merged


def _posterior_rows(fit, prob, interval) -> pd.DataFrame:
    fe = fit.fixef(prob, interval)
    rows = [{"kind": "fixed", "grp": "", "var1": t, "var2": "", "post_mean": r["mean"], "post_sd": r["sd"],
             "post_lower": r["lower"], "post_upper": r["upper"]} for t, r in fe.iterrows()]  # fmt: skip
    for _, r in fit.varcorr(prob, interval).iterrows():
        kind = "sigma" if r["grp"] == "Residual" else ("cor" if r["var2"] else "sd")
        rows.append({"kind": kind, "grp": r["grp"], "var1": r["var1"], "var2": r["var2"], "post_mean": r["mean"],
                     "post_sd": r["sd"], "post_lower": r["lower"], "post_upper": r["upper"]})  # fmt: skip
    return pd.DataFrame(rows)


def _method(method: str) -> str:
    m = str(method).upper()
    if m not in ("REML", "ML"):
        raise ValueError(f"method must be 'REML' or 'ML', not {method!r}")
    return m
