"""Single-file text encoders load without symlinks or hard links (Windows), and never by unpickling.

On Windows without developer mode a symlink raises OSError, and a hard link does too when the
models sit on another drive than the temporary folder. Here every way Python makes a link
raises OSError as it would there, and the real loader must still load clip_l / t5xxl files
that hold the same weights as the diffusers folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lumix_engine.apps.loading import ModelFiles, load_text_encoders, quiet_libraries
from lumix_engine.errors import LumiXError
from lumix_engine.tiny_random import tiny_components, write_tiny_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    with quiet_libraries():
        return write_tiny_models(tmp_path_factory.mktemp("models"), seed=0)


def _no_links(monkeypatch) -> list[str]:
    tried: list[str] = []

    def refuse(name):
        def link(*args, **kwargs):
            tried.append(name)
            raise OSError(1314, "A required privilege is not held by the client", str(args[0]))
        return link

    monkeypatch.setattr(os, "symlink", refuse("os.symlink"))
    monkeypatch.setattr(os, "link", refuse("os.link"))
    monkeypatch.setattr(Path, "symlink_to", refuse("Path.symlink_to"))
    monkeypatch.setattr(Path, "hardlink_to", refuse("Path.hardlink_to"))
    return tried


def _write_single_files(folder: Path, suffix: str) -> tuple[Path, Path]:
    parts = tiny_components(seed=0)
    clip_file, t5_file = folder / f"clip_l{suffix}", folder / f"t5xxl_fp16{suffix}"
    # As published: clip_l with transformers' v4 key names (text_model.*); t5 without the
    # embedding copy that is tied to shared.weight.
    save_file({("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous()
               for k, v in parts.text_encoder.state_dict().items()}, str(clip_file))
    save_file({k: v.contiguous() for k, v in parts.text_encoder_2.state_dict().items()
               if k != "encoder.embed_tokens.weight"}, str(t5_file))
    return clip_file, t5_file


@pytest.mark.parametrize("suffix", [".safetensors", ".sft"])
def test_single_file_text_encoders_load_with_every_link_refused(models, tmp_path, monkeypatch, suffix):
    clip_file, t5_file = _write_single_files(tmp_path, suffix)
    files = ModelFiles(flux_dir=models["flux_dir"], lumix=models["lumix"], clip_l=clip_file, t5xxl=t5_file).check()
    tried = _no_links(monkeypatch)
    with quiet_libraries():
        clip, _, t5, _ = load_text_encoders(files, torch.float32)
        folder = ModelFiles(flux_dir=models["flux_dir"], lumix=models["lumix"]).check()
        reference_clip, _, reference_t5, _ = load_text_encoders(folder, torch.float32)
    assert tried == []   # not even attempted
    for loaded, reference in ((clip, reference_clip), (t5, reference_t5)):
        mine, theirs = loaded.state_dict(), reference.state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), type(loaded).__name__
    # The tie holds: the loaded T5's embedding is its shared table.
    assert t5.encoder.embed_tokens.weight.data_ptr() == t5.shared.weight.data_ptr()


def test_the_link_refusal_is_real(tmp_path, monkeypatch):
    """The monkeypatching above does stop links (so the test above could fail)."""
    _no_links(monkeypatch)
    (tmp_path / "a").write_bytes(b"x")
    for make in (lambda: os.symlink(tmp_path / "a", tmp_path / "b"), lambda: os.link(tmp_path / "a", tmp_path / "c"),
                 lambda: (tmp_path / "d").symlink_to(tmp_path / "a")):
        with pytest.raises(OSError):
            make()


def test_a_file_that_is_not_safetensors_is_refused_without_unpickling(models, tmp_path):
    pickled = tmp_path / "clip_l.pt"
    torch.save({"text_model.embeddings.position_ids": torch.arange(3)}, pickled)
    files = ModelFiles(flux_dir=models["flux_dir"], lumix=models["lumix"], clip_l=pickled).check()
    with quiet_libraries(), pytest.raises(LumiXError, match="clip_l.pt is not a safetensors file"):
        load_text_encoders(files, torch.float32)
