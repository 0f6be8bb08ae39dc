// The light's direction as a point on a sphere: the disc is the hemisphere facing the viewer
// (or, with `back`, the one behind the subject). Drag on it; a drag outside the disc slides
// along its rim (light from the side). Drawn as a Lambert-shaded ball lit by that direction.

const SIZE = 112;     // CSS pixels
const RADIUS = 0.88;  // of the half-size: room for the light's marker on the rim

export class SphereGizmo {
  /** onChange([x, y, z]) is called with a unit vector toward the light while dragging. */
  constructor(onChange) {
    this.onChange = onChange;
    this.direction = [0, 0, 1];
    this.back = false;
    this.enabled = true;
    this.canvas = document.createElement("canvas");
    this.canvas.width = this.canvas.height = SIZE * 2;   // sharp on high-DPI screens
    Object.assign(this.canvas.style, {width: `${SIZE}px`, height: `${SIZE}px`, cursor: "crosshair",
                                      touchAction: "none", flex: "0 0 auto"});
    this.canvas.title = "Drag to move the light (direction toward the light).";
    this.dragging = false;
    this._listen();
    this.draw();
  }

  /** The unit vector for a pointer event on the canvas. */
  directionAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    const radius = 0.5 * Math.min(rect.width, rect.height) * RADIUS;
    let x = (event.clientX - (rect.left + rect.width / 2)) / radius;
    let y = -(event.clientY - (rect.top + rect.height / 2)) / radius;
    const r = Math.hypot(x, y);
    if (r > 1) {
      x /= r;
      y /= r;
    }
    const z = Math.sqrt(Math.max(0, 1 - x * x - y * y));
    return [x, y, this.back ? -z : z];
  }

  _listen() {
    const move = (event) => {
      if (!this.dragging) return;
      event.preventDefault();
      event.stopPropagation();
      this.onChange(this.directionAt(event));
    };
    this.canvas.addEventListener("pointerdown", (event) => {
      if (!this.enabled || event.button !== 0) return;
      event.preventDefault();
      event.stopPropagation();
      this.dragging = true;
      this.canvas.setPointerCapture?.(event.pointerId);
      this.onChange(this.directionAt(event));
    });
    this.canvas.addEventListener("pointermove", move);
    // The release is left to bubble: the frontend's change tracker records the edit on mouseup.
    const stop = (event) => {
      if (!this.dragging) return;
      this.dragging = false;
      this.canvas.releasePointerCapture?.(event.pointerId);
    };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);
    // The graph canvas must not pan or zoom while the light is dragged.
    for (const type of ["mousedown", "wheel"]) {
      this.canvas.addEventListener(type, (event) => event.stopPropagation());
    }
  }

  /** Show `direction` (any length; the node normalises it) and redraw. */
  set(direction) {
    const length = Math.hypot(...direction);
    this.direction = length > 0 ? direction.map((v) => v / length) : [0, 0, 0];
    this.draw();
  }

  draw() {
    const context = this.canvas.getContext("2d");
    const size = this.canvas.width;
    const image = context.createImageData(size, size);
    const [lx, ly, lz] = this.direction;
    const radius = 0.5 * size * RADIUS;
    for (let row = 0; row < size; row++) {
      for (let col = 0; col < size; col++) {
        const x = (col + 0.5 - size / 2) / radius;
        const y = -(row + 0.5 - size / 2) / radius;
        const r2 = x * x + y * y;
        const k = 4 * (row * size + col);
        if (r2 > 1) continue;
        // The ball seen from the front (or from behind, mirrored, with `back`).
        const z = Math.sqrt(1 - r2) * (this.back ? -1 : 1);
        const shade = 0.12 + 0.88 * Math.max(0, x * lx + y * ly + z * lz);
        const value = Math.round(255 * Math.pow(shade, 1 / 2.2));
        image.data[k] = image.data[k + 1] = image.data[k + 2] = this.enabled ? value : Math.round(value * 0.45);
        image.data[k + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
    context.lineWidth = 2;
    context.strokeStyle = "#888";
    context.beginPath();
    context.arc(size / 2, size / 2, radius, 0, 2 * Math.PI);
    context.stroke();
    // The light: filled when it is on the hemisphere shown, hollow when on the other one.
    const onShownSide = this.back ? lz <= 0 : lz >= 0;
    context.beginPath();
    context.arc(size / 2 + lx * radius, size / 2 - ly * radius, size * 0.045, 0, 2 * Math.PI);
    context.fillStyle = "#ffd34d";
    context.strokeStyle = "#222";
    if (onShownSide) context.fill();
    context.stroke();
  }
}
