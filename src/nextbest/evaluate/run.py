"""``nextbest evaluate``: the backtest end to end - models, sections, ``metrics.json``,
``report.html``, MLflow.

:func:`evaluate` measures one or two model specs (see
:mod:`nextbest.evaluate.sources`) on the same backtest data and returns an
:class:`Evaluation`; :func:`evaluate_to_dir` also writes the two files and
logs everything to one MLflow run.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextbest import registry
from nextbest.data import Dataset
from nextbest.decision.catalog import Catalog
from nextbest.errors import InputError
from nextbest.evaluate.churn import churn_section
from nextbest.evaluate.clv import clv_section
from nextbest.evaluate.data import (
    BacktestData,
    check_horizon,
    default_backtest_as_of,
    parse_as_of,
    prepare,
)
from nextbest.evaluate.decision import decision_section
from nextbest.evaluate.impact import CampaignLog, backtest_impact
from nextbest.evaluate.offers import campaign_section, offers_section
from nextbest.evaluate.periods import check_periods, write_summary
from nextbest.evaluate.report import render
from nextbest.evaluate.results import ModelRun, Section, comparison
from nextbest.evaluate.sources import obtain
from nextbest.events.fold import fold_events

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Everything one ``nextbest evaluate`` measured."""

    dataset: str
    as_of: pd.Timestamp
    horizon_days: int
    runs: list[ModelRun]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run_id: str | None = None
    settings: dict = field(default_factory=dict)

    @property
    def compare(self) -> bool:
        return len(self.runs) > 1

    def comparison(self) -> list[dict]:
        return comparison(self.runs)

    def as_dict(self) -> dict:
        """The ``metrics.json`` content: every number with its baselines, per model spec."""
        return {
            "dataset": self.dataset,
            "as_of": str(self.as_of.date()),
            "horizon_days": self.horizon_days,
            "settings": self.settings,
            "notes": self.notes,
            "mlflow_run_id": self.run_id,
            "seconds": round(self.seconds, 1),
            "models": {
                r.label: {
                    "versions": r.versions,
                    "notes": r.notes,
                    "sections": {k: s.as_dict() for k, s in r.sections.items()},
                }
                for r in self.runs
            },
            "comparison": self.comparison(),
        }


def measure(models, data: BacktestData, configs: dict[str, dict], seed: int) -> dict[str, Section]:
    """Every section for one set of models, in report order (campaigns only where the data has
    them)."""
    sections = {
        "clv": clv_section(models, data),
        "churn": churn_section(models, data, configs),
        "nbo": offers_section(models, data, configs["nbo"]),
    }
    campaigns = campaign_section(models, data)
    if campaigns is not None:
        sections["campaigns"] = campaigns
    sections["decision"] = decision_section(models, data, configs, seed)
    return sections


def evaluate(
    dataset: Dataset,
    as_of,
    horizon_days: int,
    configs: dict[str, dict],
    catalog: Catalog,
    specs: tuple[str, ...] = ("train",),
    seed: int = 42,
    campaign_log: CampaignLog | pd.DataFrame | None = None,
) -> Evaluation:
    """Backtest ``specs`` (``train``, an alias, a version or ``kind=ref,...``) on ``dataset``.

    With ``campaign_log`` (validated, with outcomes; or a :class:`CampaignLog` with its
    catalog, features and pre-period outcomes) every model spec gets the same Impact
    section (:mod:`nextbest.evaluate.impact`): it measures the log, not the specs' models.

    Raises
    ------
    ValueError
        When the horizon is not inside the data or a spec is malformed.
    LookupError
        When a registry reference does not exist for the CLV model.
    """
    started = time.perf_counter()
    as_of = default_backtest_as_of(dataset, horizon_days) if as_of is None else as_of
    if len(set(specs)) != len(specs):
        raise InputError(f"--compare needs two different model specs, got {list(specs)}")
    data = prepare(dataset, as_of, horizon_days, catalog)
    impact = None
    if campaign_log is not None:
        log.info("measuring the campaign log")
        impact = backtest_impact(campaign_log, data, catalog, configs, seed)
    runs = []
    for spec in specs:
        log.info("evaluating %s", spec)
        models = obtain(spec, data, configs)
        sections = measure(models, data, configs, seed)
        if impact is not None:
            sections["impact"] = impact
        runs.append(
            ModelRun(label=spec, versions=models.versions, sections=sections, notes=models.notes)
        )
    notes = list(data.notes)
    if not data.has_categories:
        notes.append(
            "This dataset has no product categories matching the offer catalog: only CLV and churn "
            "are evaluated (next best offer and decisions need categories)."
        )
    settings = {
        "seed": seed,
        "specs": list(specs),
        "churn_horizon_days": configs["churn"]["horizon_days"],
        "nbo_label_window_days": configs["nbo"]["label_window_days"],
        "data_end": str(data.end.date()),
        "count_models": list(configs["clv"]["count_models"]),
    }
    if campaign_log is not None:
        frame = campaign_log.log if isinstance(campaign_log, CampaignLog) else campaign_log
        settings["campaign_log_rows"] = int(len(frame))
    return Evaluation(
        dataset=data.name,
        as_of=data.as_of,
        horizon_days=data.horizon_days,
        runs=runs,
        notes=notes,
        seconds=time.perf_counter() - started,
        settings=settings,
    )


def flat_metrics(result: Evaluation) -> dict[str, float]:
    """``<spec>.<section>.<metric>[.<baseline>]`` -> value, finite only, names MLflow accepts.

    Measures with a bootstrap interval add ``.low`` / ``.high`` (the model's value) and ``.gain``,
    ``.gain_low``, ``.gain_high`` (its gain over the best baseline).
    """
    out = {}
    for run in result.runs:
        prefix = f"{run.label}." if result.compare else ""
        for sname, section in run.sections.items():
            for s in section.scores:
                items = [
                    ("", s.value),
                    *((f".baseline_{k}", v) for k, v in s.baselines.items()),
                    *((f".reference_{k}", v) for k, v in s.references.items()),
                ]
                if s.interval is not None:
                    items += [
                        (".low", s.interval.value[0]),
                        (".high", s.interval.value[1]),
                        (".gain", s.gain()),
                        (".gain_low", s.interval.gain[0]),
                        (".gain_high", s.interval.gain[1]),
                    ]
                for suffix, v in items:
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        out[_metric_name(f"{prefix}{sname}.{s.key}{suffix}")] = float(v)
    return out


def _metric_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", name).replace(" ", "_")


def write_outputs(result: Evaluation, output: Path) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``report.html`` into ``output`` (created). Returns both paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    metrics_path, report_path = output / "metrics.json", output / "report.html"
    metrics_path.write_text(json.dumps(result.as_dict(), indent=2, default=str, allow_nan=False))
    report_path.write_text(render(result), encoding="utf-8")
    return metrics_path, report_path


def evaluate_periods_to_dir(
    dataset: Dataset,
    as_ofs: list[str],
    horizon_days: int,
    output: Path,
    configs: dict[str, dict],
    catalog: Catalog,
    specs: tuple[str, ...] = ("train",),
    seed: int = 42,
    campaign_log: CampaignLog | pd.DataFrame | None = None,
) -> tuple[list[Evaluation], Path]:
    """:func:`evaluate_to_dir` at each cut-off into ``output/<as_of>/``, then the summary across
    them (:mod:`nextbest.evaluate.periods`). Every cut-off is checked before the first runs.

    Returns the evaluations (oldest first) and the path of ``summary.json``.
    """
    days = check_periods(as_ofs, specs)
    dataset = fold_events(dataset).dataset
    for day in days:
        check_horizon(dataset, day, horizon_days)
    results = [
        evaluate_to_dir(
            dataset,
            day,
            horizon_days,
            Path(output) / day,
            configs,
            catalog,
            specs,
            seed,
            campaign_log,
            folded=True,
        )
        for day in days
    ]
    return results, write_summary(results, output)


def evaluate_to_dir(
    dataset: Dataset,
    as_of,
    horizon_days: int,
    output: Path,
    configs: dict[str, dict],
    catalog: Catalog,
    specs: tuple[str, ...] = ("train",),
    seed: int = 42,
    campaign_log: CampaignLog | pd.DataFrame | None = None,
    folded: bool = False,
) -> Evaluation:
    """:func:`evaluate`, then write ``output/metrics.json`` and ``output/report.html`` and log all
    to MLflow. ``folded``: the event store is already folded into ``dataset`` (not again)."""
    import mlflow

    registry.setup()
    if not folded:
        dataset = fold_events(dataset).dataset  # consent and purchases from the event store
    as_of = default_backtest_as_of(dataset, horizon_days) if as_of is None else parse_as_of(as_of)
    name = f"evaluate-{dataset.name}-{as_of.date()}"
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({"stage": "evaluate", "dataset": dataset.name, "as_of": str(as_of.date())})
        mlflow.log_params(
            {
                "as_of": str(as_of.date()),
                "horizon_days": horizon_days,
                "models": " vs ".join(specs),
                "seed": seed,
                "dataset": dataset.name,
            }
        )
        for kind in ("clv", "churn", "nbo"):
            mlflow.log_params(registry.flatten(f"config.{kind}", configs[kind]))
        result = evaluate(dataset, as_of, horizon_days, configs, catalog, specs, seed, campaign_log)
        result.run_id = run.info.run_id
        mlflow.log_params(
            {
                _metric_name(f"version.{r.label}.{k}"): v
                for r in result.runs
                for k, v in r.versions.items()
            }
        )
        mlflow.log_metrics(flat_metrics(result))
        metrics_path, report_path = write_outputs(result, output)
        mlflow.log_artifact(str(metrics_path))
        mlflow.log_artifact(str(report_path))
        with tempfile.TemporaryDirectory() as tmp:
            for r in result.runs:
                for section in r.sections.values():
                    for chart in section.charts:
                        folder = Path(tmp) / _metric_name(r.label).replace("/", "_")
                        folder.mkdir(exist_ok=True)
                        (folder / f"{chart.name}.png").write_bytes(chart.png)
            mlflow.log_artifacts(tmp, "figures")
        mlflow.log_metric("evaluate_seconds", result.seconds)
    return result
