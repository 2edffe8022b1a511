"""``method="laplace"``: NUTS by nutpie with a GLMM's group effects of one grouping factor
integrated out by a Laplace approximation (``sampled.laplace``); afterwards each draw's
effects are drawn from the approximation of their conditional posterior (approximate, as the
likelihood was). Opt-in: the families and links of ``Family.laplace_links``."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import names
from ..core.parameters import priors_packable
from ..core.posterior import group_effects
from ..families import FAMILIES
from ..marginal.draws import lambda_draws
from ..sampled.density import pack_sampled
from ..sampled.laplace import draw_laplace
from .base import Method, NutsOptions
from .nutpie import sample_packed

__all__ = ["Laplace", "draw_laplace_effects"]


class Laplace(Method):
    name, sampler, options_type = "laplace", "nutpie", NutsOptions

    def applies(self, design, priors) -> str:
        family = design.family
        if family.link not in family.laplace_links:
            served = ", ".join(sorted(f"{f.name} ({link} link)" for f in FAMILIES.values() for link in f.laplace_links))
            return (f"it serves {served}, not the {family.label} family"
                    + ("; a Gaussian model's effects are integrated out exactly by the default method"
                       if family.integrates_exactly else ""))  # fmt: skip
        groups = sorted({b.group for b in design.blocks})
        if len(groups) != 1:
            return (f"it integrates out the effects of one grouping factor, and {design.spec.formula!r} has "
                    f"{len(groups)} ({', '.join(groups) or 'none'})")  # fmt: skip
        if not priors_packable(priors):
            return "it runs on hierbayes' own kernels, which evaluate scalar priors of the families in fit.prior_table()"
        return ""

    def integrated(self, design) -> tuple[str, ...]:
        return (design.blocks[0].group,)

    def pack(self, design, priors, parameterization):
        return pack_sampled(design, priors, parameterization, laplace=True)

    def run(self, model, settings, options: NutsOptions):
        return sample_packed(model.design, model.packed, settings, options, "hierbayes.sampled.laplace")

    def complete(self, model, idata, seed):
        for name, values in draw_laplace_effects(model.design, idata.posterior.dataset, model.packed, seed).items():
            idata.posterior[name] = values
        return idata


def draw_laplace_effects(design, posterior: xr.Dataset, packed, random_seed=None) -> dict[str, xr.DataArray]:
    """``method="laplace"``: each draw's group effects from the Laplace approximation of their
    conditional posterior, N(mode, A^{-1}) per group (``laplace.draw_laplace``): approximate,
    as the likelihood was; ``r_<block>`` as the full model's."""
    rng = np.random.default_rng(random_seed)
    factor = design.blocks[0].group
    J, q = design.factors[factor].n_levels, packed.q
    b = posterior[names.FIXED].transpose(*names.SAMPLE_DIMS, names.TERM).values
    shape = b.shape[:2]
    lam = lambda_draws(design, posterior, packed.blocks).reshape(-1, q, q)
    theta = np.stack([posterior[t].transpose(*names.SAMPLE_DIMS).values.reshape(-1) for t in packed.theta_names]
                     + [np.zeros(lam.shape[0])], axis=1)  # fmt: skip
    b = b.reshape(-1, b.shape[-1])
    effects = np.empty((len(b), J, q))
    draw_laplace(b, lam, theta, packed.buffer, rng.standard_normal((len(b), J, q)), effects, shape[0])
    effects = effects.reshape(*shape, J, q)
    chain_draw = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    out, start = {}, 0
    for block in packed.blocks:
        out[names.effects(block)] = group_effects(design, block, effects[..., start : start + block.size], chain_draw)
        start += block.size
    return out
