"""The packed model's layout: one float64 buffer whose header says where everything lies.

The numba kernels (``kernels``, ``nested``, ``density``) read the model from this buffer, so
their compiled code is the same for every model and numba's disk cache serves it in a new
process. ``density.pack_model`` writes the buffer; this module is the only declaration of
its header. Header slot k holds a scalar (``H_*``) or the offset of a section (``OFF_*``).

Sections: the blocks (start, size, correlated, LKJ eta per block), the prior table (code and
three parameters per scalar parameter), the slope columns and their means, X'X and X'y; per
group of the factor with the most levels Z'Z, Z'X and Z'y; with two nested factors, per inner
group its outer group, n_c, Z'U, U'U, U'X and U'y (U: the outer factor's columns).

The sampled model (``hierbayes.sampled``: group effects sampled, any family) shares the header's
first part (fixed effects, blocks, priors: what ``density.unpack`` reads) and adds its rows:
the slopes' sampling scales, y, trials, offset, X and the blocks' Z columns row by row, the
group code of each row in each block, and per block its number of groups, where its effects
lie in x and whether they are centred. ``H_NTHETA`` counts the family's own parameters
(sigma, nu, shape), last among the small parameters.
"""

from __future__ import annotations

__all__ = ["HEADER", "PRIOR_CODES"]

PRIOR_CODES = {
    "Normal": 0, "StudentT": 1, "Cauchy": 2, "Laplace": 3, "HalfNormal": 4, "HalfStudentT": 5,
    "HalfCauchy": 6, "Exponential": 7, "Gamma": 8, "InverseGamma": 9,
}  # fmt: skip

(
    H_LEN, H_NDIM, H_P, H_J, H_Q, H_NBLOCKS, H_HASINT, H_INTCOL, H_N, H_YTY, H_NEXP, H_NESTED, H_Q1, H_NOUTER,
    OFF_BLOCKS, OFF_PRIORS, OFF_SLOPES, OFF_MEANS, OFF_XTX, OFF_XTY, OFF_ZTZ, OFF_ZTX, OFF_ZTY,
    OFF_OUTER_OF, OFF_N_C, OFF_ZTU, OFF_UTU, OFF_UTX, OFF_UTY,
    H_NTHETA, H_ROWS, H_FAMILY, H_LINK, H_NSMALL,
    OFF_SCALES, OFF_Y, OFF_TRIALS, OFF_OFFSET, OFF_X, OFF_ZROWS, OFF_CODES, OFF_GROUPS,
    HEADER,
) = range(43)  # fmt: skip

# the sections in buffer order, by header slot
SECTIONS = (OFF_BLOCKS, OFF_PRIORS, OFF_SLOPES, OFF_MEANS, OFF_XTX, OFF_XTY, OFF_ZTZ, OFF_ZTX, OFF_ZTY,
            OFF_OUTER_OF, OFF_N_C, OFF_ZTU, OFF_UTU, OFF_UTX, OFF_UTY)  # fmt: skip
SAMPLED_SECTIONS = (OFF_BLOCKS, OFF_PRIORS, OFF_SLOPES, OFF_MEANS, OFF_SCALES, OFF_Y, OFF_TRIALS, OFF_OFFSET, OFF_X,
                    OFF_ZROWS, OFF_CODES, OFF_GROUPS)  # fmt: skip
