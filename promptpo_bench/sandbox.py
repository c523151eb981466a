"""Run an untrusted `Policy` class (LLM-written source) in a separate, isolated, resource-limited process.

The trusted side of the sandbox: it starts `sandbox_worker.py` (whose docstring describes the protocol), sends it
the code and raw observation bytes, reads its length-prefixed replies (JSON or raw action rows, never unpickled),
enforces wall-clock deadlines, validates every action against the action space, and turns every failure of the
untrusted code into a `PolicyFailure` instead of a crash of the caller.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import importlib.util
import json
import math
import os
import pickle
import random
import select
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

import gymnasium
import numpy as np

from promptpo_bench import sandbox_worker
from promptpo_bench.errors import BenchError, clean_text, one_line
from promptpo_bench.sandbox_worker import (ACT_HEADER, BUILD_MESSAGE, FLOAT_ROWS, INT_ROWS, JSON_REPLY, REPLY,
                                           BUILT_FRAME, REPORTED_KINDS, int64_struct)

FAILURE_KINDS = ("missing_class", "load_error", "crash", "timeout", "memory", "cpu_time", "invalid_action",
                 "worker_died")
_STARTUP_SECONDS = 30.0  # worker start-up (interpreter, NumPy, observation module): not the policy's time
_EXIT_GRACE_SECONDS = 1.0  # how long a worker that closed its pipe may take to exit before it is killed
_DEADLINE_MARGIN = 0.1  # the parent's slack over the worker's own limit: all a policy that blocks SIGALRM can gain
_BOX_TOLERANCE = 1e-6
_ROOM_SECONDS = 0.05  # how often a channel checks whether the machine has CPUs free for spinning
_RECHECK_SECONDS = 0.005  # how soon a channel that has just stopped spinning checks again
_CPUS = len(os.sched_getaffinity(0))
_STEADY_BATCHES = 64  # admitted batches remembered for `send`'s fast path (a rollout has one or two groups in flight)
_MESSAGE_CHARS = sandbox_worker.MESSAGE_CHARS
_TRACEBACK_CHARS = sandbox_worker.TRACEBACK_CHARS + 2 * sandbox_worker.MESSAGE_CHARS
_SUMMARY_BYTES = 12 * sandbox_worker.SUMMARY_CHARS + 2  # a Feedback text as JSON: 12 bytes a character at most
LIFETIMES = ("rollout", "episode")  # one Policy() for all the episodes of a rollout (the paper's), or one per episode
_NAMESPACES = ("run as root with CAP_SYS_ADMIN, or allow unprivileged user namespaces (sysctl "
               "user.max_user_namespaces=15000 and, on Debian/Ubuntu, kernel.unprivileged_userns_clone=1 / "
               "kernel.apparmor_restrict_unprivileged_userns=0)")
REQUIRED_LAYERS = {  # what the worker must report as in effect before untrusted code runs, and how to get it
    "filesystem": f"a minimal read-only root through a mount namespace (Linux 5.12 or later): {_NAMESPACES}",
    "pid_namespace": f"a PID namespace of its own: {_NAMESPACES}",
    "ipc_namespace": f"an IPC namespace of its own: {_NAMESPACES}",
    "network": f"a network namespace without interfaces: {_NAMESPACES}",
    "distinct_uid": "a uid of its own for each worker: run as root with CAP_SETUID and CAP_SETGID (only they can "
                    "switch a process to an unused uid)",
    "no_new_privs": "PR_SET_NO_NEW_PRIVS: Linux 3.5 or later",
    "seccomp": "the system-call allow-list: install libseccomp (apt-get install libseccomp2) and pyseccomp "
               "(pip install pyseccomp)",
    "rlimits": "resource limits (memory, CPU, files, descriptors, processes) could not be set",
    "environment": "the worker's environment is not the minimal one (a wrapper adds variables to it)",
    "randomized_layout": "address-space layout randomization for this process (sysctl kernel.randomize_va_space=2, "
                         "and not run under `setarch -R` or a debugger): without it the worker can compute its code "
                         "addresses",
}


class SandboxUnavailable(BenchError):
    """A layer of the sandbox does not take effect on this machine; untrusted code was not run."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed policy (wall-clock seconds, CPU seconds, megabytes)."""

    act_seconds: float = 1.0  # wall time per observation of an act message (deadline: act_seconds * B + margin)
    episode_seconds: float = 120.0  # total wall time of act calls for one episode id
    load_seconds: float = 10.0  # importing the code and constructing one Policy()
    cpu_seconds: int = 600  # RLIMIT_CPU of the worker
    memory_mb: int = 2048  # RLIMIT_AS of the worker


class PolicyFailure(Exception):
    """A failure of the untrusted code, reported as data (never a crash of the caller)."""

    def __init__(self, kind: str, message: str, traceback: str | None = None, episode_id: int | None = None) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown policy failure kind {kind!r}")
        message, traceback = clean_text(message), None if traceback is None else clean_text(traceback)
        super().__init__(kind, message, traceback, episode_id)
        self.kind = kind
        self.message = message  # the code's own text, cleaned: it goes into prompts, records and journal hashes
        self.traceback = traceback
        self.episode_id = episode_id

    def __str__(self) -> str:
        episode = "" if self.episode_id is None else f" (episode {self.episode_id})"
        return f"{self.kind}: {self.message}{episode}"

    def to_dict(self) -> dict:
        """The failure as a JSON-serialisable dict: kind, message, traceback, episode_id."""
        return {"kind": self.kind, "message": self.message, "traceback": self.traceback, "episode_id": self.episode_id}


class _InvalidAction(Exception):
    """An action failed validation: the index of its row and what is wrong with it."""


def _describe(value: object) -> str:
    """What the policy returned, from its JSON form, for an error message."""
    if type(value) is dict and "$type" in value:
        return one_line(f"{value.get('$repr')} ({value['$type']})", 200)
    return one_line(f"{value!r} ({type(value).__name__})", 200)


def _discrete_validator(space: gymnasium.spaces.Discrete) -> Callable[[list | np.ndarray], np.ndarray]:
    low = int(space.start)
    high = low + int(space.n)
    valid = f"an integer in [{low}, {high - 1}] ({space})"
    dtype = space.dtype

    def validate(actions: list | np.ndarray) -> np.ndarray:
        if type(actions) is np.ndarray:  # raw rows from the worker
            if actions.dtype.kind == "i":
                values = actions.tolist()  # cheaper than NumPy reductions for the few actions of a message
                if not values or (low <= min(values) and max(values) < high):
                    return actions.astype(dtype, copy=False)
            actions = actions.tolist()  # floats, or a value out of range: checked one by one below
        checked = []
        for index, action in enumerate(actions):
            kind = type(action)
            if kind is float and action.is_integer():
                action = int(action)
            elif kind is not int:
                raise _InvalidAction(index, f"returned {_describe(action)}, but the action must be {valid}")
            if not low <= action < high:
                raise _InvalidAction(index, f"returned {action}, but the action must be {valid}")
            checked.append(action)
        return np.array(checked, dtype=dtype)

    return validate


def _bounds_text(bound: np.ndarray) -> str:
    if bound.size and np.all(bound == bound.flat[0]):
        return f"{bound.flat[0]:g}"
    return one_line(np.array2string(bound, precision=4, threshold=8), 120)


def _box_validator(space: gymnasium.spaces.Box) -> Callable[[list | np.ndarray], np.ndarray]:
    low = space.low.astype(np.float64)
    high = space.high.astype(np.float64)
    low_ok, high_ok = low - _BOX_TOLERANCE, high + _BOX_TOLERANCE
    bounded = bool(np.isfinite(low).all() and np.isfinite(high).all())  # then the bounds also reject inf and nan
    shape, dtype = space.shape, space.dtype
    integral = np.issubdtype(dtype, np.integer)
    number = "integers" if integral else "numbers"
    valid = (f"{'a number' if shape == () else f'an array of shape {shape}'} of finite {number} in "
             f"[{_bounds_text(low)}, {_bounds_text(high)}] ({space})")

    # values already within the bounds (the common case) need no clipping: checked with two reductions when the
    # bounds are the same for every dimension (e.g. MuJoCo's [-1, 1]), two comparisons otherwise; a NaN fails both
    uniform = bounded and low.size > 0 and bool(np.all(low == low.flat[0]) and np.all(high == high.flat[0]))
    lowest, highest = (float(low.flat[0]), float(high.flat[0])) if uniform else (0.0, 0.0)

    def inside(arr: np.ndarray) -> bool:
        """Whether a non-empty float array is within the bounds exactly (bounded, non-integral spaces only)."""
        if uniform:
            return bool(lowest <= arr.min() and arr.max() <= highest)
        return bool((arr >= low).all() and (arr <= high).all())

    def valid_rows(arr: np.ndarray) -> bool:
        """Whether every row of a (B, *shape) float array is finite, in bounds (and integral)."""
        ok = (arr >= low_ok) & (arr <= high_ok)
        if not bounded:
            ok &= np.isfinite(arr)
        if integral:
            ok &= arr == np.round(arr)
        return bool(ok.all())

    def as_rows(actions: list | np.ndarray) -> np.ndarray | None:
        try:
            arr = np.asarray(actions)
        except (ValueError, TypeError, OverflowError):
            return None
        if arr.dtype.kind not in "iuf" or arr.shape != (len(actions), *shape):
            return None
        return arr.astype(np.float64, copy=False)

    def validate(actions: list | np.ndarray) -> np.ndarray:
        arr = as_rows(actions)
        if bounded and not integral and arr is not None and arr.size and inside(arr):
            return arr.astype(dtype, copy=False)
        if arr is None or not valid_rows(arr):
            for index, action in enumerate(actions.tolist() if type(actions) is np.ndarray else actions):
                row = as_rows([action])
                if row is None or not valid_rows(row):
                    raise _InvalidAction(index, f"returned {_describe(action)}, but the action must be {valid}")
        return np.clip(arr, low, high).astype(dtype, copy=False)

    return validate


def _kill(proc: subprocess.Popen) -> tuple[int, float]:
    """Kill the worker and reap it: (its wait status, its CPU seconds, the confined child's included).

    The confined child is killed first, through its pidfd, so that its waiter (the process started here) reaps it
    and ends; then whatever is left of the process group (the waiter leads its own session) is killed.
    """
    status, cpu = 0, 0.0
    pidfd = getattr(proc, "child_pidfd", None)
    if proc.returncode is None:
        if pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            end = time.monotonic() + _EXIT_GRACE_SECONDS
            while time.monotonic() < end and os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) \
                    is None:
                time.sleep(0.001)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader until the leader is reaped
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    if pidfd is not None:
        os.close(pidfd)
        proc.child_pidfd = None
    return status, cpu


def _terminate(proc: subprocess.Popen) -> None:
    """Kill the worker (see `_kill`) and close its pipes."""
    _kill(proc)
    for pipe in (proc.stdin, proc.stdout):
        pipe.close()


def _terminate_all(procs: list[subprocess.Popen]) -> None:
    """Kill every worker in `procs` (see `_kill`), close their pipes and empty the list."""
    while procs:
        _terminate(procs.pop())


def _observation_file(observation: str) -> str | None:
    """The source file of the observation class's module (copied into the worker's root); None for the worker's own
    `RawObservation`."""
    module = observation.partition(":")[0]
    if module == "promptpo_bench.sandbox_worker":
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise RuntimeError(f"the sandbox worker failed to start: cannot import {observation}: no module {module!r}")
    return os.path.realpath(spec.origin)


_RESIDENT: set[tuple[int, int]] = set()  # (device, inode) of every file `_keep_resident` has made resident


def _keep_resident(file: BinaryIO, chunk: bytearray) -> os.stat_result:
    """Bring a file's pages into the page cache and, where this process may (root), lock them there for its life (a
    read-only shared mapping, never unmapped), so that no reclaim (memory pressure, or DAMON's, which pages out cold
    page cache with memory free) makes them cold again; else read the file once. Once per file; returns its stat."""
    stat = os.fstat(file.fileno())
    if (stat.st_dev, stat.st_ino) in _RESIDENT:
        return stat
    _RESIDENT.add((stat.st_dev, stat.st_ino))
    size = stat.st_size
    libc = sandbox_worker._libc()
    address = libc.mmap(None, size, 1, 1, file.fileno(), 0) if size else None  # PROT_READ, MAP_SHARED
    if address not in (None, ctypes.c_void_p(-1).value):
        if libc.mlock(address, size) == 0:
            return stat
        libc.munmap(address, size)
    while file.readinto(chunk):
        pass
    return stat


def _keep_mapped_resident(pid: int) -> None:
    """Every file process `pid` (a worker that has reported its isolation) has mapped made resident as the root's
    files are: its libraries and locale data, mapped before its root replaced the host's and some of them outside that
    root (glibc's LC_CTYPE, libseccomp), whose cold pages a worker could read or not for a later one to time. Root
    only (/proc/PID/map_files); elsewhere they stay as they are."""
    chunk = bytearray(1 << 16)
    with contextlib.suppress(OSError):
        for entry in os.listdir(f"/proc/{pid}/map_files"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/map_files/{entry}", "rb", buffering=0) as file:
                _keep_resident(file, chunk)


@functools.cache
def _minimal_root() -> sandbox_worker.Root:
    """`sandbox_worker.minimal_root()`, every file of it made resident first (`_keep_resident`), in the first call of
    this process: then each page a worker can reach is in the host's page cache before any untrusted line runs, and a
    policy that times its reads learns nothing of which pages an earlier worker read. A `BenchError` where, as root, a
    file of it is not readable by others (installed under umask 077): a worker's uid is its own, and a policy that
    imported such a module (NumPy's `random`, loaded on first use) would fail as if its own code had."""
    root = sandbox_worker.minimal_root()
    chunk = bytearray(1 << 20)
    unreadable = []
    for top, files in root.files.items():
        for path in files:
            with contextlib.suppress(OSError), open(path, "rb", buffering=0) as file:
                if not _keep_resident(file, chunk).st_mode & 0o004:
                    unreadable.append((top, path))
    if unreadable and os.geteuid() == 0:
        top, path = unreadable[0]
        raise BenchError(f"the sandbox's workers, each with a uid of its own, cannot read {len(unreadable)} file(s) "
                         f"of the interpreter and NumPy, {path} first (not readable by others: installed under umask "
                         f"077?): chmod -R o+rX {top}, or install under umask 022")
    return root


def spawn_worker() -> subprocess.Popen:
    """Start a worker process that waits for its code: start-up (interpreter, NumPy) can overlap an LLM request.

    Hand it to `SandboxedPolicy(..., worker=...)`; one that is not needed is killed by `discard_worker`.
    """
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONNOUSERSITE": "1",
           **{name: "1" for name in sandbox_worker.THREAD_VARIABLES}}  # nothing the user exported (API keys...)
    return subprocess.Popen([sys.executable, "-E", "-s", sandbox_worker.__file__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True, env=env, cwd="/")


def discard_worker(worker: subprocess.Popen) -> None:
    """Kill a spawned worker that will not be used."""
    _terminate(worker)


@dataclass(slots=True)
class _ShortPath:
    """What `SandboxedPolicy.act_group` needs to send a group's next message and check its usual answer."""

    ids: list[int]  # the group's episodes, in the order of their rows
    prefixes: tuple[bytes, bytes]  # the message's header and tokens, without and with the spin flag
    shape: tuple[int, ...]  # of the observations, and their dtype: what the worker's layout reads
    dtype: np.dtype
    only: int | None  # the episode a failure names (a group of one)
    allowance: float  # the seconds the worker has for the message, with the parent's margin
    reply_header: bytes  # of the usual answer
    reply_size: int  # the usual answer's bytes
    unpack: Callable[[bytes, int], tuple[int, ...]]  # its integer actions (a Discrete space)
    room: float  # act time each of its episodes may still use: the episode limit less the most any had used
    kept: float = 0.0  # act time each of its episodes used on this path, not yet added to their totals (`_drop_path`)


class SandboxedPolicy:
    """A `Policy` class from untrusted source, run in a separate resource-limited process.

    `lifetime="rollout"` (the paper's): one `Policy()` serves every episode, which must then come one observation
    at a time, in order (`max_batch` = 1; `rollout.run_episodes` obeys it). `lifetime="episode"`: one `Policy()` per
    episode id (unique over the object's life), and `act` may send a whole batch of observations in one message.
    The worker learns neither the ids (it gets opaque tokens) nor anything but the observations.
    `episodes_per_worker=N`: each N new episode ids get a fresh worker process (a spare is started ahead), so that
    a long evaluation presents a policy exactly what a rollout of N episodes does (in lifetime "episode" it also caps
    `max_batch` at N); nothing it counts, keeps in memory or leaves in its private `/tmp` carries over.

    Before any untrusted line runs, the worker's report of its isolation is checked against `REQUIRED_LAYERS`; a
    missing layer raises `SandboxUnavailable` unless `unsafe=True` (then `missing_layers` names it).
    """

    method = "act"  # the method of the untrusted class this sandbox serves

    def __init__(self, code: str, observation: str, action_space: gymnasium.Space, limits: Limits = Limits(),
                 class_name: str = "Policy", worker: subprocess.Popen | None = None, lifetime: str = "episode",
                 unsafe: bool = False, episodes_per_worker: int | None = None) -> None:
        if lifetime not in LIFETIMES:
            raise ValueError(f"lifetime must be one of {', '.join(LIFETIMES)}, not {lifetime!r}")
        if episodes_per_worker is not None and episodes_per_worker < 1:
            raise ValueError(f"episodes_per_worker must be at least 1, not {episodes_per_worker}")
        self._discrete = isinstance(action_space, gymnasium.spaces.Discrete)
        if self._discrete:
            self._validate = _discrete_validator(action_space)
            self._action_range = int(action_space.start), int(action_space.start + action_space.n)
        elif isinstance(action_space, gymnasium.spaces.Box):
            self._validate = _box_validator(action_space)
        else:
            raise TypeError(f"SandboxedPolicy supports Discrete and Box action spaces, not {action_space}")
        self.action_space = action_space
        self.limits = limits
        self.class_name = class_name
        self.isolation: dict[str, bool] = {}
        self.missing_layers: list[str] = []
        self.lifetime, self.unsafe = lifetime, unsafe
        self.episodes_per_worker = episodes_per_worker
        self.max_batch = 1 if lifetime == "rollout" else episodes_per_worker
        self._code, self._observation = code, observation
        self._tokens: dict[int, int] = {}  # episode id -> the opaque token the worker in use sees
        self._retired: set[int] = set()  # episode ids played by earlier workers (episodes_per_worker)
        self._steady: dict[bytes, tuple[list[int], bytes]] = {}  # admitted batches: int64 ids -> (ids, their tokens)
        self._token_source = random.Random()  # seeded from the OS: opaque, and cheap to draw
        self._episode_seconds: dict[int, float] = {}
        self._pending: collections.deque[tuple[list[int], float]] = collections.deque()  # sent, unanswered
        self._failure: PolicyFailure | None = None
        self._buffer = bytearray()
        self._action_shape = action_space.shape
        self._action_size = math.prod(action_space.shape)
        self._reply_bytes_per_action = 64 * (self._action_size + 1)  # generous JSON size bound
        self._raw_kind, self._raw_dtype = (INT_ROWS, "<i8") if self._discrete else (FLOAT_ROWS, "<f8")  # usual replies
        self._workers: list[subprocess.Popen] = []  # the worker in use, then a spare started ahead (if any)
        self._finalizer = weakref.finalize(self, _terminate_all, self._workers)
        try:
            self._attach(worker or spawn_worker())
        except BaseException:
            self.close()
            raise

    def _attach(self, proc: subprocess.Popen) -> None:
        """Make `proc` the worker in use: load the code in it, with nothing carried over from an earlier worker."""
        self._workers.insert(0, proc)
        self._proc = proc
        self._write_fd = proc.stdin.fileno()
        self._read_fd = proc.stdout.fileno()
        os.set_blocking(self._write_fd, False)
        os.set_blocking(self._read_fd, False)  # `_read` tries a read before polling
        self._spinner = sandbox_worker.Spinner(self._read_fd)
        self._sent = 0  # act messages written to this worker
        self._room_checked = -math.inf
        self._writable = select.poll()
        self._writable.register(self._write_fd, select.POLLOUT)
        self._worker_episodes = 0  # episode ids this worker has been sent
        self._retired.update(self._tokens)
        self._tokens.clear()
        self._steady.clear()
        self._last_answer = 0.0
        self._buffer.clear()
        self._layout: tuple[np.dtype, tuple[int, ...]] | None = None  # the observation dtype, row shape it knows
        self._short_path: _ShortPath | None = None  # the group of episodes `act_group` may send the short way
        self._start(self._code, self._observation, self.class_name)
        if self.episodes_per_worker is not None:
            self._workers.append(spawn_worker())  # the next chunk's, starting up (niced) while this one plays

    def _next_worker(self) -> None:
        """Retire the worker in use and go on with the spare (or a new one): a fresh process and `Policy()`."""
        _terminate(self._workers.pop(0))
        self._attach(self._workers.pop(0) if self._workers else spawn_worker())

    def _start(self, code: str, observation: str, class_name: str) -> None:
        limits = self.limits
        # the root as a plain tuple: unpickling a `Root` would import the package (and its tasks) into the worker
        setup = {"observation": observation, "observation_file": _observation_file(observation),
                 "class_name": class_name, "method": self.method, "action_shape": list(self.action_space.shape),
                 "act_seconds": limits.act_seconds, "load_seconds": limits.load_seconds,
                 "cpu_seconds": int(limits.cpu_seconds), "memory_mb": int(limits.memory_mb),
                 "root": tuple(_minimal_root())}
        deadline = time.monotonic() + _STARTUP_SECONDS
        try:
            self._send(pickle.dumps(setup), deadline, "starting")
            hello = self._receive(deadline, "starting", 1 << 20)
            if type(hello) is dict and type(hello.get("child")) is int:  # the confined child, in its PID namespace
                self._proc.child_pid, self._proc.child_pidfd = hello["child"], os.pidfd_open(hello["child"])
                hello = self._receive(deadline, "starting", 1 << 20)
        except PolicyFailure as failure:  # nothing untrusted has run yet: an infrastructure problem
            raise RuntimeError(f"the sandbox worker failed to start: {failure.message}") from None
        if type(hello) is not dict or type(hello.get("isolation")) is not dict:
            self._shutdown()
            problem = hello.get("setup_error", hello) if type(hello) is dict else hello
            raise RuntimeError(f"the sandbox worker failed to start: {one_line(problem, _MESSAGE_CHARS)}")
        self.isolation = {str(k): v is True for k, v in hello["isolation"].items()}
        _keep_mapped_resident(getattr(self._proc, "child_pid", self._proc.pid))  # before any untrusted line runs
        self.missing_layers = [layer for layer in REQUIRED_LAYERS if not self.isolation.get(layer)]
        if self.missing_layers and not self.unsafe:
            self._shutdown()
            layer = self.missing_layers[0]
            why = hello.get("why")  # the call that stopped the layer, where one failed
            said = why.get(layer) if type(why) is dict else None
            cause = f"; the worker's error: {one_line(said, _MESSAGE_CHARS)}" if type(said) is str else ""
            raise SandboxUnavailable(f"the policy sandbox lacks its {layer} layer here ({REQUIRED_LAYERS[layer]}"
                                     f"{cause}); untrusted code was not run. --unsafe-sandbox runs it without that "
                                     "layer (such runs are marked and cannot be submitted)")
        self._send(pickle.dumps({"code": code}), time.monotonic() + _STARTUP_SECONDS, "starting")
        reply = self._receive(time.monotonic() + limits.load_seconds + _DEADLINE_MARGIN, "loading the policy",
                              1 << 20)
        if type(reply) is not dict or reply != {"loaded": True}:  # a forged frame may be an array
            self._reported_failure(reply, [])
        self._spinner.caught = 0  # `spun_share` counts the replies to act messages, not the start-up's

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
        """Actions of the policy for B live episodes: `obs` (B, *obs_shape), `episode_ids` (B,); `steps` is ignored.

        Returns an array (B, *action_space.shape) of action_space.dtype, read-only where it is the worker's reply as
        read; raises `PolicyFailure` (and closes this object) on any failure of the untrusted code.
        """
        self.send(episode_ids, obs)
        return self.receive()

    def send(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray | None = None) -> None:
        """First half of `act`: hand the worker a batch and return at once; `receive` gets its actions.

        Batches are answered in the order they were sent, so a caller may keep two in flight and step the
        environments of one while the worker computes the other (see `rollout.run_episodes`). A batch that starts
        episodes waits here while the worker builds their `Policy()` objects (see `_build`), so it must be sent with
        no other in flight.
        """
        id_list, token_bytes, obs = self._ready(episode_ids, obs)
        count = len(id_list)
        sent_at = time.monotonic()
        if count:
            # the worker reads this message once it has answered those ahead of it, each within its act time
            ahead = sum(len(waiting) for waiting, _ in self._pending)
            deadline = sent_at + self.limits.act_seconds * (count + ahead) + _DEADLINE_MARGIN
            self._send(self._message(token_bytes, obs), deadline, "acting", id_list[0] if count == 1 else None)
            self._sent += 1
        self._pending.append((id_list, sent_at))

    def _ready(self, episode_ids: np.ndarray | list[int], obs: np.ndarray) -> tuple[list[int], bytes, np.ndarray]:
        """A batch checked, admitted (`_admit`) and its new episodes' `Policy()` objects built (`_build`): its episode
        ids as a list, their tokens and its observations as an array."""
        if self._failure is not None or not self._finalizer.alive:
            reason = f" after {self._failure}" if self._failure is not None else ""
            raise PolicyFailure("worker_died", f"the sandboxed policy is closed{reason}")
        self._drop_path()  # its act time counted before `receive` counts more
        ids = np.asarray(episode_ids, dtype="<i8")
        obs = np.asarray(obs)
        if ids.ndim != 1 or obs.ndim < 1 or len(obs) != len(ids) or obs.dtype.hasobject:
            raise ValueError(f"act needs episode_ids (B,) and numeric obs (B, ...), got {ids.shape} and {obs.shape} "
                             f"{obs.dtype}")
        key = ids.tobytes()
        steady = self._steady.get(key)
        if steady is None:
            id_list, token_bytes, new = self._admit(ids, key)
            if new:
                self._build(token_bytes, new, id_list)
            return id_list, token_bytes, obs
        return *steady, obs  # a batch sent before (a rollout's group): its checks passed, its tokens are packed

    def act_group(self, episode_ids: list[int], obs: np.ndarray) -> Sequence:
        """`act` for the rows `obs` of a rollout's live episodes `episode_ids` (a list): their actions, ints for a
        Discrete space, rows for a Box.

        A rollout played in turn (one `Policy()` for its episodes, or a busy machine) sends the same episodes step after
        step and each step waits for the round trip, so once the worker knows the observation layout this takes a short
        path: the same message, limits and checks as `act`, without building the batch's arrays (on a busy machine,
        where the two processes take turns on one CPU with cold caches, each step of `act` cost several times a bare
        pipe round trip). A new group is checked, admitted and built first as `act` would (`_ready`); what is left of a
        group whose episodes ended needs none of that. A worker's first message or a new layout goes the way of `act`,
        an answer other than valid actions the way of `receive`. Not while a `send` waits for its `receive`: this
        answers the observations it is given, not the oldest ones in flight.
        """
        if self._pending:
            raise ValueError("act_group with a batch in flight: receive its actions first")
        if type(obs) is not np.ndarray:
            obs = np.asarray(obs)
        path = self._short_path
        if (path is None or episode_ids != path.ids or obs.shape != path.shape or obs.dtype is not path.dtype
                or self._buffer or not self._finalizer.alive):
            if (path is not None and 0 < len(episode_ids) < len(path.ids) and obs.shape[1:] == path.shape[1:]
                    and obs.dtype is path.dtype and len(obs) == len(episode_ids) and not self._buffer
                    and self._finalizer.alive and set(episode_ids) <= set(path.ids)):
                # some of the group's episodes ended: the rest have their Policy() objects, and fewer rows than the
                # group had pass every check of `act`'s, so the message goes the short way at once
                self._drop_path()
                path = self._short_path = self._path(list(episode_ids), obs)
            elif episode_ids and self._knows(obs) and not self._buffer and self._ready(episode_ids, obs) \
                    and self._knows(obs):
                # other episodes in a layout the worker knows (still: admitting them may have moved to a new worker):
                # checked, admitted and built as `act` would, then the message the short way
                path = self._short_path = self._path(list(episode_ids), obs)
            else:  # the worker's first message, or a new layout: `act` sends the layout with it; no episodes, nothing
                actions = self.act(np.array(episode_ids, dtype="<i8"), obs)
                if episode_ids:
                    self._short_path = self._path(list(episode_ids), obs)
                return actions.tolist() if self._discrete else actions
        ids = path.ids
        sent_at = time.monotonic()
        if sent_at - self._room_checked >= _ROOM_SECONDS:
            self._spin()
        deadline = sent_at + path.allowance
        spinning = self._spinner.enabled
        self._send(path.prefixes[spinning] + obs.tobytes(), deadline, "acting", path.only)
        self._sent += 1
        try:  # blocking, the woken worker has answered already: `_read`'s first read, of the usual answer's size
            reply = self._read(deadline) if spinning else os.read(self._read_fd, path.reply_size)
        except BlockingIOError:
            reply = self._read(deadline)
        if reply is not None:
            actions = self._group_actions(reply, path)
            if actions is not None:
                now = time.monotonic()
                kept = path.kept + (now - sent_at) / len(ids)  # each episode's share of the round trip, added up
                if kept <= path.room:  # else `receive` below counts the time, and fails
                    path.kept = kept
                    self._last_answer = now
                    return actions
            self._buffer += reply
        self._drop_path()
        self._pending.append((ids, sent_at))
        actions = self.receive()
        return actions.tolist() if self._discrete else actions

    def _path(self, episode_ids: list[int], obs: np.ndarray) -> _ShortPath:
        """The short path of a group of episodes this worker has acted for, with rows like `obs`."""
        count = len(episode_ids)
        payload = 8 * count * self._action_size  # the usual answer's bytes
        int64s = int64_struct(count)  # the tokens, and a Discrete space's actions
        tokens = int64s.pack(*map(self._tokens.__getitem__, episode_ids))
        return _ShortPath(
            episode_ids, (ACT_HEADER.pack(count, 0, False) + tokens, ACT_HEADER.pack(count, 0, True) + tokens),
            obs.shape, obs.dtype, episode_ids[0] if count == 1 else None,
            self.limits.act_seconds * count + _DEADLINE_MARGIN,
            REPLY.pack(payload, self._raw_kind), REPLY.size + payload, int64s.unpack_from,
            self.limits.episode_seconds - max(map(self._episode_seconds.__getitem__, episode_ids)))

    def _drop_path(self) -> None:
        """Leave `act_group`'s short path: add the act time it kept to its episodes' totals, which `receive` checks."""
        path = self._short_path
        if path is not None:
            self._short_path = None
            spent = self._episode_seconds
            for episode_id in path.ids:
                spent[episode_id] += path.kept

    def _group_actions(self, reply: bytes, path: _ShortPath) -> Sequence | None:
        """The actions in the usual answer to `act_group`'s message on `path` (raw rows of valid actions, one per
        episode), else None."""
        if not self._discrete:
            return self._raw_rows(reply, len(path.ids))
        if len(reply) != path.reply_size or not reply.startswith(path.reply_header):
            return None
        actions = path.unpack(reply, REPLY.size)
        low, high = self._action_range
        return actions if low <= min(actions) and max(actions) < high else None

    def _admit(self, ids: np.ndarray, key: bytes) -> tuple[list[int], bytes, int]:
        """A batch's episode ids as a list, the tokens the worker sees for them, and how many `Policy()` objects the
        worker must build for it (`_build`), before its observations:
        checks the batch against `max_batch` and `episodes_per_worker` (moving to the next worker when it starts the
        next worker's episodes) and remembers it in `_steady` under `key`, the ids' bytes (after this message every
        episode in it has its `Policy()`)."""
        id_list = ids.tolist()
        if self.max_batch is not None and len(id_list) > self.max_batch:
            raise ValueError(f"a policy with lifetime {self.lifetime!r} takes one observation per act call"
                             if self.max_batch == 1 else
                             f"at most {self.max_batch} episodes per worker, so per act call")
        tokens = self._tokens
        if len(id_list) == 1:  # one observation per message (lifetime "rollout"): the common case, kept cheap
            fresh = [] if id_list[0] in tokens else id_list
        else:
            fresh = [episode_id for episode_id in dict.fromkeys(id_list) if episode_id not in tokens]
        if fresh and self._retired and not self._retired.isdisjoint(fresh):
            raise ValueError(f"episode {min(self._retired.intersection(fresh))} was played by an earlier worker")
        if self._pending and self.lifetime != "rollout" and len(fresh) > (self._worker_episodes == 0):
            raise ValueError("a batch whose Policy() objects must be built must be sent with no other in flight")
        per_worker = self.episodes_per_worker
        if per_worker is not None and fresh and self._worker_episodes + len(fresh) > per_worker:
            if len(fresh) < len(id_list) or len(fresh) > per_worker or self._pending:
                raise ValueError(f"with {per_worker} episodes per worker, a message must start the next worker's "
                                 "episodes on their own")
            self._next_worker()
        first = self._worker_episodes == 0
        self._worker_episodes += len(fresh)
        self._episode_seconds.update(dict.fromkeys(fresh, 0.0))  # no act time yet
        count = len(id_list)
        if self.lifetime == "rollout":  # one Policy() per worker, built while loading; every token is 0
            new = 0
            tokens.update(dict.fromkeys(fresh, 0))
            token_bytes = bytes(8 * count)
        else:  # their Policy() is built on this batch, but for a worker's first, built while loading
            new = max(len(fresh) - first, 0)
            for episode_id in fresh:
                tokens[episode_id] = self._token_source.getrandbits(62)
            token_bytes = int64_struct(count).pack(*[tokens[episode_id] for episode_id in id_list])
        if len(self._steady) >= _STEADY_BATCHES:
            self._steady.clear()
        self._steady[key] = (id_list, token_bytes)
        return id_list, token_bytes, new

    def receive(self) -> np.ndarray:
        """Second half of `act`: the validated actions of the oldest batch sent and not yet received."""
        id_list, sent_at = self._pending.popleft()
        count = len(id_list)
        if count == 0:
            return np.empty((0, *self._action_shape), dtype=self.action_space.dtype)
        # The worker answers in order: it started on this batch when it was sent or when the previous answer came.
        start = sent_at if sent_at > self._last_answer else self._last_answer
        limits = self.limits
        deadline = start + limits.act_seconds * count + _DEADLINE_MARGIN
        actions = self._whole_rows(count, deadline)
        if actions is None:  # the long way: a reply in pieces, a failure report, JSON, an invalid action
            only = id_list[0] if count == 1 else None
            reply = self._receive(deadline, "acting", (1 << 20) + count * self._reply_bytes_per_action, only)
            if type(reply) is np.ndarray:  # raw rows
                if reply.size != count * self._action_size:
                    self._fail("invalid_action", f"the worker returned {reply.size} action values for {count} "
                               f"observations of {self._action_size} each")
                if self._action_shape:
                    reply = reply.reshape(count, *self._action_shape)
            elif type(reply) is not list:
                self._reported_failure(reply, id_list)
        self._last_answer = now = time.monotonic()
        share = (now - start) / count
        spent = self._episode_seconds
        for episode_id in id_list:
            total = spent[episode_id] = spent[episode_id] + share
            if total > limits.episode_seconds:
                self._fail("timeout", f"the policy used more than {limits.episode_seconds:g} s of act time in one "
                           "episode", episode_id=episode_id)
        if actions is not None:
            return actions
        if len(reply) != count:
            self._fail("invalid_action", f"the worker returned {len(reply)} actions for {count} observations")
        try:
            return self._validate(reply)
        except _InvalidAction as invalid:
            index, message = invalid.args
            self._fail("invalid_action", f"{self.class_name}.act {message}", episode_id=id_list[index])

    def _build(self, tokens: bytes, new: int, id_list: list) -> None:
        """Have the worker build the `Policy()` objects of a batch's `new` episodes (`tokens` names the batch's
        episodes) and wait for its word that it has, within their load limit (its failure report is raised): before
        it is sent their observations, which a constructor could otherwise read from the worker's memory and do an
        act's work in a construction's time."""
        deadline = time.monotonic() + self.limits.load_seconds * new + _DEADLINE_MARGIN
        doing, only = f"building {self.class_name}() objects", id_list[0] if len(id_list) == 1 else None
        self._send(ACT_HEADER.pack(len(id_list), BUILD_MESSAGE, self._spin()) + tokens, deadline, doing, only)
        caught = self._spinner.caught  # `spun_share` counts answers only
        reply = None if self._buffer else self._read(deadline)  # the usual answer comes in one piece
        if reply != BUILT_FRAME:
            if reply:
                self._buffer += reply
            reply = self._receive(deadline, doing, 1 << 20, only)
            if type(reply) is not dict or reply != sandbox_worker.BUILT:  # a forged frame may be an array
                self._reported_failure(reply, id_list)
        self._spinner.caught = caught

    def _whole_rows(self, count: int, deadline: float) -> np.ndarray | None:
        """The usual answer to a batch of `count` observations, read in one piece: raw rows of valid actions, the
        validated array; None leaves what was read to `_receive` and the checks after it, which say what is wrong.
        (Cheaper per message than the general way: on a busy machine the two processes take turns on one CPU with
        cold caches, and every step waits for its batch's answer.)"""
        if self._buffer:
            return None
        reply = self._read(deadline)
        if reply is None:
            return None
        actions = self._raw_rows(reply, count)
        if actions is None:
            self._buffer += reply
        return actions

    def _raw_rows(self, reply: bytes, count: int) -> np.ndarray | None:
        """The validated actions in `reply` if it is exactly the usual answer to `count` observations (its header and
        `count` raw rows of valid actions); else None."""
        size = count * self._action_size
        if len(reply) != REPLY.size + 8 * size or not reply.startswith(REPLY.pack(8 * size, self._raw_kind)):
            return None
        rows = np.frombuffer(reply, self._raw_dtype, size, REPLY.size)
        try:
            return self._validate(rows.reshape(count, *self._action_shape) if self._action_shape else rows)
        except _InvalidAction:
            return None

    def _message(self, tokens: bytes, obs: np.ndarray) -> bytes:
        """One act/summarize message: header, the observation layout when it changed, int64 tokens and raw rows."""
        if self._knows(obs):
            return ACT_HEADER.pack(len(obs), 0, self._spin()) + tokens + obs.tobytes()
        self._layout = obs.dtype, obs.shape[1:]
        pickled = pickle.dumps((obs.dtype.str, obs.shape[1:]))
        return ACT_HEADER.pack(len(obs), len(pickled), self._spin()) + pickled + tokens + obs.tobytes()

    def _knows(self, obs: np.ndarray) -> bool:
        """Whether the worker knows the layout of `obs`'s rows (their dtype and shape) from an earlier message."""
        layout = self._layout
        return layout is not None and obs.dtype is layout[0] and obs.shape[1:] == layout[1]

    def _spin(self) -> bool:
        """Whether both sides of the channel should spin while waiting: only while the machine has a CPU free for
        each. Sampled every 50 ms (5 ms after a sample that stopped a spinning channel) from /proc/stat's count of
        running tasks, less this thread and the worker if it is running (spinning) then; on a loaded machine a
        spinning side only keeps the other one, or the other work, off a CPU."""
        now = time.monotonic()
        if now - self._room_checked >= _ROOM_SECONDS:
            self._room_checked = now
            try:
                with open("/proc/stat", "rb") as stat:
                    running = int(stat.read().split(b"procs_running ", 1)[1].split(b"\n", 1)[0])
                others = running - 1 - self._worker_running()
            except (OSError, IndexError, ValueError):
                others = _CPUS  # unknown: do not spin
            room = others + 2 <= _CPUS
            if not room and self._spinner.enabled:
                # stop spinning at once (spinning beside a busy process, even for a few ms, costs more), but look
                # again in 5 ms, not 50: a crowd seen once is often a kernel thread awake for a moment, or a worker
                # closed just before on its way out, and would make the next 50 ms of messages wait for wake-ups
                self._room_checked = now - _ROOM_SECONDS + _RECHECK_SECONDS
            self._spinner.enabled = room
        return self._spinner.enabled

    def _worker_running(self) -> bool:
        """Whether the process that answers act messages (the confined child, else the worker) is on a CPU or
        waiting for one, i.e. counted in /proc/stat's running tasks: its state in /proc/PID/stat, read after the
        last ')' since the name before it is the worker's to choose."""
        with open(f"/proc/{getattr(self._proc, 'child_pid', self._proc.pid)}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"R"

    @property
    def overlaps(self) -> bool:
        """Whether the worker can compute one batch while the caller steps the environments of another (what makes
        two half-batches in flight pay, see `rollout.run_episodes`): only while both sides spin, each on a CPU of its
        own (sampled as `_spin` samples it). Blocking, a woken worker runs on the caller's CPU in its stead, and
        halves only add messages (measured here: ~30% more CPU per step, both sides together)."""
        return self._spin()

    @property
    def spun_share(self) -> float:
        """The share of the current worker's act messages whose reply a spin caught (the rest were waited for
        blocking): whether a timing ran with the channel spinning, as on a quiet machine, or not."""
        return self._spinner.caught / max(1, self._sent)

    def close(self) -> None:
        """Kill the worker's process group and reap it; idempotent."""
        self._finalizer()

    def __enter__(self) -> SandboxedPolicy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- protocol -----------------------------------------------------------------------------------------------

    def _send(self, data: bytes, deadline: float, doing: str, episode_id: int | None = None) -> None:
        """Write one message to the worker, never blocking past `deadline`; every send is followed by a `_receive`."""
        try:
            try:
                written = os.write(self._write_fd, data)
            except BlockingIOError:
                written = 0
            if written == len(data):
                return
            view = memoryview(data)[written:]
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._writable.poll(math.ceil(remaining * 1000)):
                    self._fail("timeout", f"the policy stopped reading its input while {doing}", episode_id=episode_id)
                try:
                    view = view[os.write(self._write_fd, view):]
                except BlockingIOError:
                    pass
        except BrokenPipeError:  # the worker has ended: reading its answers (a failure report first) says how
            return

    def _receive(self, deadline: float, doing: str, max_bytes: int, episode_id: int | None = None) -> object:
        """Read one reply from the worker: JSON, or a flat array of raw action values; a timeout, a death or a
        malformed reply becomes a `PolicyFailure`."""
        buffer = self._buffer
        while True:
            if len(buffer) >= REPLY.size:
                size, kind = REPLY.unpack_from(buffer)
                if size > max_bytes:
                    self._fail("invalid_action", f"the policy sent an oversized reply ({size} bytes) while {doing}")
                end = REPLY.size + size
                if len(buffer) >= end:
                    payload = buffer[REPLY.size:end]  # a copy: NumPy may keep it
                    del buffer[:end]
                    if kind in (INT_ROWS, FLOAT_ROWS) and size % 8 == 0:
                        return np.frombuffer(payload, "<i8" if kind == INT_ROWS else "<f8")
                    try:
                        if kind == JSON_REPLY:
                            return json.loads(payload)
                    except (ValueError, RecursionError):
                        pass
                    self._fail("worker_died", f"the worker sent a malformed reply while {doing}")
            chunk = self._read(deadline)
            if chunk is None:
                limits = self.limits
                allowed = {"starting": f"{_STARTUP_SECONDS:g} s", "loading the policy": f"{limits.load_seconds:g} s",
                           f"building {self.class_name}() objects": f"{limits.load_seconds:g} s per object",
                           "summarizing": f"{limits.act_seconds:g} s"}
                within = allowed.get(doing, f"{limits.act_seconds:g} s per observation")
                self._fail("timeout", f"no answer from the policy within {within} while {doing}; killed",
                           episode_id=episode_id)
            if not chunk:
                self._worker_gone(doing)
            buffer += chunk

    def _read(self, deadline: float) -> bytes | None:
        """What the worker has written (b"" once it has closed its pipe), or None if nothing came by `deadline`.
        Blocking, a woken worker runs in this process's stead, so its answer is usually there when this process runs
        again: one non-blocking read is tried first, one system call where poll and read would take two. An answer
        already waiting when this process looks after the deadline is taken too: this process was busy (stepping
        the envs of the other half in flight), not the worker."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._spinner.enabled:
            try:
                return os.read(self._read_fd, 1 << 16)
            except BlockingIOError:
                if remaining <= 0:
                    return None
        if not self._spinner.wait(math.ceil(remaining * 1000)):
            return None
        return os.read(self._read_fd, 1 << 16)

    def _reported_failure(self, reply: object, id_list: list) -> NoReturn:
        """Raise the failure the worker reported (validated: the worker is not trusted)."""
        if type(reply) is not dict:
            self._fail("worker_died", f"the worker sent an unexpected reply: {one_line(reply, 200)}")
        kind = reply.get("kind")  # any JSON value: a list or an object is not even hashable
        index = reply.get("index")
        traceback = reply.get("traceback")
        self._fail(kind if type(kind) is str and kind in REPORTED_KINDS else "crash",
                   one_line(reply.get("message", ""), _MESSAGE_CHARS),
                   traceback[-_TRACEBACK_CHARS:] if isinstance(traceback, str) else None,
                   id_list[index] if type(index) is int and 0 <= index < len(id_list) else None)

    # -- failure -------------------------------------------------------------------------------------------------

    def _fail(self, kind: str, message: str, traceback: str | None = None, episode_id: int | None = None) -> NoReturn:
        """Kill the worker, close this object and raise the failure."""
        self._shutdown()
        self._failure = PolicyFailure(kind, message, traceback, episode_id)
        raise self._failure from None

    def _shutdown(self) -> tuple[int, float]:
        """Kill the process group, reap the worker: (its wait status, its CPU seconds); then close the pipes."""
        status, cpu = _kill(self._proc)
        self._finalizer()
        return status, cpu

    def _worker_gone(self, doing: str) -> NoReturn:
        """The worker closed its pipe: classify how it ended (CPU limit, signal, exit status) and raise."""
        proc = self._proc
        grace = time.monotonic() + _EXIT_GRACE_SECONDS
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > grace:
                self._fail("worker_died", f"the worker closed its pipe while {doing} but did not exit; killed")
            time.sleep(0.002)
        status, cpu = self._shutdown()
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu >= self.limits.cpu_seconds):
                self._fail("cpu_time", f"the worker exceeded its CPU time limit of {self.limits.cpu_seconds} s while "
                           f"{doing} (killed by {signal.Signals(number).name})")
            name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
            ending = f"was killed by signal {name}"
        else:
            ending = f"exited with status {os.waitstatus_to_exitcode(status)}"
        self._fail("worker_died", f"the worker {ending} while {doing}")


def check_sandbox(unsafe: bool = False) -> list[str]:
    """Start one worker and check its isolation report before a run spends anything: the layers missing here (only
    with `unsafe`; otherwise a missing layer raises `SandboxUnavailable`)."""
    probe = "class Policy:\n    def act(self, obs):\n        return 0\n"
    with SandboxedPolicy(probe, "promptpo_bench.sandbox_worker:RawObservation", gymnasium.spaces.Discrete(1),
                         unsafe=unsafe) as policy:
        return policy.missing_layers


class SandboxedFeedback(SandboxedPolicy):
    """A `Feedback` class from untrusted source: `summarize(trajectory)` runs `summarize_trajectory` in the sandbox.

    A fresh `Feedback()` summarises each episode; the text comes back as one (truncated) string.
    """

    method = "summarize_trajectory"

    def __init__(self, code: str, observation: str, limits: Limits = Limits(),
                 worker: subprocess.Popen | None = None, unsafe: bool = False) -> None:
        super().__init__(code, observation, gymnasium.spaces.Discrete(1), limits, class_name="Feedback", worker=worker,
                         unsafe=unsafe)

    def summarize(self, trajectory: np.ndarray) -> str:
        """The Feedback text of one episode, given all its observations (T, *obs_shape)."""
        if self._failure is not None or not self._finalizer.alive:
            raise PolicyFailure("worker_died", f"the sandboxed Feedback is closed after {self._failure}")
        rows = np.asarray(trajectory)
        limits = self.limits
        # the worker's limits: a Feedback() to build (before it is sent the rows, see `_build`), then one
        # summarize_trajectory call (not one per row)
        self._build(b"", 1, [])
        deadline = time.monotonic() + limits.act_seconds + _DEADLINE_MARGIN
        self._send(self._message(bytes(8 * len(rows)), rows), deadline, "summarizing")
        reply = self._receive(deadline, "summarizing", _SUMMARY_BYTES)
        if type(reply) is not str:
            self._reported_failure(reply, [])
        return clean_text(reply[:sandbox_worker.SUMMARY_CHARS])  # cut here too: the code may write its own reply
