"""The shipped UI-format workflows, loaded by the REAL ComfyUI web frontend in a headless Chromium.

For each `workflows/<name>.json`, the page of the session's test server (which serves the
frontend package of the ComfyUI install, with this pack registered) runs
`app.loadGraphData(file)` and then `app.graphToPrompt()`, as loading the file from the menu
or the template browser and pressing Queue would. Checked:

1. no node type is reported missing, and every node of the file is a node of the graph with
   its type and title (our pack's nodes come from the server's /object_info);
2. the widget values survive: the live widgets and the re-serialized node equal the file's
   `widgets_values`;
3. the prompt the frontend builds equals `workflows/api/<name>.json` (class_type and inputs
   per node id; `_meta` is ignored), also after the queue callbacks of control_after_generate
   ran (the seeds are "fixed", so a second queue sends the same values);
4. the models are the ones the test server lacks (flux1-dev.safetensors, ...): the frontend
   keeps those combo values and offers each model of the file's `models` /
   `properties.models` for download. Frontend 1.27 (ComfyUI 0.3.64) opens its "Missing
   Models" dialog with a Download button per model (no "not allowed" or "invalid directory"
   entry); 1.47 (ComfyUI 0.29) records them in its `missingModel` store, each with the
   file's directory and URL, and shows an "N errors found" overlay counting them (and
   missing input files such as example.png);
5. no console error beyond the expected offline ones (the frontend asks huggingface.co for
   file sizes, which fails offline, or which the Content-Security-Policy that
   --disable-api-nodes sets blocks; LoadImage previews example.png, which the test input
   folder lacks).

Node ids are compared as strings: 1.47 keeps them as strings, 1.27 as numbers.

Needs the `playwright` package and a system Chromium (see tests/comfyui/README.md); skips
with the reason otherwise. LUMIX_UI_SCREENSHOTS=<dir> saves a screenshot per workflow.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import ui_frontend  # noqa: E402

NAMES = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
UNAVAILABLE = ui_frontend.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"UI-load test: {UNAVAILABLE}")

# Console errors that are expected here and say nothing about the workflow files.
EXPECTED_ERRORS = (
    re.compile(r"^Failed to load resource: "),        # duplicate of the URL-level lines below
    re.compile(r"^HTTP 404: \S+/api/view\?type=input&filename=example\.png&"),  # LoadImage preview
    *ui_frontend.OFFLINE_ERRORS,   # the dialogs' file-size requests to huggingface.co
)


def unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not any(p.search(e) for p in EXPECTED_ERRORS)]


@pytest.fixture(scope="module")
def frontend(comfyui_server):
    started = time.monotonic()
    with ui_frontend.Frontend(comfyui_server.url) as page:
        print(f"frontend ready in {time.monotonic() - started:.1f} s; model-to-node repair: "
              f"{page.repaired}; start-up console errors: {len(page.console_errors)}")
        yield page


def strip_meta(prompt: dict) -> dict:
    return {node_id: {"class_type": node.get("class_type"), "inputs": node.get("inputs")}
            for node_id, node in prompt.items()}


def missing_models_listed(dialogs: list[str]) -> set[str]:
    """The "<directory> / <name>" rows of the Missing Models dialog."""
    rows = set()
    for text in dialogs:
        if text.startswith("Missing Models"):
            rows |= {line.strip() for line in text.splitlines()
                     if re.fullmatch(r"[\w.-]+ / [\w.-]+", line.strip())}
    return rows


def check_missing_models(ui: dict, result: dict):
    """Every model of the file is offered for download, in the frontend's own way."""
    expected = {f"{m['directory']} / {m['name']}" for m in ui["models"]}
    assert expected, "the UI file records no models"
    missing = result["missing"]
    if missing["models"] is None:
        # Frontend 1.27: the "Missing Models" dialog, one Download button per model.
        assert missing_models_listed(result["dialogs"]) == expected, result["dialogs"]
        models_dialog = next(d for d in result["dialogs"] if d.startswith("Missing Models"))
        assert models_dialog.count("Download") == len(expected), models_dialog
        for problem in ("not allowed", "Invalid directory", "Only allowed suffixes"):
            assert problem not in models_dialog, models_dialog
        assert not [d for d in result["dialogs"] if not d.startswith("Missing Models")], result["dialogs"]
        return
    # Frontend 1.47: the missingModel store (one entry per model widget) and the overlay.
    urls = {m["name"]: m["url"] for m in ui["models"]}
    listed = {f"{c['directory']} / {c['name']}" for c in missing["models"]}
    assert listed == expected, missing["models"]
    for candidate in missing["models"]:
        assert candidate["isMissing"] and candidate["url"] == urls[candidate["name"]], candidate
    media = missing["media"] or []
    assert {c["name"] for c in media} <= {"example.png"}, media
    assert missing["overlay_count"] == len(missing["models"]) + len(media), missing
    assert result["dialogs"] == [], result["dialogs"]


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_loads_in_the_real_frontend(frontend, name):
    ui = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    api = json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text())
    started = time.monotonic()
    result = frontend.load(ui)
    print(f"{name}: loaded and converted in {time.monotonic() - started:.2f} s; dialogs: "
          f"{[d.splitlines()[0] for d in result['dialogs']]}")
    if os.environ.get("LUMIX_UI_SCREENSHOTS"):
        folder = pathlib.Path(os.environ["LUMIX_UI_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        frontend.screenshot(str(folder / f"{name}.png"))

    # 1. every node type known, every node present with its type and title
    assert result["missing_node_types"] == [], result["missing_node_types"]
    assert all(result["registered"].values()), result["registered"]
    graph_nodes = {str(node["id"]): node for node in result["nodes"]}
    assert sorted(graph_nodes) == sorted(str(node["id"]) for node in ui["nodes"])
    assert result["links"] == len(ui["links"])
    for node in ui["nodes"]:
        live = graph_nodes[str(node["id"])]
        assert (live["type"], live["title"]) == (node["type"], node["title"]), node["id"]
        assert live["serialized"]["type"] == node["type"]

        # 2. widget values survive, in the live widgets and when saved again
        assert live["serialized"].get("widgets_values", []) == node["widgets_values"], node["id"]
        assert "UNKNOWN" not in [w["name"] for w in live["widgets"]], (node["id"], live["widgets"])

    # 3. the prompt equals the shipped API file, now and on the next queue
    assert strip_meta(result["output"]) == strip_meta(api)
    assert strip_meta(result["output_next_queue"]) == strip_meta(api)
    for node_id, node in api.items():
        assert result["output"][node_id].get("_meta", {}).get("title", node["_meta"]["title"]) \
            == node["_meta"]["title"]

    # 4. missing models: offered for download, combo values kept
    check_missing_models(ui, result)

    # 5. no unexpected console errors during the load
    assert unexpected(result["console_errors"]) == []
