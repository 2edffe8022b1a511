"""The packed model's log posterior density and its gradient (numba), for nutpie and for PyMC.

Unconstrained parameters, in order: ``Intercept_c`` (the intercept at the predictors' means),
``beta`` (slopes), then per block the log SDs and, for a correlated block, the canonical
partial correlations as atanh values (the Stan/LKJ Cholesky transform), and log sigma.

The log-likelihood and its gradient in (b, Lambda, sigma) come from ``kernels`` (one factor)
and ``nested`` / ``nested_slopes`` (two nested factors). The map from the unconstrained parameters to
(b, Lambda, sigma), the priors and the Jacobians involve a few dozen numbers; their
derivatives are taken by complex-step differentiation (exact to rounding for these analytic
functions), so no prior needs a hand-written gradient.

``pack_model``: Design + Priors -> ``PackedModel`` (the buffer of ``layout``, a starting
point, the parameters' names). ``loglik_and_grad`` is what PyMC's Op (``graph``) calls;
``logp_and_grad`` and ``expand`` are what nutpie calls (through the C callbacks of
``hierbayes.packed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from .. import names
from .kernels import loglik_grad
from .layout import (
    H_HASINT, H_INTCOL, H_J, H_N, H_NA, H_NBLOCKS, H_NDIM, H_NESTED, H_NEXP, H_NOUTER, H_NTHETA, H_P, H_Q,
    H_Q1, H_X0, H_YTY,
    HEADER, OFF_A_COUNTS, OFF_A_INDEX, OFF_A_VALUES, OFF_BLOCKS, OFF_BY_OUTER, OFF_MEANS, OFF_N_C, OFF_OUTER_OF,
    OFF_OUTER_START, OFF_PRIORS, OFF_SLOPES, OFF_UTU, OFF_UTU_S, OFF_UTX, OFF_UTX_S, OFF_UTY, OFF_UTY_S,
    OFF_SCALES, OFF_XTX, OFF_XTY, OFF_ZTU, OFF_ZTX, OFF_ZTY, OFF_ZTZ, PRIOR_CODES, SECTIONS, assemble,
)  # fmt: skip
from .nested import nested_q1_loglik_grad
from .nested_slopes import nested_loglik_grad
from .stats import integrated_blocks, nested_factors, nested_stats, response_shift, sufficient_stats

__all__ = ["PackedModel", "pack_model", "loglik_and_grad", "logp_and_grad", "expand", "unpack", "prior_logp",
           "prior_row", "initial_point"]

STEP = 1e-30  # complex step


@numba.njit(cache=True, error_model="numpy")
def prior_logp(code, a, b, c, x):
    """Log density of a prior at x (complex-safe: no comparisons on x except Laplace's sign)."""
    if code == 0:  # Normal(mu=a, sigma=b)
        z = (x - a) / b
        return -0.5 * z * z - math.log(b) - 0.5 * math.log(2 * math.pi)
    if code == 1 or code == 5:  # StudentT(nu=a, mu=b, sigma=c) / HalfStudentT(nu=a, sigma=b)
        nu, mu, s = a, (b if code == 1 else 0.0), (c if code == 1 else b)
        z = (x - mu) / s
        const = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(s)
        if code == 5:
            const += math.log(2.0)
        return const - (nu + 1) / 2 * np.log(1 + z * z / nu)
    if code == 2 or code == 6:  # Cauchy(alpha=a, beta=b) / HalfCauchy(beta=a)
        loc, s = (a, b) if code == 2 else (0.0, a)
        z = (x - loc) / s
        const = -math.log(math.pi * s) + (math.log(2.0) if code == 6 else 0.0)
        return const - np.log(1 + z * z)
    if code == 3:  # Laplace(mu=a, b=b)
        d = x - a
        sign = 1.0 if d.real >= 0 else -1.0
        return -math.log(2 * b) - d * sign / b
    if code == 4:  # HalfNormal(sigma=a)
        z = x / a
        return -0.5 * z * z - math.log(a) + 0.5 * math.log(2 / math.pi)
    if code == 7:  # Exponential(lam=a)
        return math.log(a) - a * x
    if code == 8:  # Gamma(alpha=a, beta=b), rate b
        return a * math.log(b) - math.lgamma(a) + (a - 1) * np.log(x) - b * x
    # 9: InverseGamma(alpha=a, beta=b)
    return a * math.log(b) - math.lgamma(a) - (a + 1) * np.log(x) - b / x


@numba.njit(cache=True, error_model="numpy")
def unpack(x, buf, b, lam, theta):
    """Unconstrained x -> b (p), Lambda (q x q, zeroed first), the family's own parameters
    theta (``H_NTHETA`` of them: sigma; or sigma, nu; or shape); returns the log prior plus the
    log Jacobian. Slopes are x times their scale (``OFF_SCALES``, 1 where absent). Works for
    float64 and complex128 x alike."""
    p, q = int(buf[H_P]), int(buf[H_Q])
    has_int, int_col = int(buf[H_HASINT]), int(buf[H_INTCOL])
    priors, slopes, means = int(buf[OFF_PRIORS]), int(buf[OFF_SLOPES]), int(buf[OFF_MEANS])
    scales = int(buf[OFF_SCALES])
    lp = 0.0 * x[0]
    n_slopes = p - has_int
    for i in range(n_slopes):
        beta = x[has_int + i] * (buf[scales + i] if scales > 0 else 1.0)
        b[int(buf[slopes + i])] = beta
        row = priors + 4 * (has_int + i)
        lp += prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], beta)
    if has_int:
        icpt = x[0]
        lp += prior_logp(int(buf[priors]), buf[priors + 1], buf[priors + 2], buf[priors + 3], icpt)
        shift = 0.0 * x[0]
        for i in range(n_slopes):
            shift += buf[means + i] * b[int(buf[slopes + i])]
        b[int_col] = icpt - shift
    k = p
    pr = p
    for i in range(q):
        for j in range(q):
            lam[i, j] = 0.0
    blocks = int(buf[OFF_BLOCKS])
    for blk in range(int(buf[H_NBLOCKS])):
        start, size = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        correlated, eta = buf[blocks + 4 * blk + 2] > 0, buf[blocks + 4 * blk + 3]
        sd_pos = k
        for i in range(size):
            u = x[k]
            sd = np.exp(u)
            row = priors + 4 * pr
            lp += prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], sd) + u
            k += 1
            pr += 1
        if not correlated:
            for i in range(size):
                lam[start + i, start + i] = np.exp(x[sd_pos + i])
            continue
        # Cholesky factor of the correlation matrix from canonical partial correlations
        for i in range(size):
            sd_i = np.exp(x[sd_pos + i])
            rem = 1.0 + 0.0 * x[0]  # 1 - sum of squares so far in row i
            for j in range(i):
                y = x[k]
                k += 1
                z = np.tanh(y)
                sign = 1.0 if y.real >= 0 else -1.0
                # log(1 - tanh(y)^2) = 2 (log 2 - |y| - log1p(exp(-2|y|))), stable for large |y|
                lp += 2 * (math.log(2.0) - y * sign - np.log(1 + np.exp(-2 * y * sign)))
                lp += 0.5 * np.log(rem)
                l_ij = z * np.sqrt(rem)
                rem = rem - l_ij * l_ij
                lam[start + i, start + j] = sd_i * l_ij
            lam[start + i, start + i] = sd_i * np.sqrt(rem)
            if i > 0:  # LKJ density of the Cholesky factor
                lp += (size - i - 1 + 2 * eta - 2) * 0.5 * np.log(rem)
    for t in range(int(buf[H_NTHETA])):
        u = x[k]
        theta[t] = np.exp(u)
        row = priors + 4 * pr
        lp += prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], theta[t]) + u
        k += 1
        pr += 1
    return lp


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


def initial_point(model, seed) -> np.ndarray:
    """``model.start`` jittered; where the density or its gradient is not finite there (nutpie
    cannot start from such a point), jittered again with half the spread, then ``start``."""
    rng = np.random.default_rng(seed)
    for k in range(8):
        x = model.start + rng.uniform(-1, 1, model.n_dim) * model.jitter / 2**k
        value, grad = model.logp(x)
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            return x
    return model.start.copy()


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


def prior_row(prior) -> list[float]:
    """[code, a, b, c]; code -1 where the kernels cannot evaluate the prior."""
    if prior.dist not in PRIOR_CODES or not all(isinstance(v, float) for _, v in prior.params):
        return [-1.0, 0.0, 0.0, 0.0]
    values = [v for _, v in prior.params] + [0.0] * (3 - len(prior.params))
    return [float(PRIOR_CODES[prior.dist]), *values]


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

