"""``hierbayes fit CONFIG.yaml --out DIR``: fit the configured model and write its tables.

The YAML file holds ``formula``, ``data`` (a shipped data set's name or a CSV path, relative
to the YAML file), and optionally ``reference``, ``priors``, ``sampling`` (the keyword
arguments of ``hb.fit``: draws, tune, chains, random_seed, sampler, target_accept), ``at``
(covariate values for the ICC and variance components of random-slope models) and
``frequentist`` (``REML``, ``ML`` or ``none``: the side-by-side fit, default REML).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from . import datasets
from .api import fit
from .frequentist import UnsupportedStructure

_SAMPLING_KEYS = {"draws", "tune", "chains", "random_seed", "sampler", "target_accept", "progressbar"}
_TOP_KEYS = {"formula", "data", "reference", "priors", "sampling", "family", "name", "description", "at",
             "frequentist"}  # fmt: skip


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
    """Fit the model of ``config_path`` and write summary.txt and CSV tables into ``out``.

    Tables: fixef, varcorr, priors; with group-level effects also ranef, coef,
    variance_components, icc, shrinkage (one grouping factor) and the frequentist side by side;
    r2 always. Returns the fit and the text printed.
    """
    config = load_config(config_path)
    sampling = {**config["sampling"], **(overrides or {})}
    result = fit(
        config["formula"],
        config["data"],
        family=config.get("family", "gaussian"),
        priors=config.get("priors"),
        reference=config.get("reference"),
        **sampling,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    result.fixef().to_csv(out / "fixef.csv")
    result.varcorr().to_csv(out / "varcorr.csv", index=False)
    result.prior_table().to_csv(out / "priors.csv", index=False)
    result.r2(at=config.get("at")).to_csv(out / "r2.csv", index=False)
    if result.design.blocks:
        result.ranef().to_csv(out / "ranef.csv", index=False)
        result.coef().to_csv(out / "coef.csv", index=False)
        result.variance_components(at=config.get("at")).to_csv(out / "variance_components.csv", index=False)
        result.icc(at=config.get("at")).to_csv(out / "icc.csv", index=False)
        if len(result.design.factors) == 1:
            result.shrinkage().to_csv(out / "shrinkage.csv", index=False)
        method = str(config.get("frequentist", "REML")).upper()
        if method != "NONE":
            try:
                result.compare_frequentist(method).to_csv(out / "frequentist.csv", index=False)
            except UnsupportedStructure as err:
                summary += f"\n\nFrequentist side by side not written: {err}"
    (out / "summary.txt").write_text(summary + "\n")
    d = result.diagnostics
    (out / "diagnostics.json").write_text(json.dumps({
        "sampler": result.sampler, "divergences": d.divergences, "max_rhat": d.max_rhat,
        "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail, "warnings": list(d.messages),
    }, indent=2) + "\n")  # fmt: skip
    return result, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hierbayes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="fit the model of a YAML configuration and write its tables")
    p.add_argument("config", help="YAML file: formula, data, priors, sampling")
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
    print(f"\nTables written to {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
