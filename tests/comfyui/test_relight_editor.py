"""The live relight editor on LumiX Relight (web/js/lumix_relight_editor.js), in the REAL
frontend of the ComfyUI tree under test, in a headless Chromium with software WebGL2
(SwiftShader):

- before any run the editor says to run the graph once;
- the page queues a graph of LoadImage -> LumiX Relight -> Preview Image (twice: a 4:3 map
  larger than the preview, and a portrait one); the editors fetch the preview maps;
- the light is dragged on the sphere with real mouse events: the node's widgets change, and
  the canvas, read back, matches the Python relight (lumix_engine.intrinsics.relight) of the
  SAME preview maps (the PNGs the page decoded) for the widgets' values within 2/255;
- the API prompt built from the graph carries the dragged values; queued from the page, the
  node's full-size output equals the Python relight of the full-size maps; and the node run
  on the preview maps gives the canvas within 2/255;
- the editor survives loadGraphData of the saved workflow, draws a second node of another
  aspect, and the 2D-canvas fallback matches as well;
- the shader and the 2D fallback reproduce lumix_engine/intrinsics/relight_spec.json;
- the frame time at 1 MP is measured and printed (not asserted; LUMIX_RELIGHT_TIMING=<file>
  writes it as JSON).

A test on the tiny random LumiX model checks that the node's UI output names the maps of a
generated scene. Needs `playwright` and a system Chromium; skips otherwise.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import sys
import time

import numpy as np
import pytest
import torch
from comfyui_graphs import lumix_graph
from comfyui_harness import PACK_DIR_NAME

from lumix_engine.image_io import decode_png16, load_image, to_pil
from lumix_engine.intrinsics import Light, relight, render_scene
from lumix_engine.intrinsics.checks import parse_rgb
from lumix_engine.intrinsics.environment import procedural_sky

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ui_frontend  # noqa: E402

UNAVAILABLE = ui_frontend.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"relight editor test: {UNAVAILABLE}")
SOFTWARE_WEBGL = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
SPEC = json.loads((HERE.parents[1] / "lumix_engine" / "intrinsics" / "relight_spec.json").read_text())
MATCH = 2 / 255                      # the bound, preview canvas vs node, per pixel and channel
# wide > the 512 preview: it is downscaled; tall: another aspect; lit: the irradiance input connected.
# env: LumiX Relight Environment (its built-in sky).
SIZES = {"wide": (640, 480), "tall": (120, 200), "lit": (96, 64), "env": (160, 120)}
PREVIEW_SIZE = {"wide": (512, 384), "tall": (120, 200), "lit": (96, 64), "env": (160, 120)}
NODE_TYPES = {"env": "LumiXRelightEnvironment"}
ENVIRONMENT_VALUES = ("rotation", "intensity", "exposure")
VALUE_NAMES = ("light_x", "light_y", "light_z", "light_color", "intensity", "ambient", "exposure")
JS_BASE = f"/extensions/{PACK_DIR_NAME}/js"
GIZMO_RADIUS = 0.88                  # of the gizmo's half-size (web/js/relight/gizmo.js)

BUILD_JS = """
async (pairs) => {
  const app = window.app;
  app.graph.clear();
  const ids = {};
  let x = 20;
  for (const pair of pairs) {
    const load = (file, y) => {
      const node = LiteGraph.createNode("LoadImage");
      node.pos = [x, y];
      app.graph.add(node);
      node.widgets.find((w) => w.name === "image").value = file;
      return node;
    };
    const albedo = load(pair.albedo, 40), normal = load(pair.normal, 420);
    const relight = LiteGraph.createNode(pair.type);
    relight.pos = [x + 340, 170];    // below the 1.47 frontend's floating Run bar (top right)
    app.graph.add(relight);
    relight.setSize([440, 700]);
    albedo.connect(0, relight, relight.findInputSlot("albedo"));
    normal.connect(0, relight, relight.findInputSlot("normal"));
    if (pair.irradiance) load(pair.irradiance, 1150).connect(0, relight, relight.findInputSlot("irradiance"));
    const preview = LiteGraph.createNode("PreviewImage");
    preview.pos = [x, 800];
    app.graph.add(preview);
    relight.connect(0, preview, 0);
    ids[pair.name] = relight.id;
    x += 800;
  }
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
  return ids;
}
"""

EDITOR_STATE_JS = """
(id) => {
  const node = window.app.graph.getNodeById(id);
  const editor = node?.lumixRelightEditor;
  if (!editor) return null;
  const values = editor.values();
  const view = editor.view.getBoundingClientRect();
  return {values, message: editor.message.style.display === 'none' ? null : editor.message.textContent,
          has_maps: !!editor.maps, kind: editor.renderer?.kind ?? null,
          maps: node.properties?.lumix_relight_maps ?? null,
          size: editor.maps ? [editor.maps.albedo.width, editor.maps.albedo.height] : null,
          canvas: editor.renderer ? [editor.renderer.canvas.width, editor.renderer.canvas.height] : null,
          view: [view.width, view.height],
          gizmo: (() => { const r = editor.gizmo.canvas.getBoundingClientRect();
                          return {x: r.x, y: r.y, width: r.width, height: r.height}; })()};
}
"""

READ_CANVAS_JS = """
(id) => {
  const editor = window.app.graph.getNodeById(id).lumixRelightEditor;
  const setup = editor.render();
  if (!setup) return null;
  const pixels = editor.renderer.readPixels();
  let text = '';
  for (let i = 0; i < pixels.length; i += 8192) text += String.fromCharCode(...pixels.subarray(i, i + 8192));
  return {width: editor.renderer.width, height: editor.renderer.height, rgba: btoa(text), kind: editor.renderer.kind};
}
"""

SPEC_JS = """
async ({cases, environmentCases, environments, base}) => {
  const maths = await import(base + '/relight/maths.js');
  const {createRenderer} = await import(base + '/relight/renderer.js');
  const pixel = (v) => ({width: 1, height: 1, pixels: new Float32Array([v[0], v[1], v[2], 1])});
  const out = {};
  for (const force2d of [false, true]) {
    const renderer = createRenderer(force2d);
    out[renderer.kind] = cases.map((c) => {
      const setup = maths.lightSetup({light_x: c.light[0], light_y: c.light[1], light_z: c.light[2],
                                      light_color: c.light_color, intensity: c.intensity,
                                      ambient: c.ambient, exposure: c.exposure}, {irradiance: c.irradiance !== null});
      if (setup.error) return {error: setup.error};
      renderer.setMaps({albedo: pixel(c.albedo), normal: pixel(c.normal),
                        irradiance: c.irradiance === null ? undefined : pixel(c.irradiance)});
      renderer.render(setup);
      return {rgb: Array.from(renderer.readPixels().slice(0, 3))};
    });
    out[renderer.kind + ' environment'] = environmentCases.map((c) => {
      const setup = maths.lightSetup({rotation: c.rotation, intensity: c.intensity, exposure: c.exposure},
                                     {sh9: environments[c.environment].sh9});
      renderer.setMaps({albedo: pixel(c.albedo), normal: pixel(c.normal)});
      renderer.render(setup);
      return {rgb: Array.from(renderer.readPixels().slice(0, 3))};
    });
  }
  return out;
}
"""

FRAME_TIME_JS = """
async ({base, width, height, frames, force2d}) => {
  const {createRenderer} = await import(base + '/relight/renderer.js');
  const renderer = createRenderer(force2d);
  const random = (seed) => { const p = new Uint8Array(width * height * 4);
    let s = seed; for (let i = 0; i < p.length; i++) { s = (s * 1103515245 + 12345) >>> 0; p[i] = s >>> 24; }
    return {width, height, pixels: p}; };
  renderer.setMaps({albedo: random(1), normal: random(2)});
  const setup = (k) => ({mode: 0, gain: 1, ambient: 0.1, radiance: [0.8, 0.8, 0.8],
                         direction: [Math.sin(k / 10) * 0.6, 0.6, Math.sqrt(1 - 0.36 - 0.36 * Math.sin(k / 10) ** 2)]});
  renderer.render(setup(0)); renderer.finish();
  const start = performance.now();
  for (let k = 1; k <= frames; k++) { renderer.render(setup(k)); renderer.finish(); }
  const ms = (performance.now() - start) / frames;
  const gl = renderer.gl;
  const info = gl?.getExtension('WEBGL_debug_renderer_info');
  const glRenderer = gl ? gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) : null;
  gl?.getExtension('WEBGL_lose_context')?.loseContext();
  return {kind: renderer.kind, ms, width, height, megapixels: width * height / 1e6, gl_renderer: glRenderer};
}
"""

# The node's rectangle on the page (title bar included), for a screenshot of it alone.
NODE_CLIP_JS = """
(id) => {
  const app = window.app;
  const node = app.graph.getNodeById(id);
  const rect = app.canvas.canvas.getBoundingClientRect();
  const [ox, oy] = app.canvas.ds.offset, scale = app.canvas.ds.scale;
  const title = LiteGraph.NODE_TITLE_HEIGHT, margin = 8;
  return {x: rect.left + (node.pos[0] + ox) * scale - margin, y: rect.top + (node.pos[1] - title + oy) * scale - margin,
          width: node.size[0] * scale + 2 * margin, height: (node.size[1] + title) * scale + 2 * margin};
}
"""

# The widget values of a node in the change tracker's last recorded state of the workflow.
TRACKED_JS = """
(id) => {
  const state = window.app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.activeState;
  return state?.nodes?.find((n) => String(n.id) === String(id))?.widgets_values ?? null;
}
"""

EDITOR_COUNT_JS = """
(id) => window.app.graph.getNodeById(id).widgets.filter((w) => w.name === 'relight_editor').length
"""

RELOAD_JS = """
async () => {
  const app = window.app;
  const workflow = JSON.parse(JSON.stringify(app.graph.serialize()));
  app.graph.clear();
  await app.loadGraphData(workflow);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
  return workflow.nodes.filter((n) => n.type.startsWith('LumiXRelight')).map((n) => n.id);
}
"""


def python_relight(albedo: torch.Tensor, normal: torch.Tensor, values: dict, irradiance=None) -> torch.Tensor:
    """What LumiX Relight's execute() computes for these widget values."""
    light = Light("directional", (values["light_x"], values["light_y"], values["light_z"]),
                  parse_rgb(values["light_color"]), values["intensity"])
    color, _ = relight(albedo, normal, [light], ambient=(values["ambient"],) * 3, irradiance=irradiance,
                       exposure=values["exposure"])
    return color


def canvas_image(read: dict) -> torch.Tensor:
    import base64
    raw = np.frombuffer(base64.b64decode(read["rgba"]), dtype=np.uint8).reshape(read["height"], read["width"], 4)
    return torch.from_numpy(raw[..., :3].astype(np.float32) / 255.0)[None]


class Session:
    """One page on the server, shared by the tests of this module, in order."""

    def __init__(self, server, page, temp_dir: pathlib.Path, inputs: dict):
        self.server, self.page, self.temp_dir, self.inputs = server, page, temp_dir, inputs
        self.ids: dict[str, int] = {}
        self.console: list[str] = []
        self.results: dict = {}
        self.started = 0

    def state(self, name: str) -> dict:
        return self.page.evaluate(EDITOR_STATE_JS, self.ids[name])

    def wait_for_maps(self, name: str, timeout_s: float = 240):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.state(name)
            if state and state["has_maps"] and state["message"] is None:
                return state
            self.page.wait_for_timeout(250)
        raise AssertionError(f"the {name} editor has no maps after {timeout_s} s: {self.state(name)}\n"
                             f"console: {self.console[-20:]}\nserver: {self.server.log_tail(3000)}")

    def preview_maps(self, name: str) -> dict[str, torch.Tensor]:
        entries = self.state(name)["maps"]
        return {e["map"]: load_image(self.temp_dir / e["subfolder"] / e["filename"]) for e in entries}

    def ball(self, name: str) -> tuple[float, float, float]:
        """The gizmo ball's centre on the page and its radius, in CSS pixels."""
        gizmo = self.state(name)["gizmo"]
        return (gizmo["x"] + gizmo["width"] / 2, gizmo["y"] + gizmo["height"] / 2,
                GIZMO_RADIUS * gizmo["width"] / 2)

    def read_canvas(self, name: str) -> dict:
        read = self.page.evaluate(READ_CANVAS_JS, self.ids[name])
        assert read is not None, self.state(name)
        return read

    def screenshot_node(self, name: str, filename: str):
        """With LUMIX_UI_SCREENSHOTS=<dir>: the node (title included) as a PNG there (help page figures)."""
        folder = os.environ.get("LUMIX_UI_SCREENSHOTS")
        if not folder:
            return
        clip = self.page.evaluate(NODE_CLIP_JS, self.ids[name])
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(pathlib.Path(folder) / filename), clip=clip)

    def escape(self):
        for _ in range(3):   # the template browser opens on a fresh profile
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)


@pytest.fixture(scope="module")
def relight_inputs(comfyui_server) -> dict:
    names = {}
    for seed, (key, (width, height)) in zip((7, 3, 5, 11), SIZES.items()):
        maps = render_scene(seed, width, height).images()
        for name in ("albedo", "normal", "irradiance"):
            names[f"{key}_{name}"] = f"lumix_relight_{key}_{name}.png"
            to_pil(maps[name][0]).save(comfyui_server.input_dir / names[f"{key}_{name}"])
    return names


@pytest.fixture(scope="module")
def session(comfyui_server, relight_inputs, tmp_path_factory):
    from playwright.sync_api import sync_playwright
    args = [a for a in ui_frontend.CHROMIUM_ARGS if a != "--disable-gpu"] + SOFTWARE_WEBGL
    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=ui_frontend.chromium_path(), headless=True, args=args,
            timeout=ui_frontend.LAUNCH_TIMEOUT_MS, viewport={"width": 3400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(ui_frontend.CALL_TIMEOUT_MS)
            s = Session(comfyui_server, page, comfyui_server.base_dir / "temp", relight_inputs)
            page.on("console", lambda m: s.console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: s.console.append(f"error: pageerror {e}"))
            page.goto(comfyui_server.url, timeout=ui_frontend.PAGE_TIMEOUT_MS, wait_until="load")
            page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                                   "Object.keys(LiteGraph.registered_node_types).length > 0",
                                   timeout=ui_frontend.PAGE_TIMEOUT_MS)
            s.escape()
            # The minimap (1.27 and later) would cover nodes near the window's corner in screenshots.
            page.evaluate("async () => { try { await window.app.extensionManager.setting.set("
                          "'Comfy.Minimap.Visible', false); } catch (e) {} }")
            s.started = len(s.console)    # errors of the frontend's own start-up are not the editor's
            yield s
        finally:
            context.close()


def test_before_a_run_the_editor_says_to_run_the_graph(session):
    pairs = [{"name": key, "albedo": session.inputs[f"{key}_albedo"], "normal": session.inputs[f"{key}_normal"],
              "irradiance": session.inputs[f"{key}_irradiance"] if key == "lit" else None,
              "type": NODE_TYPES.get(key, "LumiXRelight")} for key in SIZES]
    session.ids = session.page.evaluate(BUILD_JS, pairs)
    for key in SIZES:
        state = session.state(key)
        assert state is not None, f"LumiX Relight has no editor (extension not loaded?): {session.console[-30:]}"
        assert not state["has_maps"] and "Run the graph once" in state["message"], state
    assert session.state("env")["values"] == {"rotation": 0.0, "intensity": 1.0, "exposure": 0.0}
    for key in ("wide", "tall", "lit"):
        assert session.state(key)["values"] == {"light_x": -0.5, "light_y": 0.7, "light_z": 0.5,
                                                "light_color": "#ffffff", "intensity": 0.8, "ambient": 0.15,
                                                "exposure": 0.0}


def test_a_run_shows_the_maps_at_preview_size(session):
    session.page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    for key in SIZES:
        state = session.wait_for_maps(key)
        assert state["kind"] == "WebGL2", state
        assert state["size"] == list(PREVIEW_SIZE[key]) == state["canvas"], state
        maps = {e["map"]: e for e in state["maps"]}
        assert set(maps) == ({"albedo", "normal", "irradiance"} if key == "lit" else {"albedo", "normal"})
        assert len(session.page.evaluate("(id) => window.app.graph.getNodeById(id).properties.lumix_relight_sh9 "
                                         "?? []", session.ids[key])) == (27 if key == "env" else 0)
        assert (maps["albedo"]["full_width"], maps["albedo"]["full_height"]) == SIZES[key]
        assert state["view"][1] > 100, "the preview area is too small to see"


def test_dragging_the_light_writes_the_widgets_and_the_canvas_matches_the_node(session):
    page = session.page
    session.escape()
    cx, cy, radius = session.ball("wide")
    target = (0.55, -0.35)                     # x right, y up, on the unit disc
    page.mouse.move(cx - 0.3 * radius, cy - 0.4 * radius)
    page.mouse.down()
    steps = 12
    for k in range(1, steps + 1):              # a real drag: the preview redraws on the way
        t = k / steps
        x = -0.3 + t * (target[0] + 0.3)
        y = 0.4 + t * (target[1] - 0.4)
        page.mouse.move(cx + x * radius, cy - y * radius)
        page.wait_for_timeout(30)
        # Every step with LUMIX_UI_SCREENSHOTS: the help page's stepped figure and animation
        # (tools/compose_screenshots.py); steps 1, 6 and 12 otherwise wait as a user would.
        if k in (1, steps // 2, steps) or os.environ.get("LUMIX_UI_SCREENSHOTS"):
            page.wait_for_timeout(100)
            session.screenshot_node("wide", f"relight_editor_drag_{k:02}.png")
    page.mouse.up()
    page.wait_for_timeout(300)
    values = session.state("wide")["values"]
    expected_z = math.sqrt(1 - target[0] ** 2 - target[1] ** 2)
    assert abs(values["light_x"] - target[0]) <= 0.02 and abs(values["light_y"] - target[1]) <= 0.02, values
    assert abs(values["light_z"] - expected_z) <= 0.02, values
    # Colour, intensity, ambient and exposure through the editor's own controls.
    for name, value in (("intensity", "1.35"), ("ambient", "0.07"), ("exposure", "0.3")):
        page.evaluate("""([id, name, value]) => {
            const input = window.app.graph.getNodeById(id).lumixRelightEditor.inputs[name].input;
            input.value = value; input.dispatchEvent(new Event('input')); }""", [session.ids["wide"], name, value])
    page.evaluate("""(id) => { const input = window.app.graph.getNodeById(id).lumixRelightEditor.element
        .querySelector('input[type=color]'); input.value = '#ffc890'; input.dispatchEvent(new Event('input')); }""",
                  session.ids["wide"])
    values = session.state("wide")["values"]
    assert (values["intensity"], values["ambient"], values["exposure"], values["light_color"]) == \
        (1.35, 0.07, 0.3, "#ffc890"), values
    # The frontend's change tracker (undo, the unsaved-changes mark) has recorded the drag.
    page.mouse.move(5, 500)
    page.mouse.down()
    page.mouse.up()
    tracked = page.evaluate(TRACKED_JS, session.ids["wide"])
    assert tracked is not None and tracked[:3] == [values["light_x"], values["light_y"], values["light_z"]], tracked
    session.results["values"] = values
    read = session.read_canvas("wide")
    maps = session.preview_maps("wide")
    expected = python_relight(maps["albedo"], maps["normal"], values)
    canvas = canvas_image(read)
    assert canvas.shape == expected.shape == (1, 384, 512, 3)
    error = (canvas - expected).abs().max().item()
    print(f"\n[relight editor] WebGL2 canvas vs Python relight of the preview maps: max |diff| = "
          f"{error * 255:.3f}/255")
    assert error <= MATCH
    # The comparison can fail: the default light gives another image.
    default = python_relight(maps["albedo"], maps["normal"], {**values, "light_x": -0.5, "light_y": 0.7, "light_z": 0.5})
    assert (canvas - default).abs().max().item() > 10 * MATCH
    session.results["canvas"] = canvas


def test_the_prompt_carries_the_dragged_values_and_the_queued_node_gives_that_image(session, comfyui):
    values = session.results["values"]
    prompt = session.page.evaluate("async () => (await window.app.graphToPrompt()).output")
    inputs = prompt[str(session.ids["wide"])]["inputs"]
    assert {name: inputs[name] for name in VALUE_NAMES} == values
    assert "relight_editor" not in inputs
    before = set(comfyui.get_json("/history?max_items=100"))
    session.page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.monotonic() + 240
    entry = None
    while time.monotonic() < deadline and entry is None:
        fresh = [k for k in comfyui.get_json("/history?max_items=100") if k not in before]
        entry = comfyui.wait(fresh[0]) if fresh else None
        session.page.wait_for_timeout(250)
    assert entry is not None and entry["status"]["status_str"] == "success", entry
    queued = entry["prompt"][2][str(session.ids["wide"])]["inputs"]
    assert {name: queued[name] for name in VALUE_NAMES} == values
    # The node's full-size output is the Python relight of the full-size maps (Preview Image
    # truncates to 8 bits: within 1/255).
    preview_id = next(k for k, v in entry["prompt"][2].items()
                      if v["class_type"] == "PreviewImage" and v["inputs"]["images"][0] == str(session.ids["wide"]))
    [output] = comfyui.output_files(entry, preview_id)
    full = python_relight(load_image(session.server.input_dir / session.inputs["wide_albedo"]),
                          load_image(session.server.input_dir / session.inputs["wide_normal"]), values)
    assert (load_image(output) - full).abs().max().item() <= 1 / 255 + 1e-6


def test_the_node_run_on_the_preview_maps_gives_the_canvas(session, comfyui):
    """The node itself (not the Python function) at preview resolution, against the canvas."""
    entries = {e["map"]: e for e in session.state("wide")["maps"]}
    graph = {}
    for name in ("albedo", "normal"):
        copy = f"lumix_relight_preview_{name}.png"
        shutil.copy(session.temp_dir / entries[name]["subfolder"] / entries[name]["filename"],
                    session.server.input_dir / copy)
        graph[f"load_{name}"] = {"class_type": "LoadImage", "inputs": {"image": copy}}
    graph["relight"] = {"class_type": "LumiXRelight",
                        "inputs": {"albedo": ["load_albedo", 0], "normal": ["load_normal", 0],
                                   **session.results["values"]}}
    # A 16-bit save: ComfyUI's 8-bit savers truncate, which would add up to 1/255 of their own.
    graph["save"] = {"class_type": "LumiXSaveImage16", "inputs": {"images": ["relight", 0],
                                                                  "filename_prefix": "relight_editor/preview"}}
    entry = comfyui.run(graph)
    [output] = comfyui.output_files(entry, "save")
    node_output = torch.from_numpy(decode_png16(output.read_bytes())[..., :3].astype(np.float32) / 65535)[None]
    error = (node_output - session.results["canvas"]).abs().max().item()
    print(f"\n[relight editor] node output at preview size vs canvas: max |diff| = {error * 255:.3f}/255")
    assert error <= MATCH


def test_a_second_node_of_another_aspect_has_its_own_editor(session):
    state = session.state("tall")
    assert state["size"] == [120, 200]
    values = state["values"]
    assert values["light_x"] == -0.5, "dragging one node's light moved the other's"
    maps = session.preview_maps("tall")
    read = session.read_canvas("tall")
    assert (canvas_image(read) - python_relight(maps["albedo"], maps["normal"], values)).abs().max().item() <= MATCH


def python_relight_environment(albedo: torch.Tensor, normal: torch.Tensor, values: dict) -> torch.Tensor:
    """What LumiX Relight Environment computes with no file and no image (its built-in sky)."""
    color, _ = relight(albedo, normal, (), ambient=(0.0, 0.0, 0.0), exposure=values["exposure"],
                       environment=procedural_sky(64), rotation=values["rotation"],
                       environment_intensity=values["intensity"])
    return color


def test_turning_the_environment_by_hand_matches_the_environment_node(session):
    page = session.page
    session.escape()
    cx, cy, radius = session.ball("env")
    page.mouse.move(cx - 0.5 * radius, cy)
    page.mouse.down()
    for k in range(1, 9):                      # two radii to the right in 8 steps: 180 degrees
        page.mouse.move(cx - 0.5 * radius + k * 0.25 * radius, cy + 0.1 * k)
        page.wait_for_timeout(30)
    page.mouse.up()
    values = session.state("env")["values"]
    assert abs(abs(values["rotation"]) - 180.0) <= 1.0, values
    page.evaluate("""(id) => { const editor = window.app.graph.getNodeById(id).lumixRelightEditor;
        editor.setValues({rotation: 75, intensity: 1.6, exposure: -0.4}); }""", session.ids["env"])
    values = session.state("env")["values"]
    assert values == {"rotation": 75.0, "intensity": 1.6, "exposure": -0.4}
    maps = session.preview_maps("env")
    canvas = canvas_image(session.read_canvas("env"))
    error = (canvas - python_relight_environment(maps["albedo"], maps["normal"], values)).abs().max().item()
    print(f"\n[relight editor] environment: WebGL2 canvas vs Python relight: max |diff| = {error * 255:.3f}/255")
    assert error <= MATCH
    unturned = python_relight_environment(maps["albedo"], maps["normal"], {**values, "rotation": 0.0})
    assert (canvas - unturned).abs().max().item() > 10 * MATCH
    prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    inputs = prompt[str(session.ids["env"])]["inputs"]
    assert {name: inputs[name] for name in ENVIRONMENT_VALUES} == values
    session.screenshot_node("env", "relight_environment_editor.png")


def test_with_the_irradiance_input_the_light_is_not_used(session):
    state = session.state("lit")
    assert "irradiance input connected" in session.page.evaluate(
        "(id) => window.app.graph.getNodeById(id).lumixRelightEditor.status.textContent", session.ids["lit"])
    maps = session.preview_maps("lit")
    values = state["values"]
    expected = python_relight(maps["albedo"], maps["normal"], values, irradiance=maps["irradiance"])
    assert (canvas_image(session.read_canvas("lit")) - expected).abs().max().item() <= MATCH


def test_values_the_node_refuses_show_a_message_instead_of_an_image(session):
    set_values = """([id, changes]) => { const editor = window.app.graph.getNodeById(id).lumixRelightEditor;
        editor.setValues(changes); return editor.render(); }"""
    for changes, words in (({"light_x": 0, "light_y": 0, "light_z": 0}, "light direction is (0, 0, 0)"),
                           ({"light_color": "warm white"}, "is not understood")):
        before = session.state("tall")["values"]
        assert session.page.evaluate(set_values, [session.ids["tall"], changes]) is None
        assert words in session.state("tall")["message"]
        session.page.evaluate(set_values, [session.ids["tall"], {k: before[k] for k in changes}])
        assert session.state("tall")["message"] is None


def test_the_editor_survives_loading_the_saved_workflow(session):
    ids = session.page.evaluate(RELOAD_JS)
    assert sorted(map(str, ids)) == sorted(map(str, session.ids.values()))
    for key in SIZES:
        assert session.page.evaluate(EDITOR_COUNT_JS, session.ids[key]) == 1, "one editor per node after a reload"
    state = session.wait_for_maps("wide")
    assert state["values"] == session.results["values"]
    read = session.read_canvas("wide")
    assert torch.equal(canvas_image(read), session.results["canvas"])
    session.wait_for_maps("tall")
    env = session.wait_for_maps("env")
    assert env["values"] == {"rotation": 75.0, "intensity": 1.6, "exposure": -0.4}


def test_maps_gone_from_the_temp_folder_are_reported(session):
    """A workflow saved in an earlier ComfyUI session names preview files the restart deleted."""
    message = session.page.evaluate("""async (id) => {
        const editor = window.app.graph.getNodeById(id).lumixRelightEditor;
        const gone = editor.entries.map((e) => ({...e, filename: 'gone_' + e.filename}));
        const shown = await editor.load(gone);
        const text = editor.message.textContent;
        await editor.load(window.app.graph.getNodeById(id).properties.lumix_relight_maps);
        return {shown, text};
    }""", session.ids["tall"])
    assert message["shown"] is False and "could not be loaded" in message["text"] and "Run the graph" in \
        message["text"], message
    assert session.state("tall")["message"] is None


def test_the_2d_canvas_fallback_matches_too(session):
    """Forced by window.LUMIX_RELIGHT_FORCE_2D, and taken when the browser takes the WebGL context away."""
    use = """([id, flag]) => { window.LUMIX_RELIGHT_FORCE_2D = flag;
        window.app.graph.getNodeById(id).lumixRelightEditor.useRenderer(); delete window.LUMIX_RELIGHT_FORCE_2D; }"""
    session.page.evaluate(use, [session.ids["wide"], True])
    read = session.read_canvas("wide")
    assert read["kind"] == "2D canvas"
    maps = session.preview_maps("wide")
    expected = python_relight(maps["albedo"], maps["normal"], session.results["values"])
    error = (canvas_image(read) - expected).abs().max().item()
    print(f"\n[relight editor] 2D canvas vs Python relight of the preview maps: max |diff| = {error * 255:.3f}/255")
    assert error <= MATCH
    session.page.evaluate(use, [session.ids["wide"], False])
    assert session.state("wide")["kind"] == "WebGL2"
    session.page.evaluate("""(id) => window.app.graph.getNodeById(id).lumixRelightEditor.renderer.gl
        .getExtension('WEBGL_lose_context').loseContext()""", session.ids["wide"])
    session.page.wait_for_function("(id) => window.app.graph.getNodeById(id).lumixRelightEditor.renderer.kind "
                                   "=== '2D canvas'", arg=session.ids["wide"])
    assert torch.equal(canvas_image(session.read_canvas("wide")), canvas_image(read))
    session.page.evaluate(use, [session.ids["wide"], False])


def test_the_shader_and_the_fallback_reproduce_the_spec_table(session):
    results = session.page.evaluate(SPEC_JS, {"cases": SPEC["cases"], "environmentCases": SPEC["environment_cases"],
                                              "environments": SPEC["environments"], "base": JS_BASE})
    assert set(results) == {"WebGL2", "2D canvas", "WebGL2 environment", "2D canvas environment"}
    for kind, rows in results.items():
        worst = 0
        cases = SPEC["environment_cases"] if kind.endswith("environment") else SPEC["cases"]
        assert len(rows) == len(cases)
        for case, row in zip(cases, rows):
            if "error" in case:
                assert row == {"error": case["error"]}, (kind, case["name"], row)
                continue
            expected = [round(255 * c) for c in case["color"]]
            worst = max(worst, *(abs(a - b) for a, b in zip(row["rgb"], expected)))
            assert all(abs(a - b) <= SPEC["browser_tolerance_8bit"] for a, b in zip(row["rgb"], expected)), \
                (kind, case["name"], row["rgb"], expected)
        print(f"\n[relight editor] {kind} vs relight_spec.json: worst {worst}/255 over {len(rows)} cases")


def test_frame_time_at_one_megapixel_is_reported(session):
    cases = (((512, 384), False, 20), ((512, 384), True, 5),      # the default preview
             ((1024, 1024), False, 20), ((1024, 1024), True, 3), ((2048, 2048), False, 5))
    timings = [session.page.evaluate(FRAME_TIME_JS, {"base": JS_BASE, "width": width, "height": height,
                                                     "frames": frames, "force2d": force})
               for (width, height), force, frames in cases]
    for timing in timings:
        assert timing["ms"] > 0
        print(f"\n[relight editor] {timing['kind']} frame at {timing['width']}x{timing['height']} "
              f"({timing['megapixels']:.2f} MP): {timing['ms']:.1f} ms ({timing['gl_renderer']})")
    target = os.environ.get("LUMIX_RELIGHT_TIMING")
    if target:
        pathlib.Path(target).write_text(json.dumps(timings, indent=1))


def test_the_editor_works_with_the_modern_node_design(session):
    """Frontends with 'Modern Node Design (Nodes 2.0)' render nodes in Vue; where it exists, the editor
    must show and draw there too."""
    if not ui_frontend.vue_nodes_offered(session.page):
        # Frontend 1.27 has it only as a hidden experiment (no extension's DOM widget renders there),
        # off unless switched by hand: the classic canvas above is what its users get.
        assert session.page.evaluate(f"() => window.app.extensionManager.setting.get('{ui_frontend.VUE_NODES}')") \
            is False
        return
    with ui_frontend.vue_nodes(session.page):
        session.page.evaluate(RELOAD_JS)
        state = session.wait_for_maps("wide")
        assert state["view"][1] > 100, state
        maps = session.preview_maps("wide")
        expected = python_relight(maps["albedo"], maps["normal"], state["values"])
        assert (canvas_image(session.read_canvas("wide")) - expected).abs().max().item() <= MATCH
        session.screenshot_node("wide", "relight_editor_vue_nodes.png")


def test_no_console_errors(session):
    errors = [line for line in session.console[session.started:] if line.startswith("error")
              and "Failed to load resource" not in line and "GPU stall due to ReadPixels" not in line
              and not ui_frontend.offline_error(line.removeprefix("error: "))]
    assert errors == [], errors


def test_the_tiny_model_graph_sends_the_maps_of_its_scene(comfyui, tiny_models, comfyui_server):
    graph = lumix_graph(tiny_models, width=64, height=48, prefix="relight_editor_tiny")
    graph["relight"] = {"class_type": "LumiXRelight",
                        "inputs": {"albedo": ["split", 0], "normal": ["split", 4], "light_x": 0.3, "light_y": 0.5,
                                   "light_z": 0.8, "light_color": "#ffffff", "intensity": 1.0, "ambient": 0.1,
                                   "exposure": 0.0}}
    graph["save_relit"] = {"class_type": "SaveImage", "inputs": {"images": ["relight", 0],
                                                                 "filename_prefix": "relight_editor_tiny/relit"}}
    entry = comfyui.run(graph)
    maps = {e["map"]: e for e in entry["outputs"]["relight"]["lumix_maps"]}
    assert set(maps) == {"albedo", "normal"}
    albedo_file = comfyui_server.base_dir / "temp" / maps["albedo"]["subfolder"] / maps["albedo"]["filename"]
    [saved_albedo] = comfyui.output_files(entry, "save_albedo")
    # Not downscaled (64 x 48 < 512): the preview PNG is the albedo the graph made (SaveImage
    # truncates to 8 bits where the preview rounds: one level apart at most).
    assert (load_image(albedo_file) - load_image(saved_albedo)).abs().max().item() <= 1 / 255 + 1e-6
    assert (maps["albedo"]["width"], maps["albedo"]["height"]) == (64, 48)
