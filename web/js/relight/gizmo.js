// The light on a ball. Directional light: the light's direction is a point on the sphere; the
// disc is the hemisphere facing the viewer (or, with `back`, the one behind the subject); drag
// on it, and a drag outside the disc slides along its rim (light from the side). Environment
// light: a sideways drag turns the environment about the vertical axis (one radius = 90
// degrees). Either way the ball is drawn lit as the editor says (`shade`).

const SIZE = 112;     // CSS pixels
const RADIUS = 0.88;  // of the half-size: room for the light's marker on the rim

export class SphereGizmo {
  /** onDirection([x, y, z]) gets a unit vector toward the light while dragging (directional);
   * onTurn(degrees) the turn since the drag began (environment). */
  constructor({onDirection = null, onTurn = null} = {}) {
    this.onDirection = onDirection;
    this.onTurn = onTurn;
    this.direction = null;
    this.back = false;
    this.enabled = true;
    // Brightness in [0, 1] of the ball's unit normal (x, y, z): Lambert of `direction` by default.
    this.shade = (x, y, z) => {
      const [lx, ly, lz] = this.direction ?? [0, 0, 1];
      return 0.12 + 0.88 * Math.max(0, x * lx + y * ly + z * lz);
    };
    this.canvas = document.createElement("canvas");
    this.canvas.width = this.canvas.height = SIZE * 2;   // sharp on high-DPI screens
    Object.assign(this.canvas.style, {width: `${SIZE}px`, height: `${SIZE}px`, cursor: onTurn ? "ew-resize" : "crosshair",
                                      touchAction: "none", flex: "0 0 auto"});
    this.canvas.title = onTurn ? "Drag sideways to turn the environment." : "Drag to move the light (direction toward the light).";
    this.dragging = null;
    this._listen();
    this.draw();
  }

  _radius(rect) {
    return 0.5 * Math.min(rect.width, rect.height) * RADIUS;
  }

  /** The unit vector for a pointer event on the canvas. */
  directionAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    const radius = this._radius(rect);
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

  _report(event) {
    if (this.onTurn) {
      const radius = this._radius(this.canvas.getBoundingClientRect());
      this.onTurn(90 * (event.clientX - this.dragging.x) / radius);
    } else {
      this.onDirection(this.directionAt(event));
    }
  }

  _listen() {
    this.canvas.addEventListener("pointerdown", (event) => {
      if (!this.enabled || event.button !== 0) return;
      event.preventDefault();
      event.stopPropagation();
      this.dragging = {x: event.clientX};
      this.canvas.setPointerCapture?.(event.pointerId);
      this._report(event);
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (!this.dragging) return;
      event.preventDefault();
      event.stopPropagation();
      this._report(event);
    });
    // The release is left to bubble: the frontend's change tracker records the edit on mouseup.
    const stop = (event) => {
      if (!this.dragging) return;
      this.dragging = null;
      this.canvas.releasePointerCapture?.(event.pointerId);
    };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);
    // The graph canvas must not pan or zoom while the light is dragged.
    for (const type of ["mousedown", "wheel"]) {
      this.canvas.addEventListener(type, (event) => event.stopPropagation());
    }
  }

  /** Show `direction` (any length; the node normalises it), or null for none, and redraw. */
  set(direction) {
    const length = direction ? Math.hypot(...direction) : 0;
    this.direction = direction ? (length > 0 ? direction.map((v) => v / length) : [0, 0, 0]) : null;
    this.draw();
  }

  draw() {
    const context = this.canvas.getContext("2d");
    const size = this.canvas.width;
    const image = context.createImageData(size, size);
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
        const shade = Math.min(1, Math.max(0, this.shade(x, y, z)));
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
    if (!this.direction) return;
    // The light: filled when it is on the hemisphere shown, hollow when on the other one.
    const [lx, ly, lz] = this.direction;
    const onShownSide = this.back ? lz <= 0 : lz >= 0;
    context.beginPath();
    context.arc(size / 2 + lx * radius, size / 2 - ly * radius, size * 0.045, 0, 2 * Math.PI);
    context.fillStyle = "#ffd34d";
    context.strokeStyle = "#222";
    if (onShownSide) context.fill();
    context.stroke();
  }
}
