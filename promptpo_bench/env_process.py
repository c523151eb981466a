"""One environment in a process of its own, behind the plain `gym.Env` API.

For tasks whose env holds a once-per-process resource (`TaskSpec.env_per_process`): libsumo runs one simulation per
process, so a rollout's further Traffic envs in one process would talk to SUMO over TraCI sockets. `run_episodes`
makes such envs as `EnvProcess`es: each child process makes the env with `registry.make` and answers `reset`,
`step` and `close` over a pipe (trusted code on both sides, so pickle).
Run as `python -m promptpo_bench.env_process FD` by `EnvProcess`, never by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection, Pipe
from typing import Any

import gymnasium as gym


class EnvProcess(gym.Env):
    """The env `env_id` (with `env_kwargs`, observed as description `variant` reads it) in a child process; `close()`
    ends the process."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, variant: str | None = None) -> None:
        ours, theirs = Pipe()
        self._proc = subprocess.Popen([sys.executable, "-m", "promptpo_bench.env_process", str(theirs.fileno())],
                                      pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = ours
        self.observation_space, self.action_space = self._call("make", env_id, env_kwargs, variant)

    def _call(self, command: str | None, *args: Any) -> Any:
        """Send a command (None: only read the answer to one already sent) and return its answer."""
        try:
            if command is not None:
                self._conn.send((command, args))
            ok, value = self._conn.recv()
        except (EOFError, OSError) as error:
            raise RuntimeError(f"the env process ended ({error or 'no answer'})") from None
        if not ok:
            raise RuntimeError(f"the env process failed on {command}:\n{value}")
        return value

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self._call("reset", seed, options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self._call("step", action)

    def step_send(self, action: Any) -> None:
        """First half of `step`: the child starts stepping (`run_episodes` lets a rollout's envs step side by side)."""
        try:
            self._conn.send(("step", (action,)))
        except OSError as error:
            raise RuntimeError(f"the env process ended ({error})") from None

    def step_receive(self) -> tuple[Any, float, bool, bool, dict]:
        """Second half of `step`: the step's outcome."""
        return self._call(None)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._call("close")
            except RuntimeError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._conn.close()


def _serve(conn: Connection) -> None:
    """Make the env and answer its calls until `close` or the end of the pipe."""
    import promptpo_bench  # noqa: F401  (registers the suite's tasks)
    from promptpo_bench import registry

    env = None
    while True:
        try:
            command, args = conn.recv()
        except EOFError:  # the parent is gone (it exited without `close`): nothing is left to answer
            command = None
            break
        try:
            if command == "make":
                env_id, env_kwargs, variant = args
                # only suite tasks ask for one; as `make_rollout_env`, without the per-call checks
                env = registry.make_for_policy(env_id, variant, checks=False, **(env_kwargs or {}))
                value = (env.observation_space, env.action_space)
            elif command == "reset":
                value = env.reset(seed=args[0], options=args[1])
            elif command == "step":
                value = env.step(*args)
            else:
                break
            conn.send((True, value))
        except Exception:
            conn.send((False, traceback.format_exc()))
    if env is not None:
        env.close()
    if command is not None:  # `close`, answered
        conn.send((True, None))


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
    os._exit(0)
