// What the maps viewer's hover readout shows for one pixel, from the maps' stored values
// (ComfyUI IMAGE floats, as the node outputs them). The same conventions as the pack's Python:
// sRGB decode = lumix_engine/intrinsics/color_space.py (IEC 61966-2-1 piecewise curve),
// normals = normals.py decode_normals (2 rgb - 1, renormalised, zero vector -> +Z, OpenGL axes),
// disparity = checks.py as_depth (the three channels averaged), distance = depth.py
// distance_from_disparity (the map stretched to [0, 1] by its own min and max, then
// 1 / (t + (1 - t) / depth_range): nearest point = 1, farthest = depth_range).
// tests/test_viewer_maps.py holds the float64 reference the browser test compares against.

export function srgbToLinear(value) {
  const v = Math.max(value, 0);
  return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
}

export function decodeNormal(rgb) {
  const vector = rgb.map((v) => 2 * v - 1);
  const length = Math.hypot(...vector);
  return length > 1e-8 ? vector.map((v) => v / length) : [0, 0, 1];
}

export function disparityOf(rgb) {
  return (rgb[0] + rgb[1] + rgb[2]) / 3;
}

// depth: {low, high, range} of the whole map (the node's UI entry); null for a flat map.
export function distanceOf(disparity, depth) {
  if (!depth || !(depth.high > depth.low)) return null;
  const t = Math.min(Math.max((disparity - depth.low) / (depth.high - depth.low), 0), 1);
  return 1 / (t + (1 - t) / depth.range);
}

// pixel: {map name: [r, g, b] stored}; returns the numbers the readout shows (full precision).
export function readoutValues(pixel, depth) {
  const values = {};
  for (const name of ["albedo", "irradiance", "color"]) {
    if (pixel[name]) values[`${name}_linear`] = pixel[name].map(srgbToLinear);
  }
  if (pixel.depth) {
    values.disparity = disparityOf(pixel.depth);
    values.distance = distanceOf(values.disparity, depth);
  }
  if (pixel.normal) values.normal = decodeNormal(pixel.normal);
  return values;
}

const fixed = (v, digits = 4) => (v < 0 ? "" : " ") + v.toFixed(digits);
const triple = (values, digits) => values.map((v) => fixed(v, digits)).join(" ");

// The readout's lines (plain text; units named).
export function readoutLines(values, depth) {
  const lines = [];
  if (values.albedo_linear) lines.push(`albedo, linear RGB     ${triple(values.albedo_linear)}`);
  if (values.irradiance_linear) lines.push(`irradiance, linear RGB ${triple(values.irradiance_linear)}`);
  if (values.color_linear) lines.push(`color, linear RGB      ${triple(values.color_linear)}`);
  if (values.disparity !== undefined) {
    lines.push(`disparity              ${fixed(values.disparity)}  (relative: near = white = high)`);
    lines.push(values.distance === null
      ? "distance               -  (a flat depth map has no distance)"
      : `distance               ${fixed(values.distance, 3)}  (relative: nearest point = 1, farthest = ${depth.range})`);
  }
  if (values.normal) lines.push(`normal (x right, y up, z to viewer) ${triple(values.normal)}`);
  return lines;
}
