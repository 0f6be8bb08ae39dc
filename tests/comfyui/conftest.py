"""Real-ComfyUI test harness: active only when COMFYUI_PATH names a ComfyUI source tree.

Without it every test here is skipped with the reason shown by `pytest -ra`, so a clone
without ComfyUI stays green. `--lumix-require-comfyui` (what CI passes) turns every skip of
a test in this folder into a failure, so CI cannot go green on tests that never ran. See
tests/comfyui/README.md for the set-up.
"""
from __future__ import annotations

import logging
import pathlib

import pytest
from comfyui_graphs import TinyModelNames, write_tiny_models
from comfyui_harness import ComfyUIInstall, ComfyUIServer

HERE = pathlib.Path(__file__).resolve().parent
INSTALL, SKIP_REASON = ComfyUIInstall.from_environment()
REQUIRE_OPTION = "--lumix-require-comfyui"
log = logging.getLogger("lumix.tests.comfyui")


def pytest_addoption(parser):
    parser.addoption(REQUIRE_OPTION, action="store_true", default=False,
                     help="fail (instead of skip) every test under tests/comfyui that cannot "
                          "run: no ComfyUI tree, no browser, ...")


def _here(item) -> bool:
    return HERE in pathlib.Path(str(item.fspath)).resolve().parents


def pytest_collection_modifyitems(config, items):
    if INSTALL is not None:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _here(item):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _here(item) and item.config.getoption(REQUIRE_OPTION):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but {REQUIRE_OPTION} requires it to run: {reason}"


def pytest_report_header(config):
    if INSTALL is None:
        return f"ComfyUI: none ({SKIP_REASON})"
    return f"ComfyUI: {INSTALL.commit()} at {INSTALL.path}, Python {INSTALL.python}"


@pytest.fixture(scope="session")
def comfyui_install() -> ComfyUIInstall:
    if INSTALL is None:
        pytest.skip(SKIP_REASON)
    return INSTALL


@pytest.fixture(scope="session")
def comfyui_base_dir(comfyui_install, tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("comfyui_base")


@pytest.fixture(scope="session")
def tiny_models(comfyui_base_dir) -> TinyModelNames:
    return write_tiny_models(comfyui_base_dir / "models")


@pytest.fixture(scope="session")
def comfyui_server(comfyui_install, comfyui_base_dir, tiny_models):
    server = ComfyUIServer(comfyui_install, comfyui_base_dir)
    try:
        server.start()
        log.info("ComfyUI %s answered after %.1f s on %s", comfyui_install.commit(),
                 server.start_seconds, server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def comfyui(comfyui_server):
    """A client of the session's ComfyUI server (see comfyui_harness.ComfyUIClient)."""
    from comfyui_harness import ComfyUIClient
    return ComfyUIClient(comfyui_server)
