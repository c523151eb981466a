"""The rollout harness's env reuse: inside `reusing_envs()` a rollout takes the envs an earlier one left, and the
episodes are the same as with new envs."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from promptpo_bench import registry, rollout
from promptpo_bench.errors import BenchError
from promptpo_bench.rollout import RandomPolicy, reusing_envs, run_episodes

ENV_ID = "NoiseWorld-Board1-v0"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every env `run_episodes` makes, with a `closed` flag set by its close()."""
    envs = []
    make = rollout.make_env

    def recording_make_env(env_id, env_kwargs=None, variant=None, **options):
        env = make(env_id, env_kwargs, variant, **options)
        env.closed, close = False, env.close

        def recording_close():
            env.closed = True
            close()

        env.close = recording_close
        envs.append(env)
        return env

    monkeypatch.setattr(rollout, "make_env", recording_make_env)
    return envs


def returns(seeds: list[int]) -> np.ndarray:
    space = registry.make(ENV_ID).action_space
    return run_episodes(ENV_ID, RandomPolicy(space, 0), seeds, batch_size=4).returns


def test_without_the_block_every_rollout_makes_and_closes_its_envs(made):
    returns([0, 1, 2, 3])
    returns([0, 1, 2, 3])
    assert len(made) == 8 and all(env.closed for env in made)


def test_inside_the_block_envs_are_reused_and_episodes_unchanged(made):
    fresh = returns([4, 5, 6, 7, 8, 9])
    count = len(made)
    with reusing_envs():
        first = returns([4, 5, 6, 7, 8, 9])
        second = returns([4, 5, 6, 7, 8, 9])
        kept = made[count:]
        assert len(made) == count + 4  # made once
        assert not any(env.closed for env in kept)
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(second, fresh)
    assert all(env.closed for env in kept)


def test_envs_that_raised_are_closed_not_kept(made, monkeypatch):
    with reusing_envs():
        returns([0, 1])
        kept = made[-2:]
        broken = kept[0].unwrapped

        def failing_step(action):
            raise RuntimeError("simulator crashed")

        monkeypatch.setattr(broken, "step", failing_step)
        with pytest.raises(RuntimeError, match="simulator crashed"):
            returns([0, 1])
        assert all(env.closed for env in kept)
        before = len(made)
        returns([0, 1])
        assert len(made) == before + 2  # new envs, not the closed ones


# run_episodes itself, against a test-double env whose episodes are known in advance

DOUBLE_ID = "CountingDouble-v0"


class FakeClock:
    """A clock that moves only when the test doubles say so: the pipelining decision without real timing."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class CountingEnvDouble(gym.Env):
    """Test double: an episode of seed s lasts 1 + s % 6 steps; its observation is (s, t); each step's reward is
    s + t + action / 10; it ends terminated for even seeds, truncated for odd ones; info["success"] is whether the
    action was 2. Each step advances `clock` by `step_s`."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, clock: FakeClock | None = None, step_s: float = 0.0) -> None:
        self.clock, self.step_s, self.closed = clock, step_s, False

    def reset(self, *, seed=None, options=None):
        self.seed_, self.t = seed, 0
        return np.array([seed, 0.0]), {}

    def step(self, action):
        assert int(action) in (0, 1, 2)
        if self.clock is not None:
            self.clock.now += self.step_s
        self.t += 1
        over = self.t >= 1 + self.seed_ % 6
        reward = self.seed_ + self.t + int(action) / 10
        return np.array([self.seed_, float(self.t)]), reward, over and self.seed_ % 2 == 0, \
            over and self.seed_ % 2 == 1, {"success": int(action) == 2}

    def close(self) -> None:
        self.closed = True


class SideBySideEnvDouble(CountingEnvDouble):
    """Test double of an env in a process of its own (EnvProcess's step_send / step_receive)."""

    def step_send(self, action) -> None:
        self.sent = action

    def step_receive(self):
        return self.step(self.sent)


def action_of(episode: int, step: int) -> int:
    return (episode + 2 * step) % 3


class RuleDouble:
    """Test double of a batch policy: action (episode id + 2 * step) % 3; records every call's arguments as given,
    and then scribbles over them (the rollout must have handed it copies)."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.seen: list[tuple[list, list, list]] = []

    def act(self, episode_ids, obs, steps):
        self.calls.append((episode_ids, obs, steps))
        self.seen.append((episode_ids.tolist(), obs.tolist(), steps.tolist()))
        actions = np.array([action_of(i, s) for i, s in zip(episode_ids.tolist(), steps.tolist())])
        return actions


class PipelinedDouble:
    """Test double of a pipelined policy (the sandbox's send/receive): the same rule, with the step of each live
    episode counted here (a pipelined policy gets no `steps`); each send advances `clock` by `send_s`, each receive
    by `wait_s`."""

    def __init__(self, clock: FakeClock, wait_s: float, fail_at: int | None = None, send_s: float = 0.0) -> None:
        self.clock, self.wait_s, self.fail_at, self.send_s = clock, wait_s, fail_at, send_s
        self.counts: dict[int, int] = {}
        self.sizes: list[int] = []
        self.pending: list[np.ndarray] = []

    def send(self, episode_ids, obs, steps):
        assert steps is None
        self.clock.now += self.send_s
        self.sizes.append(len(episode_ids))
        actions = []
        for i in episode_ids.tolist():
            actions.append(action_of(i, self.counts.get(i, 0)))
            self.counts[i] = self.counts.get(i, 0) + 1
        self.pending.append(np.array(actions))

    def receive(self):
        self.clock.now += self.wait_s
        if self.fail_at is not None and len(self.sizes) >= self.fail_at:
            raise RuntimeError("policy crashed")
        return self.pending.pop(0)


def expected(seeds: list[int]) -> tuple[list[float], list[int], list[bool], list[list[list[float]]]]:
    """Returns, lengths, successes and observations of `action_of` on the test-double env, episode by episode."""
    returns, lengths, successes, observations = [], [], [], []
    for k, seed in enumerate(seeds):
        length = 1 + seed % 6
        acts = [action_of(k, t) for t in range(length)]
        returns.append(sum(seed + t + 1 + a / 10 for t, a in enumerate(acts)))
        lengths.append(length)
        successes.append(2 in acts)
        observations.append([[seed, float(t)] for t in range(length + 1)])
    return returns, lengths, successes, observations


@pytest.fixture
def double_task(monkeypatch):
    """DOUBLE_ID as a suite task with a success key, its envs the test double; returns the envs made."""
    spec = dataclasses.replace(registry.get("NoiseWorld-v0"), id=DOUBLE_ID, success_key="success")
    monkeypatch.setitem(registry._SPECS, DOUBLE_ID, spec)
    made = []

    def make_double(env_id, env_kwargs=None, variant=None):
        assert env_id == DOUBLE_ID and variant is None
        env = (env_kwargs or {}).get("cls", CountingEnvDouble)(**(env_kwargs or {}).get("clock", {}))
        made.append(env)
        return env

    monkeypatch.setattr(rollout, "make_rollout_env", make_double)
    return made


SEEDS = [3, 8, 5, 0, 11, 4, 7]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_episodes_are_those_of_a_plain_loop(double_task, batch_size):
    policy, ends = RuleDouble(), []
    episodes = run_episodes(DOUBLE_ID, policy, SEEDS, batch_size=batch_size, record_observations=True,
                            on_episode_end=lambda: ends.append(1))
    returns, lengths, successes, observations = expected(SEEDS)
    assert episodes.seeds == SEEDS
    np.testing.assert_allclose(episodes.returns, returns, rtol=0, atol=1e-12)
    assert episodes.returns.dtype == np.float64 and episodes.lengths.dtype == np.int64
    assert episodes.lengths.tolist() == lengths and episodes.successes.tolist() == successes
    assert episodes.successes.dtype == bool
    assert [[o.tolist() for o in episode] for episode in episodes.observations] == observations
    assert episodes.env_steps == sum(lengths) and len(ends) == len(SEEDS)
    assert episodes.mean_return == pytest.approx(np.mean(returns)) and isinstance(episodes.mean_return, float)
    assert episodes.success_rate == pytest.approx(np.mean(successes))
    assert len(double_task) == min(batch_size, len(SEEDS)) and all(env.closed for env in double_task)
    # every act call: the live episodes' ids, their latest observations and their step counts, row for row
    for ids, obs, steps in policy.seen:
        assert 1 <= len(ids) <= batch_size
        assert obs == [[SEEDS[i], float(s)] for i, s in zip(ids, steps)]
    assert sum(len(ids) for ids, _, _ in policy.seen) == sum(lengths)
    # the arrays the policy was given are its own: the rollout reuses its buffers, not the policy's copies
    for (ids, obs, steps), (ids_then, obs_then, steps_then) in zip(policy.calls, policy.seen):
        assert (ids.tolist(), obs.tolist(), steps.tolist()) == (ids_then, obs_then, steps_then)


def test_a_policy_that_scribbles_on_its_arguments_changes_nothing(double_task):
    class ScribblingDouble(RuleDouble):
        def act(self, episode_ids, obs, steps):
            actions = super().act(episode_ids, obs, steps)
            episode_ids[:], obs[:] = 0, -1.0
            return actions

    episodes = run_episodes(DOUBLE_ID, ScribblingDouble(), SEEDS, batch_size=4, record_observations=True)
    returns, lengths, _, observations = expected(SEEDS)
    assert episodes.lengths.tolist() == lengths
    np.testing.assert_allclose(episodes.returns, returns, rtol=0, atol=1e-12)
    assert [[o.tolist() for o in episode] for episode in episodes.observations] == observations


def test_without_a_success_key_there_are_no_successes(double_task, monkeypatch):
    monkeypatch.setitem(registry._SPECS, DOUBLE_ID, dataclasses.replace(registry.get(DOUBLE_ID), success_key=None))
    episodes = run_episodes(DOUBLE_ID, RuleDouble(), SEEDS)
    assert episodes.successes is None and episodes.success_rate is None and episodes.observations is None


def test_a_policy_with_max_batch_runs_its_episodes_one_after_another(double_task):
    policy = RuleDouble()
    policy.max_batch = 1
    episodes = run_episodes(DOUBLE_ID, policy, SEEDS, batch_size=4)
    order = [ids for ids, _, _ in policy.seen]
    assert all(len(ids) == 1 for ids in order)
    assert [i for (i,) in order] == sorted(i for (i,) in order)  # seed order
    assert episodes.lengths.tolist() == expected(SEEDS)[1] and len(double_task) == 1


class InTurnDouble:
    """Test double of a policy with the sandbox's `act_group` (the live episodes' ids and rows in, their actions out)
    and, by default, `overlaps` False (a busy machine's channel), so that every batch plays in turn through
    `act_group`: the same rule, each episode's steps counted here; fails with ValueError at row `fail_at`."""

    def __init__(self, fail_at: int | None = None, max_batch: int | None = None, overlaps: bool = False) -> None:
        self.fail_at, self.max_batch, self.overlaps = fail_at, max_batch, overlaps
        self.seen: list[tuple[int, list]] = []
        self.groups: list[list[int]] = []

    def act(self, episode_ids, obs, steps):
        raise AssertionError("a policy with act_group that cannot overlap gets act_group calls only")

    def act_group(self, episode_ids, obs):
        self.groups.append(list(episode_ids))
        actions = []
        for episode_id, row in zip(episode_ids, obs):
            if len(self.seen) == self.fail_at:
                raise ValueError("bad action")
            step = sum(1 for i, _ in self.seen if i == episode_id)
            self.seen.append((episode_id, row.tolist()))
            actions.append(action_of(episode_id, step))
        return actions


@pytest.mark.parametrize("cls", [CountingEnvDouble, SideBySideEnvDouble])
@pytest.mark.parametrize("max_batch, batch_size", [(1, 64), (None, 3)])
def test_a_policy_with_act_group_plays_in_turn(double_task, cls, max_batch, batch_size):
    """`act_group`'s loop gives what the pipelined loop gives: returns, lengths, successes, observations, a tick per
    episode, the same observations acted on, the ended episodes left out of the next step's group; with max_batch 1
    the episodes one by one in seed order on one env (one in a process of its own too), even where the policy's
    process could work beside this one."""
    policy, ends = InTurnDouble(max_batch=max_batch, overlaps=max_batch == 1), []
    episodes = run_episodes(DOUBLE_ID, policy, SEEDS, batch_size=batch_size, env_kwargs={"cls": cls},
                            record_observations=True, on_episode_end=lambda: ends.append(1))
    returns, lengths, successes, observations = expected(SEEDS)
    np.testing.assert_allclose(episodes.returns, returns, rtol=0, atol=1e-12)
    assert episodes.lengths.tolist() == lengths and episodes.successes.tolist() == successes
    assert [[o.tolist() for o in episode] for episode in episodes.observations] == observations
    assert len(ends) == len(SEEDS) and len(double_task) == min(max_batch or batch_size, len(SEEDS))
    for i, episode in enumerate(observations):
        assert [obs for seen, obs in policy.seen if seen == i] == episode[:-1]
    assert all(len(group) <= (max_batch or batch_size) for group in policy.groups)
    assert [i for group in policy.groups for i in group] == [i for i, _ in policy.seen]
    if max_batch == 1:
        assert [i for i, _ in policy.seen] == sorted(i for i, _ in policy.seen)
    else:  # each group holds the episodes of its batch still going, in seed order
        for group in policy.groups:
            assert group == sorted(group) and len({i // batch_size for i in group}) == 1
        assert len(policy.groups) == sum(max(lengths[i:i + batch_size]) for i in range(0, len(SEEDS), batch_size))


@pytest.mark.parametrize("max_batch, batch_size, taken",
                         [(1, 64, [4, 3, 2, 0, 0, 0, 0]), (None, 3, [3, 3, 3, 0, 0, 0, 0])])
def test_a_policy_failure_in_act_group_keeps_the_steps_taken(double_task, max_batch, batch_size, taken):
    """A failure at the tenth row asked for keeps the steps taken before it: one episode at a time, lengths 4, 3 and 6,
    the third cut short; in turn, three at a time, at the fourth step, the second episode having ended at the third."""
    with pytest.raises(rollout.RolloutFailure) as error:
        run_episodes(DOUBLE_ID, InTurnDouble(fail_at=9, max_batch=max_batch), SEEDS, batch_size=batch_size)
    assert isinstance(error.value.failure, ValueError) and str(error.value) == "bad action"
    assert error.value.env_steps == sum(taken) == error.value.partial.lengths.sum()
    assert error.value.partial.lengths.tolist() == taken


def test_a_policy_with_act_group_that_can_overlap_gets_batches_the_general_way(double_task):
    """Without `overlaps` (or with it True) a batch of several episodes goes through `act` (or `send` and `receive`,
    where halves may pay): `act_group` then serves one episode at a time only."""
    class RuleAndGroupDouble(RuleDouble):
        def act_group(self, episode_ids, obs):
            raise AssertionError("a batch goes through act while the policy's process may work beside this one")

    episodes = run_episodes(DOUBLE_ID, RuleAndGroupDouble(), SEEDS, batch_size=3)
    assert episodes.lengths.tolist() == expected(SEEDS)[1]


def test_a_policy_failure_keeps_the_steps_taken(double_task):
    class FailingDouble(RuleDouble):
        def act(self, episode_ids, obs, steps):
            if len(self.seen) == 5:
                raise ValueError("bad action")
            return super().act(episode_ids, obs, steps)

    policy = FailingDouble()
    with reusing_envs():
        with pytest.raises(rollout.RolloutFailure) as error:
            run_episodes(DOUBLE_ID, policy, SEEDS, batch_size=3)
        assert not any(env.closed for env in double_task)  # the policy failed, not the envs: they are kept
        run_episodes(DOUBLE_ID, RuleDouble(), SEEDS, batch_size=3)
        assert len(double_task) == 3
    assert isinstance(error.value.failure, ValueError) and str(error.value) == "bad action"
    taken = sum(len(ids) for ids, _, _ in policy.seen)
    assert error.value.env_steps == taken == error.value.partial.lengths.sum() and taken > 5
    assert error.value.partial.lengths.tolist()[3:] == [0, 0, 0, 0]  # the second batch never started


@pytest.mark.parametrize("wait_s, step_s, split", [(1.0, 1.0, True), (0.4, 0.1, False)])
@pytest.mark.parametrize("cls", [CountingEnvDouble, SideBySideEnvDouble])
def test_a_pipelined_policy_gets_halves_when_waiting_outweighs_a_message(double_task, monkeypatch, wait_s, step_s,
                                                                         split, cls):
    """Sending a batch takes 0.25 (fake) s, so a second message a step would cost about 0.5 s: an answer that takes
    1 s is worth halving for even beside 5 envs that step in 5 s (MuJoCo's case), one that takes 0.4 s is not even
    beside envs that step in 0.5 s."""
    clock = FakeClock()
    monkeypatch.setattr(rollout, "time", clock)
    seeds = [5, 10, 11, 4, 3]  # lengths 6, 5, 6, 5, 4
    policy = PipelinedDouble(clock, wait_s, send_s=0.25)
    episodes = run_episodes(DOUBLE_ID, policy, seeds, env_kwargs={"cls": cls, "clock": {"clock": clock,
                                                                                        "step_s": step_s}},
                            record_observations=True)
    returns, lengths, successes, observations = expected(seeds)
    np.testing.assert_allclose(episodes.returns, returns, rtol=0, atol=1e-12)
    assert episodes.lengths.tolist() == lengths and episodes.successes.tolist() == successes
    assert [[o.tolist() for o in episode] for episode in episodes.observations] == observations
    if split:  # three whole-batch steps, then halves of 3 and 2, each losing its episodes as they end
        assert policy.sizes == [5, 5, 5, 3, 2, 3, 1, 2]
    else:
        assert policy.sizes == [5, 5, 5, 5, 4, 2]


def test_a_pipelined_policy_that_cannot_overlap_is_not_split(double_task, monkeypatch):
    """An answer that takes 1 s would be worth halving for (above), but the policy says its process cannot work
    beside this one (the sandbox's channel blocking on a busy machine): whole batches only."""
    clock = FakeClock()
    monkeypatch.setattr(rollout, "time", clock)
    policy = PipelinedDouble(clock, 1.0)
    policy.overlaps = False
    run_episodes(DOUBLE_ID, policy, [5, 10, 11, 4, 3], env_kwargs={"clock": {"clock": clock, "step_s": 0.1}})
    assert policy.sizes == [5, 5, 5, 5, 4, 2]


def test_a_pipelined_policy_with_one_episode_is_not_split(double_task, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(rollout, "time", clock)
    policy = PipelinedDouble(clock, 10.0)
    episodes = run_episodes(DOUBLE_ID, policy, [5], env_kwargs={"clock": {"clock": clock, "step_s": 0.1}})
    assert policy.sizes == [1] * 6 and episodes.lengths.tolist() == [6]


def test_a_pipelined_policy_failure_keeps_the_steps_taken(double_task, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(rollout, "time", clock)
    with pytest.raises(rollout.RolloutFailure) as error:
        run_episodes(DOUBLE_ID, PipelinedDouble(clock, 0.0, fail_at=3), [5, 10])
    assert error.value.partial.lengths.tolist() == [2, 2] and error.value.env_steps == 4


def test_episode_seeds_and_mean_text():
    assert rollout.episode_seeds(7, 3) == [7, 8, 9] and rollout.heldout_seeds(2) == [1_000_000_000, 1_000_000_001]
    two = rollout.Episodes([0, 1], np.array([1.0, 3.0]), np.array([1, 2]), None)
    assert two.mean_text() == f"2.00 ± {two.ci95():.2f} (95% CI)" and two.ci95() == pytest.approx(12.706 * 1, 1e-3)
    one = rollout.Episodes([0], np.array([-3.204]), np.array([5]), None)
    assert one.ci95() is None and one.mean_text() == "-3.20 (one episode: no CI)"


def test_make_env_takes_suite_tasks_and_other_gymnasium_ids():
    board = rollout.make_env("NoiseWorld-v0", {"board": 2})
    assert board.unwrapped.board.name == registry.make("NoiseWorld-Board2-v0").unwrapped.board.name
    cartpole = rollout.make_env("CartPole-v1", {"max_episode_steps": 7})
    assert cartpole.spec.max_episode_steps == 7
    assert rollout.make_env(env_id="CartPole-v1", env_kwargs={"max_episode_steps": 7}, variant=None,
                            checks=False).spec.max_episode_steps == 7  # every parameter by name
    with pytest.raises(BenchError, match="unknown env id 'NoWorld-v0'"):
        rollout.make_env("NoWorld-v0")


def wrappers(env: gym.Env) -> list[str]:
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return names


@pytest.mark.parametrize("env_id, kwargs", [("NoiseWorld-Board1-v0", {}), ("CartPole-v1", {"max_episode_steps": 7})])
def test_rollout_envs_leave_out_only_the_per_call_checks(env_id, kwargs):
    """The harness resets before it steps: its envs skip OrderEnforcing and PassiveEnvChecker, and nothing else."""
    checked = rollout.make_env(env_id, kwargs)
    assert {"OrderEnforcing", "PassiveEnvChecker"} <= set(wrappers(checked))
    unchecked = rollout.make_rollout_env(env_id, kwargs)
    assert wrappers(unchecked) == [name for name in wrappers(checked)
                                   if name not in ("OrderEnforcing", "PassiveEnvChecker")]
    assert unchecked.spec.max_episode_steps == checked.spec.max_episode_steps
    assert gym.spec(env_id).order_enforce and not gym.spec(env_id).disable_env_checker  # the registry's untouched


def test_a_variant_keeps_its_observation_without_the_checks():
    pytest.importorskip("mujoco")
    paper = rollout.make_rollout_env("HalfCheetah-v5", None, "paper")
    assert wrappers(paper) == ["SimulatorState", "TimeLimit"]
    assert paper.observation_space == rollout.make_env("HalfCheetah-v5", None, "paper").observation_space


def test_an_env_process_whose_parent_is_gone_exits_quietly(capfd):
    """A parent that exits without `close` (a benchmark's last env, a killed run) leaves its env process an ended
    pipe: it closes its env and exits 0, with no traceback of a reply it can no longer send."""
    from promptpo_bench.env_process import EnvProcess

    env = EnvProcess("NoiseWorld-Board1-v0")
    env.reset(seed=0)
    env._conn.close()  # what the parent's exit does to its end
    assert env._proc.wait(timeout=30) == 0
    assert capfd.readouterr().err == ""


def test_env_per_process_tasks_get_an_env_process(monkeypatch):
    from promptpo_bench import env_process

    spec = dataclasses.replace(registry.get("NoiseWorld-v0"), id=DOUBLE_ID, env_per_process=True)
    monkeypatch.setitem(registry._SPECS, DOUBLE_ID, spec)
    monkeypatch.setattr(env_process, "EnvProcess",
                        lambda env_id, kwargs, variant: ("EnvProcess double", env_id, kwargs, variant))
    assert rollout.make_rollout_env(DOUBLE_ID, {"a": 1}) == ("EnvProcess double", DOUBLE_ID, {"a": 1}, None)
    assert rollout.make_rollout_env(DOUBLE_ID, {}, "paper") == ("EnvProcess double", DOUBLE_ID, {}, "paper")
    assert isinstance(rollout.make_rollout_env("NoiseWorld-v0").unwrapped, gym.Env)


def test_random_return_is_the_mean_of_seeded_random_episodes():
    env_id, kwargs = "NoiseWorld-v0", {"size": 4, "layout_seed": 1}  # a small board random actions finish
    space = registry.make(env_id, **kwargs).action_space
    again = run_episodes(env_id, RandomPolicy(space, 2), [2, 3, 4, 5, 6, 7], kwargs).mean_return
    assert rollout.random_return(env_id, 6, seed=2, env_kwargs=kwargs) == again
    assert again != rollout.random_return(env_id, 6, seed=3, env_kwargs=kwargs)
    assert rollout.random_return(env_id, 6, seed=2) == -100.0  # the default board: random never gets out


def test_nested_blocks_keep_envs_until_the_outer_one_ends(made):
    with reusing_envs():
        with reusing_envs():
            returns([0, 1])
        assert not any(env.closed for env in made)
        returns([0, 1])
        assert len(made) == 2
        space = registry.make(ENV_ID).action_space
        run_episodes(ENV_ID, RandomPolicy(space, 0), [0, 1], env_kwargs={})
        assert len(made) == 2  # no kwargs and empty kwargs are the same task
        for steps, count in ((50, 4), (60, 6), (50, 6)):
            other = run_episodes(ENV_ID, RandomPolicy(space, 0), [0, 1], env_kwargs={"max_episode_steps": steps})
            assert len(made) == count and other.lengths.max() <= steps  # other kwargs: other envs
        for kwargs in ({"max_episode_steps": 40, "disable_env_checker": True},
                       {"disable_env_checker": True, "max_episode_steps": 40}):  # in any order: the same task
            run_episodes(ENV_ID, RandomPolicy(space, 0), [0, 1], env_kwargs=kwargs)
            assert len(made) == 8
    assert all(env.closed for env in made)


def test_the_default_batch_is_64_episodes(double_task):
    policy = RuleDouble()
    episodes = run_episodes(DOUBLE_ID, policy, list(range(70)))
    assert max(len(ids) for ids, _, _ in policy.seen) == 64 == len(double_task)
    assert episodes.lengths.tolist() == expected(list(range(70)))[1]


def test_two_live_episodes_are_split_into_two_halves_of_one(double_task, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(rollout, "time", clock)
    policy = PipelinedDouble(clock, 10.0)
    episodes = run_episodes(DOUBLE_ID, policy, [5, 11], env_kwargs={"clock": {"clock": clock, "step_s": 0.1}})
    assert policy.sizes == [2, 2, 2] + [1] * 6 and episodes.lengths.tolist() == [6, 6]


class BoxEnvDouble(CountingEnvDouble):
    """Test double with a Box(2,) action space: every action must reach it as a NumPy row of two floats."""

    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def step(self, action):
        assert isinstance(action, np.ndarray) and action.shape == (2,), action
        return super().step(int(action[0] > 0) + int(action[1] > 0))


def test_box_actions_reach_the_env_as_rows(double_task):
    class BoxRuleDouble(RuleDouble):
        def act(self, episode_ids, obs, steps):
            discrete = super().act(episode_ids, obs, steps)
            return np.stack([(discrete >= 1) * 1.0 - 0.5, (discrete >= 2) * 1.0 - 0.5], axis=1).astype(np.float32)

    episodes = run_episodes(DOUBLE_ID, BoxRuleDouble(), SEEDS, env_kwargs={"cls": BoxEnvDouble}, batch_size=3)
    returns, lengths, successes, _ = expected(SEEDS)
    np.testing.assert_allclose(episodes.returns, returns, rtol=0, atol=1e-12)
    assert episodes.successes.tolist() == successes


def test_groups_split_and_shrink_without_changing_the_original():
    """A group's halves share its arrays, so groups are frozen: a change would reach the other half."""
    envs = [f"env{k}" for k in range(5)]
    group = rollout._Group(envs, np.arange(10, 15), np.arange(10.0).reshape(5, 2))
    first, second = group.halves()
    assert (first.envs, first.ids.tolist(), second.envs, second.ids.tolist()) == (envs[:3], [10, 11, 12], envs[3:],
                                                                                  [13, 14])
    assert np.shares_memory(first.obs, group.obs) and second.obs.tolist() == [[6.0, 7.0], [8.0, 9.0]]
    rest = group.without([0, 3])
    assert (rest.envs, rest.ids.tolist(), rest.obs[:, 0].tolist()) == (["env1", "env2", "env4"], [11, 12, 14],
                                                                       [2.0, 4.0, 8.0])
    assert group.ids.tolist() == [10, 11, 12, 13, 14]
    with pytest.raises(dataclasses.FrozenInstanceError):
        group.ids = rest.ids
    episodes = rollout.Episodes([0], np.zeros(1), np.ones(1, dtype=np.int64), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        episodes.returns = np.ones(1)


def test_an_answer_taking_exactly_twice_the_send_is_not_worth_halves(double_task, monkeypatch):
    """Sending takes 0.0625 (fake) s: halves need an answer slower than 0.125 s (exact binary fractions, so the
    comparison is exact), whether or not it is slower than the 4 envs' 0.5 s of stepping."""
    for wait_s, split in ((0.125, False), (0.1875, True), (0.75, True)):
        clock = FakeClock()
        monkeypatch.setattr(rollout, "time", clock)
        policy = PipelinedDouble(clock, wait_s, send_s=0.0625)
        run_episodes(DOUBLE_ID, policy, [5, 11, 17, 23], env_kwargs={"clock": {"clock": clock, "step_s": 0.125}})
        assert policy.sizes[3:5] == ([2, 2] if split else [4, 4]), wait_s


def test_random_return_starts_at_seed_0():
    kwargs = {"size": 4, "layout_seed": 1}
    assert rollout.random_return("NoiseWorld-v0", 6, env_kwargs=kwargs) == rollout.random_return(
        "NoiseWorld-v0", 6, seed=0, env_kwargs=kwargs)
    assert rollout.random_return("NoiseWorld-v0", 6, env_kwargs=kwargs) != rollout.random_return(
        "NoiseWorld-v0", 6, seed=1, env_kwargs=kwargs)


def test_a_policy_is_pipelined_only_with_both_send_and_receive(double_task):
    class SendOnlyDouble(RuleDouble):
        def send(self, message):  # some other `send` of the policy's own: not the pipelined protocol
            raise AssertionError("the rollout must act, not send")

    class ReceiveOnlyDouble(RuleDouble):
        def receive(self):
            raise AssertionError("the rollout must act, not receive")

    for policy in (SendOnlyDouble(), ReceiveOnlyDouble()):
        assert run_episodes(DOUBLE_ID, policy, SEEDS).lengths.tolist() == expected(SEEDS)[1]
