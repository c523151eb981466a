"""The policy sandbox: untrusted policy code runs in an isolated worker and every failure comes back as data."""

from __future__ import annotations

import ctypes
import fcntl
import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
import types

import numpy as np
import pytest
from callers import run_caller
from gymnasium.spaces import Box, Discrete

from promptpo_bench.sandbox import REQUIRED_LAYERS, Limits, PolicyFailure, SandboxedPolicy
from promptpo_bench.sandbox_worker import STARTUP_NICENESS, startup_niceness

OBS = "promptpo_bench.sandbox_worker:RawObservation"
FAST = Limits(act_seconds=0.5, load_seconds=5.0)
COUNTING = """
class Policy:
    def __init__(self):
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        return self.calls - 1
"""


@pytest.fixture(autouse=True)
def workers(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen]:
    """Records every worker started by the test; afterwards, each worker's process group must be gone."""
    started = []
    popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    yield started
    for proc in started:
        assert_group_dead(proc)


def assert_group_dead(proc: subprocess.Popen) -> None:
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def sandbox(code: str, space=Discrete(4), limits: Limits = FAST) -> SandboxedPolicy:
    return SandboxedPolicy(textwrap.dedent(code), OBS, space, limits)


def acting(body: str, result: str = "0") -> str:
    """A policy whose act runs `body` (with obs in scope) and returns `result`."""
    lines = textwrap.indent(textwrap.dedent(body).strip() + "\n", " " * 8) if body.strip() else ""
    return f"class Policy:\n    def act(self, obs):\n{lines}        return {result}\n"


def forging(frame: bytes) -> str:
    """A policy body that writes `frame` to every fd it can find: the reply pipe among them, a forged reply."""
    return (f"import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, {frame!r})\n"
            "    except OSError:\n        pass\n")


def sandbox_clock(monkeypatch: pytest.MonkeyPatch, monotonic) -> None:
    """The sandbox module reads `monotonic` as its clock (a test double); its `sleep` stays real."""
    from promptpo_bench import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "time", types.SimpleNamespace(monotonic=monotonic, sleep=time.sleep))


def rows(*first: float, width: int = 104) -> np.ndarray:
    obs = np.zeros((len(first), width), dtype=np.float32)
    obs[:, 0] = first
    return obs


def failure(code: str, space=Discrete(4), limits: Limits = FAST, ids=(0,), obs=None) -> PolicyFailure:
    """Run one act call that must fail; checks the object is closed and its worker dead afterwards."""
    obs = rows(*range(len(ids))) if obs is None else obs
    with sandbox(code, space, limits) as policy:
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array(ids), obs)
        assert_group_dead(policy._proc)
        with pytest.raises(PolicyFailure) as again:
            policy.act(np.array(ids), obs)
        assert again.value.kind == "worker_died"
        assert again.value.message == f"the sandboxed policy is closed after {raised.value}"
    json.dumps(raised.value.to_dict())
    return raised.value


def test_discrete_batch_and_isolation_report():
    with sandbox("class Policy:\n    def act(self, obs):\n        return int(obs.array[0]) % 4\n") as policy:
        actions = policy.act(np.arange(5), rows(3, 6, 9, 12, 2), steps=np.zeros(5))
        assert set(REQUIRED_LAYERS) <= set(policy.isolation) and not policy.missing_layers
    assert actions.dtype == np.int64 and actions.tolist() == [3, 2, 1, 0, 2]


def test_one_policy_instance_per_episode_id():
    with sandbox(COUNTING, Discrete(10)) as policy:
        assert [policy.act(np.array([0]), rows(0))[0] for _ in range(3)] == [0, 1, 2]
        assert policy.act(np.array([7]), rows(0)).tolist() == [0]
        assert policy.act(np.array([0, 7, 8]), rows(0, 0, 0)).tolist() == [3, 1, 0]


def test_a_batch_sent_again_reaches_the_same_policy_objects():
    """`send` packs a batch's tokens once and reuses them while the same ids come again (a rollout's group, step
    after step), and the worker keeps that batch's Policy() objects: each episode keeps its own Policy() through
    repeats, reorderings and subsets of a batch."""
    with sandbox(COUNTING, Discrete(10)) as policy:
        assert policy.act(np.array([0, 1, 2]), rows(0, 0, 0)).tolist() == [0, 0, 0]
        assert policy.act(np.array([0, 1, 2]), rows(0, 0, 0)).tolist() == [1, 1, 1]
        assert policy.act(np.array([2, 0]), rows(0, 0)).tolist() == [2, 2]
        assert policy.act(np.array([2, 0]), rows(0, 0)).tolist() == [3, 3]
        assert policy.act(np.array([0, 1, 2]), rows(0, 0, 0)).tolist() == [4, 2, 4]
        assert policy.act(np.array([3, 1]), rows(0, 0)).tolist() == [0, 3]
        assert policy.act(np.array([1, 3]), rows(0, 0)).tolist() == [4, 1]  # as many rows, in another order


@pytest.mark.parametrize("lifetime", ["rollout", "episode"])
def test_one_policy_instance_per_episode_id_whatever_its_observations(lifetime):
    """The worker reads an episode's token from its own 8 bytes only: observations whose rows begin with different
    bytes (int64 1, 2, 3 right after the token) still reach the same Policy() object."""
    with SandboxedPolicy(COUNTING, OBS, Discrete(10), FAST, lifetime=lifetime) as policy:
        assert [policy.act(np.array([4]), np.array([[step, 0]]))[0] for step in (1, 2, 3)] == [0, 1, 2]


def test_each_worker_runs_as_a_uid_of_its_own():
    code = acting("import os", "[os.getuid(), os.getgid(), len(os.getgroups()), os.getpid()]")
    with sandbox(code, Box(0, 2**32, (4,), np.float64)) as first, sandbox(code, Box(0, 2**32, (4,), np.float64)) as second:
        (uid, gid, groups, pid), = first.act(np.array([0]), rows(0)).tolist()
        (other_uid, *_), = second.act(np.array([0]), rows(0)).tolist()
    assert uid == gid and groups == 0 and pid == 1  # PID 1 of its own PID namespace
    assert uid not in (0, os.getuid(), other_uid) and first.isolation["distinct_uid"]


@pytest.mark.parametrize("returned, expected", [("2", 2), ("np.int64(3)", 3), ("1.0", 1), ("np.float32(0)", 0)])
def test_discrete_accepts_integer_valued_numbers(returned, expected):
    with sandbox("import numpy as np\n" + acting("", returned)) as policy:
        assert policy.act(np.array([0]), rows(0)).tolist() == [expected]


@pytest.mark.parametrize("returned", ["4", "-1", "1.5", "'up'", "None", "True", "[1]", "float('nan')", "object()",
                                      "2**63", "-2**63 - 1"])  # just outside int64: not sent as one int64 row
@pytest.mark.parametrize("ids", [(11,), (11, 12)])  # one observation a message, or a batch: each its own encoding
def test_discrete_rejects_invalid_actions(returned, ids):
    error = failure(acting("", returned), ids=ids)
    assert error.kind == "invalid_action" and error.episode_id == 11
    assert "Policy.act returned" in error.message and "[0, 3]" in error.message


@pytest.mark.parametrize("returned", ["'up'", "'upup'"])  # JSON replies of 6 and 8 bytes: neither is raw rows
def test_discrete_names_an_odd_value_whatever_the_length_of_its_reply(returned):
    error = failure(acting("", returned))
    assert error.kind == "invalid_action" and f"returned {returned} (str)" in error.message


def test_discrete_rejects_an_unsigned_value_that_would_wrap_into_range():
    error = failure("import numpy as np\n" + acting("", "np.uint64(2**64 - 1)"), Discrete(4, start=-2), ids=(5,))
    assert error.kind == "invalid_action" and "18446744073709551615" in error.message


@pytest.mark.parametrize("returned, kind", [("[1e30, -1e30]", None), ("[float('inf'), 0.0]", "invalid_action"),
                                            ("[float('nan'), 0.0]", "invalid_action")])
def test_unbounded_box_accepts_large_finite_numbers_only(returned, kind):
    code, space = acting("", returned), Box(-np.inf, np.inf, (2,), np.float64)
    if kind is None:
        with sandbox(code, space) as policy:
            assert policy.act(np.array([0]), rows(0)).tolist() == [[1e30, -1e30]]
    else:
        assert failure(code, space).kind == kind


def test_integer_box_rejects_fractions():
    space = Box(0, 9, (2,), np.int64)
    with sandbox(acting("", "[3, 4.0]"), space) as policy:
        assert policy.act(np.array([0]), rows(0)).tolist() == [[3, 4]]
    assert "integers" in failure(acting("", "[3, 4.5]"), space).message


@pytest.mark.parametrize("forged, kind", [(b"\x0c\x00\x00\x00\x02" + bytes(12), "worker_died"),
                                          (b"\x10\x00\x00\x00\x02" + bytes(16), "invalid_action"),
                                          (b"\x02\x00\x00\x00\x07{}", "worker_died"),
                                          (b"\x01\x00\x00\x00\x00{", "worker_died"),  # JSON that does not parse
                                          # JSON nested too deeply for the parser (RecursionError)
                                          (struct.pack("<IB", 200_000, 0) + b"[" * 200_000, "worker_died"),
                                          # one Discrete action may take 1 MiB + 128 bytes: one byte more is refused
                                          # at once, the most allowed waits for its payload until the deadline
                                          (struct.pack("<IB", (1 << 20) + 129, 2), "invalid_action"),
                                          (struct.pack("<IB", (1 << 20) + 128, 2), "timeout")])
def test_a_forged_reply_is_a_failure_not_actions(forged, kind):
    """Untrusted code that writes its own frame to the reply pipe (any fd it can find) gets a failure."""
    assert failure(acting(forging(forged), "0")).kind == kind


def test_box_accepts_and_clips_within_tolerance():
    code = acting("", "[[0.5, -0.25], [1 + 1e-7, -1 - 1e-7]][int(obs.array[0])]")
    with sandbox(code, Box(-1, 1, (2,), np.float32)) as policy:
        actions = policy.act(np.array([0, 1]), rows(0, 1))
    assert actions.dtype == np.float32 and actions.tolist() == [[0.5, -0.25], [1.0, -1.0]]


def test_box_integer_actions_arrive_as_their_values():
    """Integers for a Box (the worker sends them as int64 rows, not the float64 rows the parent expects): each is taken
    as the number it is, in a batch and alone, never as the bits of a float."""
    code = acting("", "[[1, 0], [0, 2]][int(obs.array[0])]")  # as float64 bits: tiny numbers, within the bounds
    with sandbox(code, Box(-2, 2, (2,), np.float64)) as policy:
        actions = policy.act(np.array([0, 1]), rows(0, 1))
        alone = policy.act(np.array([2]), rows(1))
    assert actions.tolist() == [[1.0, 0.0], [0.0, 2.0]] and alone.tolist() == [[0.0, 2.0]]


def test_box_with_bounds_of_its_own_per_dimension():
    """Bounds that differ by dimension: values on them pass as they are, values within tolerance beyond them are
    clipped, and a value beyond the other dimension's bound (inside this one's) is refused."""
    space = Box(np.array([-1.0, 0.0]), np.array([1.0, 2.0]), dtype=np.float64)
    code = acting("", "[[1.0, 2.0], [-1.0, 0.0], [1 + 1e-7, -1e-7], [0.0, -0.5]][int(obs.array[0])]")
    with sandbox(code, space) as policy:
        actions = policy.act(np.array([0, 1, 2]), rows(0, 1, 2))
    assert actions.dtype == np.float64 and actions.tolist() == [[1.0, 2.0], [-1.0, 0.0], [1.0, 0.0]]
    error = failure(code, space, ids=(4, 9), obs=rows(0, 3))
    assert error.kind == "invalid_action" and error.episode_id == 9


@pytest.mark.parametrize("returned", ["[1.1, 0.0]", "[float('nan'), 0.0]", "[float('inf'), 0.0]", "[0.0, 0.0, 0.0]",
                                      "0.5", "[[0.0, 0.0]]", "['0.5', 0.0]", "None"])
def test_box_rejects_invalid_actions(returned):
    code = acting("", f"[0.0, 0.0] if obs.array[0] == 0 else {returned}")
    error = failure(code, Box(-1, 1, (2,), np.float32), ids=(4, 9), obs=rows(0, 1))
    assert error.kind == "invalid_action" and error.episode_id == 9
    assert "shape (2,)" in error.message and "[-1, 1]" in error.message


def test_box_rejects_a_plain_int_for_one_observation():
    """One int for a Box of shape (2,), alone in its message: named as what the policy returned, like any odd value."""
    error = failure(acting("", "1"), Box(-1, 1, (2,), np.float32), ids=(4,))
    assert error.kind == "invalid_action" and error.episode_id == 4
    assert "returned 1 (int)" in error.message and "shape (2,)" in error.message


def test_missing_class_lists_defined_names():
    with pytest.raises(PolicyFailure) as raised:
        sandbox("import math\nclass Agent:\n    pass\ndef helper():\n    pass\n")
    assert raised.value.kind == "missing_class"
    assert "'Policy'" in raised.value.message and "Agent, helper, math" in raised.value.message


@pytest.mark.parametrize("code, kind, text, line", [
    ("class Policy:\n    def act(self, obs)\n        return 0\n", "load_error", "does not compile", 'line 2'),
    ("import numpy as np\nTABLE = 1 / 0\n", "load_error", "loading policy.py raised ZeroDivisionError", "line 2"),
    ("class Policy:\n    def __init__(self):\n        raise ValueError('no')\n", "crash", "Policy() raised ValueError: no",
     "line 3, in __init__"),
    ("class Policy:\n    pass\n", "load_error", "Policy has no act method", None),
])
def test_load_failures(code, kind, text, line):
    with pytest.raises(PolicyFailure) as raised:
        sandbox(code)
    assert raised.value.kind == kind and text in raised.value.message
    if line:
        assert 'File "policy.py", ' + line in raised.value.traceback


def test_crash_in_act_reports_the_policy_traceback():
    code = "def helper(x):\n    return 1 / x\n\n\n" + acting("", "helper(int(obs.array[0]) - 1)")
    error = failure(code, ids=(5, 6), obs=rows(1, 1))
    assert error.kind == "crash" and error.episode_id == 5
    assert error.message == "Policy.act raised ZeroDivisionError: division by zero"
    assert 'File "policy.py", line 2, in helper' in error.traceback and "return 1 / x" in error.traceback
    assert 'File "policy.py", line 7, in act' in error.traceback and "sandbox_worker" not in error.traceback


def test_crash_in_constructor_of_a_new_episode():
    code = COUNTING.replace("self.calls = 0", "self.calls = 0\n        Policy.made = getattr(Policy, 'made', 0) + 1\n"
                                              "        assert Policy.made < 2, 'second'")
    with sandbox(code) as policy:
        policy.act(np.array([0]), rows(0))
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0, 1]), rows(0, 0))
    assert raised.value.kind == "crash" and raised.value.episode_id == 1
    assert raised.value.message.startswith("Policy() raised AssertionError")


# the worker's clock and limits as plain functions (fast: no worker), then the limits on real workers


class Clock:
    """Test double of the worker's `time` module: perf_counter reads `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def perf_counter(self) -> float:
        return self.now


def test_within_allows_a_call_up_to_its_limit(monkeypatch):
    from promptpo_bench import sandbox_worker

    monkeypatch.setattr(sandbox_worker, "time", Clock(10.5))
    assert sandbox_worker._within(10.0, 0.5) == 10.5  # exactly at the limit: allowed, and the time now returned
    with pytest.raises(sandbox_worker.PolicyTimeout):
        sandbox_worker._within(9.999, 0.5)
    assert issubclass(sandbox_worker.PolicyTimeout, BaseException)
    assert not issubclass(sandbox_worker.PolicyTimeout, Exception)  # `except Exception` in a policy cannot catch it


def test_the_alarm_ends_a_call_only_while_one_is_live(monkeypatch):
    from promptpo_bench import sandbox_worker

    monkeypatch.setitem(sandbox_worker._ALARM, "live", True)
    with pytest.raises(sandbox_worker.PolicyTimeout, match="time limit exceeded"):
        sandbox_worker._on_alarm(14, None)
    monkeypatch.setitem(sandbox_worker._ALARM, "live", False)
    sandbox_worker._on_alarm(14, None)  # a late alarm between act messages is harmless


def serve_in_this_process(policy_class: type, rows: int, act_seconds: float) -> bytes:
    """The worker's act loop (`_serve`) run in this process on one message of `rows` zero observations (float64
    scalars, the layout sent with it) and then the end of its input; the reply it wrote."""
    import pickle

    from promptpo_bench import sandbox_worker

    layout = pickle.dumps(("<f8", ()))
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    os.write(in_write, sandbox_worker.ACT_HEADER.pack(rows, len(layout), 0) + layout + bytes(8 * rows)
             + np.zeros(rows).tobytes())
    os.close(in_write)
    setup = {"act_seconds": act_seconds, "load_seconds": 1.0, "action_shape": [], "class_name": "Policy",
             "memory_mb": 1}
    try:
        sandbox_worker._serve(sandbox_worker.Reader(in_read), out_write, (policy_class, policy_class()), float, setup,
                              [])
        return os.read(out_read, 1 << 16)
    finally:
        for fd in (in_read, out_read, out_write):
            os.close(fd)


@pytest.mark.parametrize("crashes", [True, False])
def test_the_alarm_is_no_longer_live_when_the_worker_stops_its_timer(monkeypatch, crashes):
    """The worker's act loop, in this process, on one message whose act raises (or answers, and then the input ends):
    the periodic timer starts with no call live and is stopped with none live, so no alarm can cut the failure report
    short or end the worker on its way out."""
    from promptpo_bench import sandbox_worker

    class Policy:
        def act(self, obs):
            if crashes:
                raise KeyError("no")
            return 2

    timers = []
    monkeypatch.setattr(sandbox_worker.signal, "setitimer",
                        lambda *args: timers.append((args[1:], sandbox_worker._ALARM["live"])))
    monkeypatch.setitem(sandbox_worker._ALARM, "live", True)
    reply = serve_in_this_process(Policy, rows=1, act_seconds=1.0)
    size, kind = sandbox_worker.REPLY.unpack_from(reply)
    if crashes:
        assert kind == sandbox_worker.JSON_REPLY and json.loads(reply[sandbox_worker.REPLY.size:])["kind"] == "crash"
    else:
        assert kind == sandbox_worker.INT_ROWS and reply[sandbox_worker.REPLY.size:] == (2).to_bytes(8, "little")
    assert timers == [((sandbox_worker.ALARM_PERIOD, sandbox_worker.ALARM_PERIOD), False), ((0,), False)]


@pytest.mark.parametrize("took, answered", [(0.5, True), (0.75, False)])
def test_each_call_of_a_batch_is_within_its_limit_up_to_it(monkeypatch, took, answered):
    """The worker's act loop, in this process, on one batch of two observations whose calls each take `took` seconds
    of a test double's clock against a limit of 0.5 s: exactly the limit is allowed, as `_within` allows it (the loop
    checks each row's time without calling it), and more ends the batch with a timeout that names the first row."""
    from promptpo_bench import sandbox_worker

    clock = Clock(10.0)

    class Policy:
        def act(self, obs):
            clock.now += took
            return 1

    monkeypatch.setattr(sandbox_worker, "time", clock)
    monkeypatch.setattr(sandbox_worker.signal, "setitimer", lambda *args: None)
    reply = serve_in_this_process(Policy, rows=2, act_seconds=0.5)
    size, kind = sandbox_worker.REPLY.unpack_from(reply)
    if answered:
        assert kind == sandbox_worker.INT_ROWS and reply[sandbox_worker.REPLY.size:] == np.ones(2, "<i8").tobytes()
    else:
        failure = json.loads(reply[sandbox_worker.REPLY.size:])
        assert (kind, failure["kind"], failure["index"]) == (sandbox_worker.JSON_REPLY, "timeout", 0)


def test_a_reply_written_short_is_completed(monkeypatch):
    """A signal can cut a long pipe write short; the worker writes the rest, so no frame is lost or cut."""
    from promptpo_bench import sandbox_worker

    read_fd, write_fd = os.pipe()
    real_write = os.write
    monkeypatch.setattr(sandbox_worker.os, "write", lambda fd, data: real_write(fd, bytes(data)[:3]))  # 3 bytes a call
    try:
        sandbox_worker._write(write_fd, {"kind": "crash", "message": "x" * 40})
        sandbox_worker._write_all(write_fd, b"0123456789")
        monkeypatch.setattr(sandbox_worker.os, "write", real_write)
        os.close(write_fd)
        data = b""
        while chunk := os.read(read_fd, 1 << 16):
            data += chunk
    finally:
        os.close(read_fd)
    size, kind = sandbox_worker.REPLY.unpack_from(data)
    frame_end = sandbox_worker.REPLY.size + size
    assert kind == sandbox_worker.JSON_REPLY and json.loads(data[sandbox_worker.REPLY.size:frame_end]) == {
        "kind": "crash", "message": "x" * 40}
    assert data[frame_end:] == b"0123456789"


def test_the_periodic_alarm_ends_a_call_only_from_its_deadline_on(monkeypatch):
    from promptpo_bench import sandbox_worker

    monkeypatch.setattr(sandbox_worker, "time", Clock(10.5))
    monkeypatch.setitem(sandbox_worker._ALARM, "live", True)
    monkeypatch.setitem(sandbox_worker._ALARM, "deadline", 10.500001)
    sandbox_worker._on_alarm(14, None)  # the act loop's periodic alarm, before the batch's deadline: the call goes on
    monkeypatch.setitem(sandbox_worker._ALARM, "deadline", 10.5)
    with pytest.raises(sandbox_worker.PolicyTimeout, match="time limit exceeded"):
        sandbox_worker._on_alarm(14, None)


def test_the_alarm_spares_a_worker_idle_between_messages():
    """The act loop's periodic alarm must end nothing between messages: a worker left idle after loading (its
    environments still being made) or after an answer goes on answering."""
    with sandbox(COUNTING) as policy:
        time.sleep(0.1)  # five alarm periods before the first message
        assert policy.act(np.array([0]), rows(0)).tolist() == [0]
        time.sleep(0.7)  # past the deadline the last message had (0.5 s)
        assert policy.act(np.array([0]), rows(0)).tolist() == [1]


@pytest.mark.parametrize("hard, asked, expected", [
    (-1, (100, 101), (100, 101)),  # no hard limit yet (RLIM_INFINITY): as asked
    (50, (100, 101), (50, 50)),  # a lower hard limit is kept: both clamped to it
    (200, (100, 101), (100, 101)),
])
def test_set_limit_never_raises_a_hard_limit(monkeypatch, hard, asked, expected):
    from promptpo_bench import sandbox_worker

    hard = sandbox_worker.resource.RLIM_INFINITY if hard == -1 else hard
    calls = []
    monkeypatch.setattr(sandbox_worker.resource, "getrlimit", lambda which: (0, hard))
    monkeypatch.setattr(sandbox_worker.resource, "setrlimit", lambda which, limits: calls.append((which, limits)))
    sandbox_worker._set_limit(7, *asked)
    assert calls == [(7, expected)]


def test_a_forged_empty_reply_is_read_as_soon_as_its_header_is_complete():
    """A frame of a header alone (5 bytes, no payload) is a whole reply: no action values for one observation, an
    invalid action, not a wait for more bytes that ends in the worker's death."""
    error = failure(acting(forging(b"\x00\x00\x00\x00\x02") + "os._exit(0)\n", "0"))
    assert error.kind == "invalid_action" and "returned 0 action values for 1 observations" in error.message


def test_default_limits():
    assert Limits() == Limits(act_seconds=1.0, episode_seconds=120.0, load_seconds=10.0, cpu_seconds=600,
                              memory_mb=2048)


@pytest.mark.parametrize("body", ["while True:\n    pass", "import time\ntime.sleep(100)",
                                  "try:\n    while True:\n        pass\nexcept Exception:\n    pass"])
def test_endless_act_is_interrupted(body):
    start = time.monotonic()
    error = failure(acting(body), ids=(3,))
    assert error.kind == "timeout" and error.episode_id == 3
    assert time.monotonic() - start < FAST.act_seconds + 3
    assert "took longer than 0.5 s" in error.message and "policy.py" in error.traceback


@pytest.mark.parametrize("deadline, waits", [(102.5, [2500]), (100.5, [500]), (99.5, [])])
def test_uninterruptible_wait_for_an_answer_lasts_until_the_deadline_exactly(monkeypatch, deadline, waits):
    """With the parent's clock at 100 s and a deadline of 102.5 s, it waits 2500 ms for the worker (a test double of
    its pipe that never answers), then fails the episode with a timeout; past its deadline it does not wait at all."""
    class NeverAnswering:
        def __init__(self):
            self.waits = []
            self.enabled = True  # a spinning channel's: it waits at once, without trying a read first

        def wait(self, timeout_ms: int) -> bool:
            self.waits.append(timeout_ms)
            return False

    real = time.monotonic
    readings = iter([100.0])  # the first reading, then the real clock (killing the worker waits on it)
    with sandbox(acting("")) as policy:
        policy._spinner = pipe = NeverAnswering()
        sandbox_clock(monkeypatch, lambda: next(readings, None) or real())
        with pytest.raises(PolicyFailure) as raised:
            policy._receive(deadline, "acting", 1 << 20, 7)
    assert pipe.waits == waits
    assert raised.value.kind == "timeout" and raised.value.episode_id == 7


@pytest.mark.parametrize("lifetime", ["episode", "rollout"])
def test_uninterruptible_act_is_killed_at_the_hard_deadline(workers, lifetime):
    """A second act call that stops the worker's timer is killed by the parent at act_seconds + 0.1 s: the 5 s of a
    Policy() construction are in the deadline of an episode's first message only (in lifetime "rollout", of the
    worker's first)."""
    code = acting("import signal\nif obs.array[0]:\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
                  "    while True:\n        pass")
    with SandboxedPolicy(code, OBS, Discrete(4), FAST, lifetime=lifetime) as policy:
        policy.act(np.array([0]), rows(0))
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0]), rows(1))
        elapsed = time.monotonic() - start
        assert_group_dead(workers[0])
    assert raised.value.kind == "timeout" and "killed" in raised.value.message and raised.value.episode_id == 0
    assert FAST.act_seconds < elapsed < FAST.act_seconds + 1.5  # the parent's slack is 0.1 s


STOPS_ITS_TIMER = "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0)\nwhile True:\n    pass"


@pytest.mark.parametrize("lifetime", ["episode", "rollout"])
def test_an_uninterruptible_first_act_has_only_its_own_limit(lifetime):
    """An episode's first call (in lifetime "rollout", the worker's first) gets act_seconds + 0.1 s from the parent,
    even when it stops the worker's timer: its Policy() was built while loading, so the load limit is not its to
    spend (it was, 3.8 s for a 0.2 s limit, before objects were built apart from the calls)."""
    limits = Limits(act_seconds=0.2, load_seconds=3.0)
    with SandboxedPolicy(acting(STOPS_ITS_TIMER), OBS, Discrete(4), limits, lifetime=lifetime) as policy:
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0]), rows(0))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and "killed" in raised.value.message and raised.value.episode_id == 0
    assert limits.act_seconds <= elapsed < limits.load_seconds


SLOW_SECOND_POLICY = """
import signal, time

class Policy:
    built = 0

    def __init__(self):
        Policy.built += 1
        if Policy.built == 2:  # the first built on a message
            time.sleep(0.5)

    def act(self, obs):
        if obs.array[0]:
            signal.setitimer(signal.ITIMER_REAL, 0)
            while True:
                pass
        return 0
"""


def test_an_uninterruptible_act_after_a_construction_gets_no_time_from_it():
    """A batch of two new episodes, one of whose Policy() is built on the message (0.5 s of a 3 s load limit): the
    parent's deadline for the calls starts when the worker says the objects are built, so an act call that stops the
    worker's timer is killed after the batch's act time (2 x 0.2 s + 0.1 s), not after the load limit as well."""
    limits = Limits(act_seconds=0.2, load_seconds=3.0)
    with SandboxedPolicy(SLOW_SECOND_POLICY, OBS, Discrete(4), limits) as policy:
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0, 1]), rows(1, 0))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and "killed" in raised.value.message
    assert 0.5 + 2 * limits.act_seconds <= elapsed < limits.load_seconds


@pytest.mark.parametrize("first, ids, episode_id", [([], [0, 1], None), ([0], [1], 1)])
def test_an_uninterruptible_construction_is_killed_after_its_load_limit(first, ids, episode_id):
    """A Policy() built on a message that stops the worker's timer and never returns: the parent kills it at the
    load limit of the objects the message builds + 0.1 s (one here), not at the batch's act time as well, and says
    what it was doing, for which episode where the message has one."""
    limits = Limits(act_seconds=2.0, load_seconds=0.5)
    code = ("import signal\n\nclass Policy:\n    built = 0\n\n    def __init__(self):\n        Policy.built += 1\n"
            f"        if Policy.built == 2:\n{textwrap.indent(STOPS_ITS_TIMER, ' ' * 12)}\n\n"
            "    def act(self, obs):\n        return 0\n")
    with SandboxedPolicy(code, OBS, Discrete(4), limits) as policy:
        if first:
            policy.act(np.array(first), rows(0))  # the Policy() built while loading
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array(ids), rows(*[0] * len(ids)))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and raised.value.episode_id == episode_id
    assert raised.value.message == ("no answer from the policy within 0.5 s per object while building Policy() "
                                    "objects; killed")
    assert limits.load_seconds <= elapsed < limits.load_seconds + 2 * limits.act_seconds


def test_a_construction_is_not_act_time_of_its_episode():
    """The per-episode budget counts act calls only: a Policy() that takes 0.4 s to build (within its load limit)
    leaves its episode's 0.3 s of act time untouched."""
    code = "import time\n\nclass Policy:\n    def __init__(self):\n        time.sleep(0.4)\n\n" \
           "    def act(self, obs):\n        return 1\n"
    limits = Limits(act_seconds=0.2, episode_seconds=0.3, load_seconds=1.0)
    with SandboxedPolicy(code, OBS, Discrete(4), limits) as policy:
        policy.act(np.array([0]), rows(0))  # the Policy() built while loading
        assert policy.act(np.array([1]), rows(0)).tolist() == [1]  # built on this message
        assert policy._episode_seconds[1] < 0.2


def test_endless_loading_is_interrupted():
    with pytest.raises(PolicyFailure) as raised:
        sandbox("while True:\n    pass\n", limits=Limits(load_seconds=0.5))
    assert raised.value.kind == "timeout" and "loading policy.py" in raised.value.message


def test_episode_time_budget():
    limits = Limits(act_seconds=1.0, episode_seconds=0.3)
    with sandbox(acting("import time\ntime.sleep(0.1)"), limits=limits) as policy:
        with pytest.raises(PolicyFailure) as raised:
            for _ in range(10):
                policy.act(np.array([5]), rows(0))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 5 and "0.3 s" in raised.value.message


def test_cpu_time_limit_not_blamed_for_a_crash_after_much_cpu_time():
    """A policy that spins for 0.95 s of its 1 s of CPU and then crashes (SIGSEGV): the worker's CPU time, start-up
    included, is then over the limit, but the crash is what ended it."""
    body = "import ctypes, time\nwhile time.process_time() < 0.95:\n    pass\nctypes.string_at(0)"
    error = failure(acting(body), limits=Limits(act_seconds=20.0, cpu_seconds=1))
    assert error.kind == "worker_died" and "SIGSEGV" in error.message


def test_cpu_time_limit():
    error = failure(acting("while True:\n    pass"), limits=Limits(act_seconds=20.0, cpu_seconds=1))
    assert error.kind == "cpu_time" and "CPU time limit of 1 s" in error.message


@pytest.mark.parametrize("body", ["bytearray(10**10)", "np.ones(10**10)",
                                  "blocks = []\nwhile True:\n    blocks.append([0.5] * 10**5)"])
def test_memory_bomb(body):
    error = failure("import numpy as np\n" + acting(body), limits=Limits(act_seconds=10.0, memory_mb=600))
    assert error.kind == "memory" and "600 MB" in error.message
    assert np.ones(1000).sum() == 1000  # the caller carries on


@pytest.mark.parametrize("body, text", [
    ("import os\nos._exit(3)", "exited with status 3"),
    ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
    ("import os\nos.close(1)\nimport sys\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n"
     "    except OSError:\n        pass", "while acting"),
])
def test_worker_death(body, text):
    error = failure(acting(body))
    assert error.kind == "worker_died" and text in error.message


def test_worker_death_a_moment_after_closing_the_pipe_is_classified_by_its_status():
    """A worker that closes its end of the pipe and exits 0.2 s later (within the 1 s grace) is waited for: its exit
    status, not "did not exit"."""
    body = """
    import os, time
    for fd in range(3, 64):
        try:
            os.close(fd)
        except OSError:
            pass
    time.sleep(0.2)
    os._exit(3)
    """
    with sandbox(acting(body)) as policy:
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0]), rows(0))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "worker_died" and "exited with status 3" in raised.value.message
    assert elapsed < 0.9  # its exit is noticed when it comes (0.2 s and a loaded machine's delay), not a second late


def test_worker_death_read_after_the_worker_has_exited_is_classified_by_its_status(workers):
    """The pipe's end is read only once the worker process has exited (a busy caller): its exit status, at once."""
    with sandbox(acting("import os\nos._exit(3)")) as policy:
        policy.send(np.array([0]), rows(0))
        while os.waitid(os.P_PID, workers[0].pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            time.sleep(0.01)
        with pytest.raises(PolicyFailure) as raised:
            policy.receive()
    assert raised.value.kind == "worker_died" and "exited with status 3" in raised.value.message


@pytest.mark.parametrize("body, text", [
    ("import os\nos.fork()", "PermissionError"),
    ("import os\nos.posix_spawn('/bin/true', ['true'], {})", "PermissionError"),
    ("import subprocess", "policy sandbox"),
    ("import threading\nthreading.Thread(target=print).start()", "RuntimeError"),
])
def test_no_child_processes_or_threads(body, text):
    error = failure(acting(body))
    assert error.kind == "crash" and text in error.message


def test_no_network():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        error = failure(acting(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.2)"))
        assert error.kind == "crash" and "PermissionError" in error.message  # the seccomp filter: no sockets
        time.sleep(0.1)
        with pytest.raises(BlockingIOError):
            server.accept()


def test_no_file_writes_outside_the_private_tmp():
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:  # the host's /tmp: not the worker's
        os.chmod(directory, 0o777)
        target = os.path.join(directory, "leak.txt")
        error = failure(acting(f"with open({target!r}, 'w') as f:\n    f.write('x' * 100)"))
        assert error.kind == "crash" and "FileNotFoundError" in error.message
        assert not os.path.exists(target)
    big = acting("with open('/tmp/scratch', 'w') as f:\n    f.write('x' * 1000)\n    f.write('x' * (2 << 20))")
    assert "File too large" in failure(big).message  # its own /tmp holds small files only


@pytest.mark.parametrize("module, refused", [
    ("gymnasium", "gymnasium"), ("gymnasium.envs", "gymnasium"), ("promptpo_bench.tasks", "promptpo_bench.tasks"),
    ("promptpo_bench.tasks.noiseworld.oracle", "promptpo_bench.tasks"), ("promptpo_bench.sandbox", "promptpo_bench.sandbox"),
    ("multiprocessing", "multiprocessing"),
])
def test_import_guard(module, refused):
    error = failure(acting(f"import {module}"))
    assert error.kind == "crash"
    assert error.message in (f"Policy.act raised ImportError: policy sandbox: importing {refused!r} is not allowed",
                             f"Policy.act raised ModuleNotFoundError: No module named {refused.split('.')[0]!r}")


def test_stdlib_and_numpy_importable_but_not_the_environment():
    body = """
    import bisect, decimal, fractions, heapq, json, random, statistics, sys
    import numpy as np
    np.random.default_rng(0).integers(4)
    leaked = [m for m in sys.modules if m.startswith(("gymnasium", "promptpo_bench.tasks"))]
    """
    with sandbox(acting(body, "len(leaked) + int(statistics.mean([1, 2]) != 1.5)")) as policy:
        assert policy.act(np.array([0]), rows(0)).tolist() == [0]


def test_print_does_not_break_the_protocol():
    body = "import os, sys\nprint('x' * 100000)\nos.write(1, b'\\x00\\x00\\x00\\x05garbage')\n" \
           "sys.__stdout__.write('more')\nprint('err', file=sys.stderr)"
    with sandbox(acting(body, "int(obs.array[0])")) as policy:
        for _ in range(3):
            assert policy.act(np.array([0, 1]), rows(2, 3)).tolist() == [2, 3]


def test_episode_time_budget_starts_empty_and_is_shared_by_a_batch():
    """A batch's time is split among its episodes, which start with nothing spent: two episodes whose calls sleep
    0.2 s each have spent at least 0.2 s apiece after each batch, so a 0.9 s budget runs out by the fifth batch,
    and not before the third unless a batch takes 0.5 s longer than its sleeps."""
    limits = Limits(act_seconds=1.0, episode_seconds=0.9)
    with sandbox(acting("import time\ntime.sleep(0.2)"), limits=limits) as policy:
        for _ in range(2):
            policy.act(np.array([5, 6]), rows(0, 0))
        with pytest.raises(PolicyFailure) as raised:
            for _ in range(3):
                policy.act(np.array([5, 6]), rows(0, 0))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 5 and "0.9 s" in raised.value.message


def test_discrete_batch_of_one_dimensional_observations():
    """Scalar observations (obs of shape (B,)) reach the policy as 0-d rows, in a batch or one at a time."""
    with sandbox(acting("", "int(obs.array) % 4")) as policy:
        assert policy.act(np.arange(3), np.array([5.0, 6.0, 7.0])).tolist() == [1, 2, 3]
        assert policy.act(np.array([0]), np.array([2.0])).tolist() == [2]
        with pytest.raises(ValueError, match="numeric obs"):
            policy.act(np.array([0]), np.array(2.0))


@pytest.mark.parametrize("ids, obs", [([0, 1], rows(0, 0, 0)), ([[0, 1]], rows(0, 0)),
                                      ([0], np.array([[None]], dtype=object))])
def test_discrete_act_refuses_a_malformed_batch(ids, obs):
    """As many observations as ids, ids in one dimension, numbers only: anything else is the caller's error."""
    with sandbox(COUNTING) as policy:
        with pytest.raises(ValueError, match="act needs episode_ids"):
            policy.act(np.array(ids), obs)
        assert policy.act(np.array([0]), rows(0)).tolist() == [0]  # nothing was sent


BIG = 20_000  # float64 values in a row: one observation (160 kB) or action row is more than a pipe holds (64 kB)


@pytest.mark.parametrize("busy, ids", [([0], [0]), ([0, 1], [0]), ([0, 1], [0, 1])])
def test_a_message_in_a_full_pipe_waits_while_the_worker_is_within_its_limits(busy, ids):
    """The worker spends 0.45 s per call on a batch when the next message fills the pipe: sending it may wait as long
    as the limits of that message and of the batches ahead of it (0.5 s a call, plus 0.1 s), which covers the wait
    (a batch of two ahead of one observation takes 0.9 s, more than that observation's own 0.6 s)."""
    with sandbox(acting("import time\nif obs.array[0]:\n    time.sleep(0.45)")) as policy:
        policy.act(np.array([0, 1]), np.zeros((2, BIG)))  # builds both Policy() objects
        policy.send(np.array(busy), np.ones((len(busy), BIG)))
        policy.send(np.array(ids), np.zeros((len(ids), BIG)))
        assert policy.receive().tolist() == [0] * len(busy) and policy.receive().tolist() == [0] * len(ids)


@pytest.mark.parametrize("ids, wait_ms", [([0], 600), ([0, 1], 1100), ([7], 600)])
def test_a_message_in_a_full_pipe_waits_until_its_deadline_exactly(monkeypatch, ids, wait_ms):
    """With the parent's clock frozen while it sends, a message the pipe cannot take at once waits for the worker to
    read it exactly as long as the message's limits: 0.5 s per observation, 0.1 s of margin (a new episode's
    Policy() is built before its observation is sent)."""
    real = time.monotonic
    frozen = [False]
    polls = []

    class NeverWritable:  # a test double of the pipe's poll: the worker never reads
        def poll(self, timeout_ms: int) -> list:
            frozen[0] = False
            polls.append(timeout_ms)
            return []

    with sandbox(COUNTING) as policy:
        policy.act(np.array([0, 1]), rows(0, 0))
        policy._writable = NeverWritable()
        sandbox_clock(monkeypatch, lambda: 100.0 if frozen[0] else real())
        frozen[0] = True
        with pytest.raises(PolicyFailure) as raised:
            policy.send(np.array(ids), np.zeros((len(ids), BIG)))
    assert polls == [wait_ms]
    assert raised.value.kind == "timeout" and "stopped reading its input" in raised.value.message


def test_an_answer_waiting_when_the_parent_looks_after_its_deadline_is_on_time():
    """The parent may look for an answer after its deadline, busy with its own work (the envs of the other half in
    flight): an answer already waiting then was in time, also while the channel spins (where the parent once
    declared it missing without reading the pipe, failing a correct policy)."""
    with sandbox(COUNTING, limits=Limits(act_seconds=0.1)) as policy:
        policy.act(np.array([0]), rows(0))
        policy._spinner.enabled, policy._room_checked = True, math.inf  # spinning, and no look at the machine
        policy.send(np.array([0]), rows(0))
        time.sleep(0.5)
        assert policy.receive().tolist() == [1]


def test_a_batch_that_starts_episodes_is_sent_alone():
    """Starting episodes waits for the worker to build their Policy() objects, so such a batch cannot follow another
    still in flight: a ValueError, and nothing was sent (the policy goes on)."""
    with sandbox(COUNTING) as policy:
        policy.send(np.array([], dtype=np.int64), rows(0)[:0])  # nothing to answer, yet in flight
        policy.send(np.array([0]), rows(0))  # the worker's first episode: its Policy() was built while loading
        assert policy.receive().tolist() == [] and policy.receive().tolist() == [0]
        policy.send(np.array([0]), rows(0))
        for ids in ([1], [1, 2]):
            with pytest.raises(ValueError, match="no other in flight"):
                policy.send(np.array(ids), rows(*[0] * len(ids)))
        assert policy.receive().tolist() == [1]
        assert policy.act(np.array([1, 2]), rows(0, 0)).tolist() == [0, 0]


@pytest.mark.parametrize("lifetime, batches, built", [
    ("episode", [[0], [1, 2], [1, 2], [3]], [2, 1]),  # a worker's first episode takes the object built while loading
    ("episode", [[0, 1]], [1]),
    ("rollout", [[0], [1], [2]], []),  # one Policy() for the worker, built while loading
])
def test_only_the_objects_a_batch_lacks_are_built_before_it(monkeypatch, lifetime, batches, built):
    """A build message (and its wait) precedes exactly the batches whose episodes lack a Policy() the worker has not
    got yet, and asks for that many."""
    asked = []
    build = SandboxedPolicy._build
    monkeypatch.setattr(SandboxedPolicy, "_build", lambda self, tokens, new, ids: (asked.append(new),
                                                                                   build(self, tokens, new, ids)))
    with SandboxedPolicy(COUNTING, OBS, Discrete(4), FAST, lifetime=lifetime) as policy:
        for ids in batches:
            policy.act(np.array(ids), rows(*[0] * len(ids)))
    assert asked == built


SPLIT_BUILT = """
import os, time

_write = os.write


def write(fd, data):  # the worker's answer to a build message, in two writes a moment apart
    if data.endswith(b'{"built":true}'):
        _write(fd, data[:3])
        time.sleep(0.05)
        return 3 + _write(fd, data[3:])
    return _write(fd, data)


os.write = write
"""


def test_a_construction_s_answer_in_pieces_is_still_taken():
    """The usual answer to a build message is compared as one frame when it arrives whole; in pieces it is read the
    general way, parsed, and taken all the same: through act and act_group."""
    with sandbox(SPLIT_BUILT + COUNTING) as policy:
        assert policy.act(np.arange(3), rows(0, 0, 0)).tolist() == [0, 0, 0]
        assert list(policy.act_group([5, 6], rows(0, 0))) == [0, 0]


def test_a_batch_of_the_next_worker_is_sent_alone():
    """With episodes_per_worker, the batch that moves to the next worker cannot follow one still in flight (its
    answer would be lost with the retired worker), also in lifetime "rollout", where new episodes need no build."""
    with SandboxedPolicy(COUNTING, OBS, Discrete(4), FAST, lifetime="rollout", episodes_per_worker=1) as policy:
        policy.send(np.array([0]), rows(0))
        with pytest.raises(ValueError, match="on their own"):
            policy.send(np.array([1]), rows(0))
        assert policy.receive().tolist() == [0]


def test_an_episode_of_an_earlier_worker_is_the_callers_error():
    """With episodes_per_worker, an episode id played by a retired worker cannot come back (its Policy() is gone with
    that worker): a ValueError that names it, not a crash of the policy."""
    with SandboxedPolicy(COUNTING, OBS, Discrete(4), FAST, episodes_per_worker=1) as policy:
        policy.act(np.array([0]), rows(0))
        policy.act(np.array([1]), rows(0))  # the next worker's
        with pytest.raises(ValueError, match="episode 0 was played by an earlier worker"):
            policy.act(np.array([0]), rows(0))
        assert policy.act(np.array([1]), rows(0)).tolist() == [1]


@pytest.mark.parametrize("ids, episode_id", [([0], 0), ([0, 1], None)])
def test_a_worker_that_stops_reading_fails_the_send_at_its_deadline(ids, episode_id):
    """An act call that cancels the worker's timer never returns nor reads the next message: a send the pipe cannot
    hold fails at its deadline, naming the message's episode when it has one."""
    code = acting("import signal\nif obs.array[0]:\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
                  "    while True:\n        pass")
    with sandbox(code) as policy:
        policy.act(np.array([0, 1]), np.zeros((2, BIG)))
        policy.send(np.array([1]), np.ones((1, BIG)))
        with pytest.raises(PolicyFailure) as raised:
            policy.send(np.array(ids), np.zeros((len(ids), BIG)))
    assert raised.value.kind == "timeout" and raised.value.episode_id == episode_id
    assert raised.value.message == "the policy stopped reading its input while acting"


def test_a_reply_the_full_pipe_cuts_short_is_completed_by_the_worker():
    """Two replies of 160 kB each while the parent reads nothing for a while: the worker's write blocks on the full
    pipe, the periodic alarm cuts it short, and the worker writes the rest, so both arrive whole and in order."""
    space = Box(-10.0, 10.0, (BIG,), np.float64)
    with sandbox("import numpy as np\n" + acting("", f"np.full({BIG}, obs.array[0])"), space) as policy:
        policy.send(np.array([0]), rows(1.0))
        policy.send(np.array([0]), rows(2.0))
        time.sleep(0.3)  # the worker blocks on the full pipe meanwhile, and alarms interrupt its write
        first, second = policy.receive(), policy.receive()
    assert first.shape == second.shape == (1, BIG)
    assert (first == 1.0).all() and (second == 2.0).all()


def wait_for_bytes(fd: int, count: int, seconds: float = 10.0) -> None:
    """Wait until at least `count` bytes wait unread in the pipe `fd` (FIONREAD), so a test knows what one read gets."""
    deadline = time.monotonic() + seconds
    waiting = bytearray(4)
    while fcntl.ioctl(fd, termios.FIONREAD, waiting) or struct.unpack("i", waiting)[0] < count:
        assert time.monotonic() < deadline, f"fewer than {count} bytes arrived"
        time.sleep(0.005)


def test_answers_that_arrive_together_are_received_in_order():
    """Two answers read in one piece leave the second in the buffer, and the next `receive` takes it from there, not
    a later answer of the same size that came in the meantime (two half-batches in flight)."""
    with sandbox(acting("", "int(obs.array[0])"), Discrete(10)) as policy:
        policy.act(np.arange(6), rows(0, 0, 0, 0, 0, 0))  # every episode's Policy() built, the layout known
        policy.send(np.array([0, 1]), rows(1, 2))
        policy.send(np.array([2, 3]), rows(3, 4))
        wait_for_bytes(policy._read_fd, 2 * (5 + 2 * 8))  # both answers (header and two int64s each) in the pipe
        assert policy.receive().tolist() == [1, 2]
        policy.send(np.array([4, 5]), rows(5, 6))
        wait_for_bytes(policy._read_fd, 5 + 2 * 8)  # the third answer waits in the pipe, the second in the buffer
        assert policy.receive().tolist() == [3, 4]
        assert policy.receive().tolist() == [5, 6]


def test_close_is_idempotent_and_kills_the_worker(workers):
    policy = sandbox(COUNTING)
    for _ in range(2):  # the second on act_group's short path, which a closed policy must leave too
        policy.act_group([0], rows(0))
    policy.close()
    policy.close()
    assert_group_dead(workers[0])
    for act in (lambda: policy.act(np.array([0]), rows(0)), lambda: policy.act_group([0], rows(0))):
        with pytest.raises(PolicyFailure) as raised:
            act()
        assert raised.value.kind == "worker_died" and raised.value.message == "the sandboxed policy is closed"


def test_an_empty_batch_gets_no_actions_without_asking_the_worker():
    with sandbox(COUNTING) as policy:
        empty = policy.act(np.zeros(0, dtype=np.int64), np.zeros((0, 104), dtype=np.float32))
        assert empty.shape == (0,) and empty.dtype == np.int64
        assert policy.act(np.array([0]), rows(0)).tolist() == [0]  # the first act call the policy has seen
        for _ in range(2):  # act_group's too (red team: it once failed making a short path for no episodes)
            assert policy.act_group([], np.zeros((0, 104), dtype=np.float32)) == []
        assert [list(policy.act_group([0], rows(0))) for _ in range(2)] == [[1], [2]]
        assert policy.act_group([], np.zeros((0, 104), dtype=np.float32)) == []  # no episode left of the group
        assert list(policy.act_group([0], rows(0))) == [3]


def test_unreferenced_policy_is_killed(workers):
    sandbox(COUNTING).act(np.array([0]), rows(0))
    assert_group_dead(workers[0])


def test_policy_failure_as_dict():
    failure_ = PolicyFailure("crash", "Policy.act raised KeyError: 1", "Traceback ...", 3)
    assert failure_.to_dict() == {"kind": "crash", "message": "Policy.act raised KeyError: 1",
                                  "traceback": "Traceback ...", "episode_id": 3}
    assert str(failure_) == "crash: Policy.act raised KeyError: 1 (episode 3)"
    with pytest.raises(ValueError):
        PolicyFailure("oops", "")


def test_unknown_observation_class_is_a_setup_error():
    with pytest.raises(RuntimeError, match="cannot import promptpo_bench.no_such_module:Observation"):
        SandboxedPolicy(COUNTING, "promptpo_bench.no_such_module:Observation", Discrete(4), FAST)


FEEDBACK = """
class Feedback:
    def summarize_trajectory(self, traj):
        return f"{len(traj)} observations, first {traj[0].agent_row:.1f}, last {traj[-1].agent_row:.1f}"
"""


def test_feedback_runs_in_the_sandbox_on_real_observations():
    from promptpo_bench.sandbox import SandboxedFeedback

    trajectory = np.zeros((4, 29), dtype=np.float32)
    trajectory[-1, 0] = 0.5
    with SandboxedFeedback(FEEDBACK, "promptpo_bench.descriptions.noiseworld:Observation", FAST) as feedback:
        assert feedback.summarize(trajectory) == "4 observations, first 0.0, last 0.5"
        assert feedback.summarize(trajectory[:2]) == "2 observations, first 0.0, last 0.0"


@pytest.mark.parametrize("code,kind,text", [
    ("class Feedback:\n    def summarize_trajectory(self, traj):\n        return traj[99]\n", "crash", "IndexError"),
    ("class Feedback:\n    pass\n", "load_error", "has no summarize_trajectory method"),
    ("class Feedback:\n    def summarize_trajectory(self, traj):\n        while True:\n            pass\n", "timeout",
     "took longer"),
])
def test_feedback_failures_are_data(code, kind, text):
    from promptpo_bench.sandbox import SandboxedFeedback

    with pytest.raises(PolicyFailure) as caught:
        with SandboxedFeedback(code, OBS, FAST) as feedback:
            feedback.summarize(np.zeros((3, 5)))
    assert caught.value.kind == kind and text in caught.value.message


def test_one_act_call_may_not_use_the_whole_batch_budget():
    """The limit is per call: in a batch of 4 (a 2 s budget) one call of 0.8 s is over its own 0.5 s and fails."""
    code = acting("import time\nif obs.array[0] == 1:\n    time.sleep(0.8)")
    with sandbox(code) as policy:
        policy.act(np.arange(4), rows(0, 0, 0, 0))  # builds the four Policy() objects
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.arange(4), rows(0, 1, 0, 0))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 1
    assert "took longer than 0.5 s" in raised.value.message


SLOW_NEW_POLICIES = """
import time


class Policy:
    built = 0

    def __init__(self):
        if Policy.built:  # not the first, built while loading
            time.sleep(0.8)  # over act_seconds, within load_seconds
        Policy.built += 1

    def act(self, obs):
        time.sleep(0.3 * obs.array[0])
        return 0
"""


def test_one_act_call_and_each_new_policy_keep_their_own_limits_in_a_batch():
    """A batch of a known episode and two new ones: 0.3 s act calls (limit 0.5 s) and 0.8 s Policy() constructions
    (limit 5 s), 2.5 s in all, each within its own limit, so the worker's deadline for the batch lets them all run."""
    with sandbox(SLOW_NEW_POLICIES) as policy:
        policy.act(np.array([0]), rows(0))
        assert policy.act(np.array([0, 1, 2]), rows(1, 1, 1)).tolist() == [0, 0, 0]


def test_one_act_call_and_each_new_policy_keep_their_own_limits_in_any_batch():
    """The worker's deadline for a batch is the sum of its calls' limits, recomputed after each Policy() built:
    0.3 s acts and a 0.8 s construction (limits 0.5 s and 5 s) in a batch of a known and a new episode; 0.15 s acts
    after a construction and in a batch of known episodes, 0.45 s in all against 1.5 s."""
    with sandbox(SLOW_NEW_POLICIES) as policy:
        policy.act(np.array([0]), rows(0))
        assert policy.act(np.array([0, 4]), rows(1, 1)).tolist() == [0, 0]
        assert policy.act(np.array([5, 0, 4]), rows(0.5, 0.5, 0.5)).tolist() == [0, 0, 0]
        assert policy.act(np.array([0, 4, 5]), rows(0.5, 0.5, 0.5)).tolist() == [0, 0, 0]


def test_an_endless_act_is_interrupted_at_its_limit_measured_on_the_call_alone():
    """Timed on the act call only (the worker is up and the Policy() built): the worker's own timer stops it at the
    limit, before the parent's deadline (0.1 s later) would kill it."""
    code = acting("if obs.array[0]:\n    while True:\n        pass")
    with sandbox(code) as policy:
        policy.act(np.array([0]), rows(0))
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0]), rows(1))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and "took longer than 0.5 s" in raised.value.message  # not "killed"
    # the call alone: not the worker's start-up (seconds); the slack is a loaded machine's scheduling delay
    assert FAST.act_seconds <= elapsed < FAST.act_seconds + 1.0


@pytest.mark.parametrize("ids", [[0], [0, 1]])
def test_a_call_that_outlasts_its_limit_with_the_alarm_cancelled_is_caught_by_the_clock(ids):
    """A known episode's next observation (the one-observation message's short way) and a batch alike: a call that
    cancels the worker's alarm and returns 0.01 s over its limit, well inside the parent's margin (0.1 s), is
    reported by the worker's clock after the call as a timeout, not answered."""
    code = acting("import signal, time\nif obs.array[0]:\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
                  "    time.sleep(0.51)")
    with sandbox(code) as policy:
        assert policy.act(np.array(ids), rows(*[0] * len(ids))).tolist() == [0] * len(ids)
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array(ids), rows(*[1] * len(ids)))
    assert raised.value.kind == "timeout" and raised.value.episode_id == ids[0]
    assert "took longer than 0.5 s" in raised.value.message  # the worker's report: not "killed"


@pytest.mark.parametrize("body, answered", [("import time\nif obs.array[0]:\n    time.sleep(0.3)", True),
                                            ("if obs.array[0]:\n    while True:\n        pass", False)])
def test_a_new_episodes_first_observation_alone_gets_its_act_limit(body, answered):
    """A new episode's first observation, alone in its message (the one-observation way, not the batch's): its act
    gets its own limit after the Policy() is built, so a call of 0.3 s (limit 0.5 s) is answered and an endless one is
    stopped by the worker at that limit ("took longer than"; not at twice it, nor killed at the parent's deadline)."""
    with sandbox(acting(body)) as policy:
        assert policy.act(np.array([0]), rows(0)).tolist() == [0]  # the layout sent: later messages are one row
        if answered:
            assert policy.act(np.array([1]), rows(1)).tolist() == [0]
            return
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([1]), rows(1))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and raised.value.episode_id == 1
    assert "took longer than 0.5 s" in raised.value.message
    assert FAST.act_seconds <= elapsed < FAST.act_seconds + 0.35  # a trivial Policy(), then one 20 ms alarm period


def test_an_endless_act_in_a_batch_of_new_episodes_is_stopped_by_the_worker():
    """A batch of two new episodes (act 0.2 s, Policy() 1 s each): the worker's deadline is the batch's own limits,
    0.4 s of act calls and the 1 s of the one construction still to come (1.4 s after the first), so it reports
    the endless first call itself, long before the parent's deadline (2.5 s: both constructions) would kill it."""
    limits = Limits(act_seconds=0.2, load_seconds=1.0)
    code = acting("if obs.array[0]:\n    while True:\n        pass")
    with SandboxedPolicy(code, OBS, Discrete(4), limits) as policy:
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0, 1]), rows(1, 0))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 0
    assert "took longer than 0.2 s" in raised.value.message  # not "killed"


@pytest.mark.parametrize("act_seconds, load_seconds", [(0.2, 2.0), (2.0, 0.5)])
def test_an_endless_act_after_the_last_new_policy_of_a_batch_has_only_its_own_limit(act_seconds, load_seconds):
    """In a batch of two new episodes the second act call comes after both Policy() objects are built: the worker
    stops it after its own act_seconds, not the batch's act time nor the constructions' (the parent's deadline has
    both: 2 act calls and 2 constructions + 0.1 s). Bound: half the time the batch would give it, a loaded machine's
    margin (0.2 s against 2 s; 2 s against 2.5 s, where the parent's kill would say "killed")."""
    limits = Limits(act_seconds=act_seconds, load_seconds=load_seconds)
    code = acting("if obs.array[0]:\n    while True:\n        pass")
    with SandboxedPolicy(code, OBS, Discrete(4), limits) as policy:
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.array([0, 1]), rows(0, 1))
        elapsed = time.monotonic() - start
    assert raised.value.kind == "timeout" and raised.value.episode_id == 1
    assert f"took longer than {act_seconds:g} s" in raised.value.message  # not "killed"
    if act_seconds < load_seconds:
        assert elapsed < load_seconds


MADE_ONCE = """
class Policy:
    made = 0

    def __init__(self):
        Policy.made += 1
        self.steps = 0

    def act(self, obs):
        assert Policy.made == 1, 'a second Policy() object'
        self.steps += 1
        return 1
"""


def test_rollout_lifetime_one_policy_object_plays_the_episodes_in_order():
    from promptpo_bench.rollout import run_episodes

    with SandboxedPolicy(MADE_ONCE, "promptpo_bench.descriptions.noiseworld:Observation", Discrete(4), FAST,
                         lifetime="rollout") as policy:
        assert policy.max_batch == 1
        episodes = run_episodes("NoiseWorld-Board0-v0", policy, [1, 2, 3])
        with pytest.raises(ValueError, match="one observation per act call"):
            policy.act(np.array([5, 6]), np.zeros((2, 29), dtype=np.float32))
    assert episodes.lengths.min() > 0
    with SandboxedPolicy(MADE_ONCE, "promptpo_bench.descriptions.noiseworld:Observation", Discrete(4), FAST,
                         lifetime="episode") as policy:
        with pytest.raises(Exception, match="a second Policy"):
            run_episodes("NoiseWorld-Board0-v0", policy, [1, 2, 3])


LATE = """
class Policy:
    def __init__(self):
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        if self.calls == 4:
            {late}
        return {usual}
"""


def one_by_one(policy: SandboxedPolicy, received: list) -> None:
    """Counts `receive` calls (the long way of `act_group`) into `received`."""
    long_way = policy.receive
    policy.receive = lambda: received.append(1) or long_way()


@pytest.mark.parametrize("lifetime", ["rollout", "episode"])
@pytest.mark.parametrize("space", [Discrete(10), Box(-50, 50, (2,), np.float64)])
def test_act_group_answers_as_act_on_its_short_path(lifetime, space):
    """After an episode's first step `act_group` takes its short path (no `receive`) and gets what `act` gets: the
    same Policy() object, the actions of the space's type; a new episode or a new observation layout goes the long
    way once, and a Discrete action is an int."""
    usual = "self.calls" if isinstance(space, Discrete) else "[self.calls, -obs.array[0]]"
    with SandboxedPolicy(LATE.format(late="pass", usual=usual), OBS, space, FAST, lifetime=lifetime) as policy:
        received = []
        one_by_one(policy, received)
        answers = [policy.act_group([7], rows(step))[0] for step in range(3)]
        assert len(received) == 1  # the episode's first step only
        answers.append(policy.act_group([7], np.zeros((1, 3), dtype=np.float64))[0])  # another layout: the long way
        answers.append(policy.act_group([7], np.ones((1, 3), dtype=np.float64))[0])
        answers.append(policy.act_group([8], rows(0))[0])  # a new episode: the long way
        assert len(received) == 3
        answers.append(policy.act_group([8], rows(0, width=5))[0])  # another width, the same dtype: the long way
        assert len(received) == 4
        policy.send(np.array([9]), rows(0))
        with pytest.raises(ValueError, match="batch in flight"):
            policy.act_group([9], rows(0))[0]
        policy.receive()
    if isinstance(space, Discrete):
        assert answers == [1, 2, 3, 4, 5, 1 if lifetime == "episode" else 6, 2 if lifetime == "episode" else 7]
        assert all(type(action) is int for action in answers)
    else:
        assert [action.tolist() for action in answers] == [[1, 0], [2, -1], [3, -2], [4, 0], [5, -1],
                                                           [1 if lifetime == "episode" else 6, 0],
                                                           [2 if lifetime == "episode" else 7, 0]]


@pytest.mark.parametrize("space", [Discrete(10), Box(-50, 50, (2,), np.float64)])
def test_act_group_plays_several_episodes_on_its_short_path(space):
    """Once the worker knows the observation layout (from its first message) a group of episodes goes the short way
    from its first step on, new episodes built first as for `act`, and so does what is left of it when episodes end,
    or the same episodes in another order: each row reaches its own episode's Policy(). A new layout goes the long
    way once."""
    usual = "self.calls" if isinstance(space, Discrete) else "[self.calls, -obs.array[0]]"
    with SandboxedPolicy(LATE.format(late="pass", usual=usual), OBS, space, FAST) as policy:
        received = []
        one_by_one(policy, received)
        answers = [policy.act_group([3], rows(0))]
        assert len(received) == 1  # the worker's first message carries the layout
        answers += [policy.act_group([3, 5, 8], rows(1, 2, 3)) for _ in range(2)]  # two new episodes
        answers += [policy.act_group([8, 3], rows(4, 5)) for _ in range(2)]  # an episode ended
        with pytest.raises(ValueError, match="act needs"):  # fewer episodes, but rows for more: act's error
            policy.act_group([3], rows(6, 7))
        answers.append(policy.act_group([3, 8], rows(6, 7)))  # as many rows, in another order
        answers.append(policy.act_group([5], rows(8)))  # an episode the group no longer has
        assert len(received) == 1
        answers.append(policy.act_group([5, 3], rows(9, 10, width=5)))  # another width: the long way
        assert len(received) == 2
    calls = [[1], [2, 1, 1], [3, 2, 2], [3, 4], [4, 5], [6, 5], [3], [4, 7]]
    if isinstance(space, Discrete):
        assert [list(actions) for actions in answers] == calls
        assert all(type(action) is int for actions in answers for action in actions)
    else:
        firsts = [[0], [1, 2, 3], [1, 2, 3], [4, 5], [4, 5], [6, 7], [8], [9, 10]]
        assert [actions.tolist() for actions in answers] == [
            [[n, -first] for n, first in zip(step, step_firsts)] for step, step_firsts in zip(calls, firsts)]


SUMMING = "class Policy:\n    def act(self, obs):\n        return int(obs.array.sum())\n"  # what its rows hold


@pytest.mark.parametrize("before, after", [(np.ones((3, 2, 2)), np.ones((2, 2))),  # rows of another shape
                                           (np.ones(3), np.ones((2, 3))),  # rows shaped as the group was
                                           (np.ones((3, 2)), np.ones((2, 3, 2))),  # rows that end as they did
                                           (np.ones((3, 4)), np.ones((2, 4), dtype=np.float32))])  # another dtype
def test_act_group_sends_what_is_left_of_a_group_in_a_new_layout_in_it(before, after):
    """Episodes that end at the very step the observation layout changes: what is left of the group does not go the
    short way in the old layout (the worker would misread its rows) but with the new one, as `act` sends it."""
    with SandboxedPolicy(SUMMING, OBS, Discrete(10), FAST) as policy:
        assert [list(policy.act_group([1, 2, 3], before)) for _ in range(2)] == [[before[0].size] * 3] * 2
        assert list(policy.act_group([1, 2], after)) == [after[0].size] * 2


def test_act_group_sends_the_same_episodes_in_a_new_dtype_in_it():
    """The same episodes, rows of the same shape but another dtype: not the short path's old layout, but the new one,
    as `act` sends it (the worker would misread rows of half the size)."""
    with SandboxedPolicy(SUMMING, OBS, Discrete(10), FAST) as policy:
        answers = [list(policy.act_group([1, 2], np.ones((2, 4), dtype=dtype))) for dtype in (np.float64,) * 2 +
                   (np.float32,) * 2]
    assert answers == [[4, 4]] * 4


@pytest.mark.parametrize("space, usual, expected", [(Discrete(4), "1.0", 1),
                                                     (Box(-5, 5, (2,), np.float64), "[1, 2]", [1.0, 2.0])])
def test_act_group_answers_in_the_space_s_type_when_an_answer_goes_the_long_way(space, usual, expected):
    """A valid answer the short path does not read (a Discrete action as the float 1.0, a Box action as integers)
    goes `receive`'s way, step after step, and comes back as the short path's would: a list of ints, or an array."""
    with SandboxedPolicy(LATE.format(late="pass", usual=usual), OBS, space, FAST) as policy:
        received = []
        one_by_one(policy, received)
        answers = [policy.act_group([3, 4], rows(0, 1)) for _ in range(3)]
        assert len(received) == 3  # every step the long way
    for actions in answers:
        if isinstance(space, Discrete):
            assert type(actions) is list and all(type(action) is int for action in actions)
            assert actions == [expected, expected]
        else:
            assert type(actions) is np.ndarray and actions.tolist() == [expected, expected]


@pytest.mark.parametrize("space, late", [(Discrete(4), "return 4"), (Discrete(4), "return 'up'"),
                                         (Discrete(4), "return 5e-324"),  # as raw float rows: the bits of int 1
                                         (Box(-1, 1, (2,), np.float64), "return [0.0, float('nan')]"),
                                         (Box(-1, 1, (2,), np.float64), "return [0.0, 2.0]")])
def test_act_group_rejects_an_invalid_action_after_the_first_step(space, late):
    """An invalid action on the short path fails as on `act`'s: `invalid_action`, the episode named, the object
    closed and its worker dead."""
    usual = "0" if isinstance(space, Discrete) else "[0.0, 0.5]"
    with SandboxedPolicy(LATE.format(late=late, usual=usual), OBS, space, FAST, lifetime="rollout") as policy:
        for _ in range(3):
            policy.act_group([3], rows(0))[0]
        with pytest.raises(PolicyFailure) as raised:
            policy.act_group([3], rows(0))[0]
        assert_group_dead(policy._proc)
        with pytest.raises(PolicyFailure, match="the sandboxed policy is closed after"):
            policy.act_group([3], rows(0))[0]
    assert raised.value.kind == "invalid_action" and raised.value.episode_id == 3
    assert "Policy.act returned" in raised.value.message


@pytest.mark.parametrize("late, kind", [("import os\n            os._exit(3)", "worker_died"),
                                        ("raise ValueError('late')", "crash"),
                                        ("import signal\n            signal.setitimer(signal.ITIMER_REAL, 0)\n"
                                         "            while True:\n                pass", "timeout")])
def test_act_group_reports_a_failure_after_the_first_step(workers, late, kind):
    """A worker that dies, a policy that raises, and one that stops its timer and never answers (killed at the
    parent's hard deadline, act_seconds + 0.1 s) fail on the short path as on `act`'s, naming the episode."""
    with SandboxedPolicy(LATE.format(late=late, usual="0"), OBS, Discrete(4), FAST, lifetime="rollout") as policy:
        for _ in range(3):
            policy.act_group([5], rows(0))[0]
        start = time.monotonic()
        with pytest.raises(PolicyFailure) as raised:
            policy.act_group([5], rows(0))[0]
        assert time.monotonic() - start < FAST.act_seconds + 1.5
        assert_group_dead(workers[0])
    assert raised.value.kind == kind and (kind == "worker_died" or raised.value.episode_id == 5)
    assert kind != "crash" or "ValueError: late" in raised.value.traceback


def test_act_group_moves_to_the_next_worker_with_each_chunk_of_episodes(workers):
    """With 2 episodes per worker, `run_episodes`' one-by-one loop of a rollout-lifetime policy plays 5 episodes on
    three workers, one after another (a spare started ahead of each), with the episodes of one worker for all."""
    from promptpo_bench.rollout import run_episodes

    code = "class Policy:\n    def act(self, obs):\n        return 1 if obs.agent_row < 1.0 else 3\n"
    played = {}
    for per_worker in (None, 2):
        with SandboxedPolicy(code, "promptpo_bench.descriptions.noiseworld:Observation", Discrete(4), FAST,
                             lifetime="rollout", episodes_per_worker=per_worker) as policy:
            played[per_worker] = run_episodes("NoiseWorld-Board1-v0", policy, [1, 2, 3, 4, 5])
    assert len(workers) == 1 + 4
    assert played[2].returns.tolist() == played[None].returns.tolist()
    assert played[2].lengths.tolist() == played[None].lengths.tolist()


def test_act_group_takes_observations_as_nested_lists():
    with sandbox(acting("", "int(obs.array[0])"), Discrete(10)) as policy:
        assert list(policy.act_group([0, 1], [[2.0] * 3, [5.0] * 3])) == [2, 5]
        assert list(policy.act_group([0, 1], [[3.0] * 3, [4.0] * 3])) == [3, 4]  # the short path


def test_act_group_s_short_path_leaves_each_call_its_limit_before_the_parent_s_deadline():
    """A call that never ends on the short path (the second row of a group of two) is stopped by the worker's own
    timer, whose report names the episode and keeps the call's traceback, before the parent's deadline for the
    message (the limits of its calls, and a margin) would kill the worker."""
    code = LATE.format(late="while obs.array[0]:\n                pass", usual="0")
    with SandboxedPolicy(code, OBS, Discrete(4), FAST) as policy:
        for _ in range(3):
            policy.act_group([3, 4], rows(0, 1))
        with pytest.raises(PolicyFailure) as raised:
            policy.act_group([3, 4], rows(0, 1))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 4
    assert "took longer than 0.5 s" in raised.value.message and "policy.py" in raised.value.traceback


def test_act_group_charges_each_episode_its_share_of_a_message():
    """Two episodes whose calls take 0.05 s each share each message's 0.1 s: an episode budget of 0.45 s lasts about
    nine steps, not two (the whole message charged to each, twice over) or forever, and no answer comes back once an
    episode's time is over its budget."""
    limits = Limits(act_seconds=1.0, episode_seconds=0.45)

    def charged(episode_id: int) -> float:  # its total, and what the short path keeps until it is left
        path = policy._short_path
        return policy._episode_seconds[episode_id] + (path.kept if path and episode_id in path.ids else 0.0)

    with sandbox(acting("import time\ntime.sleep(0.05)"), limits=limits) as policy:
        for _ in range(6):
            policy.act_group([5, 6], rows(0, 0))
        assert 0.25 < charged(5) == charged(6) < 0.4
        with pytest.raises(PolicyFailure) as raised:
            for _ in range(10):
                policy.act_group([5, 6], rows(0, 0))
                assert max(charged(5), charged(6)) <= limits.episode_seconds
    assert raised.value.kind == "timeout" and raised.value.episode_id == 5 and "0.45 s" in raised.value.message


def test_a_batch_alarm_leaves_each_new_policy_its_load_limit():
    """Policy() objects built on one message may each take up to load_seconds: two that take 0.8 s each against a
    limit of 1 s are not cut short by the message's alarm, whose deadline counts every constructor's limit and every
    call's; one that never returns is stopped by the worker's own timer, before the parent's deadline."""
    limits = Limits(act_seconds=0.5, load_seconds=1.0)
    slow = ("import time\n\nclass Policy:\n    def __init__(self):\n        time.sleep(0.8)\n\n"
            "    def act(self, obs):\n        return 1\n")
    with sandbox(slow, limits=limits) as policy:  # the first Policy() is built while loading
        assert policy.act(np.arange(3), rows(0, 0, 0)).tolist() == [1, 1, 1]
    endless = ("N = [0]\n\nclass Policy:\n    def __init__(self):\n        N[0] += 1\n        while N[0] == 2:\n"
               "            pass\n\n    def act(self, obs):\n        return 1\n")
    with sandbox(endless, limits=limits) as policy:
        with pytest.raises(PolicyFailure) as raised:
            policy.act(np.arange(2), rows(0, 0))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 1
    assert raised.value.message == "Policy() took longer than 1 s" and "policy.py" in raised.value.traceback


def test_act_group_keeps_the_episode_time_budget():
    """The short path adds each round trip to the episode's act time: a policy that sleeps 0.1 s a call runs out
    of a 0.3 s budget by its fourth call, as through `act`."""
    limits = Limits(act_seconds=1.0, episode_seconds=0.3)
    with sandbox(acting("import time\ntime.sleep(0.1)"), limits=limits) as policy:
        with pytest.raises(PolicyFailure) as raised:
            for _ in range(10):
                policy.act_group([5], rows(0))[0]
    assert raised.value.kind == "timeout" and raised.value.episode_id == 5 and "0.3 s" in raised.value.message


def test_episode_time_kept_on_act_group_s_short_path_counts_once_the_group_changes():
    """The short path keeps its group's act time to itself and adds it to each episode's total when the group
    changes: an episode left alone when the other ended runs out of its budget (0.38 s, calls of 0.1 s) at its fourth
    call, as it would have in a group that never changed, not at its fifth."""
    limits = Limits(act_seconds=1.0, episode_seconds=0.38)
    with sandbox(acting("import time\ntime.sleep(0.1)"), limits=limits) as policy:
        policy.act_group([5, 6], rows(0, 0))  # act's way, then the short path
        policy.act_group([5, 6], rows(0, 0))
        policy.act_group([5], rows(0))  # episode 6 ended
        with pytest.raises(PolicyFailure) as raised:
            policy.act_group([5], rows(0))
    assert raised.value.kind == "timeout" and raised.value.episode_id == 5 and "0.38 s" in raised.value.message


@pytest.mark.parametrize("lifetime", ["rollout", "episode"])
def test_episodes_per_worker_gives_each_chunk_a_fresh_worker(workers, lifetime):
    """Each 2 new episode ids get a fresh process: the module global that counts Policy() objects and act calls
    starts again, every retired worker (and the spare left at the end) is gone, and a message may not span two."""
    code = ("SEEN = [0]\n\nclass Policy:\n    def act(self, obs):\n        SEEN[0] += 1\n"
            "        return min(SEEN[0], 3)\n")
    with SandboxedPolicy(code, OBS, Discrete(4), FAST, lifetime=lifetime, episodes_per_worker=2) as policy:
        assert policy.max_batch == (1 if lifetime == "rollout" else 2)
        seen = [policy.act(np.array([i]), rows(0)).tolist()[0] for i in (0, 0, 1, 2, 2, 3, 4)]
        assert seen == [1, 2, 3, 1, 2, 3, 1]
        assert len(workers) == 4  # three in use, one after another (each started while the one before played)
        assert all(proc.returncode is not None for proc in workers[:2])
        if lifetime == "episode":
            assert policy.act(np.array([4, 5]), rows(0, 0)).tolist() == [2, 3]
            with pytest.raises(ValueError, match="episodes per worker"):
                policy.act(np.array([5, 6]), rows(0, 0))  # episode 5 is the third worker's, 6 would be the fourth's
            with pytest.raises(ValueError, match="episodes per worker"):
                policy.act(np.array([6, 7, 8]), rows(0, 0, 0))
            assert policy.act(np.array([6, 7]), rows(0, 0)).tolist() == [1, 2]  # two new ids: the next worker's


def test_spinning_and_blocking_channels_give_the_same_rollouts(monkeypatch):
    """With no CPU free (as on a loaded machine) both sides block on the pipe, with CPUs to spare they spin: the
    rollouts are the same, message for message."""
    from promptpo_bench import sandbox as sandbox_module
    from promptpo_bench.rollout import run_episodes

    code = "class Policy:\n    def act(self, obs):\n        return 1 if obs.agent_row < 0.5 else 3\n"
    returns = {}
    for cpus in (0, 64):
        monkeypatch.setattr(sandbox_module, "_CPUS", cpus)
        for lifetime in ("rollout", "episode"):
            with SandboxedPolicy(code, "promptpo_bench.descriptions.noiseworld:Observation", Discrete(4), FAST,
                                 lifetime=lifetime) as policy:
                episodes = run_episodes("NoiseWorld-Board1-v0", policy, list(range(6)), batch_size=3)
                assert policy._spinner.enabled == policy.overlaps == (cpus == 64)  # halves only while spinning
                assert cpus == 64 or policy.spun_share == 0
            returns[cpus, lifetime] = episodes.returns.tolist()
    assert returns[0, "rollout"] == returns[64, "rollout"] == returns[0, "episode"] == returns[64, "episode"]


def test_a_channel_that_stops_spinning_looks_again_5_ms_later(monkeypatch):
    """A sample without a CPU free for each side stops spinning at once, and the next sample comes 5 ms later instead
    of a whole period: a crowd seen once (a kernel thread awake for a moment, a worker closed just before) costs 5 ms
    of blocking, not 50. While spinning, samples keep their period."""
    from promptpo_bench import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "_ROOM_SECONDS", 3600.0)  # no periodic sample after the first
    decisions = []
    with sandbox(acting("", "0"), Discrete(2)) as policy:
        for cpus, pause in ((0, 0.0), (64, 0.0), (64, 2 * sandbox_module._RECHECK_SECONDS), (0, 0.1)):
            monkeypatch.setattr(sandbox_module, "_CPUS", cpus)
            time.sleep(pause)
            policy.act(np.array([0]), rows(0))
            decisions.append(policy._spinner.enabled)
    assert decisions == [False, False, True, True]


@pytest.mark.parametrize("way", ["act", "act_group"])
def test_spun_share_counts_only_the_replies_to_act_messages(monkeypatch, way):
    """A spin that catches every reply (a test double of the Spinner: it waits blocking and counts the catch) gives a
    share of exactly 1, through `act` and `act_group`'s short path alike: the start-up's replies are not counted. (A
    CPU free for each side whatever the machine's load: on a busy machine the channel would block and never spin.)"""
    from promptpo_bench import sandbox as sandbox_module
    from promptpo_bench.sandbox_worker import Spinner

    class CatchingSpinner(Spinner):
        def spin(self) -> bool:
            self.caught += 1
            return bool(self.poller.poll(-1))

    monkeypatch.setattr(sandbox_module.sandbox_worker, "Spinner", CatchingSpinner)
    monkeypatch.setattr(sandbox_module, "_CPUS", 64)
    with sandbox(acting("", "0"), Discrete(2)) as policy:
        for _ in range(4):
            if way == "act":
                policy.act(np.arange(2), rows(0, 0))
            else:
                policy.act_group([0, 1], rows(0, 0))
        assert policy.spun_share == 1


def test_a_spin_that_misses_doubles_its_budget_and_only_a_miss_at_the_full_budget_backs_off():
    """A wait longer than the budget (five MuJoCo steps of the parent's) teaches the spinner to spin longer, instead
    of blocking for the next 64 waits after every miss."""
    from promptpo_bench.sandbox_worker import SPIN_BACKOFF, SPIN_MAX_SECONDS, SPIN_MIN_SECONDS, Spinner

    read_end, write_end = os.pipe()
    try:
        spinner = Spinner(read_end)
        budgets = []
        while spinner.budget < SPIN_MAX_SECONDS:
            assert not spinner.spin() and spinner.backoff == 0  # nothing written: a miss, the budget grows
            budgets.append(spinner.budget)
        assert budgets[0] == 2 * SPIN_MIN_SECONDS and budgets[-1] == SPIN_MAX_SECONDS
        assert not spinner.spin() and spinner.backoff == SPIN_BACKOFF  # at the full budget a miss backs off
        assert not spinner.spin() and spinner.backoff == SPIN_BACKOFF - 1  # blocking at once, without spinning
        os.write(write_end, b"x")
        spinner.backoff = 0
        assert spinner.spin() and spinner.caught == 1
    finally:
        os.close(read_end)
        os.close(write_end)


def test_the_spin_decision_counts_the_worker_only_while_it_runs():
    """/proc/PID/stat's state is read after the last ')': a sleeping worker named ') R (' is not running."""
    sleeper = subprocess.Popen([sys.executable, "-c", "open('/proc/self/comm', 'w').write(') R ('); import time; "
                                "print(flush=True); time.sleep(30)"], stdout=subprocess.PIPE)
    spinner = subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"], stdout=subprocess.PIPE)
    try:
        for proc in (sleeper, spinner):
            proc.stdout.readline()
        time.sleep(0.05)
        assert not SandboxedPolicy._worker_running(types.SimpleNamespace(_proc=sleeper))
        assert SandboxedPolicy._worker_running(types.SimpleNamespace(_proc=spinner))
    finally:
        for proc in (sleeper, spinner):
            proc.kill()
            proc.wait()


def test_the_worker_never_sees_the_callers_episode_ids():
    code = acting("import sys\nids = sys._getframe(1).f_locals.get('episode_ids')", "int(max(ids) > 10**9)")
    with sandbox(code, Discrete(2)) as policy:
        assert policy.act(np.arange(3), rows(0, 0, 0)).tolist() == [1, 1, 1]  # opaque random tokens, not 0, 1, 2


def _one_id_per_description() -> list[str]:
    from promptpo_bench import registry

    first: dict[str, str] = {}
    for spec in registry.specs():
        first.setdefault(spec.description, spec.id)
    return list(first.values())


@pytest.mark.parametrize("env_id", _one_id_per_description())
def test_every_description_module_works_in_the_minimal_root(env_id):
    """The worker's root holds a copy of the one description module a task uses: its Observation parses a real
    observation there, with every layer in effect."""
    from promptpo_bench import registry
    from promptpo_bench.rollout import make_env

    env = make_env(env_id)
    obs, _ = env.reset(seed=0)
    space = env.action_space
    action = "0" if isinstance(space, Discrete) else repr(((space.low + space.high) / 2).tolist())
    code = f"import dataclasses\nclass Policy:\n    def act(self, obs):\n" \
           f"        assert dataclasses.is_dataclass(obs) and dataclasses.fields(obs)\n        return {action}\n"
    try:
        with SandboxedPolicy(code, f"{registry.get(env_id).description}:Observation", space, FAST) as policy:
            assert not policy.missing_layers
            assert policy.act(np.array([0]), obs[None]).shape == (1, *space.shape)
    finally:
        env.close()


@pytest.mark.parametrize("caller", ["root without CAP_SYS_NICE", "uid 1000 of a user namespace", "root at nice 15"])
def test_workers_serve_at_their_callers_priority(tmp_path, caller):
    """A caller that may lower a process's priority but never raise it again (root without CAP_SYS_NICE, a container's
    default set; any other user) gets workers that start and serve at its priority: none fails to start, none stays
    niced behind a busy process. Root gets them niced at start, and back at its own niceness once they serve, even
    where that start stopped at 19."""
    namespaced = caller.startswith("uid")  # there the workers share the caller's uid: only an unsafe sandbox runs
    capable = caller == "root at nice 15"
    source = f"""
        import os
        import numpy as np
        from gymnasium.spaces import Discrete
        from promptpo_bench.sandbox import SandboxedPolicy
        from promptpo_bench.sandbox_worker import startup_niceness
        with open("/proc/self/status") as status:
            assert int(next(line for line in status if line.startswith("CapEff:")).split()[1], 16) >> 23 & 1 \
                == {capable}
        print(startup_niceness())
        with SandboxedPolicy({COUNTING!r}, {OBS!r}, Discrete(4), unsafe={namespaced}) as policy:
            print(policy.act(np.array([0]), np.zeros((1, 2))).tolist(),
                  os.getpriority(os.PRIO_PROCESS, policy._proc.child_pid) == os.getpriority(os.PRIO_PROCESS, 0))
    """
    drop = lambda: ctypes.CDLL(None).prctl(24, 23, 0, 0, 0)  # PR_CAPBSET_DROP, CAP_SYS_NICE: not after exec
    run = run_caller(tmp_path, source, (lambda: os.nice(15)) if capable else None if namespaced else drop,
                     ["unshare", "--user", "--map-user=1000", "--map-group=1000"] if namespaced else ())
    assert run.stdout.splitlines() == [str(STARTUP_NICENESS if capable else 0), "[0] True"], run.stderr
    assert startup_niceness() == STARTUP_NICENESS  # this process: root with CAP_SYS_NICE


@pytest.mark.parametrize("umask", [0o077, 0o027])
def test_a_caller_with_a_strict_umask_starts_workers_with_every_layer(tmp_path, umask):
    """The worker builds its root's directories and copy of the description module as root, then takes a uid of its
    own: a caller's umask that keeps others out (077, 027: hardened systems) must not keep the worker out of it."""
    run = run_caller(tmp_path, f"""
        import numpy as np
        from gymnasium.spaces import Discrete
        from promptpo_bench.rollout import make_rollout_env
        from promptpo_bench.sandbox import SandboxedPolicy
        obs = make_rollout_env("NoiseWorld-Board1-v0").reset(seed=0)[0]
        with SandboxedPolicy({COUNTING!r}, "promptpo_bench.descriptions.noiseworld:Observation", Discrete(4)) as policy:
            print(policy.act(np.array([0]), obs[None]).tolist(), policy.missing_layers)
    """, lambda: os.umask(umask))
    assert run.stdout.splitlines() == ["[0] []"], run.stderr


def test_a_file_of_the_root_others_cannot_read_stops_the_start_in_one_line(monkeypatch, tmp_path):
    """Files installed under umask 077 are root's alone, and a worker's uid is its own: a policy importing one (NumPy's
    `random`, loaded on first use) would crash as if by its own fault. The start stops, naming the file and the fix."""
    from promptpo_bench import sandbox as sandbox_module
    from promptpo_bench.errors import BenchError
    from promptpo_bench.sandbox_worker import Root

    hidden = tmp_path / "hidden.py"
    hidden.write_text("")
    hidden.chmod(0o600)
    real = sandbox_module.sandbox_worker.minimal_root()
    monkeypatch.setattr(sandbox_module.sandbox_worker, "minimal_root",
                        lambda: Root([*real.directories, str(tmp_path)], {**real.files, str(tmp_path): [str(hidden)]}))
    sandbox_module._minimal_root.cache_clear()
    try:
        with pytest.raises(BenchError, match=f"cannot read 1 file.* {hidden} first .*: chmod -R o\\+rX {tmp_path}, "):
            SandboxedPolicy(COUNTING, OBS, Discrete(4))
        hidden.chmod(0o644)
        sandbox_module._minimal_root.cache_clear()
        with SandboxedPolicy(COUNTING, OBS, Discrete(4)) as policy:
            assert policy.act(np.array([0]), np.zeros((1, 2))).tolist() == [0]
    finally:
        sandbox_module._minimal_root.cache_clear()


def test_a_worker_that_fails_to_isolate_itself_says_why(monkeypatch):
    """An error in the worker's own start (here a root listing that is not one), before anything untrusted runs, comes
    back as the reason the sandbox failed to start, not as a bare exit status."""
    from promptpo_bench import sandbox as sandbox_module
    from promptpo_bench.sandbox_worker import Root

    monkeypatch.setattr(sandbox_module, "_minimal_root", lambda: Root(None, None))
    with pytest.raises(RuntimeError, match="failed to start: isolating the worker: TypeError: .*NoneType"):
        SandboxedPolicy(COUNTING, OBS, Discrete(4))
