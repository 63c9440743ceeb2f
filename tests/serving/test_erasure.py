"""Erasure of one customer under NEXTBEST_HOME, format by format, on small real files."""

from __future__ import annotations

import json

import pandas as pd

from nextbest.config import Paths
from nextbest.data.erased import is_erased
from nextbest.events import open_store, validate_events
from nextbest.serving.audit import AuditLog
from nextbest.serving.erasure import forget_customer

GONE = "forget-me-7f3a9c"
KEPT = "keep-me-0001"


def decision(cid: str) -> dict:
    return {
        "customer_id": cid,
        "action": "cross_sell",
        "action_offer_id": "XS-MEAT",
        "offers": [{"offer_id": "XS-MEAT"}],
        "model_versions": {"m": "1"},
        "as_of": "2018-01-01",
        "consent_profiling": True,
        **dict.fromkeys(
            [
                "p_alive",
                "expected_purchases",
                "expected_spend",
                "predicted_clv",
                "churn_probability",
            ],
            0.5,
        ),
    }


def make_home(root):
    paths = Paths(root).ensure()
    pd.DataFrame({"customer_id": [KEPT, GONE], "x": [1.0, 2.0]}).to_parquet(
        paths.snapshots / "features.parquet"
    )
    pd.DataFrame(
        {"row": [0, 1], "column": ["amount", "amount"], "value": [GONE, "x"], "reason": ["r", "r"]}
    ).to_parquet(paths.rejects / "run.rejects.parquet")  # no customer_id column: any text value
    audit = AuditLog(root / "audit")
    audit.write([decision(KEPT), decision(GONE), decision(KEPT)], "req-1", "predict_batch")
    audit.close()
    (root / "scores").mkdir()
    (root / "scores" / "s.csv").write_text(f"customer_id,v\n{KEPT},1\n{GONE},2\n")
    example = {"columns": ["customer_id", "f"], "data": [[GONE, 1.0], [KEPT, 2.0]]}
    (paths.mlflow_artifacts / "input_example.json").write_text(json.dumps(example))
    (root / "scores" / "s.report.html").write_text(
        f'<table><tr><td class="l">{GONE}</td><td>$5</td></tr></table><p>{KEPT}</p>'
    )
    (paths.logs / "nextbest.log").write_text(f"start\nlooked at {GONE} today\nend\n")
    (root / "scores" / "s.parquet.work" / "buckets").mkdir(parents=True)
    (root / "scores" / "s.parquet.work" / "buckets" / "bucket-00000.arrow").write_bytes(
        GONE.encode()
    )
    (root / "cache").mkdir()
    (root / "cache" / "blob.bin").write_bytes(b"\x00\x01" + GONE.encode() + b"\x02")
    return paths


def test_forget_removes_the_customer_everywhere_and_lists_what_it_cannot(tmp_path):
    root = tmp_path / "home"
    paths = make_home(root)
    store = open_store(f"sqlite:///{root / 'events.db'}")
    events = [
        {"type": "purchase", "customer_id": GONE, "timestamp": "2018-01-01", "amount": 3.0},
        {"type": "purchase", "customer_id": KEPT, "timestamp": "2018-01-01", "amount": 4.0},
    ]
    store.append(validate_events(events).accepted)
    report = forget_customer(GONE, paths, store)

    assert report.events == {"purchase": 1} and report.tombstoned
    assert is_erased(GONE, paths) and store.is_erased(GONE)
    assert [e.customer_id for e in store.since(0).events] == [KEPT]
    assert pd.read_parquet(paths.snapshots / "features.parquet")["customer_id"].tolist() == [KEPT]
    assert pd.read_parquet(paths.rejects / "run.rejects.parquet")["value"].tolist() == ["x"]
    audit = [json.loads(x) for f in (root / "audit").glob("*.jsonl") for x in f.open()]
    assert [a["customer_id"] for a in audit] == [KEPT, KEPT]
    assert (root / "scores" / "s.csv").read_text() == f"customer_id,v\n{KEPT},1\n"
    example = json.loads((paths.mlflow_artifacts / "input_example.json").read_text())
    assert example["data"] == [[KEPT, 2.0]]
    assert KEPT in (root / "scores" / "s.report.html").read_text()
    assert (paths.logs / "nextbest.log").read_text() == "start\nend\n"
    assert not (root / "scores" / "s.parquet.work").exists()
    # The one file nextbest cannot rewrite is named, so the command fails instead of lying.
    assert report.left == [str(root / "cache" / "blob.bin")] and not report.complete
    (root / "cache" / "blob.bin").unlink()
    store.close()
    for path in root.rglob("*"):
        if path.is_file():
            assert GONE.encode() not in path.read_bytes(), path
    written = {p for p, _ in report.files}
    assert str(root / "scores" / "s.report.html") in written
