"""Every fenced code block of README.md and docs/*.md, run in a fresh ``startproject`` project.

Each document gets its own copy of one project built per session (``django-admin startproject
mysite``, ``startapp shop``, ``firefly_tasks`` and ``shop`` installed, migrated, SQLite). Its
blocks are placed as a reader would paste them, then the project must pass ``check`` and
``migrate``, and its commands and code must run.

Where a block goes, from a marker comment before it, else from the block itself:

- ``<!-- snippet: file=PATH -->``: the whole content of PATH (relative to the project);
  ``<!-- snippet: append=PATH -->``: added to the end of PATH.
- ``<!-- snippet: shell -->``: Python run in ``manage.py shell`` once the document's files are
  in place, with ``from shop.tasks import *`` before it.
- ``<!-- snippet: run -->``: a bash block whose ``python manage.py`` lines are run in order, or a
  Dockerfile whose ``CMD`` is.
- ``<!-- not runnable: REASON -->``: not run, for REASON.
- Without a marker: Python whose first line names a file (``# shop/tasks.py``, ``# urls.py`` for
  the project's, ``# settings.py`` appended to) goes there; Python that only assigns UPPERCASE
  names is settings, appended to ``settings.py``; bash whose every line is ``python manage.py``
  is run; JSON must parse, INI (systemd units) must parse; a block with no language is text.
  Anything else must say what it is with a marker.

Where a document writes no ``shop/tasks.py``, the project has Getting started's, with ``add``.

``consume_tasks`` without ``--burst`` or ``--max-tasks`` runs until stopped: it is started, and
once its worker is in the database, stopped with SIGTERM, after which it must exit 0.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROJECT = "mysite"
SETTINGS = f"{PROJECT}/settings.py"

FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(?P<kind>snippet|not runnable):\s*(?P<value>.*?)\s*-->\s*$")
NAMED_FILE = re.compile(r"^#\s*(?P<path>[\w/]+\.py)\s*$")
UPPERCASE = re.compile(r"^[A-Z][A-Z0-9_]*$")
LONG_RUNNING = ("--burst", "--max-tasks", "--help")


@dataclasses.dataclass
class Block:
    document: str
    line: int
    lang: str
    text: str
    marker: str | None  # "snippet: ..." or "not runnable: ..."

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def action(self) -> tuple[str, str]:
        """``(kind, argument)``: file/append with a path, shell, run, skip with a reason, or
        unknown with what is missing."""
        if self.marker is not None:
            kind, _, value = self.marker.partition(": ")
            if kind == "not runnable":
                return ("skip", value)
            key, _, argument = value.partition("=")
            return (key, argument)
        first = self.text.splitlines()[0] if self.text else ""
        if self.lang == "python":
            if named := NAMED_FILE.match(first):
                path = named["path"]
                if path == "settings.py":
                    return ("append", SETTINGS)
                return ("file", f"{PROJECT}/urls.py" if path == "urls.py" else path)
            if _assigns_only_uppercase_names(self.text):
                return ("append", SETTINGS)
        if self.lang == "bash" and all(
            line.startswith("python manage.py ") for line in _command_lines(self.text)
        ):
            return ("run", "")
        if self.lang in ("json", "ini"):
            return (self.lang, "")
        if self.lang == "":
            return ("skip", "text, not code")
        return ("unknown", "add <!-- snippet: ... --> or <!-- not runnable: reason --> before it")


def _assigns_only_uppercase_names(text: str) -> bool:
    try:
        statements = ast.parse(text).body
    except SyntaxError:
        return False
    return bool(statements) and all(
        isinstance(statement, ast.Assign | ast.AugAssign)
        and all(
            isinstance(target, ast.Name) and UPPERCASE.match(target.id)
            for target in (
                statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            )
        )
        for statement in statements
    )


def _command_lines(text: str) -> list[str]:
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    # A Dockerfile's exec-form CMD is the command's arguments as a JSON list.
    return [
        shlex.join(json.loads(line.removeprefix("CMD "))) if line.startswith("CMD ") else line
        for line in commands
    ]


def read_blocks(document: Path) -> list[Block]:
    blocks = []
    lines = document.read_text().splitlines()
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = index + 1
        while lines[end].strip() != "```":
            end += 1
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = MARKER.match(lines[before]) if before >= 0 else None
        blocks.append(
            Block(
                document=str(document.relative_to(ROOT)),
                line=index + 1,
                lang=fence["lang"],
                text="\n".join(lines[index + 1 : end]) + "\n",
                marker=f"{marker['kind']}: {marker['value']}" if marker else None,
            )
        )
        index = end + 1
    return blocks


BLOCKS = {str(document.relative_to(ROOT)): read_blocks(document) for document in DOCUMENTS}


def manage(project: Path, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIREFLY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def pristine_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``startproject`` + ``startapp shop``, with ``firefly_tasks`` and ``shop`` installed and
    migrated: the project every document starts from."""
    project = tmp_path_factory.mktemp("docs") / "pristine"
    project.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", PROJECT, str(project)],
        check=True,
        env=_environment(),
    )
    manage(project, "startapp", "shop")
    # Getting started's task, for the blocks of other documents that schedule `add`.
    (started,) = [
        block
        for block in BLOCKS["docs/getting-started.md"]
        if block.action == ("file", "shop/tasks.py")
    ]
    (project / "shop" / "tasks.py").write_text(started.text)
    with open(project / SETTINGS, "a") as settings:
        settings.write('\nINSTALLED_APPS += ["firefly_tasks", "shop"]\n')
    manage(project, "migrate", "-v", "0")
    return project


@pytest.fixture(scope="session")
def projects(pristine_project: Path) -> dict[str, Path]:
    """Each document's project, once its test has built it."""
    return {}


def build(document: str, pristine: Path) -> Path:
    """A copy of the pristine project with the document's files pasted in."""
    project = pristine.parent / document.replace("/", "_").removesuffix(".md")
    shutil.copytree(pristine, project)
    for block in BLOCKS[document]:
        kind, path = block.action
        if kind in ("file", "append"):
            compile(block.text, f"{block}", "exec")
            target = project / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "w" if kind == "file" else "a") as file:
                file.write(("\n" if kind == "append" else "") + block.text)
    return project


def check_migrate_and_run_shell(project: Path, blocks: list[Block]) -> None:
    """``check``, ``migrate`` (each database), then every shell block, each in its own
    namespace: one ``manage.py shell`` process, for speed."""
    prelude = "from shop.tasks import *\n"
    script = textwrap.dedent("""
        import traceback
        from django.conf import settings
        from django.core.management import call_command

        call_command("check")
        for alias in settings.DATABASES:  # as a reader migrates each database
            call_command("migrate", database=alias, verbosity=0)
        failed = []
    """)
    for block in blocks:
        script += textwrap.dedent(f"""
            try:
                exec(compile({prelude + block.text!r}, {str(block)!r}, "exec"), {{}})
            except Exception:
                failed.append({str(block)!r} + ":\\n" + traceback.format_exc())
        """)
    script += "print('FAILED', *failed, sep='\\n') if failed else print('OK')\n"
    output = manage(project, "shell", "-c", script)
    assert output.strip().endswith("OK"), output


def run_commands(project: Path, lines: list[str]) -> None:
    """Run a block's commands; the consumers among them that run until stopped run together."""
    stopped = []
    for line in lines:
        args = shlex.split(line)
        assert args[:2] == ["python", "manage.py"], line
        if args[2] == "consume_tasks" and not any(flag in args for flag in LONG_RUNNING):
            stopped.append(line)
        else:
            manage(project, *args[2:])
    if stopped:
        run_until_stopped(project, stopped)


def run_until_stopped(project: Path, lines: list[str]) -> None:
    """Start consumers that run until stopped; once each has registered its worker and handles
    SIGTERM, stop them with it, as Ctrl-C or a process manager would: each must exit 0."""
    database = project / "db.sqlite3"
    query = "SELECT pid FROM firefly_tasks_workermodel WHERE state = 'running'"
    with sqlite3.connect(database) as connection:
        before = {pid for (pid,) in connection.execute(query)}
    connection.close()
    processes = {
        line: subprocess.Popen(
            [sys.executable, "manage.py", *shlex.split(line)[2:]],
            cwd=project,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # with --reload, the signal reaches the child too
        )
        for line in lines
    }
    try:
        deadline = time.monotonic() + 60
        with sqlite3.connect(database) as connection:
            while len(
                {pid for (pid,) in connection.execute(query) if _handles_sigterm(pid)} - before
            ) < len(lines):
                for line, process in processes.items():
                    assert process.poll() is None, f"{line} exited:\n{process.communicate()[0]}"
                assert time.monotonic() < deadline, f"{lines}: not every worker started in 60 s"
                time.sleep(0.05)
        connection.close()
        for process in processes.values():
            os.killpg(process.pid, signal.SIGTERM)
        for line, process in processes.items():
            output = process.communicate(timeout=60)[0]
            assert process.returncode == 0, f"{line} exited {process.returncode}:\n{output}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate(timeout=10)


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has its SIGTERM handler: a worker registers itself a moment before
    it installs it, and a SIGTERM in between would end it at once."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.MULTILINE)
    assert mask is not None, status
    caught = int(mask[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_every_block_is_runnable_or_says_why_not() -> None:
    unknown = [
        f"{block}: {block.action[1]}"
        for blocks in BLOCKS.values()
        for block in blocks
        if block.action[0] not in ("file", "append", "shell", "run", "skip", "json", "ini")
        or (block.action[0] == "skip" and not block.action[1])
    ]
    assert unknown == []


@pytest.mark.parametrize("document", BLOCKS)
def test_every_block_of_the_document_works_in_a_fresh_project(
    document: str, pristine_project: Path, projects: dict[str, Path]
) -> None:
    project = projects[document] = build(document, pristine_project)
    blocks = BLOCKS[document]

    check_migrate_and_run_shell(project, [block for block in blocks if block.action[0] == "shell"])
    for block in blocks:
        kind = block.action[0]
        if kind == "run":
            run_commands(project, _command_lines(block.text))
        elif kind == "json":
            json.loads(block.text)
        elif kind == "ini":
            configparser.ConfigParser(strict=False, interpolation=None).read_string(block.text)


# The quick starts' views, asked for as a browser would, before and after a consumer's burst.
QUICK_START = """
import json, subprocess, sys
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0)
client = Client(HTTP_HOST="127.0.0.1")
created = client.get("/task/")
burst = subprocess.run([sys.executable, "manage.py", "consume_tasks", "--burst"])
detail = client.get(f"/task/{created.json()['id']}")
print(json.dumps({
    "created": [created.status_code, created.json()],
    "burst": burst.returncode,
    "detail": [detail.status_code, detail.content.decode()],
    "admin": client.get("/admin/login/").status_code,
}))
"""


@pytest.mark.parametrize("document", ["README.md", "docs/getting-started.md"])
def test_quick_start_schedules_a_task_a_consumer_runs(
    document: str, pristine_project: Path, projects: dict[str, Path]
) -> None:
    project = projects.get(document) or build(document, pristine_project)

    report = json.loads(manage(project, "shell", "-c", QUICK_START).strip().splitlines()[-1])

    status, row = report["created"]
    assert (status, row["status"], row["func_name"]) == (200, "created", "shop.tasks.add")
    assert report["burst"] == 0
    assert report["detail"] == [200, "4"]
    assert report["admin"] == 200  # the admin, and with it the dashboard, is routed
