"""The report: its order, what each table and figure says about intervals and ``at``, its footer."""

import re
from importlib import metadata

import pytest

import hierbayes as hb
from hierbayes.report import KEEP

pytestmark = pytest.mark.sampling


@pytest.fixture(scope="module")
def report(fits, tmp_path_factory):
    """The sleepstudy random-slope model's report at Days = 0: (folder, index.html text)."""
    fit, _ = fits("sleepstudy_rs_reml")
    out = tmp_path_factory.mktemp("report")
    path = fit.report(out, at={"Days": 0})
    return out, path.read_text()


def _h2(page):
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_report_has_every_table_and_figure(report):
    out, page = report
    for title in ["Fixed effects", "Variance components (SDs and correlations)", "Variance at each level",
                  "Intraclass correlation", "R²", "Priors", "Shrinkage: Subject",
                  "Ranks of Subject on the intercept"]:  # fmt: skip
        assert f"<h3>{title}</h3>" in page, title
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(pngs) >= 8
    assert page.count("<img ") == len(pngs) and page.count("data:image/png;base64,") == len(pngs)
    markdown = (out / "report.md").read_text()
    assert all(f"figures/{name}" in markdown for name in pngs)
    assert "| (Intercept) |" in markdown
    for csv in ["fixef", "varcorr", "icc", "r2", "frequentist", "shrinkage_Subject", "ranks_Subject", "priors"]:
        assert (out / f"{csv}.csv").is_file(), csv


def test_report_reads_top_down(report):
    _, page = report
    assert _h2(page) == ["Model and data", "Summary", "Estimates", "Figures", "Frequentist (REML) side by side",
                         "Diagnostics", "Group-level tables"]  # fmt: skip
    summary, estimates = page.index("<h2>Summary</h2>"), page.index("<h2>Estimates</h2>")
    assert summary < page.index("<pre>") < page.index("id='forest'") < estimates  # summary text beside the forest
    model = page[: summary]
    assert "Formula: Reaction ~ Days + (Days|Subject)" in model
    assert "180 rows used (none dropped)" in model and "Subject (18 levels)" in model


def test_every_interval_says_its_kind(report):
    out, page = report
    text = re.sub(r"data:image/png;base64,[^']*", "", page).lower()  # the words, not the images
    assert "hdi" not in text and "highest density" not in text and "highest-density" not in text
    for title in ["Fixed effects", "Variance at each level", "Intraclass correlation", "R²"]:
        section = page[page.index(f"<h3>{title}</h3>"):]
        assert "95% equal-tailed interval" in section[: section.index("<table")], title
    frequentist = page[page.index("<h2>Frequentist"):]
    assert "posterior 95% equal-tailed interval" in frequentist and "95% Wald confidence interval" in frequentist
    assert "95% equal-tailed" in (out / "report.md").read_text()


def test_quantities_that_depend_on_at_say_where_they_were_evaluated(report, fits, tmp_path):
    _, page = report
    for title in ["Variance at each level", "Intraclass correlation", "R²"]:
        section = page[page.index(f"<h3>{title}</h3>"):]
        assert "evaluated at Days = 0" in section[: section.index("<table")], title
    assert "ICC evaluated at Days = 0" in page  # the variance figure's caption
    fit, _ = fits("sleepstudy_rs_reml")
    averaged = fit.report(tmp_path, at=None, frequentist=None, figures=False).read_text()
    assert averaged.count("averaged over the fitted rows (random slopes on Days)") >= 3


def test_notes_only_when_there_are_some(report, fits, tmp_path):
    _, page = report
    assert "Notes" not in _h2(page) and "None." not in page
    fit, _ = fits("sleepstudy_rs_reml")
    with_note = fit.report(tmp_path, frequentist=None, figures=False).read_text()  # no at: the averaging is noted
    assert _h2(with_note)[-1] == "Notes" and "averaged over the fitted rows" in with_note


def test_long_tables_are_cut_and_folded_with_their_csv_linked(report):
    out, page = report
    groups = page[page.index("<h2>Group-level tables</h2>"):]
    for name, rows in [("ranef", 36), ("coef", 36), ("shrinkage_Subject", 36)]:
        assert f"{rows} rows; all in <a href='{name}.csv'>{name}.csv</a>" in groups, name
        table = groups[groups.index(f"table-{name}"):]
        table = table[: table.index("</table>")]
        assert table.count("<tr") == 1 + 2 * KEEP + 1  # header, first and last rows, the gap
        assert (out / f"{name}.csv").is_file()
    assert groups.count("<details>") >= 4
    assert "in [ranef.csv](ranef.csv)" in (out / "report.md").read_text()


def test_footer_gives_the_provenance(report):
    _, page = report
    footer = page[page.index("<footer>"):]
    for text in [f"hierbayes {hb.__version__}", f"PyMC {metadata.version('pymc')}",
                 f"nutpie {metadata.version('nutpie')}", "4 chains x 1000 draws", "tune 1000", "seed:",
                 "fitted 20", "report written 20"]:  # fmt: skip
        assert text in footer, text
