"""Drive the real ComfyUI web frontend in a headless Chromium (Playwright, system browser).

Used by test_ui_format_loads.py. Needs the `playwright` Python package (pip) and a Chromium
binary that is already installed (Debian: `apt-get install chromium` -> /usr/bin/chromium);
Playwright's own browser download (`playwright install`) is never used. `unavailable()`
says why the browser tests cannot run, so they skip instead of failing where there is no
browser (CI).

`Frontend` opens the server's page, waits for `window.app` (the ComfyApp) and its graph,
and `load()` runs `app.loadGraphData(workflow)` then `app.graphToPrompt()` in the page,
returning what the frontend made of the file: its nodes (type, title, widget values,
serialized form), the prompt, the node types it reported missing, the dialogs it opened,
the missing models and inputs it recorded (frontend 1.47's stores and error overlay), and
the console errors of that load.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
PAGE_TIMEOUT_MS = 60_000      # page load and app start-up (the bundle is large, CPUs are few)
CALL_TIMEOUT_MS = 30_000      # one loadGraphData / graphToPrompt round trip
LAUNCH_TIMEOUT_MS = 60_000


# The frontend itself asks huggingface.co for model file sizes (its template browser and
# missing-model dialogs), at moments that vary from run to run. Offline, or under the
# Content-Security-Policy that --disable-api-nodes sets (connect-src 'self'), those requests
# fail; they say nothing about this pack, whose extensions fetch only from the server.
OFFLINE_ERRORS = (
    re.compile(r"^request failed: https://huggingface\.co/\S+ \(net::ERR_NAME_NOT_RESOLVED\)"),
    re.compile(r"^Error fetching file size: TypeError: Failed to fetch"),
    re.compile(r"^Connecting to 'https://huggingface\.co/\S+' violates the following Content Security Policy"),
    re.compile(r"^Fetch API cannot load https://huggingface\.co/\S+\. Refused to connect because it violates "
               r"the document's Content Security Policy"),
)


def offline_error(message: str) -> bool:
    """Whether a console message is one of the frontend's own offline requests (OFFLINE_ERRORS)."""
    return any(pattern.search(message) for pattern in OFFLINE_ERRORS)


VUE_NODES = "Comfy.VueNodes.Enabled"   # the frontend's 'Modern Node Design (Nodes 2.0)' setting

SETTING_TYPE_JS = """
(id) => {
  const pinia = document.querySelector('#vue-app')?.__vue_app__?.config.globalProperties.$pinia;
  const store = pinia?._s.get('setting');
  return store?.settingsById?.[id]?.type ?? null;
}
"""


def vue_nodes_offered(page) -> bool:
    """Whether this frontend offers 'Nodes 2.0' (nodes drawn as DOM by Vue) to its users: 1.47
    does; 1.27 has the setting only as a hidden experiment, with no DOM widgets in it."""
    kind = page.evaluate(SETTING_TYPE_JS, VUE_NODES)
    assert kind is not None, "the setting store changed: find the Modern Node Design setting again"
    return kind != "hidden"


@contextlib.contextmanager
def vue_nodes(page):
    """'Nodes 2.0' switched on for the block, and off again after it: a user setting kept by the
    server, so later pages of the same server would draw Vue nodes too."""
    page.evaluate(f"async () => {{ await window.app.extensionManager.setting.set('{VUE_NODES}', true); }}")
    try:
        yield
    finally:
        page.evaluate(f"async () => {{ await window.app.extensionManager.setting.set('{VUE_NODES}', false); }}")


def chromium_path() -> str | None:
    """LUMIX_CHROMIUM if set, else the first system Chromium found."""
    explicit = os.environ.get("LUMIX_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found


def unavailable() -> str | None:
    """Why the browser cannot be driven here (None when it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the Python package `playwright` is not installed (pip install playwright; the "
                "browser comes from the system: apt-get install chromium)")
    if chromium_path() is None:
        return ("no Chromium binary (apt-get install chromium, or set LUMIX_CHROMIUM to one); "
                "`playwright install` browsers are not used")
    return None


# Runs in the page once: an extension that records the node types each load reports missing.
INSTALL_PROBE_JS = """
() => {
  if (window.__lumixProbe) return true;
  window.__lumixProbe = {missing: null, loads: 0};
  window.app.registerExtension({
    name: "LumiX.test.probe",
    async afterConfigureGraph(missingNodeTypes) {
      window.__lumixProbe.missing = JSON.parse(JSON.stringify(missingNodeTypes || []));
      window.__lumixProbe.loads += 1;
    },
  });
  return true;
}
"""

# Frontend 1.27's model-to-node store maps "upscale_models" to UpscaleModelLoader; on a server
# without that node (this test ComfyUI has no spandrel) its provider has no node definition,
# and every combo named ckpt_name / lora_name / vae_name then throws while being built
# (isAssetBrowserEligible), leaving e.g. VAELoader with an "UNKNOWN" widget and no class
# type. That is the test server's gap, not the workflow's: drop the providers whose node
# definition is missing, and report which (an ordinary install has them all).
REPAIR_MODEL_TO_NODE_JS = """
() => {
  const pinia = document.querySelector('#vue-app')?.__vue_app__?.config.globalProperties.$pinia;
  const store = pinia?._s.get('modelToNode');
  if (!store) return {store: false, dropped: []};
  store.registerDefaults();
  const dropped = [];
  for (const [modelType, providers] of Object.entries(store.modelToNodeMap)) {
    const kept = providers.filter((p) => p && p.nodeDef);
    if (kept.length !== providers.length) {
      dropped.push(modelType);
      store.modelToNodeMap[modelType] = kept;
    }
  }
  return {store: true, dropped};
}
"""

# Loads one UI workflow and reports what the frontend built from it.
LOAD_JS = """
async (workflow) => {
  const app = window.app;
  window.__lumixProbe.missing = null;
  await app.loadGraphData(workflow, true, true, null);
  const nodes = app.graph.nodes.map((node) => ({
    id: node.id,
    type: node.type,
    title: node.title,
    has_errors: !!node.has_errors,
    widgets: (node.widgets || []).map((w) => ({name: w.name, type: w.type, value: w.value,
                                               serialize: w.serialize !== false &&
                                                          w.options?.serialize !== false})),
    serialized: JSON.parse(JSON.stringify(node.serialize())),
  }));
  // What "Queue" would send, including the seed widgets' control_after_generate: queuePrompt
  // runs every widget's beforeQueued, then graphToPrompt, then afterQueued once queued.
  const runCallbacks = (name) => app.graph.nodes.forEach((node) =>
    (node.widgets || []).forEach((widget) => widget[name]?.()));
  runCallbacks("beforeQueued");
  const prompt = await app.graphToPrompt();
  runCallbacks("afterQueued");
  const next = await app.graphToPrompt();
  return {
    output_next_queue: JSON.parse(JSON.stringify(next.output)),
    nodes,
    links: app.graph.links instanceof Map ? app.graph.links.size : Object.keys(app.graph.links || {}).length,
    output: JSON.parse(JSON.stringify(prompt.output)),
    missing_node_types: window.__lumixProbe.missing,
    registered: Object.fromEntries(workflow.nodes.map((n) => [n.type, n.type in LiteGraph.registered_node_types])),
  };
}
"""

# Frontend 1.47 (ComfyUI 0.29) records missing models in its `missingModel` store (and
# missing input files in `missingMedia`) and shows an "N errors found" overlay instead of
# 1.27's "Missing Models" dialog. null where a store does not exist (1.27).
MISSING_JS = """
() => {
  const pinia = document.querySelector('#vue-app')?.__vue_app__?.config.globalProperties.$pinia;
  const copy = (store, field) => store ? JSON.parse(JSON.stringify(store[field] ?? [])) : null;
  const overlay = document.body.innerText.match(/(\\d+) errors? found/);
  return {models: copy(pinia?._s.get('missingModel'), 'missingModelCandidates'),
          media: copy(pinia?._s.get('missingMedia'), 'missingMediaCandidates'),
          overlay_count: overlay ? Number(overlay[1]) : null};
}
"""

DIALOGS_JS = """
() => Array.from(document.querySelectorAll('.p-dialog')).filter((d) => d.offsetParent !== null
   || getComputedStyle(d).display !== 'none').map((d) => d.innerText)
"""


class Frontend:
    """One headless Chromium page on a ComfyUI server's web UI (use as a context manager)."""

    def __init__(self, url: str, chromium: str | None = None):
        self.url = url
        self.chromium = chromium or chromium_path()
        self.console_errors: list[str] = []
        self.repaired: dict = {}
        self._profile = None
        self._playwright = None
        self._context = None
        self.page = None

    def __enter__(self) -> "Frontend":
        from playwright.sync_api import sync_playwright
        self._profile = tempfile.mkdtemp(prefix="lumix_chromium_profile_")
        self._playwright = sync_playwright().start()
        try:
            self._context = self._playwright.chromium.launch_persistent_context(
                self._profile, executable_path=self.chromium, headless=True, args=CHROMIUM_ARGS,
                timeout=LAUNCH_TIMEOUT_MS, viewport={"width": 1600, "height": 1000})
            self.page = self._context.pages[0] if self._context.pages else self._context.new_page()
            self.page.set_default_timeout(CALL_TIMEOUT_MS)
            self.page.on("console", self._on_console)
            self.page.on("pageerror", lambda error: self.console_errors.append(
                f"pageerror: {error}\n{getattr(error, 'stack', '')}"))
            self.page.on("response", self._on_response)
            self.page.on("requestfailed", lambda request: self.console_errors.append(
                f"request failed: {request.url} ({request.failure})"))
            self.page.goto(self.url, timeout=PAGE_TIMEOUT_MS, wait_until="load")
            self.page.wait_for_function(
                "() => window.app && window.app.graph && window.LiteGraph && "
                "Object.keys(LiteGraph.registered_node_types).length > 0 && "
                "window.app.canvas",
                timeout=PAGE_TIMEOUT_MS)
            self.page.evaluate(INSTALL_PROBE_JS)
            self.repaired = self.page.evaluate(REPAIR_MODEL_TO_NODE_JS)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for close in (lambda: self._context and self._context.close(),
                      lambda: self._playwright and self._playwright.stop()):
            try:
                close()
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
        return False

    def _on_console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_response(self, response):
        if response.status >= 400:
            self.console_errors.append(f"HTTP {response.status}: {response.url}")

    def dialogs(self) -> list[str]:
        """The text of every open PrimeVue dialog."""
        return self.page.evaluate(DIALOGS_JS)

    def close_dialogs(self, tries: int = 5):
        for _ in range(tries):
            if not self.dialogs():
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)

    def load(self, workflow: dict, settle_ms: int = 1500) -> dict:
        """loadGraphData + graphToPrompt; adds the dialogs and console errors of this load."""
        self.close_dialogs()
        errors_before = len(self.console_errors)
        result = self.page.evaluate(LOAD_JS, workflow)
        self.page.wait_for_timeout(settle_ms)   # dialogs mount asynchronously
        result["dialogs"] = self.dialogs()
        result["missing"] = self.page.evaluate(MISSING_JS)
        result["console_errors"] = self.console_errors[errors_before:]
        return result

    def screenshot(self, path: str):
        self.page.screenshot(path=path, timeout=CALL_TIMEOUT_MS)
