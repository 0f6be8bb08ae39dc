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
