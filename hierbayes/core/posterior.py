"""The posterior as every method returns it: the PyMC model's names and dims (``names``), so
that every table, plot and prediction reads any method's draws the same way.

- ``b``: (chain, draw, ``term``), the fixed effects on the data's scale;
- from the draws of Lambda = blockdiag(diag(sd) L) over the blocks: ``sd_<block>``
  (chain, draw, ``<block>__effect``), the row norms of diag(sd) L, and for a correlated block
  its Cholesky factor ``L_<block>`` and correlation matrix ``cor_<block>`` = L L';
- ``r_<block>``: (chain, draw, group, ``<block>__effect``), the group effects;
- the family's own parameters (``sigma``, ``nu``, ``shape``): (chain, draw).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import xarray as xr

from .. import names

__all__ = ["posterior_variables", "block_posterior", "group_effects", "posterior_tree"]


def posterior_variables(design, chain_draw: dict, b: np.ndarray, lam: np.ndarray, blocks, effects=(),
                        scalars: dict | None = None) -> dict[str, xr.DataArray]:  # fmt: skip
    """The variables of the module docstring from arrays of draws: ``b`` (chain, draw, p),
    ``lam`` (chain, draw, q, q) over ``blocks``, ``effects`` pairs (block, (chain, draw, J,
    size)) and ``scalars`` {name: (chain, draw)}."""
    post = {names.FIXED: xr.DataArray(b, dims=("chain", "draw", names.TERM),
                                      coords={**chain_draw, names.TERM: list(design.fixed_terms)})}  # fmt: skip
    post.update(block_posterior(lam, blocks, chain_draw))
    for block, values in effects:
        post[names.effects(block)] = group_effects(design, block, values, chain_draw)
    for name, values in (scalars or {}).items():
        post[name] = xr.DataArray(values, dims=("chain", "draw"), coords=chain_draw)
    return post


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


def group_effects(design, block, values: np.ndarray, chain_draw: dict) -> xr.DataArray:
    """``r_<block>`` from draws (chain, draw, groups, the block's size)."""
    group, effect = block.group, names.effect_dim(block)
    return xr.DataArray(values, dims=("chain", "draw", group, effect),
                        coords={**chain_draw, group: list(design.factors[group].levels), effect: list(block.terms)})  # fmt: skip


def posterior_tree(post: dict, *, sampling_time: float, tune: int, log_density: str, tree=None) -> xr.DataTree:
    """``post`` as the ``posterior`` group of ``tree`` (a new DataTree when None), with what
    made it: the seconds sampling, the tuning steps, the density sampled and when."""
    tree = xr.DataTree() if tree is None else tree
    attrs = {"sampling_time": sampling_time, "tuning_steps": tune, "log_density": log_density,
             "created_at": datetime.now(timezone.utc).isoformat()}  # fmt: skip
    tree["posterior"] = xr.DataTree(xr.Dataset(post, attrs=attrs))
    return tree
