// The relight maths of LumiX Relight, in the browser: the same rules as
// lumix_engine.intrinsics.relight, written down in lumix_engine/intrinsics/relight_spec.json
// (the table both sides are tested against). Plain ES module, no dependencies.

const DECODE_THRESHOLD = 0.04045;
const ENCODE_THRESHOLD = 0.0031308;
const ZERO_NORMAL = 1e-8;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const HEX = /^#[0-9a-fA-F]{6}$/;

export function srgbToLinear(c) {
  c = Math.max(c, 0);
  return c <= DECODE_THRESHOLD ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}

export function linearToSrgb(x) {
  x = Math.max(x, 0);
  return x <= ENCODE_THRESHOLD ? x * 12.92 : 1.055 * Math.pow(x, 1 / 2.4) - 0.055;
}

/** '#RRGGBB' (sRGB) or 'r, g, b' (linear, non-negative decimals) -> linear [r, g, b], or null. */
export function parseLightColor(text) {
  const cleaned = String(text ?? "").trim();
  if (HEX.test(cleaned)) {
    return [1, 3, 5].map((i) => srgbToLinear(parseInt(cleaned.slice(i, i + 2), 16) / 255));
  }
  const parts = cleaned.replace(/,/g, " ").split(/\s+/).filter((p) => p.length > 0);
  if (parts.length !== 3 || !parts.every((p) => DECIMAL.test(p))) return null;
  const values = parts.map(Number);
  return values.every((v) => Number.isFinite(v) && v >= 0) ? values : null;
}

/** A linear [r, g, b] as '#rrggbb' (for a colour picker; the nearest 8-bit sRGB colour). */
export function linearToHex(rgb) {
  const code = (v) => Math.round(255 * Math.min(1, linearToSrgb(v))).toString(16).padStart(2, "0");
  return "#" + rgb.map(code).join("");
}

/**
 * The node's widget values -> what the per-pixel maths needs, or {error} as the node would
 * refuse them. hasIrradiance: an irradiance map replaces the light (which is then unchecked).
 */
export function lightSetup(values, hasIrradiance) {
  const gain = Math.pow(2, values.exposure);
  if (hasIrradiance) return {useIrradiance: true, gain};
  const color = parseLightColor(values.light_color);
  if (color === null) {
    return {error: "bad_color", message: `light colour '${values.light_color}' is not understood; write '#RRGGBB' or 'r, g, b'.`};
  }
  const [x, y, z] = [values.light_x, values.light_y, values.light_z];
  const length = Math.hypot(x, y, z);
  if (!(length > 0)) {
    return {error: "zero_light", message: "the light direction is (0, 0, 0); drag the light on the sphere."};
  }
  return {
    useIrradiance: false, gain,
    direction: [x / length, y / length, z / length],
    radiance: color.map((c) => c * values.intensity),    // light colour x intensity, linear
    ambient: values.ambient,
  };
}

/** One pixel, in doubles: encoded albedo, normal, irradiance (or null) -> {color, irradianceUsed}. */
export function relightPixel(albedo, normal, irradiance, setup) {
  let used;
  if (setup.useIrradiance) {
    used = irradiance.slice(0, 3);
  } else {
    let n = normal.slice(0, 3).map((c) => 2 * c - 1);
    const length = Math.hypot(n[0], n[1], n[2]);
    n = length > ZERO_NORMAL ? n.map((v) => v / length) : [0, 0, 1];
    const d = setup.direction;
    const cosine = Math.max(0, n[0] * d[0] + n[1] * d[1] + n[2] * d[2]);
    used = setup.radiance.map((r) => linearToSrgb(setup.ambient + cosine * r));
  }
  const color = [0, 1, 2].map((c) =>
    linearToSrgb(Math.min(1, Math.max(0, srgbToLinear(albedo[c]) * srgbToLinear(used[c]) * setup.gain))));
  return {color, irradianceUsed: used};
}

// The same maths for the GPU. Inputs are textures of the encoded maps; the irradiance map (if
// any) replaces the light. highp everywhere: mediump would cost ~1/255 in the bright end.
export const VERTEX_SHADER = `#version 300 es
in vec2 corner;
void main() {
  gl_Position = vec4(corner, 0.0, 1.0);
}`;

export const FRAGMENT_SHADER = `#version 300 es
precision highp float;
out vec4 outColor;
uniform sampler2D albedoMap;
uniform sampler2D normalMap;
uniform sampler2D irradianceMap;
uniform bool useIrradiance;
uniform vec3 direction;     // unit, toward the light
uniform vec3 radiance;      // linear light colour x intensity
uniform float ambient;
uniform float gain;         // 2^exposure

vec3 srgbToLinear(vec3 c) {
  c = max(c, 0.0);
  return mix(pow((c + 0.055) / 1.055, vec3(2.4)), c / 12.92, vec3(lessThanEqual(c, vec3(${DECODE_THRESHOLD}))));
}
vec3 linearToSrgb(vec3 x) {
  x = max(x, 0.0);
  return mix(1.055 * pow(x, vec3(1.0 / 2.4)) - 0.055, x * 12.92, vec3(lessThanEqual(x, vec3(${ENCODE_THRESHOLD}))));
}
void main() {
  // One fragment per map pixel (the canvas is the maps' size); row 0 of the maps at the top.
  ivec2 size = textureSize(albedoMap, 0);
  ivec2 texel = ivec2(int(gl_FragCoord.x), size.y - 1 - int(gl_FragCoord.y));
  vec3 albedo = texelFetch(albedoMap, texel, 0).rgb;
  vec3 used;
  if (useIrradiance) {
    used = texelFetch(irradianceMap, texel, 0).rgb;
  } else {
    vec3 n = texelFetch(normalMap, texel, 0).rgb * 2.0 - 1.0;
    float len = length(n);
    n = len > ${ZERO_NORMAL.toExponential()} ? n / len : vec3(0.0, 0.0, 1.0);
    float cosine = max(dot(n, direction), 0.0);
    used = linearToSrgb(ambient + cosine * radiance);
  }
  vec3 color = clamp(srgbToLinear(albedo) * srgbToLinear(used) * gain, 0.0, 1.0);
  outColor = vec4(linearToSrgb(color), 1.0);
}`;
