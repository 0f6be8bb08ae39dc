"""Decompose a folder of photos through one or several ComfyUI servers in API mode, resumably.

    python -m tools.comfy_batch photos/ --out maps/ --server http://127.0.0.1:8188 --server http://gpu2:8188

For each photo: upload it (POST /upload/image, under a name made from its content hash, so a
re-upload is harmless), queue the API workflow (default workflows/api/lumix_image_to_maps.json)
with that image in its LoadImage node and a per-photo filename prefix in its save nodes
(POST /prompt), wait for it (GET /history/<id>), and fetch every saved image (GET /view).
The servers are the scale-out unit: one thread per server, each taking the next photo.

Same layout and the same resume rule as `python -m lumix_engine batch` (it uses the engine's
batch module for both): maps in a mirror of the input tree, `manifest.jsonl`, files written
under a temporary name and renamed, a photo skipped on a rerun only when its record says
done, its source is unchanged, the workflow is the same and its files are all there. A
photo the server cannot run is recorded as failed with the server's message; a server that
stops answering leaves the run to the others (the run stops when none is left).
"""
from __future__ import annotations

import argparse
import copy
import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

from lumix_engine.apps import batch
from lumix_engine.errors import InputError, LumiXError

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "api" / "lumix_image_to_maps.json"
SAVE_NODES = ("SaveImage", "LumiXSaveImage16")
EXIT_SOME_FAILED, EXIT_STOPPED = 4, 5


class ServerDown(Exception):
    """The server did not answer (connection refused, timeout, 5xx)."""


class Server:
    """The three endpoints of ComfyUI's HTTP API that a batch needs."""

    def __init__(self, url: str, timeout: float = 60.0, poll_s: float = 0.5) -> None:
        self.url, self.timeout, self.poll_s = url.rstrip("/"), timeout, poll_s
        self.client_id = uuid.uuid4().hex

    def _call(self, path: str, data: Optional[bytes] = None, headers: Optional[dict] = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            if exc.code >= 500:
                raise ServerDown(f"{self.url}{path}: HTTP {exc.code} {body[:300]}") from None
            raise LumiXError(f"{self.url}{path}: HTTP {exc.code}: {_server_message(body)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServerDown(f"{self.url}: {getattr(exc, 'reason', exc)}") from None

    def upload(self, name: str, data: bytes) -> str:
        boundary = uuid.uuid4().hex
        body = b"".join([
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n".encode(), data,
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue"
            f"\r\n--{boundary}--\r\n".encode()])
        answer = json.loads(self._call("/upload/image", body,
                                       {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def run(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """Queue a workflow and wait for it; returns its history entry (outputs, status)."""
        answer = json.loads(self._call("/prompt", json.dumps({"prompt": workflow, "client_id": self.client_id})
                                       .encode(), {"Content-Type": "application/json"}))
        prompt_id = answer["prompt_id"]
        while True:
            history = json.loads(self._call(f"/history/{prompt_id}"))
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed", entry.get("outputs") is not None) or (
                    entry and entry.get("status", {}).get("status_str") == "error"):
                entry["prompt_id"] = prompt_id
                return entry
            time.sleep(self.poll_s)

    def fetch(self, image: dict[str, str]) -> bytes:
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        return self._call(f"/view?{query}")


def _server_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500]
    error = data.get("error", data)
    text = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    for node, problem in (data.get("node_errors") or {}).items():
        text += f"; node {node}: " + "; ".join(e.get("message", str(e)) for e in problem.get("errors", []))
    return text


def prepare(workflow: dict[str, Any], image: str, prefix: str, prompt: Optional[str],
            seed: Optional[int]) -> dict[str, Any]:
    """The workflow for one photo: its image in the LoadImage node, `prefix/<map>` as every
    save node's filename prefix, and optionally the prompt and seed."""
    graph = copy.deepcopy(workflow)
    loaders = [node for node in graph.values() if node["class_type"] == "LoadImage"]
    if len(loaders) != 1:
        raise InputError(f"the workflow needs exactly one LoadImage node for the photo; it has {len(loaders)}")
    loaders[0]["inputs"]["image"] = image
    for node in graph.values():
        if node["class_type"] in SAVE_NODES:
            node["inputs"]["filename_prefix"] = f"{prefix}/{_map_name(node)}"
        if node["class_type"] == "LumiXSampler":
            if seed is not None:
                node["inputs"]["seed"] = seed
            positive = node["inputs"].get("positive")
            if prompt is not None and isinstance(positive, list):
                graph[positive[0]]["inputs"]["text"] = prompt
    return graph


def _map_name(node: dict[str, Any]) -> str:
    return str(node["inputs"].get("filename_prefix", "map")).rstrip("/").rsplit("/", 1)[-1]


def _outputs(graph: dict[str, Any], entry: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Save node outputs by map name (the last part of each save node's prefix)."""
    found = {}
    for node_id, output in (entry.get("outputs") or {}).items():
        node = graph.get(node_id)
        if node and node["class_type"] in SAVE_NODES and output.get("images"):
            found[_map_name(node)] = output["images"]
    return found


def _error_of(entry: dict[str, Any]) -> str:
    for kind, message in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{message.get('node_type', '')} (node {message.get('node_id')}): " \
                   f"{message.get('exception_message', '').strip()}"
    return "the server reports an error"


def decompose_on(server: Server, item: batch.Item, workflow: dict[str, Any], prompt: Optional[str],
                 seed: Optional[int]) -> dict[str, Any]:
    """One photo on one server -> {"files": {map: PNG bytes}, "source": what was sent} or {"error": message}.
    The workflow's own node (LumiXDecomposePhoto) decides the working size from the photo and
    returns the maps at the photo's size, as `decompose` and `batch` do."""
    data, source = batch.read_source(item.source)   # the record vouches for exactly these bytes
    digest = source["sha256"][:16]
    started = time.perf_counter()
    name = server.upload(f"lumix_batch_{digest}{item.source.suffix.lower()}", data)
    graph = prepare(workflow, name, f"LumiX/batch/{digest}", prompt, seed)
    entry = server.run(graph)
    if entry.get("status", {}).get("status_str") == "error":
        return {"error": _error_of(entry)}
    files = {}
    for map_name, images in _outputs(graph, entry).items():
        for k, image in enumerate(images):
            files[map_name if len(images) == 1 else f"{map_name}_{k}"] = server.fetch(image)
    if not files:
        return {"error": "the workflow saved no images"}
    return {"files": files, "prompt_id": entry["prompt_id"], "seconds": time.perf_counter() - started,
            "source": source}


def run(inputs: batch.Inputs, out: Path, servers: Sequence[Server], workflow: dict[str, Any],
        prompt: Optional[str] = None, seed: Optional[int] = None, verify: bool = False) -> batch.Summary:
    started = time.perf_counter()
    record = {"mode": "comfyui", "workflow": prepare(workflow, "<photo>", "<prefix>", prompt, seed)}
    key = batch.settings_key(record)
    with batch.exclusive(out):
        batch.remove_partials(out)
        manifest = batch.Manifest(out / batch.MANIFEST)
        manifest.repair()
        _, todo, _ = batch.sort_done(inputs, manifest, key, out, verify)
        work: queue.Queue = queue.Queue()
        for item in todo:
            work.put(item)
        results: queue.Queue = queue.Queue()
        down: list[str] = []

        finished = threading.Event()

        def serve(server: Server) -> None:
            while not finished.is_set():
                try:
                    item = work.get(timeout=0.1)
                except queue.Empty:
                    continue        # another server may still hand a photo back
                try:
                    result = decompose_on(server, item, workflow, prompt, seed)
                except ServerDown as exc:
                    work.put(item)          # another server takes it
                    down.append(str(exc))
                    results.put(None)
                    return
                except (LumiXError, OSError, KeyError, ValueError) as exc:
                    result = {"error": batch.error_message(exc)}
                results.put((item, server.url, result))

        threads = [threading.Thread(target=serve, args=(server,), daemon=True) for server in servers]
        for thread in threads:
            thread.start()
        failed, done, alive = {}, 0, len(threads)
        try:
            while alive and done + len(failed) < len(todo):
                message = results.get()
                if message is None:
                    alive -= 1
                    continue
                item, url, result = message
                if "error" in result:
                    manifest.append(batch.failed_record(item, result["error"], url))
                    failed[item.key] = result["error"]
                    continue
                batch.record_done(item, result["files"], out, manifest, record, key, result["source"], worker=url,
                                  prompt_id=result["prompt_id"], timings={"server_s": result["seconds"]})
                done += 1
        finally:
            finished.set()
        if done + len(failed) < len(todo):
            raise batch.BatchStopped(f"stopped: no server left ({'; '.join(down)}); finished images are recorded, "
                                     f"run the same command again to resume")
    return batch.Summary(len(inputs.items), len(inputs.items) - len(todo), done, failed,
                         time.perf_counter() - started, inputs.notes, out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.comfy_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="folder, glob pattern or list file of photos")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--server", action="append", required=True, help="a ComfyUI server URL (repeatable)")
    parser.add_argument("--workflow", default=str(WORKFLOW), help="API-format workflow with one LoadImage node")
    parser.add_argument("--prompt", help="replace the sampler's positive prompt text")
    parser.add_argument("--seed", type=int, help="replace the sampler's seed")
    parser.add_argument("--verify", action="store_true", help="re-hash sources and outputs on resume")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between /history polls")
    args = parser.parse_args(argv)
    try:
        workflow = json.loads(Path(args.workflow).read_text())
        inputs = batch.find_inputs(args.input, Path(args.out))
        summary = run(inputs, Path(args.out), [Server(url, poll_s=args.poll) for url in args.server], workflow,
                      args.prompt, args.seed, args.verify)
    except batch.BatchStopped as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except (LumiXError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line)
    return EXIT_SOME_FAILED if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
