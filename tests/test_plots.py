"""Figures: what they show, read back from the matplotlib objects (the report: test_report.py)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

import hierbayes as hb  # noqa: E402

pytestmark = pytest.mark.sampling


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _segments(ax):
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def test_caterpillar_has_one_interval_per_group_sorted(fits):
    fit, _ = fits("london_rs_ml")
    fig = hb.plot_caterpillar(fit, term="standLRT")
    ax = fig.axes[0]
    (intervals,) = _segments(ax)
    assert len(intervals.get_segments()) == 65
    assert "standLRT" in ax.get_xlabel() and ax.get_ylabel() == "school"
    means = ax.lines[0].get_xdata()
    assert np.all(np.diff(means) >= 0)  # sorted
    ranef = fit.ranef("school")
    assert sorted(means) == pytest.approx(sorted(ranef[ranef.term == "standLRT"]["mean"]))


def test_forest_names_the_terms_and_overlays_the_frequentist_estimates(fits):
    fit, ref = fits("london_rs_ml")
    fig = fit.plot.forest(frequentist="ML")  # every term by default, the intercept too
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert ticks == ["(Intercept)", "standLRT"]
    words = {t.get_text() for ax in fig.axes for t in [*ax.texts, *ax.get_xticklabels(), *ax.get_yticklabels()]}
    assert not words & {"variable", "term", "b"}  # no stray labels of the draws' dimensions
    squares = [line for ax in fig.axes for line in ax.lines if line.get_marker() == "s"]
    assert sorted(x for line in squares for x in line.get_xdata()) == pytest.approx(sorted(ref["fixef"].values()), abs=1e-3)
    assert "equal-tailed" in fig.axes[-1].get_xlabel()


def test_forest_puts_each_frequentist_estimate_just_below_its_term(fits):
    fit, _ = fits("london_rs_ml")
    fig = fit.plot.forest(frequentist="ML")
    freq = fit.compare_frequentist("ML").query("kind == 'fixed'").set_index("var1")
    fixef = fit.fixef()
    intercept, slopes = fig.axes  # the intercept on a panel (and scale) of its own
    for ax in (intercept, slopes):
        (term,) = [t.get_text() for t in ax.get_yticklabels()]
        (y,) = ax.get_yticks()
        mean = next(line for line in ax.lines if line.get_marker() == "o")
        square = next(line for line in ax.lines if line.get_marker() == "s")
        assert mean.get_ydata()[0] == y and mean.get_xdata()[0] == pytest.approx(fixef.loc[term, "mean"])
        assert square.get_ydata()[0] == pytest.approx(y - hb.plots.FREQ_OFFSET)
        assert square.get_xdata()[0] == pytest.approx(freq.loc[term, "freq_estimate"])
    fig.canvas.draw()
    legend = intercept.get_legend()
    assert legend.get_window_extent().y0 >= intercept.get_window_extent().y1  # above the data, not on it
    labels = [t.get_text() for t in legend.get_texts()]
    assert "95% equal-tailed interval" in labels and any("ML" in t and "Wald" in t for t in labels)


def test_forest_of_an_intercept_only_model_has_one_panel(fits):
    fit, _ = fits("penicillin_crossed_reml")
    (ax,) = fit.plot.forest().axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["(Intercept)"]


def test_variance_figure_says_where_the_icc_is_evaluated_and_titles_clear_the_ticks(fits):
    fit, _ = fits("sleepstudy_rs_reml")
    fig = fit.plot.variance(at={"Days": 0})
    assert "ICC Subject\nevaluated at Days = 0" in [ax.get_title() for ax in fig.axes]
    fig.canvas.draw()
    ticks = [t.get_window_extent() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    for ax in fig.axes:
        assert not any(ax.title.get_window_extent().overlaps(t) for t in ticks), ax.get_title()
    with pytest.warns(UserWarning, match="averaged over the fitted rows"):
        titles = [ax.get_title() for ax in fit.plot.variance().axes]
    assert any(t.startswith("ICC Subject\naveraged over the fitted rows") for t in titles)


def test_prior_panels_show_the_posterior_range_with_the_prior_faint(fits):
    fit, _ = fits("london_rs_ml")
    fig = fit.plot.variance(prior=True)
    draws = fit.posterior["sigma"].values.ravel()
    ax = next(ax for ax in fig.axes if ax.get_title() == "sigma")
    lo, hi = np.quantile(draws, [0.005, 0.995])
    left, right = ax.get_xlim()
    assert left < lo and right > hi and right - left < 1.5 * (hi - lo)  # the posterior's range, not the prior's
    colours = {to_hex(line.get_color()) for line in ax.lines}
    assert {hb.plots.PRIOR, hb.plots.POINT} <= colours


def test_trace_plot_labels_the_chains(fits):
    fit, _ = fits("london_rs_ml")
    fig = fit.plot.trace()
    (legend,) = fig.legends
    assert legend.get_title().get_text() == "chain"
    assert [t.get_text() for t in legend.get_texts()] == [str(c) for c in fit.posterior["chain"].values]


def test_shrinkage_no_pooling_points_are_per_group_ols(fits):
    fit, _ = fits("london_rs_ml")
    fig = fit.plot.shrinkage()
    ax = fig.axes[0]
    own, pooled = [c for c in ax.collections if isinstance(c, PathCollection)][:2]
    data = fit.design.data
    levels = fit.design.factors["school"].levels
    ols = np.array([np.polyfit(data.loc[data.school == lv, "standLRT"], data.loc[data.school == lv, "normexam"], 1)[::-1]
                    for lv in levels])  # fmt: skip
    np.testing.assert_allclose(own.get_offsets(), ols, rtol=1e-6)
    assert ax.get_xlabel() == "(Intercept)" and ax.get_ylabel() == "standLRT"
    coef = fit.coef("school", interval="hdi")
    np.testing.assert_allclose(pooled.get_offsets()[:, 1], coef[coef.term == "standLRT"]["mean"], rtol=1e-10)
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(levels) and all(a.get_clip_on() and a.get_clip_box() for a in arrows)  # in the axes


def test_one_term_shrinkage_plots_against_group_size(fits):
    fit, _ = fits("london_ri_ml")
    ax = fit.plot.shrinkage().axes[0]
    own = [c for c in ax.collections if isinstance(c, PathCollection)][0].get_offsets()
    table = fit.shrinkage()
    np.testing.assert_allclose(own[:, 0], table["n"])
    np.testing.assert_allclose(own[:, 1], table["no_pooling"])
    assert ax.get_xscale() == "log"


def test_one_term_shrinkage_of_equal_groups_orders_them_by_their_own_estimate(fits):
    """Penicillin's plates all have 6 rows: on a size axis every group would sit on one
    vertical line, so the groups are spread in the order of their own estimates."""
    fit, _ = fits("penicillin_crossed_reml")
    ax = fit.plot.shrinkage(group="plate").axes[0]
    own = [c for c in ax.collections if isinstance(c, PathCollection)][0].get_offsets()
    assert sorted(own[:, 0]) == list(range(1, 25)) and ax.get_xscale() == "linear"
    assert np.all(np.diff(own[np.argsort(own[:, 0]), 1]) >= 0)
    assert "ordered by its own estimate (each has 6 rows)" in ax.get_xlabel()


def test_fitted_lines_show_the_population_prediction(fits):
    fit, _ = fits("sleepstudy_rs_reml")
    fig = fit.plot.fitted("Days", levels=["308", "309"])
    ax = fig.axes[0]
    population = next(line for line in ax.lines if line.get_label() == "population")
    expected = fit.predict(__import__("pandas").DataFrame({"Days": population.get_xdata(), "Subject": "308"}), re_form="NA")
    np.testing.assert_allclose(population.get_ydata(), expected["mean"], rtol=1e-10)
    labels = [line.get_label() for line in ax.lines]
    assert "Subject 308" in labels and "Subject 309" in labels
    assert len(fit.plot.fitted("Days", levels=["308", "309", "310"], facet=True).axes) >= 3


def test_rank_plot_and_diagnostic_plots(fits):
    fit, _ = fits("penicillin_crossed_reml")
    ax = fit.plot.ranks(group="plate").axes[0]
    assert len(_segments(ax)[0].get_segments()) == 24
    assert "rank of (Intercept)" in ax.get_xlabel()
    titles = " ".join(ax.get_title() for ax in fit.plot.variance().axes)
    for name in ("sd_plate", "sd_sample", "sigma", "ICC"):
        assert name in titles
    assert isinstance(fit.plot.trace(), plt.Figure)
    legend = fit.plot.ppc(num_samples=20).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["observed data", "20 replicated data sets"]
    with pytest.raises(ValueError, match="needs group="):
        fit.plot.caterpillar()
