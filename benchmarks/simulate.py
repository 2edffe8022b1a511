"""Simulated multilevel data for the benchmarks: a fixed generator and seed, so runs compare."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(n_rows: int, n_groups: int, q: int, seed: int = 1) -> tuple[pd.DataFrame, str]:
    """``n_rows`` rows in ``n_groups`` equal groups, an intercept and q - 1 slopes varying by group.

    Group effects ~ N(0, G) with SDs 0.5, 0.3, 0.2, ... and all correlations 0.3; residual SD 1;
    fixed effects 1, 0.5, -0.25, ... Returns the data and its formula.
    """
    rng = np.random.default_rng(seed)
    slopes = [f"x{k}" for k in range(1, q)]
    X = np.column_stack([np.ones(n_rows)] + [rng.normal(size=n_rows) for _ in slopes])
    beta = np.array([1.0] + [0.5 * (-0.5) ** k for k in range(q - 1)])
    sd = np.array([0.5, 0.3, 0.2, 0.15, 0.1][:q])
    cor = np.full((q, q), 0.3) + 0.7 * np.eye(q)
    b = rng.multivariate_normal(np.zeros(q), np.outer(sd, sd) * cor, size=n_groups)
    g = np.repeat(np.arange(n_groups), int(np.ceil(n_rows / n_groups)))[:n_rows]
    y = X @ beta + np.einsum("nk,nk->n", X, b[g]) + rng.normal(size=n_rows)
    data = pd.DataFrame({"y": y, **{s: X[:, k + 1] for k, s in enumerate(slopes)}, "g": [f"g{j}" for j in g]})
    rhs = " + ".join(slopes) if slopes else "1"
    return data, f"y ~ {rhs} + ({rhs} | g)"


def simulate_crossed(n_rows: int = 73_000, n_subjects: int = 3_000, n_items: int = 1_100, seed: int = 1):
    """Crossed subjects and items (a psycholinguistics design): each row one subject's
    response to one item, random intercepts for both, subject SD 0.5, item SD 0.3, residual 1."""
    rng = np.random.default_rng(seed)
    subject = rng.integers(n_subjects, size=n_rows)
    item = rng.integers(n_items, size=n_rows)
    x = rng.normal(size=n_rows)
    y = 1 + 0.5 * x + rng.normal(0, 0.5, n_subjects)[subject] + rng.normal(0, 0.3, n_items)[item] + rng.normal(size=n_rows)
    data = pd.DataFrame({"y": y, "x": x, "subject": [f"s{k}" for k in subject], "item": [f"i{k}" for k in item]})
    return data, "y ~ x + (1 | subject) + (1 | item)"


def simulate_nested(n_schools: int = 500, classes: int = 8, pupils: int = 25, seed: int = 1):
    """Pupils in classes in schools: random school intercepts and slopes (SDs 0.5 and 0.2,
    correlation 0.3) and class intercepts (SD 0.3); residual SD 1."""
    rng = np.random.default_rng(seed)
    n = n_schools * classes * pupils
    school = np.repeat(np.arange(n_schools), classes * pupils)
    klass = np.repeat(np.arange(n_schools * classes), pupils)
    x = rng.normal(size=n)
    G = np.array([[0.25, 0.3 * 0.5 * 0.2], [0.3 * 0.5 * 0.2, 0.04]])
    u = rng.multivariate_normal([0, 0], G, size=n_schools)
    y = 1 + 0.5 * x + u[school, 0] + u[school, 1] * x + rng.normal(0, 0.3, n_schools * classes)[klass] + rng.normal(size=n)
    data = pd.DataFrame({"y": y, "x": x, "school": [f"s{k}" for k in school], "class": [f"c{k % classes}" for k in klass]})
    return data, "y ~ x + (x | school) + (1 | school:class)"


def simulate_bernoulli(n_rows: int = 20_000, n_groups: int = 200, seed: int = 1):
    """A binary outcome with a random intercept and slope (SDs 0.8 and 0.4, correlation 0.3)
    on the logit scale; fixed effects -0.5 and 0.7."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), int(np.ceil(n_rows / n_groups)))[:n_rows]
    x = rng.normal(size=n_rows)
    G = np.array([[0.64, 0.3 * 0.8 * 0.4], [0.3 * 0.8 * 0.4, 0.16]])
    u = rng.multivariate_normal([0, 0], G, size=n_groups)
    eta = -0.5 + 0.7 * x + u[g, 0] + u[g, 1] * x
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]}), "y ~ x + (x | g)"


def simulate_crossed_maximal(n_subjects: int = 60, n_items: int = 40, seed: int = 1):
    """The "maximal" crossed design of psycholinguistics: every subject sees every item once,
    in one of two conditions (cond = -0.5 / +0.5, counterbalanced over subjects and items).
    Subject intercept and effect SDs 0.5 and 0.3 (correlation 0.3), item SDs 0.3 and 0.2
    (correlation -0.2), residual SD 0.5; fixed effects 6 and 0.3 (a log reaction time)."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(n_subjects), n_items)
    item = np.tile(np.arange(n_items), n_subjects)
    cond = np.where((subject + item) % 2 == 0, -0.5, 0.5)

    def effects(n, sd, rho):
        cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
        return rng.multivariate_normal([0, 0], cov, size=n)

    s, i = effects(n_subjects, (0.5, 0.3), 0.3), effects(n_items, (0.3, 0.2), -0.2)
    rt = 6 + 0.3 * cond + s[subject, 0] + s[subject, 1] * cond + i[item, 0] + i[item, 1] * cond
    rt = rt + rng.normal(0, 0.5, len(rt))
    data = pd.DataFrame({"rt": rt, "cond": cond, "subject": [f"s{k}" for k in subject], "item": [f"i{k}" for k in item]})
    return data, "rt ~ cond + (cond | subject) + (cond | item)"
