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
# The update is CleanRL's (the same losses, hyperparameters and draws), with its gradients written out by hand
# instead of autograd's (HandGradMLP, SquashedGaussian): the same values to float rounding, ~20% less time an
# update; each optimizer's parameters are one flat tensor, so a fused Adam step is one kernel call.
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

import promptpo_bench  # noqa: F401  (registers the suite's tasks)
from promptpo_bench import baselines
from promptpo_bench.baselines import ReplayBuffer, real_next_obs, soft_update
from promptpo_bench.torch_policy import HandGradMLP, NumpyMLP, flat_parameters, make_checkpoint, mlp

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
    """variant: hidden layers' products in bfloat16 (as autocast would), the rest float32; faster on avx512_bf16/AMX"""


def check_args(args: Args) -> None:
    baselines.check_positive(SCRIPT, args, ("total_timesteps", "num_envs", "buffer_size", "batch_size",
                                            "policy_frequency", "target_network_frequency", "eval_every",
                                            "periodic_eval_episodes", "eval_episodes"))


class SoftQNetwork(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes):
        super().__init__()
        self.network = mlp(obs_dim + act_dim, hidden_sizes, 1, "relu")

    def forward(self, x, a):
        return self.network(torch.cat([x, a], 1))


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
        mean, log_std = self.network(x).split(self.act_dim, dim=1)
        log_std = torch.tanh(log_std)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)  # From SpinUp / Denis Yarats
        return mean, log_std

    def get_action(self, x):  # CleanRL's: SquashedGaussian below computes the same by hand (tests hold them equal)
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


# The update computes CleanRL's three losses and writes their gradients into `.grad` by hand (HandGradMLP): the same
# values and gradients as autograd through Actor.get_action and SoftQNetwork (tests check both), ~20% less time.
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class SquashedGaussian:
    """Actor.get_action on the actor network's output `out`: a = tanh(mean + std * eps) rescaled, with eps drawn as
    Normal.rsample draws it, and log pi(a|s); `backward` takes d loss / d a and d loss / d log pi to d loss / d out."""

    @torch.no_grad()
    def __init__(self, out: torch.Tensor, action_scale: torch.Tensor, action_bias: torch.Tensor):
        mean, raw_log_std = out.split(out.shape[1] // 2, dim=1)
        self.scale, self.tanh_log_std = action_scale, torch.tanh(raw_log_std)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (self.tanh_log_std + 1)
        self.std = log_std.exp()
        self.eps = torch.empty_like(mean).normal_()
        self.y = torch.tanh(mean + self.std * self.eps)
        self.action = self.y * action_scale + action_bias
        self.squash = action_scale * (1 - self.y * self.y) + 1e-6  # d action / d x_t, as get_action bounds it
        # Normal.log_prob(x_t) = -eps^2 / 2 - log std - log sqrt(2 pi), less log of the squash, summed over actions
        self.log_pi = (self.eps * self.eps * -0.5 - log_std - HALF_LOG_2PI - self.squash.log()).sum(1, keepdim=True)

    @torch.no_grad()
    def backward(self, grad_action: torch.Tensor, grad_log_pi: torch.Tensor) -> torch.Tensor:
        """d loss / d out (the means' and the raw log-stds' columns), eps held fixed (the reparameterisation)."""
        grad_y = grad_action * self.scale + self.scale * 2 * self.y / self.squash * grad_log_pi
        grad_x = grad_y * (1 - self.y * self.y)  # d loss / d mean
        grad_log_std = grad_x * self.eps * self.std - grad_log_pi
        grad_raw = grad_log_std * (0.5 * (LOG_STD_MAX - LOG_STD_MIN)) * (1 - self.tanh_log_std * self.tanh_log_std)
        return torch.cat([grad_x, grad_raw], 1)


def q_values(qf: HandGradMLP, obs, actions) -> list[torch.Tensor]:
    """A soft Q-network's activations on (s, a); Q(s, a) is the last."""
    return qf.forward(torch.cat([obs, actions], 1))


def min_grads(q1: torch.Tensor, q2: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d loss / d q1 and d q2 from d loss / d min(q1, q2), ties split in half as autograd splits them."""
    share = (q1 < q2).to(grad.dtype) + (q1 == q2).to(grad.dtype) * 0.5
    return grad * share, grad * (1 - share)


def critic_step(actor, qf1, qf2, qf1_target, qf2_target, batch, alpha, gamma, action_scale, action_bias):
    """Each soft Q-network's mean squared error to the soft TD target of a sampled batch, and its Q(s, a); the
    gradients of qf1_loss + qf2_loss go into qf1's and qf2's `.grad`."""
    data_obs, data_actions, data_next_obs, data_rewards, data_terminations = batch
    with torch.no_grad():
        next_pi = SquashedGaussian(actor.forward(data_next_obs)[-1], action_scale, action_bias)
        qf1_next_target = q_values(qf1_target, data_next_obs, next_pi.action)[-1]
        qf2_next_target = q_values(qf2_target, data_next_obs, next_pi.action)[-1]
        min_qf_next_target = torch.min(qf1_next_target, qf2_next_target) - alpha * next_pi.log_pi
        # terminated transitions do not bootstrap; truncated ones do (their next obs is final_obs)
        next_q_value = data_rewards.flatten() + (1 - data_terminations.flatten()) * gamma * (
            min_qf_next_target).view(-1)
        out = []
        for qf in (qf1, qf2):
            acts = q_values(qf, data_obs, data_actions)
            error = acts[-1].view(-1) - next_q_value
            qf.backward(acts, (error * (2.0 / error.numel())).view(-1, 1))  # d mean(error^2) / d Q
            out.append((error.square().mean(), acts[-1].view(-1)))
    (qf1_loss, qf1_a_values), (qf2_loss, qf2_a_values) = out
    return qf1_loss, qf2_loss, qf1_a_values, qf2_a_values


def actor_step(actor, qf1, qf2, obs, alpha, action_scale, action_bias):
    """alpha * log pi(a|s) - min(Q1, Q2)(s, a), averaged, with a ~ pi(s) reparameterised: its gradient goes through
    the Q-networks (their own weight gradients are not computed) into the actor's `.grad`."""
    with torch.no_grad():
        acts = actor.forward(obs)
        pi = SquashedGaussian(acts[-1], action_scale, action_bias)
        q1, q2 = q_values(qf1, obs, pi.action), q_values(qf2, obs, pi.action)
        min_qf_pi = torch.min(q1[-1], q2[-1])
        loss = ((alpha * pi.log_pi) - min_qf_pi).mean()
        n, obs_dim = obs.shape
        grad_q1, grad_q2 = min_grads(q1[-1], q2[-1], torch.full_like(min_qf_pi, -1.0 / n))
        grad_action = (qf1.backward(q1, grad_q1, weight_grads=False, input_grad=True)
                       + qf2.backward(q2, grad_q2, weight_grads=False, input_grad=True))[:, obs_dim:]
        actor.backward(acts, pi.backward(grad_action, torch.full_like(min_qf_pi, alpha / n)))
    return loss


def alpha_step(actor, log_alpha, obs, target_entropy, action_scale, action_bias):
    """The entropy temperature's loss: alpha grows while the policy's entropy is below the target, and shrinks above;
    its gradient goes into log_alpha's `.grad`."""
    with torch.no_grad():
        log_pi = SquashedGaussian(actor.forward(obs)[-1], action_scale, action_bias).log_pi
        alpha, gap = log_alpha.exp(), log_pi + target_entropy
        log_alpha.grad = -alpha * gap.mean()
        return (-alpha * gap).mean()


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
    # each optimizer's parameters in one flat tensor (the layers' weights are views of it): one fused Adam kernel a
    # step, and the target networks' soft update is one tensor's
    q_params, q_target_params = flat_parameters(qf1, qf2), flat_parameters(qf1_target, qf2_target, grad=False)
    q_optimizer = optim.Adam([q_params], lr=args.q_lr, fused=True)
    actor_optimizer = optim.Adam([flat_parameters(actor)], lr=args.policy_lr, fused=True)
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

    # the networks as the update runs them: forward keeping activations, gradients by hand (--bf16: hidden products
    # in bfloat16)
    hidden_dtype = torch.bfloat16 if args.bf16 else torch.float32
    actor_g, qf1_g, qf2_g, qf1_target_g, qf2_target_g = (HandGradMLP(net.network, hidden_dtype)
                                                         for net in (actor, qf1, qf2, qf1_target, qf2_target))

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
            # the losses, with their gradients in the networks' .grad (HandGradMLP: no autograd graph, no backward())
            qf1_loss, qf2_loss, qf1_a_values, qf2_a_values = critic_step(
                actor_g, qf1_g, qf2_g, qf1_target_g, qf2_target_g, batch, alpha, args.gamma, actor.action_scale,
                actor.action_bias)
            qf_loss = qf1_loss + qf2_loss

            # optimize the model
            q_optimizer.step()

            if iteration % args.policy_frequency == 0:  # TD 3 Delayed update support
                for _ in range(args.policy_frequency):
                    # compensate for the delay by doing 'actor_update_interval' instead of 1
                    # the gradient flows through the Q-networks into the actor; their own weight gradients, which
                    # CleanRL computes and the next critic step discards, are skipped
                    actor_loss = actor_step(actor_g, qf1_g, qf2_g, data_obs, alpha, actor.action_scale,
                                            actor.action_bias)
                    actor_optimizer.step()

                    if args.autotune:
                        alpha_loss = alpha_step(actor_g, log_alpha, data_obs, target_entropy, actor.action_scale,
                                                actor.action_bias)
                        a_optimizer.step()
                        alpha = log_alpha.exp().item()

            # update the target networks: target = tau * online + (1 - tau) * target, all parameters at once
            if iteration % args.target_network_frequency == 0:
                soft_update([q_target_params], [q_params], args.tau)

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
