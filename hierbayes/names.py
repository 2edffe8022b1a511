"""The names of the posterior's variables and dimensions, in one place (brms's naming).

- ``b`` (dim ``term``): every fixed effect on the data's scale, ``(Intercept)`` included;
  sampled as ``Intercept_c`` (the intercept at the predictors' means) and ``beta`` (slopes,
  dim ``beta_term``).
- ``sd_<block>`` (dim ``<block>__effect``): the group-level SDs of a block.
- ``cor_<block>`` (dims ``<block>__effect``, ``<block>__effect_bis``): its correlation
  matrix, with Cholesky factor ``L_<block>``.
- ``r_<block>`` (dims ``<group>``, ``<block>__effect``): the group deviations; ``z_<block>``
  their standard-normal form when sampled non-centred.
- ``sigma``: the residual SD of a Gaussian model.
- ``<name>_std``: what the PyMC model samples for ``Intercept_c``, ``beta`` and centred
  ``r_<block>``: the same variable with the response's scale divided out.

Every module that reads or writes the posterior asks this one for a name; ``block`` is a
``design.Block`` or its name.
"""

from __future__ import annotations

import re

__all__ = [
    "FIXED", "TERM", "INTERCEPT_C", "SLOPES", "SLOPE_TERM", "SIGMA", "SAMPLE_DIMS", "RESERVED",
    "sd", "cor", "chol", "effects", "std_normal", "standardized", "effect_dim", "effect_dim_bis", "observed",
]  # fmt: skip

FIXED = "b"
TERM = "term"
INTERCEPT_C = "Intercept_c"
SLOPES = "beta"
SLOPE_TERM = "beta_term"
SIGMA = "sigma"
SAMPLE_DIMS = ("chain", "draw")
# names the posterior already uses for variables or dimensions; a grouping factor cannot share one
RESERVED = (FIXED, SLOPES, INTERCEPT_C, SIGMA, TERM, SLOPE_TERM, *SAMPLE_DIMS)


def _name(block) -> str:
    return block if isinstance(block, str) else block.name


def sd(block) -> str:
    return f"sd_{_name(block)}"


def cor(block) -> str:
    return f"cor_{_name(block)}"


def chol(block) -> str:
    return f"L_{_name(block)}"


def effects(block) -> str:
    return f"r_{_name(block)}"


def std_normal(block) -> str:
    return f"z_{_name(block)}"


def standardized(name: str) -> str:
    """A variable sampled on the response's scale divided out (``Intercept_c_std``, ``beta_std``,
    centred ``r_<block>_std``), with ``name`` itself kept as a Deterministic."""
    return f"{name}_std"


def effect_dim(block) -> str:
    return f"{_name(block)}__effect"


def effect_dim_bis(block) -> str:
    return f"{_name(block)}__effect_bis"


def observed(response: str) -> str:
    """The observed variable's name: the response's, or ``y`` for an expression (``log(y)``)."""
    return response if re.fullmatch(r"[A-Za-z_]\w*", response) else "y"
