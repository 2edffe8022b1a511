"""Posterior draws -> table rows (mean, sd and an interval) and the blocks' Cholesky factors,
shared by every results table and the draws afterwards."""

from __future__ import annotations

import os

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from . import names
from .names import SAMPLE_DIMS

__all__ = ["SAMPLE_DIMS", "stats", "as_draws", "block_cholesky", "check_memory"]


def stats(da: xr.DataArray, prob: float, interval: str) -> pd.DataFrame:
    """mean, sd, lower, upper over the draws, one row per remaining coordinate.

    ``interval`` is ``"eti"`` (equal-tailed, as brms reports) or ``"hdi"`` (highest density).
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, not {prob!r}")
    if interval == "eti":
        bounds = azs.eti(da, prob=prob)
    elif interval == "hdi":
        bounds = azs.hdi(da, prob=prob)
    else:
        raise ValueError(f"interval must be 'eti' (equal-tailed) or 'hdi', not {interval!r}")
    table = xr.Dataset(
        {
            "mean": da.mean(SAMPLE_DIMS),
            "sd": da.std(SAMPLE_DIMS, ddof=1),
            "lower": bounds.sel(ci_bound="lower", drop=True),
            "upper": bounds.sel(ci_bound="upper", drop=True),
        }
    )
    if not table["mean"].dims:
        return pd.DataFrame({k: [float(v)] for k, v in table.items()})
    order = [d for d in da.dims if d not in SAMPLE_DIMS]  # the draws' own order, not the Dataset's
    return table.to_dataframe(dim_order=order)[["mean", "sd", "lower", "upper"]]


def as_draws(values: np.ndarray, like: xr.DataArray | xr.Dataset, dims: tuple[str, ...] = (), coords=None) -> xr.DataArray:
    """Wrap an array whose first axes are (chain, draw) as a DataArray with ``like``'s chains
    (``like``: any posterior variable, or the posterior)."""
    return xr.DataArray(
        values,
        dims=(*SAMPLE_DIMS, *dims),
        coords={"chain": like["chain"].values, "draw": like["draw"].values, **(coords or {})},
    )


def block_cholesky(posterior: xr.Dataset, blocks) -> np.ndarray:
    """Draws of Lambda = blockdiag(diag(sd) L) over ``blocks`` in their order, the Cholesky
    factor of their joint covariance G = Lambda Lambda': (chain, draw, q, q)."""
    q = sum(b.size for b in blocks)
    out = np.zeros((posterior.sizes["chain"], posterior.sizes["draw"], q, q))
    start = 0
    for block in blocks:
        sd = posterior[names.sd(block)].transpose(*SAMPLE_DIMS, ...).values
        sl = slice(start, start + block.size)
        if block.correlated:
            out[:, :, sl, sl] = sd[..., :, None] * posterior[names.chol(block)].transpose(*SAMPLE_DIMS, ...).values
        else:
            out[:, :, sl, sl] = sd[..., :, None] * np.eye(block.size)
        start += block.size
    return out


def check_memory(n_bytes: float, what: str, advice: str) -> None:
    """Refuse, with a MemoryError that says how much and what to do, to build arrays of
    ``n_bytes`` in all when the machine has less memory available, rather than let the
    operating system kill the process part-way. No check where the system does not say."""
    available = _available_memory()
    if available is not None and n_bytes > available:
        raise MemoryError(f"{what} needs about {n_bytes / 2**30:.1f} GiB and {available / 2**30:.1f} GiB is available: "
                          f"{advice}")  # fmt: skip


def _available_memory() -> int | None:
    """Bytes the system can give without swapping: Linux's MemAvailable (free memory plus
    what the page cache can hand back), else the free pages, else None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
