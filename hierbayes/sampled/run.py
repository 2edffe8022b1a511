"""nutpie on the sampled model (``density``): no code generation, so no compile step once
numba's disk cache holds the kernels.

``run_sampled``: (Design, SampledModel, settings) -> the ArviZ DataTree, whose posterior holds
``b``, ``sd_<block>``, ``L_<block>`` and ``cor_<block>`` (correlated blocks), ``r_<block>``
(dims: the group, ``<block>__effect``; not for the Laplace model, whose effects are drawn
afterwards) and the family's own parameters, with the same names and dims as the PyMC model's.
"""

from __future__ import annotations

import xarray as xr

from .. import names
from ..marginal.run import block_posterior
from ..packed import run_packed
from ..marginal.laplace import draw_laplace
from .crossed import draw_integrated
from .density import SampledModel, pack_sampled

__all__ = ["run_sampled", "warm_up"]


def run_sampled(design, packed: SampledModel, *, draws, tune, chains, seed, target_accept, nuts: dict,
                progressbar=False):  # fmt: skip
    """NUTS by nutpie on the sampled model (see the module docstring)."""
    p, q = packed.p, packed.q
    shapes = {"b": (p,), "Lambda": (q, q), **{name: () for name in packed.theta_names}}
    for block in packed.sampled_blocks:
        shapes[names.effects(block)] = (len(design.factors[block.group].levels), block.size)
    tree, raw, chain_draw, elapsed = run_packed(packed, shapes, draws=draws, tune=tune, chains=chains, seed=seed,
                                                target_accept=target_accept, nuts=nuts, progressbar=progressbar)  # fmt: skip

    def values(name):
        return raw[name].transpose("chain", "draw", ...).values

    post = {names.FIXED: xr.DataArray(values("b"), dims=("chain", "draw", names.TERM),
                                      coords={**chain_draw, names.TERM: list(design.fixed_terms)})}  # fmt: skip
    post.update(block_posterior(values("Lambda"), packed.blocks, chain_draw))
    for block in packed.sampled_blocks:
        group, effect = block.group, names.effect_dim(block)
        post[names.effects(block)] = xr.DataArray(
            values(names.effects(block)), dims=("chain", "draw", group, effect),
            coords={**chain_draw, group: list(design.factors[group].levels), effect: list(block.terms)},
        )
    for name in packed.theta_names:
        post[name] = xr.DataArray(values(name), dims=("chain", "draw"), coords=chain_draw)
    attrs = {"sampling_time": elapsed, "tuning_steps": tune,
             "log_density": "hierbayes.marginal.laplace" if packed.laplace else "hierbayes.sampled"}
    tree["posterior"] = xr.DataTree(xr.Dataset(post, attrs=attrs))
    return tree


def warm_up() -> None:
    """Compile the sampled, Laplace and crossed kernels here, with the draws after sampling, or
    load them from numba's disk cache (``scripts/setup.sh`` runs this once after installing)."""
    import numpy as np
    import pandas as pd

    from ..design import make_design
    from ..priors import make_priors

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.integers(0, 2, 12), "x": rng.normal(size=12), "g": list("abc") * 4})
    design = make_design("y ~ x + (x | g)", data, family="bernoulli")
    for laplace in (False, True):
        model = pack_sampled(design, make_priors(design), {"g": "noncentered"}, laplace=laplace)
        model.logp(model.initial_point(0))
        values = model.natural(model.start)
    draw_laplace(values["b"][None], values["Lambda"][None], np.zeros((1, 1)), model.buffer, np.zeros((1, 3, 2)),
                 np.empty((1, 3, 2)), 1)  # fmt: skip
    data["y"], data["h"] = rng.normal(size=12), list("ab") * 6  # crossed: g integrated out, h sampled
    design = make_design("y ~ x + (1 | g) + (1 | h)", data)
    model = pack_sampled(design, make_priors(design), {}, integrated=design.blocks[:1])
    values = model.natural(model.start)
    draw_integrated(model.buffer, values["b"][None], values["Lambda"][None, :1, :1], np.ones(1), values["r"][None],
                    np.zeros((1, 3, 1)), np.empty((1, 3, 1)), np.empty((1, 3)))  # fmt: skip
