"""benchmarks/mutation.py's test selection: which tests a mutant runs must include every test that can see it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("mutation_runner", REPO / "benchmarks" / "mutation.py")
mutation = sys.modules["mutation_runner"] = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mutation)

SOURCE = textwrap.dedent("""\
    LIMIT = 3


    def f(x):
        y = (x +
             1)
        if (y >
                LIMIT):
            return 1
        else:
            return 2


    def g(x):
        try:
            return 1 / x
        except ZeroDivisionError:
            return 0


    import functools  # noqa: E402


    @functools.lru_cache
    def h():
        return LIMIT  # line 26
    """)


def test_changed_lines_are_the_lines_of_the_original_a_mutation_replaced():
    mutated = SOURCE.replace("LIMIT):", "LIMIT + 1):")
    assert mutation.changed_lines(SOURCE, mutated) == (8, 8)
    assert mutation.changed_lines(SOURCE, SOURCE.replace("1)\n", "2)\n").replace("return 2", "return 3")) == (6, 11)


def test_statement_lines_cover_a_whole_simple_statement_and_only_a_compound_ones_header():
    assert list(mutation.statement_lines(SOURCE, 6, 6)) == [5, 6]  # the second line of `y = (x +\n 1)`
    assert list(mutation.statement_lines(SOURCE, 8, 8)) == [7, 8]  # the `if`'s two-line condition, not its body
    assert list(mutation.statement_lines(SOURCE, 11, 11)) == [11]  # in the `else` branch
    assert list(mutation.statement_lines(SOURCE, 17, 17)) == [17]  # the `except` clause's header
    assert list(mutation.statement_lines(SOURCE, 1, 1)) == [1]


def coverage_map(**changes) -> dict:
    lines = {"5": ["t::a", "t::c"], "6": ["t::b"], "7": ["t::a"], "1": [mutation.SHARED],
             "9": ["t::a", mutation.SHARED]}
    return {"whole": "t", "in_process": ["m.py"], "tests": ["t::a", "t::b", "t::c", "t::d"], "spawning": ["t::d"],
            "lines": {"m.py": lines}, "sources": {"m.py": SOURCE}, **changes}


def test_a_mutant_runs_the_tests_that_run_any_line_of_its_statement_in_the_selections_order():
    assert mutation.chosen_tests(coverage_map(), "m.py", 5, 5) == ["t::a", "t::b", "t::c"]
    assert mutation.chosen_tests(coverage_map(), "m.py", 8, 8) == ["t::a"]


def test_a_mutant_of_code_run_outside_one_test_or_by_no_test_runs_the_whole_selection():
    assert mutation.chosen_tests(coverage_map(), "m.py", 1, 1) is None  # at import
    assert mutation.chosen_tests(coverage_map(), "m.py", 9, 9) is None  # in a shared fixture too
    assert mutation.chosen_tests(coverage_map(), "m.py", 16, 16) is None  # by no test in the test process


def test_the_tests_that_spawn_processes_join_a_mutant_in_a_file_not_declared_in_process():
    assert mutation.chosen_tests(coverage_map(in_process=[]), "m.py", 7, 8) == ["t::a", "t::d"]
    assert mutation.chosen_tests(coverage_map(in_process=[], spawning=[mutation.SHARED]), "m.py", 7, 8) is None


def test_the_map_and_a_mutants_run_in_a_toy_repository(tmp_path):
    (tmp_path / "toy.py").write_text(SOURCE)
    (tmp_path / "test_toy.py").write_text(textwrap.dedent("""\
        import subprocess, sys
        import pytest
        import toy

        @pytest.fixture(scope="module")
        def shared():
            return toy.g(0)

        def test_f():
            assert toy.f(5) == 1

        def test_g(shared):
            assert toy.g(2) == 0.5 and shared == 0

        def test_spawns():
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        def test_h_first():
            assert toy.h() == 3

        def test_h_again():  # reads the cached value: mapped to h's body all the same
            assert toy.h() == 3
        """))
    run = ("import importlib.util, sys; from pathlib import Path; "
           f"spec = importlib.util.spec_from_file_location('m', {str(REPO / 'benchmarks' / 'mutation.py')!r}); "
           "m = sys.modules['m'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
           "m.ROOT = Path.cwd(); "
           "sys.exit(m.map_tests(m.Module('toy', ['toy.py'], [], 'test_toy.py'), Path('map.json')))")
    subprocess.run([sys.executable, "-c", run], cwd=tmp_path, check=True, capture_output=True)
    mapped = json.loads((tmp_path / "map.json").read_text())
    ids = ["test_toy.py::test_f", "test_toy.py::test_g", "test_toy.py::test_spawns", "test_toy.py::test_h_first",
           "test_toy.py::test_h_again"]
    assert mapped["tests"] == ids and set(mapped["seconds"]) == set(ids) and mapped["spawning"] == [ids[2]]
    lines = mapped["lines"]["toy.py"]
    assert lines["1"] == [mutation.SHARED] and lines["5"] == [ids[0]] and "11" not in lines
    assert lines["16"] == [mutation.SHARED, ids[1]]  # g(0) in the module-scoped fixture, g(2) in test_g
    assert lines["18"] == [mutation.SHARED]
    assert lines["26"] == sorted(ids[3:])  # both tests that read h(), though the second found it cached
    assert mutation.chosen_tests(mapped, "toy.py", 5, 5) == [ids[0], ids[2]]  # toy.py is not declared in-process

    (tmp_path / "toy.py").write_text(SOURCE.replace("return 1\n", "return 7\n", 1))
    mutant = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mutation.py"), "--test-mutant", "map.json"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert "2 covering tests" in mutant.stdout and "1 failed" in mutant.stdout and mutant.returncode == 1
    whole = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mutation.py"), "--test-mutant", "map.json",
                            "--whole"], cwd=tmp_path, capture_output=True, text=True)  # how a survivor is confirmed
    assert "the whole selection" in whole.stdout and "1 failed in" in whole.stdout and whole.returncode == 1

    server = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "mutation.py"), "--serve", "map.json"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not (tmp_path / "pytest.sock").exists():
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.05)
        forked = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mutation.py"), "--test-mutant", "map.json"],
                                cwd=tmp_path, capture_output=True, text=True)
    finally:
        server.kill()
    assert "2 covering tests (forked by the pytest server)" in forked.stdout and "1 failed" in forked.stdout
    assert forked.returncode == 1

    killer = mutation.mutant_key("toy.py", (tmp_path / "toy.py").read_text())  # as if test_g had killed it before
    (tmp_path / "killers.json").write_text(json.dumps({killer: ids[1], "another mutant": ids[0]}))
    first = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mutation.py"), "--test-mutant", "map.json",
                            "--whole"], cwd=tmp_path, capture_output=True, text=True)
    assert f"{ids[1]} first" in first.stdout and "1 failed, 1 passed" in first.stdout and first.returncode == 1


def test_a_mutant_listed_as_equivalent_is_skipped_and_counted_as_equivalent(tmp_path):
    (tmp_path / "toy.py").write_text(SOURCE)
    (tmp_path / "cr.toml").write_text('[cosmic-ray]\nmodule-path = ["toy.py"]\ntimeout = 10.0\nexcluded-modules = []\n'
                                      'test-command = "false"\n\n[cosmic-ray.distributor]\nname = "local"\n')
    session = tmp_path / "session.sqlite"
    subprocess.run([str(Path(sys.executable).parent / "cosmic-ray"), "init", "cr.toml", str(session)], cwd=tmp_path,
                   check=True, capture_output=True)
    module = mutation.Module("toy", ["toy.py"], [], "test_toy.py")
    listed = {("toy.py", "core/NumberReplacer", "LIMIT = 4")}
    mutation.skip_filtered(module, {"exclude-operators": ["core/(?!NumberReplacer)"]}, tmp_path, session, listed)
    outcome = mutation.results(module, session, tmp_path, listed)
    assert outcome["equivalent"] == 1 and outcome["killed"] == 0 and not outcome["survivors"]
    assert outcome["pending"] > 1  # LIMIT = 2 and the other numbers are still to be tested
