"""The maps viewer (web/js/lumix_maps_viewer.js) in the REAL frontend, headless Chromium.

The page holds a Split Intrinsics node, a LumiX Decompose Photo node and a second Split
Intrinsics that never runs. Tiny-model graphs whose map nodes carry those nodes' ids are queued
from the page (api.queuePrompt, so the page's client gets the `executed` messages):
Split Intrinsics with 2 scenes of 64x48, and Decompose Photo on a 640x96 photo (maps at the
photo's size, decimated by 2 in the viewer's file). Checked, on each tree's frontend:

- the viewer shows the five maps of a scene (five tiles), a scene selector with 2 scenes;
- its raw file holds the node's outputs: floor(255 x value) equals the SaveImage PNG of the same
  output exactly (SaveImage's own quantisation);
- real mouse moves over known pixels of every tile give the readout of that pixel, checked
  against the float64 reference (tests/test_viewer_maps.py readout64) within 1e-9 (the page
  computes in float64 from the same float32 values; the visible text rounds to 4 decimals);
- the A/B wipe: a real drag moves the line, and the canvas shows map A's pixels left of it and
  map B's right of it (8-bit, exact);
- the never-run node says there are no maps; maps whose file is gone say so;
- a reload of the page, then loading the saved workflow, shows the same maps and readout;
- the viewer adds nothing to the API prompt or the saved widgets_values.

LUMIX_UI_SCREENSHOTS=<dir> saves `comfyui-<version>_maps_viewer.png` (side by side with a
readout) and `..._maps_viewer_wipe.png` there (default: the session's temp dir).
"""
from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np
import pytest
from comfyui_graphs import lumix_graph
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ui_frontend  # noqa: E402
from test_shipped_workflows import ROOT, tiny_version  # noqa: E402

from tests.test_viewer_maps import readout64  # noqa: E402

UNAVAILABLE = ui_frontend.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"maps viewer UI test: {UNAVAILABLE}")
PHOTO_API = json.loads((ROOT / "workflows" / "api" / "lumix_image_to_maps.json").read_text())
PHOTO_SIZE = (640, 96)              # width, height: > 512 wide, so the viewer's file has stride 2
SPLIT_SIZE = (64, 48)
READOUT_TOLERANCE = 1e-9
VIEWPORT = {"width": 1900, "height": 1250}
GONE_FILE = "lumix_maps_gone_000.bin"
EXPECTED_ERRORS = ("Failed to load resource: the server responded with a status of 404", GONE_FILE)

SETUP_JS = """
() => {
  const app = window.app;
  app.graph.clear();
  const make = (type, pos) => {
    const node = LiteGraph.createNode(type);
    app.graph.add(node);
    node.pos = pos;
    node.setSize([740, 420]);
    return node;
  };
  // Clear of the side bars of both frontends (1.47 draws its bars over the canvas).
  const split = make("SplitIntrinsics", [110, 40]);
  const idle = make("SplitIntrinsics", [110, 570]);
  const photo = make("LumiXDecomposePhoto", [880, 40]);
  idle.setSize([740, 300]);
  photo.setSize([800, 1060]);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.graph.setDirtyCanvas(true, true);
  return {split: String(split.id), photo: String(photo.id), idle: String(idle.id)};
}
"""

QUEUE_JS = """
async (prompt) => {
  const {api} = await import('/scripts/api.js');
  const answer = await api.queuePrompt(0, {output: prompt, workflow: window.app.graph.serialize()});
  return answer.prompt_id;
}
"""

VIEWER_JS = """
(id) => {
  const node = window.app.graph.getNodeById(Number(id)) ?? window.app.graph.getNodeById(id);
  const view = node?.lumixMapsViewer;
  if (!view) return null;
  const rect = view.canvas.getBoundingClientRect();
  return {state: view.state, message: view.message.style.display === 'none' ? '' : view.message.textContent,
          entries: view.entries, scene: view.sceneIndex, layout: view.layout, wipe: view.wipe,
          tiles: view.tiles, width: view.scene?.width, height: view.scene?.height,
          rect: {left: rect.left, top: rect.top, width: rect.width, height: rect.height},
          client: {width: view.canvas.clientWidth, height: view.canvas.clientHeight},
          scale: view.canvas.width / view.canvas.clientWidth,
          sceneOptions: [...view.sceneSelect.options].map((o) => o.value),
          sceneSelectShown: view.sceneLabel.style.display !== 'none',
          readout: view.readout.textContent, pixel: view.readout.dataset.pixel ?? null,
          values: view.readout.dataset.values ?? null};
}
"""

ON_TOP_JS = """
(id) => {
  const canvas = window.app.graph.getNodeById(Number(id)).lumixMapsViewer.canvas;
  const rect = canvas.getBoundingClientRect();
  return document.elementFromPoint(rect.left + rect.width / 2, rect.top + rect.height / 2) === canvas;
}
"""

CANVAS_PIXEL_JS = """
([id, x, y]) => {
  const node = window.app.graph.getNodeById(Number(id)) ?? window.app.graph.getNodeById(id);
  return Array.from(node.lumixMapsViewer.canvas.getContext('2d').getImageData(x, y, 1, 1).data);
}
"""


def rekey(graph: dict, ids: dict[str, str], prefix: str) -> dict:
    """Rename the graph's node ids: those in `ids` to the page's node ids, the rest prefixed."""
    new = {key: ids.get(key, prefix + key) for key in graph}
    out = json.loads(json.dumps({new[key]: node for key, node in graph.items()}))
    for node in out.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and value[0] in new:
                node["inputs"][name] = [new[value[0]], value[1]]
    return out


def wait_for(page, node_id: str, state: str, timeout_s: float = 300) -> dict:
    page.wait_for_function(f"() => window.app.graph.getNodeById({node_id})?.lumixMapsViewer?.state === '{state}'",
                           timeout=timeout_s * 1000)
    return page.evaluate(VIEWER_JS, node_id)


def file_of(server, entry: dict) -> np.ndarray:
    path = server.base_dir / "temp" / entry["file"]["subfolder"] / entry["file"]["filename"]
    data = np.frombuffer(path.read_bytes(), dtype="<f4")
    return data.reshape(len(entry["maps"]), entry["height"], entry["width"], 3)


def client_point(view: dict, tile: dict, fx: float, fy: float) -> tuple[float, float]:
    """Client coordinates of the point (fx, fy) in file pixels of `tile` (fractions allowed)."""
    sx, sy = view["rect"]["width"] / view["client"]["width"], view["rect"]["height"] / view["client"]["height"]
    return (view["rect"]["left"] + (tile["x"] + fx * tile["w"] / view["width"]) * sx,
            view["rect"]["top"] + (tile["y"] + fy * tile["h"] / view["height"]) * sy)


def uncover(page, node_id: str, tries: int = 6):
    """Close what covers the viewer (1.47 opens its template browser on a fresh profile, and
    again after a reload) with Escape, as a person would."""
    for _ in range(tries):
        if page.evaluate(ON_TOP_JS, node_id):
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(400)
    raise AssertionError(f"something covers the viewer of node {node_id}")


def check_hover(page, node_id: str, data: np.ndarray, entry: dict, pixels) -> list[float]:
    """Real mouse moves to the centre of each (tile, x, y); the readout must be that pixel's.
    Returns the largest difference from the float64 reference."""
    worst = []
    uncover(page, node_id)
    view = page.evaluate(VIEWER_JS, node_id)
    assert all(t["w"] >= view["width"] and t["h"] >= view["height"] for t in view["tiles"]), \
        "less than one screen pixel per map pixel: hovering cannot aim at one pixel"
    for tile_index, x, y in pixels:
        tile = view["tiles"][tile_index]
        page.mouse.move(*client_point(view, tile, x + 0.5, y + 0.5), steps=3)
        shown = page.evaluate(VIEWER_JS, node_id)
        if shown["pixel"] is None:
            on_top = page.evaluate("([x, y]) => { const e = document.elementFromPoint(x, y); "
                                   "return e ? e.tagName + '.' + e.className : null; }",
                                   list(client_point(view, tile, x + 0.5, y + 0.5)))
            raise AssertionError(f"no readout at {tile['name']} ({x}, {y}); on top there: {on_top}")
        assert shown["tiles"] == view["tiles"], "the layout moved while hovering"
        assert json.loads(shown["pixel"]) == [x, y], (tile["name"], x, y, shown["readout"])
        values = json.loads(shown["values"])
        expected = readout64({name: data[i, y, x] for i, name in enumerate(entry["maps"])}, entry["depth"])
        assert set(values) == set(expected)
        for key, value in expected.items():
            difference = float(np.max(np.abs(np.asarray(values[key], np.float64) - value)))
            assert difference <= READOUT_TOLERANCE, (key, values[key], value)
            worst.append(difference)
        stride = entry["stride"]
        assert f"pixel {x * stride}, {y * stride} of {entry['source_width']}x{entry['source_height']}" \
            in shown["readout"]
        assert "nearest point = 1, farthest = 10" in shown["readout"] and "linear RGB" in shown["readout"]
    return worst


def select(page, node_id: str, name: str, value: str):
    """Choose `value` in one of the viewer's <select> elements, as a person does."""
    handle = page.evaluate_handle(f"() => window.app.graph.getNodeById({node_id}).lumixMapsViewer.{name}")
    handle.as_element().select_option(value)


def display_byte(value: float) -> int:
    return int(np.round(np.clip(value, 0.0, 1.0) * 255))


@pytest.fixture(scope="module")
def photo_file(comfyui_server) -> str:
    rng = np.random.default_rng(5)
    width, height = PHOTO_SIZE
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        comfyui_server.input_dir / "viewer_photo.png")
    return "viewer_photo.png"


def test_the_maps_viewer_shows_reads_out_wipes_and_survives_a_reload(comfyui, comfyui_server, tiny_models,
                                                                    photo_file, tmp_path_factory):
    folder = pathlib.Path(os.environ.get("LUMIX_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    version = comfyui_server.install.version()
    with ui_frontend.Frontend(comfyui_server.url) as frontend:
        page = frontend.page
        page.set_viewport_size(VIEWPORT)
        frontend.close_dialogs()
        started = len(frontend.console_errors)
        ids = page.evaluate(SETUP_JS)
        assert page.evaluate(VIEWER_JS, ids["idle"])["state"] == "empty"

        # Run both map nodes from the page.
        split_graph = lumix_graph(tiny_models, width=SPLIT_SIZE[0], height=SPLIT_SIZE[1], scenes=2, prefix="viewer")
        config = tiny_models.flux_config
        photo_graph = tiny_version(PHOTO_API, tiny_models, (config.context_in_dim, config.vec_in_dim))
        photo_graph["6"]["inputs"]["image"] = photo_file
        photo_graph = rekey(photo_graph, {"7": ids["photo"]}, "p")
        split_graph = rekey(split_graph, {"split": ids["split"]}, "s")
        prompt_ids = [page.evaluate(QUEUE_JS, graph) for graph in (split_graph, photo_graph)]
        entries = [comfyui.wait(pid, timeout_s=600) for pid in prompt_ids]
        for entry in entries:
            assert entry["status"]["status_str"] == "success", entry["status"]
        split = wait_for(page, ids["split"], "ready")
        photo = wait_for(page, ids["photo"], "ready")
        frontend.close_dialogs()

        # Five maps of a scene; two scenes to select; the photo's maps at its own size, stride 2.
        assert [t["name"] for t in split["tiles"]] == ["albedo", "irradiance", "color", "depth", "normal"]
        assert split["sceneOptions"] == ["0", "1"] and split["sceneSelectShown"]
        assert (split["width"], split["height"]) == SPLIT_SIZE
        [photo_entry] = photo["entries"]
        assert (photo_entry["source_width"], photo_entry["source_height"], photo_entry["stride"]) == (*PHOTO_SIZE, 2)
        assert (photo["width"], photo["height"]) == (PHOTO_SIZE[0] // 2, PHOTO_SIZE[1] // 2)
        assert len(photo["tiles"]) == 5 and not photo["sceneSelectShown"]
        idle = page.evaluate(VIEWER_JS, ids["idle"])
        assert idle["state"] == "empty" and idle["message"].startswith("No maps yet")

        # The viewer's file is the node's output: SaveImage's 8-bit PNG of it, exactly.
        split_entries = split["entries"]
        split_data = [file_of(comfyui_server, e) for e in split_entries]
        for index, name in enumerate(split_entries[0]["maps"]):
            files = sorted(comfyui.output_files(entries[0], f"ssave_{name}"))
            assert len(files) == 2
            for scene, path in enumerate(files):
                png = np.asarray(Image.open(path))
                np.testing.assert_array_equal(
                    np.clip(255.0 * split_data[scene][index], 0, 255).astype(np.uint8), png, err_msg=name)
        photo_data = file_of(comfyui_server, photo_entry)
        [depth_png] = comfyui.output_files(entries[1], "p10")
        np.testing.assert_array_equal(np.clip(255.0 * photo_data[3], 0, 255).astype(np.uint8),
                                      np.asarray(Image.open(depth_png))[::2, ::2])

        # Hover with real mouse events: readout of known pixels on every tile.
        rng = np.random.default_rng(0)
        pixels = [(t, int(rng.integers(SPLIT_SIZE[0])), int(rng.integers(SPLIT_SIZE[1]))) for t in range(5)]
        worst = check_hover(page, ids["split"], split_data[0], split_entries[0], pixels + [(0, 0, 0), (4, 63, 47)])
        photo_pixels = [(t, int(rng.integers(photo["width"])), int(rng.integers(photo["height"]))) for t in range(5)]
        worst += check_hover(page, ids["photo"], photo_data, photo_entry, photo_pixels)
        page.mouse.move(*client_point(split, split["tiles"][1], 20.5, 30.5))
        page.screenshot(path=str(folder / f"comfyui-{version}_maps_viewer.png"))

        # Scene 2 through the selector.
        select(page, ids["split"], "sceneSelect", "1")
        page.wait_for_function(f"() => window.app.graph.getNodeById({ids['split']}).lumixMapsViewer.sceneIndex === 1 "
                               f"&& window.app.graph.getNodeById({ids['split']}).lumixMapsViewer.state === 'ready'")
        worst += check_hover(page, ids["split"], split_data[1], split_entries[1], [(2, 10, 11), (3, 40, 5)])

        # A/B wipe: irradiance | depth, dragged from the middle to 25 % with real mouse events.
        select(page, ids["split"], "layoutSelect", "wipe")
        select(page, ids["split"], "aSelect", "irradiance")
        select(page, ids["split"], "bSelect", "depth")
        uncover(page, ids["split"])
        view = page.evaluate(VIEWER_JS, ids["split"])
        [tile] = view["tiles"]
        assert view["layout"] == "wipe" and view["wipe"] == 0.5
        page.mouse.move(*client_point(view, tile, 32, 24))
        page.mouse.down()
        page.mouse.move(*client_point(view, tile, 16, 24), steps=8)
        page.mouse.up()
        view = page.evaluate(VIEWER_JS, ids["split"])
        assert view["wipe"] == pytest.approx(0.25, abs=0.02), view["wipe"]
        maps = split_entries[1]["maps"]
        page.mouse.move(5, 5)   # off the viewer: no hover marker over the pixels read below
        for x, name in [(5, "irradiance"), (14, "irradiance"), (17, "depth"), (60, "depth")]:
            y = 24
            cx = round((tile["x"] + (x + 0.5) * tile["w"] / SPLIT_SIZE[0]) * view["scale"])
            cy = round((tile["y"] + (y + 0.5) * tile["h"] / SPLIT_SIZE[1]) * view["scale"])
            shown = page.evaluate(CANVAS_PIXEL_JS, [ids["split"], cx, cy])
            expected = [display_byte(v) for v in split_data[1][maps.index(name), y, x]]
            assert shown[:3] == expected, (x, name, shown, expected)
        page.screenshot(path=str(folder / f"comfyui-{version}_maps_viewer_wipe.png"))

        # Nothing of the viewer in the API prompt or the widgets' saved values.
        prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
        assert set(prompt[ids["split"]]["inputs"]) <= {"images"}
        saved = page.evaluate("() => window.app.graph.serialize()")
        photo_node = next(n for n in saved["nodes"] if str(n["id"]) == ids["photo"])
        assert "lumix_maps_viewer" not in json.dumps(photo_node.get("widgets_values"))
        assert len(photo_node["widgets_values"]) == len([w for w in page.evaluate(
            f"() => window.app.graph.getNodeById({ids['photo']}).widgets.map((w) => w.name)")
            if w != "lumix_maps_viewer"])

        # Reload the page and open the saved workflow: the maps come back.
        before_reload = len(frontend.console_errors)
        page.reload(wait_until="load")
        page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                               "Object.keys(LiteGraph.registered_node_types).length > 0",
                               timeout=ui_frontend.PAGE_TIMEOUT_MS)
        page.wait_for_timeout(3000)   # the frontend's own start-up requests settle
        after_reload = len(frontend.console_errors)
        frontend.close_dialogs()
        page.evaluate("async (w) => { await window.app.loadGraphData(w, true, true, null); "
                      "window.app.canvas.ds.offset = [0, 0]; window.app.canvas.ds.scale = 1; }", saved)
        split = wait_for(page, ids["split"], "ready", 60)
        wait_for(page, ids["photo"], "ready", 60)
        assert page.evaluate(VIEWER_JS, ids["idle"])["state"] == "empty"
        frontend.close_dialogs()
        worst += check_hover(page, ids["split"], split_data[0], split_entries[0], pixels[:2])

        # Maps whose file is gone (a restarted server) say so.
        page.evaluate("""([id, entries, name]) => { const e = JSON.parse(JSON.stringify(entries));
                                                    e[0].file.filename = name;
                                                    window.app.graph.getNodeById(Number(id)).lumixMapsViewer.setEntries(e); }""",
                      [ids["idle"], split_entries, GONE_FILE])
        gone = wait_for(page, ids["idle"], "gone", 30)
        assert "no longer on the server" in gone["message"]

        # The same node run again at another size and one scene: the viewer follows.
        rerun = rekey(lumix_graph(tiny_models, seed=3, width=48, height=64, prefix="viewer_rerun"),
                      {"split": ids["split"]}, "r")
        assert comfyui.wait(page.evaluate(QUEUE_JS, rerun), timeout_s=600)["status"]["status_str"] == "success"
        page.wait_for_function(f"() => {{ const v = window.app.graph.getNodeById({ids['split']}).lumixMapsViewer; "
                               f"return v.state === 'ready' && v.scene.width === 48; }}", timeout=120_000)
        view = page.evaluate(VIEWER_JS, ids["split"])
        assert (view["height"], view["sceneOptions"], view["sceneSelectShown"]) == (64, ["0"], False)
        [rerun_entry] = view["entries"]
        worst += check_hover(page, ids["split"], file_of(comfyui_server, rerun_entry), rerun_entry,
                             [(0, 47, 63), (3, 20, 33)])
    # The frontends' own start-ups (first load and reload) log 404s for optional user files and
    # more; what counts is what happens once the page is up.
    while_up = frontend.console_errors[started:before_reload] + frontend.console_errors[after_reload:]
    errors = [e for e in while_up if not any(p in e for p in EXPECTED_ERRORS) and not ui_frontend.offline_error(e)]
    assert errors == [], errors
    print(f"{version}: {len(worst)} readout values within {max(worst):.2e} of the float64 reference")


DOCS_SETUP_JS = """
() => {
  const app = window.app;
  app.graph.clear();
  const node = LiteGraph.createNode("SplitIntrinsics");
  app.graph.add(node);
  node.pos = [200, 200];     // clear of both frontends' bars: the screenshot is the node alone
  node.setSize([960, 520]);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.graph.setDirtyCanvas(true, true);
  return String(node.id);
}
"""


def ground_truth_graph(node_id: str, files: dict[str, str]) -> dict:
    """5 x LoadImage -> ImageBatch chain (albedo ... normal) -> Split Intrinsics (the page's node)
    -> PreviewImage."""
    graph = {f"load_{name}": {"class_type": "LoadImage", "inputs": {"image": filename}}
             for name, filename in files.items()}
    previous = "load_albedo"
    for name in list(files)[1:]:
        graph[f"batch_{name}"] = {"class_type": "ImageBatch",
                                  "inputs": {"image1": [previous, 0], "image2": [f"load_{name}", 0]}}
        previous = f"batch_{name}"
    graph[node_id] = {"class_type": "SplitIntrinsics", "inputs": {"images": [previous, 0]}}
    graph["preview"] = {"class_type": "PreviewImage", "inputs": {"images": [node_id, 0]}}   # a graph needs an output
    return graph


def test_the_viewer_reads_ground_truth_maps(comfyui, comfyui_server, tmp_path_factory):
    """A scene of the pack's own renderer (exact maps, saved as 8-bit PNGs, no model) through
    LoadImage into Split Intrinsics: hovering a pixel gives its true normal within the 8-bit
    quantisation (1 degree) and its true linear albedo within 1/255, also with frontend 1.47's
    Nodes 2.0 (DOM-drawn nodes) switched on. And the docs' figure:
    `comfyui-<version>_maps_viewer_docs.png` (the node alone) in LUMIX_UI_SCREENSHOTS."""
    import torch

    from lumix_engine.intrinsics import render_scene
    from lumix_engine.intrinsics.color_space import srgb_to_linear
    scene = render_scene(11, 160, 120)
    files = {}
    for name, image in scene.images().items():
        files[name] = f"viewer_truth_{name}.png"
        pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(comfyui_server.input_dir / files[name])
    folder = pathlib.Path(os.environ.get("LUMIX_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    with ui_frontend.Frontend(comfyui_server.url) as frontend:
        page = frontend.page
        page.set_viewport_size(VIEWPORT)
        frontend.close_dialogs()
        node_id = page.evaluate(DOCS_SETUP_JS)
        prompt_id = page.evaluate(QUEUE_JS, ground_truth_graph(node_id, files))
        assert comfyui.wait(prompt_id, timeout_s=300)["status"]["status_str"] == "success"
        view = wait_for(page, node_id, "ready")
        [entry] = view["entries"]
        data = file_of(comfyui_server, entry)
        uncover(page, node_id)
        # Pixels on each object of the scene (object_id), hovered on the normal tile.
        ids = scene.object_id[0].numpy()
        pixels = [tuple(int(v) for v in np.argwhere(ids == k)[len(np.argwhere(ids == k)) // 2])
                  for k in np.unique(ids)]
        for y, x in pixels:
            check_hover(page, node_id, data, entry, [(4, x, y)])
            values = json.loads(page.evaluate(VIEWER_JS, node_id)["values"])
            true_normal = scene.normal[0, y, x].double().numpy()
            angle = np.degrees(np.arccos(np.clip(np.dot(values["normal"], true_normal), -1, 1)))
            assert angle < 1.0, (x, y, values["normal"], true_normal)
            true_albedo = srgb_to_linear(scene.albedo[0, y, x].double()).numpy()
            np.testing.assert_allclose(values["albedo_linear"], true_albedo, atol=1 / 255)
        y, x = pixels[len(pixels) // 2]
        check_hover(page, node_id, data, entry, [(3, x, y)])
        rect = page.evaluate(f"""() => {{ const node = window.app.graph.getNodeById({node_id});
            const r = node.lumixMapsViewer.root.getBoundingClientRect();
            return {{x: r.left - 12, y: r.top - 150, width: r.width + 24, height: r.height + 160}}; }}""")
        page.screenshot(path=str(folder / f"comfyui-{comfyui_server.install.version()}_maps_viewer_docs.png"),
                        clip=rect)
        # Frontend 1.47's "Nodes 2.0" draws nodes as DOM (Vue); the viewer moves along and reads the same.
        # (1.27 has the setting too, as an unfinished experiment, with no DOM widgets in it.)
        if ui_frontend.vue_nodes_offered(page):
            with ui_frontend.vue_nodes(page):
                page.wait_for_timeout(1500)
                uncover(page, node_id)
                check_hover(page, node_id, data, entry, [(4, x, y), (0, 3, 100)])
