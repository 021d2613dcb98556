"""The documentation's examples run: every code and command block of every page in docs/.

Each page runs top to bottom in a folder of its own (one shared temporary root), one test per
page. How a block is run follows its fence:

- ```python with ``>>>``: a doctest (ELLIPSIS, NORMALIZE_WHITESPACE); ```python without: exec'd.
  A page's Python blocks share one namespace.
- ```console: each ``$ `` line is a command, the lines under it what it prints: each of them
  must appear, in order, in its output (``...`` lines skipped, floats in e-notation free).
- ```bash: each line is a command (a trailing ``\\`` continues it).
- Commands: ``xconv ...`` runs ``xconv.cli.main.main([...])`` in one child interpreter shared by
  the pages (TensorFlow imported once). A page marked ``<!-- docs-test: fresh processes -->``
  (cli.md) gets a child interpreter of its own, so nothing another page ran is in it, and its
  first command runs as ``python -m xconv.cli.main ...`` afresh, as a user runs it (one fresh
  process per command cost cli.md 40 TensorFlow imports; test_cli and test_quiet run commands as
  real processes). ``python ...`` runs this interpreter afresh. A trailing ``# exits N`` is the
  exit code expected (else 0).
- Fences without a language are text (a listing, a table, an output shown alone).

Comments the page's reader never sees steer the test:

- ``<!-- docs-test: skip REASON -->`` on the line before a block: not run, and the reason is
  required (the test refuses a skip without one).
- ``<!-- docs-test: needs cuda|keras|onnx|matplotlib -->`` before a block: skipped where missing.
- ``<!-- docs-test: args ARGS -->`` before a block: ARGS appended to each of its commands (a
  benchmark made small, say).
- ``<!-- docs-test: matches NAME -->`` before a block: its lines (``...`` skipped) must appear in
  order in the text held by NAME in the page's namespace (a listing of generated code).
- ``<!-- docs-test: slow -->`` anywhere: the page takes more than a few seconds.
- ``<!-- docs-test: inline commands -->`` anywhere: the page's inline code spans that start with
  ``xconv `` are commands too (for a page that shows them in its prose).
- ``<!-- docs-test setup ... -->`` and ``<!-- docs-test check ... -->``: Python run where it
  stands, in the page's namespace and folder: a setup makes what the examples after it name
  (files, ``keras_model``), a check asserts what the examples before it did.

A page with any command is marked slow (each command is a fresh interpreter), as is one that
says so; the other pages run in the quick suite. Where a block needs Keras, the page's setup says so with
``pytest.importorskip("keras")``.
"""

from __future__ import annotations

import doctest
import os
import pathlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from conftest import needs_keras

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))

_FENCE = re.compile(r"^(?:<!--\s*docs-test:\s*(?P<mark>[^\n]*?)\s*-->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.S | re.M)
_HIDDEN = re.compile(r"<!--\s*docs-test (?P<kind>setup|check)\n(?P<code>.*?)-->", re.S)
_INLINE = re.compile(r"`(xconv [^`]+)`")
_NEEDS = {
    "cuda": lambda: __import__("torch").cuda.is_available(),
    "keras": lambda: _importable("keras"),
    "onnx": lambda: _importable("onnx") and _importable("onnxruntime") and _importable("tf2onnx"),
    "matplotlib": lambda: _importable("matplotlib"),
}
_FLOAT = re.compile(r"[-+]?\d+(?:\.\d+)?e[-+]?\d+")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@dataclass
class Block:
    lang: str
    body: str
    mark: str = ""
    line: int = 0

    @property
    def kind(self) -> str:
        if self.lang == "python":
            return "doctest" if re.search(r"^\s*>>> ", self.body, re.M) else "python"
        if self.lang in ("console", "bash", "sh", "shell"):
            return "commands"
        return "hidden" if self.lang == "hidden" else "text"

    @property
    def skip_reason(self) -> str | None:
        return self.mark[len("skip"):].strip(" :") if self.mark.startswith("skip") else None


@dataclass
class Page:
    path: pathlib.Path
    blocks: list[Block] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)

    @property
    def runnable(self) -> list[Block]:
        return [b for b in self.blocks if b.kind not in ("text", "hidden") and b.skip_reason is None] + [Block("inline", c) for c in self.inline]

    @property
    def has_code(self) -> bool:
        return any(b.kind not in ("text", "hidden") for b in self.blocks) or bool(self.inline)

    @property
    def slow(self) -> bool:
        return any(b.kind == "commands" for b in self.runnable) or bool(self.inline) or "<!-- docs-test: slow -->" in self.path.read_text()


def parse(path: pathlib.Path) -> Page:
    text = path.read_text()
    page = Page(path)
    items = [(m.start(), Block(m["lang"], m["body"], (m["mark"] or "").strip(), text.count("\n", 0, m.start("body")))) for m in _FENCE.finditer(text)]
    items += [(m.start(), Block("hidden", m["code"], m["kind"], text.count("\n", 0, m.start("code")))) for m in _HIDDEN.finditer(text)]
    page.blocks = [b for _, b in sorted(items, key=lambda item: item[0])]
    if "<!-- docs-test: inline commands -->" in text:
        page.inline = _INLINE.findall(text)
    return page


PAGES = [parse(p) for p in DOCS]


# --- running ---------------------------------------------------------------------------------


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) for each command of a block."""
    lines = block.body.replace("\\\n", " ").splitlines()
    if block.lang != "console":
        return [(l, []) for l in lines if l.strip() and not l.lstrip().startswith("#")]
    out: list[tuple[str, list[str]]] = []
    for l in lines:
        if l.startswith("$ "):
            out.append((l[2:], []))
        elif out and l.strip():
            out[-1][1].append(l)
    return out


def _argv(command: str, extra: str = "") -> tuple[list[str], int]:
    exits = re.search(r"#\s*exits\s+(\d+)\s*$", command)
    words = shlex.split(command, comments=True) + shlex.split(extra)
    if words[0] == "xconv":
        argv = [sys.executable, "-m", "xconv.cli.main", *words[1:]]
    elif words[0] == "python":
        argv = [sys.executable, *words[1:]]
    else:
        raise AssertionError(f"{command!r}: only xconv and python commands run; mark the block 'skip REASON' otherwise")
    return argv, int(exits[1]) if exits else 0


def _norm(line: str) -> str:
    return " ".join(_FLOAT.sub("<float>", line).split())


def _assert_lines_in_order(expected: list[str], actual: str, what: str) -> None:
    """Every expected line (but ``...``) is a line of ``actual``, in this order: spacing aside,
    ``...`` inside a line standing for anything and floats in e-notation for any float."""
    got = [_norm(l) for l in actual.splitlines()]
    at = 0
    for line in expected:
        if line.strip() in ("", "..."):
            continue
        want = re.compile(".*".join(re.escape(part) for part in _norm(line).split("...")))
        found = next((i for i in range(at, len(got)) if want.fullmatch(got[i])), None)
        if found is None:
            raise AssertionError(f"{what}: the line\n  {line.strip()}\nis not in what it printed (after line {at}):\n{actual[-3000:]}")
        at = found + 1


# One interpreter that runs xconv commands one after another: TensorFlow is imported once, not
# once per command (about 7 s each). cli.md gets one of its own, and its first command a fresh
# interpreter, exactly as a user runs it; python commands always get one.
_SERVER = r"""
import contextlib, io, json, os, sys, traceback
from xconv.cli.main import main
answers = os.fdopen(int(sys.argv[1]), "w")
for request in sys.stdin:
    argv, cwd = json.loads(request)
    os.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            traceback.print_exc()
            code = 1
    answers.write(json.dumps([code, out.getvalue(), err.getvalue()]) + "\n")
    answers.flush()
"""


class _Server:
    """A child interpreter running ``xconv.cli.main.main(argv)`` for each request."""

    def __init__(self, env):
        read, write = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(write)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write,), text=True, env=env)
        os.close(write)
        self.answers = os.fdopen(read)

    def run(self, argv: list[str], cwd) -> subprocess.CompletedProcess:
        import json

        self.proc.stdin.write(json.dumps([argv, str(cwd)]) + "\n")
        self.proc.stdin.flush()
        line = self.answers.readline()
        assert line, f"the command runner died on {argv}"
        code, out, err = json.loads(line)
        return subprocess.CompletedProcess(argv, code, out, err)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.answers.close()


_SHARED: list[_Server] = []


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run_command(command: str, expected: list[str], folder: pathlib.Path, extra: str = "", server: list | None = None) -> None:
    """Run one command: in ``server`` (a list holding the page's runner, started on first use),
    or, where ``server`` is None or it is not an xconv command, in a fresh interpreter."""
    argv, code = _argv(command, extra)
    if server is None or argv[1:3] != ["-m", "xconv.cli.main"]:
        proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=600, env=_env())
    else:
        if not server:
            server.append(_Server(_env()))
        proc = server[0].run(argv[3:], folder)
    shown = f"$ {command}\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}"
    assert proc.returncode == code, shown
    assert "Traceback" not in proc.stderr, shown
    _assert_lines_in_order(expected, proc.stdout + proc.stderr, f"$ {command}")


def _run_doctest(block: Block, name: str, namespace: dict) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.body, namespace, name, name, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)


def run_page(page: Page, folder: pathlib.Path, monkeypatch) -> list[str]:
    """Run a page's blocks in order in ``folder``; returns what was not run, with why."""
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    name = page.path.name
    own: list[_Server] | None = [] if "<!-- docs-test: fresh processes -->" in page.path.read_text() else None
    server = _SHARED if own is None else own
    first = own is not None  # on a fresh-processes page, the first command runs afresh
    namespace: dict = {"__name__": f"docs.{page.path.stem}", "ROOT": ROOT}
    not_run = []
    try:
        for block in page.blocks:
            where = f"{name}:{block.line}"
            if block.kind == "hidden":
                exec(compile(block.body, f"{where} ({block.mark})", "exec"), namespace)
                continue
            if block.kind == "text" and not block.mark.startswith("matches"):
                continue
            if block.skip_reason is not None:
                not_run.append(f"{where}: {block.skip_reason}")
                continue
            mark, _, arg = block.mark.partition(" ")
            if mark == "needs" and not all(_NEEDS[n.strip()]() for n in arg.split(",")):
                not_run.append(f"{where}: needs {arg}")
                continue
            if mark == "matches":
                _assert_lines_in_order(block.body.splitlines(), str(namespace[arg.strip()]), f"{where} (as {arg})")
            elif block.kind == "doctest":
                _run_doctest(block, where, namespace)
            elif block.kind == "python":
                exec(compile(block.body, where, "exec"), namespace)
            else:
                for command, expected in _commands(block):
                    _run_command(command, expected, folder, arg if mark == "args" else "", None if first else server)
                    first = False
        for command in page.inline:
            _run_command(command, [], folder, server=None if first else server)
            first = False
    finally:
        while own:
            own.pop().close()
    return not_run


@pytest.fixture(scope="module")
def docs_root(tmp_path_factory):
    yield tmp_path_factory.mktemp("docs")
    while _SHARED:
        _SHARED.pop().close()


def _param(page: Page):
    return pytest.param(page, id=page.path.name, marks=[pytest.mark.slow] if page.slow else [])


@pytest.mark.parametrize("page", [_param(p) for p in PAGES if p.has_code])
def test_page_examples_run(page, docs_root, monkeypatch):
    folder = docs_root / page.path.stem
    folder.mkdir()
    run_page(page, folder, monkeypatch)


def _attempted(block: Block) -> bool:
    if "cuda" in block.mark.partition("needs")[2]:
        return False
    if block.kind == "doctest":
        return any(not e.options.get(doctest.SKIP) for e in doctest.DocTestParser().get_examples(block.body))
    return True


def test_every_page_with_code_runs_an_example_and_every_skip_says_why():
    with_code = [p for p in PAGES if p.has_code]
    assert len(with_code) >= 9, [p.path.name for p in with_code]
    for page in with_code:
        assert page.runnable, f"{page.path.name}: no example is run; make one runnable, or say why in a 'skip REASON' mark"
        # and one runs everywhere: not only on a GPU, not a doctest whose every example is +SKIP
        assert any(_attempted(b) for b in page.runnable), f"{page.path.name}: every example needs a GPU or is +SKIP"
        for block in (b for b in page.blocks if b.kind != "hidden"):
            reason = block.skip_reason
            assert reason is None or len(reason.split()) >= 3, f"{page.path.name}:{block.line}: a skip needs its reason"
            assert block.mark.split(" ")[0] in ("", "skip", "needs", "args", "matches"), f"{page.path.name}:{block.line}: unknown mark {block.mark!r}"
            if block.mark.startswith("needs"):
                assert all(n.strip() in _NEEDS for n in block.mark[5:].split(",")), block.mark
    for page in PAGES:  # a doctest marked +SKIP must say why on its line
        for block in page.blocks:
            for line in block.body.splitlines():
                if "+SKIP" in line:
                    assert re.search(r"\+SKIP\S*\s+\S", line.split("doctest:")[-1]), f"{page.path.name}: +SKIP without a reason: {line}"


def test_the_runner_catches_a_wrong_example(tmp_path, monkeypatch):
    """The page runner fails on a wrong doctest, a wrong exit code and a line a command never printed."""
    def page(text):
        path = tmp_path / "page.md"
        path.write_text(text)
        return parse(path)

    folder = tmp_path / "run"
    folder.mkdir()
    good = page("```python\n>>> 1 + 1\n2\n\n```\n<!-- docs-test: skip shown only, never run -->\n```bash\nrm -rf /\n```\n")
    assert run_page(good, folder, monkeypatch) == [f"page.md:{good.blocks[1].line}: shown only, never run"]
    with pytest.raises(AssertionError, match="Failed example"):
        run_page(page("```python\n>>> 1 + 1\n3\n\n```\n"), folder, monkeypatch)
    with pytest.raises(AssertionError, match="only xconv and python"):
        run_page(page("```bash\nrm -rf /\n```\n"), folder, monkeypatch)
    with pytest.raises(AssertionError):  # expected exit 0, got 2
        run_page(page("```console\n$ xconv demo resnet\n```\n"), folder, monkeypatch)
    run_page(page("```console\n$ xconv demo resnet  # exits 2\nxconv demo: error: Unknown zoo model 'resnet'...\n```\n"), folder, monkeypatch)
    with pytest.raises(AssertionError, match="is not in what it printed"):
        run_page(page("```console\n$ python -c \"print('one 1.5e-07'); print('two')\"\ntwo\none 9.9e-01\n```\n"), folder, monkeypatch)
    run_page(page("```console\n$ python -c \"print('one 1.5e-07'); print('two')\"\none 9.9e-01\n...\ntwo\n```\n"), folder, monkeypatch)
    unattempted = page("```python\n>>> 1 + 1  # doctest: +SKIP\n2\n```\n<!-- docs-test: needs cuda -->\n```console\n$ xconv demo --device cuda\n```\n")
    assert unattempted.runnable and not any(_attempted(b) for b in unattempted.runnable)


# --- the README ------------------------------------------------------------------------------


@needs_keras
def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_readme_has_exactly_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[all]" && xconv demo' in text
    assert 'pip install -e ".[all,dev]" && pytest -n 2' in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[all,dev]" && pytest -n 2' in ci
