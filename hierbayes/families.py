"""Response families: one declarative entry per family (as brms's ``R/family-lists.R`` and
bambi's ``bambi/defaults/families.py``).

A family says how the response relates to the linear predictor eta = X beta + Z b (+ offset):

- the link g, with mean mu = E[y | eta] = g^{-1}(eta) (for the binomial, the probability of a
  success; y counts the successes in ``trials``);
- the density p(y | mu, theta), theta the family's own parameters (each a posterior variable
  with a default prior, named as brms names them: ``sigma``, ``nu``, ``shape``);
- Var[y | mu, theta], and the *latent-scale residual variance* that ICC and R² put next to the
  group-level variances (Nakagawa, Johnson & Schielzeth 2017): sigma² (Gaussian, Student-t);
  pi²/3 (logit), 1 (probit), pi²/6 (cloglog) for binary and binomial responses; for counts
  with a log link, the lognormal approximation log(1 + 1/lambda) (Poisson) and
  log(1 + 1/lambda + 1/shape) (negative binomial), lambda = exp(eta at the predictors' means
  and the mean offset + sum of group-level intercept variances / 2) the mean count of a typical
  row (``trigamma=True``: the trigamma variant, psi'(lambda) and
  psi'(1/(1/lambda + 1/shape))).
- ``link_scale(y, trials)``: a location and scale of the response on the link scale, which
  the default priors and the standardised sampling use: (mean(y), sd(y)) for the identity link,
  (g(mean), 1) otherwise.

Densities: Gaussian N(mu, sigma²); Student-t t_nu(mu, sigma); Bernoulli(mu); Binomial(trials,
mu); Poisson(mu); negative binomial with mean mu and Var = mu + mu²/shape.

Every stage reads the family from ``Design.family``. This module imports nothing from
hierbayes but ``names``, so any module may import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import special, stats

from . import names
from .lazy import LazyModule

pm, pt = LazyModule("pymc"), LazyModule("pytensor.tensor")

__all__ = ["Parameter", "Family", "Link", "LINKS", "FAMILIES", "GAUSSIAN", "get_family", "response_scale"]


@dataclass(frozen=True)
class Link:
    """A link function g: its inverse on arrays and on PyTensor tensors, and g itself."""

    name: str
    code: int  # its number in the numba kernels (``core.likelihood``)
    inverse: Callable = field(repr=False)
    inverse_tensor: Callable = field(repr=False)
    forward: Callable = field(repr=False)


LINKS = {
    "identity": Link("identity", 0, lambda e: e, lambda e: e, lambda m: m),
    "logit": Link("logit", 1, special.expit, lambda e: pm.math.invlogit(e), special.logit),
    "probit": Link("probit", 2, special.ndtr, lambda e: 0.5 * pt.erfc(-e / np.sqrt(2.0)), special.ndtri),
    "cloglog": Link("cloglog", 3, lambda e: -np.expm1(-np.exp(e)), lambda e: -pt.expm1(-pt.exp(e)),
                    lambda m: np.log(-np.log1p(-m))),  # fmt: skip
    "log": Link("log", 4, np.exp, lambda e: pt.exp(e), np.log),
    "sqrt": Link("sqrt", 5, np.square, lambda e: pt.sqr(e), np.sqrt),
}


def response_scale(y) -> float:
    """s_y: the SD of the response (ddof 1), or 1 when it is 0 or there is one value."""
    y = np.asarray(y, dtype=float)
    s_y = float(np.std(y, ddof=1)) if len(y) > 1 else 1.0
    return s_y if s_y > 0 else 1.0


@dataclass(frozen=True)
class Parameter:
    """One of a family's own parameters: its posterior name, support and default prior.

    ``default_prior(y)`` gives the prior as (PyMC distribution name, its parameters), e.g.
    ``("HalfStudentT", {"nu": 3.0, "sigma": 1.2})``; ``priors.py`` makes it a ``Prior``.
    ``log_start(y, X)`` is the log of the packed samplers' starting value, jittered by up to
    ``jitter`` on the log scale."""

    name: str
    support: str  # "positive" or "real", as priors.py names supports
    default_prior: Callable[[np.ndarray], tuple[str, dict]] = field(repr=False)
    description: str = ""
    log_start: Callable[[np.ndarray, np.ndarray], float] = field(default=lambda y, X: 0.0, repr=False)
    jitter: float = 0.5


@dataclass(frozen=True)
class Family:
    """A response family: link, own parameters, density, and how the stages report it."""

    name: str
    kernel: int  # its log-likelihood's number in the numba kernels (``core.likelihood.loglik_rows``)
    links: tuple[str, ...]
    params: tuple[Parameter, ...]
    title: str  # "Gaussian"
    model_kind: str  # "linear" or "generalised linear": the summary's first words
    residual_symbol: str  # the residual variance in formulas of tables ("sigma^2", "pi^2/3")
    # the callables: see the methods of the same name
    response_problem: Callable[[pd.Series, str], str | None] = field(repr=False, compare=False)
    log_density: Callable = field(repr=False, compare=False)  # (y, mu, params, trials)
    conditional_variance: Callable = field(repr=False, compare=False)  # (mu, params, trials)
    latent_residual_variance: Callable | None = field(repr=False, compare=False)  # (params, mean count, trigamma)
    random: Callable = field(repr=False, compare=False)  # (mu, params, rng, trials)
    likelihood: Callable = field(repr=False, compare=False)  # PyMC: (name, eta, link, params, y, trials)
    integrates_exactly: bool = False  # Gaussian group effects integrate out exactly (hierbayes.marginal)
    laplace_links: tuple[str, ...] = ()  # the links under which method="laplace" serves it (sampled.laplace)
    has_trials: bool = False  # the response is successes out of trials
    discrete: bool = False
    link: str = "identity"

    def __post_init__(self):
        if self.link not in self.links:
            raise ValueError(f"the {self.name} family has no {self.link!r} link; it has {', '.join(self.links)}")

    @property
    def label(self) -> str:
        return f"{self.title} ({self.link} link)"

    @property
    def summary_title(self) -> str:
        link = f", {self.link} link" if len(self.links) > 1 else ""
        return f"Bayesian {self.model_kind} mixed model ({self.title}{link})"

    @property
    def link_code(self) -> int:
        """The link's number in the numba kernels."""
        return LINKS[self.link].code

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def with_link(self, link: str | None) -> Family:
        return self if link is None or link == self.link else dataclasses.replace(self, link=link)

    def check_response(self, y: pd.Series, name: str) -> str | None:
        """What is wrong with the response column ``y`` (called ``name``) for this family, or None.
        ``design.py`` raises its ``DataError`` with the message (this module imports no design)."""
        return self.response_problem(y, name)

    def loglik(self, y, mu, params: dict, trials=None) -> np.ndarray:
        """Pointwise log density of ``y`` given the mean ``mu`` and the family's parameters
        (arrays that broadcast against each other)."""
        return self.log_density(np.asarray(y, dtype=float), np.asarray(mu, dtype=float), params, trials)

    def mean(self, eta):
        """The inverse link: the mean of y at the linear predictor ``eta``."""
        return LINKS[self.link].inverse(eta)

    def linear_predictor(self, mu):
        """The link: eta at the mean ``mu``."""
        return LINKS[self.link].forward(mu)

    def variance(self, mu, params: dict, trials=None):
        """Var[y | mu, params]."""
        return self.conditional_variance(mu, params, trials)

    def residual_variance(self, params: dict, mean_count=None, trigamma: bool = False):
        """The latent-scale residual variance that ICC and R² use, per draw of ``params``
        (``mean_count``: lambda, for count families)."""
        if self.latent_residual_variance is None:  # binary and binomial: the link's distribution
            return _LOGISTIC_VARIANCE[self.link]
        return self.latent_residual_variance(params, mean_count, trigamma)

    @property
    def residual_term(self) -> str:
        """The residual variance as a formula's text ("sigma^2", "pi^2/3")."""
        return _LOGISTIC_SYMBOL[self.link] if self.latent_residual_variance is None else self.residual_symbol

    def link_scale(self, y, trials=None) -> tuple[float, float]:
        """(location, scale) of the response on the link scale (see the module docstring)."""
        y = np.asarray(y, dtype=float)
        if self.link == "identity" and not self.has_trials:
            return float(np.mean(y)), response_scale(y)
        mean = float(np.sum(y) / np.sum(trials)) if self.has_trials else float(np.mean(y))
        if self.link in ("logit", "probit", "cloglog"):
            mean = min(max(mean, 0.01), 0.99)
        else:
            mean = max(mean, 0.01)
        return float(self.linear_predictor(mean)), 1.0

    def observe(self, name: str, eta, params: dict, y, trials=None):
        """The likelihood of ``y`` in the PyMC model in context, at the linear predictor ``eta``."""
        return self.likelihood(name, eta, LINKS[self.link], params, y, trials)

    def draw(self, mu, params: dict, rng: np.random.Generator, trials=None):
        """New observations around the means ``mu`` (posterior predictive draws)."""
        return self.random(mu, params, rng, trials)


# --- response checks ------------------------------------------------------------------------------


def _numeric_response(family: str):
    def problem(y: pd.Series, name: str) -> str | None:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            return (f"the response {name!r} must be numeric for the {family} family, "
                    f"but the column holds {y.dtype} values such as {y.dropna().iloc[0]!r}")  # fmt: skip
        return None

    return problem


def _first_bad(y: pd.Series, bad: pd.Series) -> str:
    rows = y.index[bad.fillna(False).to_numpy(bool)]
    value = y[rows[0]]
    shown = f"{value:g}" if isinstance(value, (int, float, np.number)) else repr(value)
    return f"{shown} in row {rows[0]!r}" + (f" and {len(rows) - 1} more row(s)" if len(rows) > 1 else "")


def _binary_response(y: pd.Series, name: str) -> str | None:
    if pd.api.types.is_bool_dtype(y):
        return None
    values = pd.to_numeric(y, errors="coerce")
    bad = y.notna() & ~values.isin([0, 1])
    if bad.any():
        return (f"the response {name!r} must be 0/1 (or True/False) for the Bernoulli family: "
                f"{_first_bad(y, bad)}; for successes out of trials write cbind(successes, failures) or "
                "p(successes, trials)")  # fmt: skip
    return None


def _count_response(family: str):
    def problem(y: pd.Series, name: str) -> str | None:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            return f"the response {name!r} must hold counts for the {family} family, not {y.dtype} values"
        bad = y.notna() & ((y < 0) | (y != np.round(y)))
        if bad.any():
            return (f"the response {name!r} must be a non-negative whole number (a count) for the {family} "
                    f"family: {_first_bad(y, bad)}")  # fmt: skip
        return None

    return problem


# --- PyMC likelihoods -----------------------------------------------------------------------------


def _probability(eta, link):
    """p = g^{-1}(eta), kept inside (0, 1) so that log p and log(1 - p) stay finite."""
    return pt.clip(link.inverse_tensor(eta), 1e-12, 1 - 1e-12)


def _binary_likelihood(name, eta, link, params, y, trials):
    if link.name == "logit":
        return pm.Bernoulli(name, logit_p=eta, observed=y)
    return pm.Bernoulli(name, p=_probability(eta, link), observed=y)


def _binomial_likelihood(name, eta, link, params, y, trials):
    if link.name == "logit":
        return pm.Binomial(name, n=trials, logit_p=eta, observed=y)
    return pm.Binomial(name, n=trials, p=_probability(eta, link), observed=y)


def _positive_mean(eta, link):
    return link.inverse_tensor(eta) if link.name == "log" else pt.maximum(link.inverse_tensor(eta), 1e-12)


# --- the families -----------------------------------------------------------------------------------


def _sigma(y) -> tuple[str, dict]:
    return "HalfStudentT", {"nu": 3.0, "sigma": response_scale(y)}


def _residual_sd(y, X) -> float:
    """log of the residual SD of the least-squares fit of y on X."""
    return float(np.log(np.std(y - X @ np.linalg.lstsq(X, y, rcond=None)[0]) or 1.0))


def _moment_shape(y, X) -> float:
    """log of the moment estimate mean^2 / (var - mean) of a negative binomial's shape, in [0.1, 100]."""
    mean, var = float(np.mean(y)), float(np.var(y))
    return float(np.log(np.clip(mean**2 / (var - mean), 0.1, 100.0) if var > mean else 100.0))


SIGMA = Parameter(names.SIGMA, "positive", _sigma, "the residual SD", log_start=_residual_sd, jitter=1.0)
_LOGISTIC_VARIANCE = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}
_LOGISTIC_SYMBOL = {"logit": "pi^2/3", "probit": "1", "cloglog": "pi^2/6"}


GAUSSIAN = Family(
    name="gaussian", kernel=0, links=("identity",), params=(SIGMA,), title="Gaussian", model_kind="linear",
    residual_symbol="sigma^2", response_problem=_numeric_response("Gaussian"),
    log_density=lambda y, mu, p, n: stats.norm.logpdf(y, mu, p[names.SIGMA]),
    conditional_variance=lambda mu, p, n: np.broadcast_to(np.asarray(p[names.SIGMA]) ** 2, np.shape(mu)),
    latent_residual_variance=lambda p, lam, trigamma: p[names.SIGMA] ** 2,
    random=lambda mu, p, rng, n: mu + rng.standard_normal(np.shape(mu)) * p[names.SIGMA],
    likelihood=lambda name, eta, link, p, y, n: pm.Normal(name, mu=link.inverse_tensor(eta), sigma=p[names.SIGMA],
                                                          observed=y),  # fmt: skip
    integrates_exactly=True,
)

STUDENT_T = Family(
    name="student_t", kernel=1, links=("identity",),
    params=(SIGMA, Parameter("nu", "positive", lambda y: ("Gamma", {"alpha": 2.0, "beta": 0.1}),
                             "degrees of freedom", log_start=lambda y, X: float(np.log(10.0)))),  # fmt: skip
    title="Student-t", model_kind="robust linear", residual_symbol="sigma^2",
    response_problem=_numeric_response("Student-t"),
    log_density=lambda y, mu, p, n: stats.t.logpdf(y, p["nu"], mu, p[names.SIGMA]),
    conditional_variance=lambda mu, p, n: np.broadcast_to(
        np.where(p["nu"] > 2, p[names.SIGMA] ** 2 * p["nu"] / np.maximum(p["nu"] - 2, 1e-12), np.inf), np.shape(mu)),
    latent_residual_variance=lambda p, lam, trigamma: p[names.SIGMA] ** 2,
    random=lambda mu, p, rng, n: mu + rng.standard_t(np.broadcast_to(p["nu"], np.shape(mu))) * p[names.SIGMA],
    likelihood=lambda name, eta, link, p, y, n: pm.StudentT(name, nu=p["nu"], mu=link.inverse_tensor(eta),
                                                            sigma=p[names.SIGMA], observed=y),  # fmt: skip
)

BERNOULLI = Family(
    name="bernoulli", kernel=2, links=("logit", "probit", "cloglog"), params=(), title="Bernoulli",
    model_kind="generalised linear", residual_symbol="pi^2/3", response_problem=_binary_response,
    log_density=lambda y, mu, p, n: stats.bernoulli.logpmf(y, mu),
    conditional_variance=lambda mu, p, n: mu * (1 - mu),
    latent_residual_variance=None, random=lambda mu, p, rng, n: rng.binomial(1, mu).astype(float),
    likelihood=_binary_likelihood, discrete=True, link="logit", laplace_links=("logit",),
)

BINOMIAL = Family(
    name="binomial", kernel=2, links=("logit", "probit", "cloglog"), params=(), title="Binomial",
    model_kind="generalised linear", residual_symbol="pi^2/3", response_problem=_count_response("binomial"),
    log_density=lambda y, mu, p, n: stats.binom.logpmf(y, n, mu),
    conditional_variance=lambda mu, p, n: n * mu * (1 - mu),
    latent_residual_variance=None, random=lambda mu, p, rng, n: rng.binomial(np.asarray(n, dtype=int), mu).astype(float),
    likelihood=_binomial_likelihood, has_trials=True, discrete=True, link="logit", laplace_links=("logit",),
)


def _count_latent(negative_binomial: bool):
    def variance(p, lam, trigamma):
        inverse_shape = 1 / p["shape"] if negative_binomial else 0.0
        if trigamma:
            return special.polygamma(1, 1 / (1 / lam + inverse_shape))
        return np.log1p(1 / lam + inverse_shape)

    return variance


POISSON = Family(
    name="poisson", kernel=3, links=("log", "identity", "sqrt"), params=(), title="Poisson",
    model_kind="generalised linear", residual_symbol="log(1 + 1/lambda)", response_problem=_count_response("Poisson"),
    log_density=lambda y, mu, p, n: stats.poisson.logpmf(y, mu),
    conditional_variance=lambda mu, p, n: mu,
    latent_residual_variance=_count_latent(False), random=lambda mu, p, rng, n: rng.poisson(mu).astype(float),
    likelihood=lambda name, eta, link, p, y, n: pm.Poisson(name, mu=_positive_mean(eta, link), observed=y),
    discrete=True, link="log", laplace_links=("log",),
)

NEGATIVE_BINOMIAL = Family(
    name="negativebinomial", kernel=4, links=("log", "identity", "sqrt"),
    params=(Parameter("shape", "positive", lambda y: ("Gamma", {"alpha": 0.01, "beta": 0.01}),
                      "the shape: Var = mu + mu^2 / shape", log_start=_moment_shape),),  # fmt: skip
    title="Negative binomial", model_kind="generalised linear", residual_symbol="log(1 + 1/lambda + 1/shape)",
    response_problem=_count_response("negative binomial"),
    log_density=lambda y, mu, p, n: stats.nbinom.logpmf(y, p["shape"], p["shape"] / (p["shape"] + mu)),
    conditional_variance=lambda mu, p, n: mu + mu**2 / p["shape"],
    latent_residual_variance=_count_latent(True),
    random=lambda mu, p, rng, n: rng.negative_binomial(np.broadcast_to(p["shape"], np.shape(mu)),
                                                       p["shape"] / (p["shape"] + mu)).astype(float),  # fmt: skip
    likelihood=lambda name, eta, link, p, y, n: pm.NegativeBinomial(name, mu=_positive_mean(eta, link),
                                                                    alpha=p["shape"], observed=y),  # fmt: skip
    discrete=True, link="log", laplace_links=("log",),
)

FAMILIES: dict[str, Family] = {f.name: f for f in (GAUSSIAN, STUDENT_T, BERNOULLI, BINOMIAL, POISSON, NEGATIVE_BINOMIAL)}
ALIASES = {"normal": "gaussian", "t": "student_t", "studentt": "student_t", "student": "student_t",
           "negbinomial": "negativebinomial", "negative_binomial": "negativebinomial", "nbinom": "negativebinomial",
           "logistic": "bernoulli"}  # fmt: skip


def get_family(family: str | Family, link: str | None = None) -> Family:
    """The family of a name (``"gaussian"``, ``"poisson"``, ``"t"``, ...) with its canonical
    link or ``link``; a ``Family`` is returned as it is (with ``link`` if given)."""
    if isinstance(family, Family):
        return family.with_link(link)
    key = ALIASES.get(str(family).lower(), str(family).lower())
    if key not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; available: {', '.join(FAMILIES)} (aliases: t, normal)")
    chosen = FAMILIES[key]
    if link is not None and link not in chosen.links:
        raise ValueError(f"the {chosen.name} family has no {link!r} link; it has {', '.join(chosen.links)}")
    return chosen.with_link(link)
