"""The packed model's layout: one float64 buffer whose header says where everything lies.

The numba kernels (``marginal``, ``sampled``, ``core.rows``) read the model from this buffer, so
their compiled code is the same for every model and numba's disk cache serves it in a new
process. ``density.pack_model`` writes the buffer; this module is the only declaration of
its header. Header slot k holds a scalar (``H_*``) or the offset of a section (``OFF_*``).

Sections: the blocks (start, size, correlated, LKJ eta per block), the prior table (code and
three parameters per scalar parameter), the slope columns and their means, X'X and X'y; per
group of the factor with the most levels Z'Z, Z'X and Z'y; with two nested factors, per inner
group its outer group, n_c, Z'U, U'U, U'X and U'y (U: the outer factor's columns), per outer
group U'U, U'X and U'y, the inner groups listed by outer group (``OFF_BY_OUTER``, with each
outer group's first place in that list in ``OFF_OUTER_START``), and with one inner effect the
``H_NA`` distinct values of Z'Z (``OFF_A_VALUES``), how many inner groups have each, and which
one each inner group has (``OFF_A_INDEX``): class sizes repeat, so log m_c needs few logs.

The sampled model (``hierbayes.sampled``: group effects sampled, any family) shares the header's
first part (fixed effects, blocks, priors: what ``density.unpack`` reads) and adds its rows:
the slopes' sampling scales, y, trials, offset, X and the blocks' Z columns row by row, the
group code of each row in each block, and per block its number of groups, where its effects
lie in x and whether they are centred, and for each of Lambda's columns the fixed effect of
the same term (its column in X, or -1). ``H_NTHETA`` counts the family's own parameters
(sigma, nu, shape), last among the small parameters. The Laplace model (``H_LAPLACE`` = 1,
``laplace``) is the sampled model without its effects in x, its rows sorted by group, and
``OFF_STARTS`` the first row of each group (and n). With crossed factors of a Gaussian model,
``H_NINT`` > 0 leading blocks (those of the factor with the most levels) are integrated out
exactly and only the other blocks' effects are in x; the rows are sorted by that factor's
groups and ``OFF_STARTS`` marks them, as for the Laplace model; ``OFF_ZTZ`` and ``OFF_ZTY`` hold
each of its groups' Z'Z and Z'(y - offset), ``H_YTY`` (y - offset)'(y - offset), and with
W = [X | the sampled blocks' columns] (one column per sampled effect, in x's order), W'(y -
offset) (``OFF_WTY``) and, as sparse rows (each row's first entry in ``*_PTR``, then (column,
value) pairs), W'W (``OFF_WTW``) and each integrated group's Z'W (``OFF_ZTW``, a row per effect;
whole, m values a row and no pairs, when ``H_ZTW_FULL`` = 1: over half its entries nonzero).
``H_X0`` is c, the response's mean (on the link scale; 0 without an intercept): the statistics
and cross-products of the integrated-out likelihoods are of y - c and the kernels take c off
the intercept (``kernels.centred``). ``H_PARTIAL`` = 1 when some sampled block's intercepts
are partially centred (``crossed``); then
``OFF_PARTIAL`` holds a code per block: 0 (its first term is not the intercept), 1 (it is), 2
(it is, and its effects are in x as a_j = r_j + w (x_0 - ``H_X0``)).

numba's disk cache keys each kernel on its own module's source file, not on this module's nor
on the kernels it calls from other modules: ``methods.warm.forget_stale_kernels`` (run by
``scripts/setup.sh`` and the tests) clears the package's cached kernels when any kernel module
changed. Nothing is deleted at import time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HEADER", "PRIOR_CODES", "assemble"]

PRIOR_CODES = {
    "Normal": 0, "StudentT": 1, "Cauchy": 2, "Laplace": 3, "HalfNormal": 4, "HalfStudentT": 5,
    "HalfCauchy": 6, "Exponential": 7, "Gamma": 8, "InverseGamma": 9,
}  # fmt: skip

(
    H_LEN, H_NDIM, H_P, H_J, H_Q, H_NBLOCKS, H_HASINT, H_INTCOL, H_N, H_YTY, H_NEXP, H_NESTED, H_Q1, H_NOUTER,
    OFF_BLOCKS, OFF_PRIORS, OFF_SLOPES, OFF_MEANS, OFF_XTX, OFF_XTY, OFF_ZTZ, OFF_ZTX, OFF_ZTY,
    OFF_OUTER_OF, OFF_N_C, OFF_ZTU, OFF_UTU, OFF_UTX, OFF_UTY,
    H_NTHETA, H_ROWS, H_FAMILY, H_LINK, H_NSMALL, H_LAPLACE,
    OFF_SCALES, OFF_Y, OFF_TRIALS, OFF_OFFSET, OFF_X, OFF_ZROWS, OFF_CODES, OFF_GROUPS, OFF_STARTS, OFF_TERM_COLS,
    H_NINT, OFF_UTU_S, OFF_UTX_S, OFF_UTY_S, OFF_BY_OUTER, OFF_OUTER_START, H_NA, OFF_A_VALUES, OFF_A_COUNTS,
    OFF_A_INDEX, OFF_WTY, OFF_WTW_PTR, OFF_WTW, OFF_ZTW_PTR, OFF_ZTW, H_PARTIAL, OFF_PARTIAL, H_X0, H_ZTW_FULL,
    HEADER,
) = range(65)  # fmt: skip

# the sections in buffer order, by header slot
SECTIONS = (OFF_BLOCKS, OFF_PRIORS, OFF_SLOPES, OFF_MEANS, OFF_XTX, OFF_XTY, OFF_ZTZ, OFF_ZTX, OFF_ZTY,
            OFF_OUTER_OF, OFF_N_C, OFF_ZTU, OFF_UTU, OFF_UTX, OFF_UTY, OFF_UTU_S, OFF_UTX_S, OFF_UTY_S, OFF_BY_OUTER,
            OFF_OUTER_START, OFF_A_VALUES, OFF_A_COUNTS, OFF_A_INDEX)  # fmt: skip
SAMPLED_SECTIONS = (OFF_BLOCKS, OFF_PRIORS, OFF_SLOPES, OFF_MEANS, OFF_SCALES, OFF_Y, OFF_TRIALS, OFF_OFFSET, OFF_X,
                    OFF_ZROWS, OFF_CODES, OFF_GROUPS, OFF_STARTS, OFF_TERM_COLS, OFF_ZTZ, OFF_ZTY, OFF_WTY,
                    OFF_WTW_PTR, OFF_WTW, OFF_ZTW_PTR, OFF_ZTW, OFF_PARTIAL)  # fmt: skip


def assemble(header, sections: dict, order) -> np.ndarray:
    """The read-only buffer: ``header`` (filled in here with each section's offset and the
    length), then the sections in ``order`` (a missing one is empty), flattened to float64."""
    parts, offset = [header], HEADER
    for slot in order:
        part = np.asarray(sections.get(slot, ()), dtype=float).ravel()
        header[slot] = offset
        offset += len(part)
        parts.append(part)
    header[H_LEN] = offset
    buffer = np.ascontiguousarray(np.concatenate(parts))
    buffer.flags.writeable = False
    return buffer
