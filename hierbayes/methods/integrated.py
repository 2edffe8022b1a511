"""``method="marginal"``: NUTS by nutpie with the Gaussian group effects integrated out.

One grouping factor, or two nested ones: the packed integrated-out model
(``marginal.density``: NUTS samples b, the SDs, the correlations and sigma). Crossed factors:
the largest factor's effects integrated out and the others' sampled (``sampled.density`` with
``integrated``). Afterwards the integrated effects are drawn exactly from their conditional
posterior, and each group's marginal log-likelihood is kept (``marginal.draws``): LOO over
those terms leaves out a whole group.
"""

from __future__ import annotations

import xarray as xr

from .. import names
from ..core.parameters import priors_packable
from ..marginal.density import pack_model
from ..marginal.draws import complete
from ..marginal.stats import integrated_blocks, integrated_factors, marginal_applies, sampled_blocks
from ..sampled.density import pack_sampled
from .base import Method, NutsOptions
from .nutpie import sample_packed

__all__ = ["Integrated", "complete_integrated"]

UNPACKABLE = "a prior is not one the packed kernels evaluate (a vector parameter or another distribution)"


class Integrated(Method):
    name, sampler, options_type = "marginal", "nutpie", NutsOptions

    def applies(self, design, priors) -> str:
        why = marginal_applies(design)[1]
        return why or ("" if priors_packable(priors) else UNPACKABLE)

    def integrated(self, design) -> tuple[str, ...]:
        return integrated_factors(design)

    def pack(self, design, priors, parameterization):
        if not sampled_blocks(design):
            return pack_model(design, priors)
        return pack_sampled(design, priors, parameterization, integrated=tuple(integrated_blocks(design)))

    def run(self, model, settings, options: NutsOptions):
        density = "hierbayes.sampled" if sampled_blocks(model.design) else "hierbayes.marginal"
        return sample_packed(model.design, model.packed, settings, options, density)

    def complete(self, model, idata, seed):
        return complete_integrated(model, idata, seed)


def complete_integrated(model, idata, seed):
    """``idata`` with the integrated factors' exact effects (``r_<block>``) in its posterior
    and the per-group marginal log-likelihood as its ``log_likelihood``."""
    effects, loglik = complete(model.design, idata.posterior.dataset, model.packed, random_seed=seed)
    for name, values in effects.items():
        idata.posterior[name] = values
    # one term per group: LOO from it leaves out a whole group (see FitResult.loo)
    idata["log_likelihood"] = xr.Dataset({names.observed(model.design.response): loglik})
    return idata
