"""The layer contract: errors, config -> data -> features -> models -> decision -> scoring -> apps.

A module may import its own package and any package of a LOWER layer, never
a higher one nor a sibling of its own layer. Imports inside functions count
too (hiding an import in a function does not change the dependency). Module
-level imports must form no cycle.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nextbest"

# Lowest first. Packages on one line are siblings: neither may import the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("config",),
    ("data",),
    ("features",),
    ("models",),
    ("decision", "plots"),
    ("scoring",),
    ("registry", "events"),
    ("train",),
    ("evaluate", "batch", "serving"),
    ("service", "cli"),
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def package_of(module: str) -> str | None:
    """``nextbest.batch.job`` -> ``batch``; ``nextbest`` itself -> ``None``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "nextbest" else None


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(root: Path, name: str) -> bool:
    """Whether ``nextbest.a.b`` names a module or package under ``root`` (not an attribute)."""
    path = root.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports(root: Path):
    """``(module, imported module, line, at module level)`` for every nextbest import under root.

    ``from nextbest.a import b`` imports module ``nextbest.a.b`` when that is a
    module, else module ``nextbest.a``.
    """
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.append(sub if is_module(root, sub) else node.module)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in dict.fromkeys(targets):
                if target.startswith("nextbest.") and target != module:
                    yield module, target, node.lineno, id(node) in top_level


def violations(root: Path) -> list[str]:
    """Every import that goes up a layer or sideways to a sibling package."""
    found = []
    for module, target, line, _ in imports(root):
        src, dst = package_of(module), package_of(target)
        if src is None or dst is None or src == dst:
            continue
        if src not in RANK or dst not in RANK:
            found.append(f"{module}:{line}: {target} (package not in LAYERS)")
        elif RANK[dst] >= RANK[src]:
            found.append(f"{module}:{line} imports {target}: {dst} is not below {src}")
    return found


def cycles(root: Path) -> list[list[str]]:
    """Cycles among module-level imports (each cycle once)."""
    graph: dict[str, set[str]] = {}
    for module, target, _, top in imports(root):
        if top:
            graph.setdefault(module, set()).add(target)
    found, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = stack[stack.index(node) :]
            if frozenset(cycle) not in done:
                done.add(frozenset(cycle))
                found.append([*cycle, node])
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*stack, node])

    for start in sorted(graph):
        visit(start, [])
    return found


def test_every_package_is_in_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert (packages | modules) <= set(RANK), sorted((packages | modules) - set(RANK))


def test_no_import_goes_up_or_sideways():
    assert violations(SRC) == []


def test_module_level_imports_have_no_cycle():
    assert cycles(SRC) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "nextbest"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # an upward import at the top of a file
        (
            {"features/build.py": "from nextbest.models.tabular import demographic_columns\n"},
            "nextbest.features.build:1 imports nextbest.models.tabular: "
            "models is not below features",
        ),
        # the same import hidden inside a function
        (
            {"data/files.py": "def f():\n    from nextbest.train import pipeline\n"},
            "nextbest.data.files:2 imports nextbest.train: train is not below data",
        ),
        # sideways between sibling applications
        (
            {"serving/state.py": "from nextbest import batch\n", "batch/__init__.py": ""},
            "nextbest.serving.state:1 imports nextbest.batch: batch is not below serving",
        ),
    ],
)
def test_the_checker_catches_an_upward_import(tmp_path, files, expected):
    root = _tree(tmp_path, {"__init__.py": "", **files})
    assert violations(root) == [expected]


def test_the_checker_accepts_downward_imports_and_catches_a_cycle(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "scoring.py": "from nextbest.decision import policy\n",
            "evaluate/report.py": "from nextbest.evaluate.run import ORDER\n",
            "evaluate/run.py": "from nextbest.evaluate.report import render\n",
        },
    )
    assert violations(root) == []
    assert cycles(root) == [
        ["nextbest.evaluate.report", "nextbest.evaluate.run", "nextbest.evaluate.report"]
    ]
