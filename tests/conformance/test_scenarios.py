"""Every scenario under features/, run by pytest-bdd with the steps in conftest.py."""

from pytest_bdd import scenarios

scenarios("features")
