"""How sampled group effects are parameterised, from how well the data inform each group.

Non-centred sampling suits groups that the data say little about; when every group is well
informed (many rows per group against a large between-group SD) the centred form
r_j ~ Normal(0, sd) mixes far better (Betancourt & Girolami 2013). ``parameterization="auto"``
picks centred for one-term blocks whose typical group information ratio n_j tau^2 / sigma^2,
estimated by moments from least-squares residuals, exceeds 1; correlated blocks stay
non-centred unless the packed sampled model runs them. Users can force either, for all blocks
or by block name. The same ratio tells ``methods.choice`` when Gibbs sampling mixes well.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PARAMETERIZATIONS", "choose_parameterization", "information_ratio", "well_informed"]

PARAMETERIZATIONS = ("auto", "centered", "noncentered")


def choose_parameterization(design, parameterization: str | dict = "auto", blocks=None,
                            correlated_centred: bool = False) -> dict[str, str]:  # fmt: skip
    """``centered`` or ``noncentered`` for every block, or for ``blocks`` (those sampled), see
    the module docstring. ``correlated_centred``: the model can centre a correlated block too
    (the packed sampled model can; the PyMC model cannot)."""
    block_names = [b.name for b in design.blocks]
    if isinstance(parameterization, dict):
        unknown = set(parameterization) - set(block_names)
        if unknown:
            raise ValueError(f"parameterization given for unknown block(s) {sorted(unknown)}; blocks: {block_names}")
        wanted = {n: parameterization.get(n, "auto") for n in block_names}
    else:
        wanted = dict.fromkeys(block_names, parameterization)
    chosen = {}
    working = None  # residuals and weights of the fixed part, computed once if any block needs them
    for block in design.blocks if blocks is None else blocks:
        how = wanted[block.name]
        if how not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, not {how!r}")
        if how == "centered" and block.correlated and not correlated_centred:
            raise ValueError(f"block {block.name!r} is correlated; only its non-centred form is built")
        if how == "auto":
            well_informed = False
            if block.size == 1 or correlated_centred:
                if working is None:
                    working = _working_residuals(design)
                well_informed = min(information_ratio(design, block, working, k) for k in range(block.size)) > 1.0
            how = "centered" if well_informed else "noncentered"
        chosen[block.name] = how
    return chosen


def well_informed(design, above: float) -> bool:
    """Whether every block's every term has an information ratio over ``above``."""
    working = _working_residuals(design)
    return all(information_ratio(design, b, working, k) > above for b in design.blocks for k in range(b.size))


def information_ratio(design, block, working: tuple | None = None, term: int = 0) -> float:
    """Median over groups of the information about a group's effect on the block's ``term``
    (its column), times that effect's variance tau^2, by moments: n_j tau^2 / sigma^2 for a
    Gaussian model, n_j w tau^2 for a GLMM (w: the information of one row on the link scale).
    A block is centred when every term's ratio exceeds 1.

    From working residuals e (weights w) of the fixed part, per group the weighted slope of e
    on z estimates b_j with variance tau^2 + 1 / sum(w z^2); tau^2 is their variance less the
    mean sampling variance (an overestimate of the noise when other effects are present,
    which leans to non-centred)."""
    e, w = _working_residuals(design) if working is None else working
    codes = design.factors[block.group].codes
    z = block.Z[:, term]
    szz = np.bincount(codes, weights=w * z * z)
    sze = np.bincount(codes, weights=w * z * e)
    ok = szz > 0
    if not ok.any():
        return 0.0
    b_hat = sze[ok] / szz[ok]
    tau2 = max(float(b_hat.var()) - float(np.mean(1 / szz[ok])), 0.0)
    return float(np.median(szz[ok]) * tau2)


def _working_residuals(design) -> tuple[np.ndarray, np.ndarray]:
    """(e, w): least-squares residuals of the fixed part and weight 1 / their variance for
    the identity link; otherwise the working residuals (y/n - mu0) / mu'(eta0) of the
    intercept-only fit and the weights n mu'(eta0)^2 / V(mu0) (V: the binomial's or the
    Poisson's variance function)."""
    family, y = design.family, design.y
    if family.link == "identity" and not family.discrete:  # Gaussian, Student-t
        X = design.X
        e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0] if X.shape[1] else y - y.mean()
        variance = float(e.var())
        return e, np.full(len(e), 1 / variance if variance > 0 else 0.0)
    eta0 = family.link_scale(y, design.trials)[0]
    mu0 = float(family.mean(eta0))
    slope = float(family.mean(eta0 + 1e-6) - family.mean(eta0 - 1e-6)) / 2e-6
    n = design.trials if design.trials is not None else np.ones(len(y))
    # the variance of one trial at mu0 (the Poisson's for a negative binomial, shape unknown)
    per_trial = max(float(family.variance(mu0, {p.name: np.inf for p in family.params}, 1.0)), 1e-12)
    return (y / n - mu0) / slope, n * slope**2 / per_trial
