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

Beside the engine: `evaluation/` (references, adversarial sets, held-out scores, benchmark
timing) may import lumix_engine, but lumix_engine/ and nodes/ never import it, so nothing
evaluation-only ships in the product's import graph; and `benchmarks/` holds scripts run by
hand, which nothing imports.
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


# --- product apart from evaluation ------------------------------------------------------

def imported_modules(path: Path) -> set[str]:
    """Every absolute module name `path` imports (relative imports resolve inside its own package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py")) if "assets" not in p.parts]


def imports_top(path: Path, top: str) -> bool:
    return any(name == top or name.startswith(top + ".") for name in imported_modules(path))


@pytest.mark.parametrize("path", python_files("lumix_engine", "nodes") + [ROOT / "__init__.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_product_never_imports_evaluation_or_benchmarks(path):
    for top in ("evaluation", "benchmarks", "tests", "tools"):
        assert not imports_top(path, top), f"{path.relative_to(ROOT)} imports {top}: shipped code stays apart from it"
    relative = [node for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level >= 2 and (node.module or "").split(".")[0]
                in ("evaluation", "benchmarks")]
    assert not relative, f"{path.relative_to(ROOT)} reaches evaluation/benchmarks through a relative import"


@pytest.mark.parametrize("path", python_files("lumix_engine", "nodes", "evaluation", "tests", "tools", "benchmarks"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_imports_benchmarks(path):
    """benchmarks/ is scripts run by hand (`python -m benchmarks.x`); what others need lives in evaluation/."""
    assert not imports_top(path, "benchmarks"), \
        f"{path.relative_to(ROOT)} imports benchmarks; move what it needs to evaluation/"


def test_evaluation_sits_on_top_of_the_engine():
    """evaluation/ may import lumix_engine (this checks that the tests above see real imports)."""
    assert any(imports_top(p, "lumix_engine") for p in python_files("evaluation"))
    assert any(imports_top(p, "evaluation") for p in python_files("tests"))


@pytest.mark.parametrize("path", python_files("lumix_engine", "nodes", "tools"), ids=lambda p: str(p.relative_to(ROOT)))
def test_one_logger_per_module_named_by_the_module(path):
    """logging.getLogger(__name__) only: records carry their module's name (lumix_engine.method.patch, ...),
    and configuring the package logger `lumix_engine` reaches all of them."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger":
            named = [ast.unparse(a) for a in node.args]
            assert named == ["__name__"], f"{path.relative_to(ROOT)}:{node.lineno} getLogger({', '.join(named)})"
