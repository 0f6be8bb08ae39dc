"""The docs name only what exists.

Read from README.md, docs/*.md and web/docs/*.md (the node help pages):
- every dotted module path (`lumix_engine.x.y`, `evaluation.x`, `tools.x`, `benchmarks.x`)
  and every `python -m MODULE`: engine and evaluation modules are imported (a trailing name
  must be an attribute); tools and benchmarks are scripts, so they are only found, never run;
- every `from lumix_engine... import a, b` in a code sample: the names exist;
- every `python -m lumix_engine SUB --flag` and `python -m lumix_engine.train SUB --flag`:
  `python -m MODULE SUB --help` is run once per subcommand (it loads no model) and must
  succeed and list each flag;
- every repository path in backticks (`lumix_engine/intrinsics/scores.py`) exists;
- every relative link and image (`[text](path#anchor)`, `<img src=...>`) resolves, anchors
  included.
A failure lists every reference that broke as `doc:line`, so a moved module is fixed in the
docs in one pass. The README also keeps CI's exact test command and stays a front door.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "web" / "docs").glob("*.md"))]
IMPORTED_PACKAGES = ("lumix_engine", "evaluation")   # libraries: importing them runs nothing
SCRIPT_PACKAGES = ("tools", "benchmarks")              # scripts: found, never imported
CLI_MODULES = ("lumix_engine", "lumix_engine.train")   # their --help is cheap and loads no model
REPO_FOLDERS = ("lumix_engine", "evaluation", "nodes", "tools", "benchmarks", "tests", "workflows", "docs", "web")
README_COMMANDS = ("pip install torch==2.13.0 -r requirements.txt && python -m lumix_engine demo",
                   "python -m pytest -q tests")     # .ci/run runs the second one
README_MAX_LINES = 170

_PACKAGES = "|".join(IMPORTED_PACKAGES + SCRIPT_PACKAGES)
MODULE_PATH = re.compile(rf"(?<![\w./-])(?:{_PACKAGES})(?:\.[A-Za-z_]\w*)+")
REPO_PATH = re.compile(rf"(?<![\w./-])(?:{'|'.join(REPO_FOLDERS)})/[\w./-]*\w")
FROM_IMPORT = re.compile(rf"\bfrom\s+((?:{_PACKAGES})(?:\.\w+)*)\s+import\s+([\w\s,()]+)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=\"([^\"]+)\"")
INLINE_CODE = re.compile(r"`([^`]+)`")
FLAG = re.compile(r"^--[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Snippet:
    """A piece of a doc: a line of a fenced code block (continuations joined), an inline code
    span, or a line of prose (inline code included)."""
    doc: str
    line: int
    text: str
    kind: str   # "block", "inline" or "prose"

    @property
    def code(self) -> bool:
        return self.kind != "prose"

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def snippets(doc: str, text: str) -> list[Snippet]:
    found, prose, fence, pending = [], [], None, None
    for number, line in enumerate(text.splitlines(), 1):
        marker = line.lstrip()[:3]
        if marker in ("```", "~~~") and (fence is None or marker == fence):
            fence = None if fence else marker
            prose.append("")
            continue
        if fence:
            prose.append("")
            start, joined = pending if pending else (number, "")
            joined += line.rstrip().removesuffix("\\") + " "
            pending = (start, joined) if line.rstrip().endswith("\\") else None
            if pending is None:
                found.append(Snippet(doc, start, joined.strip(), "block"))
        else:
            prose.append(line)
    body = "\n".join(prose)
    for match in INLINE_CODE.finditer(body):
        found.append(Snippet(doc, body.count("\n", 0, match.start()) + 1, " ".join(match.group(1).split()), "inline"))
    found += [Snippet(doc, number, line, "prose") for number, line in enumerate(prose, 1) if line.strip()]
    return found


def doc_snippets(path: Path) -> list[Snippet]:
    return snippets(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))


ALL_SNIPPETS = [s for path in DOCS for s in doc_snippets(path)]


# --- module paths -----------------------------------------------------------------------

def module_paths(found: list[Snippet]) -> list[tuple[Snippet, str]]:
    """Dotted paths in code and prose, and the module of every `python -m MODULE`."""
    refs = [(s, m.group(0)) for s in found if s.kind != "inline" for m in MODULE_PATH.finditer(s.text)]
    refs += [(s, command[2]) for s in found if s.code for command in commands(s.text)]
    return refs


@functools.lru_cache(maxsize=None)
def module_problem(dotted: str) -> str | None:
    """None if `dotted` is a module, or (for libraries) a module and attributes of it."""
    if "<" in dotted or "{" in dotted:
        return None   # a placeholder such as tools.<name>
    parts = dotted.split(".")
    script = parts[0] in SCRIPT_PACKAGES
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as error:
            return f"{type(error).__name__}: {error}"
        if spec is None:
            continue
        rest = parts[cut:]
        if not rest:
            return None
        if script or parts[0] not in IMPORTED_PACKAGES:
            return f"{name} exists, but {'.'.join(rest)} is not a module in it"
        try:
            value = importlib.import_module(name)
        except Exception as error:   # noqa: BLE001 - the doc names something that does not import
            return f"importing {name} fails: {type(error).__name__}: {error}"
        for attribute in rest:
            if not hasattr(value, attribute):
                return f"no such module or name ({name} has no {'.'.join(rest)})"
            value = getattr(value, attribute)
        return None
    return f"no module named {parts[0]}"


def from_imports(found: list[Snippet]) -> list[tuple[Snippet, str]]:
    """`from lumix_engine.x import a, b` in code samples -> ("lumix_engine.x.a", ...)."""
    refs = []
    for s in found:
        if not s.code:
            continue
        for match in FROM_IMPORT.finditer(s.text):
            names = match.group(2).split("#")[0].replace("(", " ").replace(")", " ")
            for item in names.split(","):
                name = item.split(" as ")[0].strip().split()[0] if item.strip() else ""
                if name:
                    refs.append((s, f"{match.group(1)}.{name}"))
    return refs


def module_failures(refs: list[tuple[Snippet, str]]) -> list[str]:
    return sorted_failures([(s, f"{dotted}: {problem}") for s, dotted in refs if (problem := module_problem(dotted))])


# --- commands -------------------------------------------------------------------------

def commands(text: str) -> list[list[str]]:
    """Every `python -m ...` in a code snippet, as tokens up to `&&`, `;`, `|` or a comment."""
    found = []
    for match in re.finditer(r"\bpython3?\s+-m\s+", text):
        rest = re.split(r"\s(?:&&|;|\||#)", text[match.start():])[0]
        try:
            tokens = shlex.split(rest)
        except ValueError:
            tokens = rest.split()
        if len(tokens) >= 3:
            found.append(tokens)
    return found


def cli_calls(found: list[Snippet]) -> list[tuple[Snippet, str, str, list[str]]]:
    """(snippet, module, subcommand, flags) for each command of a module in CLI_MODULES."""
    calls = []
    for s in found:
        if not s.code:
            continue
        for tokens in commands(s.text):
            module, args = tokens[2], tokens[3:]
            if module not in CLI_MODULES or not args or args[0].startswith("-") or "<" in args[0]:
                continue
            flags = [t.split("=")[0] for t in args[1:] if t.startswith("--")]
            calls.append((s, module, args[0], [f for f in flags if FLAG.match(f)]))
    return calls


# Runs `python -m MODULE SUB --help` for each pair inside one fresh interpreter (runpy does
# what -m does), so torch is imported once rather than once per subcommand.
HELP_RUNNER = """
import contextlib, io, json, runpy, sys
results = []
for module, sub in json.loads(sys.argv[1]):
    sys.argv, captured, code = [module, sub, "--help"], io.StringIO(), 0
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except Exception as error:
            code, _ = 1, print(f"{type(error).__name__}: {error}")
    results.append([code, captured.getvalue()])
print(json.dumps(results))
"""


def run_help(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    """(exit code, output) of `python -m MODULE SUB --help` for each pair."""
    ordered = sorted(pairs)
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", HELP_RUNNER, json.dumps(ordered)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the --help runner failed:\n{done.stdout}\n{done.stderr}"
    return {pair: (code, text) for pair, (code, text) in zip(ordered, json.loads(done.stdout.splitlines()[-1]))}


def cli_failures(calls, helps) -> list[str]:
    failures = []
    for s, module, sub, flags in calls:
        code, text = helps[(module, sub)]
        if code != 0:
            last = text.strip().splitlines()[-1] if text.strip() else f"exit code {code}"
            failures.append((s, f"python -m {module} {sub}: {last}"))
            continue
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
        if missing:
            failures.append((s, f"python -m {module} {sub}: no {', '.join(missing)} in its --help"))
    return sorted_failures(failures)


# --- files and links ------------------------------------------------------------------

def repo_paths(found: list[Snippet]) -> list[tuple[Snippet, str]]:
    return [(s, m.group(0)) for s in found if s.code for m in REPO_PATH.finditer(s.text)
            if not any(c in s.text[m.end():m.end() + 1] for c in "<*{")]


def path_failures(refs: list[tuple[Snippet, str]]) -> list[str]:
    return sorted_failures([(s, f"{path} does not exist") for s, path in refs if not (ROOT / path).exists()])


def links(found: list[Snippet]) -> list[tuple[Snippet, str]]:
    return [(s, m.group(1) or m.group(2)) for s in found if not s.code for m in LINK.finditer(s.text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    headings = [s.text.lstrip("#") for s in doc_snippets(path) if not s.code and re.match(r"#{1,6}\s", s.text)]
    return frozenset(slug(h) for h in headings)


def link_failures(refs: list[tuple[Snippet, str]]) -> list[str]:
    failures = []
    for s, target in refs:
        if re.match(r"[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (ROOT / s.doc).parent / file_part if file_part else ROOT / s.doc
        if not path.exists():
            failures.append((s, f"link {target}: {file_part} does not exist"))
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.resolve()):
            failures.append((s, f"link {target}: no heading #{anchor} in {file_part or s.doc}"))
    return sorted_failures(failures)


def sorted_failures(found: list[tuple[Snippet, str]]) -> list[str]:
    """`doc:line: message`, in reading order, each once."""
    unique = {(s.doc, s.line, message) for s, message in found}
    return [f"{doc}:{line}: {message}" for doc, line, message in sorted(unique)]


def report(kind: str, failures: list[str]) -> str:
    return f"{len(failures)} {kind} in the docs name nothing that exists (fix the doc, or the path):\n  " + \
        "\n  ".join(failures)


# --- the docs as they are -------------------------------------------------------------

def test_every_module_path_in_the_docs_exists():
    refs = module_paths(ALL_SNIPPETS) + from_imports(ALL_SNIPPETS)
    failures = module_failures(refs)
    assert not failures, report("module paths", failures)


SELF_CHECK = """\
```bash
python -m lumix_engine decompose --image a.png --no-such-flag
```
Run `python -m lumix_engine no-such-command --out x`, or `python -m lumix_engine generate --prompt x --out y`.
"""


@pytest.fixture(scope="module")
def helps():
    pairs = {(module, sub) for _, module, sub, _ in cli_calls(ALL_SNIPPETS + snippets("self", SELF_CHECK))}
    return run_help(pairs)


def test_every_command_in_the_docs_has_its_subcommand_and_flags(helps):
    calls = cli_calls(ALL_SNIPPETS)
    failures = cli_failures(calls, helps)
    assert not failures, report("commands", failures)


def test_every_repository_path_in_the_docs_exists():
    failures = path_failures(repo_paths(ALL_SNIPPETS))
    assert not failures, report("file paths", failures)


def test_every_relative_link_and_image_in_the_docs_resolves():
    failures = link_failures(links(ALL_SNIPPETS))
    assert not failures, report("links", failures)


def test_the_readme_keeps_ci_s_commands_and_stays_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code_lines = {s.text for s in snippets("README.md", text) if s.code}
    for command in README_COMMANDS:
        assert command in code_lines, f"README.md must show `{command}` exactly (CI's .ci/run runs the test one)"
    lines = len(text.splitlines())
    assert lines <= README_MAX_LINES, (f"README.md has {lines} lines; keep it a front door of about 150 "
                                       f"(at most {README_MAX_LINES}) and move detail to a docs/ page")


# --- the checks themselves can fail -----------------------------------------------------

def test_the_checks_see_the_docs():
    """An extractor that found nothing would pass everything above."""
    refs = {dotted for _, dotted in module_paths(ALL_SNIPPETS)}
    assert {"lumix_engine", "pytest", "lumix_engine.intrinsics"} <= refs
    calls = {(module, sub) for _, module, sub, _ in cli_calls(ALL_SNIPPETS)}
    assert {("lumix_engine", "demo"), ("lumix_engine", "decompose"), ("lumix_engine", "batch")} <= calls
    assert len(repo_paths(ALL_SNIPPETS)) > 20 and len(links(ALL_SNIPPETS)) > 20


def test_a_missing_module_attribute_or_script_is_reported_with_its_doc_and_line():
    doc = snippets("docs/x.md", "intro\n\nIt lives in `lumix_engine.exr` and\n`lumix_engine.mesh`; see "
                                "lumix_engine.intrinsics.no_such_thing, `python -m benchmarks.no_such_script`,\n"
                                "```python\nfrom lumix_engine.intrinsics import render_scene, no_such_name\n```\n"
                                "and `lumix_engine.formats.exr`, `python -m tools.build_workflows`.\n")
    failures = module_failures(module_paths(doc) + from_imports(doc))
    assert [f.split(": ")[0:2] for f in failures] == [
        ["docs/x.md:3", "lumix_engine.exr"], ["docs/x.md:4", "benchmarks.no_such_script"],
        ["docs/x.md:4", "lumix_engine.intrinsics.no_such_thing"], ["docs/x.md:4", "lumix_engine.mesh"],
        ["docs/x.md:6", "lumix_engine.intrinsics.no_such_name"]], failures


def test_a_wrong_subcommand_or_flag_is_reported(helps):
    failures = cli_failures(cli_calls(snippets("self", SELF_CHECK)), helps)
    assert len(failures) == 2, failures
    assert failures[0].startswith("self:2: python -m lumix_engine decompose: no --no-such-flag"), failures
    assert failures[1].startswith("self:4: python -m lumix_engine no-such-command: "), failures
    assert "invalid choice" in failures[1], failures


def test_a_missing_file_or_broken_link_is_reported():
    doc = snippets("docs/architecture.md", "See `lumix_engine/intrinsics/scores.py`, `lumix_engine/nope.py`,\n"
                                           "[ok](photos.md#3-ensembles), [gone](nope.md), [bad anchor](photos.md#nope),\n"
                                           "![](images/tiny_lumix_sheet.png) and <img src=\"../workflows/x.jpg\">.\n")
    assert path_failures(repo_paths(doc)) == ["docs/architecture.md:1: lumix_engine/nope.py does not exist"]
    assert [f.split(": link ")[1].split(":")[0] for f in link_failures(links(doc))] == [
        "nope.md", "photos.md#nope", "../workflows/x.jpg"]
