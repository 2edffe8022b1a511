import json
from pathlib import Path

import pytest

import hierbayes as hb

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "lme4_reference.json"


@pytest.fixture(scope="session")
def london():
    return hb.datasets.load("london_exam")


@pytest.fixture(scope="session")
def sleepstudy():
    return hb.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def lme4_reference():
    """lme4's fits of the shipped data (../shared/reference), by model name."""
    if not REFERENCE.is_file():
        pytest.fail(f"lme4 reference file not found at {REFERENCE}")
    return {r["name"]: r for r in json.loads(REFERENCE.read_text())}
