"""nutpie on the packed model: no code generation, so no compile step once numba's disk cache
holds the kernels (``scripts/setup.sh`` fills it with ``warm_up``).

``run_nutpie``: (Design, PackedModel, settings) -> the ArviZ DataTree, whose posterior holds
``b``, ``sd_<block>``, ``L_<block>`` and ``cor_<block>`` (correlated blocks) and ``sigma``,
with the same names and dims as the PyMC model's.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import names
from ..packed import run_packed
from .density import PackedModel
from .kernels import draw_effects
from .nested_draws import draw_nested_effects

__all__ = ["run_nutpie", "block_posterior", "warm_up"]


def run_nutpie(design, packed: PackedModel, *, draws, tune, chains, seed, target_accept, nuts: dict, progressbar=False):
    """NUTS by nutpie on the packed model (see the module docstring)."""
    p, q = packed.p, packed.q
    shapes = {"b": (p,), "Lambda": (q, q), "sigma": ()}
    tree, raw, chain_draw, elapsed = run_packed(packed, shapes, draws=draws, tune=tune, chains=chains, seed=seed,
                                                target_accept=target_accept, nuts=nuts, progressbar=progressbar)  # fmt: skip
    post = {names.FIXED: xr.DataArray(raw["b"].transpose("chain", "draw", ...).values,
                                      dims=("chain", "draw", names.TERM),
                                      coords={**chain_draw, names.TERM: list(design.fixed_terms)})}  # fmt: skip
    post.update(block_posterior(raw["Lambda"].transpose("chain", "draw", ...).values, packed.blocks, chain_draw))
    post[names.SIGMA] = xr.DataArray(raw["sigma"].transpose("chain", "draw").values, dims=("chain", "draw"),
                                 coords=chain_draw)  # fmt: skip
    attrs = {"sampling_time": elapsed, "tuning_steps": tune, "log_density": "hierbayes.marginal"}
    tree["posterior"] = xr.DataTree(xr.Dataset(post, attrs=attrs))
    return tree


def block_posterior(lam: np.ndarray, blocks, chain_draw: dict) -> dict[str, xr.DataArray]:
    """``sd_<block>``, and ``L_<block>`` and ``cor_<block>`` for a correlated block, from the
    draws (chain, draw, q, q) of Lambda = blockdiag(diag(sd) L) over ``blocks``."""
    post, start = {}, 0
    for block in blocks:
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
    return post


def warm_up() -> None:
    """Compile everything here, or load it from numba's disk cache (``scripts/setup.sh`` runs
    this once after installing, so that the first fit does not wait for the compiler)."""
    import pandas as pd

    from ..design import make_design
    from ..priors import make_priors
    from .density import pack_model
    from .stats import nested_stats, sufficient_stats

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.normal(size=24), "x": rng.normal(size=24), "g": list("abc") * 8,
                         "h": list("abcdef") * 4})  # fmt: skip
    design = make_design("y ~ x + (x | g)", data)
    packed = pack_model(design, make_priors(design))
    packed.logp(packed.initial_point(0))  # called from Python before sampling: its own compile
    b, lam, sigma = packed.natural(packed.start)
    s = sufficient_stats(design)
    draw_effects(b[None], lam[None], np.array([sigma]), np.zeros((1, 3, 2)), packed.buffer, s.n_j, s.yty_j,
                 s.Xty_j, s.XtX_j.reshape(3, -1), np.empty((1, 3, 2)), np.empty((1, 3)))  # fmt: skip
    for formula, q1 in (("y ~ x + (x | g) + (1 | g:h)", 1), ("y ~ x + (x | g) + (x | g:h)", 2)):  # nested factors
        design = make_design(formula, data)
        packed = pack_model(design, make_priors(design))
        packed.logp(packed.initial_point(0))
        b, lam, sigma = packed.natural(packed.start)
        ns, q2 = nested_stats(design), packed.q - q1
        draw_nested_effects(b[None], lam[None], np.array([sigma]), np.zeros((1, 6, q1)), np.zeros((1, 3, q2)),
                            packed.buffer, ns.n_s, ns.yty_s, ns.Xty_s, ns.XtX_s.reshape(3, -1),
                            np.empty((1, 6, q1)), np.empty((1, 3, q2)), np.empty((1, 3)))  # fmt: skip
