"""The GLB of LumiX Save Mesh opens in the REAL frontend's 3D preview (Preview 3D), in a
headless Chromium: the export graph runs through the API, then the page queues a Preview 3D
node on the file, and the frontend's Load3D viewer (three.js GLTFLoader) fetches and shows
it. Checked: the .glb is fetched with HTTP 200, the viewer's canvas is drawn, no console
error; a screenshot is saved (LUMIX_UI_SCREENSHOTS=<dir>, default the session's temp dir).

Needs `playwright` and a system Chromium (see tests/comfyui/README.md); skips otherwise.
WebGL comes from Chromium's software renderer (SwiftShader)."""
from __future__ import annotations

import os
import pathlib
import re
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ui_frontend  # noqa: E402
from test_export_nodes import export_graph, inputs  # noqa: E402,F401  (inputs: the fixture)

UNAVAILABLE = ui_frontend.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"3D preview test: {UNAVAILABLE}")
SOFTWARE_WEBGL = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
EXPECTED_ERRORS = (
    re.compile(r"^Failed to load resource: "),
    re.compile(r"^HTTP 404: \S+/api/view\?type=input&filename=example\.png&"),
    re.compile(r"GPU stall due to ReadPixels"),      # SwiftShader performance notice
)

# Builds one Preview 3D node on the saved file and queues it the way the Queue button does.
QUEUE_PREVIEW_JS = """
async (modelFile) => {
  const app = window.app;
  app.graph.clear();
  const node = LiteGraph.createNode("Preview3D");
  node.pos = [40, 40];
  node.size = [720, 640];
  app.graph.add(node);
  node.widgets.find((w) => w.name === "model_file").value = modelFile;
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  await app.queuePrompt(0, 1);
  return node.id;
}
"""

@pytest.fixture(scope="module")
def glb_file(comfyui, comfyui_server, inputs):  # noqa: F811
    """The GLB LumiX Save Mesh wrote, as Preview 3D's model_file (relative to the output folder)."""
    entry = comfyui.run(export_graph(inputs))
    [saved] = entry["outputs"]["mesh"]["3d"]
    assert (comfyui_server.output_dir / saved["subfolder"] / saved["filename"]).is_file()
    return f"{saved['subfolder']}/{saved['filename']}"


def test_glb_opens_in_the_frontend_3d_preview(comfyui_server, glb_file, tmp_path_factory):
    from playwright.sync_api import sync_playwright
    args = [a for a in ui_frontend.CHROMIUM_ARGS if a != "--disable-gpu"] + SOFTWARE_WEBGL
    console: list[str] = []
    glb_responses: list[tuple[str, int]] = []
    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as playwright:
        # bypass_csp: the test server runs with --disable-api-nodes (no network), and only then
        # does ComfyUI send a Content-Security-Policy whose connect-src blocks the blob: URLs
        # three.js's GLTFLoader uses for every texture embedded in a GLB (ComfyUI's own SaveGLB
        # files included). An ordinary server sends no such header.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=ui_frontend.chromium_path(), headless=True, args=args, bypass_csp=True,
            timeout=ui_frontend.LAUNCH_TIMEOUT_MS, viewport={"width": 1000, "height": 760})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(ui_frontend.CALL_TIMEOUT_MS)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"error: pageerror {e}"))
            page.on("response", lambda r: glb_responses.append((r.url, r.status)) if ".glb" in r.url else None)
            page.goto(comfyui_server.url, timeout=ui_frontend.PAGE_TIMEOUT_MS, wait_until="load")
            page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                                   "Object.keys(LiteGraph.registered_node_types).length > 0",
                                   timeout=ui_frontend.PAGE_TIMEOUT_MS)
            assert page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')"), \
                "no WebGL2 in this Chromium"
            started = len(console)
            page.evaluate(QUEUE_PREVIEW_JS, glb_file)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not glb_responses:
                page.wait_for_timeout(500)
            page.wait_for_timeout(6000)   # parse, upload textures, first frames
            for _ in range(3):            # the template browser opens on a fresh profile
                page.keyboard.press("Escape")
                page.wait_for_timeout(300)
            folder = pathlib.Path(os.environ.get("LUMIX_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / "lumix_mesh_preview3d.png"))
        finally:
            context.close()
    errors = [line for line in console[started:] if line.startswith("error")
              and not any(p.search(line[len("error: "):]) for p in EXPECTED_ERRORS)]
    name = glb_file.split("/")[-1]
    assert any(name in url and status == 200 for url, status in glb_responses), (glb_responses, console[-30:])
    assert errors == [], errors
