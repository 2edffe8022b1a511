"""hierbayes fit CONFIG.yaml --out DIR: fit the configured model and write its report.

The YAML file holds formula and data (a shipped data set's name or a CSV path, relative
to the YAML file), and optionally reference, priors, sampling (the keyword arguments of
hb.fit: draws, tune, chains, random_seed, sampler, target_accept), at (covariate values
for the ICC and variance components of random-slope models) and frequentist (REML, ML or
none: the side-by-side fit, default REML).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from importlib import metadata

from . import datasets
from .api import fit
from .families import FAMILIES

# the YAML keys, each with what it takes (fit --help lists them)
_KEY_HELP = {
    "formula": "the model in lme4 syntax, e.g. normexam ~ standLRT + (standLRT | school)  [required]",
    "data": f"a shipped data set ({', '.join(datasets.names())}) or a CSV path relative to the YAML file  [required]",
    "family": f"the response family ({', '.join(FAMILIES)}); default gaussian, or binomial for cbind(s, f)",
    "link": "a link other than the family's canonical one (probit, cloglog, identity, sqrt)",
    "reference": "reference level per categorical column, e.g. {schgend: mixed}",
    "priors": 'priors by brms parameter name, e.g. {sd: "HalfNormal(1)", cor: "LKJ(4)"}',
    "sampling": "draws, tune, chains, random_seed, sampler (auto, nutpie, pymc), target_accept, progressbar",
    "at": "covariate values for the ICC and variance shares of random-slope models, e.g. {standLRT: 0}",
    "frequentist": "REML, ML or none: the frequentist fit beside the posterior (default REML)",
    "name": "a name for the model (free text)",
    "description": "a description (free text)",
}
_SAMPLING_KEYS = {"draws", "tune", "chains", "random_seed", "sampler", "target_accept", "progressbar"}
_TOP_KEYS = set(_KEY_HELP)


class ConfigError(ValueError):
    """The YAML configuration is missing something or has an unknown key."""


def load_config(path: str | Path) -> dict:
    """Read and check a model configuration; returns it with ``data`` loaded as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {str(path)!r} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of keys to values")
    unknown = set(config) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    for key in ("formula", "data"):
        if key not in config:
            raise ConfigError(f"{path}: the configuration needs '{key}'")
    if str(config.get("frequentist", "REML")).upper() not in ("REML", "ML", "NONE"):
        raise ConfigError(f"{path}: frequentist must be REML, ML or none, not {config['frequentist']!r}")
    if config.get("at") is not None and not isinstance(config["at"], dict):
        raise ConfigError(f"{path}: at must map covariates to values, e.g. at: {{standLRT: 0}}")
    sampling = config.get("sampling") or {}
    unknown = set(sampling) - _SAMPLING_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown sampling key(s) {sorted(unknown)}; allowed: {sorted(_SAMPLING_KEYS)}")
    source = str(config["data"])
    if source in datasets.names():
        data = datasets.load(source)
    else:
        csv = (path.parent / source).resolve()
        if not csv.is_file():
            raise ConfigError(
                f"{path}: data {source!r} is neither a shipped data set ({', '.join(datasets.names())}) "
                f"nor a CSV file (looked for {csv})"
            )
        data = pd.read_csv(csv)
    return {**config, "data": data, "sampling": sampling}


def run_fit(config_path: str | Path, out: str | Path, overrides: dict | None = None):
    """Fit the model of ``config_path`` and write its report into ``out`` (``fit.report``):
    index.html, report.md, summary.txt, diagnostics.json, CSV tables and figures.
    Returns the fit and its summary."""
    config = load_config(config_path)
    sampling = {**config["sampling"], **(overrides or {})}
    result = fit(
        config["formula"],
        config["data"],
        family=config.get("family"),
        link=config.get("link"),
        priors=config.get("priors"),
        reference=config.get("reference"),
        **sampling,
    )
    method = str(config.get("frequentist", "REML")).upper()
    result.report(out, at=config.get("at"), frequentist=None if method == "NONE" else method)
    summary = result.summary()
    return result, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hierbayes", description=__doc__.splitlines()[0],
                                     epilog="Run 'hierbayes fit --help' for the configuration keys.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"hierbayes {metadata.version('hierbayes')}")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = "\n".join(f"  {k:<12} {v}" for k, v in _KEY_HELP.items())
    p = sub.add_parser("fit", help="fit the model of a YAML configuration and write its report",
                       description="Fit the model of a YAML configuration; print its summary and write its\n"
                                   "report (index.html, report.md, CSV tables, figures/) into --out.",
                       epilog=f"configuration keys (YAML):\n{keys}\n\nexample: configs/london_schools.yaml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("config", help="YAML file: formula, data, and the optional keys below")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.add_argument("--draws", type=int, help="override sampling.draws")
    p.add_argument("--tune", type=int, help="override sampling.tune")
    p.add_argument("--chains", type=int, help="override sampling.chains")
    p.add_argument("--seed", type=int, dest="random_seed", help="override sampling.random_seed")
    args = parser.parse_args(argv)
    overrides = {k: v for k in ("draws", "tune", "chains", "random_seed") if (v := getattr(args, k)) is not None}
    try:
        _, summary = run_fit(args.config, args.out, overrides)
    except (ValueError, ImportError) as err:
        print(f"hierbayes: error: {err}", file=sys.stderr)
        return 2
    print(summary)
    print(f"\nReport written to {Path(args.out) / 'index.html'} (tables as CSV, figures in figures/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
