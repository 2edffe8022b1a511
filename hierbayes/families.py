"""Response families: one declarative entry per family (as brms's ``R/family-lists.R`` and
bambi's ``bambi/defaults/families.py``).

A family says how the response relates to the linear predictor eta = X beta + Z b:

- the link g, with mean mu = E[y | eta] = g^{-1}(eta);
- the density p(y | mu, theta), theta the family's own parameters (each a posterior variable
  with a default prior scaled to the response);
- Var[y | mu, theta], and the *latent-scale residual variance* that ICC and R² put next to the
  group-level variances (Nakagawa, Johnson & Schielzeth 2017).

Gaussian (identity link): mu = eta; y ~ N(mu, sigma²), so
log p(y | mu, sigma) = -log(sigma) - log(2 pi) / 2 - (y - mu)² / (2 sigma²);
Var[y | mu] = sigma² and the residual variance is sigma². Default prior of sigma:
HalfStudentT(3, s_y), s_y the SD of the response (1 when that is 0 or undefined).

Every stage reads the family from ``Design.family``. This module imports nothing from
hierbayes but ``names``, so any module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import pymc as pm
from scipy import stats

from . import names

__all__ = ["Parameter", "Family", "GAUSSIAN", "FAMILIES", "get_family", "response_scale"]

# inverse links: eta -> mu
INVERSE_LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda eta: eta,
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
    ``("HalfStudentT", {"nu": 3.0, "sigma": 1.2})``; ``priors.py`` makes it a ``Prior``."""

    name: str
    support: str  # "positive" or "real", as priors.py names supports
    default_prior: Callable[[np.ndarray], tuple[str, dict]] = field(repr=False)
    description: str = ""


@dataclass(frozen=True)
class Family:
    """A response family: link, own parameters, density, and how the stages report it."""

    name: str
    links: tuple[str, ...]
    params: tuple[Parameter, ...]
    label: str  # "Gaussian (identity link)"
    summary_title: str  # the first words of FitResult.summary()
    residual_symbol: str  # the residual variance in formulas of tables ("sigma^2")
    # the callables: see the methods of the same name
    response_problem: Callable[[pd.Series, str], str | None] = field(repr=False, compare=False)
    log_density: Callable[[np.ndarray, np.ndarray, dict], np.ndarray] = field(repr=False, compare=False)
    conditional_variance: Callable[[np.ndarray, dict], np.ndarray] = field(repr=False, compare=False)
    latent_residual_variance: Callable[[dict], np.ndarray] = field(repr=False, compare=False)
    random: Callable[[np.ndarray, dict, np.random.Generator], np.ndarray] = field(repr=False, compare=False)
    # the PyMC distribution of y, and its arguments from the mean and the family's parameters
    pymc_distribution: str = field(default="Normal", compare=False)
    pymc_arguments: Callable[[object, dict], dict] = field(default=None, repr=False, compare=False)
    # whether Gaussian group effects can be integrated out exactly (hierbayes.marginal)
    integrates_exactly: bool = False
    link: str = "identity"

    def __post_init__(self):
        if self.link not in self.links:
            raise ValueError(f"the {self.name} family has no {self.link!r} link; it has {', '.join(self.links)}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def check_response(self, y: pd.Series, name: str) -> str | None:
        """What is wrong with the response column ``y`` (called ``name``) for this family, or None.
        ``design.py`` raises its ``DataError`` with the message (this module imports no design)."""
        return self.response_problem(y, name)

    def loglik(self, y, mu, params: dict) -> np.ndarray:
        """Pointwise log density of ``y`` given the mean ``mu`` and the family's parameters
        (arrays that broadcast against each other)."""
        return self.log_density(np.asarray(y, dtype=float), np.asarray(mu, dtype=float), params)

    def mean(self, eta):
        """The inverse link: the mean of y at the linear predictor ``eta``."""
        return INVERSE_LINKS[self.link](eta)

    def variance(self, mu, params: dict):
        """Var[y | mu, params]."""
        return self.conditional_variance(mu, params)

    def residual_variance(self, params: dict):
        """The latent-scale residual variance that ICC and R² use, per draw of ``params``."""
        return self.latent_residual_variance(params)

    def observe(self, name: str, mu, params: dict, y):
        """The likelihood of ``y`` in the PyMC model in context (``params``: its variables)."""
        return getattr(pm, self.pymc_distribution)(name, **self.pymc_arguments(mu, params), observed=y)

    def draw(self, mu, params: dict, rng: np.random.Generator):
        """New observations around the means ``mu`` (posterior predictive draws)."""
        return self.random(mu, params, rng)


# --- Gaussian -----------------------------------------------------------------------------------


def _numeric_response(y: pd.Series, name: str) -> str | None:
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return (f"the response {name!r} must be numeric for the Gaussian family, "
                f"but the column holds {y.dtype} values such as {y.dropna().iloc[0]!r}")  # fmt: skip
    return None


GAUSSIAN = Family(
    name="gaussian",
    links=("identity",),
    params=(
        Parameter(names.SIGMA, "positive", lambda y: ("HalfStudentT", {"nu": 3.0, "sigma": response_scale(y)}),
                  "the residual SD"),  # fmt: skip
    ),
    label="Gaussian (identity link)",
    summary_title="Bayesian linear mixed model (Gaussian)",
    residual_symbol="sigma^2",
    response_problem=_numeric_response,
    log_density=lambda y, mu, p: stats.norm.logpdf(y, mu, p[names.SIGMA]),
    conditional_variance=lambda mu, p: np.broadcast_to(np.asarray(p[names.SIGMA]) ** 2, np.shape(mu)),
    latent_residual_variance=lambda p: p[names.SIGMA] ** 2,
    random=lambda mu, p, rng: mu + rng.standard_normal(np.shape(mu)) * p[names.SIGMA],
    pymc_distribution="Normal",
    pymc_arguments=lambda mu, p: {"mu": mu, "sigma": p[names.SIGMA]},
    integrates_exactly=True,
)

FAMILIES: dict[str, Family] = {"gaussian": GAUSSIAN}


def get_family(family: str | Family) -> Family:
    """The family of a name (``"gaussian"``); a ``Family`` is returned as it is."""
    if isinstance(family, Family):
        return family
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not supported yet; available: {', '.join(FAMILIES)}")
    return FAMILIES[family]
