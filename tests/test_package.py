"""The package's shape: importable outside ComfyUI, engine free of ComfyUI."""
import importlib.util
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_entry_point_imports_outside_comfyui():
    spec = importlib.util.spec_from_file_location("ComfyUI_LumiX_outside", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert not hasattr(module, "comfy_entrypoint")  # no ComfyUI here, so no nodes


def test_engine_never_imports_comfyui():
    pattern = re.compile(r"^\s*(from|import)\s+(comfy|comfy_api|folder_paths|nodes|node_helpers|latent_preview)\b",
                         re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "lumix_engine").rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines()]
    assert "python -m pytest -q tests" in readme
    assert lines.index("python -m pip install -q torch==2.13.0") < lines.index("python -m pytest -q tests")
    # then the real-ComfyUI suite, where a skipped test fails CI
    assert "tests/comfyui --lumix-require-comfyui" in ci and "set -euo pipefail" in lines
