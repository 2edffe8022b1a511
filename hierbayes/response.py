"""Stage 2's response: the left-hand side of the formula evaluated on the data.

- a column or an expression of columns (``log(y)``): the response y;
- ``cbind(successes, failures)`` (lme4's spelling) or ``p(successes, trials)`` (bambi's): a
  binomial response, y = successes out of trials (failures + successes for ``cbind``); each
  part may be an expression (``cbind(incidence, size - incidence)``).

The two-column forms imply the binomial family: ``family`` may be left out. lme4 users write
``family="binomial"`` for a 0/1 column too; that is the Bernoulli family. Counts must be whole
and non-negative, successes at most trials, trials at least 1: each problem is named with its
row before any model is built. Also here: ``DataError``, and the namespace of R functions a
formula may call (``log``, ``scale``, ``factor``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulae import design_matrices
from formulae.transforms import C

from .families import BERNOULLI, BINOMIAL, GAUSSIAN, Family, get_family
from .formula import R_RENAMES

__all__ = ["DataError", "Response", "evaluate_response", "response_family", "R_NAMESPACE", "pretty", "row_labels",
           "TWO_COLUMNS", "first_part"]  # fmt: skip

class DataError(ValueError):
    """The data cannot be used with the formula (unknown column, bad type, too few groups...)."""


class RScale:
    """R's ``scale(x)``: centre and divide by the SD with n - 1, remembered for new data."""

    __stateful_transform__ = True

    def __init__(self):
        self.mean = self.sd = None

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        if self.mean is None:
            self.mean, self.sd = x.mean(), x.std(ddof=1)
        return (x - self.mean) / self.sd


# Names a formula copied from an R script may call, on top of formulae's own (I, C, center,
# scale, standardize, poly, bs, ...) and numpy as ``np``. A data column of the same name wins:
# formulae looks a bare name up in the data first, and a call's function in the namespace only.
R_NAMESPACE = {
    "np": np,
    "numpy": np,
    "factor": C,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "rscale": RScale,  # R's scale(); see formula.R_RENAMES
}

TWO_COLUMNS = re.compile(r"^\s*(cbind|p|prop)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class Response:
    """The response values (successes for a binomial one) and, for a binomial one, the trials."""

    y: np.ndarray = field(repr=False)
    trials: np.ndarray | None = field(default=None, repr=False)


def response_family(expr: str, family, link: str | None = None, weights=None) -> Family:
    """The family of a response: ``family`` as given (None: binomial for ``cbind``/``p``,
    else Gaussian); a binomial family on a one-column response is Bernoulli (lme4's spelling),
    unless ``weights`` give its trials (a proportion response, as glmer takes it)."""
    two = TWO_COLUMNS.match(expr) is not None
    if family is None:
        chosen = BINOMIAL if two or weights is not None else GAUSSIAN
    else:
        chosen = get_family(family)
    if weights is not None and not chosen.has_trials:
        raise DataError(f"weights= are the trials of a binomial proportion response; the {chosen.name} family "
                        "takes none")  # fmt: skip
    two = two or weights is not None
    if two and not chosen.has_trials:
        raise DataError(f"the response {pretty(expr)!r} counts successes out of trials: use family='binomial', "
                        f"not {chosen.name!r}")  # fmt: skip
    if chosen.has_trials and not two:
        chosen = BERNOULLI
    return get_family(chosen, link)


def evaluate_response(expr: str, prepared: pd.DataFrame, family: Family, weights=None) -> Response:
    """The response of ``expr`` on ``prepared`` (see the module docstring); ``weights``: the
    trials of a proportion response (an array, one per row of ``prepared``)."""
    two = TWO_COLUMNS.match(expr)
    if weights is not None:
        return _proportion(expr, prepared, family, weights)
    if two is None:
        y = _numbers(expr, prepared, f"the response {pretty(expr)!r}")
        if family.discrete and not family.has_trials:
            _whole(y, prepared.index, f"the response {pretty(expr)!r}", family)
        return Response(y)
    kind, inner = two.groups()
    parts = _split_arguments(inner)
    if len(parts) != 2:
        raise DataError(f"{kind}(...) in the response {pretty(expr)!r} takes two arguments: "
                        + ("successes and failures" if kind == "cbind" else "successes and trials"))  # fmt: skip
    first, second = (_numbers(part, prepared, f"{pretty(part)!r} in the response {pretty(expr)!r}") for part in parts)
    successes, what = first, f"the successes {pretty(parts[0])!r}"
    _whole(successes, prepared.index, what, family)
    if kind == "cbind":
        _whole(second, prepared.index, f"the failures {pretty(parts[1])!r}", family)
        trials = successes + second
    else:
        trials = second
        _whole(trials, prepared.index, f"the trials {pretty(parts[1])!r}", family)
        over = successes > trials
        if over.any():
            row = prepared.index[over][0]
            raise DataError(f"{what} exceed the trials {pretty(parts[1])!r} in {int(over.sum())} row(s), e.g. row "
                            f"{row!r}: {successes[over][0]:g} of {trials[over][0]:g}")  # fmt: skip
    empty = trials == 0
    if empty.any():
        raise DataError(f"{int(empty.sum())} row(s) have 0 trials in the response {pretty(expr)!r}, e.g. row "
                        f"{prepared.index[empty][0]!r}: a binomial response needs at least one trial per row")  # fmt: skip
    return Response(successes, trials)


def _proportion(expr: str, prepared: pd.DataFrame, family: Family, weights) -> Response:
    """A proportion response with its trials as ``weights``: successes = proportion x trials."""
    what = f"the proportion {pretty(expr)!r}"
    share = _numbers(expr, prepared, what)
    trials = np.asarray(weights, dtype=float)
    outside = (share < 0) | (share > 1)
    if outside.any():
        raise DataError(f"{what} must lie in [0, 1] with weights= as its trials: {share[outside][0]:g} in row "
                        f"{prepared.index[outside][0]!r}")  # fmt: skip
    _whole(trials, prepared.index, "the weights (trials)", family)
    successes = share * trials
    off = np.abs(successes - np.round(successes)) > 1e-6 * np.maximum(trials, 1)
    if off.any():
        raise DataError(f"{what} times the weights must give whole numbers of successes: {share[off][0]:g} x "
                        f"{trials[off][0]:g} in row {prepared.index[off][0]!r}")  # fmt: skip
    empty = trials == 0
    if empty.any():
        raise DataError(f"{int(empty.sum())} row(s) have 0 trials (weights), e.g. row {prepared.index[empty][0]!r}")
    return Response(np.round(successes), trials)


def first_part(expr: str) -> str:
    """The successes of a two-column response, or the response itself: the left-hand side
    formulae is given when it evaluates the fixed part."""
    two = TWO_COLUMNS.match(expr)
    return _split_arguments(two.group(2))[0] if two else expr


def _numbers(expr: str, prepared: pd.DataFrame, what: str) -> np.ndarray:
    try:
        with np.errstate(all="ignore"):  # log(0) and the like: the check below names them
            # inside I(), so that formulae reads `size - incidence` as arithmetic, not as terms
            wrapped = expr if re.fullmatch(r"`[^`]+`|[\w.]+", expr.strip()) else f"I({expr})"
            dm = design_matrices(f"{wrapped} ~ 1", prepared, na_action="pass", extra_namespace=R_NAMESPACE)
        y = np.asarray(dm.response.design_matrix, dtype=float).reshape(-1)
    except (ValueError, TypeError, KeyError) as err:
        raise DataError(f"cannot evaluate {what} as numbers: {err}") from err
    if not np.all(np.isfinite(y)):
        bad = ~np.isfinite(y)
        raise DataError(f"{what} has {int(bad.sum())} infinite or NaN value{'s' * (int(bad.sum()) > 1)}, in rows "
                        f"{row_labels(prepared.index[bad])}")  # fmt: skip
    if len(y) > 1 and np.ptp(y) == 0 and "response" in what.split("'")[0]:
        raise DataError(f"{what} is constant (every value is {y[0]:g}): there is no variation to model")
    return y


def _whole(values: np.ndarray, index, what: str, family: Family) -> None:
    """Counts: whole and non-negative."""
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        raise DataError(f"{what} must be whole numbers of 0 or more for the {family.name} family: "
                        f"{values[bad][0]:g} in row {index[bad][0]!r}"
                        + (f" and {int(bad.sum()) - 1} more row(s)" if bad.sum() > 1 else ""))  # fmt: skip


def _split_arguments(text: str) -> list[str]:
    """``a, f(b, c)`` -> [``a``, ``f(b, c)``]: split at top-level commas."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [*parts, current.strip()] if current.strip() else parts


def row_labels(index) -> str:
    """Row labels for a message: the first few."""
    return ", ".join(map(str, index[:6])) + (", ..." if len(index) > 6 else "")


def pretty(expr: str) -> str:
    """Python spellings back to the R ones the user wrote."""
    for r_name, ours in R_RENAMES.items():
        expr = re.sub(rf"(?<![\w.]){ours}\(", f"{r_name}(", expr)
    return expr.replace(" ** ", "^").replace("**", "^")
