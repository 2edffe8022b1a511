"""nutpie on a packed model (``hierbayes.marginal``'s integrated-out one, or
``hierbayes.sampled``'s with every effect sampled): the C callbacks nutpie calls, and the run.

The callbacks read the buffer nutpie hands back (``user_data``) and pick the density by its
header: ``H_ROWS`` > 0 marks the sampled model (and its Laplace form), which packs rows. No
code is generated per model, so numba's disk cache serves every later process.

``run_packed``: (callbacks' model, the expanded draws' shapes, settings) -> nutpie's DataTree.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from .marginal import density as marginal
from .marginal.layout import H_LEN, H_NDIM, H_NEXP, H_ROWS, HEADER
from .sampled import density as sampled

__all__ = ["logp_cfunc", "expand_cfunc", "run_packed"]

_LOGP_SIG = numba.types.int64(
    numba.types.uint64, numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip
_EXPAND_SIG = numba.types.int64(
    numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip


@numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")
def logp_cfunc(dim, x_, out_, logp_, data_):
    """nutpie's log density: 0, or 3 (a gradient not finite) or 4 (the density not finite),
    which nutpie treats as a rejected point; -1 for a buffer of another model."""
    head = numba.carray(data_, (HEADER,), np.float64)
    buf = numba.carray(data_, (int(head[H_LEN]),), np.float64)
    if dim != int(head[H_NDIM]):
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    if head[H_ROWS] > 0:
        value = sampled.logp_and_grad(x, buf, out)
    else:
        value = marginal.logp_and_grad(x, buf, out)
    logp[0] = value
    for i in range(dim):
        if not np.isfinite(out[i]):
            return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.cfunc(_EXPAND_SIG, cache=True, error_model="numpy")
def expand_cfunc(dim, n_expanded, x_, out_, data_):
    """nutpie's expansion of a draw into the values kept (see each density's ``expand``)."""
    head = numba.carray(data_, (HEADER,), np.float64)
    buf = numba.carray(data_, (int(head[H_LEN]),), np.float64)
    if dim != int(head[H_NDIM]) or n_expanded != int(head[H_NEXP]):
        return -1
    x, out = numba.carray(x_, (dim,)), numba.carray(out_, (n_expanded,))
    if head[H_ROWS] > 0:
        sampled.expand(x, buf, out)
    else:
        marginal.expand(x, buf, out)
    return 0


def run_packed(packed, shapes: dict, *, draws, tune, chains, seed, target_accept, nuts: dict, progressbar=False):
    """nutpie on ``packed`` (a ``PackedModel`` or ``SampledModel``), whose expanded draws are
    the arrays ``shapes`` names, in order: (DataTree, its posterior Dataset, the chain and
    draw coordinates, seconds sampling)."""
    import nutpie  # optional: hb.fit checks it is installed before coming here
    from nutpie.compile_pymc import CompiledPyMCModel

    slices, at = [], 0
    for shape in shapes.values():
        size = int(np.prod(shape))
        slices.append(slice(at, at + size))
        at += size
    compiled = CompiledPyMCModel(
        compiled_logp_func=logp_cfunc, compiled_expand_func=expand_cfunc, initial_point_func=packed.initial_point,
        shared_data={}, shared_var_keys={}, user_data=packed.buffer, n_expanded=packed.n_expanded,
        shape_info=(list(shapes), slices, list(shapes.values())), logp_func=None, expand_func=None,
        _n_dim=packed.n_dim, _shapes=dict(shapes), _coords={}, dims={}, reparameterized_names=[],
    )  # fmt: skip
    started = time.time()
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar,
                         target_accept=target_accept, save_warmup=False, **nuts)  # fmt: skip
    elapsed = time.time() - started
    raw = tree.posterior.dataset
    return tree, raw, {"chain": raw["chain"].values, "draw": raw["draw"].values}, elapsed
