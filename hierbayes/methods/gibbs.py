"""A blocked Gibbs sampler for Gaussian models whose group effects are all well informed and
uncorrelated (``(1 | subject) + (1 | item)``, ``(x || g)``): each step an exact draw given
the rest, no gradients, no tuning.

One sweep, with r = y - offset - X b - sum_f Z_f u_f:

- per grouping factor f, each group's effects u_j given everything else (the other factors'
  effects fixed): N(P^{-1} Z_j'r_f / sigma^2, P^{-1}), P = Z_j'Z_j / sigma^2 + diag(tau^-2),
  r_f the residual without factor f (one pass over the rows a factor);
- b given the effects: N(P^{-1}(X'r_b / sigma^2 + P0 mu0), P^{-1}), P = X'X / sigma^2 + P0, the
  Normal priors (on the intercept at the predictors' means and the slopes) as N(mu0, P0^{-1});
- a move along each ridge b_t + mean(u_.k) (a block's term that is also a fixed effect, with
  the same column): delta ~ its exact Gaussian conditional, b_t += delta, u_.k -= delta
  (without it the intercept's ESS on crossed 73k rows fell from 3,900 to 200);
- each SD tau_k given its effects (J_k of them, sum of squares SS_k), and sigma given the
  residual sum of squares, by slice sampling on the log scale: log p = -J log tau -
  SS / (2 tau^2) + log prior(tau) + log tau.

Centred Gibbs mixes fast when every group's effect is well measured and slowly otherwise
(the funnel), so ``hb.fit`` uses it (``method="auto"``) only for crossed factors whose every
block has an information ratio (``model.information_ratio``) over ``model.GIBBS_INFORMATION``;
``method="gibbs"`` asks for it wherever ``gibbs_applies``. On
``run.py crossed`` (73,000 rows, 3,000 subjects x 1,100 items) 4 chains x 2,000 sweeps take
about 3 s on two cores (0.57 ms a sweep), min bulk ESS 2,100, where NUTS with the subjects
integrated out took 18 s.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numba
import numpy as np

from .. import names
from ..core.parameters import prior_logp, prior_row
from ..core.posterior import posterior_tree, posterior_variables
from .base import GibbsOptions, Method

__all__ = ["Gibbs", "GibbsModel", "gibbs_applies", "pack_gibbs", "run_gibbs"]


class Gibbs(Method):
    """``method="gibbs"``: the sweeps of the module docstring; chosen by ``method="auto"`` only
    where every block's groups are well informed (``choice.choose_method``)."""

    name, sampler, options_type = "gibbs", "gibbs", GibbsOptions
    advice = ("Gibbs sampling mixes slowly where the data say little about a factor's groups (an SD near 0, few rows "
              "a group): method='marginal' samples the same model by NUTS.")  # fmt: skip

    def applies(self, design, priors) -> str:
        return gibbs_applies(design, priors)[1]

    def parameterize(self, design, priors, parameterization) -> dict:
        return dict.fromkeys((b.name for b in design.blocks), "centered")

    def pack(self, design, priors, parameterization):
        return pack_gibbs(design, priors)

    def run(self, model, settings, options: GibbsOptions):
        seed = int(np.random.default_rng(settings.seed).integers(2**31))
        return run_gibbs(model.design, model.packed, draws=settings.draws, tune=settings.tune, chains=settings.chains,
                         seed=seed, progressbar=settings.progressbar)  # fmt: skip


@dataclass(frozen=True)
class GibbsModel:
    """The arrays a sweep reads. Columns of Z are grouped by factor (``col_start``), one a
    block (every block has one term); ``block_col[i]``: design block i's column."""

    y: np.ndarray  # the response less the offset
    Xt: np.ndarray  # (p, n)
    codes: np.ndarray  # (F, n) group of each row, per factor
    Z: np.ndarray  # (Q, n): a column a row, so that a pass reads straight runs
    col_start: np.ndarray  # (F + 1,)
    effect_start: np.ndarray  # (F + 1,) where each factor's effects start among all (J_f q_f each)
    n_levels: np.ndarray  # (F,)
    ZtZ: np.ndarray  # (sum_f J_f q_f q_f,) per factor, per group, q_f x q_f
    ztz_start: np.ndarray  # (F + 1,)
    sd_priors: np.ndarray  # (Q, 4) prior rows (``marginal.density.prior_row``)
    sigma_prior: np.ndarray  # (4,)
    prior_mean: np.ndarray  # mu0 (p,)
    prior_precision: np.ndarray  # P0 (p, p)
    XtX: np.ndarray
    ridges: np.ndarray  # (R, 2): (column of Z, fixed effect)
    block_col: np.ndarray  # (n_blocks,)
    start_b: np.ndarray
    start_sd: np.ndarray
    start_sigma: float


def gibbs_applies(design, priors) -> tuple[bool, str]:
    """(whether, why not): a Gaussian model (identity link), every block one term, Normal
    priors on the fixed effects and priors the kernels evaluate. Whether its groups are well
    enough informed for Gibbs to mix is ``model.make_model``'s to judge."""
    family = design.family
    if not family.integrates_exactly or family.link != "identity":
        return False, f"it samples Gaussian models (identity link), not the {family.label} family"
    if not design.blocks or any(b.size != 1 for b in design.blocks):
        return False, "it needs group effects of one term a block ((1 | g), (x || g)), no correlated blocks"
    fixed = [e for e in priors.entries if e.cls in ("Intercept", "b")]
    if any(e.prior.dist != "Normal" for e in fixed):
        return False, "the fixed effects need Normal priors"
    if any(prior_row(e.prior)[0] < 0 for e in priors.entries if e not in fixed):
        return False, "a prior of the SDs or sigma is not one the kernels evaluate"
    return True, ""


def pack_gibbs(design, priors) -> GibbsModel:
    """The design's arrays in the layout of ``GibbsModel`` (see ``gibbs_applies``)."""
    X, y, terms = design.X, design.y, list(design.fixed_terms)
    n, p = X.shape
    y = y - (design.offset if design.offset is not None else 0.0)
    factors = list(dict.fromkeys(b.group for b in design.blocks))
    order = [b for f in factors for b in design.blocks if b.group == f]
    codes = np.stack([design.factors[f].codes for f in factors]).astype(np.int64)
    Z = np.stack([b.Z[:, 0] for b in order])
    sizes = [sum(1 for b in order if b.group == f) for f in factors]
    col_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_levels = np.array([design.factors[f].n_levels for f in factors], dtype=np.int64)
    effect_start = np.concatenate([[0], np.cumsum(n_levels * np.diff(col_start))]).astype(np.int64)
    parts = []
    for k, f in enumerate(factors):
        Zf = Z[col_start[k] : col_start[k + 1]].T
        ztz = np.zeros((n_levels[k], sizes[k], sizes[k]))
        np.add.at(ztz, codes[k], Zf[:, :, None] * Zf[:, None, :])
        parts.append(ztz.ravel())
    ztz_start = np.concatenate([[0], np.cumsum([len(a) for a in parts])]).astype(np.int64)
    sd_priors = np.array([prior_row(priors.get("sd", b.name, b.terms[0])) for b in order])
    # Normal priors on Intercept_c = b_0 + means . slopes and on each slope: c = T b ~ N(m, D)
    T, m, d = np.eye(p), np.zeros(p), np.ones(p)
    means = X.mean(axis=0)
    for k, term in enumerate(terms):
        prior = priors.get("Intercept") if term == "(Intercept)" else priors.get("b", "", term)
        m[k], d[k] = prior.kwargs["mu"], prior.kwargs["sigma"]
        if term == "(Intercept)":
            T[k] = [1.0 if j == k else means[j] for j in range(p)]
    precision = T.T @ np.diag(1 / d**2) @ T
    prior_mean = np.linalg.solve(T, m)
    ridges = [(i, terms.index(b.terms[0])) for i, b in enumerate(order)
              if b.terms[0] in terms and np.allclose(b.Z[:, 0], X[:, terms.index(b.terms[0])])]  # fmt: skip
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    resid_sd = float(np.std(y - X @ coef)) or 1.0
    return GibbsModel(
        y=np.ascontiguousarray(y, dtype=float), Xt=np.ascontiguousarray(X.T, dtype=float), codes=codes,
        Z=np.ascontiguousarray(Z, dtype=float), col_start=col_start, effect_start=effect_start, n_levels=n_levels, ZtZ=np.concatenate(parts),
        ztz_start=ztz_start, sd_priors=sd_priors, sigma_prior=np.array(prior_row(priors.get(names.SIGMA))),
        prior_mean=prior_mean, prior_precision=precision, XtX=X.T @ X,
        ridges=np.array(ridges, dtype=np.int64).reshape(-1, 2),
        block_col=np.array([order.index(b) for b in design.blocks], dtype=np.int64), start_b=coef,
        start_sd=np.full(len(order), float(np.std(y)) / 3 or 1.0), start_sigma=resid_sd,
    )  # fmt: skip


def run_gibbs(design, model: GibbsModel, *, draws: int, tune: int, chains: int, seed: int, progressbar=False):
    """``chains`` Gibbs chains of ``tune`` + ``draws`` sweeps (the first ``tune`` dropped),
    in parallel: the DataTree with the posterior of ``core.posterior``'s names and dims. The
    sweeps run a few hundred at a time (each call seeded from ``seed``), so that Ctrl-C stops
    a long run and the progress bar moves."""
    starts = model.effect_start
    n_eff = int(starts[-1])
    p, Q = model.Xt.shape[0], model.Z.shape[0]
    b, sd = np.empty((chains, draws, p)), np.empty((chains, draws, Q))
    sigma, effects = np.empty((chains, draws)), np.empty((chains, draws, n_eff))
    state = _start_state(model, chains, n_eff, np.random.default_rng(seed))
    total, step = tune + draws, max(10, min(500, int(5e6 / len(model.y))))  # about 0.1-0.2 s a call
    seeds = np.random.SeedSequence(seed).generate_state(chains * (total // step + 1)).astype(np.int64)
    started = time.time()
    with _progress(progressbar, chains * total) as advance:
        for k, first in enumerate(range(0, total, step)):  # a call at a time: Ctrl-C and progress between calls
            _chains(seeds[k * chains : (k + 1) * chains], first, min(step, total - first), tune, model.y, model.Xt,
                    model.codes, model.Z, model.col_start, starts, model.n_levels, model.ZtZ, model.ztz_start,
                    model.sd_priors, model.sigma_prior, model.prior_mean, model.prior_precision, model.XtX,
                    model.ridges, *state, b, sd, sigma, effects)  # fmt: skip
            advance(chains * min(step, total - first))
    elapsed = time.time() - started
    chain_draw = {"chain": np.arange(chains), "draw": np.arange(draws)}
    blocks = design.blocks
    lam = np.zeros((chains, draws, len(blocks), len(blocks)))
    for i, col in enumerate(model.block_col):
        lam[:, :, i, i] = sd[:, :, col]
    factors = list(dict.fromkeys(bl.group for bl in blocks))
    per_block = []
    for i, block in enumerate(blocks):
        col, f = int(model.block_col[i]), factors.index(block.group)
        q_f = int(model.col_start[f + 1] - model.col_start[f])
        values = effects[:, :, starts[f] : starts[f + 1]].reshape(chains, draws, -1, q_f)[..., col - model.col_start[f]]
        per_block.append((block, values[..., None]))
    post = posterior_variables(design, chain_draw, b, lam, blocks, per_block, {names.SIGMA: sigma})
    return posterior_tree(post, sampling_time=elapsed, tune=tune, log_density="hierbayes.methods.gibbs")


def _start_state(model: GibbsModel, chains: int, n_eff: int, rng) -> tuple:
    """Each chain's starting point, jittered (b by 0.1 residual SD, the SDs and sigma by a
    factor up to e^{+-0.5}; the effects at 0), and its residual: (b, sd, sigma, u, resid, Z'r,
    work), an array of rows per chain each (Z'r is summed by the first ``_chains`` call)."""
    p, Q = len(model.start_b), len(model.start_sd)
    b = model.start_b + 0.1 * model.start_sigma * rng.standard_normal((chains, p))
    sd = model.start_sd * np.exp(rng.uniform(-0.5, 0.5, (chains, Q)))
    sigma = model.start_sigma * np.exp(rng.uniform(-0.5, 0.5, (chains, 1)))
    resid = model.y - b @ model.Xt
    return b, sd, sigma, np.zeros((chains, n_eff)), resid, np.zeros((chains, n_eff)), np.zeros((chains, n_eff))


@contextlib.contextmanager
def _progress(show: bool, total: int):
    """A progress bar over the sweeps of all chains (rich, which PyMC brings), or nothing."""
    if not show:
        yield lambda k: None
        return
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    with Progress("Gibbs sampling", BarColumn(), "{task.completed}/{task.total} sweeps", TimeRemainingColumn(),
                  transient=True) as bar:  # fmt: skip
        task = bar.add_task("", total=total)
        yield lambda k: bar.advance(task, k)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _chains(seeds, first, sweeps, tune, y, Xt, codes, Z, col_start, at, n_levels, ZtZ, ztz_start, sd_priors,
            sigma_prior, mu0, P0, XtX, ridges, b, sd, sigma, u, resid, Ztr, change, b_out, sd_out, sigma_out,
            eff_out):  # fmt: skip
    """Sweeps ``first`` .. ``first + sweeps - 1`` of every chain (a chain a thread, seeded by
    ``seeds``), from the state in b .. change (a row per chain), keeping those from ``tune`` on;
    ``at``: where each factor's effects start in u."""
    for c in numba.prange(seeds.shape[0]):
        np.random.seed(seeds[c])
        if first == 0:  # the first factor's Z'r, as each sweep's last pass leaves it
            for r in range(y.shape[0]):
                _add_ztr(r, 0, resid[c, r], codes, Z, col_start, at, Ztr[c])
        for t in range(first, first + sweeps):
            _sweep(Xt, codes, Z, col_start, n_levels, at, ZtZ, ztz_start, sd_priors, sigma_prior, mu0, P0, XtX, ridges,
                   b[c], sd[c], sigma[c], u[c], resid[c], Ztr[c], change[c])  # fmt: skip
            if t >= tune:
                d = t - tune
                b_out[c, d], sd_out[c, d], sigma_out[c, d], eff_out[c, d] = b[c], sd[c], sigma[c, 0], u[c]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _add_ztr(r, f, e, codes, Z, col_start, at, Ztr):
    """Row r's share of factor f's Z_j'r (e: its residual)."""
    q = col_start[f + 1] - col_start[f]
    base = at[f] + codes[f, r] * q
    for k in range(q):
        Ztr[base + k] += Z[col_start[f] + k, r] * e


@numba.njit(cache=True, error_model="numpy")
def _apply_and_sum(f, resid, codes, Z, col_start, at, change, Ztr):
    """The pass after factor f's draw: r -= Z_f (its change), and the next factor's Z'r
    when there is one. One effect a group (random intercepts) runs loops without the inner
    ones: 7x faster on 73k rows."""
    n, F = resid.shape[0], col_start.shape[0] - 1
    q = col_start[f + 1] - col_start[f]
    if f + 1 < F and q == 1 and col_start[f + 2] - col_start[f + 1] == 1:
        zf, zn, cf, cn = Z[col_start[f]], Z[col_start[f + 1]], codes[f], codes[f + 1]
        a0, a1 = at[f], at[f + 1]
        for r in range(n):
            e = resid[r] - zf[r] * change[a0 + cf[r]]
            resid[r] = e
            Ztr[a1 + cn[r]] += zn[r] * e
        return
    if f + 1 == F and q == 1:
        zf, cf, a0 = Z[col_start[f]], codes[f], at[f]
        for r in range(n):
            resid[r] -= zf[r] * change[a0 + cf[r]]
        return
    for r in range(n):
        e0 = at[f] + codes[f, r] * q
        e = resid[r]
        for k in range(q):
            e -= Z[col_start[f] + k, r] * change[e0 + k]
        resid[r] = e
        if f + 1 < F:
            _add_ztr(r, f + 1, e, codes, Z, col_start, at, Ztr)


@numba.njit(cache=True, error_model="numpy")
def _sweep(Xt, codes, Z, col_start, n_levels, at, ZtZ, ztz_start, sd_priors, sigma_prior, mu0, P0, XtX, ridges, b, sd,
           sigma, u, resid, Ztr, change):  # fmt: skip
    """One sweep (see the module docstring); updates b, sd, sigma (length 1), u and the
    residual r = y - X b - sum_f Z_f u_f in place. A factor's Z_j'r_f is Z_j'r + Z_j'Z_j u_j
    (its own effects put back); each pass over the rows applies one draw's change to r and
    sums what the next draw needs (the next factor's Z'r, X'r, then r'r and the first factor's
    Z'r for the next sweep), so a sweep is F + 1 passes. The ridge moves leave r as it is."""
    p, n = Xt.shape
    F = n_levels.shape[0]
    s2 = sigma[0] * sigma[0]
    for f in range(F):
        c0, q, J = col_start[f], col_start[f + 1] - col_start[f], n_levels[f]
        P, L, w = np.empty((q, q)), np.zeros((q, q)), np.empty(q)
        for j in range(J):
            base, e0 = ztz_start[f] + j * q * q, at[f] + j * q
            for a in range(q):
                t = Ztr[e0 + a]
                for k in range(q):
                    P[a, k] = ZtZ[base + a * q + k] / s2 + (1.0 / (sd[c0 + a] * sd[c0 + a]) if a == k else 0.0)
                    t += ZtZ[base + a * q + k] * u[e0 + k]
                w[a] = t / s2
            _draw_gaussian(P, L, w)
            for a in range(q):
                change[e0 + a] = w[a] - u[e0 + a]
                u[e0 + a] = w[a]
        if f + 1 < F:
            Ztr[at[f + 1] : at[f + 2]] = 0.0
        _apply_and_sum(f, resid, codes, Z, col_start, at, change, Ztr)
    P, L = XtX / s2 + P0, np.zeros((p, p))
    w = P0 @ mu0 + (Xt @ resid + XtX @ b) / s2  # X'(y - sum_f Z_f u_f) / sigma^2
    _draw_gaussian(P, L, w)
    step = w - b
    b[:] = w
    rss = 0.0
    Ztr[at[0] : at[1]] = 0.0
    if col_start[1] == 1:  # one effect a group of the first factor: the sweep 0.76 -> 0.64 ms on 73k rows
        z0, c0 = Z[0], codes[0]
        for r in range(n):
            e = resid[r]
            for k in range(p):
                e -= Xt[k, r] * step[k]
            resid[r] = e
            rss += e * e
            Ztr[c0[r]] += z0[r] * e
    else:
        for r in range(n):
            e = resid[r]
            for k in range(p):
                e -= Xt[k, r] * step[k]
            resid[r] = e
            rss += e * e
            _add_ztr(r, 0, e, codes, Z, col_start, at, Ztr)
    for i in range(ridges.shape[0]):  # along b_t + mean(u_.k): r does not change
        col, t = ridges[i, 0], ridges[i, 1]
        f = 0
        while col >= col_start[f + 1]:
            f += 1
        q, J, k = col_start[f + 1] - col_start[f], n_levels[f], col - col_start[f]
        total = 0.0
        for j in range(J):
            total += u[at[f] + j * q + k]
        tau2 = sd[col] * sd[col]
        precision = J / tau2 + P0[t, t]
        delta = (total / tau2 - P0[t] @ (b - mu0)) / precision + np.random.standard_normal() / math.sqrt(precision)
        b[t] += delta
        for j in range(J):
            u[at[f] + j * q + k] -= delta
    for f in range(F):  # the SDs
        q, J = col_start[f + 1] - col_start[f], n_levels[f]
        for k in range(q):
            ss = 0.0
            for j in range(J):
                v = u[at[f] + j * q + k]
                ss += v * v
            col = col_start[f] + k
            sd[col] = math.exp(_slice_log_scale(math.log(sd[col]), J, ss, sd_priors[col]))
    sigma[0] = math.exp(_slice_log_scale(math.log(sigma[0]), n, rss, sigma_prior))


@numba.njit(cache=True, error_model="numpy")
def _draw_gaussian(P, L, w):
    """w <- a draw of N(P^{-1} w, P^{-1}): P = L L', then L' x = L^{-1} w + z."""
    k = P.shape[0]
    for a in range(k):
        for c in range(a + 1):
            t = P[a, c]
            for i in range(c):
                t -= L[a, i] * L[c, i]
            L[a, c] = math.sqrt(t) if a == c else t / L[c, c]
    for a in range(k):
        t = w[a]
        for i in range(a):
            t -= L[a, i] * w[i]
        w[a] = t / L[a, a]
    for a in range(k):
        w[a] += np.random.standard_normal()
    for a in range(k - 1, -1, -1):
        t = w[a]
        for i in range(a + 1, k):
            t -= L[i, a] * w[i]
        w[a] = t / L[a, a]


@numba.njit(cache=True, error_model="numpy")
def _log_scale_density(x, count, ss, row):
    """log p(log s) for a scale s of ``count`` normals with sum of squares ``ss``."""
    s = math.exp(x)
    return -count * x - 0.5 * ss * math.exp(-2 * x) + prior_logp(int(row[0]), row[1], row[2], row[3], s) + x


@numba.njit(cache=True, error_model="numpy")
def _slice_log_scale(x0, count, ss, row):
    """One slice-sampling update (Neal 2003: stepping out, then shrinkage) of x = log s, its
    width the conditional's approximate SD 1 / sqrt(2 count)."""
    width = 1.0 / math.sqrt(2.0 * max(count, 1))
    level = _log_scale_density(x0, count, ss, row) + math.log(np.random.uniform(0.0, 1.0))
    left = x0 - width * np.random.uniform(0.0, 1.0)
    right = left + width
    for _ in range(50):
        if _log_scale_density(left, count, ss, row) <= level:
            break
        left -= width
    for _ in range(50):
        if _log_scale_density(right, count, ss, row) <= level:
            break
        right += width
    for _ in range(200):
        x = np.random.uniform(left, right)
        if _log_scale_density(x, count, ss, row) > level:
            return x
        if x < x0:
            left = x
        else:
            right = x
    return x0
