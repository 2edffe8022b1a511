"""The model with every group effect sampled, as data for numba: its log posterior density and
gradient for nutpie, with no per-model compile step, for any family, any number of blocks on
any factors (nested or crossed).

Unconstrained x: first the *small* parameters, as in ``hierbayes.marginal.density`` (the
intercept at the predictors' means, the slopes in units of s_link / s_x, per block the log
SDs and the atanh canonical partial correlations, then the log of each of the family's own
parameters theta); then the group effects, block after block, one row of ``size`` numbers per
group: z_j (non-centred, r_j = Lambda z_j, z_j ~ N(0, I)) or the group's coefficients
a_j = b_T + r_j (centred around the fixed effects b_T of the block's terms, 0 for a term
with none: r_j = a_j - b_T ~ N(0, Lambda Lambda')), Lambda = diag(sd) L. Centring around
b_T keeps the intercept from trading off against the mean of the group effects (Gelfand,
Sahu & Carlin 1995), which the diagonal mass matrix of a large model cannot follow. A term
is centred around its fixed effect in one block only, the one with the most groups, and only
if that block is centred and sampled (with crossed factors, two shifted blocks would both
trade off against it); other centred blocks sample r_j itself.

    eta_i = offset_i + X_i b + sum over blocks k of Z_ik r_k[g_k(i)]
    log p = sum_i log p(y_i | eta_i, theta) + log p(group effects | Lambda) + log prior

The gradient: d/d eta_i per row (``likelihood``) gives d/db = X' d, d/dr_j = sum of Z_i d over
the group's rows; then, per group, d/dz_j = Lambda' d/dr_j - z_j and d/dLambda += d/dr_j z_j'
(non-centred), or d/da_j = d/dr_j - Lambda^{-T} w_j, d/db_T -= the sum of those over groups
and d/dLambda += Lambda^{-T} w_j w_j' - diag(1 / Lambda_ii) with w_j = Lambda^{-1} r_j
(centred). The map from the small parameters to (b,
Lambda, theta) and their priors is differentiated by complex step, as in the marginal model.

Crossed factors of a Gaussian model (identity link): the blocks of the factor with the most
levels are integrated out exactly and come first in Lambda; only the others' effects are in
x (the likelihood in ``crossed``). The row loops are ``rows``'.

``pack_sampled``: Design + Priors + parameterisation -> ``SampledModel``; nutpie calls
``logp_and_grad`` and ``expand`` through the C callbacks of ``hierbayes.methods.nutpie``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .. import names
from ..core.parameters import STEP, initial_point, prior_row, priors_packable, unpack
from .laplace import laplace_loglik
from ..marginal.stats import largest_factor, sufficient_stats
from ..core.layout import (
    H_FAMILY, H_HASINT, H_INTCOL, H_LAPLACE, H_LINK, H_NBLOCKS, H_NDIM, H_NEXP, H_NINT, H_NSMALL, H_NTHETA, H_P, H_Q,
    H_PARTIAL, H_ROWS, H_X0, H_YTY, H_ZTW_FULL,
    HEADER, OFF_BLOCKS, OFF_CODES, OFF_GROUPS, OFF_MEANS, OFF_OFFSET, OFF_PRIORS, OFF_SCALES, OFF_SLOPES,
    OFF_PARTIAL, OFF_STARTS, OFF_TERM_COLS, OFF_TRIALS, OFF_X, OFF_Y, OFF_ZROWS, OFF_ZTZ,
    SAMPLED_SECTIONS, assemble,
)  # fmt: skip
from ..marginal.crossed import cross_products, integrated_likelihood, partial_adjoint, partial_weights
from ..core.likelihood import constants, loglik_rows
from ..core.rows import back, linear_predictor

__all__ = ["SampledModel", "pack_sampled", "logp_and_grad", "expand", "effects_from_x"]


@numba.njit(cache=True, error_model="numpy")
def effects_from_x(x, buf, lam, b, r, w):
    """The group effects r (block after block, a row per group) at x, given Lambda, b and the
    partial centring weights w per block (``crossed.partial_weights``)."""
    groups, n_blocks, blocks = int(buf[OFF_GROUPS]), int(buf[H_NBLOCKS]), int(buf[OFF_BLOCKS])
    n_small, cols = int(buf[H_NSMALL]), int(buf[OFF_TERM_COLS])
    for blk in range(int(buf[H_NINT]), n_blocks):
        start, size = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        n_groups, at, centred = int(buf[groups + 3 * blk]), int(buf[groups + 3 * blk + 1]), buf[groups + 3 * blk + 2]
        for j in range(n_groups):
            base = at + j * size
            for a in range(size):
                if centred > 0:
                    col = int(buf[cols + start + a])
                    shift = b[col] if col >= 0 else (w[blk] * (x[0] - buf[H_X0]) if a == 0 else 0.0)
                    r[base + a] = x[n_small + base + a] - shift
                else:
                    acc = 0.0
                    for c in range(a + 1):
                        acc += lam[start + a, start + c] * x[n_small + base + c]
                    r[base + a] = acc


@numba.njit(cache=True, error_model="numpy")
def _group_prior(x, r, buf, lam, g_r, g_lam, g_b, grad):
    """log p(group effects | Lambda); writes d/dx of the effects into ``grad`` (adding the
    likelihood's part ``g_r``) and adds d/dLambda into ``g_lam``, d/db into ``g_b``."""
    groups, n_blocks, blocks = int(buf[OFF_GROUPS]), int(buf[H_NBLOCKS]), int(buf[OFF_BLOCKS])
    n_small, cols = int(buf[H_NSMALL]), int(buf[OFF_TERM_COLS])
    lp = 0.0
    w = np.empty(8)
    u = np.empty(8)
    for blk in range(int(buf[H_NINT]), n_blocks):
        start, size = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        n_groups, at, centred = int(buf[groups + 3 * blk]), int(buf[groups + 3 * blk + 1]), buf[groups + 3 * blk + 2]
        if size > w.shape[0]:
            w = np.empty(size)
            u = np.empty(size)
        log_det = 0.0
        for a in range(size):
            log_det += np.log(lam[start + a, start + a])
        for j in range(n_groups):
            base = at + j * size
            if centred > 0:  # w = Lambda^{-1} r, u = Lambda^{-T} w
                for a in range(size):
                    acc = r[base + a]
                    for c in range(a):
                        acc -= lam[start + a, start + c] * w[c]
                    w[a] = acc / lam[start + a, start + a]
                for a in range(size - 1, -1, -1):
                    acc = w[a]
                    for c in range(a + 1, size):
                        acc -= lam[start + c, start + a] * u[c]
                    u[a] = acc / lam[start + a, start + a]
                for a in range(size):
                    lp -= 0.5 * w[a] * w[a]
                    grad[n_small + base + a] = g_r[base + a] - u[a]
                    col = int(buf[cols + start + a])
                    if col >= 0:
                        g_b[col] -= g_r[base + a] - u[a]
                    for c in range(a + 1):
                        g_lam[start + a, start + c] += u[a] * w[c]
                    g_lam[start + a, start + a] -= 1.0 / lam[start + a, start + a]
                lp -= log_det
            else:
                for a in range(size):
                    z = x[n_small + base + a]
                    lp -= 0.5 * z * z
                    acc = -z
                    for c in range(a, size):
                        acc += lam[start + c, start + a] * g_r[base + c]
                    grad[n_small + base + a] = acc
                    for c in range(a + 1):
                        g_lam[start + a, start + c] += g_r[base + a] * x[n_small + base + c]
    return lp


@numba.njit(cache=True, error_model="numpy")
def _likelihood(buf, b, r, theta, g_b, g_r, g_theta):
    """sum_i log p(y_i | eta_i, theta), with its gradient in b, r and theta (added in)."""
    n, family, link = int(buf[H_ROWS]), int(buf[H_FAMILY]), int(buf[H_LINK])
    y_at, n_at = int(buf[OFF_Y]), int(buf[OFF_TRIALS])
    c = np.zeros(3)
    constants(family, theta, c)
    eta = np.empty(n)
    linear_predictor(buf, b, r, eta)
    total = loglik_rows(family, link, buf[y_at : y_at + n], buf[n_at : n_at + n], eta, theta, c, g_theta)
    if np.isfinite(total):
        back(buf, eta, g_b, g_r)
    return total


@numba.njit(cache=True, error_model="numpy")
def logp_and_grad(x, buf, grad):
    """Log posterior density (up to a constant) at unconstrained x; fills ``grad``."""
    p, q, n_theta, n_small = int(buf[H_P]), int(buf[H_Q]), int(buf[H_NTHETA]), int(buf[H_NSMALL])
    n_r = x.shape[0] - n_small
    b = np.zeros(p)
    lam = np.zeros((q, q))
    theta = np.zeros(max(n_theta, 1))
    lp_prior = unpack(x, buf, b, lam, theta)
    grad[:] = 0.0
    if not (np.isfinite(lp_prior) and np.all(np.isfinite(lam)) and np.all(np.isfinite(theta))):
        return -np.inf  # outside what double precision can represent: a rejected point
    g_b, g_r, g_theta, g_lam = np.zeros(p), np.zeros(n_r), np.zeros(max(n_theta, 1)), np.zeros((q, q))
    x0_bar = 0.0
    if buf[H_LAPLACE] > 0:  # the group effects integrated out (``laplace``)
        loglik, lp_groups = laplace_loglik(b, lam, theta, buf, g_b, g_lam, g_theta), 0.0
    else:
        r, w = np.empty(n_r), np.zeros(int(buf[H_NBLOCKS]))
        total = partial_weights(buf, lam, theta[0], w) if buf[H_PARTIAL] > 0 else 1.0
        effects_from_x(x, buf, lam, b, r, w)
        if buf[H_NINT] > 0:  # a crossed Gaussian model: one factor integrated out exactly
            loglik, g_theta[0] = integrated_likelihood(buf, b, r, theta[0], lam, g_b, g_r, g_lam)
        else:
            loglik = _likelihood(buf, b, r, theta, g_b, g_r, g_theta)
        lp_groups = _group_prior(x, r, buf, lam, g_r, g_lam, g_b, grad) if np.isfinite(loglik) else 0.0
        if buf[H_PARTIAL] > 0 and np.isfinite(loglik):
            x0_bar = partial_adjoint(x, buf, lam, theta[0], w, total, grad, g_lam, g_theta)
    if not np.isfinite(loglik + lp_groups):
        grad[:] = 0.0
        return -np.inf
    # chain rule through the small map x -> (b, Lambda, theta) and its prior, by complex step
    xc = x[:n_small].astype(np.complex128)
    bc = np.zeros(p, dtype=np.complex128)
    lamc = np.zeros((q, q), dtype=np.complex128)
    thetac = np.zeros(max(n_theta, 1), dtype=np.complex128)
    for i in range(n_small):
        xc[i] = x[i] + 1j * STEP
        g = unpack(xc, buf, bc, lamc, thetac).imag
        for k in range(p):
            g += g_b[k] * bc[k].imag
        for a in range(q):
            for k in range(a + 1):
                g += g_lam[a, k] * lamc[a, k].imag
        for t in range(n_theta):
            g += g_theta[t] * thetac[t].imag
        grad[i] = g / STEP
        xc[i] = x[i]
    grad[0] += x0_bar  # x_0 in a_j = r_j + w (x_0 - c) (partial centring)
    return loglik + lp_groups + lp_prior


@numba.njit(cache=True, error_model="numpy")
def expand(x, buf, out):
    """The draws to keep: b (p), Lambda (q x q, row-major), theta, the group effects r."""
    p, q, n_theta, n_small = int(buf[H_P]), int(buf[H_Q]), int(buf[H_NTHETA]), int(buf[H_NSMALL])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    theta = np.zeros(max(n_theta, 1))
    unpack(x, buf, b, lam, theta)
    out[:p] = b
    for a in range(q):
        for c in range(q):
            out[p + a * q + c] = lam[a, c]
    out[p + q * q : p + q * q + n_theta] = theta[:n_theta]
    if buf[H_LAPLACE] == 0:
        r, w = np.empty(x.shape[0] - n_small), np.zeros(int(buf[H_NBLOCKS]))
        if buf[H_PARTIAL] > 0:
            partial_weights(buf, lam, theta[0], w)
        effects_from_x(x, buf, lam, b, r, w)
        out[p + q * q + n_theta :] = r


@dataclass(frozen=True)
class SampledModel:
    """The packed buffer nutpie's callbacks read, and how to read the draws back."""

    buffer: np.ndarray
    parameters: tuple[str, ...]  # names of the unconstrained numbers, for messages
    start: np.ndarray
    jitter: np.ndarray
    p: int
    q: int
    blocks: tuple = ()  # in Lambda's order: the design's blocks
    theta_names: tuple[str, ...] = ()
    priors_packed: bool = True
    laplace: bool = False  # the effects integrated out by a Laplace approximation, not in x
    n_integrated: int = 0  # the leading blocks whose effects are integrated out exactly, not in x

    @property
    def sampled_blocks(self) -> tuple:
        """The blocks whose effects are in x (and in the draws)."""
        return () if self.laplace else self.blocks[self.n_integrated :]

    @property
    def n_dim(self) -> int:
        return len(self.parameters)

    @property
    def n_small(self) -> int:
        return int(self.buffer[H_NSMALL])

    @property
    def n_expanded(self) -> int:
        return int(self.buffer[H_NEXP])

    def logp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at unconstrained ``x`` (for tests and checks)."""
        grad = np.empty(self.n_dim)
        return float(logp_and_grad(np.asarray(x, dtype=float), self.buffer, grad)), grad

    def natural(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """b, Lambda, theta (by name) and the group effects r (flat) at unconstrained ``x``."""
        out = np.empty(self.n_expanded)
        expand(np.asarray(x, dtype=float), self.buffer, out)
        p, q, t = self.p, self.q, len(self.theta_names)
        return {"b": out[:p], "Lambda": out[p : p + q * q].reshape(q, q),
                **{name: out[p + q * q + k] for k, name in enumerate(self.theta_names)}, "r": out[p + q * q + t :]}  # fmt: skip

    def initial_point(self, seed) -> np.ndarray:
        return initial_point(self, seed)


def pack_sampled(design, priors, parameterization: dict, laplace: bool = False, integrated: tuple = ()) -> SampledModel:
    """Pack ``design`` row by row, its ``priors`` and how each block is sampled into one
    float64 buffer (``core.layout``'s header, the sampled model's sections). ``laplace``:
    the effects of the one grouping factor integrated out instead (``laplace``);
    ``integrated``: the blocks of the factor with the most levels of a Gaussian model, whose
    effects are integrated out exactly (put first), the others sampled."""
    family = design.family
    X, terms, y = design.X, design.fixed_terms, design.y
    n, p = X.shape
    if integrated and {b.group for b in integrated} != {largest_factor(design)}:
        raise ValueError("only the blocks of the factor with the most levels can be integrated out here")
    integrated_names = {b.name for b in integrated}
    blocks = [*integrated, *(b for b in design.blocks if b.name not in integrated_names)]
    outer = design.factors[blocks[0].group].codes if blocks else np.zeros(n, dtype=int)  # the rows sorted by its groups
    order = np.argsort(outer, kind="stable")
    q = sum(b.size for b in blocks)
    has_int = int(design.has_intercept)
    int_col = terms.index("(Intercept)") if has_int else -1
    slopes = [k for k in range(p) if k != int_col]
    means = X[:, slopes].mean(axis=0) if slopes else np.zeros(0)
    loc, s_link = family.link_scale(y, design.trials)
    s_x = np.array([float(np.std(X[:, k])) or 1.0 for k in slopes])
    scales = s_link / s_x

    prior_rows, labels, start, jitter = [], [], [], []
    if has_int:
        prior_rows.append(prior_row(priors.get("Intercept")))
        labels.append(names.INTERCEPT_C)
        start.append(loc)
        jitter.append(0.1 * s_link)
    for k in slopes:
        prior_rows.append(prior_row(priors.get("b", coef=terms[k])))
        labels.append(f"{names.SLOPES}[{terms[k]}]")
        start.append(0.0)
        jitter.append(0.5)
    block_rows, group_rows, at = [], [], 0
    for block in blocks:
        n_cor = block.size * (block.size - 1) // 2 if block.correlated else 0
        for i, term in enumerate(block.terms):
            prior_rows.append(prior_row(priors.get("sd", block.name, term)))
            labels.append(f"log {names.sd(block)}[{term}]")
            s_z = 1.0 if term == "(Intercept)" else (float(np.std(block.Z[:, i])) or 1.0)
            start.append(np.log(s_link / s_z / 3))
            jitter.append(1.0)
        labels += [f"atanh cpc_{block.name}[{block.terms[i]},{block.terms[j]}]"
                   for i in range(block.size) for j in range(i)] if block.correlated else []  # fmt: skip
        start += [0.0] * n_cor
        jitter += [1.0] * n_cor
        eta = priors.get("cor", block.name).kwargs["eta"] if block.correlated else 0.0
        block_rows.append([sum(b.size for b in blocks[: blocks.index(block)]), block.size, float(block.correlated), eta])
        n_groups = len(design.factors[block.group].levels)
        group_rows.append([n_groups, at, float(parameterization.get(block.name) == "centered")])
        at += 0 if block.name in integrated_names else n_groups * block.size
    for param in family.params:
        prior_rows.append(prior_row(priors.get(param.name)))
        labels.append(f"log {param.name}")
        start.append(param.log_start(design.y, design.X))
        jitter.append(param.jitter)
    n_small = len(labels)
    shifted = _shifted_terms(design, blocks, parameterization, integrated_names)
    term_cols = [terms.index(t) if (block.name, t) in shifted else -1 for block in blocks for t in block.terms]
    partial = _partial_codes(blocks, group_rows, shifted, integrated_names) if integrated and has_int else []
    fixed_start = {"(Intercept)": loc}  # b at the start point (slopes 0)
    in_x = list(enumerate(zip(blocks, [] if laplace else group_rows)))[len(integrated) :]
    for k, (block, (n_groups, _, centred)) in in_x:
        moved = {t for t in block.terms if (block.name, t) in shifted}
        moved |= {"(Intercept)"} if partial and partial[k] == 2 else set()
        for level in design.factors[block.group].levels:
            labels += [f"{'a' if term in moved else 'r' if centred else 'z'}_{block.name}[{level},{term}]"
                       for term in block.terms]  # fmt: skip
        at_start = [fixed_start.get(t, 0.0) if (block.name, t) in shifted else 0.0 for t in block.terms]
        start += at_start * n_groups
        jitter += [0.1 * s_link if centred else 1.0] * (n_groups * block.size)

    n_theta = len(family.params)
    header = np.zeros(HEADER)
    header[[H_NDIM, H_P, H_Q, H_NBLOCKS, H_HASINT, H_INTCOL, H_NEXP, H_NTHETA, H_ROWS, H_FAMILY, H_LINK, H_NSMALL,
            H_LAPLACE, H_NINT, H_PARTIAL, H_X0]] = [
        len(labels), p, q, len(blocks), has_int, int_col, p + q * q + n_theta + (0 if laplace else at), n_theta, n,
        family.kernel, family.link_code, n_small, float(laplace), len(integrated), float(2 in partial),
        loc if has_int else 0.0,
    ]  # fmt: skip
    Z = np.concatenate([b.Z for b in blocks], axis=1) if blocks else np.zeros((n, 0))
    codes = np.stack([design.factors[b.group].codes for b in blocks], axis=1) if blocks else np.zeros((n, 0))
    trials = design.trials if design.trials is not None else np.ones(n)
    offset = design.offset if design.offset is not None else np.zeros(n)
    starts = np.concatenate([[0], np.cumsum(np.bincount(outer, minlength=group_rows[0][0] if blocks else 1))])
    sections = {
        OFF_BLOCKS: block_rows, OFF_PRIORS: prior_rows, OFF_SLOPES: slopes, OFF_MEANS: means, OFF_SCALES: scales,
        OFF_Y: y[order], OFF_TRIALS: trials[order], OFF_OFFSET: offset[order], OFF_X: X[order], OFF_ZROWS: Z[order],
        OFF_CODES: codes[order], OFF_GROUPS: group_rows, OFF_STARTS: starts, OFF_TERM_COLS: term_cols,
        OFF_ZTZ: sufficient_stats(design).ZtZ if integrated else (),  # the largest factor's, as the draws read them
        OFF_PARTIAL: partial if 2 in partial else (),
    }  # fmt: skip
    if integrated:  # the crossed likelihood's cross-products (``crossed``)
        cross = cross_products(y - offset - header[H_X0], X, Z, codes, [(row[0], row[1]) for row in block_rows],
                               [row[0] for row in group_rows], len(integrated))  # fmt: skip
        header[H_YTY], header[H_ZTW_FULL] = cross.pop(H_YTY), cross.pop(H_ZTW_FULL)
        sections.update(cross)
    buffer = assemble(header, sections, SAMPLED_SECTIONS)
    return SampledModel(buffer, tuple(labels), np.asarray(start, dtype=float), np.asarray(jitter, dtype=float), p, q,
                        tuple(blocks), family.param_names, priors_packable(priors), laplace, len(integrated))  # fmt: skip


def _shifted_terms(design, blocks, parameterization, integrated=frozenset()) -> set:
    """(block, term) pairs whose centred effects are sampled around the term's fixed effect:
    per fixed-effect term, the block with the most groups only, if it is centred and not
    integrated out (two shifted blocks on crossed factors would both trade off against the
    same fixed effect; beside a crossed integrated factor, shifting cut the intercept's ESS
    2.5x)."""
    shifted, claimed = set(), set()
    for block in sorted(blocks, key=lambda b: -design.factors[b.group].n_levels):
        if block.name in integrated or parameterization.get(block.name) != "centered":
            claimed.update(block.terms)
            continue
        for term in block.terms:
            if term in design.fixed_terms and term not in claimed:
                shifted.add((block.name, term))
                claimed.add(term)
    return shifted


def _partial_codes(blocks, group_rows, shifted, integrated) -> list[int]:
    """Per block, for the partial centring of ``crossed``: 2 (sampled, centred, its first term
    the intercept and not already shifted: in x as a_j = r_j + w x_0), 1 (its first term is the
    intercept: its effects' mean trades off against x_0 too) or 0."""
    codes = []
    for block, (_, _, centred) in zip(blocks, group_rows):
        first = block.terms[0] == "(Intercept)"
        movable = block.name not in integrated and centred and (block.name, "(Intercept)") not in shifted
        codes.append(2 if first and movable else int(first))
    return codes
