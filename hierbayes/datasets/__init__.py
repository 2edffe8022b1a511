"""Real data sets shipped with hierbayes, as their R packages distribute them.

- ``london_exam``: 4,059 pupils in 65 Inner London schools (mlmRev::Exam; Goldstein, Rasbash
  et al. 1993, "A multilevel analysis of school examination results", Oxford Review of
  Education 19, 425-433).
- ``sleepstudy``: reaction times over 10 days of sleep deprivation, 18 subjects
  (lme4::sleepstudy; Belenky et al. 2003, Journal of Sleep Research 12, 1-12).
- ``orthodont``: jaw growth of 27 children at ages 8-14 (nlme::Orthodont; Potthoff & Roy
  1964, Biometrika 51, 313-326).
- ``penicillin``: penicillin potency, 24 plates crossed with 6 samples (lme4::Penicillin;
  Davies & Goldsmith 1972, Statistical Methods in Research and Production).
- ``cbpp``: contagious bovine pleuropneumonia in 15 herds over 4 periods (lme4::cbpp;
  Lesnoff et al. 2004, American Journal of Veterinary Research 65, 1443-1449).

Identifier columns (school, subject, herd, period...) are read as text, so that ``"1"`` is a
level name and not a number.

``lme4_reference()`` gives lme4's fits of these data sets (lme4 1.1, REML or ML as named, glmer
Laplace for cbpp): fixed effects and their SEs, ``as.data.frame(VarCorr(m))`` rows, logLik,
AIC, BIC and the conditional modes. Pass a record to ``fit.compare_frequentist(reference=)``.
"""

from __future__ import annotations

from importlib import resources

import json

import pandas as pd

__all__ = ["load", "names", "lme4_reference", "LME4_REFERENCE"]

#: the shipped lme4 fits, a JSON list of records (``reference=`` accepts the path too)
LME4_REFERENCE = resources.files(__name__) / "data" / "lme4_reference.json"

_TEXT_COLUMNS = {
    "london_exam": ["school", "student"],
    "sleepstudy": ["Subject"],
    "orthodont": ["Subject"],
    "penicillin": ["plate", "sample"],
    "cbpp": ["herd", "period"],
}


def names() -> list[str]:
    """The names ``load`` accepts."""
    return sorted(_TEXT_COLUMNS)


def load(name: str) -> pd.DataFrame:
    """A shipped data set as a DataFrame: ``hb.datasets.load("london_exam")``."""
    if name not in _TEXT_COLUMNS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(names())}")
    path = resources.files(__name__) / "data" / f"{name}.csv"
    with resources.as_file(path) as file:
        return pd.read_csv(file, dtype={c: str for c in _TEXT_COLUMNS[name]})


def lme4_reference(name: str | None = None) -> dict:
    """lme4's fit of a shipped data set by model name (``"london_rs_ml"``); without a name, every
    record by name."""
    records = {r["name"]: r for r in json.loads(LME4_REFERENCE.read_text())}
    if name is None:
        return records
    if name not in records:
        raise ValueError(f"no lme4 reference named {name!r}; available: {', '.join(records)}")
    return records[name]
