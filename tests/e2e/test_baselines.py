"""The classical baselines (algorithms/ppo.py, dqn.py, sac.py): short runs, autoreset, model.pt, errors (their losses
and targets: tests/test_baseline_losses.py).

Every run here is a few thousand steps; the algorithms are imported from their files and run in-process
(their `main(Args)`), except where the exit status and stderr of the script itself are the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tyro")

import promptpo_bench  # noqa: E402,F401
from promptpo_bench.errors import BenchError  # noqa: E402
from promptpo_bench.records import load_record  # noqa: E402
from promptpo_bench.registry import reference_scores  # noqa: E402
from promptpo_bench.rollout import HELDOUT_SEED_BASE, heldout_seeds, run_episodes  # noqa: E402
from promptpo_bench.torch_policy import NumpyMLP, load_checkpoint, load_torch_policy, mlp  # noqa: E402
from algorithm_files import load_algorithm  # noqa: E402
from promptpo_bench.baselines import make_envs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


ppo, dqn, sac = load_algorithm("ppo"), load_algorithm("dqn"), load_algorithm("sac")
SMALL_EVAL = dict(periodic_eval_episodes=3, eval_episodes=5)


def check_run(out: dict, env_id: str, total: int, eval_episodes: int = 5) -> dict:
    """A valid record whose curve is the evaluations and whose final_eval used the held-out seeds."""
    record = load_record(out["run_dir"])
    assert record["env_id"] == env_id
    steps = [p["env_steps"] for p in record["curve"]]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == record["totals"]["env_steps"]
    assert total - 4096 <= record["totals"]["env_steps"] <= total
    assert record["final_eval"]["episode_seeds"] == heldout_seeds(eval_episodes)
    assert record["curve"][-1]["mean_return"] == pytest.approx(record["final_eval"]["mean_return"])
    assert record["policy"]["kind"] == "torch" and (out["run_dir"] / "model.pt").is_file()
    return record


def check_reload(run_dir: Path, record: dict, env_id: str, env_kwargs: dict | None = None) -> None:
    """model.pt alone reproduces the final evaluation exactly (deterministic policy, same seeds)."""
    env = gym.make(env_id, **(env_kwargs or {}))
    policy = load_torch_policy(run_dir, env.action_space, env.observation_space)
    episodes = run_episodes(env_id, policy, record["final_eval"]["episode_seeds"], env_kwargs)
    np.testing.assert_allclose(episodes.returns, record["final_eval"]["returns"], rtol=1e-9, atol=1e-9)


def check_above_random(record: dict, board_id: int = 0) -> None:
    """The trained policy keeps out of the traps that uniform random actions walk into (-890.29 on average on board
    0): every held-out episode earns more than random's mean. A few thousand steps teach PPO and DQN this (seeds 1-3
    end at -25, standing still for the 25 steps; DQN's seed 3 starts at -3130)."""
    random_mean = reference_scores("NoiseWorld-v0", board=board_id).random
    assert min(record["final_eval"]["returns"]) > random_mean, (record["final_eval"]["returns"], random_mean)


def check_exact_return(run_dir: Path, record: dict, board_id: int = 0) -> None:
    """The run's held-out return is what its greedy network earns on the board: the mean of its episodes agrees with
    the exact expected return of the saved policy (finite-horizon policy evaluation on the board's own tables)."""
    from promptpo_bench.tasks.noiseworld.board import paper_board
    from promptpo_bench.tasks.noiseworld.env import observation_table

    board = paper_board(board_id)
    cells = np.arange(board.n ** 2)
    actions = load_torch_policy(run_dir).act(cells, observation_table(board)[board.start_phase], np.zeros(len(cells)))
    target, q = board.moves[cells, actions], board.success
    values = np.zeros(len(cells))
    for _ in range(board.horizon):  # one more step left each time
        enter = board.entry_reward(board.start_phase) + np.where(board.terminal, 0.0, values)
        values = np.where(target == cells, enter[cells], q * enter[target] + (1 - q) * enter[board.fail_to])
    returns = np.array(record["final_eval"]["returns"])
    half_width = 4.5 * returns.std(ddof=1) / np.sqrt(len(returns))
    assert abs(returns.mean() - values[0]) <= half_width + 1e-9, (returns, values[0])
    assert record["final_eval"]["mean_return"] == pytest.approx(returns.mean())


# --- short runs: each algorithm on NoiseWorld board 0 and on a Pendulum-size task --------------------------------


@pytest.mark.filterwarnings("error:The given NumPy array is not writable")  # evaluation copies read-only observations
def test_ppo_noiseworld_board0(tmp_path):
    out = ppo.main(ppo.Args(env_kwargs='{"board": 0}', total_timesteps=3072, eval_every=1024, run_dir=str(tmp_path),
                            **SMALL_EVAL))
    record = check_run(out, "NoiseWorld-v0", 3072)
    assert len(record["curve"]) == 4  # at 0, 1024, 2048 and the final one
    check_reload(tmp_path, record, "NoiseWorld-v0", {"board": 0})
    check_exact_return(tmp_path, record)
    check_above_random(record)
    # the reloaded network gives the in-process actor's argmax on arbitrary observations
    obs = np.random.default_rng(0).uniform(0, 7, size=(64, 29)).astype(np.float32)
    with torch.no_grad():
        expected = out["agent"].actor(torch.as_tensor(out["obs_norm"](obs, update=False))).argmax(1).numpy()
    np.testing.assert_array_equal(load_torch_policy(tmp_path).act(np.arange(64), obs, np.zeros(64)), expected)


def test_ppo_box_pendulum(tmp_path):
    out = ppo.main(ppo.Args(env_id="Pendulum-v1", total_timesteps=2048, num_steps=512, num_minibatches=4,
                            update_epochs=2, eval_every=1024, run_dir=str(tmp_path), **SMALL_EVAL))
    record = check_run(out, "Pendulum-v1", 2048)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["head"] == "clip" and ckpt["obs_normalization"] is not None
    check_reload(tmp_path, record, "Pendulum-v1")
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    with torch.no_grad():
        mean = out["agent"].actor(torch.as_tensor(out["obs_norm"](obs, update=False))).clamp(-2, 2).numpy()
    # float32 in another order than the training graph's: rounding differs by ~1e-7 of the inputs' scale (on an AMD
    # EPYC host a mean of -0.003 came back 1.07e-6 apart relatively), as for SAC below
    np.testing.assert_allclose(load_torch_policy(tmp_path).act(np.arange(16), obs, np.zeros(16)), mean, rtol=1e-5,
                               atol=1e-6)


def test_dqn_noiseworld_board0(tmp_path):
    out = dqn.main(dqn.Args(env_kwargs='{"board": 0}', total_timesteps=3000, learning_starts=1000, buffer_size=3000,
                            eval_every=1500, run_dir=str(tmp_path), **SMALL_EVAL))
    record = check_run(out, "NoiseWorld-v0", 3000)
    check_reload(tmp_path, record, "NoiseWorld-v0", {"board": 0})
    check_exact_return(tmp_path, record)
    check_above_random(record)
    obs = np.random.default_rng(1).uniform(0, 7, size=(64, 29)).astype(np.float32)
    with torch.no_grad():
        expected = out["q_network"](torch.as_tensor(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(load_torch_policy(tmp_path).act(np.arange(64), obs, np.zeros(64)), expected)


@pytest.mark.parametrize("bf16", [False, True])
def test_sac_pendulum(tmp_path, bf16):
    out = sac.main(sac.Args(env_id="Pendulum-v1", total_timesteps=1200, learning_starts=600, batch_size=64,
                            eval_every=600, run_dir=str(tmp_path), bf16=bf16, **SMALL_EVAL))
    record = check_run(out, "Pendulum-v1", 1200)
    assert record["config"]["bf16"] is bf16  # the variant is on the record
    check_reload(tmp_path, record, "Pendulum-v1")
    obs = np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32)
    with torch.no_grad():
        _, _, mean = out["actor"].get_action(torch.as_tensor(obs))
    np.testing.assert_allclose(load_torch_policy(tmp_path).act(np.arange(16), obs, np.zeros(16)), mean.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_sac_default_task_and_mujoco(tmp_path):
    try:
        import gymnasium.envs.mujoco  # noqa: F401
        import mujoco  # noqa: F401
    except ImportError:
        assert sac.default_env_id() == "Pendulum-v1"
        pytest.skip("MuJoCo not installed")
    assert sac.default_env_id() == "Hopper-v5" and sac.Args().env_id == "Hopper-v5"
    out = sac.main(sac.Args(env_id="Hopper-v5", total_timesteps=400, learning_starts=200, batch_size=32,
                            hidden_sizes=(32, 32), eval_every=10_000, periodic_eval_episodes=1, eval_episodes=2,
                            run_dir=str(tmp_path)))
    record = check_run(out, "Hopper-v5", 400, eval_episodes=2)
    check_reload(tmp_path, record, "Hopper-v5")


def test_ppo_stops_early_once_its_evaluations_hold_the_target(tmp_path):
    """--early-stop-fraction: Hopper's untrained policy stands a few dozen steps (a healthy reward of 1 per step), so
    0.001 of the optimum (3.0) is held from the first evaluation on: the run ends after --early-stop-evals of them,
    says so in record.json, and submit's checks accept the claim. A target never reached leaves the run its budget."""
    pytest.importorskip("mujoco")
    from promptpo_bench.submit import check_run as submit_check

    small = dict(env_id="Hopper-v5", total_timesteps=1024, num_steps=256, num_minibatches=4, update_epochs=1,
                 eval_every=256, periodic_eval_episodes=2, eval_episodes=10)
    out = ppo.main(ppo.Args(**small, early_stop_fraction=0.001, early_stop_evals=2, run_dir=str(tmp_path / "stop")))
    record = load_record(out["run_dir"])
    target = 0.001 * reference_scores("Hopper-v5").optimal
    assert [p["env_steps"] for p in record["curve"]] == [0, 256, 256]  # two held evaluations, then the final one
    assert all(p["mean_return"] >= target for p in record["curve"][:2])
    totals = record["totals"]
    assert (totals["env_steps"], totals["planned_env_steps"], totals["stopped_early"]) == (256, 1024, True)
    submit_check(out["run_dir"])
    out = ppo.main(ppo.Args(**small, early_stop_fraction=1.0, run_dir=str(tmp_path / "full")))
    totals = load_record(out["run_dir"])["totals"]
    assert (totals["env_steps"], totals["planned_env_steps"], totals["stopped_early"]) == (1024, 1024, False)


# --- target networks --------------------------------------------------------------------------------------------


def parameters(net) -> list:
    return [p.detach().clone() for p in net.parameters()]


def same(a: list, b: list) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_dqn_target_network_follows_the_online_network(tmp_path):
    """With tau = 1 and an update every step the target is a copy of the trained online network, which has moved
    away from where both started (the same seed without learning)."""
    common = dict(env_id="NoiseWorld-Board0-v0", total_timesteps=400, buffer_size=400, batch_size=32,
                  train_frequency=1, target_network_frequency=1, tau=1.0, eval_every=10**6, periodic_eval_episodes=1,
                  eval_episodes=1)
    trained = dqn.main(dqn.Args(learning_starts=200, run_dir=str(tmp_path / "trained"), **common))
    start = dqn.main(dqn.Args(learning_starts=10**9, run_dir=str(tmp_path / "start"), **common))
    online, target = parameters(trained["q_network"]), parameters(trained["target_network"])
    assert same(target, online)
    assert same(parameters(start["target_network"]), parameters(start["q_network"]))  # both start equal
    assert not same(online, parameters(start["q_network"]))  # and learning moved them


def test_sac_target_networks_follow_the_online_q_networks(tmp_path):
    common = dict(env_id="Pendulum-v1", total_timesteps=300, batch_size=32, tau=1.0, target_network_frequency=1,
                  eval_every=10**6, periodic_eval_episodes=1, eval_episodes=1)
    trained = sac.main(sac.Args(learning_starts=200, run_dir=str(tmp_path / "trained"), **common))
    start = sac.main(sac.Args(learning_starts=10**9, run_dir=str(tmp_path / "start"), **common))
    for name in ("qf1", "qf2"):
        online, target = parameters(trained[name]), parameters(trained[f"{name}_target"])
        assert same(target, online), name
        assert same(parameters(start[f"{name}_target"]), parameters(start[name])), name
        assert not same(online, parameters(start[name])), name


# --- acting in NumPy: the same networks and distributions ------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_mlp_follows_the_trained_network(activation):
    """The acting twin reads the live weights: after optimizer steps it still computes the torch forward."""
    net = mlp(5, [16, 16], 3, activation)
    twin = NumpyMLP(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    before = twin(x)
    for _ in range(3):
        loss = net(torch.as_tensor(x)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not np.allclose(twin(x), before)
    np.testing.assert_allclose(twin(x), net(torch.as_tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_ppo_numpy_sampling_is_get_action_and_values_distribution():
    np.random.seed(0)
    logits = np.tile(np.array([[0.0, 1.0, -1.0]], np.float32), (40_000, 1))
    action, logprob = ppo.sample_actions(logits, None, True)
    dist = torch.distributions.Categorical(logits=torch.as_tensor(logits))
    np.testing.assert_allclose(np.bincount(action, minlength=3) / len(action), dist.probs[0].numpy(), atol=0.01)
    np.testing.assert_allclose(logprob, dist.log_prob(torch.as_tensor(action)).numpy(), rtol=1e-5)
    mean, logstd = np.full((40_000, 2), 0.5, np.float32), np.array([[0.0, -1.0]], np.float32)
    action, logprob = ppo.sample_actions(mean, logstd, False)
    np.testing.assert_allclose(action.mean(0), 0.5, atol=0.02)
    np.testing.assert_allclose(action.std(0), np.exp(logstd[0]), rtol=0.02)
    normal = torch.distributions.Normal(torch.as_tensor(mean), torch.as_tensor(logstd).exp())
    np.testing.assert_allclose(logprob, normal.log_prob(torch.as_tensor(action)).sum(1).numpy(), rtol=1e-4, atol=1e-4)


def test_sac_numpy_sampling_is_get_actions_distribution():
    torch.manual_seed(0)
    np.random.seed(0)
    actor = sac.Actor(3, gym.spaces.Box(np.array([-2.0, 0.0]), np.array([2.0, 1.0])), (16,))
    obs = np.tile(np.array([[0.3, -0.2, 0.1]], np.float32), (40_000, 1))
    ours = sac.sample_actions(NumpyMLP(actor.network), actor.action_scale.numpy(), actor.action_bias.numpy(), obs)
    with torch.no_grad():
        theirs = actor.get_action(torch.as_tensor(obs))[0].numpy()
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.02)
    np.testing.assert_allclose(ours.std(0), theirs.std(0), rtol=0.03)
    assert np.all(ours >= [-2.0, 0.0]) and np.all(ours <= [2.0, 1.0])


# --- Gymnasium 1.x autoreset ------------------------------------------------------------------------------------


@pytest.mark.parametrize("native", [True, False])
def test_episode_statistics_equal_manual_count(native):
    """RecordEpisodeStatistics over the algorithms' SAME_STEP vector envs equals a count of the raw rewards."""
    args = ppo.Args(env_id="NoiseWorld-Board0-v0", num_envs=6, native_vector_env=native)
    envs = make_envs(args, {}, run_dir=None)
    inner = envs.env
    assert isinstance(inner, gym.vector.SyncVectorEnv) != native
    rng = np.random.default_rng(0)
    envs.reset(seed=3)
    ret, length, ended_count, truncs, terms = np.zeros(6), np.zeros(6, dtype=int), 0, 0, 0
    for _ in range(600):
        _, reward, term, trunc, info = envs.step(rng.integers(0, 4, size=6))
        ret += reward
        length += 1
        done = term | trunc
        assert ("episode" in info) == done.any()
        if done.any():
            np.testing.assert_array_equal(info["_episode"], done)
            np.testing.assert_allclose(info["episode"]["r"][done], ret[done])
            np.testing.assert_array_equal(info["episode"]["l"][done], length[done])
            assert np.all(length[trunc] == 25) and np.all(length[term] <= 25)
            ended_count += int(done.sum())
            truncs, terms = truncs + int(trunc.sum()), terms + int(term.sum())
            ret[done], length[done] = 0.0, 0
    assert truncs > 0 and terms > 0 and ended_count == truncs + terms
    envs.close()


def replay_single_envs(env_id, env_kwargs, seed, num_envs, rb, steps):
    """Independent single envs (reset with seed+i, then unseeded, as SyncVectorEnv does) fed the stored actions."""
    truncated_seen = terminated_seen = 0
    for i in range(num_envs):
        env = gym.make(env_id, **env_kwargs)
        obs, _ = env.reset(seed=seed + i)
        for t in range(steps):
            np.testing.assert_allclose(rb.observations[t, i], obs, rtol=1e-6)
            obs, reward, term, trunc, _ = env.step(rb.actions[t, i])
            # the stored next observation is the true one, also at the end of an episode (never the reset obs)
            np.testing.assert_allclose(rb.next_observations[t, i], obs, rtol=1e-6)
            assert rb.rewards[t, i] == pytest.approx(reward, rel=1e-6)
            assert rb.terminations[t, i] == float(term)  # truncated steps are stored as not terminated
            if term or trunc:
                truncated_seen += int(trunc)
                terminated_seen += int(term)
                obs, _ = env.reset()
        env.close()
    return truncated_seen, terminated_seen


def test_dqn_replay_buffer_matches_single_envs(tmp_path):
    """SAME_STEP + final_obs: the buffer's next observations and termination flags are the real ones."""
    out = dqn.main(dqn.Args(env_id="NoiseWorld-Board0-v0", num_envs=2, native_vector_env=False, total_timesteps=800,
                            learning_starts=10**9, buffer_size=800, eval_every=10**6, periodic_eval_episodes=1,
                            eval_episodes=1, seed=5, run_dir=str(tmp_path)))
    truncated, terminated = replay_single_envs("NoiseWorld-Board0-v0", {}, 5, 2, out["rb"], 400)
    assert truncated > 0 and terminated > 0


def test_sac_replay_buffer_matches_single_envs(tmp_path):
    out = sac.main(sac.Args(env_id="Pendulum-v1", total_timesteps=450, learning_starts=10**9, buffer_size=450,
                            eval_every=10**6, periodic_eval_episodes=1, eval_episodes=1, seed=7,
                            run_dir=str(tmp_path)))
    truncated, terminated = replay_single_envs("Pendulum-v1", {}, 7, 1, out["rb"], 450)
    assert truncated == 2 and terminated == 0


# --- model.pt -----------------------------------------------------------------------------------------------------


def test_model_pt_is_self_describing_and_checked(tmp_path):
    """Loading needs neither the algorithm file nor unsafe unpickling; mismatched spaces are one-line errors."""
    dqn.main(dqn.Args(env_id="NoiseWorld-Board0-v0", total_timesteps=300, learning_starts=10**9, eval_every=10**6,
                      periodic_eval_episodes=1, eval_episodes=1, run_dir=str(tmp_path)))
    code = ("import sys, torch; from promptpo_bench.torch_policy import load_torch_policy; "
            f"torch.load({str(tmp_path / 'model.pt')!r}, weights_only=True); "
            f"p = load_torch_policy({str(tmp_path)!r}); "
            "print(p.act([0], [[0.0] * 29], [0])[0], any(m in ('ppo', 'dqn', 'sac', 'algorithms') "
            "or m.startswith(('algorithms.', 'baseline_')) for m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split()[-1] == "False"
    with pytest.raises(BenchError, match="Discrete"):
        load_torch_policy(tmp_path, gym.spaces.Box(-1, 1, (1,)))
    with pytest.raises(BenchError, match="29-dim"):
        load_torch_policy(tmp_path, gym.spaces.Discrete(4), gym.make("NoiseWorld-v0", board=1).observation_space)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BenchError, match="not a loadable"):
        load_torch_policy(tmp_path / "junk")
    with pytest.raises(BenchError, match="does not exist"):
        load_torch_policy(tmp_path / "missing")


def test_cli_rollout_of_a_run_dir(tmp_path, capsys):
    from promptpo_bench import cli

    dqn.main(dqn.Args(env_id="NoiseWorld-Board0-v0", total_timesteps=300, learning_starts=10**9, eval_every=10**6,
                      periodic_eval_episodes=1, eval_episodes=1, run_dir=str(tmp_path)))
    capsys.readouterr()
    assert cli.main(["rollout", "NoiseWorld-Board0-v0", "--policy", str(tmp_path), "--episodes", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["returns"]) == 3


def test_cli_rollout_of_a_run_dir_uses_the_runs_env_kwargs(tmp_path, capsys):
    from promptpo_bench import cli

    dqn.main(dqn.Args(env_id="NoiseWorld-v0", env_kwargs='{"board": 0}', total_timesteps=300, learning_starts=10**9,
                      eval_every=10**6, periodic_eval_episodes=1, eval_episodes=1, run_dir=str(tmp_path)))
    capsys.readouterr()
    assert cli.main(["rollout", "NoiseWorld-v0", "--policy", str(tmp_path), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env_kwargs"] == {"board": 0}  # not the id's default board 1
    assert cli.main(["rollout", "NoiseWorld-v0", "--policy", str(tmp_path), "--kwarg", "board=1", "--json"]) == 2
    assert "observation" in capsys.readouterr().err  # board 1's 104 numbers do not fit the 29-input network


# --- the scripts: one-line errors, --help, W&B offline -------------------------------------------------------------


@pytest.mark.parametrize("algo, argv, message", [
    ("dqn", ["--env-id", "Pendulum-v1"], "DQN needs Discrete"),
    ("sac", ["--env-id", "NoiseWorld-v0"], "SAC needs Box"),
    ("ppo", ["--env-id", "NoiseWorld-v9"], "unknown env id"),
    ("ppo", ["--env-kwargs", "{board: 3}"], "env kwargs must be a JSON object"),
    ("dqn", ["--env-kwargs", '{"board": 99}'], "board must be"),
    ("sac", ["--bogus-flag", "1"], "--bogus-flag"),
    ("ppo", ["--total-timesteps", "0"], "--total-timesteps must be at least 1"),
    ("dqn", ["--seed", str(HELDOUT_SEED_BASE)], "held out"),
    ("dqn", ["--early-stop-fraction", "1.5"], "--early-stop-fraction must be in (0, 1]"),
    ("ppo", ["--early-stop-fraction", "0.9", "--early-stop-evals", "0"], "--early-stop-evals must be at least 1"),
    ("ppo", ["--env-id", "Pendulum-v1", "--early-stop-fraction", "0.9"], "Pendulum-v1 is not one"),
])
def test_user_errors_are_one_line(algo, argv, message, tmp_path):
    result = subprocess.run([PYTHON, str(ROOT / "algorithms" / f"{algo}.py"), *argv, "--run-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{algo}.py: error:") and message in lines[0], result.stderr
    assert not (tmp_path / "r").exists()


def test_help_documents_every_shared_flag():
    shared = ["--env-id", "--seed", "--exp-name", "--track", "--wandb-project-name", "--wandb-entity",
              "--total-timesteps", "--run-dir", "--capture-video", "--save-model", "--env-kwargs", "--eval-episodes",
              "--eval-every"]
    for algo in ("ppo", "dqn", "sac"):
        result = subprocess.run([PYTHON, str(ROOT / "algorithms" / f"{algo}.py"), "--help"], capture_output=True,
                                text=True, env={**os.environ, "COLUMNS": "200"})
        assert result.returncode == 0
        for flag in shared:
            assert flag in result.stdout, (algo, flag)


def test_track_works_offline(tmp_path):
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY")
    result = subprocess.run([PYTHON, str(ROOT / "algorithms" / "ppo.py"), "--env-id", "NoiseWorld-Board0-v0",
                             "--total-timesteps", "1024", "--eval-every", "512", "--periodic-eval-episodes", "2",
                             "--eval-episodes", "2", "--track", "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    load_record(tmp_path / "run")
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_capture_video_without_moviepy_is_one_line(tmp_path):
    try:
        import moviepy  # noqa: F401
        pytest.skip("moviepy is installed: --capture-video would record")
    except ImportError:
        pass
    result = subprocess.run([PYTHON, str(ROOT / "algorithms" / "ppo.py"), "--env-id", "NoiseWorld-Board0-v0",
                             "--capture-video", "--total-timesteps", "512", "--run-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "moviepy" in result.stderr and not (tmp_path / "r").exists()
