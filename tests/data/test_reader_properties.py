"""Property: random bad lines among good ones, in real CSV and Parquet files, read by both paths.

The train path is ``load_dataset(transactions=...)`` + ``validate_transactions``; the batch path is
the streaming :class:`~nextbest.batch.source.Source`, hash-partitioned into chunks and validated
per chunk exactly as the batch job does (``partition`` + ``validate_chunk``). For every file:
every good line is used, every bad line is a reject with the expected reason, and the two paths
reject exactly the same rows (row, line, column, reason and value).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextbest.batch.chunks import validate_chunk
from nextbest.batch.partition import partition, read_bucket
from nextbest.batch.progress import Reporter
from nextbest.batch.source import Source
from nextbest.data import load_dataset
from nextbest.data.schema import validate_transactions

IDS = ["00042", "1e5", "A b", "M\u00fcller", "Stra\u00dfe", "abc", "ABC", " 7 "]
AMOUNTS = ["12.50", "3", "$4.20", "1,234.50", "7.5 \u20ac", "0.5"]
# A few lines first whose non-ASCII letters make UTF-8 the detected encoding however many
# undecodable lines follow (and whose amounts show the decimal point).
PREFIX = [
    f"\u00dcn\u00efc\u00f8d\u00e9-\u00df\u00fc\u00f6-{k},2023-01-0{k + 1},10.25,p{k}"
    for k in range(9)
]

# kind -> (CSV line template, expected reason); {i} is the line's unique number
BAD_CSV = {
    "more": ("x{i},2023-02-01,1,b{i},EXTRA", "ragged line: more fields than the header"),
    "fewer": ("x{i},2023-02-01", "ragged line: fewer fields than the header"),
    "quote": ('x{i},"2023-02-01,1,b{i}', "unbalanced or misplaced quote"),
    "nul": ("x{i},2023-02-01,1\x00,b{i}", "NUL byte in the line"),
    "bytes": ("x\udcff{i},2023-02-01,1,b{i}", "undecodable bytes (not utf-8)"),
    "no_id": (",2023-02-01,1,b{i}", "missing customer_id"),
    "no_ts": ("x{i},,1,b{i}", "missing timestamp"),
    "bad_ts": ("x{i},soon,1,b{i}", "unparsable timestamp"),
    "far_ts": ("x{i},2999-01-01,1,b{i}", "timestamp out of range (before 1900 or after 2261)"),
    "bad_amount": ("x{i},2023-02-01,ten,b{i}", "unparsable amount"),
    "comma_amount": (
        'x{i},2023-02-01,"12,50",b{i}',
        "amount written with a decimal comma; give --decimal ,",
    ),
    "huge_amount": ("x{i},2023-02-01,1e12,b{i}", "absurd amount (|amount| >= 1e+09)"),
    "inf_amount": ("x{i},2023-02-01,inf,b{i}", "non-finite amount"),
}
BAD_PARQUET = {
    k: v for k, v in BAD_CSV.items() if k not in ("more", "fewer", "quote", "nul", "bytes")
}

line_kinds = st.lists(
    st.one_of(
        st.tuples(st.just("good"), st.sampled_from(IDS), st.sampled_from(AMOUNTS)),
        st.tuples(st.sampled_from(sorted(BAD_CSV)), st.just(""), st.just("")),
        st.tuples(st.just("blank"), st.just(""), st.just("")),
    ),
    min_size=1,
    max_size=40,
)


def _lines(kinds, bad: dict) -> tuple[list[str], dict[int, str], list[str]]:
    """File lines, expected reason by row, and the good lines' order ids (in row order)."""
    lines, expected, good = list(PREFIX), {}, [f"p{k}" for k in range(len(PREFIX))]
    for i, (kind, cid, amount) in enumerate(kinds):
        if kind == "blank":
            lines.append("")
            continue
        row = sum(1 for line in lines if line)
        if kind == "good":
            amount = f'"{amount}"' if "," in amount else amount
            lines.append(f'"{cid}{i}",2023-03-{i % 28 + 1:02d} 10:00,{amount},g{i}')
            good.append(f"g{i}")
        elif kind in bad:
            template, reason = bad[kind]
            lines.append(template.format(i=i))
            expected[row] = reason
    return lines, expected, good


def _train(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = validate_transactions(load_dataset(transactions=path).transactions)
    return result.transactions, result.rejects


def _batch(path: Path, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Partition and validate per chunk, as ``run_local`` does (no models needed)."""
    part = partition(Source.from_path(path), work, 3, Reporter(lambda line: None), False)
    chunks = [
        validate_chunk(raw, None)
        for b in range(part["n_buckets"])
        if (raw := read_bucket(work, b)) is not None
    ]
    assert part["n_buckets"] > 1 or len(chunks) <= 1
    clean = pd.concat([c.transactions.assign(_row=c.rows) for c in chunks], ignore_index=True)
    parts = [c.rejects for c in chunks if len(c.rejects)]
    rejects = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row"])
    return clean.sort_values("_row", ignore_index=True), rejects


def _key(rejects: pd.DataFrame) -> list[tuple]:
    cols = [c for c in ("row", "line", "column", "reason", "value") if c in rejects.columns]
    return sorted(tuple(str(v) for v in r) for r in rejects[cols].itertuples(index=False))


def _check_both_paths(path: Path, expected: dict[int, str], good: list[str], work: Path) -> None:
    clean, rejects = _train(path)
    assert dict(zip(rejects["row"].astype(int), rejects["reason"])) == expected
    assert rejects["reason"].str.len().gt(0).all()
    assert clean["order_id"].tolist() == good  # every good line is used, in order
    b_clean, b_rejects = _batch(path, work)
    assert _key(b_rejects) == _key(rejects)
    assert b_clean["order_id"].tolist() == good
    assert b_clean["customer_id"].tolist() == clean["customer_id"].tolist()
    assert b_clean["amount"].tolist() == clean["amount"].tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=line_kinds, crlf=st.booleans())
def test_csv_bad_lines_are_rejected_alike_by_train_and_batch(kinds, crlf):
    lines, expected, good = _lines(kinds, BAD_CSV)
    end = "\r\n" if crlf else "\n"
    text = end.join(["customer_id,timestamp,amount,order_id", *lines]) + end
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tx.csv"
        path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        _check_both_paths(path, expected, good, Path(tmp) / "work")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=line_kinds)
def test_parquet_bad_values_are_rejected_alike_by_train_and_batch(kinds):
    lines, expected, good = _lines(kinds, BAD_PARQUET)
    rows = [_split_line(line) for line in lines if line]
    table = pa.table(
        {
            name: pa.array([r[j] for r in rows], pa.string())
            for j, name in enumerate(["customer_id", "timestamp", "amount", "order_id"])
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tx.parquet"
        pq.write_table(table, path, row_group_size=7)
        _check_both_paths(path, expected, good, Path(tmp) / "work")


def _split_line(line: str) -> list[str | None]:
    import csv

    return [v if v != "" else None for v in next(csv.reader([line]))]
