"""A LumiX checkpoint with holes (blocks without adapters) loads, runs QBA alone in those
blocks, and says so: which blocks, and that the query broadcast still applies there."""
from __future__ import annotations

import logging

import pytest
import torch

from lumix_engine.method.adapters import _ranges
from lumix_engine.method.patch import block_patches
from lumix_engine.tiny_random import random_adapters, random_bfl_flux
from tests.factories import TEST_FLUX, adapters_roundtrip, scene_inputs


@pytest.fixture()
def holed(tmp_path):
    # TEST_FLUX has double blocks 0-1 and single blocks 0-2; the file adapts double 1, single 0 and 2.
    return adapters_roundtrip(tmp_path, random_adapters(TEST_FLUX, double_ids=[1], single_ids=[0, 2]))


def test_holes_are_named_in_the_log_and_the_report(holed, caplog):
    model = random_bfl_flux(TEST_FLUX)
    with caplog.at_level(logging.WARNING, logger="lumix_engine"):
        patches = block_patches(model, holed)
    assert set(patches) == {("double_block", 0), ("double_block", 1), ("single_block", 0), ("single_block", 1),
                            ("single_block", 2)}   # QBA patches every block, holes included
    [record] = [r for r in caplog.records if r.name == "lumix_engine.method.patch"]
    for text in (record.getMessage(), holed.coverage_report(2, 3)):
        assert "no adapters for double_blocks 0 and single_blocks 1 (2 of 5 blocks)" in text
        assert "Query-Broadcast Attention still applies there" in text
    assert "QBA is off" in holed.coverage_report(2, 3, qba=False)
    assert holed.missing_blocks(2, 3) == {"double_blocks": [0], "single_blocks": [1]}


def test_a_complete_checkpoint_logs_nothing(tmp_path, caplog):
    adapters = adapters_roundtrip(tmp_path, random_adapters(TEST_FLUX))
    with caplog.at_level(logging.WARNING, logger="lumix_engine"):
        block_patches(random_bfl_flux(TEST_FLUX), adapters)
    assert not [r for r in caplog.records if r.name.startswith("lumix_engine")]
    assert "adapters on all 2 double and 3 single blocks" in adapters.coverage_report(2, 3)


def test_a_hole_runs_exactly_qba_without_a_delta(tmp_path, holed):
    model = random_bfl_flux(TEST_FLUX)
    full = adapters_roundtrip(tmp_path, random_adapters(TEST_FLUX, seed=5))
    img, txt, vec, pe = scene_inputs(TEST_FLUX)
    args = {"img": img, "txt": txt, "vec": vec, "pe": pe}
    with torch.no_grad():
        hole = block_patches(model, holed)[("double_block", 0)](args, {})
        qba_only = block_patches(model, full, strength=0.0)[("double_block", 0)](args, {})
        adapted = block_patches(model, holed)[("double_block", 1)](args, {})
        adapted_off = block_patches(model, holed, strength=0.0)[("double_block", 1)](args, {})
    assert torch.equal(hole["img"], qba_only["img"]) and torch.equal(hole["txt"], qba_only["txt"])
    assert not torch.allclose(adapted["img"], adapted_off["img"])   # where the file has adapters they act


def test_block_ranges_are_compact():
    assert _ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert _ranges([4]) == "4"
