"""Mutation testing of the code that decides results: plant one small bug at a time and see whether the tests notice.

Uses cosmic-ray (a maintained mutation-testing tool) on the modules of benchmarks/mutation.toml, each with only the
tests that cover it. Mutants are applied to a private copy of the repository (runs/mutation/MODULE/tree, made anew
each time), so the working tree is never touched, also when a run is interrupted (continue with --resume); the copy
imports its own `promptpo_bench` (tasks/ and descriptions/ are linked into the package as the editable install maps
them), subprocesses and sandbox workers too. Each mutant runs only the tests that execute its statement (mapped by
coverage.py in one unmutated run), its last killer first, forked by a pytest server that has imported the libraries
once; a survivor is tested again with the whole selection. docs/mutation.md explains each step.

    python benchmarks/mutation.py -j 2               # every module, two side by side (make mutation)
    python benchmarks/mutation.py noiseworld         # some modules
    python benchmarks/mutation.py --dry-run -j 2     # count the mutants, map the tests, estimate the minutes

Prints, per module, mutants killed / non-equivalent mutants, the score, the runtime and every survivor (file, line,
operator, the mutated line), and a progress line a minute. Equivalent mutants are listed in docs/mutation.md, each
with its reason.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "mutation.toml"
DOCS = ROOT / "docs" / "mutation.md"
WORK = ROOT / "runs" / "mutation"
LINKS = {"promptpo_bench/tasks": "../tasks", "promptpo_bench/descriptions": "../descriptions"}  # package-dir


@dataclass
class Module:
    name: str
    files: list[str]
    functions: list[str]
    tests: str
    timeout: float | None = None  # seconds per mutant's test run, if not the global one
    in_process: list[str] = field(default_factory=list)  # files no process spawned by the tests runs


def fail(message: str) -> None:
    print(f"mutation.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def load_config() -> tuple[dict, list[Module]]:
    config = tomllib.loads(CONFIG.read_text())
    modules = [Module(m["name"], m["files"], m.get("functions", []), m["tests"], m.get("timeout"),
                      m.get("in-process", [])) for m in config["module"]]
    for module in modules:
        for path in module.files:
            if not (ROOT / path).is_file():
                fail(f"{CONFIG.name}: module {module.name} names {path}, which does not exist (moved? edit the toml)")
        if set(module.in_process) - set(module.files):
            fail(f"{CONFIG.name}: module {module.name}'s in-process names a file that is not among its files")
    return config, modules


def equivalent_mutants() -> set[tuple[str, str, str]]:
    """(file, operator, mutated line as the survivors list prints it) of each mutant docs/mutation.md lists as
    equivalent (a table row | `file` | `operator` | `mutated line` | reason |)."""
    if not DOCS.is_file():
        return set()
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| `(.+?)` \|", DOCS.read_text(), flags=re.M)
    return {(path, operator, line.replace("\\|", "|")) for path, operator, line in rows}


def spans(path: Path, names: list[str]) -> list[tuple[int, int]]:
    """Line spans (first, last) of the named functions/classes ("Class.method" for a method) in a file."""
    tree = ast.parse(path.read_text())
    found: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                found[name] = (child.lineno, child.end_lineno)
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".")

    visit(tree, "")
    return [found[n] for n in names if n in found]


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of every type annotation: never evaluated here (`from __future__ import annotations`),
    so a mutant inside one is equivalent by construction."""
    spans_ = []
    for node in ast.walk(ast.parse(path.read_text())):
        notes = []
        if isinstance(node, ast.arg) or isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
        spans_ += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in notes if n is not None]
    return spans_


def make_tree(name: str) -> Path:
    """A fresh copy of the repository's files (tracked and untracked, not ignored) with the package-dir links."""
    tree = WORK / name / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    for link, target in LINKS.items():
        (tree / link).symlink_to(target)
    return tree


def tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1", "WANDB_MODE": "offline",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # anyio's and typeguard's plugins (unused) cost ~0.5 s a mutant


def check_tree_imports(tree: Path, module: Module) -> None:
    """The copy must import its own files, or every mutant would survive."""
    probe = ("import importlib.util, sys; from pathlib import Path; import promptpo_bench, promptpo_bench.tasks, "
             "promptpo_bench.descriptions; print(Path(promptpo_bench.__file__).resolve()); "
             "print(Path(promptpo_bench.tasks.__file__).resolve())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=tree_env(tree), capture_output=True,
                         text=True, check=True).stdout.split()
    for path in out:
        if not Path(path).is_relative_to(tree.resolve()):
            fail(f"the copy in {tree} imports {path} from elsewhere; mutants would not be seen by the tests")


PYTEST = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]  # stop at the first failure: a mutant is killed
SHARED = "(shared)"  # coverage context of code run outside any one test: imports, collection, fixtures of a wider scope


def test_command(module: Module) -> str:
    """The module's whole selection (`tests` in the toml)."""
    return f"{sys.executable} -m pytest {' '.join(PYTEST)} {module.tests}"


def map_file(module: Module) -> Path:
    return WORK / module.name / "coverage.json"


def mutant_command(module: Module, whole: bool = False) -> str:
    """cosmic-ray's test command: this script, in the copy, runs only the tests that cover the mutated statement (or,
    to confirm a survivor, the whole selection)."""
    return f"{sys.executable} benchmarks/mutation.py --test-mutant {map_file(module)}{' --whole' * whole}"


def clear_caches(paths: dict[str, str]) -> None:
    """Empty the `lru_cache`s of the mapped files' functions and methods before each test of the mapping run, so that
    each test executes the cached code it reads (a board's tables, an observation table) and is mapped to it, rather
    than only the first test that filled the cache. Changes only speed: the caches hold pure results."""
    for module in list(sys.modules.values()):
        if str(Path(getattr(module, "__file__", None) or "/").resolve()) not in paths:
            continue
        for value in list(vars(module).values()):
            for candidate in [value, *(vars(value).values() if isinstance(value, type) else [])]:
                if callable(getattr(candidate, "cache_clear", None)):
                    candidate.cache_clear()


def map_tests(module: Module, out: Path) -> int:
    """Run a module's tests once, unmutated, under coverage.py with one context per test, and write which tests run
    each line of its files, which tests spawn processes and how long each test took (run in the copy, whose
    `os.fork` and the like it wraps: a process of its own)."""
    import _posixsubprocess

    import coverage
    import pytest

    paths = {str((ROOT / f).resolve()): f for f in module.files}
    cov = coverage.Coverage(data_file=None, config_file=False, include=list(paths))

    class Recorder:
        """Switches coverage's context to each test's node id while it runs (set-up, call, tear-down), to SHARED while a
        fixture of a wider scope is set up, and notes the tests that spawn a process."""

        def __init__(self) -> None:
            self.current, self.tests, self.seconds, self.spawning = SHARED, [], {}, set()

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.tests = [item.nodeid for item in session.items]

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
            clear_caches(paths)
            self.current = item.nodeid
            cov.switch_context(item.nodeid)
            start = time.perf_counter()
            yield
            self.seconds[item.nodeid] = time.perf_counter() - start
            self.current = SHARED
            cov.switch_context(SHARED)

        @pytest.hookimpl(hookwrapper=True)
        def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
            shared = fixturedef.scope != "function"
            if shared:
                cov.switch_context(SHARED)
            yield
            if shared:
                cov.switch_context(self.current)

        def spawns(self, original):
            def spawn(*args, **kwargs):
                self.spawning.add(self.current)
                return original(*args, **kwargs)
            return spawn

    recorder = Recorder()
    _posixsubprocess.fork_exec = recorder.spawns(_posixsubprocess.fork_exec)  # multiprocessing's spawn
    subprocess._fork_exec = recorder.spawns(subprocess._fork_exec)  # subprocess.Popen's own reference to it
    os.fork, os.posix_spawn = recorder.spawns(os.fork), recorder.spawns(os.posix_spawn)
    cov.start()
    cov.switch_context(SHARED)
    try:
        status = pytest.main([*PYTEST, *shlex.split(module.tests)], plugins=[recorder])
    finally:
        cov.stop()
    data = cov.get_data()
    lines = {}
    for measured in data.measured_files():
        if str(Path(measured).resolve()) in paths:
            lines[paths[str(Path(measured).resolve())]] = {
                n: sorted({c or SHARED for c in contexts}) for n, contexts in data.contexts_by_lineno(measured).items()}
    out.write_text(json.dumps({
        "whole": module.tests, "in_process": module.in_process, "tests": recorder.tests, "seconds": recorder.seconds,
        "spawning": sorted(recorder.spawning), "lines": lines,
        "preload": [name for name in sys.modules if preloadable(name)],
        "sources": {f: (ROOT / f).read_text() for f in module.files}}))
    return int(status)


def statement_lines(source: str, first: int, last: int) -> range:
    """The lines a change of lines first..last can be recorded on by coverage.py: the whole of the simple statement it
    is in, or the header of the compound one (`if`, `for`, `while`, `with`, `def`, `except` ...)."""
    inner = [node for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.stmt, ast.ExceptHandler))
             and node.lineno <= first and last <= node.end_lineno]
    if not inner:
        return range(first, last + 1)
    node = min(inner, key=lambda n: (n.end_lineno - n.lineno, -n.lineno))
    body = [c.lineno for c in ast.iter_child_nodes(node) if isinstance(c, (ast.stmt, ast.ExceptHandler))]
    if not body:
        return range(node.lineno, node.end_lineno + 1)
    if last < min(body):
        return range(node.lineno, min(body))
    return range(first, last + 1)  # between the parts of a compound statement (an `else:` line)


def chosen_tests(coverage_map: dict, path: str, first: int, last: int) -> list[str] | None:
    """The node ids (in the selection's order) that a mutant of lines first..last of a file must run: those that run its
    statement, and the tests that spawn processes unless the file is `in-process`. None (the whole selection) when
    the statement runs outside any one test (at import, in a shared fixture) or in no test of this process."""
    by_line = coverage_map["lines"].get(path, {})
    hit = set().union(*(by_line.get(str(n), []) for n in statement_lines(coverage_map["sources"][path], first, last)))
    if path not in coverage_map["in_process"]:
        hit |= set(coverage_map["spawning"]) if hit else set()
    if not hit or SHARED in hit:
        return None
    return [test for test in coverage_map["tests"] if test in hit]


def changes(before: str, after: str) -> list[tuple[str, int, int, int, int]]:
    """difflib's opcodes of the lines a mutation replaced (tag, before's lines i1:i2, after's j1:j2)."""
    return [op for op in difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
            .get_opcodes() if op[0] != "equal"]


def changed_lines(before: str, after: str) -> tuple[int, int]:
    """The first and last line of `before` that a mutation replaced."""
    ops = changes(before, after)
    return ops[0][1] + 1, max(ops[-1][2], ops[0][1] + 1)


PROJECT = ("promptpo_bench", "algorithms", "tasks", "descriptions", "tests", "benchmarks", "conftest")


def own_module(name: str) -> bool:
    """Whether a loaded module is the project's (by name, or by a file in the copy) rather than a library's."""
    file = getattr(sys.modules.get(name), "__file__", None)
    return name.split(".")[0] in PROJECT or bool(file) and Path(file).resolve().is_relative_to(Path.cwd().resolve())


def preloadable(name: str) -> bool:
    """Whether a module may be imported ahead by the mutants' pytest server: a library's, never the project's."""
    return (bool(getattr(sys.modules.get(name), "__file__", None)) and name not in ("__main__", "__mp_main__")
            and name.split(".")[0] != "coverage" and not own_module(name))


def killers_file(map_path: Path) -> Path:
    return map_path.with_name("killers.json")


def mutant_key(path: str, mutated: str) -> str:
    """A mutant's key in killers.json: the hash of its file's mutated text (the same mutant, pass after pass)."""
    return hashlib.sha256(f"{path}\0{mutated}".encode()).hexdigest()


def harvest_killers(module: Module, session: Path, tree: Path) -> None:
    """Remember the test that killed each killed mutant of a session (its first FAILED or ERROR line), so that the next
    pass runs it first: with -x, a mutant killed before then costs one test. Only the order changes."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    path = killers_file(map_file(module))
    killers = json.loads(path.read_text()) if path.is_file() else {}
    sources = {f: (tree / f).read_text() for f in module.files}
    with use_db(str(session), WorkDB.Mode.open) as db:
        done = list(db.completed_work_items)
    for item, result in done:
        failed = [line.split(" ", 1)[1].split(" - ", 1)[0] for line in (result.output or "").splitlines()
                  if line.startswith(("FAILED ", "ERROR ")) and "::" in line]
        mutation = item.mutations[0]
        file = str(Path(mutation.module_path))
        if result.test_outcome != TestOutcome.KILLED or not failed or file not in sources:
            continue
        mutated = mutant_text(sources[file], mutation)
        if mutated is not None:
            killers[mutant_key(file, mutated)] = failed[0]
    path.write_text(json.dumps(killers))


def socket_file(map_path: Path) -> Path:
    return map_path.with_name("pytest.sock")


def serve(map_path: Path) -> int:
    """The mutants' pytest server (one per module, in its copy): imports the libraries the tests import (NumPy, SciPy,
    Gymnasium, torch ...: seconds of every mutant's start-up) once, then forks a fresh process for each mutant's
    tests, which imports the project's own modules from the mutated files. Ends with its parent."""
    import importlib
    import select
    import signal
    import socket

    import pytest  # noqa: F401 (preloaded)

    for name in json.loads(map_path.read_text()).get("preload", []):
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    own = [name for name in sys.modules if name not in ("__main__", "__mp_main__") and own_module(name)]
    if own:  # a library imported the project: its children would not see the mutants
        print(f"mutation.py: preloading imported {own[0]}; no server, each mutant starts its own pytest", flush=True)
        return 1
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_file(map_path)))
    server.listen(1)
    while True:
        connection, _ = server.accept()
        with connection:
            message, fds, _, _ = socket.recv_fds(connection, 16, 2)
            pid = os.fork()
            if pid == 0:  # the mutant's tests, writing to cosmic-ray's pipes; a process group of its own to kill
                server.close()
                connection.close()
                os.setsid()
                os.dup2(fds[0], 1)
                os.dup2(fds[1], 2)
                code = 1
                try:
                    code = test_mutant(map_path, whole=message == b"whole", local=True)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            child = os.pidfd_open(pid)
            ready, _, _ = select.select([child, connection], [], [])
            if child not in ready:  # the client is gone: cosmic-ray's timeout killed it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            os.close(child)
            with contextlib.suppress(OSError):
                connection.sendall(str(code if code >= 0 else 1).encode())


def via_server(map_path: Path, whole: bool) -> int | None:
    """Run a mutant's tests in a process forked by the module's server, if one is up; its exit status."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(socket_file(map_path)))
            socket.send_fds(client, [b"whole" if whole else b"cover"], [1, 2])
        except OSError:
            return None
        reply = b""
        while chunk := client.recv(64):
            reply += chunk
    return int(reply) if reply else None  # no reply: the server died; the tests run here


def test_mutant(map_path: Path, whole: bool = False, local: bool = False) -> int:
    """cosmic-ray's test command (in the copy, the mutant applied): run the tests that cover the mutated statement, or
    the whole selection (`chosen_tests`), with the selection's own collection so the node ids are the map's; in a
    process forked by the module's server (`serve`) when it is up."""
    code = None if local else via_server(map_path, whole)
    if code is not None:
        return code
    import pytest

    coverage_map = json.loads(map_path.read_text())
    killers = json.loads(killers_file(map_path).read_text()) if killers_file(map_path).is_file() else {}
    chosen, first = None, None
    for path, source in coverage_map["sources"].items():
        mutated = Path(path).read_text()
        if mutated != source:
            chosen = None if whole else chosen_tests(coverage_map, path, *changed_lines(source, mutated))
            first = killers.get(mutant_key(path, mutated))
            break
    keep = set(chosen or [])

    class Only:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
            kept = [item for item in items if item.nodeid in keep]
            if chosen is not None and len(kept) == len(keep):  # else (collection changed) the whole selection
                items[:] = kept
            items.sort(key=lambda item: item.nodeid != first)  # the test that killed it last time first (stable)

    print(f"mutation.py: {'the whole selection' if chosen is None else f'{len(chosen)} covering tests'}"
          f"{f', {first} first' if first else ''}{' (forked by the pytest server)' if local else ''}", flush=True)
    return int(pytest.main([*PYTEST, *shlex.split(coverage_map["whole"])], plugins=[Only()]))


def cosmic_ray(tree: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """The cosmic-ray command line, run in the copy."""
    return subprocess.run([str(Path(sys.executable).parent / "cosmic-ray"), *args], cwd=tree, env=tree_env(tree),
                          **kwargs)


def write_config(module: Module, config: dict, whole: bool = False) -> Path:
    """cosmic-ray's config for one module (its files, its tests, the timeout), written anew each run."""
    cfg = WORK / module.name / "cosmic-ray.toml"
    files = ", ".join(f'"{f}"' for f in module.files)
    timeout = float(module.timeout or config["timeout"])
    cfg.write_text(f'[cosmic-ray]\nmodule-path = [{files}]\ntimeout = {timeout}\n'
                   f'excluded-modules = []\ntest-command = "{mutant_command(module, whole)}"\n\n'
                   '[cosmic-ray.distributor]\nname = "local"\n')
    return cfg


def prepare(module: Module, config: dict, tree: Path, equivalent: set) -> tuple[Path, Path]:
    """cosmic-ray's config and a new session for one module, its filtered mutants marked as skipped."""
    cfg, session = write_config(module, config), WORK / module.name / "session.sqlite"
    session.unlink(missing_ok=True)
    cosmic_ray(tree, "init", str(cfg), str(session), "--force", check=True, capture_output=True)
    skip_filtered(module, config, tree, session, equivalent)
    return cfg, session


LISTED = "listed as equivalent in docs/mutation.md"


def mutant_text(source: str, mutation) -> str | None:
    """A mutant's file text, as cosmic-ray writes it."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    operator_class = cosmic_ray.plugins.get_operator(mutation.operator_name)
    return mutate_code(source, operator_class(**(getattr(mutation, "operator_args", None) or {})), mutation.occurrence)


def skip_filtered(module: Module, config: dict, tree: Path, session: Path, equivalent: set) -> None:
    """Mark the pending mutants of excluded operators, outside the module's functions or in annotations as skipped, and
    those docs/mutation.md lists as equivalent (left out of the score whatever their tests say: not worth a run)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    exclude = re.compile("|".join(f"(?:{e})" for e in config.get("exclude-operators", [])) or "(?!)")
    allowed = {path: spans(tree / path, module.functions) for path in module.files} if module.functions else None
    if allowed is not None:
        names = {n for path in module.files for n in module.functions if spans(tree / path, [n])}
        missing = sorted(set(module.functions) - names)
        if missing:
            print(f"  note: {', '.join(missing)} not found in {module.name}'s files (moved or renamed?)")
    annotations = {path: annotation_spans(tree / path) for path in module.files}
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            mutation = item.mutations[0]
            path = str(Path(mutation.module_path))
            line, position = mutation.start_pos[0], tuple(mutation.start_pos)
            why = None
            if exclude.match(mutation.operator_name):
                why = "excluded operator"
            elif allowed is not None and not any(a <= line <= b for a, b in allowed.get(path, [])):
                why = "outside the selected functions"
            elif any(a <= position < b for a, b in annotations[path]):
                why = "in a type annotation"
            elif (path, mutation.operator_name) in {(f, o) for f, o, _ in equivalent}:
                source = (tree / path).read_text()
                mutated = mutant_text(source, mutation) or source
                ops = changes(source, mutated)
                if ops and (path, mutation.operator_name, mutated.splitlines()[ops[0][3]].strip()) in equivalent:
                    why = LISTED
            if why:
                db.set_result(item.job_id, WorkResult(output=why, worker_outcome=WorkerOutcome.SKIPPED))


def mutated_line(diff: str) -> str:
    """The first line a mutant's diff adds, stripped."""
    return next((l[1:].strip() for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")), "")


def forget_survivors(session: Path, job_ids: list[str] | None = None) -> None:
    """Make the session's surviving mutants (or those of them given) pending again (cosmic-ray tests pending mutants
    only)."""
    with sqlite3.connect(session) as db:
        if job_ids is None:
            db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
        db.executemany("DELETE FROM work_results WHERE job_id = ?", [(job_id,) for job_id in job_ids or []])


def results(module: Module, session: Path, tree: Path, equivalent: set) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    killed, survivors, survivor_ids, equivalents, incompetent = 0, [], [], 0, 0
    lines = {path: (tree / path).read_text().splitlines() for path in module.files}
    with use_db(str(session), WorkDB.Mode.open) as db:
        done = {item.job_id: (item, result) for item, result in db.completed_work_items}
        pending = sum(1 for _ in db.pending_work_items)
    for item, result in done.values():
        if result.worker_outcome == WorkerOutcome.SKIPPED:
            equivalents += result.output == LISTED
            continue
        mutation = item.mutations[0]
        path, line = str(Path(mutation.module_path)), mutation.start_pos[0]
        source, mutated = lines[path][line - 1].strip(), mutated_line(result.diff or "")
        if (path, mutation.operator_name, mutated) in equivalent:
            equivalents += 1
        elif result.test_outcome == TestOutcome.KILLED:
            killed += 1
        elif result.test_outcome == TestOutcome.SURVIVED:
            survivors.append((path, line, mutation.operator_name, source, mutated))
            if not (result.output or "").startswith("mutation.py: the whole selection"):
                survivor_ids.append(item.job_id)  # survived only its covering tests
        else:
            incompetent += 1
    return {"killed": killed, "survivors": survivors, "survivor_ids": survivor_ids, "equivalent": equivalents,
            "incompetent": incompetent, "pending": pending}


def last_pass(module: Module) -> Path:
    """The seconds and mutants of the module's last pass: the next one's estimate."""
    return WORK / module.name / "last-pass.json"


class Prepared:
    """A module ready for cosmic-ray exec: its copy, config, session, mutants to test and the estimated minutes."""

    def __init__(self, module: Module, config: dict, tree: Path, cfg: Path, session: Path, count: int,
                 estimate: float, seconds: float) -> None:
        self.module, self.config, self.tree, self.cfg, self.session = module, config, tree, cfg, session
        self.count, self.estimate, self.seconds = count, estimate, seconds


def prepare_module(module: Module, config: dict, args: argparse.Namespace, equivalent: set) -> Prepared:
    """A fresh copy, the session (new, or the last one with --resume), and the map of which tests cover which line
    (one unmutated run of the selection, which must pass)."""
    from cosmic_ray.work_db import WorkDB, use_db

    tree = make_tree(module.name)  # one copy per module: modules run side by side
    check_tree_imports(tree, module)
    cfg, session = WORK / module.name / "cosmic-ray.toml", WORK / module.name / "session.sqlite"
    stamp = WORK / module.name / "sources.sha256"
    sources = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in module.files)).hexdigest()
    if args.resume and session.is_file():
        if not stamp.is_file() or stamp.read_text() != sources:
            raise MutationError(f"{module.name}: its files changed since the last session; "
                                "run it afresh (without --resume)")
        if args.retest_survivors:
            forget_survivors(session)
        write_config(module, config)
        skip_filtered(module, config, tree, session, equivalent)
    else:
        if session.is_file():  # a past session's killers (runs/mutation/MODULE/killers.json) order the new one's tests
            harvest_killers(module, session, tree)
        cfg, session = prepare(module, config, tree, equivalent)
        stamp.write_text(sources)
    start = time.time()
    mapped = subprocess.run([sys.executable, "benchmarks/mutation.py", "--map", module.name, str(map_file(module))],
                            cwd=tree, env=tree_env(tree), capture_output=True, text=True)
    seconds = time.time() - start
    if mapped.returncode != 0:
        raise MutationError(f"{module.name}: the tests fail without any mutant:\n"
                            f"{mapped.stdout[-2000:]}{mapped.stderr[-2000:]}")
    coverage_map = json.loads(map_file(module).read_text())
    with use_db(str(session), WorkDB.Mode.open) as db:
        mutants = [item.mutations[0] for item in db.pending_work_items]
    if last_pass(module).is_file():
        last = json.loads(last_pass(module).read_text())
        estimate, basis = last["seconds"] / last["mutants"] * len(mutants), "at the pace of its last pass"
    else:
        estimate, basis = 0.0, "at most: every covering test, a pytest of its own"
        overhead = max(0.0, seconds - sum(coverage_map["seconds"].values()))  # start-up and collection, once a mutant
        for mutation in mutants:
            chosen = chosen_tests(coverage_map, str(Path(mutation.module_path)), mutation.start_pos[0],
                                  mutation.end_pos[0])
            estimate += overhead + sum(coverage_map["seconds"][t] for t in (chosen or coverage_map["tests"]))
    say(f"{module.name}: {len(mutants)} mutants to test, its tests take {seconds:.0f} s unmutated (under coverage); "
        f"about {estimate / 60:.0f} min ({basis})")
    return Prepared(module, config, tree, cfg, session, len(mutants), estimate, seconds)


@contextlib.contextmanager
def pytest_server(prepared: Prepared, log: IO[str]) -> Iterator[None]:
    """The module's pytest server (`serve`) while its mutants run; without it each mutant starts a pytest of its own."""
    sock = socket_file(map_file(prepared.module))
    sock.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, "benchmarks/mutation.py", "--serve", str(map_file(prepared.module))],
                              cwd=prepared.tree, env=tree_env(prepared.tree), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not sock.exists() and server.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    try:
        yield
    finally:
        server.kill()
        server.wait()
        sock.unlink(missing_ok=True)


def execute(prepared: Prepared, equivalent: set) -> tuple:
    """cosmic-ray exec of a prepared module (its log in runs/mutation/MODULE/exec.log), then its report."""
    module, start = prepared.module, time.time()
    with open(WORK / module.name / "exec.log", "w") as log, pytest_server(prepared, log):
        cosmic_ray(prepared.tree, "exec", str(prepared.cfg), str(prepared.session), check=True, stdout=log,
                   stderr=subprocess.STDOUT)
        outcome = results(module, prepared.session, prepared.tree, equivalent)
        confirm = outcome["survivor_ids"]  # each survivor of only its covering tests again, with the whole selection
        before = len(outcome["survivors"])
        if confirm:
            say(f"{module.name}: {len(confirm)} survivors of their covering tests; again with the whole selection")
            forget_survivors(prepared.session, confirm)
            write_config(module, prepared.config, whole=True)
            try:
                cosmic_ray(prepared.tree, "exec", str(prepared.cfg), str(prepared.session), check=True, stdout=log,
                           stderr=subprocess.STDOUT)
            finally:
                write_config(module, prepared.config)
            outcome = results(module, prepared.session, prepared.tree, equivalent)
    harvest_killers(module, prepared.session, prepared.tree)
    elapsed = time.time() - start
    if prepared.count:
        last_pass(module).write_text(json.dumps({"seconds": elapsed, "mutants": prepared.count}))
    scored = outcome["killed"] + len(outcome["survivors"])
    score = outcome["killed"] / scored if scored else float("nan")
    report = [f"{module.name}: killed {outcome['killed']}/{scored} non-equivalent mutants ({score:.1%}), "
              f"{outcome['equivalent']} equivalent, {outcome['incompetent']} incompetent, in {elapsed / 60:.1f} min; "
              f"{before - len(outcome['survivors'])} of {len(confirm)} survivors of only their covering tests killed "
              "by the whole selection"]
    report += [f"  survived: {path}:{line} {operator}: `{source}` -> `{mutated}`"
               for path, line, operator, source, mutated in outcome["survivors"]]
    say("\n".join(report))
    total = outcome["killed"] + len(outcome["survivors"]) + outcome["equivalent"] + outcome["incompetent"]
    return module.name, total, outcome, score, elapsed


class MutationError(Exception):
    """A module cannot be run (its tests fail unmutated, its files changed under --resume)."""


_PRINT = threading.Lock()
_START = time.time()


def say(text: str) -> None:
    """Print a whole message at once (modules run side by side), stamped with the minutes since the start."""
    with _PRINT:
        print(f"[{(time.time() - _START) / 60:5.1f} min] {text}", flush=True)


def tested(session: Path) -> int:
    """How many of a session's mutants have a result (tested, or skipped by the filters)."""
    try:
        with sqlite3.connect(f"file:{session}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM work_results").fetchone()[0]
    except sqlite3.Error:  # being written: next time
        return -1


def progress(running: dict[str, tuple[Prepared, float, int]], stop: threading.Event, every: float) -> None:
    """Every `every` seconds, each running module's mutant n of N and the minutes it has run."""
    while not stop.wait(every):
        for name, (prepared, start, before) in list(running.items()):
            done = tested(prepared.session)
            if done >= 0:
                say(f"{name}: mutant {done - before} of {prepared.count} done, {(time.time() - start) / 60:.1f} min "
                    f"(estimated {prepared.estimate / 60:.0f})")


def makespan(estimates: list[float], jobs: int) -> float:
    """The time of a pass that runs the modules biggest first, each on the first of `jobs` cores free."""
    loads = [0.0] * jobs
    for estimate in sorted(estimates, reverse=True):
        loads[loads.index(min(loads))] += estimate
    return max(loads)


def main() -> int:
    if sys.argv[1:2] in (["--map"], ["--test-mutant"], ["--serve"]):  # in the copy: by prepare_module and cosmic-ray
        sys.path[0] = os.getcwd()  # as `python -m pytest` has it
        if sys.argv[1] == "--map":
            return map_tests(next(m for m in load_config()[1] if m.name == sys.argv[2]), Path(sys.argv[3]))
        if sys.argv[1] == "--serve":
            return serve(Path(sys.argv[2]))
        return test_mutant(Path(sys.argv[2]), whole=sys.argv[3:] == ["--whole"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module names from benchmarks/mutation.toml (default: all)")
    parser.add_argument("--dry-run", action="store_true",
                        help="count the mutants, map the tests and estimate each module's minutes; test no mutant")
    parser.add_argument("--resume", action="store_true",
                        help="continue each module's last session (its untested mutants; with --retest-survivors, its "
                             "survivors too) with the current tests; the mutated files must be unchanged")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="with --resume: test the survivors again (after writing tests that should kill them)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="modules run side by side (one core each), the biggest first (make mutation: 2)")
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (default 60)")
    args = parser.parse_args()
    config, modules = load_config()
    unknown = set(args.modules) - {m.name for m in modules}
    if unknown:
        fail(f"unknown module {sorted(unknown)[0]!r}; benchmarks/mutation.toml has {', '.join(m.name for m in modules)}")
    chosen = [m for m in modules if not args.modules or m.name in args.modules]
    equivalent = equivalent_mutants()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            prepared = list(pool.map(lambda m: prepare_module(m, config, args, equivalent), chosen))
    except MutationError as error:
        fail(str(error))
    say(f"expected: about {makespan([p.estimate for p in prepared], args.jobs) / 60:.0f} min with {args.jobs} "
        f"job(s) (the sum of the modules: {sum(p.estimate for p in prepared) / 60:.0f} min)")
    summary = []
    if not args.dry_run:
        running: dict[str, tuple[Prepared, float, int]] = {}
        stop = threading.Event()
        threading.Thread(target=progress, args=(running, stop, args.progress), daemon=True).start()

        def run(prepared_module: Prepared) -> tuple:
            running[prepared_module.module.name] = (prepared_module, time.time(), tested(prepared_module.session))
            try:
                return execute(prepared_module, equivalent)
            finally:
                running.pop(prepared_module.module.name)

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            summary = list(pool.map(run, sorted(prepared, key=lambda p: -p.estimate)))
        stop.set()
    print("\nmodule            mutants  killed/scored   score   minutes (this run)")
    for p in prepared if args.dry_run else []:
        print(f"{p.module.name:<17} {p.count:>7}  (dry run: about {p.estimate / 60:.0f} min)")
    for name, count, outcome, score, elapsed in summary:
        scored = outcome["killed"] + len(outcome["survivors"])
        print(f"{name:<17} {count:>7}  {outcome['killed']:>6}/{scored:<6}  {score:>6.1%}  {elapsed / 60:>7.1f}")
    print(f"\nreproduce: python benchmarks/mutation.py -j {args.jobs} {' '.join(args.modules)}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
