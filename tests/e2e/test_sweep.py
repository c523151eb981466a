"""`promptpo-bench sweep`: the grid, the local and the Ray backend, kill-and-rerun, W&B groups, Ctrl-C, --submit.

Sweeps run the real algorithm files as subprocesses (short budgets: 2,048 steps); PromptPO talks to the tests'
scripted OpenAI-compatible server on 127.0.0.1 (a test double, not an LLM).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scripted_server import Scripted, ScriptedLLMServer
from test_promptpo import DOWN_THEN_RIGHT, FEEDBACK, REFLECTION, kind
from wandb_offline import run_group

from promptpo_bench import sweep
from promptpo_bench.errors import BenchError
from promptpo_bench.records import load_record

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
BOARDS = "NoiseWorld-Board0-v0,NoiseWorld-Board1-v0"
SMALL = "--eval-episodes 5 --periodic-eval-episodes 2"
GRID = ("--algos", "ppo,dqn", "--tasks", BOARDS, "--seeds", "1-2", "--budget", "2048",
        "--args", f"ppo={SMALL}", "--args", f"dqn={SMALL}")


def run_sweep(*args: str, env: dict | None = None, check: bool = True, timeout: float = 400
              ) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OPENAI_API_KEY": "test-key", "WANDB_MODE": "offline", **(env or {})}
    result = subprocess.run([sys.executable, "-m", "promptpo_bench.cli", "sweep", *args], capture_output=True,
                            text=True, env=environ, cwd=ROOT, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def pid_of(run_dir: Path) -> int | None:
    """The process whose command line has `--run-dir RUN_DIR` (the run itself), if it is alive."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if "--run-dir" in argv and str(run_dir) in argv:
            return int(proc.name)
    return None


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


# ---- the grid, in-process ----------------------------------------------------------------------------------------


def test_grid_commands_budget_flags_and_sweep_file_agree(tmp_path):
    options = {"algos": "ppo,promptpo", "tasks": BOARDS, "seeds": "1-2,5", "budget": "3000,promptpo=500",
               "args": ["promptpo=--llm-base-url http://127.0.0.1:9/v1 --num-rounds 2"], "out": str(tmp_path / "s")}
    runs = sweep.build_sweep(options).runs()
    assert [(r.seed, r.env_id, r.algo) for r in runs[:4]] == [
        (1, "NoiseWorld-Board0-v0", "ppo"), (1, "NoiseWorld-Board0-v0", "promptpo"),
        (1, "NoiseWorld-Board1-v0", "ppo"), (1, "NoiseWorld-Board1-v0", "promptpo")]
    assert len(runs) == 12 and {r.seed for r in runs} == {1, 2, 5}
    ppo, promptpo = runs[0], runs[1]
    assert ppo.command()[1:] == [str(ROOT / "algorithms" / "ppo.py"), "--env-id", "NoiseWorld-Board0-v0", "--seed",
                                 "1", "--run-dir", str(tmp_path / "s" / "NoiseWorld-Board0-v0__ppo__1"),
                                 "--total-timesteps", "3000"]
    assert promptpo.flags[6:] == ("--max-env-steps", "500", "--llm-base-url", "http://127.0.0.1:9/v1",
                                  "--num-rounds", "2")
    assert ppo.llm_endpoint is None and promptpo.llm_endpoint == "http://127.0.0.1:9/v1"
    assert sweep.llm_resource(promptpo.llm_endpoint) == "llm_http_127_0_0_1_9_v1"

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(f"""algos = ["ppo", "promptpo"]
tasks = {json.dumps(BOARDS.split(","))}
seeds = [1, 2, 5]
budget = {{default = 3000, promptpo = 500}}
out = "{tmp_path / 's'}"
[args]
promptpo = ["--llm-base-url", "http://127.0.0.1:9/v1", "--num-rounds", "2"]
""")
    assert sweep.build_sweep(sweep.load_sweep_file(sweep_file)).runs() == runs


@pytest.mark.parametrize("options,message", [
    ({"algos": "ppo,a2c"}, "no algorithm file"),
    ({"tasks": "NoiseWorld-Board9-v0"}, "unknown env id 'NoiseWorld-Board9-v0'; did you mean"),
    ({"seeds": "3-1"}, "seeds must look like 1-5"),
    ({"budget": "dqn=100"}, "--budget names 'dqn'"),
    ({"args": ["ppo --num-envs 4"]}, "--args must be ALGO='FLAGS'"),
    ({"jobs": 0}, "--jobs must be at least 1"),
    ({"configs": ["ppo=--ent-coef 0.05"]}, "--configs must be ALGO:NAME='FLAGS'"),
    ({"configs": ["ppo:a b=--ent-coef 0.05"]}, "--configs must be ALGO:NAME='FLAGS'"),
    ({"configs": ["dqn:x=--ent-coef 0.05"]}, "--configs names 'dqn'"),
    ({"configs": ["ppo:x=", "ppo:x=--gamma 0.9"]}, "--configs names ppo:x twice"),
    ({"configs": {"ppo": {"ent-0": {"05": "--ent-coef 0.05"}}}}, "quote a name with dots"),
])
def test_bad_input_is_a_one_line_error(tmp_path, options, message):
    base = {"algos": "ppo", "tasks": "NoiseWorld-Board0-v0", "seeds": "1", "out": str(tmp_path)}
    with pytest.raises(BenchError, match=re.escape(message)):
        sweep.build_sweep({**base, **options})


def test_configurations_of_a_tuning_sweep_are_their_own_runs_and_the_best_mean_is_picked(tmp_path):
    options = {"algos": "ppo,dqn", "tasks": BOARDS, "seeds": "101", "out": str(tmp_path), "budget": "5000",
               "args": ["ppo=--eval-episodes 5"], "configs": ["ppo:default=", "ppo:ent-0.05=--ent-coef 0.05"]}
    runs = sweep.build_sweep(options).runs()
    assert [(r.env_id, r.method) for r in runs[:3]] == [
        ("NoiseWorld-Board0-v0", "ppo[default]"), ("NoiseWorld-Board0-v0", "ppo[ent-0.05]"),
        ("NoiseWorld-Board0-v0", "dqn")]
    tuned = runs[1]
    assert tuned.run_dir == tmp_path / "NoiseWorld-Board0-v0__ppo-ent-0.05__101"
    assert tuned.flags[6:] == ("--total-timesteps", "5000", "--eval-episodes", "5", "--ent-coef", "0.05")
    assert runs[0].flags[6:] == ("--total-timesteps", "5000", "--eval-episodes", "5")
    assert sweep.build_sweep({**options, "configs": {"ppo": {"default": "", "ent-0.05": ["--ent-coef", "0.05"]}}}
                             ).runs() == runs

    def row(task, config, scores):
        return {"task": task, "algo": "ppo", "config": config, "seeds": list(range(len(scores))),
                "mean": sum(scores) / len(scores) if scores else None}
    rows = [row("a", "default", [0.5, 0.5]), row("a", "wide", [0.9, 0.7]), row("a", "deep", [1.0, 1.0]),
            row("b", "default", [0.5, 0.5]), row("b", "wide", [0.2, 0.4]), row("b", "deep", [1.0]),
            {"task": "a", "algo": "dqn", "config": None, "seeds": [0, 1], "mean": 0.0}]
    picks = sweep.pick_configs(rows, planned_seeds=2)
    # deep is best but unfinished on b; wide (0.8 and 0.3: 0.55) beats default (0.5)
    assert picks == {"ppo": {"scores": {"default": 0.5, "wide": pytest.approx(0.55), "deep": None}, "picked": "wide"}}
    assert "[tune] ppo: picked wide (mean score over tasks: default 0.500, wide 0.550, deep (unfinished))" \
        == sweep.format_picks(picks)
    tie = sweep.pick_configs([row("a", "default", [0.5]), row("a", "other", [0.5])], planned_seeds=1)
    assert tie["ppo"]["picked"] == "default"


def test_a_run_is_scored_by_success_rate_where_its_task_is_scored_by_success():
    """Meta-World's tuning picks by success, as the paper ranks it: its expert-return reference is no upper bound."""
    hoarder = {"env_id": "MetaWorld-ButtonPress-v0", "env_kwargs": {},
               "final_eval": {"mean_return": 4_378.0, "success_rate": 0.6}}
    assert sweep._score(hoarder, {}) == (0.6, True)
    reference = sweep.registry.reference_scores("NoiseWorld-Board0-v0")
    board = {"env_id": "NoiseWorld-Board0-v0", "env_kwargs": {}, "final_eval": {"mean_return": 100.0}}
    assert sweep._score(board, {}) == (pytest.approx(sweep.registry.normalised(100.0, reference)), True)
    plain = {"env_id": "CartPole-v1", "env_kwargs": {}, "final_eval": {"mean_return": 100.0}}
    assert sweep._score(plain, {}) == (100.0, False)  # not a suite task: its raw return, marked as such


def test_a_run_whose_final_evaluation_failed_is_counted_failed_not_scored(tmp_path):
    """A policy that crashes in the held-out evaluation leaves partial returns, 0 for every episode it never played:
    on a task whose returns are negative that mean would beat the optimum, so such a run gets no score."""
    from promptpo_bench.records import RunRecorder, final_eval
    from promptpo_bench.rollout import Episodes, heldout_seeds

    runs = sweep.build_sweep({"algos": "ppo", "tasks": "NoiseWorld-Board0-v0", "seeds": "1-2", "out": str(tmp_path),
                              "budget": "5000"}).runs()
    for run, failure in zip(runs, (None, {"kind": "crash", "message": "boom", "traceback": None,
                                          "episode_id": 0})):
        recorder = RunRecorder(run.run_dir, algorithm="ppo", env_id=run.env_id, env_kwargs={}, seed=run.seed,
                               config={}, command=f"python algorithms/ppo.py --env-id {run.env_id} --seed {run.seed}")
        recorder.add_point(5000, -25.0)
        (run.run_dir / "model.pt").write_bytes(b"placeholder")
        returns = [-25.0] * 10 if failure is None else [0.0] * 10
        episodes = Episodes(heldout_seeds(10), np.array(returns), np.full(10, 50), None)
        recorder.finish(totals={"env_steps": 5000, "episodes": 10, "llm_calls": 0, "prompt_tokens": 0,
                                "completion_tokens": 0, "cost_usd": None},
                        final_eval=final_eval(episodes, failure), policy_path="model.pt", policy_kind="torch")
    (row,) = sweep.summarize(runs)
    assert row["seeds"] == [1] and row["failed"] == [2] and len(row["scores"]) == 1


def test_a_directory_holding_another_run_is_refused(tmp_path):
    base = {"algos": "ppo", "tasks": "NoiseWorld-Board0-v0", "seeds": "1", "out": str(tmp_path)}
    (run,) = sweep.build_sweep(base).runs()
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "notes.txt").write_text("mine")
    with pytest.raises(BenchError, match="was not written by a sweep"):
        sweep.state(run)


# ---- the tiny sweep: 2 algorithms x 2 NoiseWorld boards x 2 seeds, local and on Ray -------------------------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("local")
    return out, run_sweep(*GRID, "--out", str(out), "--jobs", "2")


def test_local_sweep_runs_every_cell_as_its_own_command(local_sweep):
    out, result = local_sweep
    runs = sweep.build_sweep({"algos": "ppo,dqn", "tasks": BOARDS, "seeds": "1-2", "budget": "2048",
                              "args": [f"ppo={SMALL}", f"dqn={SMALL}"], "out": str(out)}).runs()
    assert sorted(r.run_dir for r in runs) == run_dirs(out)
    for run in runs:
        record = load_record(run.run_dir)  # schema-valid
        assert (record["algorithm"], record["env_id"], record["seed"]) == (run.algo, run.env_id, run.seed)
        assert shlex.split(record["command"])[1:] == run.command()[1:]  # what a user would type, by hand
        assert record["totals"]["env_steps"] == 2048
    # progress: one line per start and per end, readable in a log (stdout is not a terminal here)
    assert result.stdout.count("[sweep] start") == 8 and result.stdout.count("[sweep] done") == 8
    assert "8/8 done, 0 running, 0 failed, 0 queued" in result.stdout and "\r" not in result.stdout
    table = result.stdout[result.stdout.index("task "):].splitlines()
    assert [line.split()[:3] for line in table[1:5]] == [[t, a, "2/2"] for t in BOARDS.split(",")
                                                           for a in ("ppo", "dqn")]
    summary = json.loads((out / "summary.json").read_text())
    row = summary["rows"][0]
    reference = sweep.registry.reference_scores("NoiseWorld-Board0-v0")
    scores = [sweep.registry.normalised(load_record(out / f"NoiseWorld-Board0-v0__ppo__{s}")["final_eval"]
                                        ["mean_return"], reference) for s in (1, 2)]
    assert row["mean"] == pytest.approx(sum(scores) / 2) and row["normalised"]


def test_rerun_skips_finished_runs_and_extends_the_grid_with_tracked_runs(local_sweep):
    out, _ = local_sweep
    before = {p: (p / "record.json").stat().st_mtime_ns for p in run_dirs(out)}
    # seeds 1-2 are finished (--track changes logging, not results; the early stop only where a run ends, not its
    # course); seed 3 is new, stops early if it holds the target, and goes to W&B, grouped
    result = run_sweep("--algos", "ppo", "--tasks", "NoiseWorld-Board0-v0", "--seeds", "1-3", "--budget", "2048",
                       "--args", f"ppo={SMALL} --early-stop-fraction 0.9", "--out", str(out), "--track",
                       "--wandb-group", "tiny-sweep")
    assert "2 finished (skipped), 0 to resume, 0 to restart, 1 new" in result.stdout
    assert result.stdout.count("[sweep] start") == 1
    assert {p: (p / "record.json").stat().st_mtime_ns for p in before} == before
    new = out / "NoiseWorld-Board0-v0__ppo__3"
    assert "--wandb-group tiny-sweep" in load_record(new)["command"]
    assert "--early-stop-fraction 0.9" in load_record(new)["command"]
    assert run_group(new) == "tiny-sweep"


def test_a_finished_run_written_in_another_checkout_counts_as_finished(local_sweep, tmp_path):
    """A clone elsewhere (or a moved results folder) resumes the committed sweep: the --run-dir a record names is
    where it was written, not what it holds."""
    out, _ = local_sweep
    shutil.copytree(out / "NoiseWorld-Board0-v0__ppo__1", tmp_path / "NoiseWorld-Board0-v0__ppo__1")
    run = next(r for r in sweep.build_sweep({"algos": "ppo", "tasks": "NoiseWorld-Board0-v0", "seeds": "1",
                                             "budget": "2048", "args": [f"ppo={SMALL}"], "out": str(tmp_path)}).runs())
    assert str(out) in load_record(run.run_dir)["command"] and sweep.state(run) == "finished"


def test_ray_sweep_gives_the_same_runs_as_the_local_one_and_retries_a_lost_worker(local_sweep, tmp_path):
    pytest.importorskip("ray")
    local_out, _ = local_sweep
    environ = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "promptpo_bench.cli", "sweep", *GRID, "--out", str(tmp_path),
                             "--backend", "ray", "--jobs", "2"], cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    # the Ray worker running one run dies (as with a lost node): the run dies with it, and Ray runs the task again
    lost = tmp_path / "NoiseWorld-Board0-v0__ppo__1"
    wait_for(lambda: (lost / "curve.jsonl").exists())
    first_try = pid_of(lost)
    worker = int(Path(f"/proc/{first_try}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    os.kill(worker, signal.SIGKILL)
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output
    assert not Path(f"/proc/{first_try}").exists()  # the run did not outlive its worker
    assert output.count("[sweep] done") == 8 and "8 runs finished, 0 failed" in output
    assert "started a Ray instance on this machine at 127.0.0.1:" in output  # loopback only
    assert json.loads((lost / "sweep.json").read_text())["attempts"] == 2
    for local in run_dirs(local_out):
        if local.name.endswith("__3"):  # added by the rerun test
            continue
        here = tmp_path / local.name
        record, expected = load_record(here), load_record(local)
        assert shlex.split(record["command"])[2:] == [a.replace(str(local_out), str(tmp_path))
                                                     for a in shlex.split(expected["command"])[2:]]
        assert record["final_eval"]["returns"] == expected["final_eval"]["returns"]  # same seeds, same result
    assert run_sweep(*GRID, "--out", str(tmp_path), "--backend", "ray", "--dry-run").stdout.count("finished ") == 8


# ---- kill one run mid-sweep, rerun --------------------------------------------------------------------------------


def test_killed_runs_are_resumed_or_restarted_and_nothing_finished_is_recomputed(tmp_path):
    def respond(request, _):  # answers depend only on the request
        if kind(request) == "policy":
            return Scripted(text=DOWN_THEN_RIGHT, delay_s=0.2)
        return {"feedback": FEEDBACK, "reflection": REFLECTION}[kind(request)]

    out = tmp_path / "sweep"
    with ScriptedLLMServer(respond) as server:
        args = ("--algos", "ppo,promptpo", "--tasks", "NoiseWorld-Board0-v0", "--seeds", "1-2", "--out", str(out),
                "--budget", "ppo=6144", "--args", f"ppo={SMALL} --eval-every 1024",
                "--args", f"promptpo=--num-rounds 3 --num-candidates 2 --eval-episodes 5 --llm-max-concurrency 1 "
                          f"--num-workers 1 --llm-base-url {server.base_url}",
                "--jobs", "4", "--max-concurrent-llm-runs", "1")
        environ = {**os.environ, "OPENAI_API_KEY": "test-key"}
        first = subprocess.Popen([sys.executable, "-m", "promptpo_bench.cli", "sweep", *args], cwd=ROOT, env=environ,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        llm_run, ppo_run = out / "NoiseWorld-Board0-v0__promptpo__1", out / "NoiseWorld-Board0-v0__ppo__2"
        journal, curve = llm_run / "llm.jsonl", ppo_run / "curve.jsonl"
        wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 4)
        os.kill(pid_of(llm_run), signal.SIGKILL)
        wait_for(lambda: curve.exists() and len(curve.read_text().splitlines()) >= 2)
        os.kill(pid_of(ppo_run), signal.SIGKILL)
        output, _ = first.communicate(timeout=300)
        assert first.returncode == 1, output
        answered = len(journal.read_text().splitlines())
        for killed in (llm_run, ppo_run):
            failure = json.loads((killed / "failed.json").read_text())
            assert failure["error"] == "killed by signal 9" and failure["log_tail"]
            assert not (killed / "record.json").exists()
        assert output.count("[sweep] start") == 4 and output.count("FAILED") == 2  # not retried in the sweep
        assert "2/4 done, 0 running, 2 failed" in output
        # one LLM run at a time on this endpoint: seed 2 started only after seed 1 ended
        assert output.index("FAILED  NoiseWorld-Board0-v0 promptpo seed 1") < output.index(
            "start   NoiseWorld-Board0-v0 promptpo seed 2")
        finished = {p: (p / "record.json").stat().st_mtime_ns for p in run_dirs(out) if (p / "record.json").exists()}
        assert len(finished) == 2

        sent_before = len(server.requests)
        second = run_sweep(*args)
        sent = len(server.requests) - sent_before
    assert "2 finished (skipped), 1 to resume, 1 to restart, 0 new" in second.stdout
    assert "[sweep] resume  NoiseWorld-Board0-v0 promptpo seed 1" in second.stdout
    assert {p: (p / "record.json").stat().st_mtime_ns for p in finished} == finished  # not recomputed
    for p in finished:
        assert json.loads((p / "sweep.json").read_text())["attempts"] == 1
    # PromptPO resumed: no journaled answer was paid for again, and its record keeps the original command
    assert sent == len(journal.read_text().splitlines()) - answered
    marker = json.loads((llm_run / "sweep.json").read_text())
    assert marker["attempts"] == 2 and marker["last_started"].endswith(f"--resume {llm_run}")
    assert load_record(llm_run)["command"].split()[1:] == marker["command"].split()[1:]
    # the baseline started again from nothing: one curve, from 0 to the budget
    assert json.loads((ppo_run / "sweep.json").read_text())["attempts"] == 2
    steps = [json.loads(line)["env_steps"] for line in curve.read_text().splitlines()]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == load_record(ppo_run)["totals"]["env_steps"]
    assert "2/2" in second.stdout.splitlines()[-2] and "2/2" in second.stdout.splitlines()[-3]


def test_ctrl_c_stops_every_run_and_the_rerun_continues(tmp_path):
    sweep_proc = subprocess.Popen([sys.executable, "-m", "promptpo_bench.cli", "sweep", "--algos", "ppo", "--tasks",
                                   "NoiseWorld-Board0-v0", "--seeds", "1-2", "--budget", "1000000", "--out",
                                   str(tmp_path), "--args", f"ppo={SMALL}"], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  # a shell's background job ignores SIGINT, and a child would inherit that
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    curves = [tmp_path / f"NoiseWorld-Board0-v0__ppo__{s}" / "curve.jsonl" for s in (1, 2)]
    wait_for(lambda: all(c.exists() for c in curves))
    pids = [pid_of(c.parent) for c in curves]
    sweep_proc.send_signal(signal.SIGINT)
    _, stderr = sweep_proc.communicate(timeout=120)  # a hang guard
    assert sweep_proc.returncode == 130 and "rerun the same command to continue" in stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    dry = run_sweep("--algos", "ppo", "--tasks", "NoiseWorld-Board0-v0", "--seeds", "1-2", "--budget", "1000000",
                    "--out", str(tmp_path), "--args", f"ppo={SMALL}", "--dry-run")
    assert dry.stdout.count("restart ") == 2


def test_algos_on_the_command_line_narrow_a_sweep_file(tmp_path):
    """The file's budget and args of algorithms that --algos leaves out do not apply (they are not typos)."""
    (tmp_path / "grid.toml").write_text('algos = ["ppo", "dqn"]\ntasks = ["NoiseWorld-Board0-v0"]\nseeds = "1"\n'
                                        'budget = {ppo = 5000, dqn = 7000}\n[args]\ndqn = "--learning-rate 0.1"\n')
    out = run_sweep(str(tmp_path / "grid.toml"), "--algos", "ppo", "--out", str(tmp_path / "o"), "--dry-run").stdout
    assert out.count("new ") == 1 and "ppo.py" in out and "--total-timesteps 5000" in out
    assert "dqn" not in out and "learning-rate" not in out
    typo = run_sweep(str(tmp_path / "grid.toml"), "--budget", "ddqn=1", "--out", str(tmp_path / "o"), "--dry-run",
                     check=False)
    assert typo.returncode == 2 and "ddqn" in typo.stderr


# ---- --submit -----------------------------------------------------------------------------------------------------


def test_submit_sends_every_finished_run_once(tmp_path):
    # the runs keep the algorithm's default final evaluation (50 held-out episodes), as a real entry would
    grid = ("--algos", "ppo", "--tasks", "NoiseWorld-Board0-v0", "--seeds", "1-2", "--budget", "2048",
            "--out", str(tmp_path / "sweep"), "--submit", "--leaderboard", str(tmp_path / "board"))
    result = run_sweep(*grid)
    assert result.stdout.count("[submit] ") == 2
    ledger = [json.loads(line) for line in (tmp_path / "sweep" / "submissions.jsonl").read_text().splitlines()]
    assert len(ledger) == 2 and all(entry["returncode"] == 0 for entry in ledger), ledger
    assert any((tmp_path / "board").rglob("*"))
    again = run_sweep(*grid)
    assert "[submit] " not in again.stdout  # already submitted
    # without the ledger (runs submitted by hand, or the ledger lost) the board itself says they are in: no rejections
    (tmp_path / "sweep" / "submissions.jsonl").unlink()
    entries_before = sorted((tmp_path / "board").rglob("record.json"))
    third = run_sweep(*grid)  # exit status 0: nothing failed
    assert third.stdout.count("already on the board as") == 2 and "rejected" not in third.stdout
    assert sorted((tmp_path / "board").rglob("record.json")) == entries_before




def test_the_shipped_sweep_file_is_valid():
    runs = sweep.build_sweep(sweep.load_sweep_file(ROOT / "sweeps" / "noiseworld.toml")).runs()
    assert len(runs) == 3 * 4 * 5
    assert {r.flags[r.flags.index(r.traits.budget_flag) + 1] for r in runs} == {"1000000", "200000"}


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_sweep_files_run_suite_tasks(path):
    """A shipped sweep reports on the suite's own tasks (a plain Gymnasium id, e.g. Walker2d-v5 for Humanoid-v5,
    would put a task the suite does not define on the board)."""
    tasks = sweep.build_sweep(sweep.load_sweep_file(path)).tasks
    assert [task for task in tasks if not sweep.registry.is_registered(task)] == []


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("tuning-*.toml")), ids=lambda p: p.name)
def test_tuning_sweeps_use_seeds_disjoint_from_the_reported_ones(path):
    tuning = sweep.build_sweep(sweep.load_sweep_file(path))
    assert tuning.configs
    for reported in (ROOT / "sweeps").glob("*.toml"):
        if not reported.name.startswith("tuning-"):
            assert not set(sweep.build_sweep(sweep.load_sweep_file(reported)).seeds) & set(tuning.seeds), reported.name
