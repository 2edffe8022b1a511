"""Stage 2: ModelSpec + DataFrame (+ family) -> Design, the spec evaluated on the data.

Produces the response vector, the fixed-effects matrix X, and for every random-effect block
its matrix Z and the integer codes of its grouping factor. Terms are evaluated by ``formulae``
(the formula engine bambi uses); column names follow lme4 (``(Intercept)``, ``sexM``,
``age:SexMale``). Every input problem is reported here, before any model is built.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulae import design_matrices

from .families import GAUSSIAN, Family
from .formula import FormulaError, ModelSpec, RandomBlock, parse_formula, unquote
from .response import R_NAMESPACE, DataError, evaluate_response, first_part, pretty, response_family, row_labels

__all__ = ["DataError", "Design", "BlockDesign", "GroupingFactor", "make_design", "center", "split_offset"]


_KNOWN_CALLS = set(R_NAMESPACE) | {
    "I", "C", "T", "S", "center", "scale", "standardize", "poly", "bs", "binary", "offset", "p", "prop", "cbind",
    "True", "False", "None",
}  # fmt: skip


@dataclass(frozen=True)
class GroupingFactor:
    """A grouping factor: its level names and each row's level index."""

    name: str
    levels: tuple[str, ...]
    codes: np.ndarray = field(repr=False)

    @property
    def n_levels(self) -> int:
        return len(self.levels)


@dataclass(frozen=True)
class BlockDesign:
    """One block of group-level effects: Z's columns share one covariance matrix.

    ``name`` is lme4's label for the block in VarCorr: the grouping factor, with ``.1``,
    ``.2`` added when several blocks share a factor (as ``(x || g)`` makes).
    """

    name: str
    group: str
    terms: tuple[str, ...]
    Z: np.ndarray = field(repr=False)
    correlated: bool
    # formulae's evaluated terms and the columns of them this block takes, for new data
    matrix: object = field(default=None, repr=False, compare=False)
    columns: tuple[int, ...] = field(default=(), repr=False)

    @property
    def size(self) -> int:
        return len(self.terms)


@dataclass(frozen=True)
class Design:
    """The model's data as arrays: y, X with term names, and one Z per block."""

    spec: ModelSpec
    response: str
    y: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    fixed_terms: tuple[str, ...]
    blocks: tuple[BlockDesign, ...]
    factors: dict[str, GroupingFactor] = field(repr=False)
    data: pd.DataFrame = field(repr=False)
    n_dropped: int = 0  # rows dropped for a missing value
    dropped: dict[str, int] = field(default_factory=dict)  # missing values per column, in those rows
    # formulae's evaluated fixed terms and the level order of every categorical column used
    fixed_matrix: object = field(default=None, repr=False, compare=False)
    categories: dict[str, list[str]] = field(default_factory=dict, repr=False)
    columns: tuple[str, ...] = ()  # the data columns the formula reads
    family: Family = field(default=GAUSSIAN, repr=False)  # the response family (hierbayes.families)
    trials: np.ndarray | None = field(default=None, repr=False)  # binomial responses: y successes of trials
    offset: np.ndarray | None = field(default=None, repr=False)  # offset(...) terms: added to eta, no coefficient
    offset_columns: tuple[int, ...] = field(default=(), repr=False)  # their columns in formulae's fixed matrix

    @property
    def n_obs(self) -> int:
        return len(self.y)

    @property
    def has_intercept(self) -> bool:
        return "(Intercept)" in self.fixed_terms

    @property
    def rows_used(self) -> pd.Index:
        """The index labels, in the data given, of the rows the model uses."""
        return self.data.index

    def dropped_text(self) -> str:
        """Which rows were left out and why, for summaries: "none dropped" or
        "3 of 4059 rows dropped for missing values: 2 in standLRT, 1 in sex"."""
        if not self.n_dropped:
            return "none dropped"
        per_column = ", ".join(f"{k} in {c}" for c, k in self.dropped.items())
        return f"{self.n_dropped} of {self.n_obs + self.n_dropped} rows dropped for missing values: {per_column}"

    def group_terms(self, factor: str) -> list[str]:
        """The group-level terms of a grouping factor, over all its blocks, in model order."""
        return [t for b in self.blocks if b.group == factor for t in b.terms]


def make_design(
    spec: ModelSpec | str, data: pd.DataFrame, reference: dict[str, str] | None = None,
    *, family: str | Family | None = None, link: str | None = None, weights=None,
) -> Design:
    """Evaluate ``spec`` on ``data``.

    ``reference`` maps a categorical column to its reference level (the level absorbed into
    the intercept under treatment coding); columns the formula does not use are ignored, so
    one dict can serve several models. Otherwise the first category of a pandas
    Categorical is the reference, and for other columns the first level in sorted order,
    as in R. Rows with a missing value in a column the model uses are dropped with a warning
    that counts them by column (``Design.dropped``); no other row is dropped, and
    ``Design.rows_used`` holds the index labels of the rows kept. A numeric grouping column is
    used as labels, with a warning that says so. ``family`` (a name in
    ``hierbayes.families.FAMILIES`` or a ``Family``; None: Gaussian, or binomial for a
    ``cbind``/``p`` response) with ``link`` checks the response and rides along in
    ``Design.family`` for the later stages (see ``hierbayes.response``). ``weights`` (a column
    name or one number per row) are the trials of a binomial proportion response.
    """
    if isinstance(spec, str):
        spec = parse_formula(spec)
    if isinstance(weights, str):
        if weights not in data.columns:
            raise DataError(f"weights={weights!r} is not a column; the data has {quote_list(data.columns)}")
        weights = data[weights]
    if weights is not None and len(weights) != len(data):
        raise DataError(f"weights has {len(weights)} values for {len(data)} rows")
    family = response_family(spec.response, family, link, weights)
    if weights is not None:
        data = data.assign(_weights_=np.asarray(weights, dtype=float))
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise DataError("data has no rows")

    used = _check_columns(spec, data)
    if weights is None:  # a proportion with its trials as weights is checked with them
        _check_response_type(unquote(spec.response), data, family)
    data, n_dropped, dropped = _drop_missing(data, used)
    _check_types(data, used, list(dict.fromkeys(c for b in spec.blocks for c in b.group_columns)))
    prepared = _prepare_categoricals(data, used, reference or {})

    if family.discrete and unquote(spec.response) in prepared and pd.api.types.is_bool_dtype(prepared[unquote(spec.response)]):
        prepared[unquote(spec.response)] = prepared[unquote(spec.response)].astype(int)  # True/False as 1/0
    response = evaluate_response(spec.response, prepared, family,
                                 None if weights is None else data["_weights_"].to_numpy())  # fmt: skip
    X, fixed_terms, fixed_matrix = _evaluate(f"{first_part(spec.response)} ~ {spec.fixed}", prepared,
                                             f"fixed part {spec.fixed!r}")  # fmt: skip
    offset_columns = tuple(k for k, t in enumerate(fixed_terms) if t.startswith("offset("))
    X, offset = split_offset(X, offset_columns)
    fixed_terms = tuple(t for k, t in enumerate(fixed_terms) if k not in offset_columns)
    _check_rank(X, fixed_terms, "fixed-effect column")

    factors: dict[str, GroupingFactor] = {}
    raw_blocks = []
    for block in spec.blocks:
        if block.group not in factors:
            factors[block.group] = _grouping_factor(block, data)
        Z, terms, matrix = _evaluate(block.terms, prepared, f"random-effect term {block.source!r}")
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effect term {block.source!r} has no columns")
        _check_rank(Z, terms, f"in random-effect term {block.source!r}, column")
        q, n_levels = (Z.shape[1] if block.correlated else 1), factors[block.group].n_levels
        if q * n_levels >= len(response.y):  # lme4's check: number of observations <= number of random effects
            raise DataError(
                f"random-effect term {block.source!r} has {q} effects for each of the {n_levels} levels of "
                f"{block.group!r}: {q * n_levels} group-level effects for {len(response.y)} rows, too many to tell apart "
                "from the residual (lme4 refuses this too); drop a term from the bar or use more data"
            )
        if block.correlated:
            raw_blocks.append((block.group, terms, Z, Z.shape[1] > 1, matrix, tuple(range(Z.shape[1]))))
        else:  # (x || g): one independent block per column, as lme4 splits it
            raw_blocks.extend((block.group, (t,), Z[:, [k]], False, matrix, (k,)) for k, t in enumerate(terms))

    blocks, seen = [], {}
    for group, terms, Z, correlated, matrix, columns in raw_blocks:
        k = seen.get(group, 0)
        seen[group] = k + 1
        name = group if k == 0 else f"{group}.{k}"
        blocks.append(BlockDesign(name=name, group=group, terms=terms, Z=Z, correlated=correlated,
                                  matrix=matrix, columns=columns))  # fmt: skip

    return Design(
        spec=spec,
        response=pretty(unquote(spec.response)),
        y=response.y,
        trials=response.trials,
        offset=offset,
        offset_columns=offset_columns,
        X=X,
        fixed_terms=fixed_terms,
        blocks=tuple(blocks),
        factors=factors,
        data=data,
        n_dropped=n_dropped,
        dropped=dropped,
        fixed_matrix=fixed_matrix,
        columns=tuple(used),
        family=family,
        categories={c: list(prepared[c].cat.categories) for c in used
                    if isinstance(prepared[c].dtype, pd.CategoricalDtype)},  # fmt: skip
    )


def center(data: pd.DataFrame, column: str, by: str, suffix: str = "_groupc") -> pd.DataFrame:
    """Group-mean centring for the within/between decomposition.

    Returns a copy of ``data`` with two new columns: ``<column><suffix>`` (the value minus
    its group's mean: the within-group part) and ``<column>_groupmean`` (the group's mean:
    the between-group part). ``hb.center(df, "standLRT", by="school")`` gives the seeds'
    ``lrt_groupc`` as ``standLRT_groupc``.
    """
    for col in (column, by):
        if col not in data.columns:
            raise DataError(f"unknown column {col!r}; the data has {quote_list(data.columns)}")
    if not pd.api.types.is_numeric_dtype(data[column]):
        raise DataError(f"column {column!r} must be numeric to be centred")
    out = data.copy()
    means = out.groupby(by, observed=True)[column].transform("mean")
    out[f"{column}{suffix}"] = out[column] - means
    out[f"{column}_groupmean"] = means
    return out


# --- checks -------------------------------------------------------------------------------

# a backquoted name, a string, or a bare name as formulae reads one (letters, digits, '.', '_')
_TOKEN = re.compile(r"`([^`]*)`|'[^']*'|\"[^\"]*\"|(?<![\w.])([^\W\d][\w.]*)")


def names_in(expr: str, columns=()) -> list[str]:
    """Column names an expression reads: backquoted names, and bare names that are not calls,
    keyword arguments, numpy or formula helpers. A bare name in ``columns`` is the column."""
    names = []
    for m in _TOKEN.finditer(expr):
        quoted, name = m.groups()
        if quoted is not None:
            name = quoted
        elif name is None:
            continue  # a string
        else:
            rest = expr[m.end():].lstrip()
            if rest.startswith("(") or (rest.startswith("=") and not rest.startswith("==")):
                continue  # a function call or a keyword argument
            if name not in columns and (name.split(".")[0] in ("np", "numpy") or name in _KNOWN_CALLS):
                continue
        if name not in names:
            names.append(name)
    return names


def _check_columns(spec: ModelSpec, data: pd.DataFrame) -> list[str]:
    """Every name the formula reads must be a column; returns the columns used."""
    used: list[str] = []

    def need(names, where):
        for name in names:
            if name not in data.columns:
                raise DataError(
                    f"unknown column {name!r} in {where}; the data has {quote_list(data.columns)}"
                    f"{_did_you_mean(name, data.columns)}"
                )
            if name not in used:
                used.append(name)
            if (data.columns == name).sum() > 1:
                raise DataError(f"the data has {(data.columns == name).sum()} columns named {name!r}, which "
                                f"{where} uses; give them distinct names")  # fmt: skip

    need(names_in(spec.response, data.columns), f"the response {spec.response!r}")
    need(names_in(spec.fixed, data.columns), f"the fixed part {spec.fixed!r}")
    for block in spec.blocks:
        need(names_in(block.terms, data.columns), f"random-effect term {block.source!r}")
        for col in block.group_columns:
            if col not in data.columns:
                raise DataError(
                    f"grouping factor {col!r} in random-effect term {block.source!r} is not a "
                    f"column of the data; the data has {quote_list(data.columns)}{_did_you_mean(col, data.columns)}"
                )
            need([col], f"grouping factor {block.group!r}")
    return used


def _did_you_mean(name: str, columns) -> str:
    """A hint for an unknown column: the column it is a word of (spaces need backquotes), or
    the closest column name."""
    columns = [str(c) for c in columns]
    for col in columns:
        if name in re.split(r"[^\w.]+", col) and not re.fullmatch(r"[\w.]+", col):
            return f"; a name with spaces or symbols goes in backquotes: `{col}`"
    close = difflib.get_close_matches(name, columns, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _drop_missing(data: pd.DataFrame, used: list[str]) -> tuple[pd.DataFrame, int, dict[str, int]]:
    """The rows with no missing value in the columns used; how many were dropped; and the number
    of missing values in each column that has any."""
    missing = data[used].isna()
    rows = missing.any(axis=1)
    n = int(rows.sum())
    if n == 0:
        return data, 0, {}
    counts = {c: int(k) for c, k in missing.sum().items() if k}
    per_column = ", ".join(f"{c}: {k}" for c, k in counts.items())
    if n == len(data):
        empty = [c for c in used if missing[c].all()]
        if empty:
            raise DataError(f"column{'s' * (len(empty) > 1)} {quote_list(empty)} of the model "
                            f"{'have' if len(empty) > 1 else 'has'} no values: all {n} rows are missing")  # fmt: skip
        raise DataError(f"every row has a missing value in the columns the model uses (missing: {per_column})")
    warnings.warn(
        f"dropped {n} of {len(data)} rows with missing values in the model's columns "
        f"({per_column})",
        UserWarning,
        stacklevel=3,
    )
    return data.loc[~rows], n, counts


def _check_types(data: pd.DataFrame, used: list[str], groups: list[str]) -> None:
    """Refuse complex numbers, and dates in terms; say once that a numeric grouping column's
    values are used as labels."""
    for col in used:
        dtype = data[col].dtype
        if dtype.kind == "c":
            raise DataError(f"column {col!r} holds complex numbers ({dtype}); the model needs real numbers")
        if dtype.kind in "mM" and col not in groups:
            raise DataError(f"column {col!r} holds dates or times ({dtype}); convert it to numbers (e.g. days "
                            "since the first date), or to text for a categorical predictor")  # fmt: skip
    for col in groups:
        x = data[col]
        if not pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
            continue
        bad = int((~np.isfinite(x.to_numpy(dtype=float))).sum())
        if bad:
            raise DataError(f"grouping factor {col!r} has {bad} infinite value{'s' * (bad > 1)}; "
                            "a group label must be finite")  # fmt: skip
        levels = level_order(x)
        shown = ", ".join(levels[:3]) + (", ..." if len(levels) > 3 else "")
        warnings.warn(f"grouping factor {col!r} is numeric (values {shown}): its values are treated as group "
                      "labels", UserWarning, stacklevel=3)  # fmt: skip


def _prepare_categoricals(data, used, reference) -> pd.DataFrame:
    """Make every non-numeric column an ordered Categorical, so formulae keeps our level order.

    formulae sorts the levels of anything but an *ordered* Categorical; we want R's order
    (sorted strings, a Categorical's own order) with the chosen reference level first.
    """
    for col in reference:  # a column the formula does not use is fine: one dict, many models
        if col not in data.columns:
            raise DataError(
                f"reference level given for {col!r}, which is not a column of the data"
                f"{_did_you_mean(col, data.columns)}"
            )
    out = data[used].copy()
    for col in used:
        x = out[col]
        if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
            if col in reference:
                raise DataError(
                    f"column {col!r} is numeric, so it has no reference level; "
                    f"use factor({col}) in the formula to treat it as categorical"
                )
            continue
        levels = level_order(x)
        if col in reference:
            ref = str(reference[col])
            if ref not in levels:
                raise DataError(f"reference level {ref!r} is not a level of column {col!r} "
                                f"(levels: {quote_list(levels)})")  # fmt: skip
            levels = [ref] + [lv for lv in levels if lv != ref]
        out[col] = pd.Categorical(level_names(x), categories=levels, ordered=True)
    return out


def level_order(x: pd.Series) -> list[str]:
    """Level order: a Categorical's own (unused levels dropped), else sorted, numbers by value."""
    names = level_names(x)
    if isinstance(x.dtype, pd.CategoricalDtype):
        present = set(names)
        return [c for c in dict.fromkeys(map(level_name, x.cat.categories)) if c in present]
    values = pd.unique(names)
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def level_name(value) -> str:
    """A value's level name, as R's factor() writes it: 1, 1.0 and "1" are all "1"."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    return str(value)


def level_names(x: pd.Series) -> np.ndarray:
    """The level name of every value of ``x`` (missing values read "nan")."""
    codes, uniques = pd.factorize(x)
    names = np.array([level_name(u) for u in uniques] + ["nan"], dtype=object)
    return names[codes]


def _check_response_type(name: str, data: pd.DataFrame, family: Family) -> None:
    if name in data.columns:
        problem = family.check_response(data[name], name)
        if problem:
            raise DataError(problem)


def _evaluate(formula: str, prepared: pd.DataFrame, where: str):
    """Evaluate the right-hand side of ``formula`` with formulae: (matrix, lme4 column names,
    formulae's evaluated terms, which evaluate new data the same way)."""
    try:
        with np.errstate(all="ignore"):  # log(0) and the like: the check below names them
            dm = design_matrices(formula, prepared, na_action="pass", extra_namespace=R_NAMESPACE)
    except Exception as err:  # formulae raises many types; name the term for the user
        raise FormulaError(f"cannot evaluate the {where}: {err}") from err
    if dm.common is None:
        return np.zeros((len(prepared), 0)), (), None
    empty = [t for t, cols in dm.common.slices.items() if cols.start == cols.stop]
    if empty:  # e.g. a categorical column with a single level among the rows used
        single = [f"column {c!r} has the single level {prepared[c].cat.categories[0]!r}"
                  for c in names_in(empty[0], prepared.columns) if c in prepared.columns
                  and isinstance(prepared[c].dtype, pd.CategoricalDtype) and len(prepared[c].cat.categories) == 1]
        raise DataError(f"term {_lme4_name(empty[0])!r} of the {where} gives no columns"
                        + (f": {single[0]} in the rows used" if single else ""))  # fmt: skip
    frame = dm.common.as_dataframe()
    X = frame.to_numpy(dtype=float)
    if not np.all(np.isfinite(X)):
        bad = {_lme4_name(c): ~np.isfinite(X[:, k]) for k, c in enumerate(frame.columns)}
        raise DataError(f"the {where} gives infinite or NaN values: "
                        + "; ".join(f"{int(m.sum())} in column {c!r} (rows {row_labels(prepared.index[m])})"
                                    for c, m in bad.items() if m.any()))  # fmt: skip
    return X, tuple(_lme4_name(c) for c in frame.columns), dm.common


def split_offset(X: np.ndarray, columns: tuple[int, ...]):
    """(X without the ``offset(...)`` columns, their sum or None): an offset enters the linear
    predictor with coefficient 1, as in R."""
    if not columns:
        return X, None
    return np.delete(X, list(columns), axis=1), X[:, list(columns)].sum(axis=1)


def _lme4_name(name: str) -> str:
    """formulae's ``Intercept``, ``sex[M]``, ``I(x ** 2)`` -> lme4's ``(Intercept)``, ``sexM``, ``I(x^2)``."""
    if name == "Intercept":
        return "(Intercept)"
    return pretty(re.sub(r"\[([^\]]*)\]", r"\1", name))


def _check_rank(X: np.ndarray, names: tuple[str, ...], what: str) -> None:
    """Refuse collinear columns (of X or of one bar's Z), naming the first that depends on the
    others; ``what`` names such a column in the message ("fixed-effect column")."""
    if X.shape[1] == 0:
        return
    scale = np.linalg.norm(X, axis=0)
    for k, name in enumerate(names):
        if scale[k] == 0:
            raise DataError(f"{what} {name!r} is all zeros (a level or combination with no rows?)")
    constant = [k for k in range(X.shape[1]) if np.ptp(X[:, k]) == 0]
    if len(constant) > 1:  # a constant predictor next to the intercept (or another constant)
        first, k = constant[0], constant[1]
        other = "the intercept" if names[first] == "(Intercept)" else f"the constant column {names[first]!r}"
        raise DataError(f"{what} {names[k]!r} is constant (every value is {X[0, k]:g}), so it cannot be told "
                        f"apart from {other}; drop it")  # fmt: skip
    Xs = X / scale
    tol = 1e-8 * np.sqrt(X.shape[0])
    if np.linalg.matrix_rank(Xs, tol=tol) == X.shape[1]:
        return
    for k in range(2, X.shape[1] + 1):  # find the first column that adds no rank
        if np.linalg.matrix_rank(Xs[:, :k], tol=tol) < k:
            raise DataError(
                f"{what} {names[k - 1]!r} is a linear combination of "
                f"{quote_list(names[: k - 1])}; drop one of them"
            )


def _grouping_factor(block: RandomBlock, data: pd.DataFrame) -> GroupingFactor:
    """Levels and row codes of a grouping factor; ``a:b`` takes the combinations present."""
    per_column = []
    level_lists = []
    for col in block.group_columns:
        levels = level_order(data[col])
        level_lists.append(levels)
        per_column.append(pd.Categorical(level_names(data[col]), categories=levels).codes)
    # one integer per row (mixed radix, first column most significant): sorts like the tuples
    key = np.zeros(len(data), dtype=np.int64)
    for col_codes, col_levels in zip(per_column, level_lists):
        key = key * len(col_levels) + col_codes
    keys, codes = np.unique(key, return_inverse=True)
    combos = []
    for col_levels in reversed(level_lists):
        combos.append(keys % len(col_levels))
        keys = keys // len(col_levels)
    combos = np.column_stack(combos[::-1])
    levels = [":".join(level_lists[j][k] for j, k in enumerate(row)) for row in combos]
    if len(levels) < 2:
        raise DataError(
            f"grouping factor {block.group!r} in {block.source!r} has only one level "
            f"({levels[0]!r}); a group-level effect needs at least two groups"
        )
    if len(levels) >= len(data):
        raise DataError(
            f"grouping factor {block.group!r} in {block.source!r} has {len(levels)} levels for "
            f"{len(data)} rows: every row is its own group, so its effect cannot be told apart "
            "from the residual"
        )
    return GroupingFactor(name=block.group, levels=tuple(levels), codes=codes.astype(np.int64).reshape(-1))


def quote_list(items) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(repr(i) for i in items[:12])
    return shown + (f" and {len(items) - 12} more" if len(items) > 12 else "")
