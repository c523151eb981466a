"""How a sweep's runs execute: start (fresh, resumed or restarted), wait, conclude; progress; the two backends.

`execute` is the whole life of one run and is what a Ray task runs on whatever node gets it; the local backend
calls the same `start`/`conclude` around a pool of processes it polls. A run's process gets SIGKILL when the
process that started it dies (PR_SET_PDEATHSIG), so no run outlives a killed sweep or Ray worker.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from .errors import BenchError
from .progress import Progress
from .records import atomic_write_json, load_record
from .sweep import Sweep, SweepRun, llm_resource, state

LOG_TAIL_LINES = 30


@dataclass
class Outcome:
    """How one execution of a run ended."""

    run: SweepRun
    ok: bool
    returncode: int | None
    seconds: float
    resumed: bool = False
    log_tail: str = ""
    error: str | None = None  # why it failed, in one line
    host: str = ""


# ---- one run: start it, wait for it, conclude ------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the process that started it dies (Linux), so no run outlives
    a sweep (or a Ray worker) that was killed."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(run: SweepRun) -> tuple[subprocess.Popen, bool]:
    """Start the run where this function runs: resume it if it can, else from a clean directory. Returns the
    process and whether it resumed."""
    how = state(run)
    resumed = how == "resume"
    marker = run.run_dir / "sweep.json"
    attempts = json.loads(marker.read_text())["attempts"] + 1 if marker.is_file() else 1
    if how == "restart":  # an interrupted baseline run: not resumable, start again from nothing
        shutil.rmtree(run.run_dir)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "failed.json").unlink(missing_ok=True)
    command = [sys.executable, str(run.script), "--resume", str(run.run_dir)] if resumed else run.command()
    atomic_write_json(marker, {"command": shlex.join(run.command()), "attempts": attempts,
                               "last_started": shlex.join(command), "host": socket.gethostname(),
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    with open(run.run_dir / "stdout.log", "a" if resumed else "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **dict(run.env)}, start_new_session=True,
                                   preexec_fn=_die_with_parent)
    return process, resumed


def conclude(run: SweepRun, returncode: int, seconds: float, resumed: bool) -> Outcome:
    """A finished process: done if it left a valid record, else failed, with its log tail kept in failed.json."""
    error = None
    if returncode == 0:
        try:
            load_record(run.run_dir)
        except BenchError as e:
            error = f"exited 0 but {e}"
    else:
        error = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    if error is None:
        return Outcome(run, True, returncode, seconds, resumed, host=socket.gethostname())
    return failed(run, error, returncode, seconds, resumed)


def failed(run: SweepRun, error: str, returncode: int | None, seconds: float, resumed: bool = False) -> Outcome:
    """A failed run: its error and log tail go to RUN_DIR/failed.json (until the run is started again)."""
    try:
        tail = "\n".join((run.run_dir / "stdout.log").read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        tail = ""
    if run.run_dir.is_dir():
        atomic_write_json(run.run_dir / "failed.json", {"error": error, "returncode": returncode, "log_tail": tail,
                                                        "host": socket.gethostname(), "seconds": round(seconds, 1)})
    return Outcome(run, False, returncode, seconds, resumed, tail, error, socket.gethostname())


def execute(run: SweepRun) -> Outcome:
    """Start a run and wait for it: the body of a Ray task (the local backend polls `start`'s processes instead)."""
    t0 = time.time()
    process, resumed = start(run)
    try:
        returncode = process.wait()
    except BaseException:  # cancelled: the run goes with the task
        _stop([process])
        raise
    return conclude(run, returncode, time.time() - t0, resumed)


def _stop(processes: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGINT every run's process group (PromptPO keeps its journal and says how to resume), SIGKILL after `grace`."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.time() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


# ---- progress ----------------------------------------------------------------------------------------------------


class SweepProgress:
    """done / running / failed / ETA: one line per event on `stream` (CI logs), and a live bar on a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stdout, running_label: str = "running"):
        self.total, self.stream, self.running_label = total, stream, running_label
        self.done = self.failed = self.running = 0
        self.start = time.time()
        self.bar = Progress(total, "[sweep]", unit="run")

    def eta(self) -> str:
        """Time left at the rate runs have ended so far (whatever the parallelism, local or a cluster)."""
        ended, left = self.done + self.failed, self.total - self.done - self.failed
        if not ended or not left:
            return "-" if left else "0s"
        seconds = (time.time() - self.start) / ended * left
        if seconds >= 86400:
            return f"{seconds / 86400:.1f} days"
        return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds >= 60 else f"{seconds:.0f}s"

    def status(self) -> str:
        queued = self.total - self.done - self.failed - self.running
        return (f"{self.done}/{self.total} done, {self.running} {self.running_label}, {self.failed} failed, "
                f"{queued} queued, ETA {self.eta()}")

    def _line(self, text: str) -> None:
        self.bar.line(f"[sweep] {text}", file=self.stream)
        self.tick()

    def started(self, run: SweepRun, resumed: bool) -> None:
        self.running += 1
        self._line(f"{'resume' if resumed else 'start':7} {run.label}")

    def finished(self, outcome: Outcome) -> None:
        self.running = max(0, self.running - 1)
        run = outcome.run
        if outcome.ok:
            self.done += 1
            self._line(f"{'done':7} {run.label} in {outcome.seconds:.1f}s | {self.status()}")
        else:
            self.failed += 1
            last = outcome.log_tail.strip().splitlines()[-1:] or [""]
            self._line(f"{'FAILED':7} {run.label} ({outcome.error}) {last[0][:160]} | log: {run.run_dir}/stdout.log"
                       f" | {self.status()}")

    def tick(self) -> None:
        """Move the live bar (at most a few times a second; nothing when stderr is not a terminal)."""
        if self.bar.due():
            self.bar.move_to(self.done + self.failed, **{self.running_label: self.running, "failed": self.failed})

    def close(self) -> None:
        self.bar.close()


# ---- backends ----------------------------------------------------------------------------------------------------


def run_local(sweep: Sweep, runs: list[SweepRun], progress: SweepProgress) -> list[Outcome]:
    """At most --jobs runs at once (and --max-concurrent-llm-runs per endpoint), polled from this process."""
    pending, active, outcomes = deque(runs), {}, []
    llm_running: Counter[str] = Counter()
    cap = sweep.max_concurrent_llm_runs
    try:
        while pending or active:
            while len(active) < sweep.jobs:
                run = next((r for r in pending if r.llm_endpoint is None or cap is None
                            or llm_running[r.llm_endpoint] < cap), None)
                if run is None:
                    break
                pending.remove(run)
                process, resumed = start(run)
                active[process] = (run, time.time(), resumed)
                if run.llm_endpoint:
                    llm_running[run.llm_endpoint] += 1
                progress.started(run, resumed)
            for process in [p for p in active if p.poll() is not None]:
                run, t0, resumed = active.pop(process)
                if run.llm_endpoint:
                    llm_running[run.llm_endpoint] -= 1
                outcomes.append(conclude(run, process.returncode, time.time() - t0, resumed))
                progress.finished(outcomes[-1])
            progress.tick()
            time.sleep(0.1)
    except BaseException as error:  # Ctrl-C, or a run that could not even start: no run is left behind
        progress.close()
        if isinstance(error, KeyboardInterrupt):
            print(f"\n[sweep] interrupted: stopping {len(active)} runs; rerun the same command to continue",
                  file=sys.stderr)
        _stop(list(active))
        raise
    return outcomes


def _ray(sweep: Sweep, endpoints: set[str]):
    """Connect to --ray-address, or start a Ray instance on this machine bound to the loopback interface only."""
    if not sweep.ray_address:
        # Ray binds a single-machine instance to 127.0.0.1 only when its "no cluster" mode is on (its default on
        # macOS/Windows); it must be set before `import ray` and is inherited by the processes Ray starts.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise BenchError("--backend ray needs Ray: pip install 'promptpo-bench[ray]'") from None
    cap = sweep.max_concurrent_llm_runs
    resources = {llm_resource(e): float(cap) for e in endpoints} if cap else {}
    if sweep.ray_address:
        ray.init(address=sweep.ray_address, log_to_driver=False, configure_logging=False)
        have = ray.cluster_resources()
        for name in resources:
            if name not in have:
                ray.shutdown()
                raise BenchError(f"the cluster has no {name!r} resource to cap LLM runs; start its head with "
                                 f"ray start --head --resources '{{\"{name}\": {cap}}}' (the cap is that total), "
                                 "or drop --max-concurrent-llm-runs")
    else:
        ray.init(num_cpus=sweep.jobs, resources=resources or None, include_dashboard=False,
                 object_store_memory=80 * 1024 * 1024, log_to_driver=False, configure_logging=False)
        extra = "".join(f", {name}: {amount:g}" for name, amount in resources.items())
        print(f"[sweep] started a Ray instance on this machine at {ray.get_runtime_context().gcs_address} "
              f"({sweep.jobs} CPUs{extra})", flush=True)
    return ray


def run_ray(sweep: Sweep, runs: list[SweepRun], progress: SweepProgress) -> list[Outcome]:
    """One Ray task per run, with its CPU/GPU request, the LLM-endpoint resource, and retries for lost nodes.

    On a cluster, --out must be a directory every node sees at the same path (NFS or similar), and every node
    needs the suite installed with the algorithm files at the same path.
    """
    ray = _ray(sweep, {r.llm_endpoint for r in runs if r.llm_endpoint})
    task = ray.remote(execute)
    refs: dict[Any, SweepRun] = {}
    outcomes: list[Outcome] = []
    try:
        for run in runs:
            resources = ({llm_resource(run.llm_endpoint): 1.0}
                         if run.llm_endpoint and sweep.max_concurrent_llm_runs else {})
            ref = task.options(num_cpus=sweep.cpus_per_run, num_gpus=sweep.gpus_per_run, resources=resources,
                               max_retries=sweep.max_retries, name=f"sweep:{run.name}").remote(run)
            refs[ref] = run
        progress.running = len(refs)
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in done:
                run = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as e:  # lost beyond its retries, or the task itself broke
                    cause = getattr(e, "cause", None) or e  # a task that raised: what it raised
                    outcome = failed(run, (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300],
                                     None, 0.0)
                outcomes.append(outcome)
                progress.finished(outcome)
            progress.tick()
    except KeyboardInterrupt:
        progress.close()
        print(f"\n[sweep] interrupted: cancelling {len(refs)} Ray tasks; rerun the same command to continue",
              file=sys.stderr)
        for ref in refs:
            ray.cancel(ref, force=True)  # kills the worker; its run dies with it (PR_SET_PDEATHSIG)
        raise
    finally:
        ray.shutdown()
    return outcomes


BACKENDS: dict[str, Callable[[Sweep, list[SweepRun], SweepProgress], list[Outcome]]] = {"local": run_local,
                                                                                   "ray": run_ray}


