"""Audiences for a campaign tool: one CSV per action and offer, from a scores file.

``export_audiences(scores, out_dir)`` writes, for every (action, offer) in the
scores, ``<action>-<offer_id>.csv`` with one row per customer:

``customer_id, offer_id, offer_name, channel, expected_value, reason_code,
reason, group, propensity`` (``group`` and ``propensity``: the experiment arm
and its probability, what the campaign tool logs for inverse-propensity
weighting)

* ``cross_sell`` - the chosen offer's expected value (P(convert) x value - cost);
* ``retention`` - P(churn) x uplift x predicted CLV - cost;
* ``non_personalised`` - the default action. Customers who objected to
  profiling are **only** here (whatever their row says), and this list
  carries no model output: expected value and reasons are left empty.

* ``control-holdout.csv`` - customers of the randomized control group
  (``control_share`` of the catalog): nothing is sent to them, and the
  campaign tool logs them as the holdout the effects are measured against.

``no_action`` customers are not exported (there is nothing to send); they
are counted in ``audiences.json``, which lists every file with its count,
the scores' ``as_of``, horizon and model versions. Rows are ordered by
expected value, best first (then ``customer_id``). The directory is written
next to the target and swapped in at the end, so a campaign tool never
picks up half an export; an existing directory is replaced only if it holds
an earlier export (``audiences.json``).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nextbest.decision.catalog import Catalog, load_catalog
from nextbest.errors import SchemaError

MARKER = "audiences.json"
COLUMNS = (
    "customer_id",
    "offer_id",
    "offer_name",
    "channel",
    "expected_value",
    "reason_code",
    "reason",
    "group",
    "propensity",
)
CONTROL_FILE = "control-holdout.csv"
# Written by scores files of nextbest >= 0.2; older files read as the greedy policy.
OPTIONAL = ("group", "propensity", "channel")
NEEDED = (
    "customer_id",
    "action",
    "action_offer_id",
    "offers",
    "reasons",
    "consent_profiling",
    "churn_probability",
    "predicted_clv",
    "p_alive",
    "as_of",
    "horizon_days",
    "model_versions",
)


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, int]  # file name -> customers
    not_exported: dict[str, int]  # action -> customers (no_action)
    moved_to_non_personalised: int  # opted-out rows whose action was not non_personalised


def read_scores(path: str | Path) -> pa.Table:
    """The columns the export needs from a scores file (Parquet file or directory, or CSV)."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"scores file not found: {path}")
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        names = pq.ParquetDataset(path).schema.names
        missing = [c for c in NEEDED if c not in names]
        if missing:
            raise SchemaError(f"{path} is not a nextbest scores file: missing column(s) {missing}")
        extra = [c for c in OPTIONAL if c in names]
        return _with_groups(pq.read_table(path, columns=[*NEEDED, *extra]))
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(
            path, dtype={"customer_id": str, "action_offer_id": str}, keep_default_na=True
        )
        missing = [c for c in NEEDED if c not in frame.columns]
        if missing:
            raise SchemaError(f"{path} is not a nextbest scores file: missing column(s) {missing}")
        first = {}
        for col, fields in (
            ("offers", ("offer_id", "expected_value")),
            ("reasons", ("code", "text")),
        ):
            items = [
                json.loads(v)[0] if isinstance(v, str) and v.startswith("[{") else {}
                for v in frame[col]
            ]
            first[col] = {f: [i.get(f) for i in items] for f in fields}
        consent = frame["consent_profiling"].astype(str).str.lower().isin(["true", "1"])
        groups = {
            c: frame[c].astype(float) if c == "propensity" else frame[c].astype(object)
            for c in OPTIONAL
            if c in frame.columns
        }
        return _with_groups(pa.table({**table_columns(frame, first, consent), **groups}))
    raise _unsupported(path)


def table_columns(frame: pd.DataFrame, first: dict, consent: pd.Series) -> dict:
    """The columns of a CSV scores file as the Parquet path reads them."""
    return {
        "customer_id": frame["customer_id"].astype(str),
        "action": frame["action"].astype(str),
        "action_offer_id": frame["action_offer_id"]
        .astype(object)
        .where(frame["action_offer_id"].notna(), None),
        "top_offer_id": first["offers"]["offer_id"],
        "top_ev": pa.array(first["offers"]["expected_value"], pa.float64()),
        "reason_code": first["reasons"]["code"],
        "reason": first["reasons"]["text"],
        "consent_profiling": consent,
        "churn_probability": frame["churn_probability"].astype(float),
        "p_alive": frame["p_alive"].astype(float),
        "predicted_clv": frame["predicted_clv"].astype(float),
        "as_of": frame["as_of"].astype(str),
        "horizon_days": frame["horizon_days"].astype(float),
        "model_versions": frame["model_versions"].astype(str),
    }


def _with_groups(table: pa.Table) -> pa.Table:
    """``group`` and ``propensity`` columns (a file from before experiments: the greedy policy)."""
    n = len(table)
    if "channel" not in table.column_names:
        table = table.append_column("channel", pa.nulls(n, pa.string()))
    if "group" not in table.column_names:
        table = table.append_column("group", pa.array(["treatment"] * n, pa.string()))
    if "propensity" not in table.column_names:
        table = table.append_column("propensity", pa.array(np.ones(n)))
    return table


def _unsupported(path: Path) -> SchemaError:
    return SchemaError(
        f"{path}: unsupported scores file type {path.suffix!r}; use .parquet or .csv"
    )


def flatten_scores(table: pa.Table) -> pd.DataFrame:
    """One row per customer with the first offer and the first reason pulled out of the lists."""
    if "offers" in table.column_names:
        top = pc.list_element(
            pc.if_else(
                pc.greater(pc.list_value_length(table["offers"]), 0),
                table["offers"],
                pa.nulls(len(table), table.schema.field("offers").type),
            ),
            0,
        )
        first = pc.list_element(
            pc.if_else(
                pc.greater(pc.list_value_length(table["reasons"]), 0),
                table["reasons"],
                pa.nulls(len(table), table.schema.field("reasons").type),
            ),
            0,
        )
        table = (
            table.drop_columns(["offers", "reasons"])
            .append_column("top_offer_id", pc.struct_field(top, "offer_id"))
            .append_column("top_ev", pc.struct_field(top, "expected_value"))
            .append_column("reason_code", pc.struct_field(first, "code"))
            .append_column("reason", pc.struct_field(first, "text"))
        )
    return table.to_pandas()


def offer_names(catalog: Catalog) -> dict[str, tuple[str, str]]:
    """offer id -> (name, channel) for every offer, the retention offer and the default action."""
    default = catalog.default_action
    names = {o.offer_id: (o.name, o.channel) for o in catalog.offers}
    if catalog.retention:
        names[catalog.retention.offer_id] = (catalog.retention.name, catalog.retention.channel)
    names[default.offer_id] = (default.name, default.channel)
    return names


ACTIONS = ["retention", "cross_sell", "no_action", "non_personalised"]


def _codes(values: pd.Series, names: list[str]) -> np.ndarray:
    """Index of each value in ``names`` (-1 if not there or missing), computed by Arrow."""
    idx = pc.index_in(pa.array(values, from_pandas=True), value_set=pa.array(names, pa.string()))
    return idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)


@dataclass
class Decided:
    """The action each customer gets, as codes into ``actions`` and ``offers`` (-1 = none)."""

    action: np.ndarray
    offer: np.ndarray
    expected_value: np.ndarray
    offers: list[str]
    moved: int  # opted-out rows whose action was changed to the non-personalised default
    actions: tuple[str, ...] = tuple(ACTIONS)


def decide_rows(f: pd.DataFrame, catalog: Catalog) -> Decided:
    """Per customer of a flat scores frame: the action, its offer and its expected value.

    Consent first: an opted-out customer's action is the non-personalised
    default whatever the row says. Works on integer codes, so millions of
    rows take well under a second.
    """
    default = catalog.default_action
    consent = f["consent_profiling"].fillna(True).astype(bool).to_numpy()
    offers = sorted(
        set(offer_names(catalog)) | set(pd.unique(f["action_offer_id"].dropna().astype(str)))
    )
    act = _codes(f["action"], ACTIONS)
    off = _codes(f["action_offer_id"], offers)
    top = _codes(f["top_offer_id"], offers)
    non_personal = ACTIONS.index("non_personalised")
    moved = int(((~consent) & (act != non_personal)).sum())
    act = np.where(consent, act, non_personal)
    off = np.where(consent, off, offers.index(default.offer_id))
    ev = np.full(len(f), np.nan)
    xs = (act == ACTIONS.index("cross_sell")) & (top == off) & (off >= 0)
    ev[xs] = f["top_ev"].to_numpy(dtype=float)[xs]
    if catalog.retention is not None:
        r = catalog.retention
        ret = act == ACTIONS.index("retention")
        ev[ret] = (
            f["churn_probability"].to_numpy(dtype=float)
            * r.uplift
            * f["predicted_clv"].to_numpy(dtype=float)
            - r.cost
        )[ret]
    return Decided(act, off, ev, offers, moved)


def chosen_actions(f: pd.DataFrame, catalog: Catalog):
    """:func:`decide_rows` as ``(action, offer, expected_value, n_moved)`` object arrays."""
    d = decide_rows(f, catalog)
    action_names = np.array([*d.actions, "unknown"], dtype=object)
    offer_ids = np.array([*d.offers, None], dtype=object)
    return action_names[d.action], offer_ids[d.offer], d.expected_value, d.moved


def audience_frames(
    table: pa.Table, catalog: Catalog
) -> tuple[dict[str, pd.DataFrame], dict[str, int], int]:
    """(file name -> rows, action -> customers not exported, opted-out rows moved to
    non-personalised)."""
    f = flatten_scores(table)
    action, offer, ev, moved = chosen_actions(f, catalog)
    names = offer_names(catalog)
    personal = action != "non_personalised"
    out = pd.DataFrame(
        {
            "customer_id": f["customer_id"].astype(str).to_numpy(),
            "offer_id": offer,
            "offer_name": [names.get(o, ("", ""))[0] for o in offer],
            "channel": _channels(f, offer, names),
            "expected_value": np.round(ev, 4),
            "reason_code": np.where(personal, f["reason_code"].astype(object).to_numpy(), None),
            "reason": np.where(personal, f["reason"].astype(object).to_numpy(), None),
            "group": f["group"].astype(str).to_numpy(),
            "propensity": f["propensity"].to_numpy(dtype=float),
        }
    )
    files: dict[str, pd.DataFrame] = {}
    skipped: dict[str, int] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    # The randomized holdout gets nothing, but the campaign tool logs it: a file of its own.
    control = (out["group"] == "control").to_numpy()
    if control.any():
        held = out[control].assign(offer_id=None, offer_name=None, channel=None)
        files[CONTROL_FILE] = held.sort_values("customer_id", kind="stable").reset_index(drop=True)
    for i, key in enumerate(zip(action.tolist(), [o or "" for o in offer.tolist()])):
        if control[i]:
            continue
        groups.setdefault(key, []).append(i)
    for (act, oid), idx in sorted(groups.items()):
        if act == "no_action" or not oid:
            skipped[act] = skipped.get(act, 0) + len(idx)
            continue
        rows = out.iloc[idx].sort_values(
            ["expected_value", "customer_id"],
            ascending=[False, True],
            na_position="last",
            kind="stable",
        )
        files[f"{act}-{_safe(oid)}.csv"] = rows.reset_index(drop=True)
    return files, skipped, moved


def _channels(f: pd.DataFrame, offer: np.ndarray, names: dict) -> list:
    """The decision's channel (where the customer may be contacted), else the catalog's."""
    given = f["channel"].tolist() if "channel" in f.columns else [None] * len(f)
    return [
        c if isinstance(c, str) and c else names.get(o, ("", ""))[1] for c, o in zip(given, offer)
    ]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def export_audiences(
    scores: str | Path, out_dir: str | Path, catalog: Catalog | None = None
) -> ExportResult:
    """Write one CSV per (action, offer) of ``scores`` into ``out_dir`` (see the module docstring).

    Raises
    ------
    SchemaError
        If ``scores`` is not a scores file, or ``out_dir`` exists and holds
        something other than an earlier export.
    """

    catalog = catalog or load_catalog()
    out_dir = Path(out_dir)
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())
    ):
        raise SchemaError(
            f"{out_dir} exists and is not an earlier audience export; choose an empty or new "
            "directory"
        )
    table = read_scores(scores)
    files, skipped, moved = audience_frames(table, catalog)
    meta = {
        "scores": str(scores),
        "as_of": str(pd.Series(table["as_of"].to_pandas()).dropna().astype(str).iloc[0])
        if len(table)
        else None,
        "horizon_days": float(table["horizon_days"][0].as_py()) if len(table) else None,
        "model_versions": json.loads(table["model_versions"][0].as_py()) if len(table) else {},
        "columns": list(COLUMNS),
        "files": {name: len(rows) for name, rows in files.items()},
        "not_exported": skipped,
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        for name, rows in files.items():
            rows.to_csv(tmp / name, index=False, columns=list(COLUMNS))
        (tmp / MARKER).write_text(json.dumps(meta, indent=1))
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            out_dir.replace(old)
        tmp.replace(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out_dir, meta["files"], skipped, moved)
