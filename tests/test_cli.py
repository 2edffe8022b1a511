"""The command line: a config in, a summary and tables out; bad configs named before sampling."""

import json

import pandas as pd
import pytest

from hierbayes.cli import ConfigError, load_config, main


def _write(tmp_path, text, name="model.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.sampling
def test_fit_writes_summary_and_tables(tmp_path, capsys):
    pd.DataFrame(
        {"score": [3.1, 2.9, 4.2, 4.0, 5.1, 5.3, 2.2, 2.6, 3.9, 4.4, 4.8, 5.0],
         "hours": [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2], "klass": list("aabbccddeeff")}  # fmt: skip
    ).to_csv(tmp_path / "scores.csv", index=False)
    config = _write(tmp_path, "formula: score ~ hours + (1 | klass)\ndata: scores.csv\n"
                    "sampling: {draws: 200, tune: 200, chains: 2, random_seed: 1, progressbar: false}\n")  # fmt: skip
    out = tmp_path / "out"
    with pytest.warns(UserWarning):  # 400 draws: a low-ESS warning is expected and fine here
        assert main(["fit", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Formula: score ~ hours + (1 | klass)" in printed and "Fixed effects:" in printed
    for name in ["summary.txt", "fixef.csv", "varcorr.csv", "ranef.csv", "coef.csv", "priors.csv", "diagnostics.json",
                 "r2.csv", "icc.csv", "variance_components.csv", "shrinkage_klass.csv", "ranks_klass.csv",
                 "frequentist.csv", "index.html", "report.md", "figures/forest.png"]:  # fmt: skip
        assert (out / name).is_file(), name
    assert list(pd.read_csv(out / "icc.csv")["icc"]) == ["klass", "adjusted", "conditional"]
    assert pd.read_csv(out / "frequentist.csv")["source"].iloc[0] == "statsmodels MixedLM (REML)"
    fixef = pd.read_csv(out / "fixef.csv", index_col=0)
    assert list(fixef.index) == ["(Intercept)", "hours"]
    assert set(pd.read_csv(out / "ranef.csv")["level"]) == set("abcdef")
    assert json.loads((out / "diagnostics.json").read_text())["sampler"] in ("nutpie", "pymc")


def test_shipped_data_set_by_name(tmp_path):
    config = load_config(_write(tmp_path, "formula: normexam ~ standLRT + (1 | school)\ndata: london_exam\n"))
    assert len(config["data"]) == 4059


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: london_exam\n", "needs 'formula'"),
        ("formula: y ~ x\ndata: nowhere.csv\n", "neither a shipped data set"),
        ("formula: y ~ x\ndata: london_exam\nsamplng: {}\n", "unknown key"),
        ("formula: y ~ x\ndata: london_exam\nsampling: {draw: 10}\n", "unknown sampling key"),
        ("formula: y ~ x\ndata: london_exam\nfrequentist: OLS\n", "frequentist must be REML, ML or none"),
        ("formula: y ~ x\ndata: london_exam\nat: 0\n", "at must map covariates to values"),
    ],
)
def test_bad_configs_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_errors_reach_the_user_without_a_traceback(tmp_path, capsys):
    config = _write(tmp_path, "formula: normexam ~ nosuch + (1 | school)\ndata: london_exam\n")
    assert main(["fit", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "unknown column 'nosuch'" in capsys.readouterr().err


def test_version_and_plain_text_help(capsys):
    import hierbayes as hb

    with pytest.raises(SystemExit) as end:
        main(["--version"])
    assert end.value.code == 0 and capsys.readouterr().out.strip() == f"hierbayes {hb.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "fit --help" in text


def test_fit_help_lists_every_configuration_key(capsys):
    from hierbayes.cli import _TOP_KEYS

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    listed = {line.split()[0] for line in text.split("configuration keys (YAML):")[1].splitlines() if line.startswith("  ")}
    assert listed == _TOP_KEYS
