"""The rollout harness: run a batch policy for whole episodes, one episode per seed.

The environments live here, in the trusted process; a policy only maps a batch of observations of
the live episodes to actions. Built-in policies, a user's `policy.py` in the sandbox and (later)
LLM candidates all go through `run_episodes`, so every score in the suite is measured the same way.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import gymnasium as gym
import numpy as np

from . import registry
from .statistics import ci95


class BatchPolicy(Protocol):
    """Maps the observations of several live episodes to one action each."""

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """`episode_ids` name the episodes (a new id starts a fresh episode), `steps` count steps taken in each."""


class RandomPolicy:
    """Uniformly random actions from the action space, seeded."""

    def __init__(self, action_space: gym.Space, seed: int | None = None):
        self.space = action_space
        self.space.seed(seed)

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        return np.stack([self.space.sample() for _ in episode_ids])


@dataclass(frozen=True)
class Episodes:
    """Per-episode outcomes of one rollout."""

    seeds: list[int]
    returns: np.ndarray  # float64
    lengths: np.ndarray  # int64
    successes: np.ndarray | None  # bool, where the task defines success
    observations: list[list[np.ndarray]] | None = None  # per episode, every observation seen (if recorded)

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def success_rate(self) -> float | None:
        return None if self.successes is None else float(self.successes.mean())

    def ci95(self) -> float | None:
        """Half-width of the 95% Student-t confidence interval of the mean return (None for one episode)."""
        return ci95(self.returns)

    def mean_text(self) -> str:
        """The mean return with its 95% CI, for people ("-3.20 ± 0.41 (95% CI)"; one episode has none)."""
        half = self.ci95()
        return f"{self.mean_return:.2f} " + ("(one episode: no CI)" if half is None else f"± {half:.2f} (95% CI)")


class RolloutFailure(Exception):
    """The policy failed mid-rollout; carries the failure and the episodes as far as they went."""

    def __init__(self, failure: Exception, partial: Episodes):
        super().__init__(str(failure))
        self.failure, self.partial = failure, partial

    @property
    def env_steps(self) -> int:
        return self.partial.env_steps


HELDOUT_SEED_BASE = 1_000_000_000  # seeds from here on are held out: no optimisation rollout may use them


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The reset seeds of a rollout: `seed`, `seed + 1`, ... (one per episode)."""
    return [seed + i for i in range(episodes)]


def heldout_seeds(episodes: int) -> list[int]:
    """The task-independent held-out evaluation seeds that every algorithm's `final_eval` uses."""
    return episode_seeds(HELDOUT_SEED_BASE, episodes)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, variant: str | None = None, *,
             checks: bool = True) -> gym.Env:
    """A suite task through the registry (one-line errors), observed as the description `variant` reads it
    (`registry.make_for_policy`; None: the env's own observation), or any other Gymnasium id as it is; `checks=False`
    leaves out Gymnasium's per-call checking wrappers (`registry.make_target`)."""
    if registry.is_registered(env_id) or env_id not in gym.registry:
        return registry.make_for_policy(env_id, variant, checks=checks, **(env_kwargs or {}))
    if variant is not None:
        raise ValueError(f"{env_id} is not a suite task, so it has no description variant {variant!r}")
    return gym.make(registry.make_target(env_id, checks=checks), **(env_kwargs or {}))


def make_rollout_env(env_id: str, env_kwargs: dict[str, Any] | None = None, variant: str | None = None) -> gym.Env:
    """An env for `run_episodes`: as `make_env` without the per-call checks (the harness resets before it steps), in
    a process of its own where the task asks for it."""
    if registry.is_registered(env_id) and registry.get(env_id).env_per_process:
        from .env_process import EnvProcess

        return EnvProcess(env_id, env_kwargs, variant)
    return make_env(env_id, env_kwargs, variant, checks=False)


# envs kept for reuse inside `reusing_envs()`, by task, kwargs and description variant
_idle_envs: dict[tuple[str, str, str | None], list[gym.Env]] | None = None
_idle_lock = threading.Lock()  # PromptPO rolls candidates out in threads


@contextlib.contextmanager
def reusing_envs() -> Iterator[None]:
    """Within this block `run_episodes` keeps its environments for the next rollout of the same task instead of
    closing them (making one costs up to 0.6 s, e.g. Meta-World); each episode still starts with reset(seed=...)."""
    global _idle_envs
    if _idle_envs is not None:  # an outer block already keeps them
        yield
        return
    _idle_envs = {}
    try:
        yield
    finally:
        with _idle_lock:
            idle, _idle_envs = _idle_envs, None
        for envs in idle.values():
            for env in envs:
                env.close()


def _pool_key(env_id: str, env_kwargs: dict[str, Any] | None, variant: str | None) -> tuple[str, str, str | None]:
    return env_id, json.dumps(env_kwargs or {}, sort_keys=True, default=repr), variant


def _borrow_envs(env_id: str, env_kwargs: dict[str, Any] | None, variant: str | None, count: int) -> list[gym.Env]:
    """`count` envs of the task: kept ones first (inside `reusing_envs()`), then new ones."""
    envs = []
    with _idle_lock:
        if _idle_envs is not None:
            idle = _idle_envs.get(_pool_key(env_id, env_kwargs, variant), [])
            envs = [idle.pop() for _ in range(min(count, len(idle)))]
    return envs + [make_rollout_env(env_id, env_kwargs, variant) for _ in range(count - len(envs))]


def _return_envs(env_id: str, env_kwargs: dict[str, Any] | None, variant: str | None, envs: list[gym.Env],
                 healthy: bool) -> None:
    """Keep the envs for reuse inside `reusing_envs()` if no env raised; close them otherwise."""
    with _idle_lock:
        if healthy and _idle_envs is not None:
            _idle_envs.setdefault(_pool_key(env_id, env_kwargs, variant), []).extend(envs)
            return
    for env in envs:
        env.close()


class _Immediate:
    """A plain `BatchPolicy` behind the send/receive pair of a pipelined one: it acts when sent."""

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy, self.actions = policy, None

    def send(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> None:
        self.actions = self.policy.act(episode_ids.copy(), obs.copy(), steps)  # the rollout reuses its arrays

    def receive(self) -> np.ndarray:
        return self.actions


@dataclass(frozen=True)
class _Group:
    """Live episodes sent to the policy together: their envs, episode ids and latest observations, row for row."""

    envs: list[gym.Env]
    ids: np.ndarray
    obs: np.ndarray

    def without(self, rows: list[int]) -> _Group:
        """The group less the given rows (episodes that ended)."""
        kept = [k for k in range(len(self.envs)) if k not in rows]
        return _Group([self.envs[k] for k in kept], self.ids.take(kept), self.obs.take(kept, axis=0))

    def halves(self) -> tuple[_Group, _Group]:
        """The first and second half of the group, sharing its arrays."""
        half = (len(self.ids) + 1) // 2
        return (_Group(self.envs[:half], self.ids[:half], self.obs[:half]),
                _Group(self.envs[half:], self.ids[half:], self.obs[half:]))


def run_episodes(env_id: str, policy: BatchPolicy, seeds: Sequence[int], env_kwargs: dict[str, Any] | None = None,
                 batch_size: int = 64, record_observations: bool = False,
                 on_episode_end: Callable[[], None] | None = None, variant: str | None = None) -> Episodes:
    """Roll `policy` out for one episode per seed, `batch_size` episodes side by side (one act call per step).

    A policy with `send(episode_ids, obs)` and `receive()` (the sandbox) may get the live episodes in two halves,
    one in flight while the environments of the other step, so the policy's process and this one work at once:
    from the third step on, when the wait for an answer was longer than twice the time sending the batch took (what
    a second message a step costs). A policy with `act_group(episode_ids, obs)` (the sandbox's short path for the
    same episodes step after step) plays in turn through it instead, a round trip a step with the least work around
    it, where halves cannot pay: while it says its process cannot work beside this one (`overlaps` False: the
    sandbox's channel blocks on a busy machine, and halves would only add messages), and with one episode at a time
    (through a loop of its own, without the group's arrays).
    A policy with `max_batch` (a sandboxed policy whose one `Policy()` serves the whole rollout: 1) gets at most that
    many live episodes at once, so its episodes run one after another, in seed order.
    A policy exception is re-raised as `RolloutFailure` so callers can still count the steps taken.
    `on_episode_end` is called as each episode ends (a progress bar's tick). `variant`: the description variant a
    code policy reads, whose `Observation` may carry more than the env's array (`registry.make_for_policy`); None
    (PPO, SAC, random): the env's own observation.
    """
    batch_size = min(batch_size, getattr(policy, "max_batch", None) or batch_size)
    success_key = registry.get(env_id).success_key if registry.is_registered(env_id) else None
    returns, lengths = [0.0] * len(seeds), [0] * len(seeds)
    successes: list[bool] | None = [False] * len(seeds) if success_key else None
    observations: list[list[np.ndarray]] | None = [[] for _ in seeds] if record_observations else None
    pipelined = hasattr(policy, "send") and hasattr(policy, "receive")
    channel = policy if pipelined else _Immediate(policy)

    def outcome() -> Episodes:
        return Episodes(list(seeds), np.array(returns, dtype=np.float64), np.array(lengths, dtype=np.int64),
                        None if successes is None else np.array(successes, dtype=bool), observations)

    def send(group: _Group) -> float:
        """Hand the group's observations to the policy; the seconds that took (a message's price, for halves)."""
        if observations is not None:
            for i, row in zip(group.ids.tolist(), group.obs):
                observations[i].append(row.copy())
        steps = None if pipelined else np.array([lengths[i] for i in group.ids.tolist()])  # the sandbox needs none
        start = time.perf_counter()
        try:
            channel.send(group.ids, group.obs, steps)
        except Exception as failure:
            raise RolloutFailure(failure, outcome()) from failure
        return time.perf_counter() - start

    def receive() -> np.ndarray:
        try:
            return channel.receive()
        except Exception as failure:
            raise RolloutFailure(failure, outcome()) from failure

    def account(i: int, obs: np.ndarray, reward: float, terminated: bool, truncated: bool, info: dict) -> bool:
        """Add a step to episode i (its reward, length, success); at its end record its last observation and tick.
        Whether it ended."""
        returns[i] += float(reward)
        lengths[i] += 1
        if successes is not None and info.get(success_key):
            successes[i] = True
        if not (terminated or truncated):
            return False
        if observations is not None:
            observations[i].append(obs.copy())
        if on_episode_end is not None:
            on_episode_end()
        return True

    def play_alone(env: gym.Env, i: int) -> None:
        """Episode i with one observation a message through `act_group`: the bookkeeping of `play_in_turn`, without
        its loop over the group (a step of a rollout of one `Policy()` is little more than its round trip)."""
        act_group, step, one = policy.act_group, env.step, [i]
        obs = env.reset(seed=int(seeds[i]))[0]
        while True:
            if observations is not None:
                observations[i].append(obs.copy())
            try:
                action = act_group(one, obs[None])[0]
            except Exception as failure:
                raise RolloutFailure(failure, outcome()) from failure
            obs, reward, terminated, truncated, info = step(action)
            if account(i, obs, reward, terminated, truncated, info):
                return

    def reset_group(ids: Sequence[int]) -> _Group:
        """Episodes `ids` started, each in its env reset to its seed: the group a batch begins as."""
        first = [env.reset(seed=int(seeds[i]))[0] for env, i in zip(envs, ids)]
        return _Group(envs[:len(ids)], np.array(ids), np.stack(first))

    def play_in_turn(ids: list[int]) -> None:
        """Episodes `ids` side by side through `act_group`, each step waiting for its answer: the same bookkeeping as
        the loop below, without its halves and timings."""
        act_group, group = policy.act_group, reset_group(ids)
        live, obs = group.envs, group.obs
        while ids:
            if observations is not None:
                for i, row in zip(ids, obs):
                    observations[i].append(row.copy())
            try:
                actions = act_group(ids, obs)
            except Exception as failure:
                raise RolloutFailure(failure, outcome()) from failure
            if side_by_side:
                for env, action in zip(live, actions):
                    env.step_send(action)
            ended = []
            for k, (env, i, action) in enumerate(zip(live, ids, actions)):
                row, reward, terminated, truncated, info = env.step_receive() if side_by_side else env.step(action)
                obs[k] = row
                if account(i, row, reward, terminated, truncated, info):
                    ended.append(k)
            if ended:
                group = group.without(ended)
                ids, live, obs = group.ids.tolist(), group.envs, group.obs

    envs = _borrow_envs(env_id, env_kwargs, variant, min(batch_size, len(seeds)))
    side_by_side = bool(envs) and hasattr(envs[0], "step_send")  # envs in processes of their own: stepped at once
    healthy = False  # whether no env raised: then the envs may be reused
    try:
        for start in range(0, len(seeds), batch_size):
            ids = range(start, min(start + batch_size, len(seeds)))
            if batch_size == 1 and hasattr(policy, "act_group"):
                play_alone(envs[0], start)
            elif hasattr(policy, "act_group") and not getattr(policy, "overlaps", True):
                play_in_turn(list(ids))
            else:
                groups = [reset_group(ids)]
                send(groups[0])
                trial = pipelined  # whether the next whole-batch step still decides on halves
                while groups:
                    group = groups.pop(0)  # answers come back in the order the groups were sent
                    asked = time.perf_counter() if trial else 0.0
                    actions = receive()
                    answered = time.perf_counter() if trial else 0.0
                    rows, ended = group.obs, []
                    actions = actions.tolist() if actions.ndim == 1 else actions
                    if side_by_side:
                        for env, action in zip(group.envs, actions):
                            env.step_send(action)
                    for k, (env, i, action) in enumerate(zip(group.envs, group.ids.tolist(), actions)):
                        rows[k], reward, terminated, truncated, info = (
                            env.step_receive() if side_by_side else env.step(action))
                        if account(i, rows[k], reward, terminated, truncated, info):
                            ended.append(k)
                    if ended:
                        group = group.without(ended)
                    # Decide after two warm-up steps (the first built each Policy()).
                    if trial and len(group.ids) and lengths[group.ids[0]] == 3:
                        trial = False
                        # Halves pay a second message a step, about twice what sending one took (its send and its
                        # answer's checks), and save most of the wait for an answer, during which the envs of the
                        # other half step (NoiseWorld, and MuJoCo with its description's Observation: yes).
                        if len(group.ids) > 1 and getattr(policy, "overlaps", True) \
                                and answered - asked > 2 * send_s:
                            groups = list(group.halves())
                            for part in groups:
                                send(part)
                            continue
                    if len(group.ids):
                        send_s = send(group)
                        groups.append(group)
        healthy = True
    except RolloutFailure:  # the policy failed, not the envs
        healthy = True
        raise
    finally:
        _return_envs(env_id, env_kwargs, variant, envs, healthy)
    return outcome()


def random_return(env_id: str, episodes: int, seed: int = 0, env_kwargs: dict[str, Any] | None = None) -> float:
    """Mean return of uniform random actions (RandomPolicy seeded `seed`) on reset seeds seed..seed+episodes-1: how
    the stored "random" reference scores were measured."""
    env = make_env(env_id, env_kwargs)
    try:
        policy = RandomPolicy(env.action_space, seed)
    finally:
        env.close()
    return run_episodes(env_id, policy, list(range(seed, seed + episodes)), env_kwargs).mean_return
