"""The marginal model's log density and gradient written in numba, compiled once per machine.

The PyMC route to nutpie generates and compiles new code for every model: about 10 s on this
machine for London schools, most of it LLVM, and numba cannot cache it across processes.
For the common case (Gaussian, every block on one grouping factor) this module gives nutpie
a log density whose code is the same for every model: the model is data, packed into one
float64 buffer, so numba's on-disk cache (``cache=True``) serves it in a new process.

Unconstrained parameters, in order: ``Intercept_c`` (the intercept at the predictors' means),
``beta`` (slopes), then per block the log SDs and, for a correlated block, the canonical
partial correlations as atanh values (the Stan/LKJ Cholesky transform), and log sigma.

The likelihood uses M_j = sigma^2 I + Lambda' A_j Lambda with A_j = Z_j'Z_j and
c_j = Z_j'(y_j - X_j b), w_j = Lambda' c_j, v_j = M_j^{-1} w_j:

    log p(y) = -1/2 [N log 2 pi + (N - J q) log sigma^2 + sum_j log|M_j|
                     + (r'r - sum_j w_j' v_j) / sigma^2]

(matrix determinant lemma and Woodbury; the same density as ``marginal.add_marginal_likelihood``)
with its gradient in b, Lambda and sigma written out by hand:

    d/db      = (X'r - sum_j Z_jX_j' Lambda v_j) / sigma^2
    d/dLambda = sum_j -A_j Lambda M_j^{-1} + (c_j v_j' - A_j Lambda v_j v_j') / sigma^2
    d/dsigma2 = -1/2 [(N - J q)/sigma^2 + sum_j tr M_j^{-1} - (r'r - sum_j w_j'v_j)/sigma^4
                      + sum_j v_j'v_j / sigma^2]

The map from the unconstrained parameters to (b, Lambda, sigma), the priors and the
Jacobians involve a few dozen numbers; their derivatives are taken by complex-step
differentiation (exact to rounding for these analytic functions), so no prior needs a
hand-written gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["FastModel", "fast_model", "sample_fast", "PRIOR_CODES"]

PRIOR_CODES = {
    "Normal": 0, "StudentT": 1, "Cauchy": 2, "Laplace": 3, "HalfNormal": 4, "HalfStudentT": 5,
    "HalfCauchy": 6, "Exponential": 7, "Gamma": 8, "InverseGamma": 9,
}  # fmt: skip
STEP = 1e-30  # complex step
HEADER = 24

# header positions
_LEN, _NDIM, _P, _J, _Q, _NBLOCKS, _HASINT, _INTCOL, _N, _YTY, _NEXP = range(11)
_OFF_BLOCKS, _OFF_PRIORS, _OFF_SLOPES, _OFF_MEANS, _OFF_XTX, _OFF_XTY = range(11, 17)
_OFF_ZTZ, _OFF_ZTX, _OFF_ZTY = range(17, 20)


@numba.njit(cache=True)
def _prior_logp(code, a, b, c, x):
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


@numba.njit(cache=True)
def _unpack(x, buf, b, lam, out_sigma):
    """Unconstrained x -> b (p), Lambda (q x q, zeroed first), sigma (out_sigma[0]); returns
    the log prior plus the log Jacobian. Works for float64 and complex128 x alike."""
    p, q = int(buf[_P]), int(buf[_Q])
    has_int, int_col = int(buf[_HASINT]), int(buf[_INTCOL])
    priors, slopes, means = int(buf[_OFF_PRIORS]), int(buf[_OFF_SLOPES]), int(buf[_OFF_MEANS])
    lp = 0.0 * x[0]
    k = 0  # position in x
    pr = 0  # position in the prior table (one row of 4 per scalar parameter)
    n_slopes = p - has_int
    for i in range(n_slopes):
        beta = x[has_int + i]
        b[int(buf[slopes + i])] = beta
        row = priors + 4 * (has_int + i)
        lp += _prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], beta)
    if has_int:
        icpt = x[0]
        lp += _prior_logp(int(buf[priors]), buf[priors + 1], buf[priors + 2], buf[priors + 3], icpt)
        shift = 0.0 * x[0]
        for i in range(n_slopes):
            shift += buf[means + i] * x[1 + i]
        b[int_col] = icpt - shift
    k = p
    pr = p
    for i in range(q):
        for j in range(q):
            lam[i, j] = 0.0
    blocks = int(buf[_OFF_BLOCKS])
    for blk in range(int(buf[_NBLOCKS])):
        start, size = int(buf[blocks + 4 * blk]), int(buf[blocks + 4 * blk + 1])
        correlated, eta = buf[blocks + 4 * blk + 2] > 0, buf[blocks + 4 * blk + 3]
        sd_pos = k
        for i in range(size):
            u = x[k]
            sd = np.exp(u)
            row = priors + 4 * pr
            lp += _prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], sd) + u
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
    u = x[k]
    out_sigma[0] = np.exp(u)
    row = priors + 4 * pr
    lp += _prior_logp(int(buf[row]), buf[row + 1], buf[row + 2], buf[row + 3], out_sigma[0]) + u
    return lp


@numba.njit(cache=True)
def _loglik_grad(b, lam, sigma, buf, g_b, g_lam):
    """The marginal log-likelihood at (b, Lambda, sigma); fills its gradient in b and Lambda
    and returns (loglik, d loglik / d sigma)."""
    p, q, J = int(buf[_P]), int(buf[_Q]), int(buf[_J])
    n, yty = buf[_N], buf[_YTY]
    XtX, Xty = int(buf[_OFF_XTX]), int(buf[_OFF_XTY])
    ZtZ, ZtX, Zty = int(buf[_OFF_ZTZ]), int(buf[_OFF_ZTX]), int(buf[_OFF_ZTY])
    s2 = sigma * sigma
    # X'r and r'r from the totals
    Xtr = np.empty(p)
    rtr = yty
    for a in range(p):
        xb = 0.0
        for c in range(p):
            xb += buf[XtX + a * p + c] * b[c]
        Xtr[a] = buf[Xty + a] - xb
        rtr -= 2 * buf[Xty + a] * b[a] - b[a] * xb
    g_b[:] = 0.0
    g_lam[:, :] = 0.0
    cvec = np.empty(q)
    AL = np.empty((q, q))
    M = np.empty((q, q))
    L = np.empty((q, q))
    Minv = np.empty((q, q))
    w = np.empty(q)
    v = np.empty(q)
    Lv = np.empty(q)
    logdet = 0.0
    quad = 0.0
    trace = 0.0
    vtv = 0.0
    for j in range(J):
        A = buf[ZtZ + j * q * q : ZtZ + (j + 1) * q * q]
        for a in range(q):  # c_j = Z'y - Z'X b
            s = buf[Zty + j * q + a]
            base = ZtX + (j * q + a) * p
            for c in range(p):
                s -= buf[base + c] * b[c]
            cvec[a] = s
        for a in range(q):  # A Lambda (Lambda lower triangular)
            for c in range(q):
                s = 0.0
                for m in range(c, q):
                    s += A[a * q + m] * lam[m, c]
                AL[a, c] = s
        for a in range(q):  # M = sigma^2 I + Lambda' A Lambda
            for c in range(a + 1):
                s = s2 if a == c else 0.0
                for m in range(a, q):
                    s += lam[m, a] * AL[m, c]
                M[a, c] = s
                M[c, a] = s
        for a in range(q):  # Cholesky M = L L'
            for c in range(a + 1):
                s = M[a, c]
                for m in range(c):
                    s -= L[a, m] * L[c, m]
                if a == c:
                    L[a, a] = math.sqrt(s)
                else:
                    L[a, c] = s / L[c, c]
            logdet += 2 * math.log(L[a, a])
        for a in range(q):  # w = Lambda' c
            s = 0.0
            for m in range(a, q):
                s += lam[m, a] * cvec[m]
            w[a] = s
        # M^{-1}: solve L L' X = I column by column
        for col in range(q):
            for a in range(q):
                s = 1.0 if a == col else 0.0
                for m in range(a):
                    s -= L[a, m] * Minv[m, col]
                Minv[a, col] = s / L[a, a]
            for a in range(q - 1, -1, -1):
                s = Minv[a, col]
                for m in range(a + 1, q):
                    s -= L[m, a] * Minv[m, col]
                Minv[a, col] = s / L[a, a]
        for a in range(q):
            s = 0.0
            for c in range(q):
                s += Minv[a, c] * w[c]
            v[a] = s
            quad += w[a] * s
            trace += Minv[a, a]
            vtv += s * s
        for a in range(q):  # Lambda v, then d/db: - Z_jX_j' Lambda v / sigma^2
            s = 0.0
            for c in range(a + 1):
                s += lam[a, c] * v[c]
            Lv[a] = s
        for a in range(q):
            base = ZtX + (j * q + a) * p
            for c in range(p):
                g_b[c] -= buf[base + c] * Lv[a]
        # d/dLambda (lower part only): -A Lambda M^{-1} + (c v' - A Lambda v v') / sigma^2
        for a in range(q):
            ALv = 0.0
            for m in range(q):
                ALv += AL[a, m] * v[m]
            for c in range(a + 1):
                s = 0.0
                for m in range(q):
                    s += AL[a, m] * Minv[m, c]
                g_lam[a, c] += -s + (cvec[a] * v[c] - ALv * v[c]) / s2
    for c in range(p):
        g_b[c] = (Xtr[c] + g_b[c]) / s2
    nq = n - J * q
    resid = rtr - quad
    loglik = -0.5 * (n * math.log(2 * math.pi) + nq * math.log(s2) + logdet + resid / s2)
    d_s2 = -0.5 * (nq / s2 + trace - resid / (s2 * s2) + vtv / s2)
    return loglik, 2 * sigma * d_s2


@numba.njit(cache=True)
def logp_and_grad(x, buf, grad):
    """Log posterior density (up to a constant) at unconstrained x; fills ``grad``."""
    n_dim, p, q = x.shape[0], int(buf[_P]), int(buf[_Q])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    sig = np.zeros(1)
    lp_prior = _unpack(x, buf, b, lam, sig)
    g_b = np.empty(p)
    g_lam = np.empty((q, q))
    loglik, g_sigma = _loglik_grad(b, lam, sig[0], buf, g_b, g_lam)
    # chain rule through the small map x -> (b, Lambda, sigma) and the prior, by complex step
    xc = x.astype(np.complex128)
    bc = np.zeros(p, dtype=np.complex128)
    lamc = np.zeros((q, q), dtype=np.complex128)
    sigc = np.zeros(1, dtype=np.complex128)
    for i in range(n_dim):
        xc[i] = x[i] + 1j * STEP
        lpc = _unpack(xc, buf, bc, lamc, sigc)
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


@numba.njit(cache=True)
def expand(x, buf, out):
    """The draws to keep: b (p), Lambda (q x q, row-major), sigma."""
    p, q = int(buf[_P]), int(buf[_Q])
    b = np.zeros(p)
    lam = np.zeros((q, q))
    sig = np.zeros(1)
    _unpack(x, buf, b, lam, sig)
    out[:p] = b
    for a in range(q):
        for c in range(q):
            out[p + a * q + c] = lam[a, c]
    out[p + q * q] = sig[0]


_LOGP_SIG = numba.types.int64(
    numba.types.uint64, numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip
_EXPAND_SIG = numba.types.int64(
    numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip


@numba.cfunc(_LOGP_SIG, cache=True)
def _logp_cfunc(dim, x_, out_, logp_, data_):
    head = numba.carray(data_, (HEADER,), np.float64)
    buf = numba.carray(data_, (int(head[_LEN]),), np.float64)
    if dim != int(head[_NDIM]):
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value = logp_and_grad(x, buf, out)
    logp[0] = value
    for i in range(dim):
        if not np.isfinite(out[i]):
            return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.cfunc(_EXPAND_SIG, cache=True)
def _expand_cfunc(dim, n_expanded, x_, out_, data_):
    head = numba.carray(data_, (HEADER,), np.float64)
    buf = numba.carray(data_, (int(head[_LEN]),), np.float64)
    if dim != int(head[_NDIM]) or n_expanded != int(head[_NEXP]):
        return -1
    expand(numba.carray(x_, (dim,)), buf, numba.carray(out_, (n_expanded,)))
    return 0


# --- the model as data, and sampling it with nutpie --------------------------------------------


@dataclass(frozen=True)
class FastModel:
    """The packed buffer nutpie's callbacks read, and how to read the draws back."""

    buffer: np.ndarray
    parameters: tuple[str, ...]  # names of the unconstrained numbers, for messages
    start: np.ndarray  # a sensible unconstrained starting point (before jitter)
    jitter: np.ndarray  # half-width of the uniform jitter of each start value
    p: int
    q: int

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
        loglik, _ = _loglik_grad(b, lam, sigma, self.buffer, np.empty(self.p), np.empty((self.q, self.q)))
        return float(loglik)

    def natural(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(b, Lambda, sigma) at unconstrained ``x``."""
        out = np.empty(self.n_expanded)
        expand(np.asarray(x, dtype=float), self.buffer, out)
        q = self.q
        return out[: self.p], out[self.p : self.p + q * q].reshape(q, q), float(out[-1])

    def initial_point(self, seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return self.start + rng.uniform(-1, 1, self.n_dim) * self.jitter


def fast_model(design, priors) -> FastModel:
    """Pack ``design``'s sufficient statistics and ``priors`` into one float64 buffer."""
    from .marginal import integrated_blocks, sufficient_stats

    s = sufficient_stats(design)
    X, y, terms = design.X, design.y, design.fixed_terms
    p = X.shape[1]
    J, q = s.Zty.shape
    blocks = integrated_blocks(design)
    has_int = int(design.has_intercept)
    int_col = terms.index("(Intercept)") if has_int else -1
    slopes = [k for k in range(p) if k != int_col]
    means = X[:, slopes].mean(axis=0) if slopes else np.zeros(0)

    prior_rows, names = [], []
    if has_int:
        prior_rows.append(_prior_row(priors.get("Intercept")))
        names.append("Intercept_c")
    for k in slopes:
        prior_rows.append(_prior_row(priors.get("b", coef=terms[k])))
        names.append(f"beta[{terms[k]}]")
    block_rows, start = [], 0
    cor_names = []
    for block in blocks:
        for term in block.terms:
            prior_rows.append(_prior_row(priors.get("sd", block.name, term)))
            names.append(f"log sd_{block.name}[{term}]")
        eta = priors.get("cor", block.name).kwargs["eta"] if block.correlated else 0.0
        block_rows.append([start, block.size, float(block.correlated), eta])
        cor_names.append([f"atanh cpc_{block.name}[{block.terms[i]},{block.terms[j]}]"
                          for i in range(block.size) for j in range(i)] if block.correlated else [])  # fmt: skip
        start += block.size
    prior_rows.append(_prior_row(priors.get("sigma")))
    # unconstrained order: fixed, then per block its log SDs and its correlations, then sigma
    ordered = names[:p]
    k = p
    for block, cors in zip(blocks, cor_names):
        ordered += names[k : k + block.size] + cors
        k += block.size
    ordered.append("log sigma")

    sections = [
        np.asarray(block_rows, dtype=float).ravel(), np.asarray(prior_rows, dtype=float).ravel(),
        np.asarray(slopes, dtype=float), means, s.XtX.ravel(), s.Xty, s.ZtZ.ravel(), s.ZtX.ravel(), s.Zty.ravel(),
    ]  # fmt: skip
    header = np.zeros(HEADER)
    header[[_NDIM, _P, _J, _Q, _NBLOCKS, _HASINT, _INTCOL, _N, _YTY]] = [
        len(ordered), p, J, q, len(blocks), has_int, int_col, s.n, s.yty,
    ]  # fmt: skip
    header[_NEXP] = p + q * q + 1
    offset = HEADER
    for pos, section in zip(range(_OFF_BLOCKS, _OFF_ZTY + 1), sections):
        header[pos] = offset
        offset += len(section)
    header[_LEN] = offset
    buffer = np.ascontiguousarray(np.concatenate([header, *sections]))
    buffer.flags.writeable = False
    start_x, jitter = _start(design, blocks, slopes, int_col, means, len(ordered))
    return FastModel(buffer, tuple(ordered), start_x, jitter, p, q)


def _prior_row(prior) -> list[float]:
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


def sample_fast(design, fm: FastModel, *, draws, tune, chains, seed, target_accept, nuts: dict, progressbar=False):
    """NUTS by nutpie on the packed model; returns a DataTree whose posterior holds ``b``,
    ``sd_<block>``, ``L_<block>`` and ``cor_<block>`` (correlated blocks), and ``sigma``,
    with the same names and dims as the PyMC model's."""
    import time

    import nutpie
    import xarray as xr
    from nutpie.compile_pymc import CompiledPyMCModel

    from .marginal import integrated_blocks

    p, q = fm.p, fm.q
    compiled = CompiledPyMCModel(
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc, initial_point_func=fm.initial_point,
        shared_data={}, shared_var_keys={}, user_data=fm.buffer, n_expanded=fm.n_expanded,
        shape_info=(["b", "Lambda", "sigma"], [slice(0, p), slice(p, p + q * q), slice(p + q * q, p + q * q + 1)],
                    [(p,), (q, q), ()]),
        logp_func=None, expand_func=None, _n_dim=fm.n_dim, _shapes={"b": (p,), "Lambda": (q, q), "sigma": ()},
        _coords={}, dims={}, reparameterized_names=[],
    )  # fmt: skip
    started = time.time()
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar,
                         target_accept=target_accept, save_warmup=False, **nuts)  # fmt: skip
    elapsed = time.time() - started
    raw = tree.posterior.dataset
    chain_draw = {"chain": raw["chain"].values, "draw": raw["draw"].values}
    lam = raw["Lambda"].transpose("chain", "draw", ...).values
    post = {"b": xr.DataArray(raw["b"].transpose("chain", "draw", ...).values, dims=("chain", "draw", "term"),
                              coords={**chain_draw, "term": list(design.fixed_terms)})}  # fmt: skip
    start = 0
    for block in integrated_blocks(design):
        sl = slice(start, start + block.size)
        part = lam[:, :, sl, sl]
        sd = np.sqrt(np.einsum("cdik,cdik->cdi", part, part))  # row norms of diag(sd) L
        effect = f"{block.name}__effect"
        terms = list(block.terms)
        post[f"sd_{block.name}"] = xr.DataArray(sd, dims=("chain", "draw", effect),
                                                coords={**chain_draw, effect: terms})  # fmt: skip
        if block.correlated:
            chol = part / sd[..., None]
            bis = f"{effect}_bis"
            post[f"L_{block.name}"] = xr.DataArray(chol, dims=("chain", "draw", f"L_{block.name}_dim_0",
                                                               f"L_{block.name}_dim_1"), coords=chain_draw)  # fmt: skip
            post[f"cor_{block.name}"] = xr.DataArray(
                np.einsum("cdik,cdjk->cdij", chol, chol), dims=("chain", "draw", effect, bis),
                coords={**chain_draw, effect: terms, bis: terms},
            )
        start += block.size
    post["sigma"] = xr.DataArray(raw["sigma"].transpose("chain", "draw").values, dims=("chain", "draw"),
                                 coords=chain_draw)  # fmt: skip
    attrs = {"sampling_time": elapsed, "tuning_steps": tune, "log_density": "hierbayes.marginal_numba"}
    posterior = xr.Dataset(post, attrs=attrs)
    tree["posterior"] = xr.DataTree(posterior)
    return tree
