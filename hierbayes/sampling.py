"""Stage 5: Model -> Sampled: NUTS (nutpie or PyMC's own), the posterior completed, diagnosed.

``sample_model`` runs nutpie directly on the packed model (``hierbayes.marginal``: one
grouping factor or two nested ones integrated out; ``hierbayes.sampled``: every other model,
and crossed factors with the largest integrated out) when every prior is one the numba kernels
evaluate and no other sampler option is given; else NUTS on the PyMC model (nutpie compiles
it, or PyMC's own sampler runs it). Either way the same factors are integrated out (the model
decides), and the posterior is then completed: exact draws of the integrated factors'
effects and the per-group log-likelihood (``marginal.draws``). Divergences,
R-hat and ESS become warnings that say what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib.util
import inspect
import logging
import warnings
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import xarray as xr

from . import names
from .lazy import LazyModule
from .gibbs import run_gibbs
from .marginal.draws import complete, draw_laplace_effects
from .marginal.run import run_nutpie
from .model import Model
from .sampled.density import SampledModel
from .sampled.run import run_sampled

pm, pytensor = LazyModule("pymc"), LazyModule("pytensor")

__all__ = ["sample", "sample_model", "check_sampler_options", "Sampled", "Diagnostics", "diagnose", "SamplingWarning",
           "SamplingError", "available_sampler", "pymc_quiet"]  # fmt: skip

RHAT_MAX = 1.01
ESS_MIN = 400
# nutpie's low-rank mass matrix costs more per gradient as the dimension grows (London's full
# model, 135 parameters: 512 vs 75 us); above this many it is not worth it: plain diagonal
LOW_RANK_MAX = 200
GROUPS_CHECKED = 250  # groups a factor whose sampled effects get R-hat and ESS (see _diagnosed)


class SamplingWarning(UserWarning):
    """The sampler's output should not be trusted as it is."""


class SamplingError(RuntimeError):
    """The sampler stopped without a posterior."""


@contextlib.contextmanager
def sampler_errors(sampler: str):
    """Turn a sampler's internal failure into a ``SamplingError`` that says what to try.

    nutpie's Rust panics reach Python as ``pyo3_runtime.PanicException``, a BaseException that
    a user's ``except Exception`` would not catch; interrupts and exits pass through."""
    try:
        yield
    except (Exception, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SamplingError(
            f"the {sampler} sampler stopped with an internal error ({detail}). Try another random_seed, "
            "sampler='pymc', or priors on the scale of the data (fit.prior_table() shows the defaults); "
            "if it persists, please report it with the data and the call."
        ) from None


@dataclass(frozen=True)
class Diagnostics:
    """Convergence checks over the parameters that users read."""

    divergences: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    worst_rhat: str  # parameter with the largest R-hat
    worst_ess: str  # parameter with the smallest bulk ESS
    messages: tuple[str, ...]
    groups_checked: str = ""  # where sampled group effects were checked on some groups only

    @property
    def ok(self) -> bool:
        return not self.messages

    def line(self) -> str:
        return (
            f"{self.divergences} divergent transitions; max R-hat {self.max_rhat:.3f}; "
            f"min bulk ESS {self.min_ess_bulk:.0f}; min tail ESS {self.min_ess_tail:.0f}"
            + (f" ({self.groups_checked})" if self.groups_checked else "")
        )


@contextlib.contextmanager
def pymc_quiet():
    """PyMC logs what it samples at INFO ("NUTS[nutpie]: [...]", "Sampling: [...]") whatever the
    progress bar; a fit prints only the progress bar (when asked) and warnings."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def available_sampler(sampler: str = "auto") -> str:
    """``auto`` is nutpie when installed (compiled NUTS, fastest here), else PyMC's."""
    if sampler not in ("auto", "nutpie", "pymc"):
        raise ValueError(f"sampler must be 'auto', 'nutpie' or 'pymc', not {sampler!r}")
    if sampler == "auto":
        return "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    if sampler == "nutpie" and not importlib.util.find_spec("nutpie"):
        raise ImportError("sampler='nutpie' needs the nutpie package: pip install nutpie")
    return sampler


def check_sampler_options(options: dict, sampler: str) -> None:
    """Refuse, before sampling, an option that PyMC's ``sample`` (with PyMC's own sampler, also
    its NUTS) does not take, naming the nearest valid one: nutpie's ``seed`` is ``random_seed``
    here. Else a misspelt option reached PyMC only after the whole PyMC model was built."""
    unknown = set(options) - {"nuts"}
    if not unknown:
        return
    valid = set(inspect.signature(pm.sample).parameters) | {"target_accept"}
    if sampler == "pymc":
        hmc = pm.step_methods.hmc
        valid |= set(inspect.signature(hmc.NUTS.__init__).parameters)
        valid |= set(inspect.signature(hmc.base_hmc.BaseHMC.__init__).parameters)
    valid -= {"self", "kwargs", "model", "vars"}
    for name in sorted(unknown - valid):
        near = ["random_seed"] if name == "seed" else difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]!r}?" if near else "; nutpie's own options go in nuts={...}"
        raise TypeError(f"hb.fit() got an unexpected keyword argument {name!r}{hint}")


def sample(
    model: pm.Model,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    sampler: str = "auto",
    target_accept: float = 0.9,
    progressbar: bool = True,
    **kwargs,
):
    """Run NUTS on ``model``; returns the ArviZ DataTree. The same seed gives the same draws."""
    _check_settings(draws, tune, chains, target_accept)
    nuts_sampler = available_sampler(sampler)
    if nuts_sampler == "nutpie":
        kwargs["nuts"] = _nutpie_options(kwargs.pop("nuts", None), _n_parameters(model))
    # PyTensor compiles for numba with fastmath on: LLVM may then reorder arithmetic, so code
    # compiled in this process and the same code loaded from PyTensor's disk cache round
    # differently, and the same seed gave other draws depending on what the cache held.
    exact = pytensor.config.change_flags(numba__fastmath=False)
    with model, pymc_quiet(), sampler_errors(nuts_sampler), exact:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            nuts_sampler=nuts_sampler,
            target_accept=target_accept,
            progressbar=progressbar,
            compute_convergence_checks=False,  # ours follow, with advice
            **kwargs,
        )


@dataclass(frozen=True)
class Sampled:
    """The completed posterior (ArviZ DataTree), the sampler that drew it and its diagnostics."""

    idata: object
    sampler: str
    diagnostics: Diagnostics
    random_seed: int | None = None


def sample_model(model: Model, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                 random_seed: int | None = None, sampler: str = "auto", target_accept: float = 0.9,
                 progressbar: bool = True, **kwargs) -> Sampled:  # fmt: skip
    """NUTS on ``model``, the posterior completed and diagnosed (see the module docstring);
    diagnostics messages are also issued as ``SamplingWarning``. ``method="gibbs"`` models
    are sampled by ``hierbayes.gibbs`` instead (``sampler`` is then "gibbs")."""
    if model.method == "gibbs":
        if sampler != "auto" or kwargs:
            raise ValueError(f"method='gibbs' runs hierbayes' own Gibbs sampler: it takes no sampler={sampler!r} "
                             f"and no sampler options ({', '.join(sorted(kwargs)) or 'none given'}); use "
                             "method='auto' or 'full' for NUTS")  # fmt: skip
        _check_settings(draws, tune, chains, 0.5)
        seed = int(np.random.default_rng(random_seed).integers(2**31))
        idata = run_gibbs(model.design, model.packed, draws=draws, tune=tune, chains=chains, seed=seed,
                          progressbar=progressbar)  # fmt: skip
        return _diagnosed(model, idata, "gibbs", random_seed)
    sampler = available_sampler(sampler)
    check_sampler_options(kwargs, sampler)
    packed = model.packed
    if model.method == "laplace" and (sampler != "nutpie" or not packed.priors_packed or set(kwargs) - {"nuts"}):
        raise ValueError("method='laplace' is sampled by nutpie on hierbayes' own kernels: it needs sampler='nutpie' "
                         "(or 'auto' with nutpie installed), priors the kernels evaluate (scalar priors of the "
                         "families in fit.prior_table()), and no other sampler options than nuts=")  # fmt: skip
    if sampler == "nutpie" and packed is not None and packed.priors_packed and set(kwargs) <= {"nuts"}:
        idata = _sample_packed(model, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                               target_accept=target_accept, progressbar=progressbar, nuts=kwargs.get("nuts"))  # fmt: skip
    else:  # the PyMC model: PyMC's own sampler, or nutpie compiling it (other sampler options)
        idata = sample(model.pymc, draws=draws, tune=tune, chains=chains, random_seed=random_seed, sampler=sampler,
                       progressbar=progressbar, target_accept=target_accept, **kwargs)  # fmt: skip
    seed = None if random_seed is None else np.random.SeedSequence(random_seed).spawn(1)[0]
    if model.method == "laplace":  # approximate draws of the effects; the log-likelihood is per row
        for name, values in draw_laplace_effects(model.design, idata.posterior.dataset, packed, seed).items():
            idata.posterior[name] = values
    elif model.integrated:
        effects, loglik = complete(model.design, idata.posterior.dataset, packed, random_seed=seed)
        for name, values in effects.items():
            idata.posterior[name] = values
        # one term per group: LOO from it leaves out a whole group (see FitResult.loo)
        idata["log_likelihood"] = xr.Dataset({names.observed(model.design.response): loglik})
    return _diagnosed(model, idata, sampler, random_seed)


def _diagnosed(model: Model, idata, sampler: str, random_seed) -> Sampled:
    """The ``Sampled`` with its diagnostics, whose messages are issued as warnings. Sampled
    group effects are checked too (exact draws afterwards need no check), on at most
    ``GROUPS_CHECKED`` groups a factor: arviz-stats takes about 2 ms a scalar for R-hat and the
    two ESS (3,000 + 1,100 groups: 9 s, against 3 s of Gibbs sampling)."""
    design, blocks = model.design, model.design.blocks
    watched = [names.FIXED, *design.family.param_names] + [names.sd(b) for b in blocks]
    watched += [names.cor(b) for b in blocks if b.correlated]
    sampled = [b for b in blocks if b.group not in model.integrated]
    picks = {b.group: checked_groups(design.factors[b.group].codes, design.factors[b.group].n_levels)
             for b in sampled if design.factors[b.group].n_levels > GROUPS_CHECKED}  # fmt: skip
    view = idata
    if picks:
        post = idata.posterior.dataset[watched + [names.effects(b) for b in sampled]].isel(picks)
        view = xr.DataTree.from_dict({"posterior": post, **({"sample_stats": idata.sample_stats.dataset}
                                                            if "sample_stats" in idata.children else {})})  # fmt: skip
    diagnostics = diagnose(view, watched + [names.effects(b) for b in sampled])
    if sampler == "gibbs" and (diagnostics.max_rhat > RHAT_MAX
                               or min(diagnostics.min_ess_bulk, diagnostics.min_ess_tail) < ESS_MIN):
        diagnostics = dataclasses.replace(diagnostics, messages=diagnostics.messages + (
            "Gibbs sampling mixes slowly where the data say little about a factor's groups (an SD near 0, few rows "
            "a group): method='marginal' samples the same model by NUTS.",))  # fmt: skip
    if picks:
        checked = " and ".join(f"{len(v)} of {design.factors[g].n_levels:,} {g} groups" for g, v in picks.items())
        diagnostics = dataclasses.replace(diagnostics, groups_checked=f"group effects checked on {checked}, "
                                                                      "spread over their sizes")  # fmt: skip
    for message in diagnostics.messages:
        warnings.warn(message, SamplingWarning, stacklevel=4)  # the caller of hb.fit
    return Sampled(idata, sampler, diagnostics, random_seed)


def checked_groups(codes: np.ndarray, n_levels: int, k: int | None = None) -> np.ndarray:
    """``k`` (``GROUPS_CHECKED``) groups spread evenly over the groups ordered by their number
    of rows, the smallest and the largest among them: the least and the best informed, where
    centred and non-centred samplers mix worst."""
    k = GROUPS_CHECKED if k is None else k
    order = np.argsort(np.bincount(codes, minlength=n_levels), kind="stable")
    return np.sort(order[np.unique(np.linspace(0, n_levels - 1, k).round().astype(int))])


def _sample_packed(model: Model, *, draws, tune, chains, random_seed, target_accept, progressbar, nuts):
    """NUTS by nutpie on the packed model (``hierbayes.marginal.run``): no code generation,
    so no compile step once numba's disk cache holds its functions. Same seed, same draws."""
    _check_settings(draws, tune, chains, target_accept)
    packed = model.packed
    seed = int(np.random.default_rng(random_seed).spawn(chains)[0].integers(2**30))  # as pm.sample does
    run = run_sampled if isinstance(packed, SampledModel) else run_nutpie
    with sampler_errors("nutpie"):
        return run(model.design, packed, draws=draws, tune=tune, chains=chains, seed=seed,
                          target_accept=target_accept, nuts=_nutpie_options(nuts, packed.n_dim),
                          progressbar=progressbar)  # fmt: skip


def _check_settings(draws, tune, chains, target_accept) -> None:
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be between 0 and 1, not {target_accept!r}")


def _nutpie_options(options: dict | None, n_parameters: int) -> dict:
    """nutpie settings: the low-rank mass matrix up to ``LOW_RANK_MAX`` sampled numbers. It
    adapts to the correlation of an intercept with a few well-measured group effects
    (Penicillin: R-hat 1.02 -> 1.004, bulk ESS 115 -> 966)."""
    options = dict(options or {})
    options.setdefault("adaptation", "low_rank" if n_parameters <= LOW_RANK_MAX else "diag")
    return options


def _n_parameters(model) -> int:
    """How many numbers NUTS samples (the size of the unconstrained space)."""
    return int(sum(np.size(v) for v in model.initial_point().values()))


def diagnose(idata, var_names: list[str]) -> Diagnostics:
    """Divergences, R-hat and ESS (bulk and tail) over ``var_names``, with advice."""
    divergences = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata else 0
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = azs.rhat(idata, var_names=var_names)
        ess_bulk = azs.ess(idata, var_names=var_names, method="bulk")
        ess_tail = azs.ess(idata, var_names=var_names, method="tail")
    max_rhat, worst_rhat = _extreme(rhat, np.nanargmax)
    min_bulk, worst_ess = _extreme(ess_bulk, np.nanargmin)
    min_tail, _ = _extreme(ess_tail, np.nanargmin)

    messages = []
    n_draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    if divergences:
        messages.append(
            f"{divergences} divergent transitions after warm-up: the sampler met curvature it "
            "could not follow, so the posterior may be biased. Try target_accept=0.95 or 0.99, "
            "and look for a group-level SD near zero (a tighter sd prior, or dropping that "
            "term, often helps)."
        )
    if max_rhat > RHAT_MAX:
        messages.append(
            f"R-hat up to {max_rhat:.3f} (> {RHAT_MAX}) for {worst_rhat}: the chains disagree. "
            "Run longer (tune=2000, draws=2000) and look at the trace plots."
        )
    if min(min_bulk, min_tail) < ESS_MIN:
        messages.append(
            f"effective sample size as low as {min(min_bulk, min_tail):.0f} (< {ESS_MIN}; bulk "
            f"{min_bulk:.0f}, tail {min_tail:.0f}) of {n_draws} draws, worst for {worst_ess}: "
            "intervals are imprecise. Draw more (draws=2000 or more chains)."
        )
    return Diagnostics(divergences, max_rhat, min_bulk, min_tail, worst_rhat, worst_ess, tuple(messages))


def _extreme(tree, pick) -> tuple[float, str]:
    """The largest (or smallest) value over all variables of a diagnostic, and where it is."""
    best_value, best_name = np.nan, ""
    for name, da in tree.data_vars.items():
        values = np.asarray(da.values, dtype=float).reshape(-1)
        if not np.any(np.isfinite(values)):
            continue
        k = pick(values)
        value = values[k]
        better = np.isnan(best_value) or (value > best_value if pick is np.nanargmax else value < best_value)
        if better:
            index = np.unravel_index(k, da.shape)
            label = ", ".join(str(da.coords[d].values[i]) for d, i in zip(da.dims, index))
            best_value, best_name = float(value), f"{name}[{label}]" if label else name
    return best_value, best_name
