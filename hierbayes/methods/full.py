"""``method="full"``: NUTS by nutpie on the model with every group effect sampled, any family
(``sampled.density``: the rows packed for numba, no per-model compile step)."""

from __future__ import annotations

from ..core.parameters import priors_packable
from ..sampled.density import pack_sampled
from .base import Method, NutsOptions
from .integrated import UNPACKABLE
from .nutpie import sample_packed

__all__ = ["Full"]


class Full(Method):
    name, sampler, options_type = "full", "nutpie", NutsOptions

    def applies(self, design, priors) -> str:
        return "" if priors_packable(priors) else UNPACKABLE

    def pack(self, design, priors, parameterization):
        return pack_sampled(design, priors, parameterization)

    def run(self, model, settings, options: NutsOptions):
        return sample_packed(model.design, model.packed, settings, options, "hierbayes.sampled")
