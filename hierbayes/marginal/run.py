"""nutpie on the packed model: no code generation, so no compile step once numba's disk cache
holds the kernels (``scripts/setup.sh`` fills it with ``warm_up``).

``run_nutpie``: (Design, PackedModel, settings) -> the ArviZ DataTree, whose posterior holds
``b``, ``sd_<block>``, ``L_<block>`` and ``cor_<block>`` (correlated blocks) and ``sigma``,
with the same names and dims as the PyMC model's.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from .. import names
from .density import PackedModel, expand_cfunc, logp_cfunc
from .kernels import draw_effects

__all__ = ["run_nutpie", "warm_up"]


def run_nutpie(design, packed: PackedModel, *, draws, tune, chains, seed, target_accept, nuts: dict, progressbar=False):
    """NUTS by nutpie on the packed model (see the module docstring)."""
    import nutpie  # optional: hb.fit checks it is installed before coming here
    from nutpie.compile_pymc import CompiledPyMCModel

    p, q = packed.p, packed.q
    compiled = CompiledPyMCModel(
        compiled_logp_func=logp_cfunc, compiled_expand_func=expand_cfunc, initial_point_func=packed.initial_point,
        shared_data={}, shared_var_keys={}, user_data=packed.buffer, n_expanded=packed.n_expanded,
        shape_info=(["b", "Lambda", "sigma"], [slice(0, p), slice(p, p + q * q), slice(p + q * q, p + q * q + 1)],
                    [(p,), (q, q), ()]),
        logp_func=None, expand_func=None, _n_dim=packed.n_dim, _shapes={"b": (p,), "Lambda": (q, q), "sigma": ()},
        _coords={}, dims={}, reparameterized_names=[],
    )  # fmt: skip
    started = time.time()
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar,
                         target_accept=target_accept, save_warmup=False, **nuts)  # fmt: skip
    elapsed = time.time() - started
    raw = tree.posterior.dataset
    chain_draw = {"chain": raw["chain"].values, "draw": raw["draw"].values}
    lam = raw["Lambda"].transpose("chain", "draw", ...).values
    post = {names.FIXED: xr.DataArray(raw["b"].transpose("chain", "draw", ...).values,
                                      dims=("chain", "draw", names.TERM),
                                      coords={**chain_draw, names.TERM: list(design.fixed_terms)})}  # fmt: skip
    start = 0
    for block in packed.blocks:
        sl = slice(start, start + block.size)
        part = lam[:, :, sl, sl]
        sd = np.sqrt(np.einsum("cdik,cdik->cdi", part, part))  # row norms of diag(sd) L
        effect, bis = names.effect_dim(block), names.effect_dim_bis(block)
        terms = list(block.terms)
        post[names.sd(block)] = xr.DataArray(sd, dims=("chain", "draw", effect), coords={**chain_draw, effect: terms})
        if block.correlated:
            chol = part / sd[..., None]
            L = names.chol(block)
            post[L] = xr.DataArray(chol, dims=("chain", "draw", f"{L}_dim_0", f"{L}_dim_1"), coords=chain_draw)
            post[names.cor(block)] = xr.DataArray(
                np.einsum("cdik,cdjk->cdij", chol, chol), dims=("chain", "draw", effect, bis),
                coords={**chain_draw, effect: terms, bis: terms},
            )
        start += block.size
    post[names.SIGMA] = xr.DataArray(raw["sigma"].transpose("chain", "draw").values, dims=("chain", "draw"),
                                 coords=chain_draw)  # fmt: skip
    attrs = {"sampling_time": elapsed, "tuning_steps": tune, "log_density": "hierbayes.marginal"}
    posterior = xr.Dataset(post, attrs=attrs)
    tree["posterior"] = xr.DataTree(posterior)
    return tree


def warm_up() -> None:
    """Compile everything here, or load it from numba's disk cache (``scripts/setup.sh`` runs
    this once after installing, so that the first fit does not wait for the compiler)."""
    import pandas as pd

    from ..design import make_design
    from ..priors import make_priors
    from .density import pack_model
    from .stats import sufficient_stats

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.normal(size=12), "x": rng.normal(size=12), "g": list("abc") * 4})
    design = make_design("y ~ x + (x | g)", data)
    packed = pack_model(design, make_priors(design))
    b, lam, sigma = packed.natural(packed.start)
    s = sufficient_stats(design)
    draw_effects(b[None], lam[None], np.array([sigma]), np.zeros((1, 3, 2)), packed.buffer, s.n_j, s.yty_j,
                 s.Xty_j, s.XtX_j.reshape(3, -1), np.empty((1, 3, 2)), np.empty((1, 3)))  # fmt: skip
