"""The package's folders are its architecture: imports point down the layers and never form a cycle.

Read from the source with ``ast`` (nothing is imported), counting imports inside functions too: a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastnst"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "utils"),
    ("model", "perceptual"),
    ("runtime",),
    ("training", "optimizer", "export", "batch"),
    ("bench", "api"),
    ("server",),
    ("commands",),
    ("cli", "__init__"),
)
"""Lowest first. A module may import its own stage folder and any lower layer; never a higher layer, and never
another stage of its own layer (training, the optimizer, export and batch jobs are independent of each other)."""

RANK = {stage: rank for rank, stages in enumerate(LAYERS) for stage in stages}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def fastnst_imports(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of the fastnst modules ``path`` imports (``from pkg import module`` counts the module)."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "fastnst")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "fastnst":
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                found.add(candidate if is_module else target)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): fastnst_imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_stage_has_a_layer() -> None:
    stages = {stage_of(module) for module in import_graph()}
    assert stages <= set(RANK), f"stage folders with no layer in LAYERS: {sorted(stages - set(RANK))}"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, imports in graph.items():
        stage = stage_of(module)
        for target in imports:
            other = stage_of(target)
            if other != stage and RANK[other] >= RANK[stage]:
                wrong.append(f"{module} → {target} ({stage} is layer {RANK[stage]}, {other} layer {RANK[other]})")
    return sorted(wrong)


def test_imports_point_down_the_layers() -> None:
    wrong = upward_imports(import_graph())
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = import_graph()
    # A package's __init__ is imported before its modules; only edges between real modules can deadlock.
    edges = {module: {target for target in targets if target in graph} for module, targets in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target):], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in cycles)


def test_the_checker_sees_upward_and_sideways_imports(tmp_path: Path) -> None:
    """The walker itself, on a made-up runtime module: a lazy import of the exporter (upward) and a relative import
    of the trainer from the optimizer (sideways) are both reported; an import of utils is not."""
    probe = tmp_path / "probe.py"
    probe.write_text("from fastnst.utils import errors\n\n"
                     "def f():\n    from fastnst.export.onnx import export_onnx\n")
    imports = fastnst_imports(probe, "fastnst.runtime.probe")
    assert imports == {"fastnst.utils.errors", "fastnst.export.onnx"}
    sideways = tmp_path / "side.py"
    sideways.write_text("from ..training import trainer\n")
    graph = {"fastnst.runtime.probe": imports,
             "fastnst.optimizer.side": fastnst_imports(sideways, "fastnst.optimizer.side")}
    wrong = upward_imports(graph)
    assert len(wrong) == 2 and "fastnst.export.onnx" in wrong[1] and "fastnst.training.trainer" in wrong[0]
