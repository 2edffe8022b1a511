"""hierbayes: Bayesian hierarchical models from lme4 formulas, with PyMC and ArviZ.

    import hierbayes as hb
    fit = hb.fit("normexam ~ standLRT + (standLRT | school)", data=hb.datasets.load("london_exam"))
    print(fit.summary())

Each stage is public: ``parse_formula`` -> ``make_design`` -> ``make_priors`` ->
``make_model`` -> ``sample_model``; ``fit`` chains them and wraps the result in a ``FitResult``.
"""

import warnings as _warnings
from importlib import metadata as _metadata

# pip-installed PyTensor warns at import that it found no BLAS; nutpie (the default sampler)
# compiles through numba and does not use it.
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)

from . import datasets  # noqa: E402
from .api import build, fit  # noqa: E402
from .checks import PriorPredictive, prior_predictive  # noqa: E402
from .compare import Comparison, ComparisonError, anova, compare  # noqa: E402
from .model import Model, build_model, make_model  # noqa: E402
from .design import DataError, Design, center, make_design  # noqa: E402
from .frequentist import UnsupportedStructure, fit_mixedlm  # noqa: E402
from .formula import FormulaError, ModelSpec, parse_formula  # noqa: E402
from .priors import Prior, PriorError, Priors, default_priors, make_priors  # noqa: E402
from .results import FitResult  # noqa: E402
from .sampling import Diagnostics, Sampled, SamplingError, SamplingWarning, diagnose, sample, sample_model  # noqa: E402
from .variance import variance_reduction  # noqa: E402

# The plots (matplotlib and arviz-plots, about 0.4 s to import) load at the first plot: a fit
# and its summary never need them.
_PLOTS = ("plot_forest", "plot_variance", "plot_caterpillar", "plot_shrinkage", "plot_fitted", "plot_ppc",
          "plot_trace", "plot_rank", "plot_ranks")  # fmt: skip


def __getattr__(name: str):
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'hierbayes' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PLOTS))


try:
    __version__ = _metadata.version("hierbayes")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "fit", "build", "compare", "anova", "Comparison", "ComparisonError", "prior_predictive", "PriorPredictive", "datasets", "center", "parse_formula", "make_design", "make_priors",
    "default_priors", "make_model", "Model", "build_model", "sample_model", "Sampled", "sample", "diagnose", "Prior", "Priors", "ModelSpec",
    "Design", "FitResult", "Diagnostics", "FormulaError", "DataError", "PriorError",
    "SamplingWarning", "SamplingError", "variance_reduction", "fit_mixedlm", "UnsupportedStructure", "plot_forest",
    "plot_variance", "plot_caterpillar", "plot_shrinkage", "plot_fitted", "plot_ppc", "plot_trace", "plot_rank",
    "plot_ranks",
]  # fmt: skip
