"""Run configuration (defaults, YAML, overrides), state paths and import hygiene."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nextbest import config
from nextbest.config import CLV_DEFAULTS, Paths, config_hash, home, load_config, merge


@pytest.fixture
def defaults() -> dict:
    return {"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": "keep"}


# --- merge -----------------------------------------------------------------------------


def test_merge_overrides_scalars_and_skips_none(defaults):
    out = merge(defaults, {"a": 5, "d": None, "new": 0})
    assert out == {"a": 5, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": "keep", "new": 0}


def test_merge_is_recursive_on_nested_dicts(defaults):
    out = merge(defaults, {"b": {"y": 20, "z": 30, "x": None}})
    assert out["b"] == {"x": 1, "y": 20, "z": 30}


def test_merge_replaces_when_either_side_is_not_a_dict(defaults):
    assert merge(defaults, {"b": 3})["b"] == 3
    assert merge(defaults, {"a": {"k": 1}})["a"] == {"k": 1}
    assert merge(defaults, {"c": [9]})["c"] == [9]  # lists are replaced, not appended


def test_merge_with_no_overrides_is_an_equal_new_dict(defaults):
    for overrides in (None, {}):
        out = merge(defaults, overrides)
        assert out == defaults
        assert out is not defaults


def test_merge_does_not_mutate_its_inputs(defaults):
    overrides = {"a": 2, "b": {"y": None, "z": 3}, "d": None}
    before = copy.deepcopy((defaults, overrides))
    out = merge(defaults, overrides)
    assert (defaults, overrides) == before
    assert out["b"] is not defaults["b"]  # a merged nested dict is a new one


def test_editing_a_merged_config_leaves_the_defaults_alone(defaults):
    out = merge(defaults, {"a": 2})
    out["b"]["x"] = 100
    out["c"].append(3)
    assert defaults == {"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": "keep"}


# --- load_config -----------------------------------------------------------------------


def test_load_config_merges_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "clv.yaml"
    path.write_text("horizon_days: 90\nthresholds:\n  max_abs_aggregate_error: 0.5\n")
    defaults_before = copy.deepcopy(CLV_DEFAULTS)
    cfg = load_config("clv", overrides={"seed": 7, "horizon_days": None}, path=path)
    assert cfg["horizon_days"] == 90  # from the file; the None flag means "not given"
    assert cfg["seed"] == 7  # from the overrides
    assert cfg["thresholds"] == {**CLV_DEFAULTS["thresholds"], "max_abs_aggregate_error": 0.5}
    assert cfg["time_unit_days"] == CLV_DEFAULTS["time_unit_days"]
    assert set(cfg) == set(CLV_DEFAULTS)
    assert CLV_DEFAULTS == defaults_before


def test_load_config_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "clv.yaml"
    path.write_text("horizon_days: 90\n")
    assert load_config("clv", overrides={"horizon_days": 30}, path=path)["horizon_days"] == 30


@pytest.mark.parametrize("text", [None, "", "# only a comment\n"])
def test_load_config_without_a_usable_file_gives_the_defaults(tmp_path, text):
    path = tmp_path / "clv.yaml"
    if text is not None:
        path.write_text(text)
    assert load_config("clv", path=path) == CLV_DEFAULTS


def test_load_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "clv.yaml"
    path.write_text("horizn_days: 90\nseed: 1\nzeta: 2\n")
    message = r"clv\.yaml: unknown key\(s\) \['horizn_days', 'zeta'\]; known: \["
    with pytest.raises(ValueError, match=message):
        load_config("clv", path=path)


def test_load_config_rejects_a_non_mapping_file(tmp_path):
    path = tmp_path / "clv.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping at the top level"):
        load_config("clv", path=path)


def test_load_config_finds_the_file_in_nextbest_models_dir(tmp_path, monkeypatch):
    (tmp_path / "clv.yaml").write_text("seed: 123\n")
    monkeypatch.setenv("NEXTBEST_MODELS_DIR", str(tmp_path))
    assert config.models_dir() == tmp_path
    assert load_config("clv")["seed"] == 123


def test_load_config_of_a_model_without_code_defaults_is_the_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("alpha: 1\nnested: {b: 2}\n")
    assert load_config("other", overrides={"nested": {"c": 3}}, path=path) == {
        "alpha": 1,
        "nested": {"b": 2, "c": 3},
    }


def test_the_repository_clv_yaml_loads():
    cfg = load_config("clv", path=config.PROJECT_ROOT / "models" / "clv.yaml")
    assert set(cfg) == set(CLV_DEFAULTS)


# --- home and Paths --------------------------------------------------------------------


def test_home_honours_nextbest_home_and_does_not_create_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "state"))
    assert home() == (tmp_path / "state").resolve()
    assert not (tmp_path / "state").exists()


def test_home_defaults_to_dot_nextbest_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXTBEST_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert home() == tmp_path.resolve() / ".nextbest"
    assert list(tmp_path.iterdir()) == []


def test_relative_nextbest_home_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBEST_HOME", "rel/state")
    monkeypatch.chdir(tmp_path)
    assert home() == tmp_path.resolve() / "rel" / "state"


def test_paths_lay_out_the_home_and_ensure_creates_them(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "h"))
    paths = Paths.from_env()
    root = (tmp_path / "h").resolve()
    assert paths.root == root
    assert paths.mlflow_db == root / "mlflow.db"
    assert paths.mlflow_artifacts == root / "mlartifacts"
    assert paths.snapshots == root / "snapshots"
    assert paths.rejects == root / "rejects"
    assert paths.logs == root / "logs"
    assert not root.exists()
    assert paths.ensure() is paths
    assert sorted(p.name for p in root.iterdir()) == ["logs", "mlartifacts", "rejects", "snapshots"]
    paths.ensure()  # idempotent


def test_tracking_uri_honours_mlflow_tracking_uri(tmp_path, monkeypatch):
    # The environment is read into the one Settings object; Paths carry the result.
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert Paths.from_env().tracking_uri() == "http://mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # empty means unset
    assert Paths.from_env().tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert Paths.from_env().tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


# --- config_hash -----------------------------------------------------------------------


def test_config_hash_is_stable_short_hex_and_order_independent():
    a = {"x": 1, "nested": {"p": 0.1, "q": [1, 2]}, "s": "v"}
    b = {"s": "v", "nested": {"q": [1, 2], "p": 0.1}, "x": 1}
    h = config_hash(a)
    assert len(h) == 12 and int(h, 16) >= 0
    assert config_hash(a) == h
    assert config_hash(copy.deepcopy(a)) == h
    assert config_hash(b) == h


def test_config_hash_changes_with_any_value():
    a = {"x": 1, "nested": {"p": 0.1, "q": [1, 2]}}
    assert config_hash({**a, "x": 2}) != config_hash(a)
    # list order is meaningful (e.g. the penalizer search order)
    assert config_hash({**a, "nested": {"p": 0.1, "q": [2, 1]}}) != config_hash(a)
    assert config_hash({**a, "extra": None}) != config_hash(a)


def test_config_hash_accepts_paths_via_str():
    assert config_hash({"p": Path("/x/y")}) == config_hash({"p": "/x/y"})


# --- import hygiene --------------------------------------------------------------------


def test_importing_nextbest_creates_nothing_in_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NEXTBEST_HOME", "MLFLOW_TRACKING_URI")}
    code = "import nextbest, nextbest.cli, nextbest.train, nextbest.registry"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, timeout=120)
    assert list(tmp_path.iterdir()) == []
