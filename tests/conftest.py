"""Fixtures shared by the test modules."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from funcs import data as data_mod
from funcs.errors import UserError

DATA_DIR = Path(os.environ.get("UT_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))
INPUT_SIZE = {"mnist": 784, "digits": 64}  # pixels per image of the two datasets the `dataset` fixture names


def pytest_addoption(parser):
    parser.addoption("--without-mnist", action="store_true",
                     help="run as on a machine where MNIST cannot be had: the tests take their digits fallback")


def pytest_configure(config):
    if config.getoption("--without-mnist"):
        provision = data_mod.provision

        def refuse_mnist(name, *args, **kwargs):
            if name == "mnist":
                raise UserError("MNIST refused by --without-mnist")
            return provision(name, *args, **kwargs)
        data_mod.provision = refuse_mnist  # the fixtures and the code they call look it up on the module


@pytest.fixture(scope="session")
def dataset() -> str:
    """'mnist', provisioned into UT_DATA_DIR (default data/) by the project's own fetch chain (data dir,
    system locations, mirrors, npm); where it cannot be, 'digits' (scikit-learn's bundled 8x8 digits), said
    in a warning: the tests that take this fixture then run on digits, with thresholds watched on it."""
    try:
        data_mod.provision("mnist", DATA_DIR)
        return "mnist"
    except UserError as err:
        warnings.warn(f"MNIST could not be provisioned ({err}); the tests use scikit-learn's digits")
        return "digits"
