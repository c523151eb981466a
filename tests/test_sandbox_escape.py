"""Attacks on the policy sandbox, each as its own hostile candidate: every one is contained (a clear recorded failure
or a harmless no-op), the caller carries on, and a canary (a file only the parent may read, an environment
variable, a peer worker) is proved untouched.

A hostile `act` tries its attack and returns 1 if it got anything (the loot), 0 if not; the sandbox must make it 0
or end the candidate with a `PolicyFailure`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from callers import run_caller
from gymnasium.spaces import Box, Discrete

import promptpo_bench
from promptpo_bench import sandbox
from promptpo_bench.sandbox import Limits, PolicyFailure, SandboxedFeedback, SandboxedPolicy, SandboxUnavailable

NOISEWORLD = "promptpo_bench.descriptions.noiseworld:Observation"
OBS = np.zeros((1, 29), dtype=np.float32)  # a board-1 observation row
LIMITS = Limits(act_seconds=2.0, load_seconds=5.0)
PACKAGE = Path(promptpo_bench.__file__).resolve().parent
BOARDS = Path(promptpo_bench.tasks.noiseworld.__file__).resolve().parent / "boards.json"  # the answer key
REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-canary-0123456789"


def hostile(attack: str) -> str:
    """A policy whose act runs `attack` (a body that returns what it stole, or None) and reports whether it got any."""
    body = textwrap.indent(textwrap.dedent(attack).strip(), " " * 4)
    return f"""
import os, sys, ctypes, signal, socket

def attack(obs):
{body}

class Policy:
    def act(self, obs):
        try:
            loot = attack(obs)
        except Exception:
            loot = None
        return 0 if not loot else 1
"""


def contained(code: str, observation: str = NOISEWORLD) -> PolicyFailure | None:
    """Run one hostile act; the result must be the no-loot action or a failure (returned)."""
    with SandboxedPolicy(code, observation, Discrete(2), LIMITS) as policy:
        try:
            assert policy.act(np.array([0]), OBS).tolist() == [0]
        except PolicyFailure as failure:
            return failure
    return None


@pytest.fixture
def peer():
    """An honest worker next to the hostile one: it must still answer afterwards."""
    code = "class Policy:\n    def act(self, obs):\n        return int(obs.agent_row == 0.0)\n"
    with SandboxedPolicy(code, NOISEWORLD, Discrete(2), LIMITS) as policy:
        assert policy.act(np.array([0]), OBS).tolist() == [1]
        yield policy
        assert policy.act(np.array([1]), OBS).tolist() == [1]  # alive, not stopped, its instance intact


# -- the answer key and the checkout ------------------------------------------------------------------------------

@pytest.mark.parametrize("attack", [
    f"return open({str(BOARDS)!r}).read()",
    "import promptpo_bench\nreturn open(promptpo_bench.__path__[0] + '/../tasks/noiseworld/boards.json').read()",
    f"return os.listdir({str(PACKAGE)!r})",
    f"return os.listdir({str(REPO / '.git')!r}) if os.path.exists({str(REPO / '.git')!r}) else None",
    f"return open({str(REPO / 'descriptions' / 'mujoco.py')!r}).read()",  # another task's description module
    f"return [n for n in os.listdir({str(REPO)!r}) if n not in ('descriptions', '.venv')]",
    "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_ImportGuard']\n"
    "from promptpo_bench.tasks.noiseworld import oracle\nreturn oracle",
    "import importlib.util\nreturn importlib.util.find_spec('promptpo_bench.tasks')",
    "return [open(f'/proc/{pid}/environ').read() for pid in range(1, 4)]",
])
def test_the_answer_key_and_the_checkout_are_unreachable(attack):
    assert BOARDS.is_file()  # the canary: the parent reads it
    failure = contained(hostile(attack))
    assert failure is None or "boards" not in str(failure.to_dict())


def test_a_feedback_class_cannot_read_the_answer_key_into_the_prompt():
    code = f"""
class Feedback:
    def summarize_trajectory(self, traj):
        try:
            return open({str(BOARDS)!r}).read()[:200]
        except Exception as error:
            return type(error).__name__
"""
    with SandboxedFeedback(code, NOISEWORLD, LIMITS) as feedback:
        assert feedback.summarize(np.zeros((3, 29), dtype=np.float32)) == "FileNotFoundError"


# -- secrets --------------------------------------------------------------------------------------------------------

def test_no_secret_in_the_environment_or_in_a_crash(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    failure = contained("import os\nclass Policy:\n    def act(self, obs):\n        raise ValueError(dict(os.environ))\n")
    assert failure.kind == "crash" and SECRET not in json.dumps(failure.to_dict())
    assert "OPENAI_API_KEY" not in failure.message and "PATH" in failure.message


def test_a_feedback_class_cannot_put_a_secret_in_the_prompt(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code = "import os\nclass Feedback:\n    def summarize_trajectory(self, traj):\n        return repr(dict(os.environ))\n"
    with SandboxedFeedback(code, NOISEWORLD, LIMITS) as feedback:
        assert SECRET not in feedback.summarize(np.zeros((2, 29), dtype=np.float32))


def test_no_unix_socket_to_the_host(tmp_path):
    path = str(Path("/tmp") / f"promptpo-canary-{os.getpid()}.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        server.setblocking(False)
        try:
            failure = contained(hostile(f"s = socket.socket(socket.AF_UNIX)\ns.connect({path!r})\n"
                                        f"s.send(os.environ.get('OPENAI_API_KEY', 'x').encode())\nreturn True"))
            assert failure is None
            with pytest.raises(BlockingIOError):
                server.accept()
        finally:
            os.unlink(path)


# -- rivals -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_a_candidate_cannot_signal_a_peer_worker(peer, sig):
    pids = [peer._proc.pid, peer._proc.child_pid]  # its waiter and its confined child, as the host numbers them
    attack = f"""
hit = []
for pid in {pids}:
    try:
        os.kill(pid, {int(sig)})
        hit.append(pid)
    except OSError:
        pass
return hit
"""
    assert contained(hostile(attack)) is None


@pytest.mark.parametrize("attack", [
    "libc = ctypes.CDLL(None)\nreturn libc.shmget(0x1234, 4096, 0o1666) >= 0",  # SysV shared memory
    "libc = ctypes.CDLL(None)\nreturn libc.msgget(0x1234, 0o1666) >= 0",  # SysV message queue
    "libc = ctypes.CDLL(None)\nreturn libc.semget(0x1234, 1, 0o1666) >= 0",
    "os.symlink('/etc/passwd', '/tmp/link')\nreturn os.path.exists('/tmp/link')",
    "open('/tmp/x', 'w').close()\nos.setxattr('/tmp/x', 'user.note', b'for the next candidate')\nreturn True",
    "s = socket.socket(socket.AF_UNIX)\ns.bind('/tmp/rendezvous')\nreturn True",
    "s = socket.socket(socket.AF_UNIX)\ns.bind('\\0abstract-rendezvous')\nreturn True",
    # each new pipe advances the host's one inode counter, which a later worker reads off a pipe of its own
    "for _ in range(1000):\n    for end in os.pipe():\n        os.close(end)\nreturn True",
    # a worker registered for global expedited membarriers makes another's membarrier calls slow while it runs
    "return ctypes.CDLL(None).syscall(324, 16, 0, 0) == 0",  # MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
])
def test_nothing_is_left_for_later_candidates(attack):
    assert contained(hostile(attack)) is None


def test_two_live_workers_cannot_signal_each_other_through_file_locks():
    """Every root binds the same host files: a lock one worker takes on a range of `os.py` the other could see with
    F_GETLK (candidates evaluated side by side, as PromptPO's thread pool plays them). Neither call is allowed."""
    take = "import fcntl\nfd = os.open(os.__file__, os.O_RDONLY)\nglobals().setdefault('held', []).append(fd)\n" \
           "fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 1000)\nreturn True"
    look = "import fcntl, struct\nfd = os.open(os.__file__, os.O_RDONLY)\n" \
           "lock = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 1000, 1, 0))\n" \
           "return struct.unpack('hhqqi', lock)[0] != fcntl.F_UNLCK"
    with SandboxedPolicy(hostile(take), NOISEWORLD, Discrete(2), LIMITS) as holder, \
            SandboxedPolicy(hostile(look), NOISEWORLD, Discrete(2), LIMITS) as looker:
        assert holder.act(np.array([0]), OBS).tolist() == [0]
        assert looker.act(np.array([0]), OBS).tolist() == [0]


def test_two_live_workers_cannot_signal_each_other_through_a_shared_futex():
    """Every root binds the same host files: a futex on a word of a shared mapping of `os.py` is the same futex in
    every worker, so one worker waiting on it could be woken by another alive beside it, which counts whom it woke."""
    common = """
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype, libc.mmap.restype = ctypes.c_long, ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
word = libc.mmap(None, 4096, 1, 1, os.open(os.__file__, os.O_RDONLY), 0)  # PROT_READ, MAP_SHARED
value = ctypes.c_uint32.from_address(word).value
"""
    wait = common + """
import time
timeout = (ctypes.c_long * 2)(0, 50_000_000)
end, woken = time.monotonic() + 1.0, 0
while time.monotonic() < end:  # FUTEX_WAIT, over and over (the worker's periodic alarm interrupts it)
    woken += libc.syscall(202, ctypes.c_void_p(word), 0, value, timeout, None, 0) == 0
return woken
"""
    wake = common + """
import time
woke = 0
for _ in range(40):
    woke += max(0, libc.syscall(202, ctypes.c_void_p(word), 1, 1, None, None, 0))  # FUTEX_WAKE
    time.sleep(0.01)
return woke
"""
    limits = Limits(act_seconds=3.0, load_seconds=5.0)
    with SandboxedPolicy(hostile(wait), NOISEWORLD, Discrete(2), limits) as waiter, \
            SandboxedPolicy(hostile(wake), NOISEWORLD, Discrete(2), limits) as waker:
        waiting = concurrent.futures.ThreadPoolExecutor(1).submit(waiter.act, np.array([0]), OBS)
        time.sleep(0.1)
        assert waker.act(np.array([0]), OBS).tolist() == [0]
        assert waiting.result().tolist() == [0]


def test_private_tmp_is_not_shared_between_workers():
    writer = hostile("open('/tmp/message', 'w').write('hello')\nopen('/dev/shm/message', 'w').write('hello')\n"
                     "return None")
    assert contained(writer) is None
    # only the writer's files count: with the checkout or virtualenv under /tmp, /tmp also holds their read-only binds
    assert contained(hostile("return [n for n in os.listdir('/tmp') + os.listdir('/dev/shm') if n == 'message']")) \
        is None


def test_unbounded_mkdir_in_tmp_is_bounded_and_the_host_untouched():
    before = set(os.listdir("/tmp"))
    attack = "i = 0\nwhile True:\n    os.mkdir(f'/tmp/d{i}')\n    i += 1"
    assert contained(hostile(attack)) is None  # stops at the private tmpfs's inode limit (an OSError)
    assert not {name for name in os.listdir("/tmp") if name.startswith("d") and name[1:].isdigit()} - before


@pytest.mark.parametrize("attack", [
    "info = ctypes.create_string_buffer(128)\nreturn ctypes.CDLL(None).sysinfo(info) == 0",
    "return os.statvfs(os.__file__).f_bfree",  # the host disk's free blocks, which follow its writes exactly
])
def test_the_hosts_process_count_free_memory_and_disk_are_not_visible(attack):
    """`sysinfo` would show the host's process count (higher while a spare worker starts: the final evaluation),
    its free memory and uptime, `statvfs` of a bound file the host disk's free space: a policy has no use for them."""
    assert contained(hostile(attack)) is None


# -- privileges -----------------------------------------------------------------------------------------------------

RUN_CODE = ("m.write(b'\\xb8\\x2a\\x00\\x00\\x00\\xc3')\n"
            "return ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))() == 42")


@pytest.mark.parametrize("attack", [
    "os.execv('/usr/bin/su', ['su'])",
    "os.execv('/usr/bin/python3', ['python3', '-c', 'pass'])",
    "return ctypes.CDLL(None).unshare(0x10000000) == 0",  # CLONE_NEWUSER
    "return ctypes.CDLL(None).unshare(0x00020000) == 0",  # CLONE_NEWNS
    "return ctypes.CDLL(None).mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0",
    "return ctypes.CDLL(None).ptrace(16, os.getppid(), 0, 0) == 0",  # PTRACE_ATTACH
    "return ctypes.CDLL(None).syscall(310, 1, 0, 1, 0, 1, 0) >= 0",  # process_vm_readv
    "return open(f'/proc/{os.getppid()}/mem', 'rb').read(1)",
    "os.setuid(0)\nreturn True",
    "return os.fork() >= 0",
    "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nreturn True",
    "signal.signal(signal.SIGALRM, signal.SIG_IGN)\nreturn True",
    "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\nreturn True",
    # machine code of its own (precise timers, cache flushes, code placed at chosen addresses): `mov eax, 42; ret`
    f"import mmap\nm = mmap.mmap(-1, 4096, prot=7)\n{RUN_CODE}",  # anonymous, read-write-execute
    f"import mmap\nm = mmap.mmap(os.open('/dev/zero', os.O_RDONLY), 4096, mmap.MAP_PRIVATE, 7)\n{RUN_CODE}",
    f"import mmap\nm = mmap.mmap(os.open(os.__file__, os.O_RDONLY), 4096, mmap.MAP_PRIVATE, 7)\n{RUN_CODE}",
    f"import mmap\nopen('/tmp/code', 'wb').write(bytes(4096))\n"
    f"m = mmap.mmap(os.open('/tmp/code', os.O_RDWR), 4096, mmap.MAP_SHARED, 7)\n{RUN_CODE}",
    "import mmap\nm = mmap.mmap(-1, 4096)\naddress = ctypes.addressof(ctypes.c_char.from_buffer(m))\n"
    "return ctypes.CDLL(None).mprotect(ctypes.c_void_p(address), 4096, 7) == 0",
])
def test_no_way_out_of_the_worker(attack):
    assert contained(hostile(attack)) is None


def test_twenty_thousand_file_descriptors():
    assert contained(hostile("files = [open('/dev/null') for _ in range(20_000)]\nreturn files")) is None


def test_the_isolation_report_tells_the_truth():
    code = hostile("""
import resource
facts = [os.getpid() == 1, os.getuid() not in (0, 65534), os.listdir('/.old') == [],
         not os.path.exists('/proc/self'), resource.getrlimit(resource.RLIMIT_NPROC) == (0, 0),
         os.uname().nodename == 'sandbox']
return not all(facts)
""")
    with SandboxedPolicy(code, NOISEWORLD, Discrete(2), LIMITS) as policy:
        assert all(policy.isolation[layer] for layer in sandbox.REQUIRED_LAYERS)
        assert policy.act(np.array([0]), OBS).tolist() == [0]


@pytest.mark.parametrize("without", ["personality", "kernel"])
def test_a_caller_laid_out_without_randomization_is_a_missing_layer(tmp_path, without):
    """A caller run under `setarch -R` or a debugger (its personality's ADDR_NO_RANDOMIZE, which its children inherit),
    or on a kernel that does not randomize (`kernel.randomize_va_space=0`: here a "0" bound over it in the caller's
    own mount namespace), sits at code addresses a candidate can compute and map its own code at, to steer the
    caller's indirect branches through the predictors they share: the report says so and nothing runs."""
    setting = tmp_path / "randomize_va_space"
    setting.write_text("0\n")
    source = f"""
        import ctypes
        from promptpo_bench.sandbox import SandboxUnavailable, check_sandbox
        libc = ctypes.CDLL(None, use_errno=True)
        if {without!r} == "kernel":
            assert libc.unshare(0x00020000) == 0  # CLONE_NEWNS
            assert libc.mount(None, b"/", None, 16384 | (1 << 18), None) == 0  # MS_REC | MS_PRIVATE
            assert libc.mount({str(setting).encode()!r}, b"/proc/sys/kernel/randomize_va_space", None, 4096,
                              None) == 0  # MS_BIND
        print(check_sandbox(unsafe=True))
        try:
            check_sandbox()
        except SandboxUnavailable as error:
            print(error)
    """
    personality = ctypes.CDLL(None).personality
    run = run_caller(tmp_path, source, (lambda: personality(0x0040000)) if without == "personality" else None)
    assert run.stdout.splitlines()[0] == "['randomized_layout']", run.stderr
    assert "lacks its randomized_layout layer here (address-space layout randomization" in run.stdout
    assert sandbox.check_sandbox(unsafe=True) == []  # the test can fail: this process is laid out at random


# -- time and size ----------------------------------------------------------------------------------------------------

def test_a_cancelled_timer_does_not_stretch_the_limit():
    """The worker's SIGALRM is the candidate's to cancel, but the parent's own deadline (0.1 s later) kills it."""
    code = "import signal\nclass Policy:\n    def act(self, obs):\n        if obs.agent_row:\n" \
           "            signal.setitimer(signal.ITIMER_REAL, 0)\n            while True:\n                pass\n" \
           "        return 0\n"
    with SandboxedPolicy(code, NOISEWORLD, Discrete(2), LIMITS) as policy:
        policy.act(np.array([0]), OBS)
        killed_at_the_parents_deadline(policy)


def killed_at_the_parents_deadline(policy: SandboxedPolicy) -> None:
    """The next act (an endless loop) ends as a timeout the parent killed, past the limit and near it."""
    start = time.monotonic()
    with pytest.raises(PolicyFailure) as raised:
        policy.act(np.array([0]), OBS + 1)
    elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and "killed" in raised.value.message
    assert LIMITS.act_seconds < elapsed < LIMITS.act_seconds + 0.6


@pytest.mark.parametrize("timer", ["signal.setitimer(signal.ITIMER_REAL, 0)",
                                   "signal.setitimer(signal.ITIMER_REAL, 1000.0, 1000.0)"])
def test_a_timer_changed_in_one_call_does_not_stretch_a_later_one(timer):
    """The act loop's alarm is one periodic timer: a candidate that cancels or slows it in a call that returns in time
    still has every later call ended by the parent's own deadline (0.1 s past the limit)."""
    code = f"import signal\nclass Policy:\n    def act(self, obs):\n        if not obs.agent_row:\n" \
           f"            {timer}\n            return 0\n        while True:\n            pass\n"
    with SandboxedPolicy(code, NOISEWORLD, Discrete(2), LIMITS) as policy:
        assert policy.act(np.array([0]), OBS).tolist() == [0]
        assert policy.act(np.array([0]), OBS).tolist() == [0]
        killed_at_the_parents_deadline(policy)


SWALLOWS_ITS_TIMEOUT = """
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
"""


def test_a_feedback_class_cannot_stretch_its_time_by_the_length_of_the_episode_or_the_load_limit():
    """A Feedback that swallows its timeout is killed at its call's own limit + 0.1 s, counted from when the worker
    says its Feedback() is built: not at act_seconds per observation of a long episode (20.6 s once), nor with the
    load limit on top (3.15 s here once)."""
    code = f"class Feedback:\n    def summarize_trajectory(self, traj):{SWALLOWS_ITS_TIMEOUT}"
    with SandboxedFeedback(code, NOISEWORLD, Limits(act_seconds=0.05, load_seconds=3.0)) as feedback:
        start = time.monotonic()
        with pytest.raises(PolicyFailure, match="timeout"):
            feedback.summarize(np.zeros((400, 29), dtype=np.float32))
        assert time.monotonic() - start < 2.0
    assert feedback._failure.message == "no answer from the policy within 0.05 s while summarizing; killed"


SEES_ITS_ROWS = """
import sys
import numpy as np

MARK = np.float32(12345.0).tobytes()  # in the rows of the message the object is built for


def holds_mark(value, depth=0):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return MARK in bytes(value)
    if isinstance(value, np.ndarray):
        return MARK in value.tobytes()
    if depth < 3 and isinstance(value, (tuple, list)):
        return any(holds_mark(item, depth + 1) for item in value)
    if depth < 3 and hasattr(value, "__dict__") and not isinstance(value, (type(sys), type)):  # not this module
        return any(holds_mark(item, depth + 1) for item in vars(value).values())
    return False


def seen():  # anything the worker's frames hold: its locals, its reader's buffer, the message as read
    frame = sys._getframe()
    while frame is not None:
        if any(holds_mark(value) for value in frame.f_locals.values()):
            return True
        frame = frame.f_back
    return False


class {name}:
    def __init__(self):
        self.saw = seen()

    def {method}(self, obs):
        return {answer}
"""


def test_a_constructor_cannot_read_the_observations_its_object_is_built_for():
    """A Policy() built on a message could once walk the worker's frames to the message's rows and do an act's work
    in a construction's time (3.6 s for a 0.5 s batch limit, red team): the worker now builds the objects of a
    batch's new episodes on a message of their own, before the parent sends their observations. Likewise a
    Feedback() for the rows it is to summarise."""
    marked = np.zeros((2, 104), dtype=np.float32)
    marked[:, 7] = 12345.0
    code = SEES_ITS_ROWS.format(name="Policy", method="act", answer="int(self.saw)")
    with SandboxedPolicy(code, sandbox.sandbox_worker.__name__ + ":RawObservation", Discrete(2), LIMITS) as policy:
        assert policy.act(np.array([0]), np.zeros((1, 104), dtype=np.float32)).tolist() == [0]
        assert policy.act(np.array([1, 2]), marked).tolist() == [0, 0]
        policy.act(np.array([1, 2]), np.zeros((2, 104), dtype=np.float32))  # no marked rows left in the worker
        assert list(policy.act_group([3, 4], marked)) == [0, 0]  # a rollout's new group, built the same way
    code = SEES_ITS_ROWS.format(name="Feedback", method="summarize_trajectory", answer="str(self.saw)")
    with SandboxedFeedback(code, NOISEWORLD, LIMITS) as feedback:
        assert feedback.summarize(np.zeros((2, 29), dtype=np.float32)) == "False"
        assert feedback.summarize(np.full((2, 29), 12345.0, dtype=np.float32)) == "False"


def test_a_lone_surrogate_in_a_failure_or_a_feedback_text_is_escaped_for_the_prompt():
    """JSON carries a lone surrogate ("\\ud800") that UTF-8 cannot encode: a failure message, traceback or Feedback
    text holding one would crash the run when its repair prompt is hashed or written; they come back escaped."""
    failure = contained("class Policy:\n    def act(self, obs):\n        raise ValueError(chr(0xD800))\n")
    assert failure.message.endswith("ValueError: \\ud800")
    json.dumps(failure.to_dict(), ensure_ascii=False).encode()  # what a prompt and its journal hash take
    code = "class Feedback:\n    def summarize_trajectory(self, traj):\n        return 'fine ' + chr(0xD800)\n"
    with SandboxedFeedback(code, NOISEWORLD, LIMITS) as feedback:
        assert feedback.summarize(np.zeros((2, 29), dtype=np.float32)) == "fine \\ud800"


def test_a_huge_exception_message_comes_back_as_a_crash_with_its_traceback():
    code = "def deep(n):\n    if n == 0:\n        raise ValueError('x' * 5_000_000)\n    return deep(n - 1)\n\n" \
           "class Policy:\n    def act(self, obs):\n        return deep(3)\n"
    failure = contained(code)
    assert failure.kind == "crash" and failure.message.startswith("Policy.act raised ValueError: xxx")
    assert len(failure.message) <= 600 and len(failure.traceback) < 25_000
    assert 'File "policy.py", line 3, in deep' in failure.traceback and "more characters" in failure.traceback


def test_an_endless_candidate_dies_with_the_run_that_started_it(tmp_path):
    """A run SIGKILLed mid-act (a killed sweep, an out-of-memory kill) takes its worker with it at once, rather than
    leave the candidate's endless loop burning a CPU until its own CPU limit (10 minutes by default)."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import re
        import numpy as np
        from gymnasium.spaces import Box, Discrete
        from promptpo_bench.sandbox import Limits, SandboxedPolicy
        policy = SandboxedPolicy("class Policy:\\n    def act(self, obs):\\n        while True:\\n            pass\\n",
                                 {NOISEWORLD!r}, Discrete(2), Limits(act_seconds=60.0))
        policy.send(np.array([0]), np.zeros((1, 29), dtype=np.float32))
        fdinfo = open(f"/proc/self/fdinfo/{{policy._proc.child_pidfd}}").read()
        print(policy._proc.pid, re.search(r"^Pid:\\s*(\\d+)", fdinfo, re.M).group(1), flush=True)
        input()
    """))
    run = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    waiter, child = map(int, run.stdout.readline().split())
    try:
        assert alive(waiter) and alive(child)
        run.kill()
        run.wait()
        deadline = time.monotonic() + 5.0
        while (alive(waiter) or alive(child)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(child) and not alive(waiter)
    finally:  # a failure here must not leave the loop running (and no reused pid is killed)
        run.kill()
        for pid in (child, waiter):
            with contextlib.suppress(OSError):
                if alive(pid) and b"sandbox_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (an orphan's reaper may be slow, or never reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- forged frames --------------------------------------------------------------------------------------------------

FORGE = """
import json, os, struct, sys

def forge(payload, kind):
    frame = sys._getframe()
    while "out_fd" not in frame.f_locals:  # the worker's own reply pipe, a local of its main loop
        frame = frame.f_back
    os.write(frame.f_locals["out_fd"], struct.pack("<IB", len(payload), kind) + payload)

def report(**fields):
    forge(json.dumps(fields).encode(), 0)
"""


@pytest.mark.parametrize("forgery", ['report(kind=[], message="x")', 'report(kind={"a": 1}, message=[1, 2])',
                                     'forge(bytes(16), 1)', 'forge(b"", 1)', 'report(built=True)'])
@pytest.mark.parametrize("where", ["loading", "act", "feedback"])
def test_a_forged_frame_is_a_failure_of_that_candidate_not_of_the_run(where, forgery):
    """A frame written on the worker's reply pipe by the code itself (a failure report whose kind is not a string,
    rows while loading) ends that candidate with a `PolicyFailure`, the one exception its callers expect."""
    body = {"loading": f"{forgery}\nclass Policy:\n    def act(self, obs):\n        return 0\n",
            "act": f"class Policy:\n    def act(self, obs):\n        {forgery}\n        return 0\n",
            "feedback": f"class Feedback:\n    def summarize_trajectory(self, traj):\n        {forgery}\n"
                        "        return 'x'\n"}[where]
    if where == "act":
        failure = contained(FORGE + body)
    else:
        with pytest.raises(PolicyFailure) as raised:
            if where == "feedback":
                with SandboxedFeedback(FORGE + body, NOISEWORLD, LIMITS) as feedback:
                    feedback.summarize(np.zeros((2, 29), dtype=np.float32))
            else:
                SandboxedPolicy(FORGE + body, NOISEWORLD, Discrete(2), LIMITS)
        failure = raised.value
    assert failure is not None and failure.kind in ("crash", "worker_died", "invalid_action")


@pytest.mark.parametrize("chars", [sandbox.sandbox_worker.SUMMARY_CHARS * 2, 1_000_000])
def test_a_feedback_text_written_on_the_pipe_is_bounded_by_the_parent(chars):
    """The worker cuts a Feedback's text to SUMMARY_CHARS; a text the code writes as its own reply is cut by the parent
    (or, past what such a text can take in bytes, refused), so the prompt never gets more."""
    code = FORGE + ("class Feedback:\n    def summarize_trajectory(self, traj):\n"
                    f"        forge(json.dumps('y' * {chars}).encode(), 0)\n        return 'x'\n")
    with SandboxedFeedback(code, NOISEWORLD, LIMITS) as feedback:
        try:
            text = feedback.summarize(np.zeros((2, 29), dtype=np.float32))
        except PolicyFailure as failure:
            assert chars > 12 * sandbox.sandbox_worker.SUMMARY_CHARS and "oversized" in failure.message
        else:
            assert text == "y" * sandbox.sandbox_worker.SUMMARY_CHARS


# -- fail closed ---------------------------------------------------------------------------------------------------

def test_a_missing_layer_stops_before_any_untrusted_code(monkeypatch, tmp_path):
    """A wrapper that leaks a variable into the worker's environment: the worker says so and nothing runs."""
    def leaky_env_spawn():
        import subprocess
        import sys
        env = {"PATH": "/usr/bin:/bin", "LEAKED_TOKEN": SECRET}
        return subprocess.Popen([sys.executable, "-E", "-s", sandbox.sandbox_worker.__file__], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, start_new_session=True, env=env, cwd="/")

    monkeypatch.setattr(sandbox, "spawn_worker", leaky_env_spawn)
    marker = "class Policy:\n    def __init__(self):\n        raise RuntimeError('untrusted code ran')\n" \
             "    def act(self, obs):\n        return 0\n"
    with pytest.raises(SandboxUnavailable, match="environment layer .*--unsafe-sandbox"):
        SandboxedPolicy(marker, NOISEWORLD, Discrete(2), LIMITS)
    with pytest.raises(PolicyFailure, match="untrusted code ran"):  # with the flag it runs, and says what is missing
        SandboxedPolicy(marker, NOISEWORLD, Discrete(2), LIMITS, unsafe=True)
    with SandboxedPolicy(marker.replace("raise RuntimeError('untrusted code ran')", "pass"), NOISEWORLD, Discrete(2), LIMITS, unsafe=True) as policy:
        assert policy.missing_layers == ["environment"]


@pytest.mark.parametrize("caller, layer, error", [
    ("root without CAP_SYS_ADMIN", "filesystem", "unshare: Operation not permitted"),
    ("root without CAP_SETUID", "distinct_uid", "[Errno 1] Operation not permitted"),
    ("20 file descriptors", "filesystem", "[Errno 24] Too many open files"),
])
def test_a_missing_layer_names_the_call_that_stopped_it(tmp_path, caller, layer, error):
    """Where a layer is missing because a call failed (a container's capability set, a low descriptor limit), the
    one-line error names that call's error beside how to get the layer: not the namespaces' advice alone."""
    prctl, setrlimit = ctypes.CDLL(None).prctl, resource.setrlimit
    limit = {"root without CAP_SYS_ADMIN": lambda: prctl(24, 21, 0, 0, 0),  # PR_CAPBSET_DROP, CAP_SYS_ADMIN
             "root without CAP_SETUID": lambda: prctl(24, 7, 0, 0, 0),  # CAP_SETUID
             "20 file descriptors": lambda: setrlimit(resource.RLIMIT_NOFILE, (20, 20))}[caller]
    run = run_caller(tmp_path, "from promptpo_bench.sandbox import SandboxUnavailable, check_sandbox\n"
                               "try:\n    check_sandbox()\nexcept SandboxUnavailable as error:\n    print(error)\n", limit)
    assert run.stdout.startswith(f"the policy sandbox lacks its {layer} layer here ("), run.stderr
    assert f"; the worker's error: {error}" in run.stdout


# -- through submit ------------------------------------------------------------------------------------------------

def test_submit_of_a_hostile_policy_is_rejected_and_the_board_untouched(tmp_path, monkeypatch):
    from promptpo_bench.errors import BenchError
    from promptpo_bench.reference_runs import write_reference_run
    from promptpo_bench.records import sha256_file
    from promptpo_bench.submit import submit

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    run_dir = tmp_path / "run"
    write_reference_run("NoiseWorld-Board0-v0", "random", run_dir, episodes=10)
    board = tmp_path / "board"
    board.mkdir()
    hostile_policy = f"""
import os
class Policy:
    def act(self, obs):
        try:
            key = open({str(BOARDS)!r}).read()
        except OSError:
            key = ''
        raise RuntimeError(f"{{dict(os.environ)}} {{key[:100]}} {{os.listdir('/')}}")
"""
    (run_dir / "policy.py").write_text(hostile_policy)
    record = json.loads((run_dir / "record.json").read_text())
    record["policy"]["sha256"] = sha256_file(run_dir / "policy.py")
    (run_dir / "record.json").write_text(json.dumps(record))
    with pytest.raises(BenchError) as rejected:
        submit(run_dir, board)
    message = str(rejected.value)
    assert "the policy failed on re-evaluation: crash" in message and SECRET not in message and "goal" not in message
    assert list(board.rglob("*")) == []


def test_submit_refuses_an_unsafe_sandbox_run(tmp_path):
    from promptpo_bench.errors import BenchError
    from promptpo_bench.reference_runs import write_reference_run
    from promptpo_bench.submit import submit

    run_dir = tmp_path / "run"
    write_reference_run("NoiseWorld-Board0-v0", "random", run_dir, episodes=10)
    record = json.loads((run_dir / "record.json").read_text())
    record["config"]["unsafe_sandbox"] = True
    (run_dir / "record.json").write_text(json.dumps(record))
    with pytest.raises(BenchError, match="--unsafe-sandbox"):
        submit(run_dir, tmp_path / "board")
    shutil.rmtree(run_dir)


# -- the final evaluation looks like a rollout --------------------------------------------------------------------

COUNTING = """
import os, time

EPISODES, CALLS = 5, 300  # a candidate's rollout: 5 episodes, about 150 steps on board 1 (at most 500)
SEEN = {"built": 0, "calls": 0, "first": time.monotonic()}


class Policy:
    def __init__(self):
        SEEN["built"] += 1
        with open(f"/tmp/built-{os.getuid()}-{os.getpid()}-{SEEN['built']}", "w") as mark:
            mark.write(str(time.time()))

    def scored(self):
        marks = [name for name in os.listdir("/tmp") if name.startswith("built-")]  # its own marks only
        return (SEEN["built"] > EPISODES or SEEN["calls"] > CALLS
                or len(marks) > EPISODES or len({m.split("-")[1] for m in marks}) > 1 or os.getpid() != 1
                or time.monotonic() - SEEN["first"] > 60)

    def act(self, obs):
        SEEN["calls"] += 1
        if self.scored():
            return 0  # up, into the wall until the horizon: the worst it can do
        n = int(round(len(obs.board) ** 0.5))
        return 1 if round(obs.agent_row * (n - 1)) < n - 1 else 3
"""


def innocent_returns(seeds: list[int]) -> list[float]:
    """What COUNTING scores when it never thinks it is scored (down, then right), played in this process."""
    from promptpo_bench.rollout import run_episodes

    class DownThenRight:
        def act(self, episode_ids, obs, steps):
            n = np.rint(np.sqrt(obs.shape[1] - 4))
            return np.where(np.rint(obs[:, 0] * (n - 1)) < n - 1, 1, 3)

    return run_episodes("NoiseWorld-Board1-v0", DownThenRight(), seeds).returns.tolist()


@pytest.mark.parametrize("lifetime", ["rollout", "episode"])
def test_a_policy_cannot_tell_the_final_evaluation_from_a_rollout(tmp_path, lifetime):
    """COUNTING counts its Policy() objects and act calls, the marks left in its /tmp, its pid and uid and the time,
    and plays its worst once any of them says it is past a candidate's 5 episodes. In the 20-episode final
    evaluation, in submit's re-evaluation and in `promptpo-bench rollout RUN_DIR` it scores as in its rollouts."""
    import subprocess
    import sys

    from scripted_server import ScriptedLLMServer

    from promptpo_bench.records import load_record
    from promptpo_bench.rollout import heldout_seeds, run_episodes
    from promptpo_bench.submit import verify

    seeds = heldout_seeds(20)
    with SandboxedPolicy(COUNTING, NOISEWORLD, Discrete(4), lifetime=lifetime) as one_worker:  # the test can fail:
        assert run_episodes("NoiseWorld-Board1-v0", one_worker, seeds).returns.tolist() != innocent_returns(seeds)

    def respond(request, _):
        user = request["messages"][1]["content"]
        if "class `Feedback`" in user:
            return "```python\nclass Feedback:\n    def summarize_trajectory(self, traj):\n        return 'ok'\n```"
        return "It works." if "reflect on the latest attempt" in user else f"```python\n{COUNTING}```"

    run_dir = tmp_path / "run"
    with ScriptedLLMServer(respond) as server:
        subprocess.run([sys.executable, str(REPO / "algorithms" / "promptpo.py"), "--env-id", "NoiseWorld-Board1-v0",
                        "--num-rounds", "1", "--num-candidates", "1", "--num-episodes", "5", "--eval-episodes", "20",
                        "--policy-lifetime", lifetime, "--run-dir", str(run_dir), "--llm-base-url", server.base_url],
                       check=True, capture_output=True, env={**os.environ, "OPENAI_API_KEY": "scripted"}, cwd=REPO)
    record = load_record(run_dir)
    candidate = json.loads((run_dir / "candidates" / "r0_c0_a0.json").read_text())
    assert candidate["failure"] is None and candidate["episodes"] == 5 and min(candidate["returns"]) > 0  # its best
    assert record["config"]["eval_episodes_per_worker"] == 5 and record["final_eval"]["failure"] is None
    assert record["final_eval"]["returns"] == innocent_returns(seeds)
    assert verify(run_dir)[2]["mode"] == "exact"
    rerun = subprocess.run([sys.executable, "-m", "promptpo_bench.cli", "rollout", "NoiseWorld-Board1-v0", "--policy",
                            str(run_dir), "--seed", str(seeds[0]), "--episodes", "20", "--json"],
                           check=True, capture_output=True, text=True, cwd=REPO)
    assert json.loads(rerun.stdout)["returns"] == innocent_returns(seeds)


def test_only_the_libraries_a_worker_may_load_are_in_its_root():
    """The host's library directory is bound file by file (`sandbox_worker.minimal_root`): its hundreds of megabytes
    nobody reads are not there to be timed, while every stdlib extension module still finds its libraries."""
    library_dir = Path("/usr/lib") / sysconfig.get_config_var("MULTIARCH")
    kept = {Path(path).name for path in sandbox.sandbox_worker.minimal_root().files if Path(path).parent == library_dir}
    assert "libc.so.6" in kept and len(list(library_dir.iterdir())) > len(kept)  # the test can fail
    code = f"""
import importlib, os
for name in ("zlib", "hashlib", "ssl", "ctypes", "decimal", "sqlite3", "bz2", "lzma", "uuid", "pyexpat", "curses"):
    importlib.import_module(name)
class Policy:
    def act(self, obs):
        return int(set(os.listdir({str(library_dir)!r})) != {kept!r})
"""
    assert contained(code) is None


def test_every_directory_a_worker_can_look_a_name_up_in_is_its_own():
    """A lookup of a name that is not there leaves a negative entry in the directory cache of the filesystem looked in,
    and the next lookup of that name anywhere is faster (~1.4 µs here): were the stdlib's directory the host's, a
    policy probing made-up names would learn whether an earlier worker (its own rollout) probed them first, i.e. that
    this is the final evaluation. Every directory of a worker's root is made in a tmpfs of its own (`Root`: its files
    bound one by one), a new one for each worker."""
    code = """
import os

def scan():
    own = {os.stat(path).st_dev for path in ("/", "/tmp", "/dev/shm")}
    shared = sum(os.stat(directory).st_dev not in own for directory, _, _ in os.walk("/"))
    stdlib = os.path.dirname(os.__file__)
    return [float(shared), float(os.stat(stdlib).st_dev), float(len(os.listdir(stdlib)))]

class Policy:
    def act(self, obs):
        return scan()
"""
    with contextlib.ExitStack() as both:  # alive together: a device number is reused once its filesystem is gone
        seen = [both.enter_context(SandboxedPolicy(code, NOISEWORLD, Box(0.0, 2.0 ** 40, (3,), np.float64), LIMITS))
                .act(np.array([0]), OBS)[0].tolist() for _ in range(2)]
    (shared, first, names), (_, second, _) = seen
    assert shared == 0 and first != second and first != os.stat(os.path.dirname(os.__file__)).st_dev
    assert names > 100  # the stdlib is there, file by file


def test_every_page_a_worker_can_read_is_in_the_page_cache_before_it_runs():
    """A page nobody read is slow to read once and fast ever after, in any process: a policy timing one read could
    tell whether an earlier worker ran (its own rollout: this is the final evaluation), or read chosen cold pages for
    a later worker to time. The parent makes every file of the root resident before the first worker runs any code,
    and every other file a worker has mapped before its code runs (glibc's LC_CTYPE and libseccomp, mapped before the
    pivot: a red team carried 5 of 5 bits between workers through its cold pages), so none is cold, and (as root)
    locks their pages in memory, so that no reclaim makes them cold again (DAMON pages out cold page cache on the
    development VM)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                                              ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page = os.sysconf("SC_PAGE_SIZE")
    root = [path for paths in sandbox.sandbox_worker.minimal_root().files.values() for path in paths]
    with SandboxedPolicy("class Policy:\n    def act(self, obs):\n        return 0\n", NOISEWORLD, Discrete(2),
                         LIMITS) as policy:
        mapped_dir = f"/proc/{policy._proc.child_pid}/map_files"
        mapped = [os.path.join(mapped_dir, entry) for entry in os.listdir(mapped_dir)]  # as its code is about to run
        mapped_names = {os.readlink(path) for path in mapped if os.path.lexists(path)}
        cold, files, total = [], 0, 0
        for path in root + mapped:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # a mapping the worker has dropped since
                continue
            size = os.fstat(fd).st_size
            if size:
                address = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
                pages = ctypes.create_string_buffer((size + page - 1) // page)
                assert libc.mincore(ctypes.c_void_p(address), size, pages) == 0  # root: the page cache's own view
                libc.munmap(ctypes.c_void_p(address), size)
                if any(not byte & 1 for byte in pages.raw):
                    cold.append(os.readlink(path) if path in mapped else path)
                files += path in root
                total += size * (path in root)
            os.close(fd)
    assert files > 1000 and not cold, cold[:5]
    assert any("LC_CTYPE" in name for name in mapped_names)  # a file outside the root, mapped all the same
    locked = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith("VmLck:")).split()[1]) * 1024
    assert locked >= total  # this process's mappings of the root, each file's pages whole
