"""New rows evaluated like the fitted data, for predictions and for variances at chosen values.

The fixed part and the group-level terms are evaluated with the transformations learnt on the
fitted data (``scale(x)``, factor codings); group levels are matched to the fitted ones whether
they are written as numbers or as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .design import DataError, Design, level_name, level_names, level_order, names_in, quote_list, split_offset

__all__ = ["NewData", "evaluate_new_data"]


@dataclass(frozen=True)
class NewData:
    """New rows evaluated like the fitted data: X, Z per block, and each row's group level."""

    X: np.ndarray
    Z: dict[str, np.ndarray]
    levels: dict[str, np.ndarray]  # grouping factor -> level name of every row
    offset: np.ndarray | None = None  # the formula's offset(...) terms on the new rows


def evaluate_new_data(
    design: Design, newdata: pd.DataFrame, factors: list[str] | None = None, fixed: bool = True
) -> NewData:
    """Evaluate the fixed part (unless ``fixed`` is false) and the blocks of ``factors``
    (default all) on ``newdata``.

    Transformations learnt on the fitted data (``scale(x)``, factor codings) are applied as
    they were; a categorical value the model has not seen is an error naming the column.
    Grouping factors may have new levels: their names are returned for the caller to handle.
    A group level may be given as number or text (1, 1.0 and "1" are all level "1").
    """
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    if len(newdata) == 0:
        raise DataError("newdata has no rows")
    spec = design.spec
    factors = list(design.factors) if factors is None else factors
    group_columns = {b.group: b.group_columns for b in spec.blocks}
    wanted = [(f"the fixed part {spec.fixed!r}", names_in(spec.fixed, design.columns))] if fixed else []
    for block in spec.blocks:
        if block.group in factors:
            wanted.append((f"random-effect term {block.source!r}", names_in(block.terms, design.columns)))
    term_columns = list(dict.fromkeys(name for _, names in wanted for name in names))  # not only grouping
    wanted += [(f"grouping factor {f!r}", list(group_columns[f])) for f in factors]
    used: list[str] = []
    for where, names in wanted:
        for name in names:
            if name not in newdata.columns:
                raise DataError(f"newdata has no column {name!r}, which {where} needs")
            if newdata[name].isna().any():
                raise DataError(f"newdata column {name!r} has {int(newdata[name].isna().sum())} missing values")
            if name not in used:
                used.append(name)

    prepared = newdata[used].copy()
    for col in term_columns:
        if col in design.categories:
            levels = design.categories[col]
            values = _match_levels(level_names(prepared[col]), levels)
            unseen = sorted(set(values) - set(levels))
            if unseen:
                raise DataError(
                    f"newdata column {col!r} has level(s) {quote_list(unseen)} that the fitted data did not "
                    f"have (levels: {quote_list(levels)})"
                )
            prepared[col] = pd.Categorical(values, categories=levels, ordered=True)
        elif not pd.api.types.is_numeric_dtype(prepared[col]):
            raise DataError(f"newdata column {col!r} must be numeric, as it was in the fitted data")

    def evaluate(matrix, where):
        if matrix is None:
            return np.zeros((len(prepared), 0))
        try:
            return np.asarray(matrix.evaluate_new_data(prepared).design_matrix, dtype=float)
        except Exception as err:
            raise DataError(f"cannot evaluate the {where} on newdata: {err}") from err

    X = evaluate(design.fixed_matrix, f"fixed part {spec.fixed!r}") if fixed else None
    X, offset = split_offset(X, design.offset_columns) if X is not None else (None, None)
    Z, evaluated = {}, {}
    for block in design.blocks:
        if block.group in factors:
            key = id(block.matrix)
            if key not in evaluated:
                evaluated[key] = evaluate(block.matrix, f"group-level terms of {block.name!r}")
            Z[block.name] = evaluated[key][:, list(block.columns)]
    levels = {}  # each row's level name, matched to the fit's whatever the column's type
    for factor in factors:
        parts = [_match_levels(level_names(newdata[c]), level_order(design.data[c])) for c in group_columns[factor]]
        levels[factor] = np.array([":".join(row) for row in zip(*parts)], dtype=object)
    return NewData(X=X, Z=Z, levels=levels, offset=offset)


def _match_levels(names: np.ndarray, levels) -> np.ndarray:
    """New data's level names matched to the fitted ``levels``: a name the fit has is kept, and a
    number written another way ("1.0" for level "1", or "1" for "1.0") is its level."""
    by_number: dict[str, str | None] = {}
    for level in levels:
        key = _number_name(level)
        if key is not None:
            by_number[key] = None if key in by_number else level  # None: ambiguous
    known = set(levels)
    out = {}
    for name in pd.unique(names):
        key = None if name in known else _number_name(name)
        out[name] = (by_number.get(key) or name) if key is not None else name
    return np.array([out[n] for n in names], dtype=object)


def _number_name(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return level_name(value) if np.isfinite(value) else None
