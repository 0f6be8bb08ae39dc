"""The package layout is the architecture: imports go down the layers and never in a cycle.

Layers, bottom to top (docs/architecture.md):
    0  errors, devices                  the error types; which devices lack float64
    1  modalities                       the five-map batch layout
    2  flux, intrinsics, image_io       the FLUX base; map math; files <-> tensors
    3  method, formats                  LumiX on top of FLUX (QBA, Tensor LoRA, sampling);
                                        file formats for other tools (EXR, GLB, HDR)
    4  tiny_random, tiny_trained        toy models built from the layers below
    5  apps                             pipeline, CLI, demo
    6  train                            training (uses the pipeline's encoders)
A module may import its own package and anything on a lower layer, never higher.
Every import counts, function-local ones too: hiding an import in a function does not
remove the dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "lumix_engine"
LAYERS = {
    "errors": 0, "devices": 0,
    "modalities": 1,
    "flux": 2, "intrinsics": 2, "image_io": 2,
    "method": 3, "formats": 3,
    "tiny_random": 4, "tiny_trained": 4,
    "apps": 5,
    "train": 6,
}
ENTRY_POINTS = {"lumix_engine", "lumix_engine.__main__"}   # the public surface re-exports all layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports(path: Path) -> set[str]:
    """Every lumix_engine module that `path` imports, resolved to module names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lumix_engine")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("lumix_engine"):
                continue
            for alias in node.names:   # `from . import x` may name a submodule
                candidate = f"{target}.{alias.name}"
                found.add(candidate if module_path(candidate) else target)
    return {module for module in found if module_path(module)}


def module_path(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def layer_of(module: str) -> tuple[str, int]:
    top = module.split(".")[1]
    if top not in LAYERS:
        raise AssertionError(f"{module}: its top-level name {top!r} has no layer; add it to LAYERS and "
                             f"docs/architecture.md")
    return top, LAYERS[top]


GRAPH = {module_name(p): engine_imports(p) for p in sorted(ENGINE.rglob("*.py")) if "assets" not in p.parts}


def test_every_engine_module_sits_on_a_layer():
    for module in GRAPH:
        if module not in ENTRY_POINTS:
            layer_of(module)


@pytest.mark.parametrize("module", sorted(set(GRAPH) - ENTRY_POINTS))
def test_imports_go_down_the_layers(module):
    own_top, own_layer = layer_of(module)
    upward = [target for target in GRAPH[module] if target not in ENTRY_POINTS
              and layer_of(target)[0] != own_top and layer_of(target)[1] >= own_layer]
    assert not upward, f"{module} (layer {own_layer}) imports {upward}, which are not below it"


def test_no_import_cycles():
    state: dict[str, int] = {}   # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH.get(module, ())):
            if target == module:
                continue
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [module, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if state.get(target) is None:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(GRAPH):
        if state.get(module) is None:
            visit(module, [module])


def test_the_graph_is_not_empty():
    """The checks above would pass on an empty graph; make sure they see the real imports."""
    assert "lumix_engine.flux.model" in GRAPH["lumix_engine.method.patch"] or \
        any(t.startswith("lumix_engine.flux") for t in GRAPH["lumix_engine.method.patch"])
    assert len(GRAPH) > 40
