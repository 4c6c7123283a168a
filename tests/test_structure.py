"""The shape of the package: imports flow one way, the spaces are plain declarations, and the
experiment's file names are spelled in one module only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from trainable import layout

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainable", "search_spaces", "analysis")


def _modules() -> dict[str, Path]:
    mods = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
            for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")}
    return {**mods, "launch": ROOT / "launch.py"}


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, at any level (top, function, TYPE_CHECKING)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module, *(f"{node.module}.{a.name}" for a in node.names)] \
            if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def test_no_import_cycle_among_the_modules():
    mods = _modules()
    graph = {m: {d for d in _imports(f, mods) if d != m and not m.startswith(d + ".")} for m, f in mods.items()}
    done: set[str] = set()

    def visit(m: str, stack: list[str]) -> None:
        assert m not in stack, f"import cycle: {' -> '.join([*stack[stack.index(m):], m])}"
        if m not in done:
            for d in sorted(graph[m]):
                visit(d, [*stack, m])
            done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_space_modules_import_only_the_config_and_the_domain_helpers():
    mods = _modules()
    spaces = [p for p in (ROOT / "search_spaces").glob("*.py") if "\nSPACE = " in p.read_text()]  # declare a SPACE
    assert len(spaces) >= 5
    for path in spaces:
        assert _imports(path, mods) <= {"search_spaces.base", "trainable.config"}, path.name


def test_nothing_imports_launch_and_the_driver_imports_no_analysis():
    mods = _modules()
    for name, path in mods.items():
        deps = _imports(path, mods)
        assert "launch" not in deps, name
        if name.startswith(("search_spaces", "trainable")):
            assert not any(d.startswith("analysis") for d in deps), name  # analysis reads what they write
        if name.startswith("trainable"):
            assert not any(d.startswith("search_spaces") for d in deps), name


def test_the_experiment_file_names_are_spelled_in_the_layout_module_only():
    names = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and "." in v}
    names |= set(layout.RETRAIN_FILES.values())
    for path in _modules().values():
        if path.name == "layout.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words = set(re.split(r"[^\w.*-]+", node.value))
                assert not words & names, f"{path.name}: {node.value!r}"


def test_the_config_names_the_architectures_and_losses_their_registries_build():
    # the config states the names (it validates a value without importing torch); the registries build them
    from dataclasses import fields

    from trainable.config import ARCHS, LossConfig
    from trainable.losses import LOSSES
    from trainable.models import ARCHS as BUILT

    assert tuple(BUILT) == ARCHS
    assert [f.name for f in fields(LossConfig) if f.metadata["help"].startswith("weight of")] == list(LOSSES)


def _string_literals(path: Path) -> set[str]:
    """The strings a module's code spells (f-string parts included), docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_each_registry_is_the_only_place_its_names_are_spelled():
    from trainable.folders import DATA_LAYOUTS
    from trainable.metrics import METRICS
    from trainable.submission import LAYOUTS

    owners = {  # a name -> the modules that may spell it: its registry (and the editions, which name layouts)
        **{m.name: {"trainable/metrics.py"} for m in METRICS.values() if m.name != "lr"},
        **{name: {"trainable/submission.py", "trainable/challenges.py"} for name in LAYOUTS},
        **{folder: {"trainable/folders.py"} for layout in DATA_LAYOUTS.values()
           for folder in (layout.images, *layout.masks)},
        **{folder: {"trainable/folders.py"} for split in ("train", "val", "test")
           for folder in (f"{split}_image", f"{split}_mask", f"{split}/{split}_image", f"{split}/{split}_mask")},
    }
    for path in _modules().values():
        spelled = "\n".join(_string_literals(path))
        for name, allowed in owners.items():
            if str(path.relative_to(ROOT)) not in allowed:
                assert not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", spelled), \
                    f"{path.relative_to(ROOT)} spells {name!r}: take it from its registry"
