"""The nutpie adapter: NUTS by nutpie on a packed model (``marginal.density``'s integrated-out
one, or ``sampled.density``'s with effects sampled, its Laplace and crossed forms too).

nutpie has no public constructor for a model given as compiled callbacks, so this module
builds the dataclass ``nutpie.compile_pymc.CompiledPyMCModel`` that nutpie's own PyMC path
builds, with C callbacks of the signatures nutpie calls (``LOGP_SIGNATURE``,
``EXPAND_SIGNATURE``). It is the only module that touches nutpie's internals: ``check_nutpie``
compares that class's fields with the ones filled here, so a nutpie release that changes them
fails with a message naming what changed, before any sampling.

The callbacks read the buffer nutpie hands back (``user_data``) and pick the density by its
header: ``H_ROWS`` > 0 marks the sampled model (and its Laplace form), which packs rows. No
code is generated per model, so numba's disk cache serves every later process.

``sample_packed``: (Design, packed model, Settings, NutsOptions) -> DataTree, the posterior
assembled by ``core.posterior``.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from .. import names
from ..core.layout import H_LEN, H_NDIM, H_NEXP, H_ROWS, HEADER
from ..core.posterior import posterior_tree, posterior_variables
from ..marginal import density as marginal
from ..sampled import density as sampled

__all__ = ["logp_cfunc", "expand_cfunc", "check_nutpie", "sample_packed", "LOGP_SIGNATURE", "EXPAND_SIGNATURE"]

# nutpie's callbacks: logp(dim, x, gradient out, logp out, user data) -> status and
# expand(dim, n expanded, x, values out, user data) -> status
LOGP_SIGNATURE = numba.types.int64(
    numba.types.uint64, numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip
EXPAND_SIGNATURE = numba.types.int64(
    numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double), numba.types.voidptr,
)  # fmt: skip


@numba.cfunc(LOGP_SIGNATURE, cache=True, error_model="numpy")
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


@numba.cfunc(EXPAND_SIGNATURE, cache=True, error_model="numpy")
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


# the fields of nutpie's CompiledPyMCModel that ``_compiled`` fills, and those it may leave at
# their defaults: any other field, or one of these gone, is a nutpie release this adapter does
# not know
FILLED = ("compiled_logp_func", "compiled_expand_func", "initial_point_func", "shared_data", "shared_var_keys",
          "user_data", "n_expanded", "shape_info", "logp_func", "expand_func", "_n_dim", "_shapes", "_coords",
          "dims", "reparameterized_names")  # fmt: skip
DEFAULTED = ("_transform_adapt_args",)


def check_nutpie(compiled_class=None) -> None:
    """Raise a RuntimeError naming the fields that differ when nutpie's ``CompiledPyMCModel``
    (or ``compiled_class``) no longer has the fields this adapter fills."""
    import dataclasses

    if compiled_class is None:
        from nutpie.compile_pymc import CompiledPyMCModel as compiled_class
    fields = {f.name: f for f in dataclasses.fields(compiled_class)}
    missing = [name for name in FILLED if name not in fields]
    new = [name for name, f in fields.items() if name not in FILLED and name not in DEFAULTED
           and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing or new:
        import nutpie

        raise RuntimeError(
            f"nutpie {getattr(nutpie, '__version__', '?')} changed the class hierbayes hands its compiled model in "
            f"(nutpie.compile_pymc.CompiledPyMCModel): "
            + "; ".join(filter(None, [f"fields gone: {', '.join(missing)}" if missing else "",
                                      f"new fields without defaults: {', '.join(new)}" if new else ""]))
            + ". Install the nutpie version the package was tested with (pip install 'nutpie<0.17'), or use "
            "sampler='pymc'."
        )  # fmt: skip


def _compiled(packed, shapes: dict):
    """nutpie's compiled-model object for ``packed``, whose expanded draws are the arrays
    ``shapes`` names, in order."""
    from nutpie.compile_pymc import CompiledPyMCModel

    check_nutpie(CompiledPyMCModel)
    slices, at = [], 0
    for shape in shapes.values():
        size = int(np.prod(shape))
        slices.append(slice(at, at + size))
        at += size
    return CompiledPyMCModel(
        compiled_logp_func=logp_cfunc, compiled_expand_func=expand_cfunc, initial_point_func=packed.initial_point,
        shared_data={}, shared_var_keys={}, user_data=packed.buffer, n_expanded=packed.n_expanded,
        shape_info=(list(shapes), slices, list(shapes.values())), logp_func=None, expand_func=None,
        _n_dim=packed.n_dim, _shapes=dict(shapes), _coords={}, dims={}, reparameterized_names=[],
    )  # fmt: skip


def sample_packed(design, packed, settings, options, log_density: str):
    """nutpie on ``packed`` (a ``PackedModel`` or ``SampledModel``): the DataTree whose
    posterior holds ``b``, the blocks' SDs and correlations, the family's own parameters and
    the sampled blocks' ``r_<block>``, named as the PyMC model's. The same seed gives the
    same draws."""
    import nutpie  # optional: the choice of method checks it is installed before coming here

    p, q = packed.p, packed.q
    shapes = {"b": (p,), "Lambda": (q, q), **{name: () for name in packed.theta_names}}
    for block in packed.sampled_blocks:
        shapes[names.effects(block)] = (len(design.factors[block.group].levels), block.size)
    compiled = _compiled(packed, shapes)
    seed = int(np.random.default_rng(settings.seed).spawn(settings.chains)[0].integers(2**30))  # as pm.sample does
    started = time.time()
    tree = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune, chains=settings.chains, seed=seed,
                         progress_bar=settings.progressbar, target_accept=options.target_accept, save_warmup=False,
                         **nutpie_settings(options.nuts, packed.n_dim))  # fmt: skip
    elapsed = time.time() - started
    raw = tree.posterior.dataset
    chain_draw = {"chain": raw["chain"].values, "draw": raw["draw"].values}

    def values(name):
        return raw[name].transpose("chain", "draw", ...).values

    post = posterior_variables(design, chain_draw, values("b"), values("Lambda"), packed.blocks,
                               [(block, values(names.effects(block))) for block in packed.sampled_blocks],
                               {name: values(name) for name in packed.theta_names})  # fmt: skip
    return posterior_tree(post, sampling_time=elapsed, tune=settings.tune, log_density=log_density, tree=tree)


# nutpie's low-rank mass matrix costs more per gradient as the dimension grows (London's full
# model, 135 parameters: 512 vs 75 us); above this many it is not worth it: plain diagonal
LOW_RANK_MAX = 200


def nutpie_settings(options: dict | None, n_parameters: int) -> dict:
    """nutpie settings: the low-rank mass matrix up to ``LOW_RANK_MAX`` sampled numbers. It
    adapts to the correlation of an intercept with a few well-measured group effects
    (Penicillin: R-hat 1.02 -> 1.004, bulk ESS 115 -> 966)."""
    options = dict(options or {})
    options.setdefault("adaptation", "low_rank" if n_parameters <= LOW_RANK_MAX else "diag")
    return options
