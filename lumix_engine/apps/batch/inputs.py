"""Input discovery: a folder, a glob, a list file or one image -> the photos to decompose,
each with its manifest key and its own output folder (the input tree mirrored)."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LIST_EXTENSIONS = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class Item:
    """One photo: `key` is its path relative to the input root (the manifest's key, '/'
    separated) and `folder` the output folder for its maps, relative to --out."""
    source: Path
    key: str
    folder: str


@dataclass
class Inputs:
    items: list[Item]
    root: Path
    notes: list[str] = field(default_factory=list)


def _is_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


def find_inputs(spec: str | Path, out: Path, recursive: bool = True) -> Inputs:
    """A folder (recursive unless told otherwise), a glob (`photos/**/*.jpg`), a list file
    (.txt/.lst/.list: one path per line, relative to the list's folder, `#` comments), or one
    image -> the photos, sorted, each with a unique output folder."""
    text = str(spec)
    path = Path(text).expanduser()
    out = Path(out).expanduser().resolve()
    notes: list[str] = []
    if path.is_dir():
        root = path.resolve()
        _check_folders(root, out)
        files = _walk(root, recursive)
        what = f"folder {path}"
    elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        files, notes = _read_list(path)
        root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else path.parent.resolve()
        what = f"list file {path}"
    elif path.is_file():
        files, root, what = [path.resolve()], path.parent.resolve(), f"file {path}"
    elif _is_glob(text):
        parts = Path(text).parts
        fixed = next((i for i, part in enumerate(parts) if _is_glob(part)), len(parts))
        root = Path(*parts[:fixed]).expanduser().resolve() if fixed else Path.cwd()
        files = sorted(Path(f).resolve() for f in glob.glob(str(Path(text).expanduser()), recursive=True)
                       if not Path(f).is_dir())
        what = f"glob {text!r}"
    else:
        raise InputError(f"input {text!r} is not a folder, a list file ({', '.join(LIST_EXTENSIONS)}), an image "
                         f"or a glob pattern; check the path")
    inside_out = [f for f in files if _is_within(f, out)]
    if inside_out or _is_within(out, root):
        notes.append(f"the output folder {out} is inside the input {root}; files in it are not inputs")
        files = [f for f in files if not _is_within(f, out)]
    if not files:
        raise InputError(f"no images in the {what} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                         f"{'' if recursive else ', top level only: drop --no-recursive to look in subfolders'})")
    keys = [f.relative_to(root).as_posix() for f in files]
    return Inputs(_with_folders(files, keys, notes), root, notes)


def _check_folders(root: Path, out: Path) -> None:
    if out == root:
        raise InputError(f"the output folder is the input folder ({root}); choose another, e.g. {root}_lumix")
    if _is_within(root, out):
        raise InputError(f"the input folder {root} is inside the output folder {out}; the mirrored tree could "
                         f"write over the photos. Choose an output folder outside the input")


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(root: Path, recursive: bool) -> list[Path]:
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders.sort()
        if not recursive:
            subfolders.clear()
        found += [Path(folder) / name for name in names if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _read_list(path: Path) -> tuple[list[Path], list[str]]:
    files, seen, notes = [], set(), []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        file = Path(line).expanduser()
        file = (file if file.is_absolute() else path.parent / file).resolve()
        if file in seen:
            notes.append(f"{path}:{number}: {line} is listed twice; decomposed once")
            continue
        seen.add(file)
        files.append(file)
    return sorted(files), notes


def _with_folders(files: list[Path], keys: list[str], notes: list[str]) -> list[Item]:
    """Output folder = the key without its extension; photos whose names differ only in the
    extension (`a.jpg`, `a.png`) keep it (`a_jpg/`, `a_png/`) so that no two share a folder."""
    stems = [str(Path(key).with_suffix("")) for key in keys]
    clashing = {stem for stem in stems if stems.count(stem) > 1}
    folders = []
    for key, stem in zip(keys, stems):
        if stem in clashing:
            folders.append(stem + "_" + Path(key).suffix.lstrip(".").lower())
        else:
            folders.append(stem)
    if clashing:
        notes.append(f"{len(clashing)} name(s) differ only in the extension (e.g. {sorted(clashing)[0]}); their "
                     f"output folders keep the extension (name_jpg/, name_png/)")
    if len(set(folders)) != len(folders):
        repeated = sorted({f for f in folders if folders.count(f) > 1})
        raise InputError(f"these inputs would share an output folder: {repeated[:5]}; rename one of each")
    return [Item(file, key, folder) for file, key, folder in zip(files, keys, folders)]


def prompt_for(item: Item, prompt: str, captions: bool) -> str:
    """--prompt, or with --captions the text of `<photo name>.txt` beside the photo if present."""
    if captions:
        caption = item.source.with_suffix(".txt")
        if caption.is_file():
            return " ".join(caption.read_text(errors="replace").split())
    return prompt
