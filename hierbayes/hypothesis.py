"""Hypotheses about fixed effects, as brms's ``hypothesis()``: ``fit.hypothesis("sexM > 0")``.

A hypothesis compares two expressions in the fixed-effect terms (``+ - * /``, numbers;
``Intercept`` stands for ``(Intercept)``; backquote names with other characters, as in the
formula: `` `I(age^2)` > 0``). With h = lhs - rhs, computed draw by draw:

- one-sided (``<``, ``>``): Post.Prob = P(h > 0 | y) (or < 0); Evid.Ratio = Post.Prob /
  (1 - Post.Prob), the posterior odds of the hypothesis; the interval is one-sided.
- point (``=``): Evid.Ratio is the Savage-Dickey Bayes factor BF01 = p(h = 0 | y) / p(h = 0),
  the posterior density of h at 0 over its prior density there (both by KDE, arviz-stats
  ``bayes_factor``; prior draws from the model's priors). Post.Prob = BF01 / (1 + BF01), the
  posterior probability of h = 0 against h != 0 at even prior odds. A Bayes factor depends on
  the prior: a wider prior on the effects favours h = 0 more (Lindley's paradox); compare it
  under the priors you defend, and read the interval first.

``Star`` marks a hypothesis whose interval excludes 0 (brms's convention).
``direction_and_rope`` adds the probability of direction and the share of the interval inside
a region of practical equivalence (arviz-stats ``ci_in_rope``) to ``fixef``.
"""

from __future__ import annotations

import ast
import operator
import re
import warnings

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from . import names
from .sampling import pymc_quiet

__all__ = ["hypothesis", "HypothesisError", "direction_and_rope", "prior_draws"]

OPERATORS = ("<=", ">=", "==", "<", ">", "=")
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load,
          ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)  # fmt: skip
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class HypothesisError(ValueError):
    """A hypothesis that cannot be read: no comparison, an unknown term, other syntax."""


def hypothesis(fit, hypotheses, prob: float = 0.95, random_seed: int | None = 0) -> pd.DataFrame:
    """One row per hypothesis (a string or a list): Hypothesis, Estimate, Est.Error, CI.Lower,
    CI.Upper, Evid.Ratio, Post.Prob, Star. See the module docstring."""
    if isinstance(hypotheses, str):
        hypotheses = [hypotheses]
    terms = list(fit.design.fixed_terms)
    post = fit.posterior[names.FIXED]
    parsed = [_parse(h, terms) for h in hypotheses]
    prior = None
    rows, notes = [], []
    alpha = 1 - prob
    for text, (lhs, op, rhs) in zip(hypotheses, parsed):
        h = _evaluate(lhs, post, terms) - _evaluate(rhs, post, terms)
        values = h.values.reshape(-1)
        row = {"Hypothesis": _normalised(text), "Estimate": values.mean(), "Est.Error": values.std(ddof=1)}
        if op in ("=", "=="):
            row["CI.Lower"], row["CI.Upper"] = np.quantile(values, [alpha / 2, 1 - alpha / 2])
            if prior is None:
                prior = prior_draws(fit, random_seed=random_seed)
            h_prior = _evaluate(lhs, prior, terms) - _evaluate(rhs, prior, terms)
            bf01, note = savage_dickey(h, h_prior)
            notes += [note] if note else []
            row["Evid.Ratio"], row["Post.Prob"] = bf01, bf01 / (1 + bf01)
        else:
            greater = op in (">", ">=")
            p = float(np.mean(values > 0)) if greater else float(np.mean(values < 0))
            row["CI.Lower"] = np.quantile(values, alpha) if greater else -np.inf
            row["CI.Upper"] = np.inf if greater else np.quantile(values, 1 - alpha)
            row["Evid.Ratio"], row["Post.Prob"] = (p / (1 - p) if p < 1 else np.inf), p
        row["Star"] = "*" if row["CI.Lower"] > 0 or row["CI.Upper"] < 0 else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["notes"] = ("Evid.Ratio: posterior odds for one-sided hypotheses; the Savage-Dickey Bayes factor "
                           "BF01 for point hypotheses, which depends on the prior. '*': the "
                           f"{prob:.0%} interval excludes 0.", *notes)  # fmt: skip
    return table


def savage_dickey(h: xr.DataArray, h_prior: xr.DataArray) -> tuple[float, str]:
    """BF01 = p(h = 0 | y) / p(h = 0) from KDEs of the posterior and prior draws (arviz-stats).
    Where 0 lies outside every posterior draw the KDE cannot see it (arviz-stats reads its
    edge value): the posterior density there is its normal approximation, and a note says so."""
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"h": h})})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Reference value", category=UserWarning)
        _, density = azs.bayes_factor(tree, var_names=["h"], ref_vals=0.0, prior={"h": h_prior.values},
                                      return_ref_vals=True)  # fmt: skip
    posterior, prior = (float(density["h"].sel(density_type=k)) for k in ("posterior", "prior"))
    values = h.values.reshape(-1)
    if values.min() > 0 or values.max() < 0:
        posterior = float(stats.norm.pdf(0.0, values.mean(), values.std(ddof=1)))
        return posterior / prior, "0 lies outside every posterior draw of a point hypothesis: its posterior density there is a normal approximation (BF01 is tiny either way)"
    return posterior / prior, ""


def prior_draws(fit, draws: int = 4000, random_seed: int | None = 0) -> xr.DataArray:
    """Draws of the fixed effects (on the data's scale) from their priors, with dims (chain, draw, term)."""
    import pymc as pm

    with fit.model, pymc_quiet(), warnings.catch_warnings():  # Potentials (the integrated likelihood) do not touch b's prior
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        prior = pm.sample_prior_predictive(draws=draws, var_names=[names.FIXED], random_seed=random_seed,
                                           return_inferencedata=False)  # fmt: skip
    values = np.asarray(prior[names.FIXED]).reshape(1, draws, -1)
    return xr.DataArray(values, dims=(*names.SAMPLE_DIMS, names.TERM),
                        coords={"chain": [0], "draw": np.arange(draws), names.TERM: list(fit.design.fixed_terms)})  # fmt: skip


def direction_and_rope(fit, rope=None, prob: float = 0.95, interval: str = "hdi") -> pd.DataFrame:
    """Per fixed effect: ``pd``, the probability of direction max(P(b > 0), P(b < 0)), and with
    ``rope=(low, high)`` (or a dict by term) ``in_rope``, the % of the interval inside it."""
    b = fit.posterior[names.FIXED]
    terms = list(fit.design.fixed_terms)
    table = pd.DataFrame(index=pd.Index(terms, name="term"))
    positive = (b > 0).mean(names.SAMPLE_DIMS).values
    table["pd"] = np.maximum(positive, 1 - positive)
    if rope is not None:
        ropes = rope if isinstance(rope, dict) else {t: rope for t in terms}
        unknown = set(ropes) - set(terms)
        if unknown:
            raise ValueError(f"rope names term(s) {sorted(unknown)} that are not fixed effects ({', '.join(terms)})")
        ds = xr.Dataset({t: b.sel({names.TERM: t}, drop=True) for t in ropes})
        share = azs.ci_in_rope(ds, {t: tuple(r) for t, r in ropes.items()}, ci_prob=prob, ci_kind=interval)
        table["in_rope"] = [float(share[t]) if t in ropes else np.nan for t in terms]
    return table


def _parse(text: str, terms: list[str]):
    """(lhs expression, operator, rhs expression), with term names replaced by t0, t1, ..."""
    found = [op for op in OPERATORS if op in text]
    if not found:
        raise HypothesisError(f"hypothesis {text!r} has no comparison: write it with <, > or =, e.g. 'sexM > 0'")
    op = found[0]
    lhs, _, rhs = text.partition(op)
    if any(o in rhs for o in OPERATORS) or not lhs.strip() or not rhs.strip():
        raise HypothesisError(f"hypothesis {text!r} should compare two expressions with one of <, > or =")
    return _expression(lhs, terms, text), op, _expression(rhs, terms, text)


def _expression(part: str, terms: list[str], text: str) -> ast.Expression:
    def placeholder(name: str) -> str:
        name = "(Intercept)" if name == "Intercept" else name
        if name not in terms:
            raise HypothesisError(f"hypothesis {text!r}: {name!r} is not a fixed effect; they are {', '.join(terms)}")
        return f" __t{terms.index(name)} "

    part = re.sub(r"`([^`]+)`", lambda m: placeholder(m.group(1)), part)
    for term in sorted(terms, key=len, reverse=True):  # names with brackets or colons, longest first
        if not term.isidentifier():
            part = part.replace(term, placeholder(term))
    part = re.sub(r"(?<![\w.])([A-Za-z_][\w.]*)", lambda m: m.group(1) if re.fullmatch(r"__t\d+", m.group(1))
                  else placeholder(m.group(1)), part)  # fmt: skip
    try:
        tree = ast.parse(part.strip(), mode="eval")
    except SyntaxError:
        raise HypothesisError(f"hypothesis {text!r}: cannot read {part.strip()!r}") from None
    bad = [type(n).__name__ for n in ast.walk(tree) if not isinstance(n, _NODES)]
    if bad:
        raise HypothesisError(f"hypothesis {text!r}: only + - * / and numbers may combine terms")
    return tree


def _evaluate(tree: ast.Expression, draws: xr.DataArray, terms: list[str]):
    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return draws.sel({names.TERM: terms[int(node.id[3:])]}, drop=True)
        if isinstance(node, ast.UnaryOp):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        return _BINARY[type(node.op)](value(node.left), value(node.right))

    return value(tree) * xr.ones_like(draws.isel({names.TERM: 0}, drop=True))


def _normalised(text: str) -> str:
    """brms's label: the hypothesis as (lhs) - (rhs) compared with 0."""
    op = next(op for op in OPERATORS if op in text)
    lhs, _, rhs = text.partition(op)
    op = {"==": "=", "<=": "<", ">=": ">"}.get(op, op)
    rhs = rhs.strip()
    return f"({lhs.strip()}) {op} 0" if rhs in ("0", "0.0") else f"({lhs.strip()}) - ({rhs}) {op} 0"
