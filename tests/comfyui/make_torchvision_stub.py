"""Install an import-only `torchvision` stub into a ComfyUI test venv.

Why: ComfyUI (0.3.64) imports torchvision at start-up, but the torchvision wheels on the
package registry do not load beside CPU torch 2.13, and a matching pair
(torch 2.14.1 + torchvision 0.29.1) makes a 6 GB venv. ComfyUI only *calls* torchvision
inside a few model families that the LumiX tests never load (Stable Cascade's
EfficientNet, Cosmos padding masks, ACE audio VAE), so an import-only stub is enough.
Any attribute use raises, naming this stub, so a test can never silently rely on it.

This is a test-environment fix, not part of the pack. Run it with the venv's python:

    $COMFYUI_PATH/venv/bin/python tests/comfyui/make_torchvision_stub.py

It writes into that interpreter's site-packages (or --site-packages DIR) and refuses to
overwrite a real torchvision install (one with package metadata).
"""
import argparse
import pathlib
import sysconfig

STUB_INIT = '''"""Import-only torchvision stub for ComfyUI tests (made by ComfyUI-LumiX's
tests/comfyui/make_torchvision_stub.py). Nothing here works; any use raises."""
__version__ = "0.0.0+lumix.stub"
LUMIX_TORCHVISION_STUB = True


def _missing(module_name):
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        # AttributeError so that hasattr() probes by other libraries stay quiet.
        raise AttributeError(
            f"{module_name}.{name} is unavailable: this venv has an import-only torchvision "
            "stub (ComfyUI-LumiX tests/comfyui/make_torchvision_stub.py). Install a "
            "torchvision that matches torch to use it."
        )
    return __getattr__


from . import transforms, models  # noqa: E402,F401
__getattr__ = _missing("torchvision")
'''

STUB_SUBMODULE = '''from torchvision import _missing
__getattr__ = _missing(__name__)
'''

STUB_TRANSFORMS = '''from torchvision import _missing
from . import functional  # noqa: F401
__getattr__ = _missing(__name__)
'''

STUB_FILES = {
    "__init__.py": STUB_INIT,
    "transforms/__init__.py": STUB_TRANSFORMS,
    "transforms/functional.py": STUB_SUBMODULE,
    "models/__init__.py": STUB_SUBMODULE,
}


def write_stub(site_packages: pathlib.Path) -> pathlib.Path:
    target = site_packages / "torchvision"
    real = list(site_packages.glob("torchvision-*.dist-info"))
    if real:
        raise SystemExit(f"a real torchvision is installed ({real[0].name}); uninstall it first")
    for relative, text in STUB_FILES.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-packages", type=pathlib.Path,
                        default=pathlib.Path(sysconfig.get_paths()["purelib"]))
    args = parser.parse_args()
    print(f"wrote torchvision stub to {write_stub(args.site_packages)}")


if __name__ == "__main__":
    main()
