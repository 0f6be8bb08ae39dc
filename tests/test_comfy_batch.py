"""tools/comfy_batch.py against stand-in ComfyUI servers on loopback.

The stand-in speaks the four endpoints the client uses, as ComfyUI 0.3.64's server.py answers
them (/upload/image, /prompt, /history/<id> empty until done, /view), and "runs" a workflow
by checking its LoadImage image was uploaded and saving, for every save node, the photo
with its channels turned by the node's index; a photo Pillow cannot read fails the way
ComfyUI reports an execution error. It tests the client's protocol handling and its resume
rule, not LumiX (the real-server tests are in tests/comfyui/)."""
import email.parser
import io
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from lumix_engine.apps import batch
from tests.test_batch import photo_set, records, tree
from tools import comfy_batch


class StandIn(ThreadingHTTPServer):
    def __init__(self, down_after=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.uploads, self.files, self.history, self.polls = {}, {}, {}, {}
        self.prompts, self.down_after, self.lock, self.broken = 0, down_after, threading.Lock(), False
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def execute(self, prompt_id, graph):
        outputs, loaded = {}, None
        image = next(n for n in graph.values() if n["class_type"] == "LoadImage")["inputs"]["image"]
        try:
            loaded = np.asarray(Image.open(io.BytesIO(self.uploads[image])).convert("RGB"))
        except Exception as exc:
            self.history[prompt_id] = {"outputs": {}, "status": {"status_str": "error", "completed": False, "messages": [
                ["execution_error", {"node_id": "7", "node_type": "LoadImage", "exception_message": str(exc)}]]}}
            return
        for node_id, node in graph.items():
            if node["class_type"] in comfy_batch.SAVE_NODES:
                name = f"{node['inputs']['filename_prefix'].replace('/', '_')}_00001_.png"
                data = io.BytesIO()
                Image.fromarray(np.roll(loaded, int(node_id), axis=-1)).save(data, format="PNG")
                self.files[name] = data.getvalue()
                outputs[node_id] = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
        self.history[prompt_id] = {"outputs": outputs, "status": {"status_str": "success", "completed": True,
                                                                  "messages": []}}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, body, kind="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def down(self):
        """Down from the (down_after + 1)-th prompt on, for every request."""
        server = self.server
        if self.path == "/prompt" and server.down_after is not None and server.prompts >= server.down_after:
            server.broken = True
        return server.broken

    def do_POST(self):
        server, body = self.server, self.rfile.read(int(self.headers["Content-Length"]))
        if self.down():
            return self.answer(503, {"error": "stand-in is down"})
        if self.path == "/upload/image":
            message = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            parts = {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}
            name = parts["image"].get_filename()
            server.uploads[name] = parts["image"].get_payload(decode=True)
            return self.answer(200, {"name": name, "subfolder": "", "type": "input"})
        if self.path == "/prompt":
            graph = json.loads(body)["prompt"]
            image = next(n for n in graph.values() if n["class_type"] == "LoadImage")["inputs"]["image"]
            if image not in server.uploads:
                return self.answer(400, {"error": {"message": "Prompt outputs failed validation"}, "node_errors": {
                    "7": {"errors": [{"message": f"Invalid image file: {image}"}]}}})
            with server.lock:
                server.prompts += 1
                prompt_id = f"p{server.prompts}"
            server.execute(prompt_id, graph)
            return self.answer(200, {"prompt_id": prompt_id, "number": server.prompts, "node_errors": {}})
        self.answer(404, {"error": "not found"})

    def do_GET(self):
        server = self.server
        url = urllib.parse.urlparse(self.path)
        if self.down():
            return self.answer(503, {"error": "stand-in is down"})
        if url.path.startswith("/history/"):
            prompt_id = url.path.rsplit("/", 1)[-1]
            server.polls[prompt_id] = server.polls.get(prompt_id, 0) + 1
            if server.polls[prompt_id] == 1:        # still running on the first poll
                return self.answer(200, {})
            return self.answer(200, {prompt_id: server.history[prompt_id]})
        if url.path == "/view":
            name = urllib.parse.parse_qs(url.query)["filename"][0]
            return self.answer(200, server.files[name], "image/png")
        self.answer(404, {"error": "not found"})


@pytest.fixture
def servers():
    started = []

    def start(**kwargs):
        started.append(StandIn(**kwargs))
        return started[-1]
    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _argv(folder, out, *urls):
    return [str(folder), "--out", str(out), "--poll", "0.01", *[f"--server={url}" for url in urls]]


def test_two_servers_share_the_photos_and_the_manifest_records_them(servers, tmp_path, capsys):
    folder = photo_set(tmp_path / "photos")
    first, second = servers(), servers()
    assert comfy_batch.main(_argv(folder, tmp_path / "maps", first.url, second.url)) == comfy_batch.EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert "6 image(s): 5 decomposed now, 0 already done, 1 failed" in printed
    assert "LoadImage (node 7)" in printed and "b/notes.png" in printed
    assert first.prompts + second.prompts == 6 and first.prompts and second.prompts
    found = records(tmp_path / "maps")
    workflow = json.loads(comfy_batch.WORKFLOW.read_text())
    assert set(found["a/x.png"]["outputs"]) == {comfy_batch._map_name(node) for node in workflow.values()
                                                if node["class_type"] in comfy_batch.SAVE_NODES}
    assert {"albedo", "irradiance", "depth", "normal"} <= set(found["a/x.png"]["outputs"])
    assert found["a/x.png"]["prompt_id"] and found["b/x.png"]["status"] == "done"
    assert (tmp_path / "maps" / "b" / "deep" / "z" / "normal.png").is_file()

    assert comfy_batch.main(_argv(folder, tmp_path / "maps", first.url)) == comfy_batch.EXIT_SOME_FAILED
    assert "0 decomposed now, 5 already done, 1 failed" in capsys.readouterr().out


def test_a_server_going_down_stops_the_run_and_the_rerun_does_only_the_rest(servers, tmp_path, capsys):
    folder = photo_set(tmp_path / "photos")
    reference = tmp_path / "reference"
    comfy_batch.main(_argv(folder, reference, servers().url))
    flaky = servers(down_after=2)
    assert comfy_batch.main(_argv(folder, tmp_path / "maps", flaky.url)) == comfy_batch.EXIT_STOPPED
    assert "no server left" in capsys.readouterr().err
    assert sum(r["status"] == "done" for r in records(tmp_path / "maps").values()) == 2
    healthy = servers()
    comfy_batch.main(_argv(folder, tmp_path / "maps", flaky.url, healthy.url))
    assert healthy.prompts == 4   # the 3 photos left and the non-image, nothing done twice
    assert tree(tmp_path / "maps") == tree(reference)
    assert {k: r["status"] for k, r in records(tmp_path / "maps").items()} == {
        k: r["status"] for k, r in records(reference).items()}
    assert not [p for p in (tmp_path / "maps").rglob("*") if ".partial-" in p.name]
    assert batch.MANIFEST in {p.name for p in (tmp_path / "maps").iterdir()}
