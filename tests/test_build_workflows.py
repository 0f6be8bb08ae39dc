"""tools/build_workflows.py stays import-free (it runs without torch or the pack), so it keeps
its own copy of the published negative prompt: that copy, and what the shipped workflows
carry, must equal the engine's constant."""
import json
import pathlib
import sys

from lumix_engine.method.sampling import NEGATIVE_PROMPT

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_workflows  # noqa: E402


def test_builder_negative_prompt_is_the_engines():
    assert build_workflows.NEGATIVE == NEGATIVE_PROMPT


def test_shipped_text_to_maps_uses_the_published_negative_prompt():
    api = json.loads((ROOT / "workflows" / "api" / "lumix_text_to_maps.json").read_text())
    negatives = [node["inputs"]["text"] for node in api.values() if node["_meta"]["title"] == "Negative prompt"]
    assert negatives == [NEGATIVE_PROMPT]


def test_the_relight_workflow_says_how_to_use_the_live_editor():
    """A Note (frontend-only: in the UI file, never in the API prompt) beside the Relight node,
    clear of it, and nothing below the Relight node, where its editor grows after a run."""
    ui = json.loads((ROOT / "workflows" / "lumix_relight.json").read_text())
    api = json.loads((ROOT / "workflows" / "api" / "lumix_relight.json").read_text())
    [note] = [node for node in ui["nodes"] if node["type"] == "Note"]
    text = note["widgets_values"][0]
    assert "queue once" in text.lower() and "drag the light" in text and "Queue again" in text
    assert "Note" not in {node["class_type"] for node in api.values()}
    assert len(ui["nodes"]) == len(api) + 1 and ui["last_node_id"] == note["id"]
    [relight] = [node for node in ui["nodes"] if node["type"] == "LumiXRelight"]
    assert note["pos"][0] + note["size"][0] < relight["pos"][0] and note["pos"][1] == relight["pos"][1]
    same_column = [node for node in ui["nodes"] if node["pos"][0] == relight["pos"][0]]
    assert max(node["pos"][1] for node in same_column) == relight["pos"][1]
