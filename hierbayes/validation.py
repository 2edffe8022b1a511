"""Simulation-based calibration (SBC) of ``hb.fit`` (Talts et al. 2018; Modrák et al. 2023).

For each simulation: draw the parameters from the priors that the fit is given explicitly
(so the fit's prior is the simulation's prior), simulate a data set on a fixed design (a
Gaussian response, or a Bernoulli or Poisson one on the logit or log scale), fit it,
thin the posterior draws to ``L`` roughly independent ones and record the rank of the true
value among them (0..L) for every scalar parameter. If the fit is calibrated, the ranks are
uniform and central intervals cover the truth at their nominal rate.

    python -m hierbayes.validation sbc --model ri --n-sims 200 --out validation/results/
    python -m hierbayes.validation summarize --out validation/results/ --model ri

Writes under ``<out>/<model>/``: ``ranks.csv`` (one row per simulation and parameter, appended
as the run goes), ``summary.csv`` (per parameter: uniformity p-values, coverage of the central
50% and 90% intervals with binomial SEs), ``ecdf.png`` (rank ECDF differences) and
``command.txt``. Seeds of every simulation and fit come from one master seed.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import names
from .api import fit as hb_fit
from .families import get_family
from .sampling import SamplingError, SamplingWarning

__all__ = [
    "MODEL_CLASSES", "ModelClass", "SimBlock", "Layout", "simulate", "rank_of", "thin", "pit_from_ranks",
    "coverage_flags", "binned_chisquare", "extract_draws", "run_one", "run_sbc", "summarize", "plot_ranks_ecdf", "main",
]  # fmt: skip

PRIORS = {"Intercept": "Normal(0, 1)", "b": "Normal(0, 1)", "sd": "HalfNormal(1)", "sigma": "HalfNormal(1)"}
LKJ_ETA = 2.0
RANK_COLUMNS = [
    "sim", "parameter", "truth", "rank", "n_rank_draws", "pit", "post_mean", "post_sd", "in50", "in90",
    "divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "n_warnings", "fit_seconds", "method",
]  # fmt: skip


@dataclass(frozen=True)
class SimBlock:
    """A group-level block as hb names it: ``sd_<name>`` (coord ``<name>__effect``), ``cor_<name>``."""

    name: str
    terms: tuple[str, ...]
    correlated: bool = False


@dataclass(frozen=True)
class Layout:
    """The fixed design: factor columns of the data frame and the group code of each row per block."""

    columns: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]

    @property
    def n_obs(self) -> int:
        return len(next(iter(self.codes.values())))


def _one_factor() -> Layout:
    sizes = np.array([2, 3, 3, 4, 5, 5, 6, 7, 8, 8, 9, 10, 11, 12, 14, 16])  # 16 groups, 123 rows
    codes = np.repeat(np.arange(len(sizes)), sizes)
    return Layout({"g": np.array([f"g{c:02d}" for c in codes])}, {"g": codes})


def _nested() -> Layout:
    # 6 schools (a) with 3 classes (h) each; class labels repeat across schools, so a/h is needed
    sizes = np.array([2, 4, 6, 3, 5, 9, 2, 7, 4, 8, 3, 5, 6, 2, 10, 4, 3, 7])  # 18 cells, 90 rows
    cell = np.repeat(np.arange(len(sizes)), sizes)
    a, h = cell // 3, cell % 3
    return Layout({"a": np.array([f"a{i}" for i in a]), "h": np.array([f"h{i}" for i in h])}, {"a": a, "a:h": cell})


def _crossed() -> Layout:
    rng = np.random.default_rng(20180101)  # the design is fixed; only x, effects and noise vary
    n, n_a, n_h = 120, 8, 10
    p_a = np.linspace(1, 3, n_a) / np.linspace(1, 3, n_a).sum()
    a = np.concatenate([np.arange(n_a), rng.choice(n_a, n - n_a, p=p_a)])
    h = np.concatenate([np.arange(n_h), rng.choice(n_h, n - n_h)])
    return Layout({"a": np.array([f"a{i}" for i in a]), "h": np.array([f"h{i}" for i in h])}, {"a": a, "h": h})


def _crossed_large() -> Layout:
    rng = np.random.default_rng(20261203)
    n, n_a, n_h = 480, 24, 20  # about 20 and 24 rows a group
    a = np.concatenate([np.arange(n_a), rng.choice(n_a, n - n_a)])
    h = np.concatenate([np.arange(n_h), rng.choice(n_h, n - n_h)])
    return Layout({"a": np.array([f"a{i}" for i in a]), "h": np.array([f"h{i}" for i in h])}, {"a": a, "h": h})


@dataclass(frozen=True)
class ModelClass:
    name: str
    formula: str
    blocks: tuple[SimBlock, ...]
    layout: Layout
    method: str = "auto"
    family: str = "gaussian"  # or "bernoulli" (logit link), "poisson" (log link)

    @property
    def priors(self) -> dict[str, str]:
        extra = {"cor": f"LKJ({LKJ_ETA:g})"} if any(b.correlated for b in self.blocks) else {}
        own = {} if names.SIGMA in get_family(self.family).param_names else {names.SIGMA: None}
        return {k: v for k, v in {**PRIORS, **extra}.items() if k not in own}

    def parameters(self) -> list[str]:
        labels = [f"{names.FIXED}[(Intercept)]", f"{names.FIXED}[x]"]
        for b in self.blocks:
            labels += [f"{names.sd(b.name)}[{t}]" for t in b.terms]
            if b.correlated:
                labels.append(f"{names.cor(b.name)}[{b.terms[0]},{b.terms[1]}]")
        return labels + [p for p in get_family(self.family).param_names if p == names.SIGMA]


_SLOPE = (SimBlock("g", ("(Intercept)", "x"), correlated=True),)
MODEL_CLASSES = {
    "ri": ModelClass("ri", "y ~ x + (1|g)", (SimBlock("g", ("(Intercept)",)),), _one_factor()),
    "rs": ModelClass("rs", "y ~ x + (x|g)", _SLOPE, _one_factor()),
    "rs_full": ModelClass("rs_full", "y ~ x + (x|g)", _SLOPE, _one_factor(), method="full"),
    "nested": ModelClass("nested", "y ~ x + (1|a/h)",
                         (SimBlock("a", ("(Intercept)",)), SimBlock("a:h", ("(Intercept)",))), _nested()),
    "nested_rs": ModelClass("nested_rs", "y ~ x + (x|a) + (1|a:h)",
                            (SimBlock("a", ("(Intercept)", "x"), correlated=True), SimBlock("a:h", ("(Intercept)",))),
                            _nested()),
    "nested_slopes": ModelClass("nested_slopes", "y ~ x + (x|a) + (x|a:h)",
                                (SimBlock("a", ("(Intercept)", "x"), correlated=True),
                                 SimBlock("a:h", ("(Intercept)", "x"), correlated=True)), _nested()),
    "crossed": ModelClass("crossed", "y ~ x + (1|a) + (1|h)",
                          (SimBlock("a", ("(Intercept)",)), SimBlock("h", ("(Intercept)",))), _crossed()),
    "crossed_gibbs": ModelClass("crossed_gibbs", "y ~ x + (1|a) + (1|h)",
                                (SimBlock("a", ("(Intercept)",)), SimBlock("h", ("(Intercept)",))), _crossed_large(),
                                method="gibbs"),
    "crossed_large": ModelClass("crossed_large", "y ~ x + (1|a) + (1|h)",
                                (SimBlock("a", ("(Intercept)",)), SimBlock("h", ("(Intercept)",))), _crossed_large()),
    "crossed_rs": ModelClass("crossed_rs", "y ~ x + (x|a) + (x|h)",
                             (SimBlock("a", ("(Intercept)", "x"), correlated=True),
                              SimBlock("h", ("(Intercept)", "x"), correlated=True)), _crossed()),
    "bernoulli_rs": ModelClass("bernoulli_rs", "y ~ x + (x|g)", _SLOPE, _one_factor(), family="bernoulli"),
    "poisson_rs": ModelClass("poisson_rs", "y ~ x + (x|g)", _SLOPE, _one_factor(), family="poisson"),
}  # fmt: skip


def simulate(mc: ModelClass, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """Parameters from the priors in ``mc.priors`` and one data set on the class's fixed design.

    The Intercept prior is on the intercept at the mean of x (as hb puts it); the reported
    ``(Intercept)`` is at x = 0, so its true value is ``Intercept_c - b_x * mean(x)``."""
    lay = mc.layout
    x = rng.normal(size=lay.n_obs)
    intercept_c, beta = rng.normal(0.0, 1.0, size=2)
    truth = {f"{names.FIXED}[(Intercept)]": intercept_c - beta * x.mean(), f"{names.FIXED}[x]": beta}
    mu = intercept_c + beta * (x - x.mean())
    for block in mc.blocks:
        k = len(block.terms)
        sd = np.abs(rng.normal(0.0, 1.0, size=k))
        chol = np.eye(k)
        if block.correlated:  # 2 x 2 LKJ(eta): (r + 1) / 2 ~ Beta(eta, eta)
            r = 2.0 * rng.beta(LKJ_ETA, LKJ_ETA) - 1.0
            chol = np.linalg.cholesky(np.array([[1.0, r], [r, 1.0]]))
            truth[f"{names.cor(block.name)}[{block.terms[0]},{block.terms[1]}]"] = r
        for t, s in zip(block.terms, sd):
            truth[f"{names.sd(block.name)}[{t}]"] = s
        codes = lay.codes[block.name]
        effects = (rng.normal(size=(codes.max() + 1, k)) @ chol.T) * sd
        Z = np.column_stack([np.ones_like(x) if t == "(Intercept)" else x for t in block.terms])
        mu = mu + np.sum(Z * effects[codes], axis=1)
    family = get_family(mc.family)  # mu is the linear predictor, on the link scale
    params = {}
    if names.SIGMA in family.param_names:
        params[names.SIGMA] = truth[names.SIGMA] = abs(rng.normal(0.0, 1.0))
    y = family.draw(family.mean(np.minimum(mu, 20.0) if family.link == "log" else mu), params, rng)
    df = pd.DataFrame({"y": y, "x": x, **lay.columns})
    return df, {p: float(truth[p]) for p in mc.parameters()}


def extract_draws(posterior, parameter: str) -> np.ndarray:
    """The (chain, draw) array of one scalar parameter named as in ``ModelClass.parameters``."""
    if parameter == names.SIGMA:
        return np.asarray(posterior[names.SIGMA].values)
    var, coord = parameter[:-1].split("[", 1)
    da = posterior[var]
    if var == names.FIXED:
        return np.asarray(da.sel({names.TERM: coord}).values)
    block = var.split("_", 1)[1]
    if var == names.sd(block):
        return np.asarray(da.sel({names.effect_dim(block): coord}).values)
    return np.asarray(da.values[..., 0, 1])  # cor_<block>: the off-diagonal element


def thin(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """``n_keep`` draws taken at a fixed spacing within each chain (chains * draws // n_keep).

    With bulk ESS above a tenth of the draws, draws ten apart are close to independent, which
    SBC's ranks need (autocorrelated draws make the rank distribution non-uniform)."""
    draws = np.atleast_2d(draws)
    n_chain, n_draw = draws.shape
    step = max(1, (n_chain * n_draw) // n_keep)
    kept = np.concatenate([draws[c, step - 1 :: step] for c in range(n_chain)])
    if len(kept) < n_keep:
        raise ValueError(f"{n_chain} x {n_draw} draws cannot give {n_keep} draws {step} apart")
    return kept[:n_keep]


def rank_of(truth: float, draws: np.ndarray) -> int:
    """Number of draws below the true value: 0..len(draws), uniform when calibrated."""
    return int(np.sum(np.asarray(draws).ravel() < truth))


def pit_from_ranks(ranks, n_rank_draws, rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT ``(rank + U) / (L + 1)``: exactly Uniform(0, 1) when the ranks are uniform
    on 0..L, so continuous-PIT uniformity tests apply."""
    ranks = np.asarray(ranks, dtype=float)
    return (ranks + rng.uniform(size=ranks.shape)) / (np.asarray(n_rank_draws, dtype=float) + 1.0)


def coverage_flags(truth: float, draws: np.ndarray) -> tuple[bool, bool]:
    """Whether the central 50% and 90% posterior intervals (quantiles of all draws) hold the truth."""
    q = np.quantile(np.asarray(draws).ravel(), [0.05, 0.25, 0.75, 0.95])
    return bool(q[1] <= truth <= q[2]), bool(q[0] <= truth <= q[3])


def run_one(mc: ModelClass, seed: np.random.SeedSequence, *, draws: int, tune: int, chains: int,
            n_rank_draws: int) -> list[dict]:  # fmt: skip
    """Simulate, fit and rank one data set; one row per parameter (no rows if the fit failed)."""
    sim_seed, fit_seed = seed.spawn(2)
    df, truth = simulate(mc, np.random.default_rng(sim_seed))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        fit = hb_fit(mc.formula, df, family=mc.family, priors=mc.priors, draws=draws, tune=tune, chains=chains,
                     random_seed=int(fit_seed.generate_state(1)[0]), progressbar=False, method=mc.method)  # fmt: skip
    seconds = time.perf_counter() - start
    n_warn = sum(issubclass(w.category, SamplingWarning) for w in caught)
    diag = fit.diagnostics
    rows = []
    for p, value in truth.items():
        all_draws = extract_draws(fit.posterior, p)
        in50, in90 = coverage_flags(value, all_draws)
        rows.append({
            "parameter": p, "truth": value, "rank": rank_of(value, thin(all_draws, n_rank_draws)),
            "n_rank_draws": n_rank_draws, "pit": float(np.mean(all_draws < value)),
            "post_mean": float(all_draws.mean()), "post_sd": float(all_draws.std()), "in50": in50, "in90": in90,
            "divergences": diag.divergences, "max_rhat": diag.max_rhat, "min_ess_bulk": diag.min_ess_bulk,
            "min_ess_tail": diag.min_ess_tail, "n_warnings": n_warn, "fit_seconds": seconds, "method": fit.method,
        })  # fmt: skip
    return rows


def run_sbc(model: str, n_sims: int, out: str | Path, *, draws: int = 500, tune: int = 500, chains: int = 2,
            n_rank_draws: int = 99, seed: int = 2018, first: int = 0, log=print) -> pd.DataFrame:  # fmt: skip
    """Run simulations ``first`` .. ``n_sims - 1`` of a model class; writes ranks.csv as it goes
    (appending to it when ``first`` > 0: a run continued), then the summary.

    Simulation i uses ``SeedSequence(seed).spawn(n_sims)[i]``, so a longer run with the same seed
    repeats the shorter run's first simulations exactly. A fit that raises ``hb.SamplingError``
    is logged in failures.csv and left out (report how many)."""
    mc = MODEL_CLASSES[model]
    folder = Path(out) / model
    folder.mkdir(parents=True, exist_ok=True)
    ranks_path = folder / "ranks.csv"
    failures = []
    columns = RANK_COLUMNS
    if first == 0:
        ranks_path.unlink(missing_ok=True)
        (folder / "failures.csv").unlink(missing_ok=True)
    else:
        if ranks_path.exists():  # a run begun before a column was added goes on in its own columns
            columns = list(pd.read_csv(ranks_path, nrows=0).columns)
        done = set(pd.read_csv(ranks_path)["sim"]) if ranks_path.exists() else set()
        if done != set(range(first)):
            raise ValueError(f"--first {first}: {ranks_path} should hold simulations 0..{first - 1}")
        if (folder / "failures.csv").exists():
            failures = pd.read_csv(folder / "failures.csv").to_dict("records")
    start = time.perf_counter()
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n_sims)):
        if i < first:
            continue
        try:
            rows = run_one(mc, child, draws=draws, tune=tune, chains=chains, n_rank_draws=n_rank_draws)
        except SamplingError as err:
            failures.append({"sim": i, "error": str(err)[:300]})
            pd.DataFrame(failures).to_csv(folder / "failures.csv", index=False)
            log(f"[{model}] sim {i}: fit failed: {err}")
            continue
        frame = pd.DataFrame([{"sim": i, **r} for r in rows], columns=columns)
        frame.to_csv(ranks_path, mode="a", header=not ranks_path.exists(), index=False, float_format="%.6g")
        if (i + 1) % 10 == 0 or i + 1 == n_sims:
            log(f"[{model}] {i + 1}/{n_sims} simulations, {time.perf_counter() - start:.0f} s")
    return summarize(folder, seed=seed)


def binned_chisquare(ranks: np.ndarray, n_rank_draws: int) -> tuple[float, int]:
    """Chi-square p-value of the ranks (0..L) in equal bins of L + 1 values: as many bins as
    divide L + 1, up to 20 and at most one per 10 simulations (Talts et al.'s rank histogram)."""
    n_values = int(n_rank_draws) + 1
    cap = min(20, max(2, len(ranks) // 10))
    n_bins = max([d for d in range(2, cap + 1) if n_values % d == 0] or [1])
    if n_bins < 2:
        return float("nan"), 1
    counts = np.bincount(np.asarray(ranks, dtype=int) // (n_values // n_bins), minlength=n_bins)
    return float(stats.chisquare(counts).pvalue), n_bins


def summarize(folder: str | Path, *, seed: int = 2018, alpha: float = 0.01) -> pd.DataFrame:
    """summary.csv and ecdf.png from a class's ranks.csv.

    Per parameter: ``p_pot_c`` (arviz-stats ``uniformity_test``, method "pot_c", on randomised
    PIT values from the ranks; the jitter is seeded, so reruns agree), ``p_chisq`` (chi-square
    on the binned ranks, ``binned_chisquare``), ``reject`` (either p-value below ``alpha`` /
    number of parameters: Bonferroni over parameters), and the
    coverage of the central 50% and 90% intervals with the binomial SE at the nominal rate and
    ``cov_ok`` (both within 3 SEs)."""
    from arviz_stats.base import array_stats

    folder = Path(folder)
    ranks = pd.read_csv(folder / "ranks.csv")
    params = list(dict.fromkeys(ranks["parameter"]))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    rows, pits = [], {}
    for p in params:
        sub = ranks[ranks["parameter"] == p]
        n = len(sub)
        pit = pit_from_ranks(sub["rank"].to_numpy(), sub["n_rank_draws"].to_numpy(), rng)
        p_pot = float(np.asarray(array_stats.uniformity_test(pit, method="pot_c")[0]))
        pits[p] = pit
        p_chi, n_bins = binned_chisquare(sub["rank"].to_numpy(), int(sub["n_rank_draws"].iloc[0]))
        row = {"parameter": p, "n_sims": n, "p_pot_c": p_pot, "p_chisq": p_chi, "chisq_bins": n_bins}
        for level in (50, 90):
            cov = float(sub[f"in{level}"].mean())
            se = float(np.sqrt(level / 100 * (1 - level / 100) / n))
            row |= {f"cov{level}": cov, f"se{level}": se, f"z{level}": (cov - level / 100) / se}
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["reject"] = np.minimum(summary["p_pot_c"], summary["p_chisq"].fillna(1.0)) < alpha / len(params)
    summary["cov_ok"] = (summary["z50"].abs() <= 3) & (summary["z90"].abs() <= 3)
    summary["mean_fit_seconds"] = ranks.groupby("sim")["fit_seconds"].first().mean()
    summary["sims_with_warnings"] = int((ranks.groupby("sim")["n_warnings"].first() > 0).sum())
    summary["max_divergences"] = int(ranks["divergences"].max())
    summary.to_csv(folder / "summary.csv", index=False, float_format="%.4g")
    plot_ranks_ecdf(pits, folder / "ecdf.png", title=folder.name)
    return summary


def plot_ranks_ecdf(pits: dict[str, np.ndarray], path: str | Path, *, title: str = "") -> None:
    """Rank ECDF-difference plot, one panel per parameter.

    ``pits``: randomised PIT values of each parameter's ranks (as ``summarize`` tests them).
    Drawn by arviz-plots' ``plot_ecdf_pit`` (method
    "pot_c": its p-value in each panel, points beyond the 99% pointwise limits marked); if that
    fails, matplotlib with 99% Kolmogorov-Smirnov simultaneous bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = list(pits)
    try:
        import xarray as xr
        from arviz_plots import plot_ecdf_pit

        n = min(len(v) for v in pits.values())
        safe = {p: p.replace("[", "(").replace("]", ")") for p in pits}  # brackets read as selections
        ds = xr.Dataset({safe[p]: (("chain", "draw"), v[None, :n]) for p, v in pits.items()})
        dt = xr.DataTree.from_dict({"prior_sbc": ds})
        plot_ecdf_pit(dt, method="pot_c", envelope_prob=0.99, backend="matplotlib",
                      sample_dims=["chain", "draw"], col_wrap=3)  # fmt: skip
        fig = plt.gcf()
        fig.set_size_inches(4 * min(3, len(params)), 2.8 * int(np.ceil(len(params) / 3)))
        fig.tight_layout()  # titles clear of the x-labels of the row above
        fig.savefig(str(path), dpi=80)
        plt.close("all")
        return
    except Exception as err:  # noqa: BLE001 - fall back to a plain plot below
        print(f"plot_ecdf_pit failed ({type(err).__name__}: {err}); drawing with matplotlib", file=sys.stderr)
    ncol = min(3, len(params))
    nrow = int(np.ceil(len(params) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False)
    grid = np.linspace(0, 1, 201)
    for ax, p in zip(axes.ravel(), params):
        v = np.sort(pits[p])
        n = len(v)
        band = 1.63 / np.sqrt(n)  # 99% Kolmogorov-Smirnov simultaneous band
        ax.fill_between(grid, -band, band, color="0.85")
        ax.step(grid, np.searchsorted(v, grid, side="right") / n - grid, where="post")
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_title(p, fontsize=8)
    for ax in axes.ravel()[len(params) :]:
        ax.remove()
    fig.suptitle(f"{title}: rank ECDF - uniform CDF")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hierbayes.validation", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sbc = sub.add_parser("sbc", help="run simulation-based calibration for one model class")
    sbc.add_argument("--model", required=True, choices=sorted(MODEL_CLASSES))
    sbc.add_argument("--n-sims", type=int, required=True)
    sbc.add_argument("--out", default="validation/results/")
    sbc.add_argument("--draws", type=int, default=500)
    sbc.add_argument("--tune", type=int, default=500)
    sbc.add_argument("--chains", type=int, default=2)
    sbc.add_argument("--n-rank-draws", type=int, default=99, help="thinned draws per fit that ranks are taken among")
    sbc.add_argument("--seed", type=int, default=2018, help="master seed of simulations and fits")
    sbc.add_argument("--first", type=int, default=0, help="continue a run: simulations before this one are in ranks.csv")
    summ = sub.add_parser("summarize", help="redo summary.csv and ecdf.png from an existing ranks.csv")
    summ.add_argument("--model", required=True, choices=sorted(MODEL_CLASSES))
    summ.add_argument("--out", default="validation/results/")
    summ.add_argument("--seed", type=int, default=2018)
    args = parser.parse_args(argv)
    folder = Path(args.out) / args.model
    if args.command == "sbc":
        folder.mkdir(parents=True, exist_ok=True)
        command = "python -m hierbayes.validation " + " ".join(sys.argv[1:] if argv is None else argv)
        with (folder / "command.txt").open("a" if args.first else "w") as f:
            f.write(command + "\n")
        summary = run_sbc(args.model, args.n_sims, args.out, draws=args.draws, tune=args.tune, chains=args.chains,
                          n_rank_draws=args.n_rank_draws, seed=args.seed, first=args.first)  # fmt: skip
    else:
        summary = summarize(folder, seed=args.seed)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
