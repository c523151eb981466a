"""The sandbox worker: runs one untrusted `Policy` class for `promptpo_bench.sandbox`, in its own process.

`SandboxedPolicy` starts this file as a child process. Before it executes the untrusted code it imports only the
standard library, NumPy and the observation class's module, then isolates itself: a new network namespace, the
`nobody` user, resource limits (memory, CPU, no files, no processes) and an import guard.

Protocol, on the worker's original stdin/stdout pipes (fds 0, 1, 2 are then pointed at /dev/null, so `print` in the
untrusted code goes nowhere):
  parent -> worker: first a pickled setup dict, then per act call an `ACT_HEADER` (B, layout size), the pickled
  layout `(dtype.str, row_shape)` of the observations when it changed (else nothing), B int64 episode ids and the
  B observation rows as raw bytes;
  worker -> parent, frames of a `REPLY` header (little-endian uint32 length, format byte) and a payload that is
  JSON or raw rows (never pickle, as the parent trusts nothing the worker says): `{"isolation": ...}` or
  `{"setup_error": ...}`, then `{"loaded": true}`, then the actions of each act call, as raw int64 or float64 rows
  when they form a numeric array of the action shape, else as a JSON list (whose odd values the parent names in
  its error message). A failure of the untrusted code is reported as `{"kind", "message", "traceback", "index"}`,
  after which the worker exits.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import linecache
import math
import os
import pickle
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types
from collections.abc import Callable

STARTUP_NICENESS = 10  # a worker spawned ahead of its code starts up without slowing the run's own threads
if __name__ == "__main__":
    os.nice(STARTUP_NICENESS)

import numpy as np  # noqa: E402

REPLY = struct.Struct("<IB")  # header of a worker -> parent reply: payload length, payload format (below)
JSON_REPLY, INT_ROWS, FLOAT_ROWS = 0, 1, 2  # payload formats: JSON text, little-endian int64 / float64 actions
ACT_HEADER = struct.Struct("<II")  # batch size B, size of the pickled observation layout that follows (0: unchanged)
POLICY_FILE = "policy.py"
SUMMARY_CHARS = 4000  # longest Feedback text passed on
REPORTED_KINDS = frozenset({"missing_class", "load_error", "crash", "timeout", "memory", "invalid_action"})
BLOCKED_MODULES = frozenset({"gymnasium", "subprocess", "_posixsubprocess", "multiprocessing"})
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_NOBODY = 65534
_RESERVE_BYTES = 8 << 20  # freed on MemoryError, so that the failure can still be reported
_WORKER_FILE = os.path.abspath(__file__)
SPIN_MIN_SECONDS, SPIN_MAX_SECONDS = 200e-6, 2e-3  # waking an idle CPU costs ~60 us here, a message ~4 us


class Spinner:
    """Waits for a pipe by polling without sleeping for about twice the recent waits (at most 2 ms), then sleeps.

    Both sides of the sandbox use one: the other side usually answers within microseconds (a trivial policy) or
    a steady fraction of a millisecond (a MuJoCo step), and sleeping would add a wake-up to every message. Between
    polls it yields the CPU, so that on a busy machine it never keeps the other side waiting for this CPU.
    """

    def __init__(self, fd: int) -> None:
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)
        self.budget = SPIN_MIN_SECONDS

    def wait(self, timeout_ms: int = -1) -> bool:
        """Whether the fd became readable within `timeout_ms` (-1: no limit)."""
        poll, clock, pause = self.poller.poll, time.perf_counter, os.sched_yield
        start = clock()
        end = start + self.budget
        ready = bool(poll(0))
        while not ready and clock() < end:
            pause()  # lets the other side run if the scheduler put it on this CPU (a busy machine)
            ready = bool(poll(0))
        if not ready:
            ready = bool(poll(timeout_ms))
        self.budget = min(SPIN_MAX_SECONDS, max(SPIN_MIN_SECONDS, 2 * (clock() - start)))
        return ready


class Reader:
    """Reads the parent's messages from a pipe, keeping what arrived early for the next one.

    Unlike a `BufferedReader` it can tell whether a whole message already waits in its buffer, so the worker does not
    wait on the pipe for a message it has already read (the parent may send two batches before reading an answer).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def fileno(self) -> int:
        return self.fd

    def read(self, size: int) -> bytes:
        """`size` bytes, fewer only at the end of the input."""
        buffer = self.buffer
        while len(buffer) < size:
            chunk = os.read(self.fd, max(1 << 16, size - len(buffer)))
            if not chunk:
                break
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def readline(self) -> bytes:
        """Up to and including the next newline (pickle's protocol needs it)."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return self.read(len(self.buffer))
            self.buffer += chunk
        return self.read(self.buffer.index(b"\n") + 1)


class RawObservation:
    """A minimal observation class: the raw row as a float64 array in `.array` (tests; tasks without a description)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    @classmethod
    def from_array(cls, array: np.ndarray) -> RawObservation:
        """Wrap a float64 copy of the environment's observation row."""
        return cls(np.array(array, dtype=np.float64))

    def __repr__(self) -> str:
        return f"RawObservation({self.array!r})"


class PolicyTimeout(BaseException):
    """Raised by SIGALRM in the untrusted code; a BaseException so that `except Exception` does not swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise PolicyTimeout("time limit exceeded")


def _within(mark: float, seconds: float) -> float:
    """The time now, after a call that began at `mark`; `PolicyTimeout` if the call took longer than `seconds`."""
    now = time.perf_counter()
    if now - mark > seconds:
        raise PolicyTimeout("time limit exceeded")
    return now


class _ImportGuard:
    """A `sys.meta_path` finder refusing modules a policy must not use (defence in depth: the env lives elsewhere)."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    def blocks(self, name: str) -> bool:
        top = name.partition(".")[0]
        return top in BLOCKED_MODULES or (top == "promptpo_bench" and name not in self.allowed)

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if self.blocks(name):
            raise ImportError(f"policy sandbox: importing {name!r} is not allowed")
        return None


def _write(fd: int, reply: object) -> None:
    data = json.dumps(reply, separators=(",", ":")).encode()
    os.write(fd, REPLY.pack(len(data), JSON_REPLY) + data)


def _import_observation(path: str) -> tuple[type, str]:
    """Import the observation class at "package.module:Class" without running its packages' `__init__` files.

    Parent packages become empty stubs with the right `__path__`: `promptpo_bench/__init__.py` may register tasks
    (importing gymnasium and the environments), which must never be loaded here.
    """
    module_name, _, class_name = path.partition(":")
    parts = module_name.split(".")
    for i in range(1, len(parts)):
        package = ".".join(parts[:i])
        if package not in sys.modules:
            spec = importlib.util.find_spec(package)
            if spec is None or spec.submodule_search_locations is None:
                raise ImportError(f"no package {package!r}")
            stub = types.ModuleType(package)
            stub.__path__ = list(spec.submodule_search_locations)
            stub.__spec__ = spec
            stub.__package__ = package
            sys.modules[package] = stub
    cls = getattr(importlib.import_module(module_name), class_name)
    if not callable(getattr(cls, "from_array", None)):
        raise TypeError(f"{path} has no from_array classmethod")
    return cls, module_name


def _set_limit(which: int, soft: int, hard: int) -> None:
    current_hard = resource.getrlimit(which)[1]
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _keep_import_paths_readable(path_fds: dict[str, int]) -> None:
    """After the privilege drop, reach import directories nobody may traverse to (e.g. a pyenv under /root).

    Each such directory was opened while still root; `/proc/self/fd/N/...` reaches its files without walking the
    unreadable parents, so the untrusted code can still import any standard-library module.
    """
    remapped = {}
    for path, fd in path_fds.items():
        if os.access(path, os.R_OK | os.X_OK):
            os.close(fd)
        else:
            remapped[path] = f"/proc/self/fd/{fd}"
    if not remapped:
        return
    roots = sorted(remapped, key=len, reverse=True)

    def remap(entry: str) -> str:
        for root in roots:
            if entry == root or entry.startswith(root + os.sep):
                return remapped[root] + entry[len(root):]
        return entry

    sys.path[:] = [remap(entry) for entry in sys.path]
    for module in list(sys.modules.values()):
        package_path = getattr(module, "__dict__", {}).get("__path__")
        if type(package_path) is list:
            package_path[:] = [remap(entry) for entry in package_path]


def _isolate(memory_mb: int, cpu_seconds: int) -> dict[str, bool]:
    """Confine this process (network namespace, user nobody, rlimits); returns which isolation took effect."""
    path_fds = {p: os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in dict.fromkeys(sys.path) if p and os.path.isdir(p)}
    libc = ctypes.CDLL(None, use_errno=True)
    network = False
    dropped = os.geteuid() != 0
    if not dropped:
        network = libc.unshare(_CLONE_NEWNET) == 0
        try:
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
            dropped = True
        except OSError:
            pass
    if not network:
        network = libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0
    _keep_import_paths_readable(path_fds)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file write then fails with EFBIG instead of killing us
    sys.dont_write_bytecode = True
    limits_set = {}
    for name, which, soft, hard in (
        ("memory", resource.RLIMIT_AS, memory_mb << 20, memory_mb << 20),
        ("cpu", resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        ("core", resource.RLIMIT_CORE, 0, 0),
        ("files", resource.RLIMIT_FSIZE, 0, 0),
        ("nproc", resource.RLIMIT_NPROC, 0, 0),
    ):
        try:
            _set_limit(which, soft, hard)
            limits_set[name] = True
        except (OSError, ValueError):
            limits_set[name] = False
    nproc = limits_set.pop("nproc") and dropped
    return {"network": network, "dropped_privileges": dropped, "nproc": nproc, "rlimits": all(limits_set.values())}


def _policy_traceback(exc: BaseException) -> str:
    """The traceback of `exc` without this worker's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != _WORKER_FILE]
    lines = traceback.format_list(frames) if frames else []
    head = ["Traceback (most recent call last):\n"] if lines else []
    return "".join(head + lines + traceback.format_exception_only(type(exc), exc))


def _failure(exc: BaseException, phase: str, seconds: float, setup: dict, index: int | None, reserve: list) -> dict:
    """The reply describing an exception `exc` that escaped untrusted code while running `phase` (time limit
    `seconds`); `reserve` is memory set aside to be freed if `exc` is a MemoryError."""
    if isinstance(exc, MemoryError):
        reserve.clear()
        traceback.clear_frames(exc.__traceback__)
        kind, message = "memory", f"{phase} ran out of memory (limit {setup['memory_mb']} MB)"
    elif isinstance(exc, PolicyTimeout):
        kind, message = "timeout", f"{phase} took longer than {seconds:g} s"
    elif isinstance(exc, SyntaxError) and phase == f"loading {POLICY_FILE}":
        kind, message = "load_error", f"{POLICY_FILE} does not compile: {exc.msg} (line {exc.lineno})"
    else:
        try:
            text = str(exc)
        except Exception:
            text = "<unprintable>"
        kind = "load_error" if phase == f"loading {POLICY_FILE}" else "crash"
        message = f"{phase} raised {type(exc).__name__}" + (f": {text}" if text else "")
    try:
        tb = _policy_traceback(exc)
    except Exception:
        tb = None
    return {"kind": kind, "message": " ".join(message.split()), "traceback": tb, "index": index}


def _describe(value: object) -> dict:
    """A JSON stand-in for a returned value that is not a number or a list: its type and (short) repr."""
    try:
        text = repr(value)[:200]
    except Exception:
        text = "<unprintable>"
    return {"$type": type(value).__qualname__, "$repr": text}


def _unencodable(value: object) -> object:
    """`json.dumps` fallback: NumPy values become numbers and lists, anything else a description of itself."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return _describe(value)


def _encode_actions(actions: list, shape: tuple[int, ...]) -> tuple[int, bytes]:
    """The payload format and bytes of a batch's actions: raw rows when they form an integer or float array of
    shape (B, *shape) (cheap to check on the other side), else JSON that keeps whatever odd values they hold."""
    try:
        rows = np.asarray(actions)
    except (TypeError, ValueError, OverflowError, RecursionError):  # ragged lists, odd objects: JSON tells which
        rows = None
    if rows is not None and rows.shape == (len(actions), *shape):
        kind = rows.dtype.kind
        if kind == "i" or (kind == "u" and rows.dtype.itemsize < 8):  # uint64 could wrap around as int64
            return INT_ROWS, rows.astype("<i8").tobytes()
        if kind == "f":
            return FLOAT_ROWS, rows.astype("<f8").tobytes()
    try:
        return JSON_REPLY, json.dumps(actions, separators=(",", ":"), default=_unencodable).encode()
    except (TypeError, ValueError, RecursionError):  # e.g. a circular list, or a dict with tuple keys
        encoded = []
        for action in actions:
            try:
                encoded.append(json.dumps(action, separators=(",", ":"), default=_unencodable))
            except (TypeError, ValueError, RecursionError):
                encoded.append(json.dumps(_describe(action)))
        return JSON_REPLY, ("[" + ",".join(encoded) + "]").encode()


def _load(setup: dict, observation_class: type, observation_module: str, reserve: list) -> type | dict:
    """Execute the untrusted code as module "policy" and construct one `Policy()`; the class, or a failure reply."""
    code, class_name = setup["code"], setup["class_name"]
    allowed = {"promptpo_bench.descriptions"}
    allowed.update(observation_module.rsplit(".", i)[0] for i in range(observation_module.count(".") + 1))
    guard = _ImportGuard(frozenset(allowed))
    for name in [name for name in sys.modules if guard.blocks(name)]:
        del sys.modules[name]
    sys.meta_path.insert(0, guard)
    module = types.ModuleType("policy")
    module.__file__ = POLICY_FILE
    module.Observation = observation_class
    sys.modules["policy"] = module
    linecache.cache[POLICY_FILE] = (len(code), None, code.splitlines(True), POLICY_FILE)
    phase = f"loading {POLICY_FILE}"
    signal.setitimer(signal.ITIMER_REAL, setup["load_seconds"])
    try:
        exec(compile(code, POLICY_FILE, "exec", dont_inherit=True), module.__dict__)
        policy_class = module.__dict__.get(class_name)
        if not isinstance(policy_class, type):
            names = sorted(str(n) for n in module.__dict__ if not str(n).startswith("__") and n != "Observation")
            found = "" if policy_class is None else f" ({class_name} is of type {type(policy_class).__name__})"
            message = (f"{POLICY_FILE} defines no class {class_name!r}{found}; "
                       f"its top-level names: {', '.join(names) or 'none'}")
            result = {"kind": "missing_class", "message": message, "traceback": None, "index": None}
        else:
            phase, method = f"{class_name}()", setup["method"]
            result = policy_class if callable(getattr(policy_class(), method, None)) else {
                "kind": "load_error", "message": f"{class_name} has no {method} method", "traceback": None,
                "index": None}
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return _failure(exc, phase, setup["load_seconds"], setup, None, reserve)
    return result


def _serve(rfile: Reader, out_fd: int, policy_class: type, from_array: Callable[[np.ndarray], object],
           setup: dict, reserve: list) -> None:
    """Answer act messages until the parent closes the pipe or the untrusted code fails."""
    instances: dict[int, object] = {}
    act_seconds, load_seconds = setup["act_seconds"], setup["load_seconds"]
    setitimer, real = signal.setitimer, signal.ITIMER_REAL
    read, write, pack, unpack = rfile.read, os.write, REPLY.pack, ACT_HEADER.unpack
    action_shape = tuple(setup["action_shape"])
    constructor, acting = f"{setup['class_name']}()", f"{setup['class_name']}.act"
    dtype, row_shape, row_size = np.dtype(np.float64), (), 1
    spinner, clock = Spinner(rfile.fileno()), time.perf_counter
    while True:
        if not rfile.buffer:
            spinner.wait()
        header = read(ACT_HEADER.size)
        if len(header) < ACT_HEADER.size:
            return
        count, layout_size = unpack(header)
        if layout_size:
            dtype, row_shape = pickle.loads(read(layout_size))
            dtype, row_size = np.dtype(dtype), math.prod(row_shape)
        body = read(count * (8 + dtype.itemsize * row_size))
        episode_ids = np.frombuffer(body, "<i8", count).tolist()
        observations = np.frombuffer(body, dtype, count * row_size, 8 * count).reshape(count, *row_shape)
        actions = []
        index = None
        phase, seconds = acting, act_seconds
        new = sum(1 for episode_id in episode_ids if episode_id not in instances)
        try:
            # One timer for the calls of the batch, set to the sum of their limits: it fires only once some call is
            # over its own limit, and a call that ends over its limit before then is caught by the clock after it.
            setitimer(real, act_seconds * count + load_seconds * new)
            mark = clock()
            for index, (episode_id, row) in enumerate(zip(episode_ids, observations)):
                policy = instances.get(episode_id)
                if policy is None:
                    phase, seconds = constructor, load_seconds
                    policy = instances[episode_id] = policy_class()
                    mark = _within(mark, load_seconds)
                    new -= 1
                    setitimer(real, act_seconds * (count - index) + load_seconds * new)  # the constructors' time back
                    phase, seconds = acting, act_seconds
                actions.append(policy.act(from_array(row)))
                mark = _within(mark, act_seconds)
            setitimer(real, 0)
            kind, data = _encode_actions(actions, action_shape)
        except BaseException as exc:
            setitimer(real, 0)
            instances.clear()
            actions.clear()
            _write(out_fd, _failure(exc, phase, seconds, setup, index, reserve))
            return
        write(out_fd, pack(len(data), kind) + data)


def _serve_summaries(rfile: Reader, out_fd: int, feedback_class: type,
                     from_array: Callable[[np.ndarray], object], setup: dict, reserve: list) -> None:
    """Answer summarize messages: the rows of one whole episode in, `summarize_trajectory`'s text out."""
    seconds, load_seconds = setup["act_seconds"], setup["load_seconds"]
    summarize = f"{setup['class_name']}.{setup['method']}"
    dtype, row_shape, row_size = np.dtype(np.float64), (), 1
    while True:
        header = rfile.read(ACT_HEADER.size)
        if len(header) < ACT_HEADER.size:
            return
        count, layout_size = ACT_HEADER.unpack(header)
        if layout_size:
            dtype, row_shape = pickle.loads(rfile.read(layout_size))
            dtype, row_size = np.dtype(dtype), math.prod(row_shape)
        body = rfile.read(count * (8 + dtype.itemsize * row_size))
        rows = np.frombuffer(body, dtype, count * row_size, 8 * count).reshape(count, *row_shape)
        phase, limit = f"{setup['class_name']}()", load_seconds
        try:
            signal.setitimer(signal.ITIMER_REAL, load_seconds)
            instance = feedback_class()
            phase, limit = summarize, seconds
            signal.setitimer(signal.ITIMER_REAL, seconds)
            text = str(getattr(instance, setup["method"])([from_array(row) for row in rows]))
            signal.setitimer(signal.ITIMER_REAL, 0)
            data = json.dumps(text[:SUMMARY_CHARS]).encode()
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _write(out_fd, _failure(exc, phase, limit, setup, None, reserve))
            return
        os.write(out_fd, REPLY.pack(len(data), JSON_REPLY) + data)


def main() -> None:
    """Run the worker: protocol set-up, observation import, isolation, loading, then the act loop."""
    if sys.path and sys.path[0] == os.path.dirname(_WORKER_FILE):
        del sys.path[0]  # run as a script: its directory must not make the package's modules importable directly
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    rfile = Reader(in_fd)
    setup = pickle.load(rfile)
    if os.geteuid() == 0:  # the code has arrived: back to normal priority (only root may raise it again)
        os.nice(-STARTUP_NICENESS)
    try:
        observation_class, observation_module = _import_observation(setup["observation"])
    except Exception as exc:
        _write(out_fd, {"setup_error": f"cannot import {setup['observation']}: {type(exc).__name__}: {exc}"})
        return
    reserve = [bytearray(_RESERVE_BYTES)]
    isolation = _isolate(setup["memory_mb"], setup["cpu_seconds"])
    os.chdir("/")
    signal.signal(signal.SIGALRM, _on_alarm)
    _write(out_fd, {"isolation": isolation})
    loaded = _load(setup, observation_class, observation_module, reserve)
    if isinstance(loaded, dict):
        _write(out_fd, loaded)
        return
    _write(out_fd, {"loaded": True})
    serve = _serve_summaries if setup["method"] == "summarize_trajectory" else _serve
    serve(rfile, out_fd, loaded, observation_class.from_array, setup, reserve)


if __name__ == "__main__":
    sys.modules.setdefault("promptpo_bench.sandbox_worker", sys.modules["__main__"])
    main()
