"""The packed model's log posterior density and its gradient (numba), for nutpie and for PyMC.

Unconstrained parameters (``core.parameters``), in order: ``Intercept_c`` (the intercept at
the predictors' means), ``beta`` (slopes), then per block the log SDs and, for a correlated
block, the canonical partial correlations as atanh values (the Stan/LKJ Cholesky transform),
and log sigma.

The log-likelihood and its gradient in (b, Lambda, sigma) come from ``kernels`` (one factor)
and ``nested`` / ``nested_slopes`` (two nested factors). The map from the unconstrained parameters to
(b, Lambda, sigma), the priors and the Jacobians involve a few dozen numbers; their
derivatives are taken by complex-step differentiation (exact to rounding for these analytic
functions), so no prior needs a hand-written gradient.

``pack_model``: Design + Priors -> ``PackedModel`` (the buffer of ``layout``, a starting
point, the parameters' names). ``loglik_and_grad`` is what PyMC's Op (``graph``) calls;
``logp_and_grad`` and ``expand`` are what nutpie calls (through the C callbacks of
``hierbayes.methods.nutpie``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .. import names
from ..core.parameters import STEP
from .kernels import loglik_grad
from ..core.layout import (
    H_HASINT, H_INTCOL, H_J, H_N, H_NA, H_NBLOCKS, H_NDIM, H_NESTED, H_NEXP, H_NOUTER, H_NTHETA, H_P, H_Q,
    H_Q1, H_X0, H_YTY,
    HEADER, OFF_A_COUNTS, OFF_A_INDEX, OFF_A_VALUES, OFF_BLOCKS, OFF_BY_OUTER, OFF_MEANS, OFF_N_C, OFF_OUTER_OF,
    OFF_OUTER_START, OFF_PRIORS, OFF_SLOPES, OFF_UTU, OFF_UTU_S, OFF_UTX, OFF_UTX_S, OFF_UTY, OFF_UTY_S,
    OFF_XTX, OFF_XTY, OFF_ZTU, OFF_ZTX, OFF_ZTY, OFF_ZTZ, SECTIONS, assemble,
)  # fmt: skip
from ..core.parameters import initial_point, prior_row, unpack
from .nested import nested_q1_loglik_grad
from .nested_slopes import nested_loglik_grad
from .stats import integrated_blocks, nested_factors, nested_stats, response_shift, sufficient_stats

__all__ = ["PackedModel", "pack_model", "loglik_and_grad", "logp_and_grad", "expand"]

@numba.njit(cache=True, error_model="numpy")
def loglik_and_grad(b, lam, sigma, buf, g_b, g_lam):
    """The log-likelihood at (b, Lambda, sigma), its gradient in b and Lambda written into
    ``g_b``, ``g_lam`` (lower triangle), and d/dsigma returned: (loglik, d/dsigma)."""
    if buf[H_NESTED] == 0:
        return loglik_grad(b, lam, sigma, buf, g_b, g_lam)
    if int(buf[H_Q1]) == 1:
        return nested_q1_loglik_grad(b, lam, sigma, buf, g_b, g_lam)
    return nested_loglik_grad(b, lam, sigma, buf, g_b, g_lam)


@numba.njit(cache=True, error_model="numpy")
def logp_and_grad(x, buf, grad):
    """Log posterior density (up to a constant) at unconstrained x; fills ``grad``."""
    n_dim, p, q = x.shape[0], int(buf[H_P]), int(buf[H_Q])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    sig = np.zeros(1)
    lp_prior = unpack(x, buf, b, lam, sig)
    g_b = np.empty(p)
    g_lam = np.empty((q, q))
    if not (np.isfinite(lp_prior) and 0.0 < sig[0] * sig[0] < np.inf and np.all(np.isfinite(lam))):
        grad[:] = 0.0  # outside what double precision can represent: a rejected point
        return -np.inf
    loglik, g_sigma = loglik_and_grad(b, lam, sig[0], buf, g_b, g_lam)
    # chain rule through the small map x -> (b, Lambda, sigma) and the prior, by complex step
    xc = x.astype(np.complex128)
    bc = np.zeros(p, dtype=np.complex128)
    lamc = np.zeros((q, q), dtype=np.complex128)
    sigc = np.zeros(1, dtype=np.complex128)
    for i in range(n_dim):
        xc[i] = x[i] + 1j * STEP
        lpc = unpack(xc, buf, bc, lamc, sigc)
        g = lpc.imag
        for c in range(p):
            g += g_b[c] * bc[c].imag
        for a in range(q):
            for c in range(a + 1):
                g += g_lam[a, c] * lamc[a, c].imag
        g += g_sigma * sigc[0].imag
        grad[i] = g / STEP
        xc[i] = x[i]
    return loglik + lp_prior


@numba.njit(cache=True, error_model="numpy")
def expand(x, buf, out):
    """The draws to keep: b (p), Lambda (q x q, row-major), sigma."""
    p, q = int(buf[H_P]), int(buf[H_Q])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    sig = np.zeros(1)
    unpack(x, buf, b, lam, sig)
    out[:p] = b
    for a in range(q):
        for c in range(q):
            out[p + a * q + c] = lam[a, c]
    out[p + q * q] = sig[0]



# --- the model as data, and sampling it with nutpie --------------------------------------------


@dataclass(frozen=True)
class PackedModel:
    """The packed buffer nutpie's callbacks read, and how to read the draws back."""

    buffer: np.ndarray
    parameters: tuple[str, ...]  # names of the unconstrained numbers, for messages
    start: np.ndarray  # a sensible unconstrained starting point (before jitter)
    jitter: np.ndarray  # half-width of the uniform jitter of each start value
    p: int
    q: int
    blocks: tuple = ()  # in Lambda's order
    priors_packed: bool = True  # every prior one the kernels evaluate: nutpie can sample it directly

    @property
    def nested(self) -> bool:
        return bool(self.buffer[H_NESTED])

    @property
    def theta_names(self) -> tuple[str, ...]:
        """The family's own parameters in the draws: sigma."""
        return (names.SIGMA,)

    @property
    def sampled_blocks(self) -> tuple:
        """The blocks whose effects are in the draws: none, all are integrated out."""
        return ()

    @property
    def n_dim(self) -> int:
        return len(self.parameters)

    @property
    def n_expanded(self) -> int:
        return self.p + self.q * self.q + 1

    def logp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at unconstrained ``x`` (for tests and checks)."""
        grad = np.empty(self.n_dim)
        return float(logp_and_grad(np.asarray(x, dtype=float), self.buffer, grad)), grad

    def loglik(self, x: np.ndarray) -> float:
        """The marginal log-likelihood alone at unconstrained ``x`` (for tests)."""
        b, lam, sigma = self.natural(x)
        loglik, _ = loglik_and_grad(b, lam, sigma, self.buffer, np.empty(self.p), np.empty((self.q, self.q)))
        return float(loglik)

    def natural(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(b, Lambda, sigma) at unconstrained ``x``."""
        out = np.empty(self.n_expanded)
        expand(np.asarray(x, dtype=float), self.buffer, out)
        q = self.q
        return out[: self.p], out[self.p : self.p + q * q].reshape(q, q), float(out[-1])

    def initial_point(self, seed) -> np.ndarray:
        return initial_point(self, seed)


def pack_model(design, priors) -> PackedModel:
    """Pack ``design``'s sufficient statistics and ``priors`` into one float64 buffer (``layout``).

    A prior the kernels cannot evaluate (a vector parameter) is packed as code -1: the
    likelihood still serves PyMC's Op, but nutpie cannot sample the model directly."""
    s = sufficient_stats(design)
    X, terms = design.X, design.fixed_terms
    p = X.shape[1]
    J = s.Zty.shape[0]
    nested = nested_factors(design)  # both integrated out here, whatever ``hb.fit`` would choose
    blocks = integrated_blocks(design, nested)  # with two nested factors: the inner one's, then the outer's
    q = sum(b.size for b in blocks)
    has_int = int(design.has_intercept)
    int_col = terms.index("(Intercept)") if has_int else -1
    slopes = [k for k in range(p) if k != int_col]
    means = X[:, slopes].mean(axis=0) if slopes else np.zeros(0)

    prior_rows, labels = [], []
    if has_int:
        prior_rows.append(prior_row(priors.get("Intercept")))
        labels.append(names.INTERCEPT_C)
    for k in slopes:
        prior_rows.append(prior_row(priors.get("b", coef=terms[k])))
        labels.append(f"{names.SLOPES}[{terms[k]}]")
    block_rows, start = [], 0
    cor_labels = []
    for block in blocks:
        for term in block.terms:
            prior_rows.append(prior_row(priors.get("sd", block.name, term)))
            labels.append(f"log {names.sd(block)}[{term}]")
        eta = priors.get("cor", block.name).kwargs["eta"] if block.correlated else 0.0
        block_rows.append([start, block.size, float(block.correlated), eta])
        cor_labels.append([f"atanh cpc_{block.name}[{block.terms[i]},{block.terms[j]}]"
                           for i in range(block.size) for j in range(i)] if block.correlated else [])  # fmt: skip
        start += block.size
    prior_rows.append(prior_row(priors.get("sigma")))
    # unconstrained order: fixed, then per block its log SDs and its correlations, then sigma
    ordered = labels[:p]
    k = p
    for block, cors in zip(blocks, cor_labels):
        ordered += labels[k : k + block.size] + cors
        k += block.size
    ordered.append(f"log {names.SIGMA}")

    header = np.zeros(HEADER)
    header[[H_NDIM, H_P, H_J, H_Q, H_NBLOCKS, H_HASINT, H_INTCOL, H_N, H_YTY, H_NEXP, H_NTHETA, H_X0]] = [
        len(ordered), p, J, q, len(blocks), has_int, int_col, s.n, s.yty, p + q * q + 1, 1, response_shift(design),
    ]  # fmt: skip
    sections = {
        OFF_BLOCKS: block_rows, OFF_PRIORS: prior_rows, OFF_SLOPES: slopes, OFF_MEANS: means, OFF_XTX: s.XtX,
        OFF_XTY: s.Xty, OFF_ZTZ: s.ZtZ, OFF_ZTX: s.ZtX, OFF_ZTY: s.Zty,
    }  # fmt: skip
    if nested:
        ns = nested_stats(design)
        q1 = s.Zty.shape[1]
        header[[H_NESTED, H_Q1, H_NOUTER]] = [1, q1, len(ns.n_s)]
        sections.update({OFF_OUTER_OF: ns.outer_of, OFF_N_C: s.n_j, OFF_ZTU: ns.ZtU, OFF_UTU: ns.UtU,
                         OFF_UTX: ns.UtX, OFF_UTY: ns.Uty, OFF_UTU_S: ns.UtU_s, OFF_UTX_S: ns.UtX_s,
                         OFF_UTY_S: ns.Uty_s, OFF_BY_OUTER: ns.by_outer, OFF_OUTER_START: ns.outer_start})  # fmt: skip
        if q1 == 1:  # the distinct class sizes Z'Z: one log m_c each (nested.nested_q1_loglik_grad)
            values, index, counts = np.unique(s.ZtZ[:, 0, 0], return_inverse=True, return_counts=True)
            header[H_NA] = len(values)
            sections.update({OFF_A_VALUES: values, OFF_A_COUNTS: counts, OFF_A_INDEX: index})
    buffer = assemble(header, sections, SECTIONS)
    start_x, jitter = _start(design, blocks, slopes, int_col, means, len(ordered))
    return PackedModel(buffer, tuple(ordered), start_x, jitter, p, q, tuple(blocks),
                       priors_packed=all(row[0] >= 0 for row in prior_rows))  # fmt: skip


def _start(design, blocks, slopes, int_col, means, n_dim):
    """Least-squares fixed effects, SDs at a third of the response's SD, no correlation and
    the residual SD; jittered by up to a tenth of a prior-like scale (fixed effects) or by
    +-1 on the log / atanh scale, as PyMC jitters its starting points."""
    X, y = design.X, design.y
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    resid_sd = float(np.std(y - X @ coef)) or 1.0
    s_y = float(np.std(y)) or 1.0
    start, jitter = [], []
    if int_col >= 0:
        start.append(coef[int_col] + means @ coef[slopes])
        jitter.append(0.1 * s_y)
    for k in slopes:
        start.append(coef[k])
        jitter.append(0.1 * s_y / (float(np.std(X[:, k])) or 1.0))
    for block in blocks:
        for i in range(block.size):
            s_z = 1.0 if block.terms[i] == "(Intercept)" else (float(np.std(block.Z[:, i])) or 1.0)
            start.append(np.log(s_y / s_z / 3))
            jitter.append(1.0)
        n_cor = block.size * (block.size - 1) // 2 if block.correlated else 0
        start += [0.0] * n_cor
        jitter += [1.0] * n_cor
    start.append(np.log(resid_sd))
    jitter.append(1.0)
    assert len(start) == n_dim
    return np.asarray(start, dtype=float), np.asarray(jitter, dtype=float)

