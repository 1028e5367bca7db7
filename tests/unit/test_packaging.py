"""The package's own metadata: installing it warns about nothing the user did."""

from __future__ import annotations

import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_applies_without_a_deprecation_warning() -> None:
    # What pip's build backend runs on `make install`; a TOML-table `project.license` warned
    # there ("`project.license` as a TOML table is deprecated").
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), PYPROJECT)
    assert dist.metadata.name == "memory-agent"
    assert dist.metadata.license_expression == "MIT"
