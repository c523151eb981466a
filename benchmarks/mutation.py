"""Mutation testing of the code that decides results: plant one small bug at a time and see whether the tests notice.

Uses cosmic-ray (a maintained mutation-testing tool) on the modules of benchmarks/mutation.toml, each with only the
tests that cover it. Mutants are applied to a private copy of the repository (runs/mutation/MODULE/tree, made anew
each time), so the working tree is never touched, also when a run is interrupted (continue with --resume); the copy imports its own `promptpo_bench` (tasks/ and
descriptions/ are linked into the package as the editable install maps them), subprocesses and sandbox workers too.

    python benchmarks/mutation.py                    # every module (make mutation); about an hour on 2 cores
    python benchmarks/mutation.py noiseworld         # some modules
    python benchmarks/mutation.py --dry-run          # count the mutants and time each module's tests, run nothing

Prints, per module, mutants killed / non-equivalent mutants, the score, the runtime and every survivor (file, line,
operator, the mutated line). Equivalent mutants are listed in docs/mutation.md, each with its reason.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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


def fail(message: str) -> None:
    print(f"mutation.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def load_config() -> tuple[dict, list[Module]]:
    config = tomllib.loads(CONFIG.read_text())
    modules = [Module(m["name"], m["files"], m.get("functions", []), m["tests"], m.get("timeout"))
               for m in config["module"]]
    for module in modules:
        for path in module.files:
            if not (ROOT / path).is_file():
                fail(f"{CONFIG.name}: module {module.name} names {path}, which does not exist (moved? edit the toml)")
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
            "PYTHONDONTWRITEBYTECODE": "1", "WANDB_MODE": "offline"}


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


def test_command(module: Module) -> str:
    return f"{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly {module.tests}"


def cosmic_ray(tree: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """The cosmic-ray command line, run in the copy."""
    return subprocess.run([str(Path(sys.executable).parent / "cosmic-ray"), *args], cwd=tree, env=tree_env(tree),
                          **kwargs)


def write_config(module: Module, config: dict) -> Path:
    """cosmic-ray's config for one module (its files, its tests, the timeout), written anew each run."""
    cfg = WORK / module.name / "cosmic-ray.toml"
    files = ", ".join(f'"{f}"' for f in module.files)
    timeout = float(module.timeout or config["timeout"])
    cfg.write_text(f'[cosmic-ray]\nmodule-path = [{files}]\ntimeout = {timeout}\n'
                   f'excluded-modules = []\ntest-command = "{test_command(module)}"\n\n'
                   '[cosmic-ray.distributor]\nname = "local"\n')
    return cfg


def prepare(module: Module, config: dict, tree: Path) -> tuple[Path, Path]:
    """cosmic-ray's config and a new session for one module, its filtered mutants marked as skipped."""
    cfg, session = write_config(module, config), WORK / module.name / "session.sqlite"
    session.unlink(missing_ok=True)
    cosmic_ray(tree, "init", str(cfg), str(session), "--force", check=True, capture_output=True)
    skip_filtered(module, config, tree, session)
    return cfg, session


def skip_filtered(module: Module, config: dict, tree: Path, session: Path) -> None:
    """Mark the pending mutants of excluded operators, outside the module's functions or in annotations as skipped."""
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
            if why:
                db.set_result(item.job_id, WorkResult(output=why, worker_outcome=WorkerOutcome.SKIPPED))


def mutated_line(diff: str) -> str:
    """The first line a mutant's diff adds, stripped."""
    return next((l[1:].strip() for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")), "")


def forget_survivors(session: Path) -> None:
    """Make the session's surviving mutants pending again (cosmic-ray tests pending mutants only)."""
    with sqlite3.connect(session) as db:
        db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")


def results(module: Module, session: Path, tree: Path, equivalent: set) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    killed, survivors, equivalents, incompetent, pending = 0, [], 0, 0, 0
    lines = {path: (tree / path).read_text().splitlines() for path in module.files}
    with use_db(str(session), WorkDB.Mode.open) as db:
        done = {item.job_id: (item, result) for item, result in db.completed_work_items}
        pending = sum(1 for _ in db.pending_work_items)
    for item, result in done.values():
        if result.worker_outcome == WorkerOutcome.SKIPPED:
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
        else:
            incompetent += 1
    return {"killed": killed, "survivors": survivors, "equivalent": equivalents, "incompetent": incompetent,
            "pending": pending}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module names from benchmarks/mutation.toml (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="count the mutants and time the tests only")
    parser.add_argument("--resume", action="store_true",
                        help="continue each module's last session (its untested mutants; with --retest-survivors, its "
                             "survivors too) with the current tests; the mutated files must be unchanged")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="with --resume: test the survivors again (after writing tests that should kill them)")
    args = parser.parse_args()
    config, modules = load_config()
    unknown = set(args.modules) - {m.name for m in modules}
    if unknown:
        fail(f"unknown module {sorted(unknown)[0]!r}; benchmarks/mutation.toml has {', '.join(m.name for m in modules)}")
    chosen = [m for m in modules if not args.modules or m.name in args.modules]
    equivalent = equivalent_mutants()
    summary = []
    for module in chosen:
        tree = make_tree(module.name)  # one copy per module: modules can be run side by side
        check_tree_imports(tree, module)
        cfg, session = WORK / module.name / "cosmic-ray.toml", WORK / module.name / "session.sqlite"
        stamp = WORK / module.name / "sources.sha256"
        sources = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in module.files)).hexdigest()
        if args.resume and session.is_file():
            if not stamp.is_file() or stamp.read_text() != sources:
                fail(f"{module.name}: its files changed since the last session; run it afresh (without --resume)")
            if args.retest_survivors:
                forget_survivors(session)
            write_config(module, config)
            skip_filtered(module, config, tree, session)
        else:
            cfg, session = prepare(module, config, tree)
            stamp.write_text(sources)
        from cosmic_ray.work_db import WorkDB, use_db

        with use_db(str(session), WorkDB.Mode.open) as db:
            count = sum(1 for _ in db.pending_work_items)
        start = time.time()
        baseline = subprocess.run(test_command(module), shell=True, cwd=tree, env=tree_env(tree),
                                  capture_output=True, text=True)
        seconds = time.time() - start
        if baseline.returncode != 0:
            fail(f"{module.name}: the tests fail without any mutant:\n{baseline.stdout[-2000:]}")
        print(f"{module.name}: {count} mutants, tests take {seconds:.0f} s unmutated "
              f"(at most ~{count * seconds / 60:.0f} min)", flush=True)
        if args.dry_run:
            summary.append((module.name, count, None, None, seconds))
            continue
        start = time.time()
        cosmic_ray(tree, "exec", str(cfg), str(session), check=True)
        elapsed = time.time() - start
        outcome = results(module, session, tree, equivalent)
        scored = outcome["killed"] + len(outcome["survivors"])
        score = outcome["killed"] / scored if scored else float("nan")
        total = outcome["killed"] + len(outcome["survivors"]) + outcome["equivalent"] + outcome["incompetent"]
        summary.append((module.name, total, outcome, score, elapsed))
        print(f"{module.name}: killed {outcome['killed']}/{scored} non-equivalent mutants ({score:.1%}), "
              f"{outcome['equivalent']} equivalent, {outcome['incompetent']} incompetent, in {elapsed / 60:.1f} min")
        for path, line, operator, source, mutated in outcome["survivors"]:
            print(f"  survived: {path}:{line} {operator}: `{source}` -> `{mutated}`")
    print("\nmodule            mutants  killed/scored   score   minutes (this run)")
    for name, count, outcome, score, elapsed in summary:
        if outcome is None:
            print(f"{name:<17} {count:>7}  (dry run: tests take {elapsed:.0f} s)")
        else:
            scored = outcome["killed"] + len(outcome["survivors"])
            print(f"{name:<17} {count:>7}  {outcome['killed']:>6}/{scored:<6}  {score:>6.1%}  {elapsed / 60:>7.1f}")
    print(f"\nreproduce: python benchmarks/mutation.py {' '.join(args.modules)}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
