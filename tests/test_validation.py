"""Simulation-based calibration machinery (hierbayes.validation)."""

import numpy as np
import pandas as pd
import pytest
from arviz_stats.base import array_stats

from hierbayes.validation import (
    MODEL_CLASSES, binned_chisquare, coverage_flags, main, pit_from_ranks, rank_of, simulate, summarize, thin,
)  # fmt: skip


def test_ranks_uniform_when_truth_is_a_draw_and_piled_up_when_shifted():
    rng = np.random.default_rng(0)
    L, n = 99, 2000
    ranks = np.array([rank_of(rng.normal(), rng.normal(size=L)) for _ in range(n)])
    assert ranks.min() >= 0 and ranks.max() <= L
    pit = pit_from_ranks(ranks, L, rng)
    assert float(array_stats.uniformity_test(pit, method="pot_c")[0]) > 0.01
    counts = np.bincount(ranks // 10, minlength=10)
    assert counts.min() > 0.6 * n / 10 and counts.max() < 1.4 * n / 10
    shifted = np.array([rank_of(rng.normal() + 3.0, rng.normal(size=L)) for _ in range(200)])
    assert np.mean(shifted >= 90) > 0.8  # a truth above the posterior ranks at the top
    assert float(array_stats.uniformity_test(pit_from_ranks(shifted, L, rng), method="pot_c")[0]) < 1e-6
    assert rank_of(0.5, np.array([0.0, 1.0, 0.2])) == 2


def test_binned_chisquare_uses_bins_that_divide_the_rank_values():
    flat = np.tile(np.arange(100), 2)  # 200 perfectly uniform ranks on 0..99
    p, bins = binned_chisquare(flat, 99)
    assert bins == 20 and p == pytest.approx(1.0)
    p, bins = binned_chisquare(np.full(200, 99), 99)
    assert p < 1e-10
    assert binned_chisquare(np.arange(20) % 40, 39)[1] == 2


def test_coverage_is_nominal_for_a_calibrated_case_and_exact_on_known_draws():
    draws = np.linspace(0, 1, 1001)
    assert coverage_flags(0.5, draws) == (True, True)
    assert coverage_flags(0.2, draws) == (False, True)
    assert coverage_flags(0.01, draws) == (False, False)
    rng = np.random.default_rng(1)
    flags = np.array([coverage_flags(rng.normal(), rng.normal(size=400)) for _ in range(1000)])
    cov50, cov90 = flags.mean(axis=0)
    assert abs(cov50 - 0.5) < 3 * np.sqrt(0.25 / 1000) + 0.01
    assert abs(cov90 - 0.9) < 3 * np.sqrt(0.09 / 1000) + 0.01


def test_thin_takes_evenly_spaced_draws_from_each_chain():
    draws = np.arange(2 * 500).reshape(2, 500)
    kept = thin(draws, 99)
    assert len(kept) == 99
    assert np.all(np.diff(kept[:50]) == 10) and kept[50] == 509
    with pytest.raises(ValueError):
        thin(np.zeros((1, 50)), 99)


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_simulation_matches_the_class_and_is_reproducible(name):
    mc = MODEL_CLASSES[name]
    df, truth = simulate(mc, np.random.default_rng(3))
    df2, truth2 = simulate(mc, np.random.default_rng(3))
    pd.testing.assert_frame_equal(df, df2)
    assert truth == truth2 and list(truth) == mc.parameters()
    assert np.all(np.isfinite(df["y"])) and len(df) == mc.layout.n_obs
    assert all(truth[p] > 0 for p in truth if p.startswith("sd_") or p == "sigma")
    assert all(-1 < truth[p] < 1 for p in truth if p.startswith("cor_"))


@pytest.mark.sampling
def test_sbc_command_writes_ranks_summary_and_figure(tmp_path):
    """20 simulations of the random-intercept class with short chains: machinery and a loose check."""
    assert main(["sbc", "--model", "ri", "--n-sims", "20", "--out", str(tmp_path), "--draws", "200",
                 "--tune", "200", "--chains", "2", "--n-rank-draws", "39"]) == 0  # fmt: skip
    folder = tmp_path / "ri"
    assert {"ranks.csv", "summary.csv", "ecdf.png", "command.txt"} <= {p.name for p in folder.iterdir()}
    assert "--model ri" in (folder / "command.txt").read_text()
    ranks = pd.read_csv(folder / "ranks.csv")
    params = MODEL_CLASSES["ri"].parameters()
    assert ranks["sim"].nunique() + (0 if not (folder / "failures.csv").exists() else
                                     len(pd.read_csv(folder / "failures.csv"))) == 20  # fmt: skip
    assert set(ranks["parameter"]) == set(params)
    assert ranks["rank"].between(0, 39).all() and (ranks["n_rank_draws"] == 39).all()
    summary = pd.read_csv(folder / "summary.csv")
    for col in ["parameter", "n_sims", "p_pot_c", "p_chisq", "cov50", "se50", "cov90", "se90", "reject", "cov_ok"]:
        assert col in summary.columns
    assert summary["p_pot_c"].between(0, 1).all() and summary["cov90"].between(0, 1).all()
    b = summary.set_index("parameter").loc["b[x]"]
    assert b["cov90"] >= 0.6 and b["se90"] == pytest.approx(np.sqrt(0.09 / b["n_sims"]), rel=1e-3)
    # summarize from the written ranks reproduces the same table
    again = summarize(folder)
    assert np.allclose(again["p_pot_c"], summary["p_pot_c"], rtol=1e-3)


@pytest.mark.sampling
@pytest.mark.filterwarnings("ignore::hierbayes.SamplingWarning")
def test_a_continued_run_repeats_the_whole_run(tmp_path):
    """``--first k`` continues a run of k simulations: the ranks are those of one whole run."""
    short = ["--model", "ri", "--draws", "40", "--tune", "40", "--chains", "2", "--n-rank-draws", "19"]
    assert main(["sbc", "--n-sims", "3", "--out", str(tmp_path / "parts"), *short]) == 0
    assert main(["sbc", "--n-sims", "5", "--first", "3", "--out", str(tmp_path / "parts"), *short]) == 0
    assert main(["sbc", "--n-sims", "5", "--out", str(tmp_path / "whole"), *short]) == 0
    parts, whole = (pd.read_csv(tmp_path / d / "ri" / "ranks.csv").drop(columns="fit_seconds") for d in ("parts", "whole"))
    pd.testing.assert_frame_equal(parts, whole)
    assert "--first 3" in (tmp_path / "parts" / "ri" / "command.txt").read_text().splitlines()[1]
    with pytest.raises(ValueError, match="--first 7"):
        main(["sbc", "--n-sims", "9", "--first", "7", "--out", str(tmp_path / "parts"), *short])
