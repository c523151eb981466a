"""The sandbox worker: runs one untrusted `Policy` class for `promptpo_bench.sandbox`, in its own process.

`SandboxedPolicy` starts this file as a child process. Before it executes the untrusted code it imports only the
standard library, NumPy and the observation class's module, then isolates itself (`_isolate`): mount, PID, IPC,
network and UTS namespaces with a pivot into a minimal read-only root; a fork, after which this process only waits
and the confined child (PID 1 of its namespace) takes a uid of its own, resource limits, no_new_privs, Landlock and
a seccomp allow-list; an import guard. It reports what took effect and gets the code only once the parent has
accepted that report.

Protocol, on the worker's original stdin/stdout pipes (fds 0, 1, 2 are then pointed at /dev/null, so `print` in the
untrusted code goes nowhere):
  parent -> worker: first a pickled setup dict, then (after the isolation report) a pickled {"code": ...}, then per
  act call an `ACT_HEADER` (B, layout size, whether to spin waiting for the next message), the pickled
  layout `(dtype.str, row_shape)` of the observations when it changed (else nothing), B int64 episode tokens and
  the B observation rows as raw bytes. Before an act call whose episodes need new `Policy()` objects (and before
  each summarize call, for its `Feedback()`), a build message: an `ACT_HEADER` whose layout size is
  `BUILD_MESSAGE`, then the B tokens; the parent sends the observations only once the objects are built, so that no
  constructor can read them (from this process's memory) and do an act's work in a construction's time;
  worker -> parent, frames of a `REPLY` header (little-endian uint32 length, format byte) and a payload that is
  JSON or raw rows (never pickle, as the parent trusts nothing the worker says): `{"child": pid}` (from the waiter,
  before anything untrusted), `{"isolation": ..., "why": ...}` or `{"setup_error": ...}`, then `{"loaded": true}`, then
  `{"built": true}` for each build message and for each act call its actions, as raw int64 or float64 rows when
  they form a numeric array of the action shape, else as a JSON list (whose odd values the parent names in its
  error message). A failure of the untrusted code is reported as `{"kind", "message", "traceback", "index"}`,
  after which the worker exits.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import importlib
import importlib.util
import json
import linecache
import math
import mmap
import os
import pickle
import resource
import select
import signal
import struct
import sys
import sysconfig
import time
import traceback
import types
from collections.abc import Callable
from typing import NamedTuple

STARTUP_NICENESS = 10  # a worker spawned ahead of its code starts up without slowing the run's own threads
_CAP_SYS_NICE = 23


def startup_niceness() -> int:
    """How much a starting worker lowers its priority until its set-up arrives: STARTUP_NICENESS where it may raise it
    again then (CAP_SYS_NICE), else 0, since a worker left niced loses its turns to any busy process (and root without
    CAP_SYS_NICE, as in a container, could not start one)."""
    with open("/proc/self/status") as status:
        effective = next(int(line.split()[1], 16) for line in status if line.startswith("CapEff:"))
    return STARTUP_NICENESS if effective >> _CAP_SYS_NICE & 1 else 0


_niced = 0  # how much this worker lowered its priority at start: raised again once its set-up has arrived
if __name__ == "__main__":
    _niced = -os.nice(0)
    _niced += os.nice(startup_niceness())  # a niceness stops at 19: what it moved, not what was asked

import numpy as np  # noqa: E402

REPLY = struct.Struct("<IB")  # header of a worker -> parent reply: payload length, payload format (below)
JSON_REPLY, INT_ROWS, FLOAT_ROWS = 0, 1, 2  # payload formats: JSON text, little-endian int64 / float64 actions
ONE_INT_REPLY = REPLY.pack(8, INT_ROWS)  # the header of the usual answer to one observation in a Discrete space
ACT_HEADER = struct.Struct("<IIB")  # batch size B, size of the pickled layout that follows (0: unchanged), spin flag
BUILD_MESSAGE = 0xFFFFFFFF  # in an `ACT_HEADER`'s layout size: a build message, B int64 tokens and no rows
BUILT = {"built": True}  # the worker's answer to a build message: the objects are built
POLICY_FILE = "policy.py"
SUMMARY_CHARS = 4000  # longest Feedback text passed on
MESSAGE_CHARS, TRACEBACK_CHARS = 500, 20_000  # bounds of a failure's message and traceback (its tail)
REPORTED_KINDS = frozenset({"missing_class", "load_error", "crash", "timeout", "memory", "invalid_action"})
BLOCKED_MODULES = frozenset({"gymnasium", "subprocess", "_posixsubprocess", "multiprocessing"})
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

ALLOWED_ENVIRONMENT = frozenset({"PATH", "LANG", "LC_ALL", "PYTHONNOUSERSITE", *THREAD_VARIABLES})

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_SYS_MOUNT_SETATTR, _AT_RECURSIVE = 442, 0x8000  # mount_setattr(2): the same number on every architecture
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV, _MOUNT_ATTR_NOEXEC = 1, 2, 4, 8
_PR_SET_PDEATHSIG, _PR_GET_SECCOMP, _PR_SET_NO_NEW_PRIVS, _PR_GET_NO_NEW_PRIVS = 1, 21, 38, 39
_PR_GET_SECCOMP_FILTER = 2
_ADDR_NO_RANDOMIZE, _PERSONALITY_QUERY = 0x0040000, 0xFFFFFFFF  # personality(2): its flag, and "read it"
_FCNTL_COMMANDS = (0, 1, 2, 3, 4, 1030)  # F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC: no locks
_FUTEX_PRIVATE = 128  # FUTEX_PRIVATE_FLAG: a futex of this process alone
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR, _LL_REMOVE_DIR, _LL_REMOVE_FILE = 2, 4, 8, 16, 32
_LL_MAKE_DIR, _LL_MAKE_REG, _LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 128, 256, 1 << 13, 1 << 14, 1 << 15
_LL_BIND_TCP, _LL_CONNECT_TCP = 1, 2
_LL_SCOPE_ABSTRACT_UNIX_SOCKET, _LL_SCOPE_SIGNAL = 1, 2
_HOSTNAME = b"sandbox"  # what `uname` tells a worker its machine is called
_NEW_ROOT = "/tmp"  # where the minimal root is assembled (in the worker's own mount namespace) before the pivot
_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
_UID_BASE = 2_000_000_000  # the confined child runs as _UID_BASE + its waiter's pid: a uid no other process has
_FILE_BYTES = 1 << 20  # largest file the policy may write (in its private 4 MB /tmp)
_DESCRIPTORS = 64
_SYSCALLS = (  # everything a NumPy policy and this worker's loop need once the code runs
    "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "fstat", "newfstatat", "statx",
    "stat", "lstat", "openat", "open", "getdents64", "readlink", "readlinkat", "access",
    "faccessat", "faccessat2", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "ftruncate", "fsync", "fdatasync", "ioctl", "dup", "dup2", "dup3", "umask",
    "munmap", "mremap", "madvise", "brk", "mincore", "msync",
    "rt_sigreturn", "sigaltstack", "setitimer", "getitimer", "alarm", "clock_gettime", "clock_getres",
    "clock_nanosleep", "nanosleep", "gettimeofday", "time", "times", "getpid", "gettid", "getppid", "getuid",
    "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid", "getpgrp", "getpgid", "getsid",
    "getrusage", "getrlimit", "uname", "getpriority", "set_robust_list", "get_robust_list",
    "rseq", "set_tid_address", "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "poll", "ppoll", "select", "pselect6", "getrandom",
    "restart_syscall", "exit", "exit_group",
)
_RESERVE_BYTES = 8 << 20  # freed on MemoryError, so that the failure can still be reported
_WORKER_FILE = os.path.abspath(__file__)
SPIN_MIN_SECONDS, SPIN_MAX_SECONDS = 200e-6, 2e-3  # waking an idle CPU costs ~60 us here, a message ~4 us
SPIN_BACKOFF, SPIN_BACKOFF_MAX = 64, 8192  # waits that block at once after a spin missed: doubled per miss in a row


class Spinner:
    """Waits for a pipe by polling without sleeping for about twice the recent waits (at most 2 ms), else blocks.

    Both sides of the sandbox use one: on a quiet machine the other side answers within microseconds (a trivial
    policy) or a steady fraction of a millisecond (a MuJoCo step), and sleeping would add a wake-up of an idle CPU to
    every message. On a loaded machine spinning only keeps the other side off the CPU, while blocking hands the CPU
    straight over (a pipe write wakes its reader on the writer's CPU, which the writer leaves as it blocks in turn):
    a spin that did not see the answer doubles the budget, up to 2 ms (a worker waiting out five MuJoCo steps of
    the parent's, ~0.2 ms, learns to spin that long instead of missing every time); a miss at the full budget makes
    the next `SPIN_BACKOFF` waits block at once, twice as many after each further miss in a row (up to
    `SPIN_BACKOFF_MAX`, a spin every ~0.1 s), and a spin that sees its answer ends that.
    """

    def __init__(self, fd: int) -> None:
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)
        self.budget = SPIN_MIN_SECONDS
        self.backoff = 0  # waits left that block at once
        self.next_backoff = SPIN_BACKOFF
        self.enabled = True  # False: block at once (the parent sees no free CPU for both sides to spin on)
        self.caught = 0  # waits a spin ended (the rest blocked)

    def spin(self) -> bool:
        """Whether the fd became readable while spinning; False at once while disabled or backing off (then block)."""
        if not self.enabled:
            return False
        if self.backoff:
            self.backoff -= 1
            return False
        poll, clock = self.poller.poll, time.perf_counter
        if poll(0):
            self.caught += 1
            return True
        start = clock()
        end = start + self.budget
        while clock() < end:
            if poll(0):
                self.budget = min(SPIN_MAX_SECONDS, max(SPIN_MIN_SECONDS, 2 * (clock() - start)))
                self.next_backoff = SPIN_BACKOFF
                self.caught += 1
                return True
        if self.budget < SPIN_MAX_SECONDS:
            self.budget = min(SPIN_MAX_SECONDS, 2 * self.budget)
        else:
            self.backoff, self.next_backoff = self.next_backoff, min(SPIN_BACKOFF_MAX, 2 * self.next_backoff)
        return False

    def wait(self, timeout_ms: int = -1) -> bool:
        """Whether the fd became readable within `timeout_ms` (-1: no limit)."""
        return self.spin() or bool(self.poller.poll(timeout_ms))


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


class Layout:
    """The observation layout the parent sent last (a row's dtype and shape), and the messages it decodes.

    An act or summarize message is `ACT_HEADER`, the pickled layout where it changed, then the rows' int64 tokens and
    the raw rows; the parent's first message to a worker always carries the layout.
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    size: int  # values in a row
    flat: bool  # whether a row as read needs no reshape

    def __init__(self) -> None:
        self.row_bytes = 0  # a token and a row; 0 before a layout is known

    def read(self, rfile: Reader) -> tuple[int, int, bytes, bool] | None:
        """The next message from `rfile`, after the layout it carries (if any): its row count, spin flag, body of
        tokens and rows (of tokens only in a build message), and whether it is a build message; None at the end of
        the input."""
        header = rfile.read(ACT_HEADER.size)
        if len(header) < ACT_HEADER.size:
            return None
        count, layout_size, flag = ACT_HEADER.unpack(header)
        if layout_size == BUILD_MESSAGE:
            return count, flag, rfile.read(8 * count), True
        if layout_size:
            dtype, self.shape = pickle.loads(rfile.read(layout_size))
            self.dtype, self.size = np.dtype(dtype), math.prod(self.shape)
            self.row_bytes = 8 + self.dtype.itemsize * self.size
            self.flat = self.shape == (self.size,)
        return count, flag, rfile.read(count * self.row_bytes), False

    def decode(self, body: bytes, count: int, at: int = 0) -> tuple[bytes, np.ndarray]:
        """The int64 tokens (as bytes) and the rows of the `count` observations in `body` from offset `at`."""
        rows = np.frombuffer(body, self.dtype, count * self.size, at + 8 * count).reshape(count, *self.shape)
        return body[at:at + 8 * count], rows


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


# Whether a SIGALRM now ends the untrusted call it interrupts (False between act messages), and from when on (a
# `time.perf_counter` value): the act loop keeps one periodic timer running and only moves this deadline per message.
_ALARM = {"live": True, "deadline": -math.inf}
ALARM_PERIOD = 0.02  # seconds between the act loop's alarms: well within the parent's margin over each limit


def _on_alarm(signum: int, frame: object) -> None:
    if _ALARM["live"] and time.perf_counter() >= _ALARM["deadline"]:
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


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: a pipe write of more than PIPE_BUF bytes that a signal (the act loop's periodic alarm)
    interrupts while the pipe is full returns short, and a frame cut short would desynchronise the protocol. The
    first write takes the bytes as they are (the act loop writes each reply itself, and hands this only what a
    short first write left)."""
    written = os.write(fd, data)
    view = memoryview(data)[written:] if written < len(data) else None
    while view:
        view = view[os.write(fd, view):]


def _frame(reply: object) -> bytes:
    """A JSON reply as one frame: `REPLY` header, then the text."""
    data = json.dumps(reply, separators=(",", ":")).encode()
    return REPLY.pack(len(data), JSON_REPLY) + data


BUILT_FRAME = _frame(BUILT)  # as written


def _write(fd: int, reply: object) -> None:
    _write_all(fd, _frame(reply))


def _import_observation(path: str, file: str | None) -> tuple[type, str, str | None]:
    """The observation class at "package.module:Class", its module's name and source (None when already loaded).

    The module is executed from `file` under its own name; its parent packages are empty stubs, so that no package
    `__init__` runs here (`promptpo_bench/__init__.py` registers the tasks) and nothing else is importable below them.
    """
    module_name, _, class_name = path.partition(":")
    source = None
    module = sys.modules.get(module_name)
    if module is None:
        if not file:
            raise ImportError(f"no module {module_name!r}")
        parts = module_name.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package not in sys.modules:
                stub = types.ModuleType(package)
                stub.__path__ = []
                sys.modules[package] = stub
        with open(file) as f:
            source = f.read()
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    cls = getattr(module, class_name)
    if not callable(getattr(cls, "from_array", None)):
        raise TypeError(f"{path} has no from_array classmethod")
    return cls, module_name, source


def _set_limit(which: int, soft: int, hard: int) -> None:
    current_hard = resource.getrlimit(which)[1]
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library with the signatures both sides call through it: this worker's isolation, and the parent's
    locking of the minimal root's pages (`sandbox._keep_resident`)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.syscall.restype = ctypes.c_long
    libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                                              ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.personality.argtypes = [ctypes.c_ulong]
    return libc


def _randomized_layout(libc: ctypes.CDLL) -> bool:
    """Whether the caller's code addresses are hidden from this worker: the kernel randomizes layouts
    (kernel.randomize_va_space 1 or 2, read before the pivot hides /proc) and the personality this process inherited
    from its caller does not ask it not to (`setarch -R`, a debugger). A caller laid out without randomization sits
    at addresses the confined code can compute, and map its own code at, to steer the caller's indirect branches
    through the branch predictors the two processes share on one CPU."""
    try:
        with open("/proc/sys/kernel/randomize_va_space") as setting:
            kernel = setting.read().strip() in ("1", "2")
    except OSError:
        return False
    persona = libc.personality(_PERSONALITY_QUERY)
    return kernel and persona != -1 and not persona & _ADDR_NO_RANDOMIZE


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _needed(path: str) -> tuple[list[str], list[str]]:
    """The libraries an ELF64 shared object names (DT_NEEDED) and the directories of its RUNPATH/RPATH, `$ORIGIN`
    expanded: what the dynamic loader opens along with it. ([], []) for anything else."""
    with open(path, "rb") as elf:
        head = elf.read(64)
        if len(head) < 64 or head[:6] != b"\x7fELF\x02\x01":
            return [], []
        (table_at,), (size, count) = struct.unpack_from("<Q", head, 0x20), struct.unpack_from("<HH", head, 0x36)
        elf.seek(table_at)
        table = elf.read(size * count)
        # each program header's type, offset, virtual address and size in the file
        segments = [struct.unpack_from("<I4xQQ8xQ", table, i * size) for i in range(count)]
        dynamic = [(offset, length) for kind, offset, _, length in segments if kind == 2]  # PT_DYNAMIC
        if not dynamic:
            return [], []
        elf.seek(dynamic[0][0])
        raw = elf.read(dynamic[0][1])
        entries = [struct.unpack_from("<qQ", raw, at) for at in range(0, len(raw) - 15, 16)]
        strings = next((value for tag, value in entries if tag == 5), -1)  # DT_STRTAB, an address: in a PT_LOAD
        base = next((offset + strings - address for kind, offset, address, length in segments
                     if kind == 1 and address <= strings < address + length), None)
        if base is None:
            return [], []

        def string(at: int) -> str:
            elf.seek(base + at)
            return elf.read(4096).split(b"\0", 1)[0].decode()

        names = [string(value) for tag, value in entries if tag == 1]  # DT_NEEDED
        origin = os.path.dirname(path)
        runpath = [directory.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
                   for tag, value in entries if tag in (15, 29) for directory in string(value).split(":")]
    return names, runpath


class Root(NamedTuple):
    """A worker's minimal root as the parent lists it: every directory to make in it, and every file to bind into it
    read-only, by the kept path it lies under (each opened once). Files are bound one by one into directories of the
    worker's own tmpfs, so a lookup of a name that is not there stays in that tmpfs: the host's directory cache never
    learns of it, and no later worker can time whether an earlier one looked."""

    directories: list[str]
    files: dict[str, list[str]]


def minimal_root() -> Root:
    """What a worker's root holds, read-only: the stdlib, NumPy and its bundled libraries, and each shared library the
    interpreter, the stdlib's extension modules and NumPy's may load (their DT_NEEDED, transitively), not the
    directories they sit in (a host's library directory holds hundreds of megabytes nobody reads: a policy that times a
    read of a page of it could tell whether an earlier worker read it first). Left out: the stdlib's installed
    packages, its tests, IDLE and its static library. The parent lists it once and makes every file resident before
    any worker runs (`sandbox._minimal_root`)."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    numpy_dir = os.path.realpath(os.path.dirname(np.__file__))
    dirs = [path for path in (stdlib, numpy_dir, numpy_dir + ".libs") if os.path.isdir(path)]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    objects = [os.path.join(libdir, sysconfig.get_config_var("INSTSONAME") or "")]  # libpython, if shared
    for top in (os.path.join(stdlib, "lib-dynload"), numpy_dir):  # the extension modules a policy may import
        for directory, _, names in os.walk(top):
            objects += [os.path.join(directory, name) for name in sorted(names) if ".so" in name]
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    system = [libdir, f"/lib/{multiarch}", f"/usr/lib/{multiarch}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    libraries: set[str] = set()
    waiting = [path for path in objects if os.path.isfile(path)]
    while waiting:
        names, runpath = _needed(waiting.pop())
        for name in names:
            for directory in runpath + system:
                if os.path.isfile(os.path.join(directory, name)):
                    found = os.path.join(os.path.realpath(directory), name)  # where the loader finds it by name
                    if found not in libraries:
                        libraries.add(found)
                        waiting.append(found)
                    break
    kept: list[str] = []
    for path in sorted(dirs) + sorted(libraries):
        if not any(path == k or path.startswith(k + os.sep) for k in kept):
            kept.append(path)
    if os.path.isfile("/etc/ld.so.cache"):  # where the dynamic loader finds a library it loads later
        kept.append("/etc/ld.so.cache")
    hidden = {os.path.join(stdlib, name) for name in os.listdir(stdlib)
              if name in ("site-packages", "dist-packages", "test", "idlelib") or name.startswith("config-")}
    root = Root([], {})
    for top in kept:
        root.files[top] = files = []
        if not os.path.isdir(top):  # a library, bound where the loader looks for it (a link there: its target's file)
            files.append(top)
            continue
        for directory, subdirs, names in os.walk(top):
            root.directories.append(directory)
            files += [os.path.join(directory, name) for name in sorted(names)
                      if os.path.isfile(os.path.join(directory, name))]  # a link to a file: that file, as above
            subdirs[:] = sorted(name for name in subdirs if os.path.join(directory, name) not in hidden)
    return root


def _enter_minimal_root(libc: ctypes.CDLL, root: Root, observation_file: str | None,
                        observation_source: str | None) -> None:
    """Pivot into a fresh tmpfs that holds the parent's `minimal_root` (its directories made anew, each file a
    read-only bind), a copy of the description module, /dev/{null,zero,urandom,random} and small private /tmp and
    /dev/shm; the old root is detached."""
    new = _NEW_ROOT
    # each kept path (and device) opened before the new root's tmpfs covers _NEW_ROOT, which may hold kept paths (a
    # checkout in /tmp): its files are bound through it
    tops: dict[str, int] = {}
    try:
        for top in [*root.files, *_DEVICES]:
            tops[top] = os.open(top, os.O_PATH | os.O_CLOEXEC)
        links = {name: os.readlink(name) for name in ("/lib", "/lib64", "/lib32", "/libx32") if os.path.islink(name)}
        below_tmp = sum(path.startswith(new + os.sep) for path in root.directories) + sum(
            path.startswith(new + os.sep) for files in root.files.values() for path in files)
        _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
        entries = len(root.directories) + sum(map(len, root.files.values())) + 256
        _check(libc.mount(b"tmpfs", new.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                          f"size=1m,nr_inodes={entries},mode=0755".encode()), "mounting the new root")
        # the private /tmp and /dev/shm first: a kept path below them (a checkout or virtualenv in /tmp) is made in it
        for private in ("/tmp", "/dev/shm"):
            os.makedirs(new + private, exist_ok=True)
            inodes = 256 + (below_tmp if private == "/tmp" else 0)  # the policy's 256, beside the kept paths
            _check(libc.mount(b"tmpfs", (new + private).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                              f"size=4m,nr_inodes={inodes},mode=1777".encode()), f"mounting a private {private}")
        for directory in root.directories:
            os.makedirs(new + directory, exist_ok=True)
        for top, files in root.files.items():
            through = f"/proc/self/fd/{tops[top]}"
            for path in files:
                if path == top:  # a kept file, in a directory of no kept directory's
                    os.makedirs(os.path.dirname(new + path), exist_ok=True)
                os.close(os.open(new + path, os.O_CREAT | os.O_WRONLY, 0o644))  # its mount point
                _check(libc.mount((through + path[len(top):]).encode(), (new + path).encode(), None, _MS_BIND, None),
                       f"binding {path}")
        if observation_file and observation_source is not None:  # the one description module, as a copy
            os.makedirs(os.path.dirname(new + observation_file), exist_ok=True)
            with open(new + observation_file, "w") as copy:
                copy.write(observation_source)
        for name, target in links.items():
            os.symlink(target, new + name)
        os.makedirs(new + "/.old")
        for device in _DEVICES:  # their mount points now, their binds once the rest is read-only and nodev
            os.close(os.open(new + device, os.O_CREAT | os.O_WRONLY, 0o644))
        # everything read-only (each bind keeps its source's noexec and noatime), but the private /tmp and /dev/shm
        _mount_setattr(libc, new, _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV, 0, recursive=True)
        for private in ("/tmp", "/dev/shm"):
            _mount_setattr(libc, new + private, 0, _MOUNT_ATTR_RDONLY)
        for device in _DEVICES:  # noexec too: a private mapping of /dev/zero is memory that could be written and run
            _check(libc.mount(f"/proc/self/fd/{tops[device]}".encode(), (new + device).encode(), None, _MS_BIND,
                              None), f"binding {device}")
            _mount_setattr(libc, new + device, _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NOEXEC, 0)
    finally:  # no descriptor of a host path may stay open in the worker, even where the root failed
        for fd in tops.values():
            os.close(fd)
    os.chdir(new)
    _check(libc.syscall(_SYS_PIVOT_ROOT, b".", b".old"), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old", _MNT_DETACH), "detaching the old root")


def _mount_setattr(libc: ctypes.CDLL, path: str, set_flags: int, clear_flags: int, recursive: bool = False) -> None:
    """mount_setattr(2) (Linux 5.12): set and clear MOUNT_ATTR_* flags on the mount at `path`, and with `recursive` on
    every mount below it, in one call."""
    attr = struct.pack("<4Q", set_flags, clear_flags, 0, 0)
    _check(libc.syscall(_SYS_MOUNT_SETATTR, -100, path.encode(), _AT_RECURSIVE if recursive else 0, attr, len(attr)),
           f"mount_setattr of {path}")


def _landlock(libc: ctypes.CDLL) -> bool:
    """Landlock (defence in depth under the pivot): read-only everywhere, writes only in /tmp, /dev/shm and
    /dev/null, no TCP, no signals or abstract Unix sockets to processes outside this domain."""
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)
    if abi < 1:
        return False
    read = _LL_READ_FILE | _LL_READ_DIR
    write = _LL_WRITE_FILE | (_LL_TRUNCATE if abi >= 3 else 0)
    handled = (1 << 13) - 1 | (_LL_REFER if abi >= 2 else 0) | (_LL_TRUNCATE if abi >= 3 else 0) | (
        _LL_IOCTL_DEV if abi >= 5 else 0)
    fields = [handled]
    if abi >= 4:
        fields.append(_LL_BIND_TCP | _LL_CONNECT_TCP)
    if abi >= 6:
        fields.append(_LL_SCOPE_ABSTRACT_UNIX_SOCKET | _LL_SCOPE_SIGNAL)
    attr = struct.pack(f"<{len(fields)}Q", *fields)
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    if ruleset < 0:
        return False
    try:
        rules = {"/": read, "/tmp": read | write | _LL_MAKE_DIR | _LL_MAKE_REG | _LL_REMOVE_DIR | _LL_REMOVE_FILE,
                 "/dev/null": _LL_READ_FILE | write}
        rules["/dev/shm"] = rules["/tmp"]
        for path, access in rules.items():
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                beneath = struct.pack("<Qi", access, fd)
                if libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, beneath, 0) != 0:
                    return False
            finally:
                os.close(fd)
        return libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) == 0
    finally:
        os.close(ruleset)


def _seccomp_module() -> types.ModuleType | None:
    """pyseccomp (a ctypes binding of libseccomp with the API of libseccomp's own Python module), loaded before
    the pivot; None where it or libseccomp.so.2 is missing."""
    try:
        import pyseccomp
    except Exception:
        return None
    return pyseccomp


def _seccomp(seccomp: types.ModuleType | None, libc: ctypes.CDLL) -> bool:
    """The system-call allow-list (libseccomp through pyseccomp): anything else fails with EPERM, in particular
    execve, fork/clone, ptrace, process_vm_*, signals to other processes, unshare, mount, setns, SysV IPC, sockets,
    pipes (each new one advances the host's one inode counter, which a later worker reads), file locks, shared
    futexes, setrlimit, keyctl, bpf, perf_event_open, io_uring, userfaultfd and changes to SIGALRM's handling."""
    if seccomp is None:
        return False
    pid = os.getpid()
    rules = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
    for name in _SYSCALLS:
        try:
            rules.add_rule(seccomp.ALLOW, name)
        except (OSError, RuntimeError, ValueError):  # not a system call of this architecture
            pass
    for name in ("kill", "tkill", "tgkill"):  # only to itself
        rules.add_rule(seccomp.ALLOW, name, seccomp.Arg(0, seccomp.EQ, pid))
    rules.add_rule(seccomp.ALLOW, "prlimit64", seccomp.Arg(2, seccomp.EQ, 0))  # read limits, never set them
    for command in _FCNTL_COMMANDS:  # a lock on a file every worker binds would be seen by a worker alive beside it
        rules.add_rule(seccomp.ALLOW, "fcntl", seccomp.Arg(1, seccomp.EQ, command))
    # private futexes only: a shared one on a mapping of a file every worker binds, a worker alive beside it could wake
    rules.add_rule(seccomp.ALLOW, "futex", seccomp.Arg(1, seccomp.MASKED_EQ, _FUTEX_PRIVATE, _FUTEX_PRIVATE))
    # no memory both written and run: executable mappings only of the root's files (the loader's), never writable (a
    # private copy could be written), and their one writable place, the private /tmp, is noexec; so the code runs no
    # machine code of its own (cycle-exact timers, cache flushes)
    rules.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_EXEC, 0))
    rules.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_WRITE, 0),
                   seccomp.Arg(3, seccomp.MASKED_EQ, mmap.MAP_ANONYMOUS, 0))
    rules.add_rule(seccomp.ALLOW, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_EXEC, 0))
    rules.add_rule(seccomp.ALLOW, "rt_sigaction", seccomp.Arg(0, seccomp.NE, signal.SIGALRM))
    rules.add_rule(seccomp.ALLOW, "rt_sigprocmask", seccomp.Arg(0, seccomp.EQ, signal.SIG_UNBLOCK))
    rules.add_rule(seccomp.ALLOW, "prctl", seccomp.Arg(0, seccomp.EQ, _PR_GET_SECCOMP))  # the check below
    rules.load()  # sets PR_SET_NO_NEW_PRIVS first
    return libc.prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) == _PR_GET_SECCOMP_FILTER


def _isolate(setup: dict, observation_file: str | None, observation_source: str | None,
             pipes: tuple[int, int]) -> tuple[dict[str, bool], dict[str, str]]:
    """Confine this worker; returns the report of what took effect, each entry checked after the fact, and for a layer
    that a failed call stopped, that call's error (for the parent's one-line message).

    Namespaces (mount, PID, IPC, network, UTS) and a pivot into a minimal read-only root; then a fork: this
    process stays outside as the waiter that mirrors how the confined child ends, and the child (PID 1 of its own
    namespace) takes a uid of its own, resource limits, no_new_privs, Landlock and the seccomp allow-list.
    """
    libc = _libc()
    seccomp_module = _seccomp_module()
    randomized = _randomized_layout(libc)
    root = os.geteuid() == 0
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWNET | _CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    namespaces = libc.unshare(flags | (0 if root else _CLONE_NEWUSER)) == 0
    why = {} if namespaces else dict.fromkeys(("filesystem", "pid_namespace", "ipc_namespace", "network"),
                                              f"unshare: {os.strerror(ctypes.get_errno())}")
    if namespaces and not root:  # root inside a user namespace of our own, mapped to our own ids
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    filesystem = False
    if namespaces:
        libc.sethostname(_HOSTNAME, len(_HOSTNAME))  # the UTS namespace's own name, not the host's
        try:
            _enter_minimal_root(libc, Root(*setup["root"]), observation_file, observation_source)
            filesystem = True
        except OSError as error:
            why["filesystem"] = str(error)
    for which in (resource.RLIMIT_CORE,):
        _set_limit(which, 0, 0)
    waiter, parent = os.getpid(), os.getppid()
    child = 0
    if namespaces:
        sync_read, sync_write = os.pipe()
        child = os.fork()
        if child:  # tell the parent the child's pid (it kills the child first, so that this waiter reaps it)
            _write(pipes[1], {"child": child})
            os.write(sync_write, b".")
            os.close(sync_read)
            os.close(sync_write)
            _wait_and_mirror(child, pipes, parent)
        os.close(sync_write)
        os.read(sync_read, 1)  # the child's first reply must come after the waiter's
        os.close(sync_read)
    worker_uid = _UID_BASE + waiter
    distinct = False
    if root:
        try:
            os.setgroups([])
            os.setresgid(worker_uid, worker_uid, worker_uid)
            os.setresuid(worker_uid, worker_uid, worker_uid)
            distinct = os.getresuid() == (worker_uid,) * 3 and os.getresgid() == (worker_uid,) * 3
        except OSError as error:
            why["distinct_uid"] = str(error)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after the uid change, which clears it
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the size limit then fails with EFBIG
    sys.dont_write_bytecode = True
    limits_set = {}
    memory = setup["memory_mb"] << 20
    for name, which, soft, hard in (
        ("memory", resource.RLIMIT_AS, memory, memory),
        ("cpu", resource.RLIMIT_CPU, setup["cpu_seconds"], setup["cpu_seconds"] + 1),
        ("core", resource.RLIMIT_CORE, 0, 0),
        ("files", resource.RLIMIT_FSIZE, _FILE_BYTES, _FILE_BYTES),
        ("descriptors", resource.RLIMIT_NOFILE, _DESCRIPTORS, _DESCRIPTORS),
        ("nproc", resource.RLIMIT_NPROC, 0, 0),
    ):
        try:
            _set_limit(which, soft, hard)
            limits_set[name] = True
        except (OSError, ValueError):
            limits_set[name] = False
    no_new_privs = libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 and libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
    landlock = _landlock(libc)
    seccomp = _seccomp(seccomp_module, libc)
    return {
        "filesystem": filesystem and not os.path.exists("/.old/proc") and not os.path.exists("/proc/1"),
        "pid_namespace": namespaces and os.getpid() == 1,
        "ipc_namespace": namespaces,
        "network": namespaces,
        "distinct_uid": distinct,
        "no_new_privs": no_new_privs,
        "landlock": landlock,
        "seccomp": seccomp,
        "rlimits": all(limits_set.values()),
        "environment": set(os.environ) <= ALLOWED_ENVIRONMENT,
        "randomized_layout": randomized,
    }, why


def _wait_and_mirror(child: int, pipes: tuple[int, int], parent: int) -> None:
    """The waiter: hold nothing of the protocol, wait for the confined child and end the way it ended.

    Should the parent die first (SIGKILLed, say), the child is killed at once: nothing else would stop a child in an
    endless act before its CPU limit, as the child's own PR_SET_PDEATHSIG is tied to this waiter.
    """
    for fd in pipes:
        os.close(fd)
    try:
        child_end, parent_end = os.pidfd_open(child), os.pidfd_open(parent)
    except ProcessLookupError:  # the parent is gone already
        os.kill(child, signal.SIGKILL)
    except OSError:  # no pidfds (Linux < 5.3): only the child's CPU limit ends it if the parent dies mid-act
        pass
    else:
        ends = select.poll()
        for end in (child_end, parent_end):
            ends.register(end, select.POLLIN)
        if os.getppid() != parent or any(fd == parent_end for fd, _ in ends.poll()):  # re-parented: gone already
            os.kill(child, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    os._exit(os.waitstatus_to_exitcode(status))


def _cut(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its start and saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


def _policy_traceback(exc: BaseException) -> str:
    """The traceback of `exc` without this worker's own frames, bounded: the last frames and a cut exception text."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != _WORKER_FILE]
    lines = traceback.format_list(frames) if frames else []
    stack = "".join(lines)[-TRACEBACK_CHARS:]
    head = "Traceback (most recent call last):\n" if lines else ""
    if isinstance(exc, SyntaxError):  # its own form: file, line, caret
        return head + stack + "".join(traceback.format_exception_only(type(exc), exc))[-TRACEBACK_CHARS:]
    return head + stack + f"{type(exc).__qualname__}: {_cut(_exception_text(exc), MESSAGE_CHARS)}\n"


def _exception_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable>"


def _failure(exc: BaseException, phase: str, seconds: float, setup: dict, index: int | None, reserve: list) -> dict:
    """The reply describing an exception `exc` that escaped untrusted code while running `phase` (time limit
    `seconds`); `reserve` is memory set aside to be freed if `exc` is a MemoryError. Its texts are bounded."""
    if isinstance(exc, MemoryError):
        reserve.clear()
        traceback.clear_frames(exc.__traceback__)
        kind, message = "memory", f"{phase} ran out of memory (limit {setup['memory_mb']} MB)"
    elif isinstance(exc, PolicyTimeout):
        kind, message = "timeout", f"{phase} took longer than {seconds:g} s"
    elif isinstance(exc, SyntaxError) and phase == f"loading {POLICY_FILE}":
        kind, message = "load_error", f"{POLICY_FILE} does not compile: {exc.msg} (line {exc.lineno})"
    else:
        text = " ".join(_cut(_exception_text(exc), MESSAGE_CHARS).split())
        kind = "load_error" if phase == f"loading {POLICY_FILE}" else "crash"
        message = f"{phase} raised {type(exc).__name__}" + (f": {text}" if text else "")
    try:
        tb = _policy_traceback(exc)
    except Exception:
        tb = None
    return {"kind": kind, "message": _cut(" ".join(message.split()), MESSAGE_CHARS), "traceback": tb, "index": index}


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


_INTS = {int}


@functools.cache
def int64_struct(count: int) -> struct.Struct:
    """The struct of `count` little-endian int64 values (actions, tokens), made once per count."""
    return struct.Struct(f"<{count}q")


def _encode_actions(actions: list, shape: tuple[int, ...]) -> tuple[int, bytes]:
    """The payload format and bytes of a batch's actions: raw rows when they form an integer or float array of
    shape (B, *shape) (cheap to check on the other side), else JSON that keeps whatever odd values they hold."""
    if shape == () and set(map(type, actions)) == _INTS:  # the common case: Discrete, no array built
        try:
            return INT_ROWS, int64_struct(len(actions)).pack(*actions)
        except struct.error:  # beyond int64: JSON keeps the value for the error message
            pass
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


def _load(setup: dict, observation_class: type, observation_module: str, reserve: list) -> tuple[type, object] | dict:
    """Execute the untrusted code as module "policy" and construct one `Policy()`; the class and that object (it
    serves the first episode: a policy sees exactly as many constructions as episode lifetimes), or a failure reply."""
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
            instance = policy_class()
            result = (policy_class, instance) if callable(getattr(instance, method, None)) else {
                "kind": "load_error", "message": f"{class_name} has no {method} method", "traceback": None,
                "index": None}
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return _failure(exc, phase, setup["load_seconds"], setup, None, reserve)
    return result


def _serve(rfile: Reader, out_fd: int, loaded: tuple[type, object], from_array: Callable[[np.ndarray], object],
           setup: dict, reserve: list) -> None:
    """Answer act messages until the parent closes the pipe or the untrusted code fails."""
    policy_class, first = loaded
    spare = [first]  # the object built while loading: the first episode's (the parent has the others built first)
    instances: dict[int, object] = {}
    # the Policy() objects of the last batch, row by row, and that batch's tokens: a rollout's batch comes again step
    # after step, and then needs no look-ups
    policies: list[object] = []
    policies_for = b""
    act_seconds, load_seconds = setup["act_seconds"], setup["load_seconds"]
    setitimer, real = signal.setitimer, signal.ITIMER_REAL
    write_all, pack, unpack_from = _write_all, REPLY.pack, ACT_HEADER.unpack_from
    action_shape = tuple(setup["action_shape"])
    constructor, acting = f"{setup['class_name']}()", f"{setup['class_name']}.act"
    layout = Layout()
    spinner = Spinner(rfile.fileno())
    spin, clock, alarm = spinner.spin, time.perf_counter, _ALARM
    # A message of one observation in the known layout (the parent's `act_group` for one episode), read whole, is
    # parsed in place; so is a batch in the known layout read whole
    one_prefix, one_size, in_fd = ACT_HEADER.pack(1, 0, 0)[:8], 0, rfile.fileno()
    # One periodic timer for the whole loop instead of arming one per message (a system call saved per message): each
    # alarm ends the call it interrupts only once `alarm["deadline"]` has passed, so a call runs at most one period
    # past its limit before the worker reports it, still within the parent's `_DEADLINE_MARGIN`.
    alarm["live"] = False
    setitimer(real, ALARM_PERIOD, ALARM_PERIOD)
    while True:
        message = batch = None
        if not rfile.buffer:
            if spinner.enabled:
                spin()  # then the read blocks on the pipe if nothing came
            message = os.read(in_fd, 1 << 16)  # usually one whole message: a pipe write of up to 4 KiB is atomic
            if len(message) != one_size or not message.startswith(one_prefix):
                row_bytes = layout.row_bytes
                if row_bytes and len(message) > ACT_HEADER.size:
                    count, layout_size, flag = unpack_from(message)
                    if not layout_size and len(message) == ACT_HEADER.size + count * row_bytes:
                        batch, message = message, None
                if message is not None:
                    rfile.buffer += message
                    message = None
        known = None  # the Policy() of the known episode a one-observation message continues
        building = False  # whether the message is a build message
        if batch is not None:  # a whole batch in the known layout: its tokens and rows read in place
            spinner.enabled = flag
            tokens, observations = layout.decode(batch, count, ACT_HEADER.size)
        elif message is not None:  # one observation (lifetime "rollout"): the cheapest way through
            count, spinner.enabled = 1, message[8]
            # its episode is known: a message in the known layout comes after a worker's first, which carries it,
            # and each other new episode's build message
            known = instances[int.from_bytes(message[9:17], "little", signed=True)]
            row = np.frombuffer(message, layout.dtype, layout.size, 17)
            if not layout.flat:
                row = row.reshape(layout.shape)
        else:
            read = layout.read(rfile)
            if read is None:
                setitimer(real, 0)  # the parent is gone: no alarm may end this process on its way out
                return
            count, spinner.enabled, body, building = read
            if not building:
                one_size = ACT_HEADER.size + layout.row_bytes  # the layout may have changed
                tokens, observations = layout.decode(body, count)
        actions = []
        index = None
        phase, seconds = acting, act_seconds
        try:
            # One deadline for the calls of the batch, the sum of their limits: the alarm ends a call only once some
            # call is over its own limit, and a call that ends over its limit before then is caught by the clock
            # after it. Between batches `_ALARM["live"]` makes the periodic alarm harmless.
            mark = clock()
            if building:  # the Policy() objects of a batch's new episodes, built before their observations are sent
                phase, seconds = constructor, load_seconds
                episode_ids = np.frombuffer(body, "<i8").tolist()
                new = sum(1 for episode_id in dict.fromkeys(episode_ids) if episode_id not in instances)
                alarm["deadline"] = mark + load_seconds * (new - len(spare))  # the parent asks only for builds
                alarm["live"] = True
                for index, episode_id in enumerate(episode_ids):
                    if episode_id not in instances:
                        instances[episode_id] = spare.pop() if spare else policy_class()
                        mark = _within(mark, load_seconds)
            elif known is not None:  # a known episode's next observation (lifetime "rollout": every message after
                index = 0          # the first): one call, without the batch loop's bookkeeping
                alarm["deadline"] = mark + act_seconds
                alarm["live"] = True
                actions.append(known.act(from_array(row)))
                _within(mark, act_seconds)
            else:
                if tokens != policies_for:  # other episodes than the last batch's: find each one's Policy()
                    policies = []
                    for episode_id in np.frombuffer(tokens, "<i8").tolist():
                        policy = instances.get(episode_id)
                        if policy is None:  # a worker's first episode: the object built while loading
                            policy = instances[episode_id] = spare.pop()
                        policies.append(policy)
                    policies_for = tokens
                alarm["deadline"] = mark + act_seconds * count
                alarm["live"] = True
                for index, (policy, row) in enumerate(zip(policies, observations)):
                    actions.append(policy.act(from_array(row)))
                    now = clock()  # `_within`, without a call per row
                    if now - mark > act_seconds:
                        raise PolicyTimeout("time limit exceeded")
                    mark = now
            alarm["live"] = False
            if building:
                reply = BUILT_FRAME
            elif count == 1 and type(actions[0]) is int and action_shape == () and -(1 << 63) <= actions[0] < 1 << 63:
                reply = ONE_INT_REPLY + actions[0].to_bytes(8, "little", signed=True)
            else:
                kind, data = _encode_actions(actions, action_shape)
                reply = pack(len(data), kind) + data
        except BaseException as exc:
            alarm["live"] = False
            setitimer(real, 0)
            instances.clear()
            actions.clear()
            _write(out_fd, _failure(exc, phase, seconds, setup, index, reserve))
            return
        written = os.write(out_fd, reply)  # almost always all of it
        if written < len(reply):
            write_all(out_fd, reply[written:])


def _serve_summaries(rfile: Reader, out_fd: int, loaded: tuple[type, object],
                     from_array: Callable[[np.ndarray], object], setup: dict, reserve: list) -> None:
    """Answer summarize messages: the rows of one whole episode in, `summarize_trajectory`'s text out, each with a
    fresh `Feedback()` built on the build message before it (the first is the one built while loading)."""
    feedback_class, first = loaded
    spare, instance = [first], None
    seconds, load_seconds = setup["act_seconds"], setup["load_seconds"]
    summarize = f"{setup['class_name']}.{setup['method']}"
    layout = Layout()
    while True:
        read = layout.read(rfile)
        if read is None:
            return
        count, _, body, building = read
        try:
            if building:
                phase, limit = f"{setup['class_name']}()", load_seconds
                signal.setitimer(signal.ITIMER_REAL, load_seconds)
                instance = spare.pop() if spare else feedback_class()
                signal.setitimer(signal.ITIMER_REAL, 0)
                reply = BUILT
            else:
                phase, limit = summarize, seconds
                _, rows = layout.decode(body, count)
                signal.setitimer(signal.ITIMER_REAL, seconds)
                text = str(getattr(instance, setup["method"])([from_array(row) for row in rows]))
                signal.setitimer(signal.ITIMER_REAL, 0)
                reply, instance = text[:SUMMARY_CHARS], None
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _write(out_fd, _failure(exc, phase, limit, setup, None, reserve))
            return
        _write(out_fd, reply)


def main() -> None:
    """Run the worker: set-up, observation import, isolation and its report, then the code, loading, the act loop."""
    if sys.path and sys.path[0] == os.path.dirname(_WORKER_FILE):
        del sys.path[0]  # run as a script: its directory must not make the package's modules importable directly
    os.umask(0o022)  # the root it makes must be readable by the uid it takes, whatever the caller's umask
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    rfile = Reader(in_fd)
    setup = pickle.load(rfile)
    if _niced:  # the set-up has arrived: back to the caller's priority
        os.nice(-_niced)
    try:
        observation_class, observation_module, source = _import_observation(setup["observation"],
                                                                             setup.get("observation_file"))
    except Exception as exc:
        _write(out_fd, {"setup_error": f"cannot import {setup['observation']}: {type(exc).__name__}: {exc}"})
        return
    reserve = [bytearray(_RESERVE_BYTES)]
    signal.signal(signal.SIGALRM, _on_alarm)  # before the seccomp filter, which then keeps SIGALRM's handler fixed
    try:
        isolation, why = _isolate(setup, setup.get("observation_file"), source, (in_fd, out_fd))
        os.chdir("/")
    except Exception as exc:  # nothing untrusted has run: the parent says the sandbox failed to start, and why
        _write(out_fd, {"setup_error": f"isolating the worker: {type(exc).__name__}: {exc}"})
        return
    _write(out_fd, {"isolation": isolation, "why": why})
    try:
        setup.update(pickle.load(rfile))  # the code: sent only once the parent has accepted the report
    except EOFError:
        return
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
