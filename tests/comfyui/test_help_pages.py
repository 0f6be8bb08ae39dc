"""Help pages and template thumbnails as the real server serves them (no browser).

ComfyUI serves WEB_DIRECTORY at /extensions/<custom node folder>/, and the frontend's node
help panel fetches `docs/<node id>/<locale>.md`, then `docs/<node id>.md`, from there for a
node whose python_module is `custom_nodes.<folder>`. The template browser lists
`<folder>/workflows/*.json` from GET /workflow_templates and shows the same-name `.jpg` from
/api/workflow_templates/<folder>/. Here every registered LumiX node's page is fetched that
way and compared with the LIVE schema from /object_info: the page must name every input and
every output the server reports.
"""
from __future__ import annotations

import json
import pathlib
import re
import urllib.request

import pytest
from comfyui_harness import PACK_DIR_NAME

PREFIX = f"custom_nodes.{PACK_DIR_NAME}"
ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted(p.stem for p in (ROOT / "web" / "docs").glob("*.md"))
WORKFLOWS = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))


def fetch(server, path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(server.url + path, timeout=30) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


@pytest.fixture(scope="module")
def our_nodes(comfyui) -> dict[str, dict]:
    info = comfyui.object_info()
    nodes = {name: node for name, node in info.items() if node.get("python_module", "").startswith(PREFIX)}
    # Every registered node has a page, and every page is for a registered node.
    assert sorted(nodes) == PAGES
    return nodes


def test_every_registered_node_has_a_served_page_naming_its_live_inputs_and_outputs(comfyui_server, our_nodes):
    for node_id, node in sorted(our_nodes.items()):
        # The help panel's URL: the frontend takes the folder from python_module.
        folder = node["python_module"].split(".")[1]
        status, _, body = fetch(comfyui_server, f"/extensions/{folder}/docs/{node_id}.md")
        page = body.decode()
        assert status == 200 and page.startswith("# ")
        inputs = [*node["input"].get("required", {}), *node["input"].get("optional", {})]
        outputs = list(node["output_name"])
        missing = [name for name in inputs + outputs if f"`{name}`" not in page]
        assert not missing, f"{node_id}.md does not name {missing} (live inputs {inputs}, outputs {outputs})"
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):
            status, content_type, _ = fetch(comfyui_server, f"/extensions/{folder}/docs/{target}")
            assert status == 200 and content_type == "image/png", target


def test_template_browser_lists_our_workflows_with_thumbnails(comfyui_server):
    _, _, body = fetch(comfyui_server, "/workflow_templates")
    listed = json.loads(body)
    names = sorted(listed[PACK_DIR_NAME])
    assert names == WORKFLOWS
    for name in names:
        status, content_type, data = fetch(comfyui_server, f"/api/workflow_templates/{PACK_DIR_NAME}/{name}.jpg")
        assert status == 200 and content_type == "image/jpeg" and data[:3] == b"\xff\xd8\xff", name
