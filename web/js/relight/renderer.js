// Draw the relit image into a canvas the size of the maps: WebGL2 (a fragment shader, the
// maths of maths.js) or, where WebGL2 is missing, a 2D canvas filled pixel by pixel in JS.
// Maps: {albedo, normal, irradiance?}, each {width, height, pixels} with pixels RGBA, either
// Uint8ClampedArray / Uint8Array (decoded PNGs) or Float32Array in [0, 1] (the spec tests).
import { FRAGMENT_SHADER, MODE, VERTEX_SHADER, decodeNormal, irradianceAt, linearToSrgb, srgbToLinear } from "./maths.js";

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`LumiX relight shader: ${gl.getShaderInfoLog(shader)}`);
  }
  return shader;
}

export class WebGLRenderer {
  /** A renderer on `canvas`, or null where the browser has no WebGL2. */
  static create(canvas) {
    const gl = canvas.getContext("webgl2", {antialias: false, premultipliedAlpha: false,
                                            preserveDrawingBuffer: true, alpha: false});
    return gl ? new WebGLRenderer(canvas, gl) : null;
  }

  constructor(canvas, gl) {
    this.kind = "WebGL2";
    this.canvas = canvas;
    this.gl = gl;
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(`LumiX relight shader: ${gl.getProgramInfoLog(program)}`);
    }
    this.program = program;
    const corners = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, corners);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const location = gl.getAttribLocation(program, "corner");
    gl.enableVertexAttribArray(location);
    gl.vertexAttribPointer(location, 2, gl.FLOAT, false, 0, 0);
    this.uniforms = Object.fromEntries(
      ["albedoMap", "normalMap", "irradianceMap", "mode", "direction", "radiance", "ambient", "sh", "turn", "gain"]
        .map((name) => [name, gl.getUniformLocation(program, name)]));
    this.textures = {};
  }

  _texture(unit, map) {
    const gl = this.gl;
    const texture = this.textures[unit] ?? (this.textures[unit] = gl.createTexture());
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    const float = map.pixels instanceof Float32Array;
    gl.texImage2D(gl.TEXTURE_2D, 0, float ? gl.RGBA32F : gl.RGBA8, map.width, map.height, 0, gl.RGBA,
                  float ? gl.FLOAT : gl.UNSIGNED_BYTE,
                  float ? map.pixels : new Uint8Array(map.pixels.buffer, map.pixels.byteOffset, map.pixels.length));
    for (const [name, value] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST],
                                 [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) {
      gl.texParameteri(gl.TEXTURE_2D, name, value);
    }
  }

  setMaps(maps) {
    this.width = maps.albedo.width;
    this.height = maps.albedo.height;
    this.canvas.width = this.width;
    this.canvas.height = this.height;
    this._texture(0, maps.albedo);
    this._texture(1, maps.normal);
    // Without an irradiance map the sampler still needs a texture: a 1x1 black one.
    this._texture(2, maps.irradiance ?? {width: 1, height: 1, pixels: new Uint8Array([0, 0, 0, 255])});
  }

  render(setup) {
    const gl = this.gl;
    const u = this.uniforms;
    gl.viewport(0, 0, this.width, this.height);
    gl.useProgram(this.program);
    gl.bindVertexArray(this.vao);
    gl.uniform1i(u.albedoMap, 0);
    gl.uniform1i(u.normalMap, 1);
    gl.uniform1i(u.irradianceMap, 2);
    gl.uniform1i(u.mode, setup.mode);
    gl.uniform3fv(u.direction, setup.direction ?? [0, 0, 1]);
    gl.uniform3fv(u.radiance, setup.radiance ?? [0, 0, 0]);
    gl.uniform1f(u.ambient, setup.ambient ?? 0);
    gl.uniform3fv(u.sh, setup.sh ?? new Array(27).fill(0));
    gl.uniform2fv(u.turn, setup.turn ?? [1, 0]);
    gl.uniform1f(u.gain, setup.gain);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  /** The canvas's RGBA bytes, row 0 at the top. */
  readPixels() {
    const gl = this.gl;
    const {width, height} = this;
    const flipped = new Uint8Array(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, flipped);
    const rows = new Uint8Array(flipped.length);
    for (let y = 0; y < height; y++) {
      rows.set(flipped.subarray((height - 1 - y) * width * 4, (height - y) * width * 4), y * width * 4);
    }
    return rows;
  }

  /** Wait until the GPU has drawn (for frame timing). */
  finish() {
    const pixel = new Uint8Array(4);
    this.gl.readPixels(0, 0, 1, 1, this.gl.RGBA, this.gl.UNSIGNED_BYTE, pixel);
  }
}

export class CanvasRenderer {
  constructor(canvas) {
    this.kind = "2D canvas";
    this.canvas = canvas;
    this.context = canvas.getContext("2d", {willReadFrequently: true});
  }

  setMaps(maps) {
    const {width, height} = maps.albedo;
    this.width = width;
    this.height = height;
    this.canvas.width = width;
    this.canvas.height = height;
    const count = width * height;
    const value = (map, k, c) => map.pixels[4 * k + c] * (map.pixels instanceof Float32Array ? 1 : 1 / 255);
    // What does not depend on the light, once: linear albedo, unit normals, linear irradiance.
    this.albedo = new Float64Array(3 * count);
    this.normal = new Float64Array(3 * count);
    this.irradiance = maps.irradiance ? new Float64Array(3 * count) : null;
    for (let k = 0; k < count; k++) {
      const n = decodeNormal([0, 1, 2].map((c) => value(maps.normal, k, c)));
      for (let c = 0; c < 3; c++) {
        this.albedo[3 * k + c] = srgbToLinear(value(maps.albedo, k, c));
        this.normal[3 * k + c] = n[c];
        if (this.irradiance) this.irradiance[3 * k + c] = srgbToLinear(value(maps.irradiance, k, c));
      }
    }
    this.image = this.context.createImageData(width, height);
  }

  render(setup) {
    const out = this.image.data;
    const count = this.width * this.height;
    const {albedo, normal, irradiance} = this;
    const gain = setup.gain;
    const [dx, dy, dz] = setup.direction ?? [0, 0, 1];
    const [rr, rg, rb] = setup.radiance ?? [0, 0, 0];
    const ambient = setup.ambient ?? 0;
    const n = [0, 0, 0];
    for (let k = 0; k < count; k++) {
      const i = 3 * k;
      let er, eg, eb;
      if (setup.mode === MODE.irradiance) {
        er = irradiance[i]; eg = irradiance[i + 1]; eb = irradiance[i + 2];
      } else if (setup.mode === MODE.environment) {
        // The node clips negative SH irradiance at 0 when it encodes it.
        n[0] = normal[i]; n[1] = normal[i + 1]; n[2] = normal[i + 2];
        [er, eg, eb] = irradianceAt(n, setup).map((e) => Math.max(0, e));
      } else {
        // E = ambient + max(0, n . l) * radiance; the node's sRGB round trip of E is exact in doubles.
        const cosine = Math.max(0, normal[i] * dx + normal[i + 1] * dy + normal[i + 2] * dz);
        er = ambient + cosine * rr; eg = ambient + cosine * rg; eb = ambient + cosine * rb;
      }
      out[4 * k] = Math.round(255 * linearToSrgb(Math.min(1, albedo[i] * er * gain)));
      out[4 * k + 1] = Math.round(255 * linearToSrgb(Math.min(1, albedo[i + 1] * eg * gain)));
      out[4 * k + 2] = Math.round(255 * linearToSrgb(Math.min(1, albedo[i + 2] * eb * gain)));
      out[4 * k + 3] = 255;
    }
    this.context.putImageData(this.image, 0, 0);
  }

  readPixels() {
    return new Uint8Array(this.context.getImageData(0, 0, this.width, this.height).data.buffer);
  }

  finish() {}
}

/** A renderer on a new canvas (renderer.canvas): WebGL2 where the browser has it (unless
 * `forceCanvas2D`), else a 2D canvas (a canvas that once gave a WebGL context cannot give a 2D one). */
export function createRenderer(forceCanvas2D = false) {
  if (!forceCanvas2D) {
    try {
      const renderer = WebGLRenderer.create(document.createElement("canvas"));
      if (renderer) return renderer;
    } catch (error) {
      console.warn("LumiX relight editor: WebGL2 failed, drawing on a 2D canvas instead.", error);
    }
  }
  return new CanvasRenderer(document.createElement("canvas"));
}
