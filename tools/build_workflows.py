"""Build the shipped workflows in both ComfyUI formats from one definition.

    python tools/build_workflows.py --object-info object_info.json   # from GET /object_info

Each workflow is written once here, as an API-format graph with readable node names; this
script numbers the nodes, writes `workflows/api/<name>.json` (POST /prompt format) and
`workflows/<name>.json` (the UI format the frontend loads and the template browser lists),
laying the nodes out left to right by depth (thumbnails, `workflows/<name>.jpg`, are drawn
from rendered maps by `tools/make_pictures.py`). Widget order comes from the live server's
/object_info, so the UI files match the nodes' real schemas.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"
NEGATIVE = "blurry, low quality, artifacts, distorted, noisy, pixelated, jpeg artifacts"
MAPS = ("albedo", "irradiance", "color", "depth", "normal")

# Widgets the frontend adds to a node on top of its schema, serialized after the schema's
# own widgets and sent with the prompt (Preview 3D's viewer keeps its state in "image",
# empty until a model is shown; the server ignores it).
FRONTEND_WIDGETS = {"Preview3D": {"image": ""}}

MODELS = {
    "flux1-dev.safetensors": ("diffusion_models",
                              "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors"),
    "ae.safetensors": ("vae", "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors"),
    "clip_l.safetensors": ("text_encoders",
                           "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors"),
    "t5xxl_fp16.safetensors": ("text_encoders", "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/"
                                                "t5xxl_fp16.safetensors"),
    "lumix.safetensors": ("lumix", "https://huggingface.co/hanx/LumiX_ckp/resolve/main/lumix.safetensors"),
    "flux1-depth-dev-lora.safetensors": ("loras", "https://huggingface.co/black-forest-labs/FLUX.1-Depth-dev-lora/"
                                                  "resolve/main/flux1-depth-dev-lora.safetensors"),
}


def flux_and_lumix(prompt: str, negative: str = NEGATIVE) -> dict:
    """Loaders, prompts and LumiXLoader: the start of every LumiX workflow."""
    return {
        "FLUX.1-dev": ("UNETLoader", {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}),
        "Text encoders": ("DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
                                             "type": "flux", "device": "default"}),
        "FLUX VAE": ("VAELoader", {"vae_name": "ae.safetensors"}),
        "LumiX": ("LumiXLoader", {"model": ("FLUX.1-dev", 0), "lumix_name": "lumix.safetensors", "strength": 1.0,
                                  "qba": True}),
        "Prompt": ("CLIPTextEncode", {"text": prompt, "clip": ("Text encoders", 0)}),
        "Negative prompt": ("CLIPTextEncode", {"text": negative, "clip": ("Text encoders", 0)}),
    }


def sampler(width: int, height: int, seed: int, given: dict[str, str] | None = None) -> dict:
    inputs = {"model": ("LumiX", 0), "positive": ("Prompt", 0), "negative": ("Negative prompt", 0), "seed": seed,
              "steps": 50, "cfg": -1.0, "guidance": -1.0, "width": width, "height": height, "scenes": 1,
              "sampler_name": "euler", "scheduler": "published"}
    if given:
        inputs["vae"] = ("FLUX VAE", 0)
        inputs.update({name: (node, 0) for name, node in given.items()})
    return {"LumiX Sampler": ("LumiXSampler", inputs),
            "Decode": ("VAEDecode", {"samples": ("LumiX Sampler", 0), "vae": ("FLUX VAE", 0)}),
            "Split maps": ("SplitIntrinsics", {"images": ("Decode", 0)})}


def save_maps(prefix: str, sixteen_bit: tuple[str, ...] = ("depth", "normal"), source: str = "Split maps",
              maps: tuple[str, ...] = MAPS) -> dict:
    nodes = {}
    for slot, name in enumerate(maps):
        nodes[f"Save {name}"] = ("SaveImage", {"images": (source, slot), "filename_prefix": f"{prefix}/{name}"})
        if name in sixteen_bit:
            nodes[f"Save {name} 16-bit"] = ("LumiXSaveImage16", {"images": (source, slot),
                                                                 "filename_prefix": f"{prefix}/{name}_16bit"})
    return nodes


def text_to_maps() -> dict:
    prompt = "a cozy reading corner with a leather armchair, a wooden side table and a brass lamp, warm evening light"
    return {**flux_and_lumix(prompt), **sampler(512, 512, 42), **save_maps("LumiX/text_to_maps"),
            "Scores": ("LumiXCoherenceScores", {"albedo": ("Split maps", 0), "irradiance": ("Split maps", 1),
                                                "color": ("Split maps", 2), "depth": ("Split maps", 3),
                                                "normal": ("Split maps", 4)})}


def image_to_maps() -> dict:
    """A photo of any size -> its maps at its own size (LumiXDecomposePhoto: no crop, no
    negative prompt since decomposition runs without CFG)."""
    caption = "a photo of a living room with a grey sofa, a coffee table and plants by a bright window"
    nodes = flux_and_lumix(caption)
    del nodes["Negative prompt"]
    nodes["Input image"] = ("LoadImage", {"image": "example.png"})
    nodes["Decompose photo"] = ("LumiXDecomposePhoto", {
        "model": ("LumiX", 0), "positive": ("Prompt", 0), "vae": ("FLUX VAE", 0), "image": ("Input image", 0),
        "seed": 7, "steps": 50, "seeds": 1, "upsample": "guided", "sampler_name": "euler", "scheduler": "published"})
    nodes.update(save_maps("LumiX/image_to_maps", source="Decompose photo",
                           maps=("albedo", "irradiance", "depth", "normal")))
    return nodes


def maps_to_depth_control() -> dict:
    """LumiX depth -> FLUX.1-Depth-dev LoRA on the same, unpatched FLUX model."""
    nodes = text_to_maps()
    del nodes["Scores"]
    nodes.update({
        "Depth LoRA": ("LoraLoaderModelOnly", {"model": ("FLUX.1-dev", 0),
                                               "lora_name": "flux1-depth-dev-lora.safetensors", "strength_model": 1.0}),
        "New prompt": ("CLIPTextEncode", {"text": "the same room as a snowy alpine cabin interior, pine wood, "
                                                  "morning light", "clip": ("Text encoders", 0)}),
        "Depth guidance": ("FluxGuidance", {"conditioning": ("New prompt", 0), "guidance": 10.0}),
        "Depth conditioning": ("InstructPixToPixConditioning", {"positive": ("Depth guidance", 0),
                                                                "negative": ("Negative prompt", 0),
                                                                "vae": ("FLUX VAE", 0), "pixels": ("Split maps", 3)}),
        "Depth-controlled sampler": ("KSampler", {"model": ("Depth LoRA", 0), "seed": 42, "steps": 20, "cfg": 1.0,
                                                  "sampler_name": "euler", "scheduler": "normal",
                                                  "positive": ("Depth conditioning", 0),
                                                  "negative": ("Depth conditioning", 1),
                                                  "latent_image": ("Depth conditioning", 2), "denoise": 1.0}),
        "Decode controlled": ("VAEDecode", {"samples": ("Depth-controlled sampler", 0), "vae": ("FLUX VAE", 0)}),
        "Save controlled": ("SaveImage", {"images": ("Decode controlled", 0),
                                          "filename_prefix": "LumiX/depth_control/result"}),
    })
    return nodes


def relight() -> dict:
    nodes = text_to_maps()
    del nodes["Scores"]
    # Relight last in its column: its live editor makes the node tall, and nothing is below it.
    nodes.update({
        "Recompose original": ("Recompose", {"albedo": ("Split maps", 0), "irradiance": ("Split maps", 1),
                                             "exposure": 0.0}),
        "Relight": ("LumiXRelight", {"albedo": ("Split maps", 0), "normal": ("Split maps", 4), "light_x": -0.6,
                                     "light_y": 0.5, "light_z": 0.6, "light_color": "#ffd8a8", "intensity": 0.9,
                                     "ambient": 0.1, "exposure": 0.0}),
        "Save relit": ("SaveImage", {"images": ("Relight", 0), "filename_prefix": "LumiX/relight/relit"}),
        "Save recomposed": ("SaveImage", {"images": ("Recompose original", 0),
                                          "filename_prefix": "LumiX/relight/recomposed"}),
    })
    return nodes


def maps_to_exr_and_mesh() -> dict:
    """The maps as float EXR, a relightable GLB and an environment relight. No Preview 3D node:
    its schema differs between ComfyUI 0.3.64 and 0.29, and one file must load in both; connect
    the Save Mesh node's model_file to a Preview 3D to look at the mesh."""
    prompt = "a ceramic vase with dried flowers on a wooden table in front of a white wall, soft daylight"
    nodes = {**flux_and_lumix(prompt), **sampler(1024, 768, 11), **save_maps("LumiX/exr_glb", sixteen_bit=())}
    for slot, name in enumerate(MAPS):
        nodes[f"EXR {name}"] = ("LumiXSaveEXR", {"images": ("Split maps", slot), "map": name, "precision": "float32",
                                                  "depth_range": 10.0, "filename_prefix": f"LumiX/exr/{name}"})
    nodes.update({
        "Mesh": ("LumiXSaveMesh", {"depth": ("Split maps", 3), "albedo": ("Split maps", 0),
                                   "normal": ("Split maps", 4), "fov": 50.0, "depth_range": 10.0, "max_side": 512,
                                   "edge_threshold": 0.05, "size_budget_mb": 30.0, "filename_prefix": "3d/LumiX"}),
        "Relight (environment)": ("LumiXRelightEnvironment", {"albedo": ("Split maps", 0),
                                                              "normal": ("Split maps", 4), "environment_file": "none",
                                                              "rotation": 0.0, "intensity": 1.0, "exposure": 0.0}),
        "Save relit": ("SaveImage", {"images": ("Relight (environment)", 0),
                                     "filename_prefix": "LumiX/exr_glb/relit_environment"}),
    })
    return nodes


SPECS = {
    "lumix_text_to_maps": text_to_maps,
    "lumix_image_to_maps": image_to_maps,
    "lumix_maps_to_depth_control": maps_to_depth_control,
    "lumix_relight": relight,
    "lumix_maps_to_exr_glb": maps_to_exr_and_mesh,
}

# Notes for the person who opens a workflow: (the node it sits left of, its text). A Note is a
# frontend-only node: it is in the UI file and never in the API prompt.
NOTES = {
    "lumix_relight": ("Relight", "Live relight editor: queue once. The LumiX Relight node then shows the relit "
                                 "image and a ball: drag the light on the ball (colour, intensity, ambient and "
                                 "exposure below it); the preview follows without queueing, and the drag writes "
                                 "the node's widgets. Queue again to get exactly that image, full size."),
}


def to_api(spec: dict) -> dict:
    """Readable names -> numbered API graph ({"1": {"class_type", "inputs", "_meta"}})."""
    ids = {name: str(i) for i, name in enumerate(spec, start=1)}
    api = {}
    for name, (class_type, inputs) in spec.items():
        api[ids[name]] = {"class_type": class_type,
                          "inputs": {k: [ids[v[0]], v[1]] if isinstance(v, tuple) else v for k, v in inputs.items()},
                          "_meta": {"title": name}}
    return api


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def input_specs(object_info: dict, class_type: str) -> list[tuple[str, list, dict]]:
    """(name, spec, options) of every input of a node, in the schema's order (required, then
    optional), from GET /object_info."""
    info = object_info[class_type]
    specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
    return [(name, specs[name], specs[name][1] if len(specs[name]) > 1 else {}) for name in names]


def with_widget_defaults(api: dict, object_info: dict) -> dict:
    """Widget inputs a spec leaves out get their schema default in the API graph too: the UI
    file carries that default, so the frontend's prompt has it, and a required input must be
    present for POST /prompt (e.g. LumiXCoherenceScores.depth_near_is_white)."""
    for node in api.values():
        for name, spec, options in input_specs(object_info, node["class_type"]):
            if name not in node["inputs"] and _is_widget(spec) and "default" in options:
                node["inputs"][name] = options["default"]
    return api


def _depths(api: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(node_id: str) -> int:
        if node_id not in depth:
            parents = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((visit(p) for p in parents), default=-1)
        return depth[node_id]
    for node_id in api:
        visit(node_id)
    return depth


def to_ui(api: dict, object_info: dict, models: dict) -> dict:
    """The frontend's workflow format (version 0.4) for an API graph."""
    links: list[list] = []  # [id, from node, from slot, to node, to slot, type]
    nodes = []
    depth = _depths(api)
    rows: dict[int, int] = {}
    # A node lists its output slots only up to the last one this workflow links. Both
    # frontends (1.27 and 1.47) add the outputs of the live schema that a file leaves out,
    # while an output the file lists but the server lacks stays as a dead slot in 1.27, and
    # unlinked outputs differ between ComfyUI versions (SaveImage gained `images` in 0.25):
    # so one file serves both, and the builder gives the same file from either's schemas.
    linked_slots: dict[str, int] = {}
    for node in api.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                linked_slots[value[0]] = max(linked_slots.get(value[0], -1), value[1])
    for order, (node_id, node) in enumerate(api.items()):
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec, options in input_specs(object_info, node["class_type"]):
            value = node["inputs"].get(name)
            if _is_widget(spec):
                if isinstance(value, list):
                    # A widget fed by a link (Preview3D's model_file from a node): the frontend
                    # keeps the widget (with its default) and marks the input as the widget's.
                    link = len(links) + 1
                    links.append([link, int(value[0]), value[1], int(node_id), len(inputs), spec[0]])
                    inputs.append({"name": name, "type": spec[0], "widget": {"name": name}, "link": link})
                    value = None
                widgets.append(options.get("default") if value is None else value)
                if options.get("control_after_generate"):
                    widgets.append("fixed")
                if options.get("image_upload"):
                    widgets.append("image")
                continue
            link = None
            if isinstance(value, list):
                link = len(links) + 1
                links.append([link, int(value[0]), value[1], int(node_id), len(inputs), spec[0]])
            inputs.append({"name": name, "type": spec[0], "link": link})
        widgets += list(FRONTEND_WIDGETS.get(node["class_type"], {}).values())
        column = depth[node_id]
        rows[column] = rows.get(column, 0) + 1
        properties = {"Node name for S&R": node["class_type"]}
        needed = [models[v] for v in node["inputs"].values() if isinstance(v, str) and v in models]
        if needed:
            properties["models"] = needed
        nodes.append({"id": int(node_id), "type": node["class_type"], "title": node["_meta"]["title"],
                      "pos": [60 + 360 * column, 60 + 230 * (rows[column] - 1)],
                      "size": [320, 130 + 24 * len(widgets)], "flags": {}, "order": order, "mode": 0,
                      "inputs": inputs, "properties": properties, "widgets_values": widgets,
                      "outputs": [{"name": out_name, "type": out_type, "links": [], "slot_index": slot}
                                  for slot, (out_type, out_name)
                                  in enumerate(zip(info["output"], info["output_name"]))
                                  if slot <= linked_slots.get(node_id, -1)]})
    by_id = {n["id"]: n for n in nodes}
    for link_id, source, slot, *_ in links:
        by_id[source]["outputs"][slot]["links"].append(link_id)
    used_models = {m["name"]: m for n in nodes for m in n["properties"].get("models", [])}
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": 0.6, "offset": [0, 0]}},
            "models": [used_models[k] for k in sorted(used_models)], "version": 0.4}


def with_note(ui: dict, beside_title: str, text: str) -> dict:
    """A Note node (as the frontend saves one) left of the node titled `beside_title`."""
    beside = next(node for node in ui["nodes"] if node["title"] == beside_title)
    note_id = ui["last_node_id"] + 1
    ui["nodes"].append({"id": note_id, "type": "Note", "title": "How to use this workflow",
                        "pos": [beside["pos"][0] - 360, beside["pos"][1]], "size": [320, 170],
                        "flags": {}, "order": len(ui["nodes"]), "mode": 0, "inputs": [], "outputs": [],
                        "properties": {"text": ""}, "widgets_values": [text], "color": "#432", "bgcolor": "#653"})
    ui["last_node_id"] = note_id
    return ui


def model_entries() -> dict:
    return {name: {"name": name, "url": url, "directory": directory} for name, (directory, url) in MODELS.items()}


def build(object_info: dict) -> dict[str, tuple[dict, dict]]:
    """{name: (api, ui)} for every shipped workflow."""
    out = {}
    for name, make in SPECS.items():
        api = with_widget_defaults(to_api(make()), object_info)
        for node in api.values():
            node["inputs"].update(FRONTEND_WIDGETS.get(node["class_type"], {}))
        ui = to_ui(api, object_info, model_entries())
        if name in NOTES:
            ui = with_note(ui, *NOTES[name])
        out[name] = (api, ui)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--object-info", required=True, type=Path, help="JSON saved from a server's GET /object_info")
    args = parser.parse_args()
    built = build(json.loads(args.object_info.read_text()))
    (WORKFLOWS / "api").mkdir(parents=True, exist_ok=True)
    for name, (api, ui) in built.items():
        (WORKFLOWS / "api" / f"{name}.json").write_text(json.dumps(api, indent=2) + "\n")
        (WORKFLOWS / f"{name}.json").write_text(json.dumps(ui, indent=2) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json")


if __name__ == "__main__":
    main()
