// Live relight editor on the LumiX Relight and LumiX Relight Environment nodes. After the node
// has run, its UI output names preview PNGs of the albedo and normal (and irradiance) maps in
// ComfyUI's temp folder (nodes/browser_maps.py), and for an environment its 9 SH coefficients;
// the editor fetches the maps through /view and relights them in the browser
// (web/js/relight/maths.js, the maths of lumix_engine/intrinsics/relight_spec.json) while the
// light is dragged. Every change is written into the node's own widgets, so the
// saved workflow, the API prompt and the next queue carry exactly what the preview shows.
// Nothing here queues, pauses or waits on the queue.
import { api } from "../../../scripts/api.js";
import { app } from "../../../scripts/app.js";
import { SphereGizmo } from "./relight/gizmo.js";
import { irradianceAt, lightSetup, linearToHex, parseLightColor } from "./relight/maths.js";
import { createRenderer } from "./relight/renderer.js";

const UI_KEY = "lumix_maps";                    // nodes/browser_maps.py
const SH9_UI_KEY = "lumix_sh9";
const MAPS_PROPERTY = "lumix_relight_maps";     // the last run's maps, kept with the workflow
const SH9_PROPERTY = "lumix_relight_sh9";
// Per node type: the widgets the editor drives, its sliders [name, min, max, step], and whether the
// ball sets a light's direction (directional) or turns an environment.
const EDITORS = {
  LumiXRelight: {
    values: ["light_x", "light_y", "light_z", "light_color", "intensity", "ambient", "exposure"],
    sliders: [["intensity", 0, 4, 0.05], ["ambient", 0, 1, 0.01], ["exposure", -4, 4, 0.1]],
    environment: false,
    hint: "Then drag the light on the ball.",
  },
  LumiXRelightEnvironment: {
    values: ["rotation", "intensity", "exposure"],
    sliders: [["rotation", -180, 180, 1], ["intensity", 0, 4, 0.05], ["exposure", -4, 4, 0.1]],
    environment: true,
    hint: "Then drag sideways on the ball to turn the environment.",
  },
};
const MIN_HEIGHT = 360;
const NO_MAPS = "Run the graph once: the relit preview appears here.";

function el(tag, style = {}, props = {}) {
  const element = document.createElement(tag);
  Object.assign(element.style, style);
  return Object.assign(element, props);
}

/** The RGBA bytes of one PNG served by ComfyUI, exactly as stored (no colour conversion). */
async function fetchPixels(entry) {
  const query = new URLSearchParams({filename: entry.filename, subfolder: entry.subfolder ?? "",
                                     type: entry.type ?? "temp"});
  const response = await fetch(api.apiURL(`/view?${query}`), {cache: "no-store"});
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${entry.filename}`);
  const bitmap = await createImageBitmap(await response.blob(),
                                         {colorSpaceConversion: "none", premultiplyAlpha: "none"});
  const canvas = el("canvas", {}, {width: bitmap.width, height: bitmap.height});
  const context = canvas.getContext("2d", {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  bitmap.close?.();
  return {width: canvas.width, height: canvas.height,
          pixels: context.getImageData(0, 0, canvas.width, canvas.height).data};
}

/** Give a WebGL renderer's context back to the browser now, rather than when it is collected. */
function releaseContext(renderer) {
  renderer.gl?.getExtension("WEBGL_lose_context")?.loseContext();
}

class RelightEditor {
  constructor(node, config) {
    this.node = node;
    this.config = config;
    this.sh9 = null;
    this.maps = null;
    this.entries = null;
    this.lastKey = null;
    this.frameRequested = false;
    this.loading = 0;
    this._build();
    this.renderer = null;
    this.widget = node.addDOMWidget("relight_editor", "lumix_relight_editor", this.element, {
      serialize: false,
      hideOnZoom: false,
      getValue: () => "",
      setValue: () => {},
      getMinHeight: () => MIN_HEIGHT,
    });
    this.widget.serialize = false;
    this._watchWidgets();
    this.showMessage(`${NO_MAPS} ${this.config.hint}`);
    this.syncControls();
  }

  _build() {
    this.element = el("div", {display: "flex", flexDirection: "column", gap: "6px", width: "100%",
                              height: "100%", boxSizing: "border-box", padding: "4px", minHeight: "0",
                              color: "var(--input-text, #ddd)", font: "12px sans-serif"},
                      {className: "lumix-relight-editor"});
    this.view = el("div", {position: "relative", flex: "1 1 auto", minHeight: "120px", background: "#111",
                           borderRadius: "4px", overflow: "hidden", display: "flex",
                           alignItems: "center", justifyContent: "center"});
    this.message = el("div", {position: "absolute", inset: "0", display: "flex", alignItems: "center",
                              justifyContent: "center", textAlign: "center", padding: "12px",
                              background: "rgba(0, 0, 0, 0.55)", pointerEvents: "none"},
                      {className: "lumix-relight-message"});
    this.view.append(this.message);
    const controls = el("div", {display: "flex", gap: "8px", alignItems: "center", flex: "0 0 auto"});
    this.gizmo = this.config.environment
      ? new SphereGizmo({onTurn: (degrees) => this.turn(degrees)})
      : new SphereGizmo({onDirection: (direction) => this.setDirection(direction)});
    const sliders = el("div", {display: "grid", gridTemplateColumns: "auto 1fr auto", gap: "2px 6px",
                               alignItems: "center", flex: "1 1 auto", minWidth: "0"});
    this.inputs = {};
    const slider = (name, label, min, max, step) => {
      const input = el("input", {width: "100%", minWidth: "0"}, {type: "range", min, max, step, title: label});
      const readout = el("span", {minWidth: "3.5em", textAlign: "right", fontVariantNumeric: "tabular-nums"});
      input.addEventListener("input", () => this.setValues({[name]: Number(input.value)}));
      sliders.append(el("span", {}, {textContent: label}), input, readout);
      this.inputs[name] = {input, readout};
    };
    if (!this.config.environment) {
      const colorInput = el("input", {width: "100%", height: "20px", padding: "0", border: "none"},
                            {type: "color", title: "Light colour (sRGB); the widget takes 'r, g, b' linear too"});
      colorInput.addEventListener("input", () => this.setValues({light_color: colorInput.value}));
      this.colorInput = colorInput;
      this.colorReadout = el("span", {minWidth: "3.5em", textAlign: "right", overflow: "hidden"});
      sliders.append(el("span", {}, {textContent: "colour"}), colorInput, this.colorReadout);
    }
    for (const [name, min, max, step] of this.config.sliders) slider(name, name, min, max, step);
    if (!this.config.environment) sliders.append(this._backToggle());
    controls.append(this.gizmo.canvas, sliders);
    this.status = el("div", {flex: "0 0 auto", opacity: "0.75", whiteSpace: "nowrap", overflow: "hidden",
                             textOverflow: "ellipsis"}, {className: "lumix-relight-status"});
    this.element.append(this.view, controls, this.status);
    // Typing in the editor must not reach the graph's shortcuts; dragging must not pan it.
    for (const type of ["keydown", "pointerdown", "mousedown", "wheel"]) {
      controls.addEventListener(type, (event) => event.stopPropagation());
    }
  }

  _backToggle() {
    const back = el("input", {}, {type: "checkbox", title: "Put the light behind the subject (back light)"});
    back.addEventListener("change", () => {
      this.gizmo.back = back.checked;
      const [x, y, z] = this.gizmo.direction ?? [0, 0, 1];
      this.setDirection([x, y, back.checked ? -Math.abs(z) : Math.abs(z)]);
    });
    const label = el("label", {display: "flex", gap: "4px", alignItems: "center", gridColumn: "1 / 4"});
    label.append(back, document.createTextNode("light from behind"));
    return label;
  }

  widgetNamed(name) {
    return this.node.widgets?.find((w) => w.name === name);
  }

  /** The node's values, as its widgets hold them (what the API prompt will carry). */
  values() {
    const values = {};
    for (const name of this.config.values) values[name] = this.widgetNamed(name)?.value;
    for (const name of this.config.values) {
      if (name !== "light_color") values[name] = Number(values[name]);
    }
    return values;
  }

  /** Write values into the widgets the way a user's edit does (the widget's callback rounds a
   * float to its precision), then draw what the widgets hold. */
  setValues(changes) {
    this.applying = true;   // the wrapped callbacks leave the redraw to the end: one per change set
    try {
      for (const [name, value] of Object.entries(changes)) {
        const widget = this.widgetNamed(name);
        if (!widget) continue;
        widget.value = value;
        widget.callback?.call(widget, widget.value, app.canvas, this.node, null, null);
      }
    } finally {
      this.applying = false;
    }
    this.node.setDirtyCanvas?.(true, true);
    this.syncControls();
    this.requestFrame();
  }

  setDirection([x, y, z]) {
    this.setValues({light_x: x, light_y: y, light_z: z});
  }

  /** Turn the environment by `degrees` from where the drag began, kept within -180..180. */
  turn(degrees) {
    const drag = this.gizmo.dragging;
    drag.rotation0 ??= this.values().rotation;
    const turned = drag.rotation0 + degrees;
    this.setValues({rotation: Math.round(10 * (turned - 360 * Math.round(turned / 360))) / 10});
  }

  _watchWidgets() {
    // A value typed or dragged on the node's own widgets redraws the preview too.
    for (const name of this.config.values) {
      const widget = this.widgetNamed(name);
      if (!widget) continue;
      const original = widget.callback;
      const editor = this;
      widget.callback = function (...args) {
        const result = original?.apply(this, args);
        if (!editor.applying) {
          editor.syncControls();
          editor.requestFrame();
        }
        return result;
      };
    }
  }

  /** The editor's controls show the widgets' values. */
  syncControls() {
    const values = this.values();
    for (const [name] of this.config.sliders) {
      const {input, readout} = this.inputs[name];
      if (document.activeElement !== input) input.value = String(values[name]);
      readout.textContent = Number.isFinite(values[name]) ? values[name].toFixed(name === "rotation" ? 0 : 2) : "?";
    }
    let light;
    if (this.config.environment) {
      // A grey ball (albedo 0.5) lit by the environment, as the preview lights the maps.
      const setup = this.sh9 ? lightSetup(values, {sh9: this.sh9}) : null;
      this.gizmo.shade = (x, y, z) => setup ? 0.5 * Math.max(...irradianceAt([x, y, z], setup)) * setup.gain : 0.5;
      this.gizmo.draw();
      light = `rotation ${values.rotation}°`;
    } else {
      const color = parseLightColor(values.light_color);
      if (color) this.colorInput.value = linearToHex(color);
      this.colorReadout.textContent = String(values.light_color ?? "");
      this.gizmo.set([values.light_x, values.light_y, values.light_z]);
      light = this.maps?.irradiance ? "irradiance input connected: the light is not used"
                                    : `light (${values.light_x}, ${values.light_y}, ${values.light_z})`;
    }
    const status = this.maps
      ? `${this.maps.albedo.width}x${this.maps.albedo.height} preview` +
        (this.entries?.[0]?.batch > 1 ? ` (image 1 of ${this.entries[0].batch})` : "") +
        ` · ${this.renderer?.kind ?? ""} · ${light}`
      : "no maps yet";
    this.status.textContent = status;
  }

  showMessage(text) {
    this.message.textContent = text ?? "";
    this.message.style.display = text ? "flex" : "none";
  }

  requestFrame() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.render();
    });
  }

  /** Draw now with the widgets' values; returns the setup drawn, or null. */
  render() {
    const values = this.values();
    this.lastKey = JSON.stringify(values);
    if (!this.maps || !this.renderer) return null;
    const hasIrradiance = !!this.maps.irradiance;
    const setup = lightSetup(values, {irradiance: hasIrradiance, sh9: this.sh9});
    this.gizmo.enabled = !hasIrradiance;
    if (setup.error) {
      this.showMessage(setup.message);
      return null;
    }
    this.renderer.render(setup);
    this.showMessage(null);
    return setup;
  }

  /** Redraw when a widget changed by other means (loading a workflow, an undo). */
  checkForChanges() {
    if (this.maps && JSON.stringify(this.values()) !== this.lastKey) {
      this.syncControls();
      this.requestFrame();
    }
  }

  /** (Re)create the renderer; forceCanvas2D (or window.LUMIX_RELIGHT_FORCE_2D) skips WebGL2. */
  useRenderer(forceCanvas2D = !!window.LUMIX_RELIGHT_FORCE_2D) {
    const old = this.renderer;
    this.renderer = createRenderer(forceCanvas2D);
    const canvas = this.renderer.canvas;
    Object.assign(canvas.style, {maxWidth: "100%", maxHeight: "100%", width: "100%", height: "100%",
                                 objectFit: "contain", display: "block"});
    canvas.className = "lumix-relight-canvas";
    // A browser keeps only so many WebGL contexts (about 16): one taken away is replaced by the 2D canvas.
    canvas.addEventListener("webglcontextlost", (event) => {
      event.preventDefault();
      if (!this.disposed && this.renderer?.canvas === canvas) setTimeout(() => this.useRenderer(true), 0);
    });
    if (old) {
      old.canvas.remove();
      releaseContext(old);
    }
    this.view.prepend(canvas);
    if (this.maps) {
      this.renderer.setMaps(this.maps);
      this.render();
    }
    this.syncControls();
  }

  /** Show the maps named by a run's UI output (entries of nodes/browser_maps.py); `sh9`: the
   * environment's SH coefficients (LumiX Relight Environment). */
  async load(entries, sh9 = null) {
    const token = ++this.loading;
    if (this.config.environment && !(Array.isArray(sh9) && sh9.length === 27)) entries = null;
    const named = Object.fromEntries((entries ?? []).map((entry) => [entry.map, entry]));
    if (!named.albedo || !named.normal) {
      this.maps = null;
      this.entries = null;
      this.showMessage(`${NO_MAPS} ${this.config.hint}`);
      this.syncControls();
      return false;
    }
    this.showMessage("Loading the maps…");
    try {
      const maps = {};
      for (const name of ["albedo", "normal", "irradiance"]) {
        if (named[name]) maps[name] = await fetchPixels(named[name]);
      }
      if (token !== this.loading) return false;   // a newer run's maps are on their way
      this.maps = maps;
      this.entries = entries;
      this.sh9 = sh9;
      if (!this.renderer) this.useRenderer();
      this.renderer.setMaps(maps);
      this.showMessage(null);
      this.syncControls();
      this.render();
      this._fitAspect();
      return true;
    } catch (error) {
      if (token !== this.loading) return false;
      this.maps = null;
      this.showMessage(`The preview maps of the last run could not be loaded (${error.message}); ` +
                       "ComfyUI empties its temp folder when it restarts. Run the graph once again.");
      return false;
    }
  }

  /** Make the preview area follow the maps' aspect when the node is still its default size. */
  _fitAspect() {
    const {width, height} = this.maps.albedo;
    const wanted = Math.round(this.node.size[0] * height / width) + MIN_HEIGHT - 120;
    if (this.node.size[1] < wanted) this.node.setSize?.([this.node.size[0], wanted]);
    this.node.setDirtyCanvas?.(true, true);
  }

  dispose() {
    this.disposed = true;
    this.loading++;
    if (this.renderer) releaseContext(this.renderer);
  }
}

app.registerExtension({
  name: "LumiX.RelightEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const config = EDITORS[nodeData?.name];
    if (!config) return;
    const proto = nodeType.prototype;
    const onNodeCreated = proto.onNodeCreated;
    proto.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      this.lumixRelightEditor = new RelightEditor(this, config);
      this.setSize([Math.max(this.size[0], 400), Math.max(this.size[1], this.computeSize()[1])]);
      return result;
    };
    const onExecuted = proto.onExecuted;
    proto.onExecuted = function (output) {
      const result = onExecuted?.apply(this, arguments);
      const entries = output?.[UI_KEY];
      if (entries && this.lumixRelightEditor) {
        this.properties ??= {};
        this.properties[MAPS_PROPERTY] = entries;
        const sh9 = output?.[SH9_UI_KEY]?.[0] ?? null;
        if (sh9) this.properties[SH9_PROPERTY] = sh9;
        this.lumixRelightEditor.load(entries, sh9);
      }
      return result;
    };
    const onConfigure = proto.onConfigure;
    proto.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      // A loaded workflow: show the maps of its last run if the server still has them.
      const editor = this.lumixRelightEditor;
      if (editor) {
        const entries = this.properties?.[MAPS_PROPERTY];
        if (entries) editor.load(entries, this.properties?.[SH9_PROPERTY] ?? null);
        else editor.syncControls();
      }
      return result;
    };
    const onDrawForeground = proto.onDrawForeground;
    proto.onDrawForeground = function () {
      const result = onDrawForeground?.apply(this, arguments);
      this.lumixRelightEditor?.checkForChanges();
      return result;
    };
    const onRemoved = proto.onRemoved;
    proto.onRemoved = function () {
      this.lumixRelightEditor?.dispose();
      return onRemoved?.apply(this, arguments);
    };
  },
});
