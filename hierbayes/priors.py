"""Stage 3: Design (+ overrides) -> Priors: defaults scaled to the data, a printable prior table.

Defaults (the README documents them; s_y is the SD of the response, s_x of a predictor column;
for a family with a non-identity link, on the link scale: mean(y) is g(mean(y)) and s_y is 1,
``Family.link_scale``):

- ``Intercept``: Normal(mean(y), 2.5 s_y), for the intercept with every fixed predictor at
  its sample mean (as brms and rstanarm put it; the reported ``(Intercept)`` is shifted back).
- ``b`` (each fixed slope): Normal(0, 2.5 s_y / s_x).
- ``sd`` (each group-level SD): HalfStudentT(3, s_y / s_z), with s_z = 1 for an intercept.
- ``cor`` (each correlated block): LKJ(eta=2).
- the family's own parameters, as ``hierbayes.families`` gives them: for the Gaussian family
  ``sigma`` (residual SD): HalfStudentT(3, s_y).

Users override by class, block and term with brms's parameter names: ``"b"``, ``"b_standLRT"``,
``"Intercept"``, ``"sd"``, ``"sd_school"``, ``"sd_school__standLRT"``, ``"cor"``,
``"cor_school"``, ``"sigma"``. The most specific key wins.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import names
from .design import Design

__all__ = ["Prior", "PriorEntry", "Priors", "PriorError", "default_priors", "make_priors"]


class PriorError(ValueError):
    """A prior cannot be understood or does not fit the parameter it is given to."""


# name -> (parameter names in positional order, support)
_DISTS: dict[str, tuple[tuple[str, ...], str]] = {
    "Normal": (("mu", "sigma"), "real"),
    "StudentT": (("nu", "mu", "sigma"), "real"),
    "Cauchy": (("alpha", "beta"), "real"),
    "Laplace": (("mu", "b"), "real"),
    "HalfNormal": (("sigma",), "positive"),
    "HalfStudentT": (("nu", "sigma"), "positive"),
    "HalfCauchy": (("beta",), "positive"),
    "Exponential": (("lam",), "positive"),
    "Gamma": (("alpha", "beta"), "positive"),
    "InverseGamma": (("alpha", "beta"), "positive"),
    "LKJ": (("eta",), "correlation"),
}
# brms / Stan spellings
_ALIASES = {
    "normal": "Normal", "student_t": "StudentT", "studentt": "StudentT", "cauchy": "Cauchy",
    "double_exponential": "Laplace", "laplace": "Laplace", "half_normal": "HalfNormal",
    "halfnormal": "HalfNormal", "half_student_t": "HalfStudentT", "halfstudentt": "HalfStudentT",
    "half_cauchy": "HalfCauchy", "halfcauchy": "HalfCauchy", "exponential": "Exponential",
    "gamma": "Gamma", "inv_gamma": "InverseGamma", "inversegamma": "InverseGamma",
    "lkj": "LKJ", "lkj_corr": "LKJ", "lkj_corr_cholesky": "LKJ",
}  # fmt: skip
# A location-zero real prior given to a positive parameter means its half version (as in brms).
_HALF = {"Normal": "HalfNormal", "StudentT": "HalfStudentT", "Cauchy": "HalfCauchy"}
# the classes every model has; a family adds its own parameters' (families.Parameter.support)
_SUPPORT = {"Intercept": "real", "b": "real", "sd": "positive", "cor": "correlation"}


@dataclass(frozen=True, init=False)
class Prior:
    """A prior distribution by PyMC name and parameters: ``Prior("Normal", mu=0, sigma=1)``.

    ``Prior.parse("normal(0, 2.5)")`` reads the same from text (PyMC or brms spelling).
    """

    dist: str
    params: tuple[tuple[str, float], ...]

    def __init__(self, dist: str, **params: float):
        name = _canonical(dist)
        order, _ = _DISTS[name]
        unknown = set(params) - set(order)
        if unknown:
            raise PriorError(f"{name} has no parameter {sorted(unknown)}; it takes {', '.join(order)}")
        missing = [p for p in order if p not in params]
        if missing:
            raise PriorError(f"{name} needs {', '.join(missing)}")
        values = []
        for p in order:
            v = np.asarray(params[p], dtype=float)
            if not np.all(np.isfinite(v)):
                raise PriorError(f"{name}: parameter {p} must be finite, got {params[p]!r}")
            values.append((p, float(v) if v.ndim == 0 else tuple(v.tolist())))
        object.__setattr__(self, "dist", name)
        object.__setattr__(self, "params", tuple(values))

    @classmethod
    def parse(cls, text: str | Prior) -> Prior:
        """``"Normal(0, 1)"``, ``"normal(mu=0, sigma=1)"``, ``"student_t(3, 0, 2.5)"``, ``"lkj(2)"``."""
        if isinstance(text, Prior):
            return text
        if isinstance(text, dict):
            return cls(text["dist"], **{k: v for k, v in text.items() if k != "dist"})
        try:
            call = ast.parse(str(text).strip(), mode="eval").body
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                raise SyntaxError
            args = [ast.literal_eval(a) for a in call.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (SyntaxError, ValueError):
            raise PriorError(
                f"cannot read prior {text!r}; write it like 'Normal(0, 1)' or 'HalfStudentT(nu=3, sigma=1)'"
            ) from None
        name = _canonical(call.func.id)
        order, _ = _DISTS[name]
        if len(args) > len(order):
            raise PriorError(f"{name} takes at most {len(order)} parameters ({', '.join(order)}): {text!r}")
        return cls(name, **dict(zip(order, args)), **kwargs)

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def support(self) -> str:
        return _DISTS[self.dist][1]

    def __str__(self) -> str:
        def fmt(v):
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        return f"{self.dist}({', '.join(f'{k}={fmt(v)}' for k, v in self.params)})"


@dataclass(frozen=True)
class PriorEntry:
    """The prior of one parameter (or of a class of them)."""

    cls: str  # "Intercept", "b", "sd", "cor" or "sigma"
    group: str  # block name for sd and cor, "" otherwise
    coef: str  # term name for b and sd, "" otherwise
    prior: Prior
    source: str  # "default" or "user"


@dataclass(frozen=True)
class Priors:
    """Every parameter's prior, resolved for one design; ``table()`` prints them."""

    entries: tuple[PriorEntry, ...]

    def get(self, cls: str, group: str = "", coef: str = "") -> Prior:
        for e in self.entries:
            if (e.cls, e.group, e.coef) == (cls, group, coef):
                return e.prior
        raise KeyError((cls, group, coef))

    def table(self) -> pd.DataFrame:
        """One row per parameter: class, group, coef, prior, source (like brms's prior_summary)."""
        return pd.DataFrame(
            [(e.cls, e.group, e.coef, str(e.prior), e.source) for e in self.entries],
            columns=["class", "group", "coef", "prior", "source"],
        )

    def __str__(self) -> str:
        return self.table().to_string(index=False)


def default_priors(design: Design) -> Priors:
    """The data-scaled defaults described in this module's docstring."""
    return make_priors(design, None)


def make_priors(design: Design, overrides: dict | Priors | None = None) -> Priors:
    """Resolve the prior of every parameter: user overrides where given, defaults elsewhere."""
    if isinstance(overrides, Priors):
        return overrides
    user = {str(k): Prior.parse(v) for k, v in (overrides or {}).items()}
    valid = set(_valid_keys(design))
    unknown = [k for k in user if k not in valid]
    if unknown:
        raise PriorError(
            f"no parameter matches prior key(s) {unknown}; this model's keys are "
            f"{', '.join(sorted(valid, key=lambda k: _key_order(k, design.family.param_names)))}"
        )
    y = design.y
    loc, s_y = design.family.link_scale(y, design.trials)  # mean(y), sd(y) for the identity link
    support = {**_SUPPORT, **{p.name: p.support for p in design.family.params}}

    entries: list[PriorEntry] = []

    def add(cls, group, coef, default, keys):
        for key in keys:  # most specific first
            if key in user:
                prior = _fit_support(user[key], support[cls], key)
                entries.append(PriorEntry(cls, group, coef, prior, "user"))
                return
        entries.append(PriorEntry(cls, group, coef, default, "default"))

    for k, term in enumerate(design.fixed_terms):
        if term == "(Intercept)":
            add("Intercept", "", "", Prior("Normal", mu=loc, sigma=2.5 * s_y), ["Intercept"])
        else:
            s_x = _sd(design.X[:, k])
            add("b", "", term, Prior("Normal", mu=0.0, sigma=2.5 * s_y / s_x), [f"b_{term}", "b"])
    for block in design.blocks:
        for k, term in enumerate(block.terms):
            s_z = 1.0 if term == "(Intercept)" else _sd(block.Z[:, k])
            add(
                "sd", block.name, term, Prior("HalfStudentT", nu=3.0, sigma=s_y / s_z),
                [f"{names.sd(block)}__{term}", names.sd(block), "sd"],
            )  # fmt: skip
        if block.correlated:
            add("cor", block.name, "", Prior("LKJ", eta=2.0), [names.cor(block), "cor"])
    for param in design.family.params:  # the family's own (Gaussian: sigma), a class each
        dist, kwargs = param.default_prior(y)
        add(param.name, "", "", Prior(dist, **kwargs), [param.name])
    return Priors(tuple(entries))


def _valid_keys(design: Design) -> list[str]:
    keys = list(design.family.param_names)
    slopes = [t for t in design.fixed_terms if t != "(Intercept)"]
    if design.has_intercept:
        keys.append("Intercept")
    if slopes:
        keys += ["b"] + [f"b_{t}" for t in slopes]
    if design.blocks:
        keys.append("sd")
    for block in design.blocks:
        keys += [names.sd(block)] + [f"{names.sd(block)}__{t}" for t in block.terms]
        if block.correlated:
            keys += ["cor", names.cor(block)]
    return list(dict.fromkeys(keys))


def _key_order(key: str, family_params: tuple[str, ...]) -> tuple[int, str]:
    order = ["Intercept", "b", "sd", "cor", *family_params]
    return (next((i for i, c in enumerate(order) if key.startswith(c)), 9), key)


def _fit_support(prior: Prior, need: str, key: str) -> Prior:
    """Check a user's prior suits its parameter (``need``: its support); a zero-centred real
    prior on an SD means its half."""
    if prior.support == need:
        return prior
    if need == "positive" and prior.dist in _HALF:
        kw = prior.kwargs
        if kw.pop("mu", kw.pop("alpha", 0.0)) != 0.0:
            raise PriorError(f"prior {prior} for {key!r} must be centred at 0 to be used on an SD")
        if prior.dist == "Cauchy":
            kw = {"beta": kw["beta"]}
        return Prior(_HALF[prior.dist], **kw)
    raise PriorError(f"prior {prior} for {key!r} has {prior.support} support; {key!r} needs a {need} prior")


def _canonical(name: str) -> str:
    if name in _DISTS:
        return name
    alias = _ALIASES.get(str(name).lower())
    if alias is None:
        raise PriorError(f"unknown prior distribution {name!r}; known: {', '.join(_DISTS)}")
    return alias


def _sd(x: np.ndarray) -> float:
    s = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return s if s > 0 else 1.0
