"""``fit.report(out)``: one folder with everything a report needs.

``index.html`` is self-contained (figures embedded as PNG), ``report.md`` has the same content
in Markdown with the figures beside it in ``figures/``, and every table is also a CSV. It
reads like a paper's results section: the model and data; the summary (lmer-like text beside
the forest plot), fixed effects, variance components, ICC and R²; the key figures; the
frequentist fit side by side; diagnostics; the long group-level tables (cut to their first and
last rows, with the CSV linked); notes; and a provenance footer (versions, seed, sampler
settings, dates). Every posterior interval is 95% equal-tailed, and every quantity that
depends on the covariate values ``at`` says which values were used.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from . import plots
from .frequentist import UnsupportedStructure

__all__ = ["write_report"]

ETI = "95% equal-tailed interval"
LONG = 12  # tables with more rows are cut to their first and last KEEP rows
KEEP = 5
WIDE = 800  # figures wider than this many pixels get a row of their own
DIAGNOSTIC_FIGURES = ("trace", "ppc", "prior_posterior")


@dataclass
class Table:
    name: str  # the CSV file's stem
    title: str
    df: pd.DataFrame
    caption: str = ""
    fold: bool = False  # shown inside <details> even when short


@dataclass
class Figure:
    name: str  # the PNG file's stem
    caption: str
    png: bytes


@dataclass
class Pre:
    text: str
    caption: str = ""


def write_report(fit, out, at: dict | None = None, frequentist: str | None = "REML", figures: bool = True,
                 comparison=None) -> Path:  # fmt: skip
    """Write the report of ``fit`` into folder ``out``; returns the path of index.html.
    ``comparison``: an ``hb.compare`` result, shown as its own section."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    design = fit.design
    notes: list[str] = list(fit.diagnostics.messages)
    where = plots.at_text(fit, at)  # "" when nothing depends on covariate values

    def table(name, title, df, caption="", index=False, fold=False):
        df.to_csv(out / f"{name}.csv", index=index)
        return Table(name, title, df.reset_index() if index else df, caption, fold)

    freq, unavailable = None, ""
    if frequentist and design.blocks:
        try:
            freq = fit.compare_frequentist(frequentist, interval="eti")
        except UnsupportedStructure as err:
            unavailable = f"Not available: {err}"
    figs = _figures(fit, out / "figures", at, where, freq, notes) if figures else {}

    # --- model and data
    model = [f"Formula: {design.spec.formula}", _model_line(fit, where), _data_line(design)]
    used = list(design.columns)
    model.append(table("data", "Columns used", design.data[used].describe(include="all").T.reset_index()
                       .rename(columns={"index": "column"}), fold=True))  # fmt: skip
    # --- summary and headline tables
    summary = fit.summary()
    (out / "summary.txt").write_text(summary + "\n")
    top = [Pre(summary, f"lmer-style summary; intervals are {ETI}s.")]
    if "forest" in figs:
        top.append(figs.pop("forest"))
    estimates = _estimates(fit, table, at, where, notes)
    sections = [("Model and data", model), ("Summary", [top] if len(top) == 2 else top), ("Estimates", estimates)]
    key = [figs.pop(n) for n in list(figs) if n not in DIAGNOSTIC_FIGURES]
    if key:
        sections.append(("Figures", _rows(key)))
    if comparison is not None:
        sections.append(("Model comparison", _comparison(comparison, table)))
    if freq is not None:
        side = table("frequentist", f"{freq['source'].iloc[0]} and the posterior", freq,
                     f"post_lower, post_upper: posterior {ETI}; freq_lower, freq_upper: 95% Wald confidence "
                     "interval (SDs on the log scale, correlations on Fisher's z scale); diff_sd = (posterior "
                     "mean - frequentist estimate) / posterior sd.")  # fmt: skip
        side.df = side.df.drop(columns="source")  # the title names it; the CSV keeps it
        sections.append((f"Frequentist ({frequentist}) side by side", [side]))
    elif unavailable:
        sections.append((f"Frequentist ({frequentist}) side by side", [unavailable]))
    d = fit.diagnostics
    diag = {"sampler": fit.sampler, "divergences": d.divergences, "max_rhat": d.max_rhat,
            "min_ess_bulk": d.min_ess_bulk, "min_ess_tail": d.min_ess_tail, "warnings": list(d.messages)}  # fmt: skip
    (out / "diagnostics.json").write_text(json.dumps(diag, indent=2) + "\n")
    diagnostics = [d.line(), *_rows(list(figs.values())), table("priors", "Priors", fit.prior_table())]
    sections.append(("Diagnostics", diagnostics))
    if design.blocks:
        sections.append(("Group-level tables", _group_tables(fit, table)))
    if notes:
        sections.append(("Notes", [f"- {n}" for n in notes]))
    footer = _provenance(fit)
    (out / "report.md").write_text(_markdown(sections, footer))
    path = out / "index.html"
    path.write_text(_html(sections, footer))
    return path


def _comparison(result, table) -> list:
    """The LOO table (best first) and, where there are ML refits, R's anova() layout."""
    unit = "row (a new observation in a known group)" if result.by == "row" else f"{result.by} (a new {result.by})"
    items = [table("comparison", "PSIS-LOO, best first", result.table,
                   f"One log-likelihood term per {unit}. elpd_diff and diff_se: against the best model; "
                   "weight: stacking weights (arviz-stats compare).", index=True)]  # fmt: skip
    if len(result.anova):
        items.append(table("anova", "Maximum-likelihood refits, as R's anova()", result.anova,
                           "Refitted by ML (not REML); each likelihood-ratio test is against the row above.",
                           index=True))  # fmt: skip
    return items + [f"Note: {n}" for n in result.notes]


def _estimates(fit, table, at, where, notes) -> list[Table]:
    """The headline tables: fixed effects, variance components, variance at each level, ICC, R²."""
    estimates = [table("fixef", "Fixed effects", fit.fixef(), f"Posterior mean, sd and {ETI} (lower, upper); "
                       "R-hat and bulk ESS.", index=True),
                 table("varcorr", "Variance components (SDs and correlations)", fit.varcorr(),
                       f"Posterior mean, sd and {ETI} of each SD and correlation; vcov: posterior mean of "
                       "the variance or covariance.")]  # fmt: skip
    if fit.design.blocks:
        at_clause = f", {where}" if where else ""
        estimates.append(table("variance_components", "Variance at each level",
                               _quiet(fit.variance_components, notes, at=at, interval="eti"),
                               f"Posterior mean, sd and {ETI} of each level's variance and its share of the "
                               f"total{at_clause}."))  # fmt: skip
        estimates.append(table("icc", "Intraclass correlation", _quiet(fit.icc, notes, at=at, interval="eti"),
                               f"Posterior mean, sd and {ETI}{at_clause}."))  # fmt: skip
    nakagawa = f"Nakagawa's R² uses the group-level variance {where}; " if where else ""
    estimates.append(table("r2", "R²", _quiet(fit.r2, notes, at=at, interval="eti"),
                           f"Posterior mean, sd and {ETI}. {nakagawa}Bayesian R² uses the fitted rows."))  # fmt: skip
    return estimates


def _model_line(fit, where) -> str:
    how = fit.algorithm
    if fit.method == "marginal":
        how += f"; the group effects of {', '.join(fit.integrated)} integrated out and drawn exactly afterwards"
    elif fit.method == "laplace":
        how += (f"; the group effects of {', '.join(fit.integrated)} integrated out by a Laplace approximation "
                "and drawn from it afterwards")
    text = f"Family: {fit.design.family.label}. Fit: {how}."
    if where:
        text += f" ICC, variance shares and Nakagawa's R² are {where}."
    return text


def _data_line(design) -> str:
    groups = ", ".join(f"{n} ({f.n_levels} levels)" for n, f in design.factors.items()) or "none"
    return (f"Data: {design.n_obs} rows used ({design.dropped_text()}); response {design.response}; "
            f"grouping factors: {groups}.")  # fmt: skip


def _group_tables(fit, table) -> list:
    tables = [table("ranef", "Group-level deviations (ranef)", fit.ranef(), f"Posterior mean, sd and {ETI}."),
              table("coef", "Group-level coefficients (coef: fixed + deviation)", fit.coef(),
                    f"Posterior mean, sd and {ETI}.")]  # fmt: skip
    for factor in fit.design.factors:
        tables.append(table(f"shrinkage_{_safe(factor)}", f"Shrinkage: {factor}", fit.shrinkage(factor, interval="eti"),
                            f"Group size, no-pooling and complete-pooling estimates, and the partial-pooling "
                            f"posterior mean, sd and {ETI}."))  # fmt: skip
        term = fit.design.group_terms(factor)[0]
        title = f"Ranks of {factor} on the intercept" if term == "(Intercept)" else f"Ranks of {factor} on {term}"
        tables.append(table(f"ranks_{_safe(factor)}", title, fit.ranks(term=term, group=factor),
                            f"Sorted by median rank (1 = highest); lower, upper: {ETI} of the rank; p_top: "
                            "probability of ranking first."))  # fmt: skip
    return tables


def _quiet(method, notes, **kw):
    """Call a table method and keep its warnings (e.g. averaging over slopes) as report notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = method(**kw)
    for w in caught:
        if str(w.message) not in notes:
            notes.append(str(w.message))
    return result


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _rows(figures: list[Figure]) -> list:
    """Wide figures on a row of their own, the others two to a row (side by side in the HTML)."""
    rows, pending = [], []
    for fig in figures:
        if int.from_bytes(fig.png[16:20], "big") > WIDE:  # the PNG's width in pixels
            rows.append(fig)
        else:
            pending.append(fig)
            if len(pending) == 2:
                rows.append(pending)
                pending = []
    return rows + ([pending] if pending else [])


def _figures(fit, folder: Path, at, where, comparison, notes) -> dict[str, Figure]:
    """Every figure by name, in report order; also saved as PNG into ``folder``."""
    design = fit.design
    made = []

    def add(name, caption, draw):
        made.append((name, caption, draw))

    forest = f"Fixed effects: posterior mean, 50% and {ETI}s"
    if comparison is not None:
        forest += f"; red, just below each: {comparison['source'].iloc[0]} estimate and 95% Wald CI"
    add("forest", forest + ".", lambda: plots.plot_forest(fit, frequentist=comparison))
    if design.blocks:
        add("variance", f"Variance parameters and ICC: posterior density, mean and {ETI}"
            + (f"; ICC {where}." if where else "."), lambda: _quiet(plots.plot_variance, notes, fit=fit, at=at))
        for factor in design.factors:
            for term in design.group_terms(factor):
                add(f"caterpillar_{_safe(factor)}_{_safe(term)}",
                    f"{factor}: deviations on {term}, sorted; posterior mean and {ETI}.",
                    lambda f=factor, t=term: plots.plot_caterpillar(fit, term=t, group=f))
            add(f"shrinkage_{_safe(factor)}",
                f"Shrinkage of {factor}: each group's own (no-pooling) estimate to its partial-pooling posterior mean.",
                lambda f=factor: plots.plot_shrinkage(fit, group=f))
            term = design.group_terms(factor)[0]
            add(f"ranks_{_safe(factor)}", f"Ranks of {factor} on {term}: median rank and {ETI}.",
                lambda f=factor, t=term: plots.plot_ranks(fit, term=t, group=f))
        x = _slope_column(fit)
        if x is not None:
            factor = next(b.group for b in design.blocks if x in b.terms)
            add("fitted", f"Fitted lines against {x}: the population line with its 95% equal-tailed band, "
                f"each {factor}'s line.", lambda: plots.plot_fitted(fit, x, group=factor))
    add("trace", "Trace plots: one colour per chain (the chains should overlap).", lambda: plots.plot_trace(fit))
    add("ppc", "Posterior predictive check: the data's density against 50 replicated data sets.",
        lambda: plots.plot_ppc(fit))
    if design.blocks:
        add("prior_posterior", "Prior (faint grey) and posterior of each variance parameter, over the posterior's "
            "range (its 0.5-99.5% quantiles, padded).", lambda: plots.plot_variance(fit, prior=True))
    images = {}
    for name, caption, draw in made:
        fig = draw()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        (folder / f"{name}.png").write_bytes(buffer.getvalue())
        images[name] = Figure(name, caption, buffer.getvalue())
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


def _provenance(fit) -> list[str]:
    """Versions, seed, sampler settings and dates, one item each."""
    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    post = fit.idata.posterior
    stats = fit.idata["sample_stats"].attrs if "sample_stats" in fit.idata.children else {}
    settings = json.loads(stats.get("inference_library_settings", "{}")).get("settings", {})
    tune = post.attrs.get("tuning_steps", settings.get("num_tune", "unknown"))
    seed = f"random_seed {fit.random_seed}" if fit.random_seed is not None else "random_seed not set (a refit draws anew)"
    if "seed" in settings:
        seed += f" (nutpie's own seed {settings['seed']})"
    fitted = post.attrs.get("created_at") or stats.get("created_at")
    return [
        f"hierbayes {version('hierbayes')}, PyMC {version('pymc')}, nutpie {version('nutpie')}, ArviZ {version('arviz')}",
        f"sampler: {fit.algorithm}, {post.sizes['chain']} chains x {post.sizes['draw']} draws, tune {tune}",
        *([f"method: {fit.method}, chosen because: {fit.method_reason}"] if fit.method_reason else []),
        f"seed: {seed}",
        f"fitted {_date(fitted) if fitted else 'at an unrecorded time'}; "
        f"report written {_date(datetime.now(timezone.utc).isoformat())}",
    ]


def _date(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- writers ------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    if hasattr(v, "dtype") and v.dtype.kind == "f":
        return _fmt(float(v))
    return "" if v is None else str(v)


def _cut(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The table as text, long ones cut to their first and last KEEP rows; and how many rows were left out."""
    text = df.apply(lambda col: col.map(_fmt)).astype(str)
    if len(df) <= LONG:
        return text, 0
    gap = pd.DataFrame([["..."] * df.shape[1]], columns=df.columns)
    return pd.concat([text.head(KEEP), gap, text.tail(KEEP)], ignore_index=True), len(df) - 2 * KEEP


def _markdown(sections, footer) -> str:
    lines = ["# Model report", ""]
    for title, items in sections:
        lines += [f"## {title}", ""]
        for item in _flat(items):
            if isinstance(item, str):
                lines += [item, ""]
            elif isinstance(item, Pre):
                lines += [item.caption, "", "```", item.text, "```", ""]
            elif isinstance(item, Figure):
                lines += [f"![{item.caption}](figures/{item.name}.png)", "", f"*{item.caption}*", ""]
            else:
                lines += _markdown_table(item)
    lines += ["---", "", "Provenance: " + "; ".join(footer) + ".", ""]
    return "\n".join(lines)


def _markdown_table(t: Table) -> list[str]:
    shown, left_out = _cut(t.df)
    lines = [f"### {t.title}", ""]
    if t.caption:
        lines += [t.caption, ""]
    lines.append("| " + " | ".join(map(str, shown.columns)) + " |")
    lines.append("|" + "---|" * shown.shape[1])
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)]
    more = f"{len(t.df)} rows, the first and last {KEEP} shown; all" if left_out else "As CSV"
    return lines + ["", f"{more} in [{t.name}.csv]({t.name}.csv)", ""]


def _flat(items):
    for item in items:
        yield from _flat(item) if isinstance(item, list) else [item]


_CSS = """body{font-family:system-ui,sans-serif;max-width:1340px;margin:1em auto;padding:0 1em;color:#222;
font-size:14px}h1{font-size:22px;margin:.3em 0}h2{font-size:18px;border-bottom:1px solid #ddd;margin:1.4em 0 .5em}
h3{font-size:15px;margin:1em 0 .3em}p{margin:.3em 0}.caption{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:.3em 0 .8em}td,th{border:1px solid #ccc;padding:2px 7px;
text-align:right}th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}img{max-width:100%}
pre{background:#f7f7f7;padding:.6em;font-size:12px;white-space:pre-wrap;margin:.3em 0}figure{margin:.5em 0}
figcaption{color:#555;font-size:13px}.row{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1.5em;
align-items:start}.tables{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));column-gap:2em}
details{margin:.2em 0 .8em}footer{margin-top:2em;border-top:1px solid #ddd;color:#555;font-size:12px}"""


def _html(sections, footer) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hierbayes report</title>"
             f"<style>{_CSS}</style></head><body><h1>Model report</h1>"]  # fmt: skip
    for title, items in sections:
        parts.append(f"<section id='{_safe(title.lower())}'><h2>{html.escape(title)}</h2>")
        wrap = title == "Estimates"  # the small headline tables, side by side where they fit
        parts.append("<div class='tables'>" if wrap else "")
        parts += [_html_item(item) for item in items]
        parts.append("</div></section>" if wrap else "</section>")
    parts.append("<footer><p><b>Provenance.</b> " + " &middot; ".join(html.escape(f) for f in footer) + "</p></footer>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_item(item) -> str:
    if isinstance(item, list):
        return "<div class='row'>" + "".join(f"<div>{_html_item(i)}</div>" for i in item) + "</div>"
    if isinstance(item, str):
        return f"<p>{html.escape(item)}</p>"
    if isinstance(item, Pre):
        return f"<p class='caption'>{html.escape(item.caption)}</p><pre>{html.escape(item.text)}</pre>"
    if isinstance(item, Figure):
        png = base64.b64encode(item.png).decode("ascii")
        caption = html.escape(item.caption)
        return (f"<figure id='{_safe(item.name)}'><img alt='{caption}' src='data:image/png;base64,{png}'>"
                f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip
    shown, left_out = _cut(item.df)
    body = shown.to_html(index=False, border=0, classes=f"table-{_safe(item.name)}")
    link = f"<a href='{item.name}.csv'>{item.name}.csv</a>"
    caption = f"<p class='caption'>{html.escape(item.caption)}</p>" if item.caption else ""
    if left_out:
        return (f"<div><h3>{html.escape(item.title)}</h3>{caption}<p class='caption'>{len(item.df)} rows; all in "
                f"{link}.</p><details><summary>First and last {KEEP} rows</summary>{body}</details></div>")  # fmt: skip
    if item.fold:
        return f"<details><summary>{html.escape(item.title)}</summary>{caption}{body}<p>{link}</p></details>"
    return f"<div><h3>{html.escape(item.title)}</h3>{caption}{body}<p class='caption'>{link}</p></div>"
