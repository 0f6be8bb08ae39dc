"""The node help panel and the template browser of the REAL frontend show our pages and thumbnails.

In a headless Chromium on the test server's web UI (the frontend package of the ComfyUI
install under test):

1. help panel: the shipped lumix_text_to_maps workflow is loaded, its LumiX Sampler node is
   selected and the frontend's own help view is opened for it. Frontend 1.27 (ComfyUI
   0.3.64) shows help in the node library sidebar (its nodeHelp store); 1.47 (ComfyUI 0.29.0)
   in the right side panel's Info tab for the selected node. Either way the frontend fetches
   `/extensions/<pack folder>/docs/LumiXSampler.md` itself and renders it: the panel must show
   text that is only in that page (not the node's short description, which is the
   frontend's fallback) and its figure, loaded from the pack (naturalWidth > 0);
2. template browser: "Browse Templates" is opened and the pack's entry (listed under Custom
   Nodes / Extensions, by folder name) clicked; every shipped workflow appears by name, and each
   thumbnail is fetched from /api/workflow_templates/<pack>/<name>.jpg (HTTP 200, JPEG) and
   drawn (one image of the thumbnails' width per workflow in the dialog).

LUMIX_UI_SCREENSHOTS=<dir> saves `comfyui-<version>_help_panel.png` and
`..._template_browser.png` there (the README's are in docs/screenshots/). Skips without
playwright or a system Chromium, like test_ui_format_loads.py.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest
from comfyui_harness import PACK_DIR_NAME

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import ui_frontend  # noqa: E402

UNAVAILABLE = ui_frontend.unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"help/template UI test: {UNAVAILABLE}")
WORKFLOWS = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
THUMBNAIL_WIDTH = 512
# A sentence of web/docs/LumiXSampler.md that the node's description does not contain.
PAGE_ONLY_TEXT = "bit-identical"

# Opens the help view of the selected LumiX Sampler the way the running frontend offers it.
OPEN_HELP_JS = """
async (nodeType) => {
  const app = window.app;
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  const node = app.graph.nodes.find((n) => n.type === nodeType);
  app.canvas.deselectAll?.();
  app.canvas.selectNode(node);
  const panel = pinia._s.get('rightSidePanel');
  if (panel) {                      // frontend >= 1.3x: right side panel, Info tab
    panel.openPanel('info');
    return 'right side panel (Info tab)';
  }
  await app.extensionManager.command.execute('Workspace.ToggleSidebarTab.node-library');
  pinia._s.get('nodeHelp').openHelp(pinia._s.get('nodeDef').nodeDefsByName[nodeType]);
  return 'node library sidebar (help page)';
}
"""

HELP_LOADED_JS = """
() => {
  const view = document.querySelector('.node-help-content');
  const image = view && view.querySelector('img');
  return !!(image && image.complete && image.naturalWidth > 0);
}
"""

HELP_STATE_JS = """
() => {
  const view = document.querySelector('.node-help-content');
  return {text: view.innerText,
          images: [...view.querySelectorAll('img')].map((i) => ({src: i.src, width: i.naturalWidth}))};
}
"""

THUMBNAILS_DRAWN_JS = """
(width) => [...document.querySelectorAll('.p-dialog img, [role=dialog] img')]
  .filter((i) => i.complete && i.naturalWidth === width).length
"""


# Fixed-position dialogs have no offsetParent: visibility is read from their box.
OPEN_DIALOGS_JS = """
() => [...document.querySelectorAll('.p-dialog, [role=dialog]')]
  .filter((d) => { const r = d.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length
"""

CLICK_DIALOG_CLOSE_JS = """
() => [...document.querySelectorAll('.p-dialog, [role=dialog]')].forEach((d) =>
  d.querySelector('button[aria-label="Close"], button[aria-label="Close dialog"], .p-dialog-close-button')?.click())
"""


def close_all_dialogs(frontend, tries: int = 6):
    """Escape every open dialog: PrimeVue ones (1.27) and the role=dialog ones of newer
    frontends, e.g. the templates dialog 1.47 opens by itself for a first-time user."""
    frontend.close_dialogs()
    for _ in range(tries):
        if not frontend.page.evaluate(OPEN_DIALOGS_JS):
            return
        frontend.page.keyboard.press("Escape")
        frontend.page.wait_for_timeout(300)
        if frontend.page.evaluate(OPEN_DIALOGS_JS):
            frontend.page.evaluate(CLICK_DIALOG_CLOSE_JS)
            frontend.page.wait_for_timeout(300)


def screenshot(page, install, what: str):
    folder = os.environ.get("LUMIX_UI_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"comfyui-{install.version()}_{what}.png"))


@pytest.fixture(scope="module")
def page(comfyui_server):
    with ui_frontend.Frontend(comfyui_server.url) as frontend:
        frontend.responses = []
        frontend.page.on("response", lambda r: frontend.responses.append(
            (r.status, r.url, r.headers.get("content-type", ""))))
        yield frontend
        # 1.47 keeps the right side panel's state in the server's user settings: left open, it
        # would cover the right of every later page of this server (the editors' tests).
        frontend.page.evaluate("async () => { try { await window.app.extensionManager.setting.set("
                               "'Comfy.RightSidePanel.IsOpen', false); } catch (e) {} }")


def test_help_panel_shows_our_page_for_a_selected_node(page, comfyui_install):
    close_all_dialogs(page)
    workflow = json.loads((ROOT / "workflows" / "lumix_text_to_maps.json").read_text())
    page.page.evaluate("async (w) => { await window.app.loadGraphData(w, true, true, null); }", workflow)
    page.page.wait_for_timeout(1500)
    close_all_dialogs(page)                   # the Missing Models dialog (no FLUX files here)
    where = page.page.evaluate(OPEN_HELP_JS, "LumiXSampler")
    page.page.wait_for_function(HELP_LOADED_JS, timeout=ui_frontend.PAGE_TIMEOUT_MS)
    state = page.page.evaluate(HELP_STATE_JS)
    print(f"help shown in the {where}")
    assert state["text"].lstrip().startswith("LumiX Sampler")
    assert PAGE_ONLY_TEXT in state["text"], "the panel shows the fallback description, not our page"
    for heading in ("Inputs", "Outputs", "Typical wiring"):
        assert heading in state["text"]
    assert state["images"] == [{"src": f"{page.url}/extensions/{PACK_DIR_NAME}/docs/images/five_maps.png",
                                "width": state["images"][0]["width"]}]
    assert state["images"][0]["width"] > 0
    fetched = [(s, u) for s, u, _ in page.responses if u.endswith("/docs/LumiXSampler.md")]
    assert (200, f"{page.url}/extensions/{PACK_DIR_NAME}/docs/LumiXSampler.md") in fetched
    close_all_dialogs(page)
    page.page.wait_for_timeout(300)
    screenshot(page.page, comfyui_install, "help_panel")


def test_template_browser_lists_our_workflows_with_thumbnails(page, comfyui_install):
    close_all_dialogs(page)
    page.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    entry = page.page.get_by_text(PACK_DIR_NAME, exact=True).first
    entry.wait_for(timeout=ui_frontend.PAGE_TIMEOUT_MS)
    entry.scroll_into_view_if_needed()
    entry.click()
    for name in WORKFLOWS:
        page.page.get_by_text(name, exact=True).first.wait_for(timeout=ui_frontend.CALL_TIMEOUT_MS)
    page.page.wait_for_function(f"() => ({THUMBNAILS_DRAWN_JS})({THUMBNAIL_WIDTH}) >= {len(WORKFLOWS)}",
                                timeout=ui_frontend.CALL_TIMEOUT_MS)
    for name in WORKFLOWS:
        url = f"{page.url}/api/workflow_templates/{PACK_DIR_NAME}/{name}.jpg"
        assert any(s == 200 and u == url and t == "image/jpeg" for s, u, t in page.responses), url
    page.page.wait_for_timeout(300)
    screenshot(page.page, comfyui_install, "template_browser")
