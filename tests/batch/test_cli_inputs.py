"""`nextbest score` on a spreadsheet export as German users have it, end to end."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.data.synthetic import synthetic_as_of
from tests.batch.batch_helpers import read_scores

pytestmark = pytest.mark.slow
AS_OF = str(synthetic_as_of().date())
runner = CliRunner()


def _german(tx: pd.DataFrame, path) -> dict[str, str]:
    """``;``-separated, decimal comma, DD.MM.YYYY HH:MM, cp1252, CRLF; an umlaut id.

    Returns the id renaming applied (original -> German).
    """
    rename = {tx["customer_id"].iloc[0]: "Müller-0042", tx["customer_id"].iloc[-1]: "00042"}
    out = pd.DataFrame(
        {
            "Kunde": tx["customer_id"].replace(rename),
            "Datum": tx["timestamp"].dt.strftime("%d.%m.%Y %H:%M"),
            "Betrag": tx["amount"].map(lambda a: f"{a:,.2f}".replace(",", " ").replace(".", ",")),
            "Bon": tx["order_id"],
            "Warengruppe": tx["category"],
        }
    )
    text = out.to_csv(sep=";", index=False, lineterminator="\r\n")
    path.write_bytes(text.encode("cp1252"))
    return rename


def _score(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_german_export_scores_like_the_canonical_file(champion_home, batch_data, tmp_path):
    tx = batch_data["tx"].sort_values(["customer_id", "timestamp"]).reset_index(drop=True)
    src = tmp_path / "umsaetze.csv"
    rename = _german(tx, src)
    common = ["--as-of", AS_OF, "--horizon-days", 180, "--no-track"]
    out_de, out_ref = tmp_path / "de.parquet", tmp_path / "ref.parquet"
    r = _score(
        "score", "-t", src, "--map", "customer_id=Kunde", "--map", "timestamp=Datum",
        "--map", "amount=Betrag", "--map", "order_id=Bon", "--map", "category=Warengruppe",
        "-o", out_de, *common,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "read as ';'-separated, decimal comma, cp1252, dates DD.MM.YYYY" in r.output
    assert "rejected 0 lines" in r.output
    ref = tmp_path / "ref.parquet.in"
    tx.assign(customer_id=tx["customer_id"].replace(rename)).to_parquet(ref.with_suffix(".pq"))
    r = _score("score", "-t", ref.with_suffix(".pq"), "-o", out_ref, *common)
    assert r.exit_code == 0, r.output
    de, canonical = read_scores(out_de), read_scores(out_ref)
    assert {"Müller-0042", "00042"} <= set(de["customer_id"])  # ids exactly as given
    merged = de.merge(canonical, on="customer_id", suffixes=("", "_ref"))
    assert len(merged) == len(canonical) == len(de)
    pd.testing.assert_series_equal(
        merged["predicted_clv"], merged["predicted_clv_ref"], check_names=False, rtol=1e-9
    )
    assert (merged["action"] == merged["action_ref"]).all()


def test_ambiguous_dates_are_an_error_naming_the_flag(champion_home, batch_data, tmp_path):
    src = tmp_path / "ambiguous.csv"
    src.write_text("customer_id;timestamp;amount\r\n1;03.04.2017;1,50\r\n2;05.06.2017;2,00\r\n")
    r = _score("score", "-t", src, "--as-of", AS_OF, "-o", tmp_path / "s.parquet", "--no-track")
    assert r.exit_code != 0 or "ambiguous" in r.output
    assert "--date-format" in r.output
    r = _score(
        "score", "-t", src, "--as-of", AS_OF, "-o", tmp_path / "s.parquet", "--no-track",
        "--date-format", "DD.MM.YYYY",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "dates DD.MM.YYYY" in r.output
