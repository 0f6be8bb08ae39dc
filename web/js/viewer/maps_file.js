// One scene's maps as the node wrote them (nodes/viewer_maps.py): a raw float32 little-endian
// file [map][row][column][rgb] in ComfyUI's temp folder, fetched through /view.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class MissingMaps extends Error {}

function floats(buffer) {
  if (LITTLE_ENDIAN) return new Float32Array(buffer);
  const view = new DataView(buffer);
  const out = new Float32Array(buffer.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

// entry: one element of the node's UI output `lumix_maps`; viewUrl(params) -> the /view URL.
export async function loadScene(entry, viewUrl) {
  const params = new URLSearchParams({filename: entry.file.filename, subfolder: entry.file.subfolder ?? "",
                                      type: entry.file.type ?? "temp"});
  const response = await fetch(viewUrl(params));
  if (response.status === 404) throw new MissingMaps(entry.file.filename);
  if (!response.ok) throw new Error(`GET /view ${entry.file.filename}: HTTP ${response.status}`);
  const data = floats(await response.arrayBuffer());
  const {width, height} = entry;
  const plane = width * height * 3;
  if (data.length !== plane * entry.maps.length) {
    throw new Error(`${entry.file.filename}: ${data.length} floats, expected ${plane * entry.maps.length} ` +
                    `(${entry.maps.length} maps of ${width}x${height}x3)`);
  }
  const maps = {};
  entry.maps.forEach((name, index) => {
    maps[name] = data.subarray(index * plane, (index + 1) * plane);
  });
  return {entry, width, height, maps, images: Object.fromEntries(entry.maps.map((n) => [n, toCanvas(maps[n], width, height)]))};
}

// The stored values as 8-bit display pixels (what SaveImage would show, rounded).
function toCanvas(values, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let p = 0, q = 0; p < values.length; p += 3, q += 4) {
    for (let c = 0; c < 3; c++) image.data[q + c] = Math.round(Math.min(Math.max(values[p + c], 0), 1) * 255);
    image.data[q + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

// The stored [r, g, b] of every map at file pixel (x, y).
export function pixelOf(scene, x, y) {
  const offset = (y * scene.width + x) * 3;
  return Object.fromEntries(Object.entries(scene.maps).map(([name, values]) =>
    [name, [values[offset], values[offset + 1], values[offset + 2]]]));
}
