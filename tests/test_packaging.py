"""The Bento installs what the package needs: bentofile.yaml lists pyproject's dependencies."""

from __future__ import annotations

import tomllib

import yaml

from nextbest.config import PROJECT_ROOT


def test_bentofile_packages_are_the_project_dependencies():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    bento = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text())["python"]["packages"]
    assert sorted(bento) == sorted(project)
