"""Default priors scale with the data; overrides by brms names; clear errors."""

import numpy as np
import pytest

from hierbayes.design import make_design
from hierbayes.priors import Prior, PriorError, make_priors


@pytest.fixture(scope="module")
def design(london):
    return make_design("normexam ~ standLRT + sex + (standLRT | school)", london)


def test_defaults_are_scaled_to_the_data(design, london):
    p = make_priors(design)
    s_y = london["normexam"].std()
    assert p.get("Intercept").kwargs == pytest.approx({"mu": london["normexam"].mean(), "sigma": 2.5 * s_y})
    assert p.get("b", coef="standLRT").kwargs["sigma"] == pytest.approx(2.5 * s_y / london["standLRT"].std())
    s_sex = (london["sex"] == "M").std()
    assert p.get("b", coef="sexM").kwargs["sigma"] == pytest.approx(2.5 * s_y / s_sex)
    assert p.get("sd", "school", "(Intercept)") == Prior("HalfStudentT", nu=3, sigma=s_y)
    assert p.get("sd", "school", "standLRT").kwargs["sigma"] == pytest.approx(s_y / london["standLRT"].std())
    assert p.get("cor", "school") == Prior("LKJ", eta=2)
    assert p.get("sigma") == Prior("HalfStudentT", nu=3, sigma=s_y)
    assert set(p.table()["source"]) == {"default"}


def test_scaling_follows_the_units_of_the_response(london):
    d1 = make_design("normexam ~ standLRT + (1 | school)", london)
    d2 = make_design("normexam ~ standLRT + (1 | school)", london.assign(normexam=100 * london["normexam"]))
    ratio = make_priors(d2).get("sd", "school", "(Intercept)").kwargs["sigma"] / make_priors(d1).get(
        "sd", "school", "(Intercept)"
    ).kwargs["sigma"]
    assert ratio == pytest.approx(100)


def test_most_specific_override_wins(design):
    p = make_priors(
        design,
        {
            "b": "Normal(0, 1)",
            "b_sexM": Prior("StudentT", nu=3, mu=0, sigma=0.5),
            "sd": "HalfNormal(1)",
            "sd_school__standLRT": "exponential(5)",
            "cor_school": "lkj(4)",
            "sigma": {"dist": "HalfCauchy", "beta": 2},
        },
    )
    assert p.get("b", coef="standLRT") == Prior("Normal", mu=0, sigma=1)
    assert p.get("b", coef="sexM") == Prior("StudentT", nu=3, mu=0, sigma=0.5)
    assert p.get("sd", "school", "(Intercept)") == Prior("HalfNormal", sigma=1)
    assert p.get("sd", "school", "standLRT") == Prior("Exponential", lam=5)
    assert p.get("cor", "school").kwargs == {"eta": 4.0}
    assert p.get("sigma") == Prior("HalfCauchy", beta=2)
    table = p.table()
    assert table.loc[table["class"] == "Intercept", "source"].item() == "default"
    assert (table.loc[table["class"] != "Intercept", "source"] == "user").all()


def test_brms_zero_centred_prior_on_an_sd_means_its_half(design):
    p = make_priors(design, {"sd": "student_t(3, 0, 2.5)", "sigma": "normal(0, 1)"})
    assert p.get("sd", "school", "standLRT") == Prior("HalfStudentT", nu=3, sigma=2.5)
    assert p.get("sigma") == Prior("HalfNormal", sigma=1)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"b_nothere": "Normal(0, 1)"}, "no parameter matches prior key"),
        ({"sd": "Normal(1, 1)"}, "centred at 0"),
        ({"cor": "Normal(0, 1)"}, "needs a correlation prior"),
        ({"b": "LKJ(2)"}, "needs a real prior"),
        ({"b": "Wibble(1)"}, "unknown prior distribution 'Wibble'"),
        ({"b": "Normal(0"}, "cannot read prior"),
        ({"b": "Normal(0, 1, 2)"}, "at most 2 parameters"),
        ({"b": "Normal(mu=0)"}, "needs sigma"),
        ({"b": "Normal(0, scale=1)"}, "has no parameter"),
    ],
)
def test_bad_priors_are_named(design, overrides, message):
    with pytest.raises(PriorError, match=message):
        make_priors(design, overrides)


def test_prior_text_round_trip():
    p = Prior.parse("HalfStudentT(nu=3, sigma=0.5)")
    assert str(p) == "HalfStudentT(nu=3, sigma=0.5)" and Prior.parse(str(p)) == p
    assert np.isclose(Prior.parse("normal(1, 2)").kwargs["sigma"], 2)
