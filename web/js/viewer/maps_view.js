// The maps viewer's DOM: a toolbar (scene, layout, A and B maps), one canvas with the maps side
// by side or two of them with an A/B wipe, and a hover readout. No ComfyUI imports: the
// extension (../lumix_maps_viewer.js) hands it the node's UI entries and a /view URL maker.

import {MissingMaps, loadScene, pixelOf} from "./maps_file.js";
import {readoutLines, readoutValues} from "./readout.js";

const GAP = 6;          // px between tiles
const LABEL = 16;       // px above each tile for its name
const NO_MAPS = "No maps yet: queue the graph and this node's maps appear here.";
const GONE = "The maps of the last run are no longer on the server (ComfyUI empties its temp folder " +
             "when it starts): queue again to see them.";

function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function options(select, values, labels = values) {
  select.replaceChildren(...values.map((value, i) => {
    const option = document.createElement("option");
    option.value = String(value);
    option.textContent = labels[i];
    return option;
  }));
}

export class MapsView {
  constructor(viewUrl) {
    this.viewUrl = viewUrl;
    this.entries = [];
    this.scene = null;          // the loaded scene (maps_file.loadScene)
    this.sceneIndex = 0;
    this.layout = "side";       // "side" | "wipe"
    this.mapA = "albedo";
    this.mapB = "irradiance";
    this.wipe = 0.5;            // wipe line, fraction of the image's width
    this.state = "empty";       // "empty" | "loading" | "ready" | "gone" | "error"
    this.tiles = [];            // [{name, x, y, w, h}] in canvas CSS px
    this.hover = null;          // {x, y, values} of the last readout
    this.loads = 0;
    this.cache = new Map();     // file name -> loaded scene, for the scene selector
    this.build();
    this.showMessage(NO_MAPS);
  }

  build() {
    const root = this.root = element("div", "lumix-maps-viewer");
    Object.assign(root.style, {display: "flex", flexDirection: "column", gap: "4px", width: "100%", height: "100%",
                               boxSizing: "border-box", font: "12px sans-serif", color: "var(--fg-color, #ddd)"});
    const bar = this.toolbar = element("div", "lumix-maps-toolbar", root);
    Object.assign(bar.style, {display: "flex", gap: "6px", alignItems: "center", flexWrap: "wrap"});
    const labelled = (text, className) => {
      const label = element("label", null, bar);
      label.textContent = text + " ";
      const select = element("select", className, label);
      select.addEventListener("pointerdown", (e) => e.stopPropagation());
      return [label, select];
    };
    [this.sceneLabel, this.sceneSelect] = labelled("scene", "lumix-maps-scene");
    [, this.layoutSelect] = labelled("view", "lumix-maps-layout");
    options(this.layoutSelect, ["side", "wipe"], ["side by side", "A/B wipe"]);
    [this.aLabel, this.aSelect] = labelled("A", "lumix-maps-a");
    [this.bLabel, this.bSelect] = labelled("B", "lumix-maps-b");
    this.sceneSelect.addEventListener("change", () => this.selectScene(Number(this.sceneSelect.value)));
    this.layoutSelect.addEventListener("change", () => this.setLayout(this.layoutSelect.value));
    this.aSelect.addEventListener("change", () => { this.mapA = this.aSelect.value; this.draw(); });
    this.bSelect.addEventListener("change", () => { this.mapB = this.bSelect.value; this.draw(); });

    this.canvas = element("canvas", "lumix-maps-canvas", root);
    Object.assign(this.canvas.style, {flex: "1 1 auto", minHeight: "0", width: "100%", display: "block",
                                      cursor: "crosshair", touchAction: "none"});
    this.message = element("div", "lumix-maps-message", root);
    Object.assign(this.message.style, {padding: "8px", opacity: "0.8"});
    this.readout = element("pre", "lumix-maps-readout", root);
    // A fixed height (8 lines): the canvas above must not move while the readout changes.
    Object.assign(this.readout.style, {margin: "0", height: "10em", flex: "0 0 auto", overflow: "hidden",
                                       font: "11px/1.25 monospace", whiteSpace: "pre"});

    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("pointerleave", () => this.clearReadout());
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    this.updateToolbar();
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.style.display = text ? "" : "none";
    this.canvas.style.display = text ? "none" : "block";
    this.readout.style.display = text ? "none" : "";
  }

  // entries: the node's UI output `lumix_maps` (one per scene), or null/[] for none.
  async setEntries(entries) {
    this.entries = Array.isArray(entries) ? entries : [];
    this.cache.clear();
    this.sceneIndex = 0;
    this.updateToolbar();
    if (!this.entries.length) {
      this.scene = null;
      this.state = "empty";
      this.showMessage(NO_MAPS);
      return;
    }
    await this.selectScene(0);
  }

  async selectScene(index) {
    const entry = this.entries[index];
    this.sceneIndex = index;
    this.state = "loading";
    const load = ++this.loads;
    try {
      const scene = this.cache.get(entry.file.filename) ?? await loadScene(entry, this.viewUrl);
      if (load !== this.loads) return;        // a newer run or scene won
      this.cache.set(entry.file.filename, scene);
      this.scene = scene;
      this.state = "ready";
      const names = entry.maps;
      if (!names.includes(this.mapA)) this.mapA = names[0];
      if (!names.includes(this.mapB)) this.mapB = names[Math.min(1, names.length - 1)];
      this.updateToolbar();
      this.showMessage("");
      this.clearReadout();
      this.draw();
    } catch (error) {
      if (load !== this.loads) return;
      this.scene = null;
      this.state = error instanceof MissingMaps ? "gone" : "error";
      this.showMessage(error instanceof MissingMaps ? GONE : `The maps could not be read: ${error.message}`);
    }
  }

  setLayout(layout) {
    this.layout = layout;
    this.updateToolbar();
    this.draw();
  }

  updateToolbar() {
    const scenes = this.entries.length;
    options(this.sceneSelect, [...Array(scenes).keys()], [...Array(scenes).keys()].map((i) => `${i + 1} of ${scenes}`));
    this.sceneSelect.value = String(this.sceneIndex);
    this.sceneLabel.style.display = scenes > 1 ? "" : "none";
    const names = this.entries[this.sceneIndex]?.maps ?? [];
    for (const select of [this.aSelect, this.bSelect]) options(select, names);
    this.aSelect.value = this.mapA;
    this.bSelect.value = this.mapB;
    this.layoutSelect.value = this.layout;
    const wipe = this.layout === "wipe" ? "" : "none";
    this.aLabel.style.display = wipe;
    this.bLabel.style.display = wipe;
    this.toolbar.style.display = names.length ? "flex" : "none";
  }

  // Tiles in canvas CSS px: the maps in a grid of as many columns as makes them largest (five
  // side by side for square maps, fewer for panoramas), or one tile for the wipe; aspect kept.
  layoutTiles(width, height) {
    const {width: w, height: h, entry} = this.scene;
    const names = this.layout === "wipe" ? ["wipe"] : entry.maps;
    const n = names.length;
    let best = null;
    for (let columns = n; columns >= 1; columns--) {
      const rows = Math.ceil(n / columns);
      const scale = Math.min((width - GAP * (columns - 1)) / (columns * w),
                             (height - rows * LABEL - GAP * (rows - 1)) / (rows * h));
      if (!best || scale > best.scale * 1.001) best = {columns, rows, scale};
    }
    const {columns, scale} = best;
    const tileW = w * scale, tileH = h * scale;
    const left = (width - (columns * tileW + GAP * (columns - 1))) / 2;
    return names.map((name, i) => ({name, x: left + (i % columns) * (tileW + GAP),
                                    y: LABEL + Math.floor(i / columns) * (tileH + LABEL + GAP), w: tileW, h: tileH}));
  }

  draw() {
    if (this.state !== "ready" || !this.scene) return;
    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth, height = this.canvas.clientHeight;
    if (!width || !height) return;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    const context = this.canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    context.imageSmoothingEnabled = false;       // pixels as they are: the readout is per pixel
    context.font = "11px sans-serif";
    context.fillStyle = "#ccc";
    context.textBaseline = "bottom";
    this.tiles = this.layoutTiles(width, height);
    const {images, width: w, height: h} = this.scene;
    for (const tile of this.tiles) {
      if (tile.name !== "wipe") {
        context.drawImage(images[tile.name], tile.x, tile.y, tile.w, tile.h);
        context.fillText(tile.name, tile.x, tile.y - 2);
        continue;
      }
      // A left of the line, B right of it; the line sits on a pixel boundary of the map.
      const split = Math.round(this.wipe * w);
      if (split > 0) context.drawImage(images[this.mapA], 0, 0, split, h, tile.x, tile.y, tile.w * split / w, tile.h);
      if (split < w) {
        context.drawImage(images[this.mapB], split, 0, w - split, h, tile.x + tile.w * split / w, tile.y,
                          tile.w * (w - split) / w, tile.h);
      }
      const lineX = tile.x + tile.w * split / w;
      context.fillRect(lineX - 1, tile.y, 2, tile.h);
      context.fillText(`A: ${this.mapA}`, tile.x, tile.y - 2);
      const label = `B: ${this.mapB}`;
      context.fillText(label, tile.x + tile.w - context.measureText(label).width, tile.y - 2);
    }
    if (this.hover) this.drawMarker(context);
  }

  // A ring around the hovered pixel on every tile (the maps are pixel-aligned).
  drawMarker(context) {
    const {x, y} = this.hover;
    context.save();
    context.lineWidth = 1.5;
    for (const tile of this.tiles) {
      const size = tile.w / this.scene.width;
      const cx = tile.x + (x + 0.5) * size, cy = tile.y + (y + 0.5) * size;
      const radius = Math.max(size, 5);
      for (const [colour, r] of [["#000", radius + 1.5], ["#fff", radius]]) {
        context.strokeStyle = colour;
        context.beginPath();
        context.arc(cx, cy, r, 0, 2 * Math.PI);
        context.stroke();
      }
    }
    context.restore();
  }

  // The tile and file pixel under canvas CSS point (px, py), or null.
  hit(px, py) {
    for (const tile of this.tiles) {
      if (px < tile.x || py < tile.y || px >= tile.x + tile.w || py >= tile.y + tile.h) continue;
      const x = Math.min(Math.floor((px - tile.x) / tile.w * this.scene.width), this.scene.width - 1);
      const y = Math.min(Math.floor((py - tile.y) / tile.h * this.scene.height), this.scene.height - 1);
      return {tile, x, y};
    }
    return null;
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    // The node may be drawn zoomed: CSS px of the canvas = client px / its on-screen scale.
    return [(event.clientX - rect.left) * this.canvas.clientWidth / rect.width,
            (event.clientY - rect.top) * this.canvas.clientHeight / rect.height];
  }

  onPointerDown(event) {
    event.stopPropagation();
    if (this.layout !== "wipe" || this.state !== "ready") return;
    this.dragging = true;
    this.canvas.setPointerCapture?.(event.pointerId);
    this.moveWipe(event);
  }

  onPointerUp(event) {
    if (!this.dragging) return;
    this.dragging = false;
    this.canvas.releasePointerCapture?.(event.pointerId);
  }

  moveWipe(event) {
    const [px] = this.point(event);
    const tile = this.tiles[0];
    if (!tile) return;
    this.wipe = Math.min(Math.max((px - tile.x) / tile.w, 0), 1);
    this.draw();
  }

  onPointerMove(event) {
    if (this.state !== "ready") return;
    if (this.dragging) this.moveWipe(event);
    const found = this.hit(...this.point(event));
    if (!found) {
      this.clearReadout();
      return;
    }
    if (found.x === this.hover?.x && found.y === this.hover?.y) return;
    this.showReadout(found.x, found.y);
    this.draw();
  }

  showReadout(x, y) {
    const {entry} = this.scene;
    const values = readoutValues(pixelOf(this.scene, x, y), entry.depth);
    this.hover = {x, y, values};
    const stride = entry.stride;
    const where = stride > 1
      ? `pixel ${x * stride}, ${y * stride} of ${entry.source_width}x${entry.source_height} (every ${stride}th pixel shown)`
      : `pixel ${x}, ${y} of ${entry.source_width}x${entry.source_height}`;
    this.readout.textContent = [where, ...readoutLines(values, entry.depth)].join("\n");
    this.readout.dataset.pixel = JSON.stringify([x, y]);
    this.readout.dataset.values = JSON.stringify(values);
  }

  clearReadout() {
    const had = this.hover;
    this.hover = null;
    if (had) this.draw();
    this.readout.textContent = this.scene ? "Hover over a map to read its values." : "";
    delete this.readout.dataset.pixel;
    delete this.readout.dataset.values;
  }
}
