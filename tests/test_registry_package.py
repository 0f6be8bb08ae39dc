"""What ComfyUI users meet before any node runs: Registry metadata, help pages, thumbnails,
licence, changelog. No ComfyUI needed: node ids and input names are read from the node
modules' source (they import comfy_api, which is absent here); the real-ComfyUI suite
checks the pages against the live /object_info as well (tests/comfyui/test_help_pages.py).

pyproject.toml is checked field by field against the Comfy Registry specification
(docs.comfy.org/registry/specifications) and the rules comfy-cli's `comfy node validate`
applies (comfy_cli/registry/config_parser.py): its classifier and version checks only warn
and then drop the field, so a wrong value would publish silently without these tests.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from PIL import Image

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11 (tomllib)")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, COMFY = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
WEB = ROOT / "web"
HELP = WEB / "docs"

# comfy-cli's accepted classifier values (validate_and_extract_*_classifiers).
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}
# comfy-cli's validate_version: comma-separated [operator]major.minor.patch[-suffix].
VERSION_PART = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)?$")


# --- pyproject.toml against the Registry specification --------------------------------

def test_name_follows_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name), "only letters, digits, '-', '_' and '.'"
    assert not re.search(r"[._-]{2}", name), "no consecutive special characters"
    assert name[0].isalpha(), "must not start with a digit or a special character"
    assert "comfyui" not in name.lower(), "the Registry discourages 'ComfyUI' in the node id"


def test_version_is_three_part_semver_and_the_engine_reports_it():
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    import lumix_engine
    assert lumix_engine.__version__ == PROJECT["version"]


def test_licence_points_at_the_mit_licence_file():
    assert PROJECT["license"] == {"file": "LICENSE"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text


def test_description_and_repository():
    assert 20 < len(PROJECT["description"]) < 300
    assert PROJECT["urls"]["Repository"].startswith("https://github.com/")
    assert set(PROJECT["urls"]) <= {"Repository", "Documentation", "Issues", "Changelog", "Homepage", "Paper"}


def test_classifiers_are_ones_the_registry_reads():
    classifiers = PROJECT["classifiers"]
    systems = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert systems and all(s.startswith(OS_PREFIXES) for s in systems)
    assert accelerators and set(accelerators) <= ACCELERATORS


def test_requires_comfyui_is_a_valid_range_covering_the_tested_versions():
    spec = COMFY["requires-comfyui"]
    parts = [part.strip() for part in spec.split(",")]
    assert all(VERSION_PART.match(part) for part in parts), spec
    # The two trees the real-ComfyUI suite runs on must both satisfy it.
    for tested in ((0, 3, 64), (0, 29, 0)):
        for part in parts:
            operator, version = VERSION_PART.match(part).groups()
            bound = tuple(int(x) for x in version.split("-")[0].split("."))
            assert {">=": tested >= bound, ">": tested > bound, "<": tested < bound, "<=": tested <= bound,
                    "==": tested == bound, None: tested == bound}[operator], (spec, tested)


def test_dependencies_are_the_requirements_file():
    """pyproject's dependencies (what the Registry and pip read) and requirements.txt (what
    ComfyUI-Manager and CI install) name the same packages with the same ranges."""
    listed = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = sorted(line for line in listed if line)
    assert requirements and sorted(PROJECT["dependencies"]) == requirements


def test_tool_comfy_fields():
    assert re.fullmatch(r"[a-z][a-z0-9-]*", COMFY["PublisherId"])
    assert COMFY["DisplayName"] == "ComfyUI-LumiX"
    assert COMFY["includes"] == []


def test_icon_is_a_url_to_a_real_square_icon_in_this_repository():
    url = COMFY["Icon"]
    repository = PROJECT["urls"]["Repository"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    assert url.startswith(prefix), url
    path = ROOT / url.removeprefix(prefix)
    with Image.open(path) as icon:
        assert icon.format == "PNG"
        assert icon.width == icon.height <= 400   # the Registry shows square icons up to 400 px


# --- help pages -------------------------------------------------------------------------

def node_schemas() -> dict[str, dict]:
    """{node_id: {"inputs": [...], "outputs": [...]}} from the literal names in nodes/*.py.

    Inputs made by a module-level helper of nodes/ (e.g. `exposure_input()`, `*relight_inputs()`)
    are followed into the helper. Names built in a loop (the sampler's five optional map
    inputs) are not literals; the real-ComfyUI test checks those from /object_info."""
    trees = {path: ast.parse(path.read_text()) for path in sorted((ROOT / "nodes").glob("*.py"))}
    helpers = {node.name: node for tree in trees.values() for node in tree.body if isinstance(node, ast.FunctionDef)}

    def literal_names(tree: ast.AST, attribute: str, seen: frozenset = frozenset()) -> list[str]:
        names = []
        for item in ast.walk(tree):
            if not isinstance(item, ast.Call):
                continue
            if isinstance(item.func, ast.Name) and item.func.id in helpers and item.func.id not in seen:
                names += literal_names(helpers[item.func.id], attribute, seen | {item.func.id})
            elif getattr(item.func, "attr", None) == attribute:
                shown = {k.arg: k.value for k in item.keywords}.get("display_name")
                first = item.args[0] if item.args else None
                literal = shown if isinstance(shown, ast.Constant) else first
                if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                    names.append(literal.value)
        return names

    schemas = {}
    for tree in trees.values():
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "Schema"):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            schemas[keywords["node_id"].value] = {
                kind: literal_names(keywords.get(kind, ast.List(elts=[])), attribute)
                for kind, attribute in (("inputs", "Input"), ("outputs", "Output"))}
    return schemas


SCHEMAS = node_schemas()


LUMIX_NODE_IDS = {"LumiXLoader", "LumiXSampler", "SplitIntrinsics", "Recompose", "LumiXRelight", "LumiXMaterialEdit",
                  "LumiXCoherenceScores", "LumiXDepthConvert", "LumiXNormalConvert", "LumiXSaveImage16",
                  "LumiXSaveEXR", "LumiXLinearMaps", "LumiXSaveMesh", "LumiXRelightEnvironment", "LumiXDecomposePhoto"}


def test_all_nodes_were_found():
    assert set(SCHEMAS) == LUMIX_NODE_IDS


def test_web_directory_is_declared_and_holds_the_pages():
    tree = ast.parse((ROOT / "__init__.py").read_text())
    assigned = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert (ROOT / assigned["WEB_DIRECTORY"]).resolve() == WEB
    # ComfyUI loads every .js under WEB_DIRECTORY into the page: the extensions live in web/js/,
    # and nothing else there is JavaScript by accident.
    assert all(path.relative_to(WEB).parts[0] == "js" for path in WEB.rglob("*.js"))


@pytest.mark.parametrize("node_id", sorted(SCHEMAS))
def test_every_node_has_a_help_page_naming_its_inputs_and_outputs(node_id):
    page = (HELP / f"{node_id}.md").read_text()
    assert page.startswith("# ")
    for heading in ("## Inputs", "## Outputs", "## Typical wiring"):
        assert heading in page, f"{node_id}.md lacks {heading}"
    for name in SCHEMAS[node_id]["inputs"] + SCHEMAS[node_id]["outputs"]:
        assert f"`{name}`" in page, f"{node_id}.md does not name `{name}`"


@pytest.mark.parametrize("page", sorted(HELP.glob("*.md")), ids=lambda p: p.name)
def test_help_page_pictures_exist_and_pages_are_for_real_nodes(page):
    assert page.stem in SCHEMAS, f"{page.name} is not a node id"
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
        assert not target.startswith(("/", "http")), "relative, so the frontend resolves it under the pack"
        assert (page.parent / target).is_file(), target


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "data" / "previous_release").glob("*.json")),
                         ids=lambda p: p.stem)
def test_previous_release_lumix_nodes_and_inputs_still_declared(path):
    """The CPU-side half of the compatibility check (the real-ComfyUI suite checks every node,
    core ones too, against /object_info): each LumiX node of the 0.1.0 workflows is still
    declared with each input it was saved with. The sampler's five map inputs are declared
    in a loop over MAP_NAMES, so those names come from there."""
    from lumix_engine.modalities import MAP_NAMES
    for node_id, node in json.loads(path.read_text()).items():
        if node["class_type"] not in LUMIX_NODE_IDS:
            continue
        declared = set(SCHEMAS[node["class_type"]]["inputs"]) | set(MAP_NAMES)
        gone = set(node["inputs"]) - declared
        assert not gone, f"{path.name} node {node_id} ({node['class_type']}): inputs {gone} are gone"


def test_pages_state_the_conventions():
    split = (HELP / "SplitIntrinsics.md").read_text()
    assert "albedo, irradiance, color, depth, normal" in split
    assert "near = white" in split and "(n + 1) / 2" in split and "+Y up" in split and "sRGB" in split
    sampler = (HELP / "LumiXSampler.md").read_text()
    assert "near = white" in sampler and "OpenGL" in sampler


# --- thumbnails, licence, changelog -----------------------------------------------------

@pytest.mark.parametrize("workflow", sorted((ROOT / "workflows").glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_workflow_has_a_thumbnail(workflow):
    with Image.open(workflow.with_suffix(".jpg")) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.width == thumbnail.height >= 256


def test_readme_and_loader_carry_the_licences():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Licence"):]
    for needed in ("MIT", "LICENSE", "FLUX.1 [dev] Non-Commercial License",
                   "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
                   "LumiX authors", "outputs"):
        assert needed in section, needed
    loader = (ROOT / "nodes" / "loader.py").read_text()
    assert "Non-Commercial" in loader and "LICENSE.md" in loader


def test_changelog_has_this_version_and_the_compatibility_rule():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {PROJECT['version']}" in changelog
    assert "node ids" in changelog.lower() and "input names" in changelog.lower()


def test_help_screenshots_come_from_the_browser_tests_and_each_is_shown():
    """web/docs/images/ holds only what tools/make_pictures.py draws (checked below);
    screenshots of the real frontend go to web/docs/screenshots/: saved by the browser tests
    with LUMIX_UI_SCREENSHOTS=<dir>, then `python -m tools.compose_screenshots <dir>` (its
    docstring has the commands). Each one is listed there with the test that makes it."""
    from tools import compose_screenshots

    assert {p.name for p in HELP.iterdir() if not p.name.endswith(".md")} == {"images", "screenshots"}
    folder = HELP / "screenshots"
    assert {p.name for p in folder.iterdir()} == set(compose_screenshots.SOURCES), \
        "add the screenshot to tools/compose_screenshots.py's SOURCES, naming the test that saves it"
    shown = "".join(p.read_text() for p in [*HELP.glob("*.md"), ROOT / "README.md"])
    for name, (test, _) in compose_screenshots.SOURCES.items():
        assert (ROOT / test).is_file(), test
        assert f"screenshots/{name}" in shown, f"{name} is on no help page nor the README"
        with Image.open(folder / name) as picture:
            assert picture.format in ("PNG", "WEBP"), name
    for path in folder.glob("*.webp"):
        assert path.stat().st_size < compose_screenshots.MAX_ANIMATION_BYTES, f"{path.name} is too big to load fast"


def test_help_figures_and_thumbnails_are_what_the_tool_draws_now(tmp_path):
    """The committed pictures are the tool's output for the current renderer and workflows
    (e.g. the relight thumbnail uses lumix_relight.json's light): regenerated here, they
    match within one 8-bit level per pixel on average (JPEG and float rounding may differ
    across platforms; a changed scene or light moves far more)."""
    import numpy as np

    from tools import make_pictures

    make_pictures.make_help_images(tmp_path / "images")
    make_pictures.make_thumbnails(tmp_path / "thumbnails")
    pairs = [(tmp_path / "images" / p.name, p) for p in sorted(HELP.glob("images/*.png"))]
    pairs += [(tmp_path / "thumbnails" / p.name, p) for p in sorted((ROOT / "workflows").glob("*.jpg"))]
    assert len(pairs) == len(list((tmp_path / "images").iterdir())) + len(list((tmp_path / "thumbnails").iterdir()))
    for fresh, committed in pairs:
        a = np.asarray(Image.open(fresh).convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(committed).convert("RGB"), dtype=np.float64)
        assert a.shape == b.shape, committed.name
        assert np.abs(a - b).mean() < 1.0, f"{committed.name} is stale: run python -m tools.make_pictures"
