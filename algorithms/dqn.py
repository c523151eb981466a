# DQN for Discrete action spaces, in one file in CleanRL's manner (dqn.py), scored like PromptPO.
# docs: README.md ("Classical baselines"); run `python algorithms/dqn.py --help` for every flag.
#
# Gymnasium 1.x autoreset, chosen deliberately: the vector env runs in AutoresetMode.SAME_STEP.
# A step that ends an episode returns the reset observation of the next episode in `next_obs` and
# the true last observation in `infos["final_obs"]`, so the replay buffer stores
#   (obs_t, real_next_obs_t = final_obs if the episode ended else next_obs, a_t, r_t, terminated_t)
# and the TD target r + gamma * max_a Q'(real_next_obs) * (1 - terminated) bootstraps through
# *truncations* (time limits) but not through *terminations*. No transition ever pairs the last
# observation of one episode with the first of the next (the NEXT_STEP pitfall). Episode statistics come
# from gym.wrappers.vector.RecordEpisodeStatistics, which reads the env's autoreset mode
# (tests/e2e/test_baselines.py checks the buffer and the statistics against independent single envs).
# Protocol shared with PromptPO: `global_step` counts every training environment step; every
# `--eval-every` steps and at the end the greedy policy (argmax Q) is evaluated on held-out episode seeds
# that training never resets with; the run directory gets record.json and model.pt.
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import torch.optim as optim

import promptpo_bench  # noqa: F401  (registers the suite's tasks)
from promptpo_bench import baselines
from promptpo_bench.baselines import ReplayBuffer, real_next_obs, soft_update
from promptpo_bench.torch_policy import NumpyMLP, make_checkpoint, mlp

SCRIPT = "dqn.py"


@dataclass
class Args(baselines.BaselineArgs):
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""

    # Algorithm specific arguments
    env_id: str = "NoiseWorld-v0"
    """the id of the environment (a suite task from `promptpo-bench tasks` or any Gymnasium id)"""
    total_timesteps: int = 500000
    """total environment steps"""
    learning_rate: float = 2.5e-4
    """the learning rate of the optimizer"""
    num_envs: int = 1
    """the number of parallel game environments"""
    buffer_size: int = 10000
    """the replay memory buffer size (in transitions)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 1.0
    """the target network update rate"""
    target_network_frequency: int = 500
    """the timesteps it takes to update the target network"""
    batch_size: int = 128
    """the batch size of sample from the reply memory"""
    start_e: float = 1
    """the starting epsilon for exploration"""
    end_e: float = 0.05
    """the ending epsilon for exploration"""
    exploration_fraction: float = 0.5
    """the fraction of `total-timesteps` it takes from start-e to go end-e"""
    learning_starts: int = 10000
    """timestep to start learning"""
    train_frequency: int = 10
    """the frequency of training"""
    reward_scale: float = 1.0
    """multiply rewards by this before they enter the replay buffer (returns are logged and evaluated unscaled)"""
    hidden_sizes: tuple[int, ...] = (120, 84)
    """hidden layer widths of the Q-network (relu)"""


def check_args(args: Args) -> None:
    baselines.check_positive(SCRIPT, args, ("total_timesteps", "num_envs", "buffer_size", "batch_size",
                                            "train_frequency", "target_network_frequency", "eval_every",
                                            "periodic_eval_episodes", "eval_episodes"))
    if not 0 < args.exploration_fraction <= 1:
        baselines.fail(SCRIPT, f"--exploration-fraction must be in (0, 1], got {args.exploration_fraction}")


def td_target(rewards, next_q_max, terminations, gamma):
    """r + gamma * max_a Q'(s', a) * (1 - terminated): truncated transitions bootstrap, terminated ones not."""
    return rewards + gamma * next_q_max * (1 - terminations)


def td_loss(q_network, target_network, batch, gamma):
    """The mean squared TD error of a sampled batch (obs, actions, next_obs, rewards, terminations), and Q(s, a)."""
    b_obs, b_actions, b_next_obs, b_rewards, b_terminations = batch
    with torch.no_grad():
        target_max, _ = target_network(b_next_obs).max(dim=1)
        target = td_target(b_rewards, target_max, b_terminations, gamma)
    old_val = q_network(b_obs).gather(1, b_actions.view(-1, 1)).squeeze(1)
    return F.mse_loss(target, old_val), old_val


class QNetwork(torch.nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes):
        super().__init__()
        self.arch = {"in_dim": obs_dim, "hidden": list(hidden_sizes), "out_dim": n_actions, "activation": "relu"}
        # Exactly the network model.pt saves (promptpo_bench.torch_policy.mlp).
        self.network = mlp(**self.arch)

    def forward(self, x):
        return self.network(x)


def linear_schedule(start_e: float, end_e: float, duration: int, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def checkpoint(args: Args, env_kwargs: dict, q_network: QNetwork, action_space, obs_shape) -> dict:
    """What model.pt holds: the Q-network (acted on greedily) and how to rebuild it."""
    return make_checkpoint("dqn", args.env_id, env_kwargs, q_network.network, q_network.arch, "argmax", action_space,
                           obs_shape)


def main(args: Args):
    env_kwargs, single_obs_space, single_action_space = baselines.task_spaces(SCRIPT, args.env_id, args.env_kwargs)
    check_args(args)
    if not isinstance(single_action_space, gym.spaces.Discrete):
        baselines.fail(SCRIPT, f"{args.env_id} has {type(single_action_space).__name__} actions; DQN needs Discrete (use ppo.py"
             f"{' or sac.py' if isinstance(single_action_space, gym.spaces.Box) else ''})")
    # env setup, the run (directory, W&B, evaluations, record) and seeding
    envs, run, device = baselines.set_up(SCRIPT, args, "dqn", env_kwargs)

    obs_dim = int(np.prod(single_obs_space.shape))
    n_actions = int(single_action_space.n)

    q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
    optimizer = optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
    target_network.load_state_dict(q_network.state_dict())
    # Acting runs the same network in NumPy on views of its weights: for one observation a step, torch's
    # per-operation overhead would cost more than the network. Updates stay in torch.
    q_np = NumpyMLP(q_network.network)
    q_params, target_params = list(q_network.parameters()), list(target_network.parameters())

    rb = ReplayBuffer(args.buffer_size, args.num_envs, obs_dim, (), np.int64, device)

    def current_checkpoint():
        return checkpoint(args, env_kwargs, q_network, single_action_space, single_obs_space.shape)

    global_step = 0

    # TRY NOT TO MODIFY: start the game (the same head as sac.py's loop, deliberately: each file reads on its own)
    run.start_clock()
    obs, _ = envs.reset(seed=args.seed)
    envs.action_space.seed(args.seed)
    num_iterations = max(1, args.total_timesteps // args.num_envs)
    for iteration in range(num_iterations):
        run.maybe_evaluate(current_checkpoint, global_step)
        if run.stopped_early:  # --early-stop-fraction: the policy has held its target; stop here
            break
        # ALGO LOGIC: put action logic here
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps,
                                  global_step)
        if random.random() < epsilon:
            actions = envs.action_space.sample()
        else:
            q_values = q_np(np.reshape(obs, (args.num_envs, -1)))
            actions = np.argmax(q_values, axis=1)

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        global_step += args.num_envs

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        run.log_episodes(infos, global_step)

        # TRY NOT TO MODIFY: save data to reply buffer; the real next obs of an ended episode is final_obs
        rb.add(obs, real_next_obs(next_obs, terminations, truncations, infos), actions,
               np.asarray(rewards) * args.reward_scale, terminations)

        # TRY NOT TO MODIFY: CRUCIAL step easy to overlook
        obs = next_obs

        # ALGO LOGIC: training.
        if global_step > args.learning_starts:
            if iteration % args.train_frequency == 0:
                loss, old_val = td_loss(q_network, target_network, rb.sample(args.batch_size), args.gamma)

                if iteration % 100 == 0:
                    run.log({"losses/td_loss": loss.item(), "losses/q_values": old_val.mean().item(),
                             "charts/SPS": run.sps(global_step), "charts/epsilon": epsilon}, global_step)

                # optimize the model
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            # update target network: target = tau * online + (1 - tau) * target, all parameters at once
            if iteration % args.target_network_frequency == 0:
                soft_update(target_params, q_params, args.tau)

    envs.close()
    # Final evaluation on held-out seeds, model.pt and record.json
    record = run.finish(current_checkpoint(), global_step)
    return {"record": record, "run_dir": run.run_dir, "q_network": q_network, "target_network": target_network,
            "rb": rb, "args": args}


if __name__ == "__main__":
    main(baselines.cli(Args, SCRIPT))
