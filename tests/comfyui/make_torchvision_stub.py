"""Install import-only `torchvision` and `torchaudio` stubs into a ComfyUI test venv.

Why: ComfyUI imports torchvision at start-up (0.3.64), and also `torchvision.ops`,
`torchvision.transforms.functional` and `torchaudio.functional` (0.29.0, through
comfy.model_base and its text encoders), but the torchvision / torchaudio wheels on the
package registry do not load beside CPU torch 2.13, and a matching set makes a venv of
several GB. ComfyUI only *calls* them inside model families and nodes that the LumiX tests
never use (SAM3 and RT-DETR detectors, BiRefNet, Stable Cascade, Cosmos, audio VAEs and
encoders), so names that exist but raise when called are enough to let it start.

Each stub module defines exactly the names listed in STUB_NAMES; calling one, or reading an
attribute of one, raises RuntimeError naming this stub, so a test can never silently rely
on it. Any other name is missing (AttributeError / ImportError), so a node that needs more
than these fails to import, as it would without the package. This is a test-environment
fix, not part of the pack. Run it with the venv's python:

    $COMFYUI_PYTHON tests/comfyui/make_torchvision_stub.py

It writes into that interpreter's site-packages (or --site-packages DIR) and refuses to
overwrite a real install (one with package metadata).
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import sysconfig

# Module -> the names ComfyUI imports from it at module level (0.3.64 and 0.29.0). The
# top-level package lists its submodules, which are imported by the stub's __init__.
STUB_NAMES: dict[str, tuple[str, ...]] = {
    "torchvision": ("ops", "transforms", "models", "io", "utils"),
    "torchvision.ops": ("roi_align", "deform_conv2d", "box_convert", "nms", "batched_nms",
                        "box_iou", "generalized_box_iou"),
    "torchvision.transforms": ("functional", "Compose", "Normalize", "Resize", "CenterCrop",
                               "ToTensor", "ToPILImage", "InterpolationMode"),
    "torchvision.transforms.functional": ("InterpolationMode", "resize", "normalize",
                                          "to_tensor", "to_pil_image", "center_crop", "pad",
                                          "crop", "gaussian_blur"),
    "torchvision.models": ("optical_flow",),
    "torchvision.models.optical_flow": ("raft_large", "Raft_Large_Weights"),
    "torchvision.io": ("read_image", "write_png", "decode_image"),
    "torchvision.utils": ("make_grid", "save_image"),
    "torchaudio": ("functional", "transforms", "load", "save", "info"),
    "torchaudio.functional": ("resample", "melscale_fbanks", "spectrogram"),
    "torchaudio.transforms": ("MelScale", "MelSpectrogram", "Spectrogram", "Resample",
                              "InverseMelScale", "GriffinLim"),
}

COMMON = '''"""Import-only stub made by ComfyUI-LumiX tests/comfyui/make_torchvision_stub.py.
Nothing here works: calling or using any name raises, naming this stub."""


def _unavailable(qualname):
    message = (f"{qualname} is unavailable: this venv has an import-only stub "
               "(ComfyUI-LumiX tests/comfyui/make_torchvision_stub.py). Install the real "
               "package, matching torch, to use it.")

    def refuse(*args, **kwargs):
        raise RuntimeError(message)

    class Meta(type):
        __call__ = refuse

        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            raise RuntimeError(message)

    module, _, name = qualname.rpartition(".")
    # A class, so that isinstance() checks answer False; calling it, subclassing it or
    # reading any attribute of it raises.
    return Meta(name, (), {"__module__": module, "__qualname__": name,
                           "__init_subclass__": classmethod(refuse)})


def _missing(module_name):
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        # AttributeError (ImportError for `from x import y`) so that hasattr() probes of
        # other libraries stay quiet and a module needing more fails at import.
        raise AttributeError(f"{module_name}.{name} is not provided by the import-only stub "
                             "(ComfyUI-LumiX tests/comfyui/make_torchvision_stub.py)")
    return __getattr__
'''

MODULE = '''"""Import-only stub (ComfyUI-LumiX tests/comfyui/make_torchvision_stub.py); any use raises."""
from {package}._lumix_stub import _missing, _unavailable
{imports}
LUMIX_IMPORT_STUB = True
{version}
__getattr__ = _missing(__name__)
{names}
'''

PACKAGES = ("torchvision", "torchaudio")


def module_text(module: str) -> str:
    package = module.split(".")[0]
    children = {m.rpartition(".")[2] for m in STUB_NAMES if m.rpartition(".")[0] == module}
    names = STUB_NAMES[module]
    return MODULE.format(
        package=package,
        imports="".join(f"from . import {child}  # noqa: E402,F401\n" for child in sorted(children)),
        version='__version__ = "0.0.0+lumix.stub"' if module == package else "",
        names="".join(f'{name} = _unavailable(__name__ + ".{name}")\n'
                      for name in names if name not in children))


def stub_files() -> dict[str, str]:
    """{relative path: text} for every stub module (packages as <name>/__init__.py)."""
    files = {f"{package}/_lumix_stub.py": COMMON for package in PACKAGES}
    for module in STUB_NAMES:
        parts = module.split(".")
        has_children = any(m.startswith(module + ".") for m in STUB_NAMES)
        path = "/".join(parts) + ("/__init__.py" if has_children or len(parts) == 1 else ".py")
        files[path] = module_text(module)
    return files


def write_stubs(site_packages: pathlib.Path) -> list[pathlib.Path]:
    for package in PACKAGES:
        real = list(site_packages.glob(f"{package}-*.dist-info"))
        if real:
            raise SystemExit(f"a real {package} is installed ({real[0].name}); uninstall it first")
        init = site_packages / package / "__init__.py"
        if init.is_file() and "make_torchvision_stub" in init.read_text():
            shutil.rmtree(site_packages / package)   # an older stub: rewrite it whole
    for relative, text in stub_files().items():
        path = site_packages / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return [site_packages / package for package in PACKAGES]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-packages", type=pathlib.Path,
                        default=pathlib.Path(sysconfig.get_paths()["purelib"]))
    args = parser.parse_args()
    for target in write_stubs(args.site_packages):
        print(f"wrote import-only stub {target}")


if __name__ == "__main__":
    main()
