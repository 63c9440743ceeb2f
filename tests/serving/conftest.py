"""Fixtures for the HTTP service: one trained NEXTBEST_HOME per session, the service in-process.

The home is trained once (Complete Journey, three customers opted out of
profiling) into a temporary directory; tests that change the registry work
on a copy of it. The service runs in-process through BentoML's ASGI app
(``NextBest.to_asgi()``) with Starlette's ``TestClient``, which also runs
its lifespan (service ``__init__``, background state load).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.service_helpers import API_KEY, service_env, start_client, wait_ready


@dataclass(frozen=True)
class TrainedHome:
    home: Path
    opted_out: tuple[str, ...]
    dataset: object


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory) -> TrainedHome:
    """Champions of all three models and a snapshot, trained once on Complete Journey."""
    from nextbest.config import Paths, load_config
    from nextbest.data import Dataset, load_dataset
    from nextbest.decision.catalog import load_catalog
    from nextbest.train.pipeline import train_all

    home = tmp_path_factory.mktemp("service") / "home"
    ds = load_dataset("completejourney")
    opted_out = tuple(sorted(ds.customers["customer_id"])[-3:])
    customers = ds.customers.assign(consent_profiling=~ds.customers["customer_id"].isin(opted_out))
    ds = Dataset(ds.name, ds.transactions, customers, ds.extras, ds.default_as_of)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBEST_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        configs = {name: load_config(name) for name in ("clv", "churn", "nbo")}
        result = train_all(ds, configs, load_catalog(), paths=Paths(home))
    assert all(result.promoted.values()), result.promoted
    return TrainedHome(home, opted_out, ds)


@pytest.fixture(scope="session")
def trained_settings(trained_home):
    """Service settings on the trained home (no API key needed: nothing is served)."""
    from nextbest.serving.settings import ServiceSettings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBEST_HOME", str(trained_home.home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return ServiceSettings.from_env(require_key=False)


@pytest.fixture(scope="session")
def client(trained_home):
    """The service on the trained home, ready (no watcher)."""
    with pytest.MonkeyPatch.context() as mp, start_client(mp, service_env(trained_home.home)) as c:
        wait_ready(c)
        yield c


@pytest.fixture()
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture()
def home_copy(trained_home, tmp_path) -> Path:
    """A private copy of the trained home (its registry can be changed freely)."""
    dst = tmp_path / "home"
    shutil.copytree(trained_home.home, dst, ignore=shutil.ignore_patterns("audit"))
    return dst
