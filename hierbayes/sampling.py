"""Stage 5: Model -> Sampled: the model's method run, the posterior completed, diagnosed.

``sample_model`` runs the method ``model.make_model`` chose (``model.sampler``, one of
``hierbayes.methods``: nutpie on the packed kernels, NUTS on the PyMC model, or Gibbs
sweeps) with the settings every method takes, then lets it complete the posterior (the exact
draws of integrated-out effects and the per-group log-likelihood), and diagnoses the draws:
divergences, R-hat and ESS become warnings that say what to do. A sampler's internal failure
(nutpie's Rust panics are BaseExceptions) becomes a ``SamplingError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import xarray as xr

from . import names
from .methods.base import Settings, check_target_accept
from .methods.choice import available_sampler
from .methods.pymc import check_sampler_options, pymc_quiet
from .methods.pymc import sample as sample_pymc
from .model import Model

__all__ = ["sample", "sample_model", "check_sampler_options", "Sampled", "Diagnostics", "diagnose", "SamplingWarning",
           "SamplingError", "available_sampler", "pymc_quiet"]  # fmt: skip

RHAT_MAX = 1.01
ESS_MIN = 400
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


def sample(model, *, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed: int | None = None,
           sampler: str = "auto", target_accept: float = 0.9, progressbar: bool = True, **kwargs):  # fmt: skip
    """Run NUTS on the ``pymc.Model`` ``model`` (``methods.pymc.sample``); returns the ArviZ
    DataTree. The same seed gives the same draws."""
    Settings(draws, tune, chains)  # checks them
    nuts_sampler = available_sampler(sampler)
    check_target_accept(target_accept)
    with sampler_errors(nuts_sampler):
        return sample_pymc(model, draws=draws, tune=tune, chains=chains, random_seed=random_seed, sampler=nuts_sampler,
                           target_accept=target_accept, progressbar=progressbar, **kwargs)  # fmt: skip


@dataclass(frozen=True)
class Sampled:
    """The completed posterior (ArviZ DataTree), the sampler that drew it and its diagnostics."""

    idata: object
    sampler: str
    diagnostics: Diagnostics
    random_seed: int | None = None


def sample_model(model: Model, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                 random_seed: int | None = None, progressbar: bool = True) -> Sampled:  # fmt: skip
    """``model``'s method run and its posterior completed and diagnosed (see the module
    docstring); diagnostics messages are also issued as ``SamplingWarning``. The same
    ``random_seed`` gives the same draws."""
    settings = Settings(draws, tune, chains, random_seed, progressbar)
    method = model.sampler
    with sampler_errors(method.sampler):
        idata = method.run(model, settings, model.options)
    seed = None if random_seed is None else np.random.SeedSequence(random_seed).spawn(1)[0]
    idata = method.complete(model, idata, seed)
    return _diagnosed(model, idata, method, random_seed)


def _diagnosed(model: Model, idata, method, random_seed) -> Sampled:
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
    if method.advice and (diagnostics.max_rhat > RHAT_MAX
                          or min(diagnostics.min_ess_bulk, diagnostics.min_ess_tail) < ESS_MIN):
        diagnostics = dataclasses.replace(diagnostics, messages=diagnostics.messages + (method.advice,))
    if picks:
        checked = " and ".join(f"{len(v)} of {design.factors[g].n_levels:,} {g} groups" for g, v in picks.items())
        diagnostics = dataclasses.replace(diagnostics, groups_checked=f"group effects checked on {checked}, "
                                                                      "spread over their sizes")  # fmt: skip
    for message in diagnostics.messages:
        warnings.warn(message, SamplingWarning, stacklevel=4)  # the caller of hb.fit
    return Sampled(idata, method.sampler, diagnostics, random_seed)


def checked_groups(codes: np.ndarray, n_levels: int, k: int | None = None) -> np.ndarray:
    """``k`` (``GROUPS_CHECKED``) groups spread evenly over the groups ordered by their number
    of rows, the smallest and the largest among them: the least and the best informed, where
    centred and non-centred samplers mix worst."""
    k = GROUPS_CHECKED if k is None else k
    order = np.argsort(np.bincount(codes, minlength=n_levels), kind="stable")
    return np.sort(order[np.unique(np.linspace(0, n_levels - 1, k).round().astype(int))])


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
