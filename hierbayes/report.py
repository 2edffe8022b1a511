"""``fit.report(out)``: one folder with everything a report needs.

``index.html`` is self-contained (figures embedded as PNG), ``report.md`` has the same tables
in Markdown with the figures beside it in ``figures/``, and every table is also a CSV. The
sections: model, data, priors, diagnostics, fixed effects, variance components, ICC, R², the
frequentist fit side by side (where statsmodels can fit the structure), shrinkage, ranks, and
the figures.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .frequentist import UnsupportedStructure

__all__ = ["write_report"]


def write_report(fit, out, at: dict | None = None, frequentist: str | None = "REML", figures: bool = True) -> Path:
    """Write the report of ``fit`` into folder ``out``; returns the path of index.html."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    design = fit.design
    notes: list[str] = list(fit.diagnostics.messages)
    sections: list[tuple[str, str, object]] = []  # (title, text, table or None)

    def table(name, title, df, text="", index=False):
        df.to_csv(out / f"{name}.csv", index=index)
        sections.append((title, text, df if index is False else df.reset_index()))

    groups = ", ".join(f"{n} ({f.n_levels} levels)" for n, f in design.factors.items()) or "none"
    sections.append(("Model", f"Formula: {design.spec.formula}\n\nFamily: Gaussian. Grouping factors: {groups}. "
                     f"Sampler: NUTS via {fit.sampler}, {fit.posterior.sizes['chain']} chains x "
                     f"{fit.posterior.sizes['draw']} draws.", None))  # fmt: skip
    used = list(design.columns)
    data_text = f"{design.n_obs} rows used" + (f"; {design.n_dropped} rows with missing values dropped" if design.n_dropped else "")
    table("data", "Data", design.data[used].describe(include="all").T.reset_index().rename(columns={"index": "column"}),
          data_text)  # fmt: skip
    table("priors", "Priors", fit.prior_table())
    d = fit.diagnostics
    diag = {"sampler": fit.sampler, "divergences": d.divergences, "max_rhat": d.max_rhat,
            "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail, "warnings": list(d.messages)}  # fmt: skip
    (out / "diagnostics.json").write_text(json.dumps(diag, indent=2) + "\n")
    sections.append(("Diagnostics", d.line(), None))
    table("fixef", "Fixed effects", fit.fixef(), "Posterior mean, sd, 95% equal-tailed interval.", index=True)
    table("varcorr", "Variance components (SDs and correlations)", fit.varcorr())
    table("r2", "R²", _quiet(fit.r2, notes, at=at))
    if design.blocks:
        table("variance_components", "Variance at each level", _quiet(fit.variance_components, notes, at=at),
              "Posterior mean, sd and 95% highest-density interval of each level's variance and its share.")  # fmt: skip
        table("icc", "Intraclass correlation", _quiet(fit.icc, notes, at=at))
        if frequentist:
            try:
                table("frequentist", f"Frequentist ({frequentist}) side by side", fit.compare_frequentist(frequentist),
                      "diff_sd = (posterior mean - frequentist estimate) / posterior sd.")  # fmt: skip
            except UnsupportedStructure as err:
                sections.append((f"Frequentist ({frequentist}) side by side", f"Not available: {err}", None))
        table("ranef", "Group-level deviations (ranef)", fit.ranef())
        table("coef", "Group-level coefficients (coef: fixed + deviation)", fit.coef())
        for factor in design.factors:
            table(f"shrinkage_{_safe(factor)}", f"Shrinkage: {factor}", fit.shrinkage(factor))
            table(f"ranks_{_safe(factor)}", f"Ranks of {factor} on the intercept" if _has_intercept(fit, factor)
                  else f"Ranks of {factor}", fit.ranks(term=_first_term(fit, factor), group=factor))  # fmt: skip
    images = _figures(fit, out / "figures", at, notes) if figures else []  # their warnings become notes too
    sections.append(("Notes", "\n".join(f"- {n}" for n in notes) or "None.", None))
    summary = fit.summary()
    (out / "summary.txt").write_text(summary + "\n")
    (out / "report.md").write_text(_markdown(sections, images))
    path = out / "index.html"
    path.write_text(_html(sections, images, summary))
    return path


def _quiet(method, notes, **kw):
    """Call a table method and keep its warnings (e.g. averaging over slopes) as report notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = method(**kw)
    for w in caught:
        if str(w.message) not in notes:
            notes.append(str(w.message))
    return result


def _has_intercept(fit, factor):
    return "(Intercept)" in fit.design.group_terms(factor)


def _first_term(fit, factor):
    return fit.design.group_terms(factor)[0]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _figures(fit, folder: Path, at, notes: list[str]) -> list[tuple[str, str, str]]:
    """(caption, file name, base64 PNG) of every figure, also saved as PNG into ``folder``."""
    from . import plots

    design = fit.design
    made = [("Fixed effects", "forest", lambda: plots.plot_forest(fit))]
    if design.blocks:
        made.append(("Variance components and ICC", "variance", lambda: _quiet(plots.plot_variance, notes, fit=fit, at=at)))
        made.append(("Prior and posterior of the variance parameters", "prior_posterior",
                     lambda: plots.plot_variance(fit, prior=True)))  # fmt: skip
        for factor in design.factors:
            for term in design.group_terms(factor):
                made.append((f"{factor}: {term}, sorted", f"caterpillar_{_safe(factor)}_{_safe(term)}",
                             lambda f=factor, t=term: plots.plot_caterpillar(fit, term=t, group=f)))  # fmt: skip
            made.append((f"Shrinkage of {factor}", f"shrinkage_{_safe(factor)}",
                         lambda f=factor: plots.plot_shrinkage(fit, group=f)))  # fmt: skip
            made.append((f"Ranks of {factor}", f"ranks_{_safe(factor)}",
                         lambda f=factor: plots.plot_ranks(fit, term=_first_term(fit, f), group=f)))  # fmt: skip
        x = _slope_column(fit)
        if x is not None:
            factor = next(b.group for b in design.blocks if x in b.terms)
            made.append((f"Fitted lines against {x}", "fitted", lambda: plots.plot_fitted(fit, x, group=factor)))
    made.append(("Posterior predictive check", "ppc", lambda: plots.plot_ppc(fit)))
    made.append(("Trace plots", "trace", lambda: plots.plot_trace(fit)))
    images = []
    for caption, name, draw in made:
        fig = draw()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        (folder / f"{name}.png").write_bytes(buffer.getvalue())
        images.append((caption, f"{name}.png", base64.b64encode(buffer.getvalue()).decode("ascii")))
    return images


def _slope_column(fit):
    """A numeric data column that is also a group-level slope (for the fitted-lines figure)."""
    data = fit.design.data
    for block in fit.design.blocks:
        for term in block.terms:
            if term in data.columns and pd.api.types.is_numeric_dtype(data[term]):
                group_cols = [c for b in fit.design.spec.blocks if b.group == block.group for c in b.group_columns]
                if len(set(group_cols)) == 1:
                    return term
    return None


# --- writers ------------------------------------------------------------------------------


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.4g}"
    return str(v)


def _markdown(sections, images) -> str:
    lines = ["# Model report", ""]
    for title, text, df in sections:
        lines += [f"## {title}", ""]
        if text:
            lines += [text, ""]
        if df is not None:
            cols = list(df.columns)
            lines.append("| " + " | ".join(map(str, cols)) + " |")
            lines.append("|" + "---|" * len(cols))
            for _, row in df.head(100).iterrows():
                lines.append("| " + " | ".join(_fmt(row[c]).replace("|", "\\|") for c in cols) + " |")
            if len(df) > 100:
                lines.append(f"\n({len(df) - 100} more rows in the CSV)")
            lines.append("")
    lines += ["## Figures", ""]
    lines += [f"![{caption}](figures/{name})\n" for caption, name, _ in images]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}img{max-width:100%}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:12px}figure{margin:1.5em 0}"""


def _html(sections, images, summary) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hierbayes report</title>"
             f"<style>{_CSS}</style></head><body><h1>Model report</h1>"]  # fmt: skip
    for title, text, df in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if text:
            parts.append("".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line))
        if df is not None:
            shown = df.head(100)
            parts.append(shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0,
                                       classes=f"table-{_safe(title)}"))  # fmt: skip
            if len(df) > 100:
                parts.append(f"<p>({len(df) - 100} more rows in the CSV)</p>")
    parts.append("<h2>Summary</h2><pre>" + html.escape(summary) + "</pre><h2>Figures</h2>")
    for caption, name, png in images:
        parts.append(f"<figure id='{_safe(name)}'><figcaption>{html.escape(caption)}</figcaption>"
                     f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'></figure>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)
