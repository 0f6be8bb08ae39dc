"""Run a real ComfyUI server for tests and talk to it over HTTP.

`ComfyUIServer` lays out a throw-away base directory (`--base-directory`: models,
custom_nodes, input, output, temp and user all live there, and it is the working
directory, so the ComfyUI tree is never written to and may be read-only), links this pack and the test shim into its custom_nodes/, starts
`main.py --cpu` on a free 127.0.0.1 port and waits for it. `ComfyUIClient` queues API
prompts and waits on /history with bounded timeouts. Nothing here imports ComfyUI: the
server runs in its own interpreter (COMFYUI_PYTHON).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

PACK_ROOT = pathlib.Path(__file__).resolve().parents[2]
PACK_DIR_NAME = "ComfyUI-LumiX"
SHIM_FILE = pathlib.Path(__file__).resolve().parent / "shim" / "lumix_test_shim.py"
HTTP_TIMEOUT_S = 30.0


class PromptRejected(Exception):
    """POST /prompt answered 400: the graph failed validation. `.body` has error, node_errors."""

    def __init__(self, body: dict):
        self.body = body
        super().__init__(json.dumps(body, indent=1)[:4000])


class WorkflowFailed(Exception):
    """The prompt ran and ended in execution_error or execution_interrupted."""

    def __init__(self, entry: dict):
        self.entry = entry
        self.kind, self.details = _failure(entry)
        message = self.details.get("exception_message", "") if self.details else ""
        super().__init__(f"{self.kind}: {self.details.get('exception_type', '')}: {message}"
                         f" (node {self.details.get('node_type')} #{self.details.get('node_id')})")


def _failure(entry: dict) -> tuple[str, dict]:
    for name, details in entry.get("status", {}).get("messages", []):
        if name in ("execution_error", "execution_interrupted"):
            return name, details
    return "unknown", {}


@dataclasses.dataclass(frozen=True)
class ComfyUIInstall:
    """A ComfyUI source tree (read-only is fine: nothing is written into it) and the Python
    that runs it (a venv anywhere)."""
    path: pathlib.Path
    python: pathlib.Path

    @classmethod
    def from_environment(cls) -> tuple["ComfyUIInstall | None", str]:
        """(install, "") when COMFYUI_PATH names a usable ComfyUI tree, else (None, why not)."""
        path = os.environ.get("COMFYUI_PATH")
        if not path:
            return None, ("COMFYUI_PATH is not set: the real-ComfyUI tests need a ComfyUI "
                          "source tree (see tests/comfyui/README.md)")
        path = pathlib.Path(path).expanduser().resolve()
        if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
            return None, f"COMFYUI_PATH={path} is not a ComfyUI source tree (no main.py / comfy/)"
        python = os.environ.get("COMFYUI_PYTHON")
        if python:
            python = pathlib.Path(python).expanduser()
        elif (path / "venv" / "bin" / "python").exists():
            python = path / "venv" / "bin" / "python"
        else:
            python = pathlib.Path(sys.executable)
        if not python.exists():
            return None, f"COMFYUI_PYTHON={python} does not exist"
        return cls(path, python), ""

    def version(self) -> str:
        """`__version__` of the tree's comfyui_version.py (read as text, not imported)."""
        try:
            text = (self.path / "comfyui_version.py").read_text()
        except OSError:
            return "unknown"
        match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
        return match.group(1) if match else "unknown"

    def commit(self) -> str:
        """"<version>" for a plain tree, "<version> (git <short commit>)" for a git checkout."""
        version = self.version()
        if not (self.path / ".git").exists():
            return version
        try:
            commit = subprocess.run(["git", "-C", str(self.path), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
        return f"{version} (git {commit})" if commit else version


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyUIServer:
    """One ComfyUI process on 127.0.0.1 with its own base directory."""

    def __init__(self, install: ComfyUIInstall, base_dir: pathlib.Path,
                 extra_args: list[str] | None = None):
        self.install = install
        self.base_dir = base_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base_dir / "comfyui.log"
        self.extra_args = list(extra_args or []) + shlex.split(os.environ.get("COMFYUI_EXTRA_ARGS", ""))
        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        for sub in ("models", "custom_nodes", "input", "output", "temp", "user"):
            (base_dir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def models_dir(self) -> pathlib.Path:
        return self.base_dir / "models"

    @property
    def output_dir(self) -> pathlib.Path:
        return self.base_dir / "output"

    @property
    def input_dir(self) -> pathlib.Path:
        return self.base_dir / "input"

    def link_custom_nodes(self):
        links = {PACK_DIR_NAME: PACK_ROOT, SHIM_FILE.name: SHIM_FILE}
        for name, target in links.items():
            link = self.base_dir / "custom_nodes" / name
            if not link.exists():
                link.symlink_to(target, target_is_directory=target.is_dir())

    def command(self) -> list[str]:
        return [str(self.install.python), str(self.install.path / "main.py"), "--cpu", "--listen", "127.0.0.1",
                "--port", str(self.port), "--base-directory", str(self.base_dir),
                "--database-url", "sqlite:///:memory:", "--disable-auto-launch",
                "--disable-api-nodes", *self.extra_args]

    def start(self, timeout_s: float = float(os.environ.get("COMFYUI_START_TIMEOUT", 120))):
        self.link_custom_nodes()
        log = open(self.log_path, "wb")
        started = time.monotonic()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Byte code goes to a cache outside the tree (kept between runs, so start-up stays fast).
        env.setdefault("PYTHONPYCACHEPREFIX", str(pathlib.Path(tempfile.gettempdir())
                                                  / "lumix-comfyui-pycache"))
        # The working directory is the base directory: newer ComfyUI writes
        # comfyui_detail.log into it, and the source tree may be read-only.
        self.process = subprocess.Popen(self.command(), cwd=self.base_dir, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
        log.close()
        client = ComfyUIClient(self)
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode} during "
                                   f"start-up; log tail:\n{self.log_tail()}")
            try:
                client.get_json("/system_stats", timeout=2)
                self.start_seconds = time.monotonic() - started
                return client
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout_s:.0f} s; log tail:\n"
                           f"{self.log_tail()}")

    def stop(self, timeout_s: float = 15):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]


class ComfyUIClient:
    def __init__(self, server: ComfyUIServer):
        self.server = server
        self.client_id = uuid.uuid4().hex

    def _request(self, method: str, path: str, body=None, timeout: float = HTTP_TIMEOUT_S):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def get_json(self, path: str, timeout: float = HTTP_TIMEOUT_S):
        return self._request("GET", path, timeout=timeout)

    def post_json(self, path: str, body, timeout: float = HTTP_TIMEOUT_S):
        return self._request("POST", path, body, timeout=timeout)

    def object_info(self, node_id: str | None = None) -> dict:
        return self.get_json("/object_info" + (f"/{node_id}" if node_id else ""))

    def queue_prompt(self, prompt: dict) -> str:
        """POST /prompt; returns the prompt id, or raises PromptRejected (validation)."""
        try:
            answer = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except urllib.error.HTTPError as error:
            if error.code == 400:
                raise PromptRejected(json.loads(error.read() or b"{}")) from None
            raise
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout_s: float = 300, poll_s: float = 0.2) -> dict:
        """The /history entry of a finished prompt (success or not); TimeoutError if none."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                return entry
            if self.server.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died; log tail:\n{self.server.log_tail()}")
            time.sleep(poll_s)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout_s:.0f} s; "
                           f"log tail:\n{self.server.log_tail()}")

    def run(self, prompt: dict, timeout_s: float = 300) -> dict:
        """Queue, wait, and return the history entry; WorkflowFailed unless it succeeded."""
        entry = self.wait(self.queue_prompt(prompt), timeout_s)
        if entry["status"].get("status_str") != "success":
            raise WorkflowFailed(entry)
        return entry

    def interrupt(self, prompt_id: str | None = None):
        self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def queue(self) -> dict:
        return self.get_json("/queue")

    def free(self, unload_models: bool = True):
        self.post_json("/free", {"unload_models": unload_models, "free_memory": True})

    def output_files(self, entry: dict, node_id: str | None = None) -> list[pathlib.Path]:
        """Files (images, latents, ...) that output nodes of a history entry wrote."""
        roots = {"output": self.server.output_dir, "temp": self.server.base_dir / "temp",
                 "input": self.server.input_dir}
        paths = []
        for output_node, outputs in entry.get("outputs", {}).items():
            if node_id is not None and output_node != str(node_id):
                continue
            for items in outputs.values():
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and "filename" in item:
                        root = roots[item.get("type", "output")]
                        paths.append(root / item.get("subfolder", "") / item["filename"])
        return paths
