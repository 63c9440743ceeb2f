"""Shared fixtures: real bundled data (loaded once) and an isolated NEXTBEST_HOME."""

from __future__ import annotations

import pytest

from nextbest.data.cdnow import load_cdnow


@pytest.fixture(scope="session")
def cdnow_tx():
    """The CDNOW 2,357-customer sample (lifetimes' bundled file)."""
    return load_cdnow()


@pytest.fixture()
def nb_home(tmp_path, monkeypatch):
    """A private NEXTBEST_HOME with the MLflow store inside it."""
    home = tmp_path / "home"
    monkeypatch.setenv("NEXTBEST_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return home
