"""The relight maths, written once: lumix_engine/intrinsics/relight_spec.json is a table of
input pixels, light parameters and the outputs a plain float64 reference computes (below, in
`reference_pixel`, with Python floats and the math module only). The node's maths
(lumix_engine.intrinsics.relight, float32 as the node runs it) is tested against the table
here; the live editor's shader and its 2D-canvas fallback are tested against the same table
in a real browser (tests/comfyui/test_relight_editor.py).

Regenerate the table after a deliberate change of the maths:
    python -m tests.test_relight_spec --write
"""
from __future__ import annotations

import json
import math
import random
import re
import sys
from pathlib import Path

import pytest
import torch

from lumix_engine.errors import InputError
from lumix_engine.intrinsics import Light, relight
from lumix_engine.intrinsics.checks import parse_rgb
from lumix_engine.intrinsics.environment import procedural_sky, sh9_coefficients

SPEC_PATH = Path(__file__).resolve().parents[1] / "lumix_engine" / "intrinsics" / "relight_spec.json"
SPEC = json.loads(SPEC_PATH.read_text()) if SPEC_PATH.exists() else {}   # read once
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FLOAT32_TOLERANCE = 3e-5    # float32 node vs the float64 table, per channel (irradiance: times max(1, value))

RULES = [
    "Inputs are pixel values in [0, 1] as decoded from the images: albedo and irradiance sRGB-encoded, "
    "normal OpenGL-encoded (n + 1) / 2.",
    "srgb_to_linear(c) = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4, negative c taken as 0 "
    "(IEC 61966-2-1, piecewise).",
    "linear_to_srgb(x) = 12.92 x if x <= 0.0031308 else 1.055 x ** (1 / 2.4) - 0.055, negative x taken as 0, "
    "no clip above 1.",
    "normal: n = 2 * rgb - 1, divided by its length; a vector of length <= 1e-8 becomes (0, 0, 1), facing the "
    "viewer. No other threshold (an 8-bit map never holds an exact zero vector: 2 * code / 255 - 1 != 0).",
    "light_color: '#RRGGBB' (surrounding spaces allowed) is sRGB, decoded with srgb_to_linear(code / 255); "
    "otherwise three non-negative decimal numbers separated by commas and/or spaces, linear as given. "
    "Anything else is an error ('bad_color'): 'nan', 'inf', '1_0' and '#+f+f+f' included, on both sides.",
    "light direction (light_x, light_y, light_z) points TOWARD the light and is divided by its length; "
    "(0, 0, 0) is an error ('zero_light') unless an irradiance map is given.",
    "without an irradiance map: E = ambient + max(0, n . l) * light_color * intensity per channel (linear; "
    "ambient is grey). The node hands irradiance on sRGB-encoded: irradiance_used = linear_to_srgb(E), "
    "unclipped, and recomposition decodes it again (srgb_to_linear(irradiance_used) = E).",
    "with an irradiance map: irradiance_used is that map's pixel; E = srgb_to_linear(irradiance_used); the "
    "light, its colour, intensity and ambient are not used (and not checked).",
    "color = linear_to_srgb(clip(srgb_to_linear(albedo) * E * 2 ** exposure, 0, 1)).",
    "The browser shows color as an 8-bit canvas: round(255 * color).",
]


def srgb_to_linear(c: float) -> float:
    c = max(c, 0.0)
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def linear_to_srgb(x: float) -> float:
    x = max(x, 0.0)
    return x * 12.92 if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055


def reference_color(text: str) -> list[float] | None:
    """The spec's colour rule, written from its text (not parse_rgb): None when refused."""
    cleaned = text.strip()
    if len(cleaned) == 7 and cleaned[0] == "#" and all(ch in "0123456789abcdefABCDEF" for ch in cleaned[1:]):
        return [srgb_to_linear(int(cleaned[i:i + 2], 16) / 255) for i in (1, 3, 5)]
    parts = cleaned.replace(",", " ").split()
    if len(parts) != 3 or not all(DECIMAL.fullmatch(p) for p in parts):
        return None
    values = [float(p) for p in parts]
    return values if min(values) >= 0 else None


def reference_pixel(case: dict) -> dict:
    """The float64 reference of one table row: {"color", "irradiance_used"} or {"error"}."""
    albedo = [srgb_to_linear(c) for c in case["albedo"]]
    if case["irradiance"] is not None:
        used = list(case["irradiance"])
    else:
        color = reference_color(case["light_color"])
        if color is None:
            return {"error": "bad_color"}
        light = case["light"]
        length = math.sqrt(sum(v * v for v in light))
        if length == 0:
            return {"error": "zero_light"}
        raw = [2 * c - 1 for c in case["normal"]]
        n_length = math.sqrt(sum(v * v for v in raw))
        normal = [v / n_length for v in raw] if n_length > 1e-8 else [0.0, 0.0, 1.0]
        cosine = max(0.0, sum(n * v / length for n, v in zip(normal, light)))
        used = [linear_to_srgb(case["ambient"] + cosine * c * case["intensity"]) for c in color]
    gain = 2.0 ** case["exposure"]
    out = [linear_to_srgb(min(1.0, max(0.0, a * srgb_to_linear(e) * gain))) for a, e in zip(albedo, used)]
    return {"color": out, "irradiance_used": used}


# The environment light (LumiX Relight Environment): 9 SH coefficients of bands 0..2, filtered by
# the clamped cosine over pi (Ramamoorthi & Hanrahan 2001; lumix_engine.intrinsics.environment).
SH_CONSTANTS = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)
BAND_FILTER = (1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25)


def sh_basis(x: float, y: float, z: float) -> list[float]:
    c0, c1, c2, c3, c4 = SH_CONSTANTS
    return [c0, c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z, c3 * (3 * z * z - 1), c2 * x * z, c4 * (x * x - y * y)]


def reference_sh9(radiance: list) -> list[float]:
    """Project an equirectangular [H][W][3] linear radiance map (row 0 up, centre toward -Z) onto
    the 9 functions: 27 numbers, coefficient-major ([k][channel])."""
    height, width = len(radiance), len(radiance[0])
    out = [0.0] * 27
    for i in range(height):
        theta = (i + 0.5) * math.pi / height
        solid = (math.cos(i * math.pi / height) - math.cos((i + 1) * math.pi / height)) * 2 * math.pi / width
        for j in range(width):
            phi = (j + 0.5) * 2 * math.pi / width - math.pi
            basis = sh_basis(math.sin(theta) * math.sin(phi), math.cos(theta), -math.sin(theta) * math.cos(phi))
            for k in range(9):
                for c in range(3):
                    out[3 * k + c] += basis[k] * solid * radiance[i][j][c]
    return out


def reference_environment_pixel(case: dict, sh9: list[float]) -> dict:
    """Turning the environment by `rotation` degrees about +Y (+90: ahead, -Z, goes right, +X)
    lights a normal n as the unturned one lights n turned by -rotation."""
    raw = [2 * c - 1 for c in case["normal"]]
    n_length = math.sqrt(sum(v * v for v in raw))
    x, y, z = [v / n_length for v in raw] if n_length > 1e-8 else [0.0, 0.0, 1.0]
    r = math.radians(case["rotation"])
    basis = sh_basis(x * math.cos(r) + z * math.sin(r), y, -x * math.sin(r) + z * math.cos(r))
    linear = [case["intensity"] * sum(BAND_FILTER[k] * sh9[3 * k + c] * basis[k] for k in range(9)) for c in range(3)]
    used = [linear_to_srgb(e) for e in linear]
    gain = 2.0 ** case["exposure"]
    albedo = [srgb_to_linear(c) for c in case["albedo"]]
    out = [linear_to_srgb(min(1.0, max(0.0, a * srgb_to_linear(e) * gain))) for a, e in zip(albedo, used)]
    return {"color": out, "irradiance_used": used}


def _environments() -> dict:
    rng = random.Random(7)
    sky = procedural_sky(4).tolist()
    rough = [[[rng.uniform(0, 2) for _ in range(3)] for _ in range(8)] for _ in range(4)]
    return {name: {"radiance": radiance, "sh9": reference_sh9(radiance)}
            for name, radiance in (("sky", sky), ("random", rough))}


def _environment_cases(environments: dict) -> list[dict]:
    rng = random.Random(11)
    cases = [
        {"name": "sky, front normal, no rotation", "environment": "sky", "albedo": [0.8, 0.6, 0.4],
         "normal": [0.5, 0.5, 1.0], "rotation": 0.0, "intensity": 1.0, "exposure": 0.0},
        {"name": "sky turned 90 degrees: the sun moves right", "environment": "sky", "albedo": [0.8, 0.6, 0.4],
         "normal": [1.0, 0.5, 0.5], "rotation": 90.0, "intensity": 1.0, "exposure": 0.0},
        {"name": "sky turned -135 degrees, downward normal", "environment": "sky", "albedo": [0.5, 0.5, 0.5],
         "normal": [0.4, 0.05, 0.6], "rotation": -135.0, "intensity": 2.5, "exposure": -0.5},
        {"name": "overexposed environment clips", "environment": "random", "albedo": [0.9, 0.9, 0.9],
         "normal": [0.5, 0.9, 0.8], "rotation": 30.0, "intensity": 8.0, "exposure": 1.0},
        {"name": "exact grey normal lit as (0, 0, 1)", "environment": "random", "albedo": [0.7, 0.7, 0.7],
         "normal": [0.5, 0.5, 0.5], "rotation": 45.0, "intensity": 1.0, "exposure": 0.0},
    ]
    for k in range(15):
        direction = [rng.gauss(0, 1) for _ in range(3)]
        length = math.sqrt(sum(v * v for v in direction))
        cases.append({"name": f"environment random {k}", "environment": ("sky", "random")[k % 2],
                      "albedo": [round(rng.uniform(0.01, 1), 6) for _ in range(3)],
                      "normal": [round(255 * (v / length + 1) / 2) / 255 for v in direction],
                      "rotation": round(rng.uniform(-360, 360)), "intensity": round(rng.uniform(0.1, 4), 2),
                      "exposure": round(rng.uniform(-2, 2), 1)})
    return [{**case, **reference_environment_pixel(case, environments[case["environment"]]["sh9"])}
            for case in cases]


def _case(name, albedo, normal, light=(-0.5, 0.7, 0.5), light_color="#ffffff", intensity=0.8, ambient=0.15,
          exposure=0.0, irradiance=None) -> dict:
    return {"name": name, "albedo": list(albedo), "normal": list(normal), "irradiance": irradiance,
            "light": list(light), "light_color": light_color, "intensity": intensity, "ambient": ambient,
            "exposure": exposure}


def _random_cases(count: int, seed: int = 25) -> list[dict]:
    rng = random.Random(seed)
    colors = ["#ffffff", "#ffcc88", "#3080ff", "1.0, 0.8, 0.5", "0.2 0.4 1.5", "#7f7f7f"]
    cases = []
    for k in range(count):
        direction = [rng.gauss(0, 1) for _ in range(3)]
        length = math.sqrt(sum(v * v for v in direction))
        shrink = rng.uniform(0.9, 1.0) if k % 3 else 1.0       # VAE-decoded maps are not unit length
        normal = [round(255 * (shrink * v / length + 1) / 2) / 255 for v in direction]
        light = [round(rng.uniform(-1, 1), 2) for _ in range(3)]
        if not any(light):
            light[2] = 0.5
        cases.append(_case(f"random {k}", [round(rng.uniform(0.01, 1), 6) for _ in range(3)], normal, light,
                           colors[k % len(colors)], round(rng.uniform(0.05, 3), 2), round(rng.uniform(0.01, 0.5), 2),
                           round(rng.uniform(-2, 2), 1)))
    return cases


def build_cases() -> list[dict]:
    cases = [
        _case("defaults, flat surface facing the viewer", (0.8, 0.6, 0.4), (0.5, 0.5, 1.0)),
        _case("normal facing away from the light: ambient only", (0.8, 0.6, 0.4), (1.0, 0.5, 0.5), light=(-1, 0, 0)),
        _case("unnormalised light direction (0, 1, 1) = (0, 0.707, 0.707)", (0.5, 0.5, 0.5), (0.5, 0.9, 0.9),
              light=(0, 1, 1)),
        _case("exact grey normal (0.5, 0.5, 0.5) is a zero vector: lit as (0, 0, 1)", (0.7, 0.7, 0.7),
              (0.5, 0.5, 0.5), light=(0.3, 0.2, 0.9)),
        _case("8-bit grey normal 128/255 is (1, 1, 1) / sqrt 3, not zero", (0.7, 0.7, 0.7),
              (128 / 255, 128 / 255, 128 / 255), light=(0.3, 0.2, 0.9)),
        _case("albedo below the sRGB decode threshold", (0.03, 0.04045, 0.0), (0.5, 0.5, 1.0), intensity=2.0),
        _case("overexposed: clipped to 1", (0.9, 0.5, 0.2), (0.5, 0.5, 1.0), light=(0, 0, 1), intensity=3, exposure=2),
        _case("dark: irradiance below the encode threshold", (0.9, 0.9, 0.9), (0.5, 0.5, 1.0), light=(0, 0, -1),
              intensity=1, ambient=0.002),
        _case("negative exposure", (0.9, 0.5, 0.2), (0.3, 0.7, 0.8), exposure=-1.5),
        _case("intensity 0: ambient only", (0.4, 0.6, 0.8), (0.5, 0.5, 1.0), intensity=0.0, ambient=0.6),
        _case("back light (z < 0) grazes a rim normal", (0.6, 0.6, 0.6), (0.05, 0.5, 0.45), light=(-0.6, 0, -0.8),
              ambient=0.0, intensity=2.0),
        _case("linear light colour above 1", (0.5, 0.5, 0.5), (0.5, 0.8, 0.9), light_color="2, 1, 0.5", intensity=1.5),
        _case("hex colour with spaces around, upper case", (0.5, 0.5, 0.5), (0.5, 0.8, 0.9), light_color="  #FFCC88 "),
        _case("numbers separated by spaces only", (0.5, 0.5, 0.5), (0.5, 0.8, 0.9), light_color="0.25 .5 1e0"),
        _case("irradiance map replaces the light", (0.8, 0.6, 0.4), (0.5, 0.5, 1.0), irradiance=[0.2, 0.5, 0.9],
              exposure=0.5),
        _case("irradiance map: a zero light and a bad colour are not used", (0.8, 0.6, 0.4), (0.5, 0.5, 1.0),
              light=(0, 0, 0), light_color="red", irradiance=[0.03, 0.5, 1.0]),
        _case("zero light direction is an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light=(0, 0, 0)),
        _case("colour name is an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="red"),
        _case("two numbers are an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="1, 2"),
        _case("negative number is an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="-1, 0, 0"),
        _case("five hex digits are an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="#12345"),
        _case("nan is an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="nan, 1, 1"),
        _case("inf is an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="1 inf 1"),
        _case("underscores in numbers are an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="1_0, 1, 1"),
        _case("signs inside hex are an error", (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), light_color="#+f+f+f"),
    ]
    return cases + _random_cases(40)


ENVIRONMENT_RULES = [
    "LumiX Relight Environment: sh9 holds the environment's 9 SH coefficients at rotation 0, [k][channel], "
    "L_k = sum over pixels of radiance x Y_k(direction) x solid angle (row 0 up, the centre toward -Z, the "
    "quarter to its right toward +X; exact solid angles of the latitude bands).",
    "Y = (0.282095, 0.488603 y, 0.488603 z, 0.488603 x, 1.092548 x y, 1.092548 y z, 0.315392 (3 z^2 - 1), "
    "1.092548 x z, 0.546274 (x^2 - y^2)); filter per band over pi: 1, 2/3, 1/4.",
    "rotation r degrees turns the environment about +Y (+90 brings what was ahead to the right); the "
    "pixel's unit normal n is turned by -r instead: n' = (x cos r + z sin r, y, -x sin r + z cos r).",
    "E = intensity x sum_k filter_k L_k Y_k(n') per channel (linear, no ambient); irradiance_used = "
    "linear_to_srgb(E) (negative E taken as 0); color as above with exposure.",
]


def build_spec() -> dict:
    cases = [{**case, **reference_pixel(case)} for case in build_cases()]
    environments = _environments()
    return {"about": "The relight maths of LumiX Relight and LumiX Relight Environment "
                     "(lumix_engine.intrinsics.relight) and of their live editor (web/js/relight/maths.js), as "
                     "tables computed by the float64 reference in tests/test_relight_spec.py. Both "
                     "implementations are tested against them.",
            "rules": RULES, "environment_rules": ENVIRONMENT_RULES, "browser_tolerance_8bit": 1, "cases": cases,
            "environments": environments, "environment_cases": _environment_cases(environments)}


@pytest.fixture(scope="module")
def spec() -> dict:
    return SPEC


def test_the_table_is_what_the_reference_computes(spec):
    assert spec == json.loads(json.dumps(build_spec())), \
        "relight_spec.json is stale: regenerate it with python -m tests.test_relight_spec --write"


def test_the_table_covers_the_rules(spec):
    names = [case["name"] for case in spec["cases"]]
    assert len(names) == len(set(names)) and len(names) > 50
    errors = [case for case in spec["cases"] if "error" in case]
    assert {case["error"] for case in errors} == {"zero_light", "bad_color"}
    colors = [case["color"] for case in spec["cases"] if "color" in case]
    assert any(abs(c - 1) < 1e-9 for color in colors for c in color), "no clipped case"
    assert any(0 < c < 0.04045 for color in colors for c in color), "no case in the linear toe"
    assert max(max(case["irradiance_used"]) for case in spec["cases"] if "color" in case) > 1.0


def node_maths(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """What LumiX Relight computes for one pixel: the same calls as its execute(), float32."""
    pixel = lambda values: torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, 3)  # noqa: E731
    light = Light("directional", tuple(case["light"]), parse_rgb(case["light_color"]), case["intensity"]) \
        if case["irradiance"] is None else Light("directional", tuple(case["light"]))
    irradiance = None if case["irradiance"] is None else pixel(case["irradiance"])
    return relight(pixel(case["albedo"]), pixel(case["normal"]), [light], ambient=(case["ambient"],) * 3,
                   irradiance=irradiance, exposure=case["exposure"])


def case_ids(case: dict) -> str:
    return case["name"]


SPEC_CASES = SPEC.get("cases", [])
SPEC_CASES_ENVIRONMENTS = SPEC.get("environments", {})


@pytest.mark.parametrize("case", [c for c in SPEC_CASES if "color" in c], ids=case_ids)
def test_the_node_maths_matches_the_table(case):
    color, used = node_maths(case)
    assert color.dtype == torch.float32
    assert torch.allclose(color.reshape(3).double(), torch.tensor(case["color"], dtype=torch.float64),
                          atol=FLOAT32_TOLERANCE, rtol=0)
    expected_used = torch.tensor(case["irradiance_used"], dtype=torch.float64)
    assert ((used.reshape(3).double() - expected_used).abs() <= FLOAT32_TOLERANCE * expected_used.clamp_min(1)).all()


@pytest.mark.parametrize("case", [c for c in SPEC_CASES if "error" in c], ids=case_ids)
def test_the_node_refuses_what_the_table_refuses(case):
    with pytest.raises(InputError, match="light direction is \\(0, 0, 0\\)|colour .* is not understood"):
        node_maths(case)


@pytest.mark.parametrize("case", SPEC.get("environment_cases", []), ids=case_ids)
def test_the_environment_node_maths_matches_the_table(case):
    """What LumiX Relight Environment computes (it projects the map at the rotation asked for; the
    table turns the normal instead: the same up to the SH constants' six digits)."""
    radiance = torch.tensor(SPEC_CASES_ENVIRONMENTS[case["environment"]]["radiance"], dtype=torch.float32)
    pixel = lambda values: torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, 3)  # noqa: E731
    color, used = relight(pixel(case["albedo"]), pixel(case["normal"]), (), ambient=(0.0, 0.0, 0.0),
                          exposure=case["exposure"], environment=radiance, rotation=case["rotation"],
                          environment_intensity=case["intensity"])
    assert torch.allclose(color.reshape(3).double(), torch.tensor(case["color"], dtype=torch.float64),
                          atol=FLOAT32_TOLERANCE, rtol=0)
    expected_used = torch.tensor(case["irradiance_used"], dtype=torch.float64)
    assert ((used.reshape(3).double() - expected_used).abs() <= FLOAT32_TOLERANCE * expected_used.clamp_min(1)).all()


def test_the_environment_coefficients_are_the_engines(spec):
    for environment in spec["environments"].values():
        engine = sh9_coefficients(torch.tensor(environment["radiance"], dtype=torch.float32), 0.0)
        assert torch.allclose(engine.flatten(), torch.tensor(environment["sh9"], dtype=torch.float64), atol=1e-12)


def test_a_wrong_table_fails(spec):
    """The comparison can fail: one channel moved by 1/255 is caught."""
    case = next(c for c in spec["cases"] if "color" in c and 0.1 < c["color"][0] < 0.9)
    color, _ = node_maths(case)
    moved = torch.tensor(case["color"], dtype=torch.float64) + torch.tensor([1 / 255, 0, 0], dtype=torch.float64)
    assert not torch.allclose(color.reshape(3).double(), moved, atol=FLOAT32_TOLERANCE, rtol=0)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_relight_spec --write")
    SPEC_PATH.write_text(json.dumps(build_spec(), indent=1) + "\n")
    print(f"wrote {SPEC_PATH}")
