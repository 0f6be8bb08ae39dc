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

// The environment light (LumiX Relight Environment): 9 SH functions of bands 0..2 and the
// clamped-cosine filter per band over pi (lumix_engine.intrinsics.environment).
const SH = [0.282095, 0.488603, 1.092548, 0.315392, 0.546274];
const BAND_FILTER = [1, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25];
export const MODE = {directional: 0, irradiance: 1, environment: 2};

export function shBasis(x, y, z) {
  const [c0, c1, c2, c3, c4] = SH;
  return [c0, c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z, c3 * (3 * z * z - 1), c2 * x * z, c4 * (x * x - y * y)];
}

/**
 * The node's widget values -> what the per-pixel maths needs, or {error} as the node would
 * refuse them. inputs.irradiance: an irradiance map replaces the light (which is then
 * unchecked); inputs.sh9: the environment's 27 SH coefficients at rotation 0 (LumiX Relight
 * Environment: values are rotation, intensity, exposure).
 */
export function lightSetup(values, inputs = {}) {
  const gain = Math.pow(2, values.exposure);
  if (inputs.sh9) {
    // Turning the environment by r lights a normal as the unturned one lights the normal turned by -r.
    const r = values.rotation * Math.PI / 180;
    const sh = inputs.sh9.map((v, i) => v * BAND_FILTER[Math.floor(i / 3)] * values.intensity);
    return {mode: MODE.environment, gain, sh, turn: [Math.cos(r), Math.sin(r)]};
  }
  if (inputs.irradiance) return {mode: MODE.irradiance, gain};
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
    mode: MODE.directional, gain,
    direction: [x / length, y / length, z / length],
    radiance: color.map((c) => c * values.intensity),    // light colour x intensity, linear
    ambient: values.ambient,
  };
}

/** The decoded unit normal of an encoded pixel (a zero vector faces the viewer). */
export function decodeNormal(encoded) {
  const n = encoded.slice(0, 3).map((c) => 2 * c - 1);
  const length = Math.hypot(n[0], n[1], n[2]);
  return length > ZERO_NORMAL ? n.map((v) => v / length) : [0, 0, 1];
}

/** Linear irradiance [r, g, b] of a unit normal under the setup's light (directional or environment). */
export function irradianceAt(n, setup) {
  if (setup.mode === MODE.environment) {
    const [c, s] = setup.turn;
    const basis = shBasis(n[0] * c + n[2] * s, n[1], -n[0] * s + n[2] * c);
    return [0, 1, 2].map((channel) => basis.reduce((sum, y, k) => sum + y * setup.sh[3 * k + channel], 0));
  }
  const d = setup.direction;
  const cosine = Math.max(0, n[0] * d[0] + n[1] * d[1] + n[2] * d[2]);
  return setup.radiance.map((r) => setup.ambient + cosine * r);
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
uniform int mode;           // 0: directional light, 1: the irradiance map, 2: environment (SH)
uniform vec3 direction;     // unit, toward the light
uniform vec3 radiance;      // linear light colour x intensity
uniform float ambient;
uniform vec3 sh[9];         // filtered SH coefficients x intensity
uniform vec2 turn;          // cos, sin of the environment's rotation
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
  if (mode == 1) {
    used = texelFetch(irradianceMap, texel, 0).rgb;
  } else {
    vec3 n = texelFetch(normalMap, texel, 0).rgb * 2.0 - 1.0;
    float len = length(n);
    n = len > ${ZERO_NORMAL.toExponential()} ? n / len : vec3(0.0, 0.0, 1.0);
    if (mode == 2) {
      float x = n.x * turn.x + n.z * turn.y, y = n.y, z = -n.x * turn.y + n.z * turn.x;
      used = linearToSrgb(${SH[0]} * sh[0] + ${SH[1]} * (y * sh[1] + z * sh[2] + x * sh[3])
        + ${SH[2]} * (x * y * sh[4] + y * z * sh[5] + x * z * sh[7]) + ${SH[3]} * (3.0 * z * z - 1.0) * sh[6]
        + ${SH[4]} * (x * x - y * y) * sh[8]);
    } else {
      float cosine = max(dot(n, direction), 0.0);
      used = linearToSrgb(ambient + cosine * radiance);
    }
  }
  vec3 color = clamp(srgbToLinear(albedo) * srgbToLinear(used) * gain, 0.0, 1.0);
  outColor = vec4(linearToSrgb(color), 1.0);
}`;
