# SAC for Box action spaces, in one file in CleanRL's manner (sac_continuous_action.py), scored like PromptPO.
# docs: README.md ("Classical baselines"); run `python algorithms/sac.py --help` for every flag.
#
# Gymnasium 1.x autoreset, chosen deliberately: the vector env runs in AutoresetMode.SAME_STEP.
# A step that ends an episode returns the reset observation of the next episode in `next_obs` and
# the true last observation in `infos["final_obs"]`, so the replay buffer stores
#   (obs_t, real_next_obs_t = final_obs if the episode ended else next_obs, a_t, r_t, terminated_t)
# and the soft TD target bootstraps through *truncations* (time limits, e.g. Hopper's 1000 steps,
# Pendulum's 200) but not through *terminations* (Hopper falling). Episode statistics come from
# gym.wrappers.vector.RecordEpisodeStatistics, which reads the env's autoreset mode
# (tests/e2e/test_baselines.py checks the buffer and the statistics against independent single envs).
# Protocol shared with PromptPO: `global_step` counts every training environment step; every
# `--eval-every` steps and at the end the deterministic policy (tanh of the mean, rescaled to the bounds)
# is evaluated on held-out episode seeds that training never resets with; the run directory gets
# record.json and model.pt.
from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

import promptpo_bench  # noqa: F401  (registers the suite's tasks)
from promptpo_bench import baselines
from promptpo_bench.baselines import ReplayBuffer, no_weight_grads, real_next_obs, soft_update
from promptpo_bench.torch_policy import NumpyMLP, make_checkpoint, mlp

SCRIPT = "sac.py"


def default_env_id() -> str:
    """Hopper-v5 when MuJoCo is installed, else Pendulum-v1."""
    try:
        import gymnasium.envs.mujoco  # noqa: F401  (needs mujoco and imageio)
        import mujoco  # noqa: F401
    except ImportError:
        return "Pendulum-v1"
    return "Hopper-v5"


@dataclass
class Args(baselines.BaselineArgs):
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""

    # Algorithm specific arguments
    env_id: str = default_env_id()
    """the id of the environment (default: Hopper-v5 if MuJoCo is installed, else Pendulum-v1)"""
    total_timesteps: int = 1000000
    """total environment steps"""
    num_envs: int = 1
    """the number of parallel game environments"""
    buffer_size: int = int(1e6)
    """the replay memory buffer size (in transitions)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient (default: 0.005)"""
    batch_size: int = 256
    """the batch size of sample from the reply memory"""
    learning_starts: int = int(5e3)
    """timestep to start learning"""
    policy_lr: float = 3e-4
    """the learning rate of the policy network optimizer"""
    q_lr: float = 1e-3
    """the learning rate of the Q network network optimizer"""
    policy_frequency: int = 2
    """the frequency of training policy (delayed)"""
    target_network_frequency: int = 1  # Denis Yarats' implementation delays this by 2.
    """the frequency of updates for the target nerworks"""
    alpha: float = 0.2
    """Entropy regularization coefficient."""
    autotune: bool = True
    """automatic tuning of the entropy coefficient"""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """hidden layer widths of the actor and the Q-networks (relu)"""
    bf16: bool = False
    """variant: products in bfloat16 (autocast) but the output layers', the rest float32; faster on avx512_bf16/AMX"""


def check_args(args: Args) -> None:
    baselines.check_positive(SCRIPT, args, ("total_timesteps", "num_envs", "buffer_size", "batch_size",
                                            "policy_frequency", "target_network_frequency", "eval_every",
                                            "periodic_eval_episodes", "eval_episodes"))


def float32_head(network: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The network's output layer in float32 even under --bf16's autocast: Q-values and the Gaussian's parameters keep
    float32's precision (bfloat16 rounds a Q-value of 300 to a multiple of 2); without autocast, network(x)."""
    if not torch.is_autocast_enabled(x.device.type):
        return network(x)
    *hidden, head = network
    for layer in hidden:
        x = layer(x)
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())


class SoftQNetwork(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes):
        super().__init__()
        self.network = mlp(obs_dim + act_dim, hidden_sizes, 1, "relu")

    def forward(self, x, a):
        return float32_head(self.network, torch.cat([x, a], 1))


LOG_STD_MAX = 2
LOG_STD_MIN = -5


class Actor(nn.Module):
    """CleanRL's actor with its two heads (fc_mean, fc_logstd) fused into one output layer of 2*act_dim:
    the same function, and the whole actor is one `mlp` that model.pt saves and the loader rebuilds."""

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, hidden_sizes):
        super().__init__()
        self.act_dim = int(np.prod(action_space.shape))
        self.arch = {"in_dim": obs_dim, "hidden": list(hidden_sizes), "out_dim": 2 * self.act_dim,
                     "activation": "relu"}
        self.network = mlp(**self.arch)
        # action rescaling
        self.register_buffer("action_scale", torch.tensor((action_space.high - action_space.low) / 2.0,
                                                          dtype=torch.float32).flatten())
        self.register_buffer("action_bias", torch.tensor((action_space.high + action_space.low) / 2.0,
                                                         dtype=torch.float32).flatten())

    def forward(self, x):
        mean, log_std = float32_head(self.network, x).split(self.act_dim, dim=1)
        log_std = torch.tanh(log_std)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)  # From SpinUp / Denis Yarats
        return mean, log_std

    def get_action(self, x):
        mean, log_std = self(x)
        std = log_std.exp()
        normal = torch.distributions.Normal(mean, std)
        x_t = normal.rsample()  # for reparameterization trick (mean + std * N(0,1))
        y_t = torch.tanh(x_t)
        action = y_t * self.action_scale + self.action_bias
        log_prob = normal.log_prob(x_t)
        # Enforcing Action Bound
        log_prob -= torch.log(self.action_scale * (1 - y_t.pow(2)) + 1e-6)
        log_prob = log_prob.sum(1, keepdim=True)
        mean = torch.tanh(mean) * self.action_scale + self.action_bias
        return action, log_prob, mean


def sample_actions(actor_np: NumpyMLP, action_scale, action_bias, obs):
    """Actor.get_action's sampled actions, in NumPy (acting needs neither their log-probabilities nor gradients)."""
    mean, log_std = np.split(actor_np(obs), 2, axis=1)
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (np.tanh(log_std) + 1)
    x_t = mean + np.exp(log_std) * np.random.standard_normal(mean.shape).astype(np.float32)
    return np.tanh(x_t) * action_scale + action_bias


def critic_losses(actor, qf1, qf2, qf1_target, qf2_target, batch, alpha, gamma):
    """Each soft Q-network's mean squared error to the soft TD target of a sampled batch, and its Q(s, a)."""
    data_obs, data_actions, data_next_obs, data_rewards, data_terminations = batch
    with torch.no_grad():
        next_state_actions, next_state_log_pi, _ = actor.get_action(data_next_obs)
        qf1_next_target = qf1_target(data_next_obs, next_state_actions)
        qf2_next_target = qf2_target(data_next_obs, next_state_actions)
        min_qf_next_target = torch.min(qf1_next_target, qf2_next_target) - alpha * next_state_log_pi
        # terminated transitions do not bootstrap; truncated ones do (their next obs is final_obs)
        next_q_value = data_rewards.flatten() + (1 - data_terminations.flatten()) * gamma * (
            min_qf_next_target).view(-1)

    qf1_a_values = qf1(data_obs, data_actions).view(-1)
    qf2_a_values = qf2(data_obs, data_actions).view(-1)
    qf1_loss = F.mse_loss(qf1_a_values, next_q_value)
    qf2_loss = F.mse_loss(qf2_a_values, next_q_value)
    return qf1_loss, qf2_loss, qf1_a_values, qf2_a_values


def compute_actor_loss(actor, qf1, qf2, obs, alpha):
    """alpha * log pi(a|s) - min(Q1, Q2)(s, a), averaged, with a ~ pi(s) reparameterised (gradients reach the actor)."""
    pi, log_pi, _ = actor.get_action(obs)
    qf1_pi = qf1(obs, pi)
    qf2_pi = qf2(obs, pi)
    min_qf_pi = torch.min(qf1_pi, qf2_pi)
    return ((alpha * log_pi) - min_qf_pi).mean()


def compute_alpha_loss(actor, log_alpha, obs, target_entropy):
    """The entropy temperature's loss: alpha grows while the policy's entropy is below the target, and shrinks above."""
    with torch.no_grad():
        _, log_pi, _ = actor.get_action(obs)
    return (-log_alpha.exp() * (log_pi + target_entropy)).mean()


def checkpoint(args: Args, env_kwargs: dict, actor: Actor, action_space, obs_shape) -> dict:
    """What model.pt holds: the actor (acted on as tanh(mean) rescaled) and how to rebuild it."""
    return make_checkpoint("sac", args.env_id, env_kwargs, actor.network, actor.arch, "tanh", action_space, obs_shape)


def main(args: Args):
    env_kwargs, single_obs_space, single_action_space = baselines.task_spaces(SCRIPT, args.env_id, args.env_kwargs)
    check_args(args)
    if not isinstance(single_action_space, gym.spaces.Box):
        baselines.fail(SCRIPT, f"{args.env_id} has {type(single_action_space).__name__} actions; SAC needs Box (use ppo.py"
             f"{' or dqn.py' if isinstance(single_action_space, gym.spaces.Discrete) else ''})")
    if not np.all(np.isfinite(single_action_space.low)) or not np.all(np.isfinite(single_action_space.high)):
        baselines.fail(SCRIPT, f"{args.env_id} has unbounded Box actions; SAC squashes actions into finite bounds")
    # env setup, the run (directory, W&B, evaluations, record) and seeding
    envs, run, device = baselines.set_up(SCRIPT, args, "sac", env_kwargs)

    obs_dim = int(np.prod(single_obs_space.shape))
    act_dim = int(np.prod(single_action_space.shape))

    actor = Actor(obs_dim, single_action_space, args.hidden_sizes).to(device)
    qf1 = SoftQNetwork(obs_dim, act_dim, args.hidden_sizes).to(device)
    qf2 = SoftQNetwork(obs_dim, act_dim, args.hidden_sizes).to(device)
    qf1_target = SoftQNetwork(obs_dim, act_dim, args.hidden_sizes).to(device)
    qf2_target = SoftQNetwork(obs_dim, act_dim, args.hidden_sizes).to(device)
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    q_optimizer = optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.q_lr, fused=True)
    actor_optimizer = optim.Adam(list(actor.parameters()), lr=args.policy_lr, fused=True)
    q_params = list(qf1.parameters()) + list(qf2.parameters())
    q_target_params = list(qf1_target.parameters()) + list(qf2_target.parameters())
    # Acting runs the actor in NumPy on views of its weights: for one observation a step, torch's per-operation
    # overhead would cost more than the network. Updates stay in torch.
    actor_np = NumpyMLP(actor.network)
    action_scale, action_bias = actor.action_scale.cpu().numpy(), actor.action_bias.cpu().numpy()

    # Automatic entropy tuning
    if args.autotune:
        target_entropy = -torch.prod(torch.Tensor(single_action_space.shape).to(device)).item()
        log_alpha = torch.zeros(1, requires_grad=True, device=device)
        alpha = log_alpha.exp().item()
        a_optimizer = optim.Adam([log_alpha], lr=args.q_lr, fused=True)
    else:
        alpha = args.alpha

    rb = ReplayBuffer(args.buffer_size, args.num_envs, obs_dim, (act_dim,), np.float32, device)

    def current_checkpoint():
        return checkpoint(args, env_kwargs, actor, single_action_space, single_obs_space.shape)

    # --bf16: each loss's forward pass (and so its backward) runs its matrix products in bfloat16
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)  # noqa: E731

    global_step = 0

    # TRY NOT TO MODIFY: start the game
    run.start_clock()
    obs, _ = envs.reset(seed=args.seed)
    envs.action_space.seed(args.seed)
    num_iterations = max(1, args.total_timesteps // args.num_envs)
    for iteration in range(num_iterations):
        run.maybe_evaluate(current_checkpoint, global_step)
        if run.stopped_early:  # --early-stop-fraction: the policy has held its target; stop here
            break
        # ALGO LOGIC: put action logic here
        if global_step < args.learning_starts:
            actions = envs.action_space.sample()
        else:
            actions = sample_actions(actor_np, action_scale, action_bias, np.reshape(obs, (args.num_envs, -1)))
            actions = actions.reshape(envs.action_space.shape)

        # TRY NOT TO MODIFY: execute the game and log data.
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        global_step += args.num_envs

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        run.log_episodes(infos, global_step)

        # TRY NOT TO MODIFY: save data to replay buffer; the real next obs of an ended episode is final_obs
        rb.add(obs, real_next_obs(next_obs, terminations, truncations, infos), actions, rewards, terminations)

        # TRY NOT TO MODIFY: CRUCIAL step easy to overlook
        obs = next_obs

        # ALGO LOGIC: training.
        if global_step > args.learning_starts:
            batch = rb.sample(args.batch_size)
            data_obs = batch[0]
            with autocast():
                qf1_loss, qf2_loss, qf1_a_values, qf2_a_values = critic_losses(actor, qf1, qf2, qf1_target,
                                                                               qf2_target, batch, alpha, args.gamma)
            qf_loss = qf1_loss + qf2_loss

            # optimize the model
            q_optimizer.zero_grad()
            qf_loss.backward()
            q_optimizer.step()

            if iteration % args.policy_frequency == 0:  # TD 3 Delayed update support
                for _ in range(args.policy_frequency):
                    # compensate for the delay by doing 'actor_update_interval' instead of 1
                    # the gradient flows through the Q-networks into the actor; their own weight gradients, which
                    # CleanRL computes and the next critic step discards, are skipped
                    with no_weight_grads(q_params):
                        with autocast():
                            actor_loss = compute_actor_loss(actor, qf1, qf2, data_obs, alpha)

                        actor_optimizer.zero_grad()
                        actor_loss.backward()
                        actor_optimizer.step()

                    if args.autotune:
                        with autocast():
                            alpha_loss = compute_alpha_loss(actor, log_alpha, data_obs, target_entropy)

                        a_optimizer.zero_grad()
                        alpha_loss.backward()
                        a_optimizer.step()
                        alpha = log_alpha.exp().item()

            # update the target networks: target = tau * online + (1 - tau) * target, all parameters at once
            if iteration % args.target_network_frequency == 0:
                soft_update(q_target_params, q_params, args.tau)

            if iteration % 100 == 0:
                scalars = {"losses/qf1_values": qf1_a_values.mean().item(),
                           "losses/qf2_values": qf2_a_values.mean().item(), "losses/qf1_loss": qf1_loss.item(),
                           "losses/qf2_loss": qf2_loss.item(), "losses/qf_loss": qf_loss.item() / 2.0,
                           "losses/alpha": alpha, "charts/SPS": run.sps(global_step)}
                if iteration % args.policy_frequency == 0:
                    scalars["losses/actor_loss"] = actor_loss.item()
                    if args.autotune:
                        scalars["losses/alpha_loss"] = alpha_loss.item()
                run.log(scalars, global_step)

    envs.close()
    # Final evaluation on held-out seeds, model.pt and record.json
    record = run.finish(current_checkpoint(), global_step)
    return {"record": record, "run_dir": run.run_dir, "actor": actor, "qf1": qf1, "qf2": qf2, "qf1_target": qf1_target,
            "qf2_target": qf2_target, "rb": rb, "args": args}


if __name__ == "__main__":
    main(baselines.cli(Args, SCRIPT))
