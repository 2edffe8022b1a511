"""The integrated-out likelihood inside a PyMC model.

One grouping factor, or two nested ones: ``IntegratedLoglik``, a PyTensor Op that evaluates
the numba kernels (``density.loglik_and_grad``) on the packed buffer, with its gradient from
the same kernels, so PyMC's own NUTS, nutpie and the exact draws afterwards all integrate
out the same factors with the same code.

Crossed factors: the factor with the most levels is integrated out and the others' effects
are sampled, so the residual r = y - X b - (their effects) changes row by row in the graph.
``add_crossed_likelihood`` writes the same Woodbury step as PyTensor arithmetic on
length-J vectors (``elementwise``): a gradient costs O(n), but the largest set of group
effects, and its funnel, leave the sampler.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from .density import PackedModel, loglik_and_grad
from .elementwise import cholesky, forward
from .stats import factor_Z, largest_factor, sufficient_stats

__all__ = ["IntegratedLoglik", "add_integrated_likelihood", "add_crossed_likelihood"]

POTENTIAL = "marginal_loglik"
# PyTensor's numba backend (nutpie, compile_logp) runs these Ops in object mode, which calls
# the compiled kernels: it says so in a warning that means nothing to a user
warnings.filterwarnings("ignore", message=r"Numba will use object mode to run _?IntegratedLoglik", category=UserWarning)


class IntegratedLoglik(Op):
    """log p(y | b, Lambda, sigma), the group effects integrated out; inputs b (p,),
    Lambda (q, q, lower triangular), sigma (scalar)."""

    __props__ = ("key",)

    def __init__(self, packed: PackedModel):
        self.buffer = packed.buffer
        self.key = hashlib.sha256(packed.buffer.tobytes()).hexdigest()  # same data, same Op
        self.last = {}  # the latest evaluation, shared with the gradient Op (PyMC asks both at one point)

    def make_node(self, b, lam, sigma):
        inputs = [pt.as_tensor_variable(v, dtype="float64") for v in (b, lam, sigma)]
        return Apply(self, inputs, [pt.dscalar()])

    def perform(self, node, inputs, outputs):
        value, _ = _evaluate(self.buffer, self.last, *inputs)
        outputs[0][0] = np.asarray(value)

    def pullback(self, inputs, outputs, cotangents):
        g_b, g_lam, g_sigma = _IntegratedLoglikGrad(self.buffer, self.key, self.last)(*inputs)
        (g,) = cotangents
        return [g * g_b, g * g_lam, g * g_sigma]


class _IntegratedLoglikGrad(Op):
    """The gradient of ``IntegratedLoglik`` in (b, Lambda, sigma)."""

    __props__ = ("key",)

    def __init__(self, buffer, key, last):
        self.buffer, self.key, self.last = buffer, key, last

    def make_node(self, b, lam, sigma):
        inputs = [pt.as_tensor_variable(v, dtype="float64") for v in (b, lam, sigma)]
        return Apply(self, inputs, [pt.dvector(), pt.dmatrix(), pt.dscalar()])

    def perform(self, node, inputs, outputs):
        _, (g_b, g_lam, g_sigma) = _evaluate(self.buffer, self.last, *inputs)
        outputs[0][0], outputs[1][0], outputs[2][0] = g_b, g_lam, np.asarray(g_sigma)


def _evaluate(buffer, last, b, lam, sigma):
    """(log-likelihood, its gradient) at (b, Lambda, sigma); the kernel gives both at once, so
    the value and the gradient Op at the same point share one evaluation through ``last``."""
    b = np.ascontiguousarray(b, dtype=float)
    lam = np.ascontiguousarray(lam, dtype=float)
    point = b.tobytes() + lam.tobytes() + np.float64(sigma).tobytes()
    if last.get("point") != point:
        g_b, g_lam = np.empty_like(b), np.empty_like(lam)
        value, g_sigma = loglik_and_grad(b, lam, float(sigma), buffer, g_b, g_lam)
        last.update(point=point, out=(value, (g_b, np.tril(g_lam), g_sigma)))
    value, (g_b, g_lam, g_sigma) = last["out"]
    return value, (g_b.copy(), g_lam.copy(), g_sigma)


def add_integrated_likelihood(packed: PackedModel, b, Lambda, sigma):
    """Add the integrated-out likelihood to the model in context (a Potential named
    ``marginal_loglik``). ``Lambda``: a q x q list of lists of scalars, ``None`` for
    structural zeros (a block-diagonal G leaves many)."""
    q = len(Lambda)
    lam = pt.zeros((q, q))
    for a in range(q):
        for c in range(a + 1):
            if Lambda[a][c] is not None:
                lam = pt.set_subtensor(lam[a, c], Lambda[a][c])
    return pm.Potential(POTENTIAL, IntegratedLoglik(packed)(b, lam, sigma))


def add_crossed_likelihood(design, Lambda, sigma, mu_rows):
    """Add the likelihood with the largest factor's effects integrated out to the model in
    context (a Potential), the other factors' effects sampled: ``mu_rows`` is X b plus their
    effects for every row. ``Lambda`` as for ``add_integrated_likelihood``. Every per-group
    quantity is a length-J vector: element-wise arithmetic, no batched linear algebra.

    With r_j = y_j - mu_j, Mt_j = I + Lambda' Z_j'Z_j Lambda / sigma^2 and
    u_j = Lambda' Z_j' r_j / sigma^2: log|V_j| = n_j log sigma^2 + log|Mt_j| and
    r_j'V_j^{-1} r_j = r_j'r_j / sigma^2 - u_j' Mt_j^{-1} u_j."""
    s = sufficient_stats(design)
    q = s.ZtZ.shape[1]
    sigma2 = sigma**2
    factor = design.factors[largest_factor(design)]
    r = design.y - mu_rows
    Z = factor_Z(design)
    Ztr = [pt.inc_subtensor(pt.zeros(factor.n_levels)[factor.codes], Z[:, k] * r) for k in range(q)]
    rtr = pt.sum(r**2)
    nonzero = [[k for k in range(q) if Lambda[k][a] is not None] for a in range(q)]  # rows of column a
    u = [sum(Ztr[k] * Lambda[k][a] for k in nonzero[a]) / sigma2 for a in range(q)]
    M = [[None] * q for _ in range(q)]
    for a in range(q):
        for c in range(a + 1):
            K = sum(Lambda[k][a] * Lambda[m][c] * s.ZtZ[:, k, m] for k in nonzero[a] for m in nonzero[c])
            M[a][c] = M[c][a] = float(a == c) + K / sigma2
    chol = cholesky(M)
    w = forward(chol, u)
    logdet = 2 * sum(pt.log(chol[a][a]) for a in range(q))
    # per group: -0.5 (n_j log 2 pi sigma^2 + log|Mt_j| - u'Mt^{-1}u); r'r / sigma^2 once in total
    per_group = -0.5 * (s.n_j * pt.log(2 * np.pi * sigma2) + logdet - sum(wa**2 for wa in w))
    return pm.Potential(POTENTIAL, pt.sum(per_group) - 0.5 * rtr / sigma2)
