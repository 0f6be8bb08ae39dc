"""Workflows saved with the previous release still fit the current nodes.

tests/data/previous_release/ holds the API workflows of release 0.1.0 (commit 0d83ed0),
copied unchanged. Against the live /object_info of this server, for every node of every
file: its class_type is registered, each of its input names is an input of that node, each
link points at an output index the source node still has, and that output's type is one the
input accepts. That is the compatibility rule of CHANGELOG.md (node ids, input names and
output order are stable), checked the way ComfyUI itself resolves a saved prompt.
"""
from __future__ import annotations

import json
import pathlib

import pytest

FILES = sorted((pathlib.Path(__file__).resolve().parents[1] / "data" / "previous_release").glob("*.json"))


def accepted_types(spec) -> set[str]:
    kind = spec[0]
    if isinstance(kind, list):          # a combo (V1 style)
        return {"COMBO"}
    return set(str(kind).split(","))


def test_the_previous_release_has_its_four_workflows():
    assert [f.stem for f in FILES] == ["lumix_image_to_maps", "lumix_maps_to_depth_control", "lumix_relight",
                                       "lumix_text_to_maps"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_previous_release_workflow_fits_the_current_schemas(comfyui, path):
    info = comfyui.object_info()
    graph = json.loads(path.read_text())
    for node_id, node in graph.items():
        class_type = node["class_type"]
        assert class_type in info, f"{path.name} node {node_id}: {class_type} is no longer registered"
        schema = info[class_type]["input"]
        known = {**schema.get("required", {}), **schema.get("optional", {})}
        for name, value in node["inputs"].items():
            assert name in known, f"{path.name} node {node_id} ({class_type}): input {name!r} is gone"
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                source = graph[value[0]]["class_type"]
                outputs = info[source]["output"]
                assert value[1] < len(outputs), f"{source} lost output {value[1]}"
                wanted = accepted_types(known[name])
                assert outputs[value[1]] in wanted or "*" in wanted, (
                    f"{path.name}: {source} output {value[1]} is {outputs[value[1]]}, {class_type}.{name} takes {wanted}")
