"""Benchmarks: hierbayes against its peers, side by side in one process and one machine state.

    .venv/bin/python benchmarks/run.py london            # London: 4 samplers, 4 chains x 1000 x 1000
    .venv/bin/python benchmarks/run.py simulated         # 200k rows / 2,000 groups, q = 2 and 3
    .venv/bin/python benchmarks/run.py simulated-2m      # 2M rows / 20,000 groups, q = 2 and 3
    .venv/bin/python benchmarks/run.py memory-5m         # 5M rows / 50,000 groups, q = 2: peak memory
    .venv/bin/python benchmarks/run.py crossed-maximal   # (cond | subject) + (cond | item), 60 x 40, vs lme4
    .venv/bin/python benchmarks/run.py crossed           # 73k rows, 3,000 subjects x 1,100 items, vs lme4
    .venv/bin/python benchmarks/run.py nested            # 100k pupils in 4,000 classes in 500 schools, vs lme4
    .venv/bin/python benchmarks/run.py time-to-answer    # fresh process import -> fit -> summary
    .venv/bin/python benchmarks/run.py glmm              # Bernoulli 20k rows / 200 groups, and cbpp
    .venv/bin/python benchmarks/run.py laplace-bias      # method="laplace" against the exact posterior

Needs the ``bench`` extra (bambi): ``bash scripts/setup.sh bench``. Prints a Markdown table:
wall time split into compile (everything before the first draw: building, compiling, and
drawing the group effects afterwards for the marginal path) and sampling (nutpie's own
clock), min bulk ESS over the fixed effects, SDs, correlations and sigma, ESS per second of
sampling, divergences, max R-hat, and gradient evaluations per effective draw.
"""

from __future__ import annotations

import sys
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import hierbayes as hb  # noqa: E402
from simulate import (  # noqa: E402
    simulate, simulate_bernoulli, simulate_crossed, simulate_crossed_maximal, simulate_nested,
)  # fmt: skip

DRAWS = dict(draws=1000, tune=1000, chains=4)


def summarise(label, idata, wall, group_dims):
    """One row: times, min ESS over the population parameters (no per-group variable)."""
    post = idata.posterior
    names = [v for v in post.data_vars if not set(post[v].dims) & set(group_dims) and not v.endswith("_offset")
             and not v.startswith(("z_", "L_", "beta", "Intercept_c", "chol"))]  # fmt: skip
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        ess = az.ess(idata, var_names=names, method="bulk")
        rhat = az.rhat(idata, var_names=names)
    min_ess = float(np.nanmin([np.nanmin(np.asarray(ess[v].values, float)) for v in names]))
    max_rhat = float(np.nanmax([np.nanmax(np.asarray(rhat[v].values, float)) for v in names]))
    stats = idata.sample_stats if "sample_stats" in idata.children else {"diverging": np.zeros(1)}  # Gibbs: none
    sampling = float(post.attrs.get("sampling_time", np.nan))
    steps = "n_steps" if "n_steps" in stats else "tree_size" if "tree_size" in stats else None
    grads = float(stats[steps].sum()) if steps else np.nan
    print(f"{label}: wall {wall:.1f} s, sampling {sampling:.1f} s, min ESS {min_ess:.0f}", flush=True)
    return {"model": label, "wall_s": wall, "compile_s": wall - sampling, "sampling_s": sampling,
            "min_ess_bulk": min_ess, "ess_per_s": min_ess / sampling, "divergences": int(stats["diverging"].sum()),
            "max_rhat": max_rhat, "grad_evals_per_ess": grads / min_ess, "parameters": ", ".join(names)}  # fmt: skip


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def hierbayes_fit(formula, data, method, seed, **kwargs):
    fit, wall = timed(lambda: hb.fit(formula, data, method=method, random_seed=seed, progressbar=False, **DRAWS,
                                     **kwargs))  # fmt: skip
    return fit.idata, wall


def bambi_fit(formula, data, seed, family="gaussian"):
    import bambi as bmb

    def run():
        model = bmb.Model(formula, data, family=family)
        return model.fit(inference_method="nutpie", random_seed=seed, progressbar=False, **DRAWS)

    return timed(run)


def handwritten_fit(data, seed, y="normexam", x="standLRT", group="school"):
    """The non-centred PyMC model a user would write by hand: LKJCholeskyCov, nutpie."""

    def run():
        codes, levels = pd.factorize(data[group])
        xv, yv = data[x].to_numpy(), data[y].to_numpy()
        with pm.Model(coords={group: levels, "effect": ["(Intercept)", x]}):
            b0 = pm.Normal("Intercept", 0, 2.5)
            b1 = pm.Normal(x, 0, 2.5)
            chol, corr, sds = pm.LKJCholeskyCov("chol", n=2, eta=2.0, sd_dist=pm.HalfStudentT.dist(3, 1.0),
                                                compute_corr=True)  # fmt: skip
            pm.Deterministic("sd", sds)
            pm.Deterministic("cor", corr[0, 1])
            z = pm.Normal("z", 0, 1, dims=(group, "effect"))
            r = pt.dot(z, chol.T)
            sigma = pm.HalfStudentT("sigma", 3, 1.0)
            pm.Normal("y", b0 + b1 * xv + r[codes, 0] + r[codes, 1] * xv, sigma, observed=yv)
            return pm.sample(nuts_sampler="nutpie", random_seed=seed, progressbar=False,
                             compute_convergence_checks=False, **DRAWS)  # fmt: skip

    return timed(run)


def london(seed=1):
    data = hb.datasets.load("london_exam")
    formula = "normexam ~ standLRT + (standLRT | school)"
    rows = []
    idata, wall = hierbayes_fit(formula, data, "auto", seed)
    rows.append(summarise("hierbayes auto (marginal)", idata, wall, ["school"]))
    idata, wall = hierbayes_fit(formula, data, "full", seed)
    rows.append(summarise("hierbayes full (non-centred)", idata, wall, ["school"]))
    idata, wall = bambi_fit("normexam ~ standLRT + (standLRT | school)", data, seed)
    rows.append(summarise("bambi + nutpie (uncorrelated)", idata, wall, ["school__factor_dim", "school"]))
    idata, wall = handwritten_fit(data, seed)
    rows.append(summarise("hand-written PyMC LKJ + nutpie", idata, wall, ["school"]))
    # a refit of the same structure in the same process (compiled functions warm)
    idata, wall = hierbayes_fit(formula, data, "auto", seed + 1)
    rows.append(summarise("hierbayes auto, refit", idata, wall, ["school"]))
    return rows


def simulated(n_rows, n_groups, qs, seed=1):
    rows = []
    for q in qs:
        data, formula = simulate(n_rows, n_groups, q, seed)
        idata, wall = hierbayes_fit(formula, data, "auto", seed)
        rows.append(summarise(f"hierbayes auto, {n_rows:,} rows / {n_groups:,} groups, q={q}", idata, wall, ["g"]))
    return rows


def crossed_maximal(seed=1):
    """The maximal crossed model of psycholinguistics, 60 subjects x 40 items (2,400 rows):
    hierbayes's default (subjects integrated out, items sampled) and every effect sampled,
    against lme4's REML fit."""
    data, formula = simulate_crossed_maximal(seed=seed)
    rows = []
    for method in ("auto", "full"):
        idata, wall = hierbayes_fit(formula, data, method, seed)
        rows.append(summarise(f"hierbayes {method}, maximal crossed 2,400 rows", idata, wall, ["subject", "item"]))
    rows.append({"model": "lme4 lmer (REML point estimate)", "wall_s": lme4_time(data, LME4["crossed-maximal"])})
    return rows


def crossed(seed=1, methods=("auto", "marginal")):
    """``auto`` samples this design by Gibbs (``hierbayes.methods.gibbs``); ``marginal`` by NUTS with
    the subjects integrated out and the items sampled (``method="full"``: every effect by NUTS,
    add it by hand: minutes)."""
    data, formula = simulate_crossed(seed=seed)
    rows = []
    for method in methods:
        idata, wall = hierbayes_fit(formula, data, method, seed)
        how = "Gibbs" if idata.posterior.attrs.get("log_density") == "hierbayes.methods.gibbs" else "NUTS"
        rows.append(summarise(f"hierbayes {method} ({how}), crossed 73k rows, 3,000 x 1,100", idata, wall,
                              ["subject", "item"]))  # fmt: skip
    rows.append({"model": "lme4 lmer (ML point estimate)", "wall_s": lme4_time(data, LME4["crossed"])})
    return rows


FRESH = {
    "hierbayes": (
        "import hierbayes as hb\n"
        "fit = hb.fit('normexam ~ standLRT + (standLRT | school)', hb.datasets.load('london_exam'),"
        " random_seed={seed}, progressbar=False)\n"
        "print(fit.summary()[:0])"
    ),
    "bambi": (
        "import bambi as bmb, arviz as az, hierbayes as hb\n"
        "m = bmb.Model('normexam ~ standLRT + (standLRT | school)', hb.datasets.load('london_exam'))\n"
        "idata = m.fit(inference_method='nutpie', random_seed={seed}, progressbar=False)\n"
        "print(az.summary(idata).iloc[:0])"
    ),
}


def time_to_answer(repeats=3):
    """Wall time of a fresh Python process that imports, fits London (4 x 1000 x 1000) and
    prints the summary, for hierbayes and for bambi; then a refit in one process."""
    import subprocess

    rows = []
    for name, code in FRESH.items():
        for k in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code.format(seed=k + 1)], check=True, capture_output=True)
            wall = time.perf_counter() - start
            print(f"{name} fresh process {k + 1}: {wall:.1f} s", flush=True)
            rows.append({"model": f"{name}: fresh process, import -> fit -> summary", "run": k + 1, "wall_s": wall})
    data = hb.datasets.load("london_exam")
    for k in range(repeats):
        start = time.perf_counter()
        hb.fit("normexam ~ standLRT + (standLRT | school)", data, random_seed=k + 1, progressbar=False).summary()
        rows.append({"model": "hierbayes: fit -> summary in a running process", "run": k + 1,
                     "wall_s": time.perf_counter() - start})  # fmt: skip
    return rows


def nested(seed=1):
    """Both nested factors integrated out: nutpie on the packed model (default) and PyMC's own
    NUTS on the same model (the same kernels through an Op); then a slope on the classes too
    (both still integrated out: ``marginal.nested_slopes``)."""
    data, formula = simulate_nested(seed=seed)
    rows = []
    idata, wall = hierbayes_fit(formula, data, "auto", seed)
    rows.append(summarise("hierbayes auto (schools and classes integrated out)", idata, wall, ["school", "school:class"]))
    fit, wall = timed(lambda: hb.fit(formula, data, random_seed=seed, progressbar=False, sampler="pymc", **DRAWS))
    rows.append(summarise("hierbayes, sampler='pymc' (the same model)", fit.idata, wall, ["school", "school:class"]))
    rows.append({"model": "lme4 lmer (ML point estimate)", "wall_s": lme4_time(data, LME4["nested"])})
    slopes = formula.replace("(1 | school:class)", "(x | school:class)")  # several effects a class
    idata, wall = hierbayes_fit(slopes, data, "auto", seed)
    rows.append(summarise("(x | school:class): hierbayes auto (schools and classes integrated out)", idata, wall,
                          ["school", "school:class"]))  # fmt: skip
    rows.append({"model": "(x | school:class): lme4 lmer (ML point estimate)",
                 "wall_s": lme4_time(data, LME4["nested"].replace("(1 | school:class)", "(x | school:class)"))})
    return rows


def handwritten_glmm(data, seed, y="y", x="x", group="g", trials=None):
    """The logistic model a user would write by hand in PyMC: non-centred, LKJCholeskyCov for
    an intercept and slope (or an intercept alone when ``x`` is None), nutpie."""

    def run():
        codes, levels = pd.factorize(data[group])
        yv = data[y].to_numpy()
        q = 1 if x is None else 2
        with pm.Model(coords={group: levels, "effect": ["(Intercept)", x][:q]}):
            if x is None:  # cbpp: period as a factor
                X = pd.get_dummies(data["period"], drop_first=True, dtype=float).to_numpy()
                b0 = pm.Normal("Intercept", 0, 2.5)
                b = pm.Normal("b", 0, 2.5, shape=X.shape[1])
                eta = b0 + pt.dot(X, b)
                sd = pm.HalfStudentT("sd", 3, 1.0)
                z = pm.Normal("z", 0, 1, dims=group)
                eta = eta + (z * sd)[codes]
            else:
                xv = data[x].to_numpy()
                b0, b1 = pm.Normal("Intercept", 0, 2.5), pm.Normal(x, 0, 2.5)
                chol, corr, sds = pm.LKJCholeskyCov("chol", n=2, eta=2.0, sd_dist=pm.HalfStudentT.dist(3, 1.0),
                                                    compute_corr=True)  # fmt: skip
                pm.Deterministic("sd", sds)
                pm.Deterministic("cor", corr[0, 1])
                r = pt.dot(pm.Normal("z", 0, 1, dims=(group, "effect")), chol.T)
                eta = b0 + b1 * xv + r[codes, 0] + r[codes, 1] * xv
            if trials is None:
                pm.Bernoulli("y", logit_p=eta, observed=yv)
            else:
                pm.Binomial("y", n=data[trials].to_numpy(), logit_p=eta, observed=yv)
            return pm.sample(nuts_sampler="nutpie", random_seed=seed, progressbar=False,
                             compute_convergence_checks=False, **DRAWS)  # fmt: skip

    return timed(run)


LME4 = {
    "bernoulli": "glmer(y ~ x + (x | g), data = d, family = binomial)",
    "cbpp": "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = d, family = binomial)",
    "crossed-maximal": "lmer(rt ~ cond + (cond | subject) + (cond | item), data = d)",
    "crossed": "lmer(y ~ x + (1 | subject) + (1 | item), data = d, REML = FALSE)",
    "nested": "lmer(y ~ x + (x | school) + (1 | school:class), data = d, REML = FALSE)",
}


def lme4_time(data, call, repeats=3):
    """Seconds of an lme4 fit (``call``: lmer, or glmer with its default Laplace, nAGQ = 1) on
    ``data`` (text columns and g, herd, period as factors), the median of ``repeats`` fits in
    one R process (the data read once); None without Rscript and lme4."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/d.csv"
        data.to_csv(path, index=False)
        script = (f"suppressMessages(library(lme4)); d <- read.csv('{path}'); "
                  "for (v in names(d)) if (is.character(d[[v]]) || v %in% c('g', 'herd', 'period')) d[[v]] <- factor(d[[v]]); "
                  f"t <- replicate({repeats}, system.time(m <- {call})[['elapsed']]); cat(median(t))")  # fmt: skip
        done = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    return float(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def glmm(seed=1):
    """A Bernoulli random intercept and slope (20,000 rows, 200 groups) and cbpp's binomial
    random intercept: hierbayes exact (every effect sampled, no compile step) and Laplace,
    bambi (uncorrelated, as bambi must), a hand-written PyMC model, and glmer's time."""
    rows = []
    data, formula = simulate_bernoulli(seed=seed)
    for method in ("full", "laplace"):
        idata, wall = hierbayes_fit(formula, data, method, seed, family="bernoulli")
        rows.append(summarise(f"bernoulli 20k/200: hierbayes {method}", idata, wall, ["g"]))
    idata, wall = bambi_fit(formula, data, seed, family="bernoulli")
    rows.append(summarise("bernoulli 20k/200: bambi + nutpie (uncorrelated)", idata, wall, ["g", "g__factor_dim"]))
    idata, wall = handwritten_glmm(data, seed)
    rows.append(summarise("bernoulli 20k/200: hand-written PyMC + nutpie", idata, wall, ["g"]))
    rows.append({"model": "bernoulli 20k/200: lme4 glmer (Laplace point estimate)", "wall_s": lme4_time(data, LME4["bernoulli"])})
    cbpp = hb.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    for method in ("full", "laplace"):
        idata, wall = hierbayes_fit(formula, cbpp, method, seed)
        rows.append(summarise(f"cbpp: hierbayes {method}", idata, wall, ["herd"]))
    idata, wall = bambi_fit("p(incidence, size) ~ period + (1 | herd)", cbpp, seed, family="binomial")
    rows.append(summarise("cbpp: bambi + nutpie", idata, wall, ["herd", "herd__factor_dim"]))
    idata, wall = handwritten_glmm(cbpp.assign(g=cbpp["herd"]), seed, y="incidence", x=None, trials="size")
    rows.append(summarise("cbpp: hand-written PyMC + nutpie", idata, wall, ["g"]))
    rows.append({"model": "cbpp: lme4 glmer (Laplace point estimate)", "wall_s": lme4_time(cbpp, LME4["cbpp"])})
    return rows


def laplace_bias(seed=1):
    """The Laplace posterior against the exact one (every effect sampled) on cbpp, binary data
    in small (5 rows) and large (100 rows) groups, and small Poisson counts: per parameter, the
    difference of the posterior means in exact posterior SDs, and the ratio of the SDs."""
    rng = np.random.default_rng(seed)
    cases = [("cbpp (56 rows, 15 herds)", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
              hb.datasets.load("cbpp"), None)]  # fmt: skip
    for label, J, n, family, sd in (("bernoulli, 100 groups of 5", 100, 5, "bernoulli", 1.0),
                                    ("bernoulli, 50 groups of 100", 50, 100, "bernoulli", 1.0),
                                    ("poisson, 100 groups of 5, mean count 1", 100, 5, "poisson", 0.7)):  # fmt: skip
        g = np.repeat(np.arange(J), n)
        x = rng.normal(size=J * n)
        eta = (-0.5 if family == "bernoulli" else -0.2) + 0.5 * x + sd * rng.normal(size=J)[g] + 0.3 * rng.normal(size=J)[g] * x
        y = rng.binomial(1, 1 / (1 + np.exp(-eta))) if family == "bernoulli" else rng.poisson(np.exp(eta))
        cases.append((label, "y ~ x + (x | g)", pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]}), family))
    rows = []
    for label, formula, data, family in cases:
        fits = {m: hb.fit(formula, data, family=family, method=m, random_seed=seed, progressbar=False, draws=2000)
                for m in ("full", "laplace")}  # fmt: skip
        tables = {m: pd.concat([f.fixef()[["mean", "sd"]].rename(index=lambda t: f"b[{t}]"),
                                f.varcorr().assign(name=lambda v: np.where(v.var2 == "", "sd[" + v.var1 + "]",
                                                                           "cor[" + v.var1 + "," + v.var2 + "]"))
                                .set_index("name")[["mean", "sd"]]]) for m, f in fits.items()}  # fmt: skip
        exact, approx = tables["full"], tables["laplace"]
        for name in exact.index:
            rows.append({"data": label, "parameter": name, "exact_mean": exact.loc[name, "mean"],
                         "laplace_mean": approx.loc[name, "mean"],
                         "shift_in_sds": (approx.loc[name, "mean"] - exact.loc[name, "mean"]) / exact.loc[name, "sd"],
                         "sd_ratio": approx.loc[name, "sd"] / exact.loc[name, "sd"]})  # fmt: skip
        print(f"{label}: done", flush=True)
    return rows


def main(which):
    if which == "time-to-answer":
        table = pd.DataFrame(time_to_answer())
        print(table.groupby("model", sort=False)["wall_s"].describe()[["count", "min", "50%", "max"]].to_string())
        return
    if which == "london":
        rows = london()
    elif which == "simulated":
        rows = simulated(200_000, 2_000, (2, 3))
    elif which == "simulated-2m":
        rows = simulated(2_000_000, 20_000, (2, 3))
    elif which == "memory-5m":
        rows = simulated(5_000_000, 50_000, (2,))
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        print(f"peak resident memory of this process: {peak:.2f} GiB (target: within 8 GB)")
    elif which == "crossed-maximal":
        rows = crossed_maximal()
    elif which == "crossed":
        rows = crossed()
    elif which == "nested":
        rows = nested()
    elif which == "glmm":
        rows = glmm()
    elif which == "laplace-bias":
        table = pd.DataFrame(laplace_bias())
        print(table.to_markdown(index=False, floatfmt=".3g") if _has_tabulate() else table.to_string(index=False))
        return
    else:
        raise SystemExit(f"unknown benchmark {which!r}: london, simulated, simulated-2m, memory-5m, crossed-maximal, crossed, "
                         "nested, glmm, laplace-bias or time-to-answer")  # fmt: skip
    table = pd.DataFrame(rows)
    if which == "london":
        base = table.set_index("model")["ess_per_s"]
        table["ess_per_s_vs_bambi"] = table["ess_per_s"] / base["bambi + nutpie (uncorrelated)"]
        table["ess_per_s_vs_handwritten"] = table["ess_per_s"] / base["hand-written PyMC LKJ + nutpie"]
    if which == "glmm":  # ratios within each data set
        data_set = table["model"].str.split(":").str[0]

        def peer(name, column):
            rows = table[table["model"].str.contains(name)]
            return data_set.map(dict(zip(data_set[rows.index], rows[column])))

        table["ess_per_s_vs_bambi"] = table["ess_per_s"] / peer("bambi", "ess_per_s")
        table["ess_per_s_vs_handwritten"] = table["ess_per_s"] / peer("hand-written", "ess_per_s")
        table["wall_vs_glmer"] = table["wall_s"] / peer("glmer", "wall_s").astype(float)
    if which in ("crossed-maximal", "crossed", "nested"):
        key = table["model"].str.extract(r"^(\(.*?\)): ", expand=False).fillna("")  # "(x | ...): " rows: their own lme4
        is_lme4 = table["model"].str.contains("lme4")
        lme4 = dict(zip(key[is_lme4], table.loc[is_lme4, "wall_s"].astype(float)))
        table["wall_vs_lme4"] = table["wall_s"] / key.map(lme4).astype(float)
    print(table.drop(columns="parameters").to_markdown(index=False, floatfmt=".3g")
          if _has_tabulate() else table.drop(columns="parameters").to_string(index=False))
    print("\nparameters in min ESS:")
    for _, r in table.dropna(subset=["parameters"]).iterrows():
        print(f"  {r['model']}: {r['parameters']}")


def _has_tabulate():
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "london")
