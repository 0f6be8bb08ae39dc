"""The GLB as a glTF viewer sees it: the Khronos glTF validator finds no error and no generated
tangent space, and the glTF 2.0 spec's shading-normal maths (per-triangle interpolation of the
file's NORMAL, TANGENT and bitangent, then normalize(TBN * texel)) gives back the LumiX normal
at every texel a triangle covers. The file is parsed here from its bytes, not through the
writer's code."""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumix_engine.formats.mesh import write_glb
from lumix_engine.intrinsics import render_scene
from lumix_engine.intrinsics.normals import unit_normals

COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
DTYPES = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and total == len(data)
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    document = json.loads(data[20:20 + json_length])
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\x00"
    return document, data[28 + json_length:28 + json_length + bin_length]


def accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    spec = document["accessors"][index]
    view = document["bufferViews"][spec["bufferView"]]
    start = view.get("byteOffset", 0) + spec.get("byteOffset", 0)
    width = COMPONENTS[spec["type"]]
    values = np.frombuffer(binary, DTYPES[spec["componentType"]], spec["count"] * width, start)
    return values.reshape(spec["count"], width).astype(np.float64)


def viewer_normals(glb: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Shading normal per covered texel centre [K, 3] and the texels' (row, col) [K, 2]."""
    document, binary = parse_glb(glb)
    [primitive] = document["meshes"][0]["primitives"]
    attributes = primitive["attributes"]
    normal = accessor(document, binary, attributes["NORMAL"])
    tangent = accessor(document, binary, attributes["TANGENT"])
    uv = accessor(document, binary, attributes["TEXCOORD_0"])
    faces = accessor(document, binary, primitive["indices"]).astype(np.int64).reshape(-1, 3)
    material = document["materials"][primitive["material"]]
    image = document["images"][document["textures"][material["normalTexture"]["index"]]["source"]]
    view = document["bufferViews"][image["bufferView"]]
    png = binary[view.get("byteOffset", 0):view.get("byteOffset", 0) + view["byteLength"]]
    texture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255 * 2 - 1
    height, width = texture.shape[:2]
    bitangent = np.cross(normal, tangent[:, :3]) * tangent[:, 3:]           # per vertex, as the spec says
    shading, where = [], []
    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    low = np.floor(np.minimum(np.minimum(a, b), c) * (width, height) - 0.5).astype(int).clip(0)
    high = np.ceil(np.maximum(np.maximum(a, b), c) * (width, height) - 0.5).astype(int)
    for k in range(len(faces)):   # barycentric weights of the texel centres around this UV triangle
        rows, cols = np.meshgrid(np.arange(low[k, 1], min(high[k, 1], height - 1) + 1),
                                 np.arange(low[k, 0], min(high[k, 0], width - 1) + 1), indexing="ij")
        centre = np.stack([(cols + 0.5) / width, (rows + 0.5) / height], -1).reshape(-1, 2)   # glTF uv, v down
        m = np.stack([b[k] - a[k], c[k] - a[k]], 1)
        weights = np.linalg.solve(m, (centre - a[k]).T).T
        w = np.concatenate([1 - weights.sum(1, keepdims=True), weights], 1)
        inside = (w >= -1e-9).all(1)
        if not inside.any():
            continue
        w = w[inside]
        corners = faces[k]

        def interpolate(values):
            mixed = w @ values[corners]
            return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)

        frame = np.stack([interpolate(tangent[:, :3]), interpolate(bitangent), interpolate(normal)], -1)
        texel = texture[rows.reshape(-1)[inside], cols.reshape(-1)[inside]]
        lit = np.einsum("kij,kj->ki", frame, texel)
        shading.append(lit / np.linalg.norm(lit, axis=1, keepdims=True))
        where.append(np.stack([rows.reshape(-1)[inside], cols.reshape(-1)[inside]], 1))
    return np.concatenate(shading), np.concatenate(where)


@pytest.mark.parametrize("max_side", [12, 24, 96])
def test_viewer_shading_normals_are_the_lumix_normals(tmp_path, max_side):
    scene = render_scene(11, 96, 72)
    maps = scene.images()
    path = tmp_path / "scene.glb"
    write_glb(path, maps["depth"], maps["albedo"], maps["normal"], max_side=max_side, edge_threshold=1e9)
    shading, texels = viewer_normals(path.read_bytes())
    truth = unit_normals(maps["normal"].double(), "normal")[0].numpy()[texels[:, 0], texels[:, 1]]
    angle = np.degrees(np.arccos(np.clip((shading * truth).sum(1), -1, 1)))
    assert len(texels) > 0.8 * 96 * 72                      # the grid covers all but a half-cell border
    assert angle.max() < 2.0, (float(angle.max()), float(np.percentile(angle, 99)))   # 8-bit texels: ~0.5 deg


def _validator_script() -> Path | None:
    folder = os.environ.get("LUMIX_GLTF_VALIDATOR_DIR")
    candidates = [Path(folder)] if folder else []
    candidates.append(Path.home() / ".cache" / "lumix-ci" / "npm")
    for candidate in candidates:
        if (candidate / "node_modules" / "gltf-validator").is_dir():
            return candidate
    return None


def test_khronos_validator_finds_no_error_and_no_generated_tangent_space(tmp_path):
    folder = _validator_script()
    if folder is None or shutil.which("node") is None:
        if os.environ.get("LUMIX_REQUIRE_GLTF_VALIDATOR") == "1":
            pytest.fail("the Khronos glTF validator is required (LUMIX_REQUIRE_GLTF_VALIDATOR=1) but neither "
                        "LUMIX_GLTF_VALIDATOR_DIR nor ~/.cache/lumix-ci/npm holds node_modules/gltf-validator; "
                        "run `npm install --prefix DIR gltf-validator`")
        pytest.skip("the Khronos glTF validator (npm gltf-validator) is not installed")
    scene = render_scene(11, 64, 48)
    maps = scene.images()
    path = tmp_path / "scene.glb"
    write_glb(path, maps["depth"], maps["albedo"], maps["normal"], max_side=24)
    script = ("const v = require('gltf-validator'); const fs = require('fs');"
              "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])))"
              ".then(r => console.log(JSON.stringify(r))).catch(e => { console.error(e); process.exit(1); });")
    done = subprocess.run(["node", "-e", script, str(path)], cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": str(folder / "node_modules")})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    codes = [message["code"] for message in report["issues"]["messages"]]
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"]
    assert "MESH_PRIMITIVE_GENERATED_TANGENT_SPACE" not in codes, codes
    assert report["info"]["hasTextures"] if "hasTextures" in report["info"] else True
