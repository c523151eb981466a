# PPO for Discrete and Box action spaces, in one file in CleanRL's manner, scored like PromptPO.
# Follows CleanRL's ppo.py (Discrete) and ppo_continuous_action.py (Box), with their tuned defaults.
# docs: README.md ("Classical baselines"); run `python algorithms/ppo.py --help` for every flag.
#
# Gymnasium 1.x autoreset, chosen deliberately: the vector env runs in AutoresetMode.SAME_STEP.
# A step that ends an episode returns the *reset* observation of the next episode in `next_obs` and
# the true last observation in `infos["final_obs"]`. That is exactly the 0.29 behaviour CleanRL was
# written for, so the rollout needs no masking of a "reset step" (which NEXT_STEP would insert):
#   * `dones[t+1] = terminated | truncated` of step t cuts GAE at every episode end;
#   * a *truncated* step t still bootstraps: its reward becomes r_t + gamma * V(final_obs_t) before
#     GAE (the episode did not end in the MDP, only the time limit hit); a *terminated* one does not;
#   * episode returns/lengths come from gym.wrappers.vector.RecordEpisodeStatistics, which reads the
#     env's autoreset mode (tests/e2e/test_baselines.py checks both against a manual count).
# Protocol shared with PromptPO: `global_step` counts every training environment step; every
# `--eval-every` steps and at the end the deterministic policy (argmax / clipped mean) is evaluated on
# held-out episode seeds (promptpo_bench.rollout.heldout_seeds) that training never resets with; the run
# directory gets record.json (curve = those evaluations) and model.pt (see promptpo_bench/torch_policy.py).
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.distributions.categorical import Categorical
from torch.distributions.normal import Normal

import promptpo_bench  # noqa: F401  (registers the suite's tasks)
from promptpo_bench import baselines
from promptpo_bench.torch_policy import NumpyMLP, make_checkpoint, mlp

SCRIPT = "ppo.py"


@dataclass
class Args(baselines.BaselineArgs):
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""

    # Algorithm specific arguments
    env_id: str = "NoiseWorld-v0"
    """the id of the environment (a suite task from `promptpo-bench tasks` or any Gymnasium id)"""
    total_timesteps: Optional[int] = None
    """total environment steps (default: 500000 for Discrete actions, 1000000 for Box)"""
    learning_rate: Optional[float] = None
    """the learning rate of the optimizer (default: 2.5e-4 Discrete, 3e-4 Box)"""
    num_envs: Optional[int] = None
    """the number of parallel game environments (default: 4 Discrete, 1 Box)"""
    num_steps: Optional[int] = None
    """the number of steps to run in each environment per policy rollout (default: 128 Discrete, 2048 Box)"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: Optional[int] = None
    """the number of mini-batches (default: 4 Discrete, 32 Box)"""
    update_epochs: Optional[int] = None
    """the K epochs to update the policy (default: 4 Discrete, 10 Box)"""
    norm_adv: bool = True
    """Toggles advantages normalization"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function, as per the paper."""
    ent_coef: Optional[float] = None
    """coefficient of the entropy (default: 0.01 Discrete, 0.0 Box)"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: Optional[float] = None
    """the target KL divergence threshold"""
    norm_obs: bool = True
    """normalise observations with running statistics, clipped to +-10 (CleanRL's Box wrappers; saved in model.pt)"""
    norm_reward: bool = True
    """scale rewards by the running std of the discounted return, clipped to +-10 (CleanRL's Box wrappers;
    on by default for Discrete too because NoiseWorld's rewards reach +-1e5)"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layer widths of the actor and the critic (tanh)"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


def check_args(args: Args, discrete: bool) -> Args:
    """Fill in CleanRL's tuned defaults (ppo.py for Discrete actions, ppo_continuous_action.py for Box), then check."""
    defaults = dict(total_timesteps=500_000, learning_rate=2.5e-4, num_envs=4, num_steps=128, num_minibatches=4,
                    update_epochs=4, ent_coef=0.01) if discrete else \
        dict(total_timesteps=1_000_000, learning_rate=3e-4, num_envs=1, num_steps=2048, num_minibatches=32,
             update_epochs=10, ent_coef=0.0)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    baselines.check_positive(SCRIPT, args, ("total_timesteps", "num_envs", "num_steps", "num_minibatches",
                                            "update_epochs", "eval_every", "periodic_eval_episodes", "eval_episodes"))
    args.batch_size = int(args.num_envs * args.num_steps)
    if args.batch_size % args.num_minibatches:
        baselines.fail(SCRIPT, f"--num-minibatches ({args.num_minibatches}) must divide num_envs*num_steps "
                       f"({args.batch_size})")
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = max(1, args.total_timesteps // args.batch_size)
    return args


class RunningMeanStd:
    """Running mean and variance (parallel algorithm), as in Gymnasium's normalisation wrappers."""

    def __init__(self, shape=(), epsilon=1e-4):
        self.mean, self.var, self.count = np.zeros(shape, np.float64), np.ones(shape, np.float64), epsilon

    def update(self, x):
        batch_mean, batch_var, batch_count = np.mean(x, axis=0), np.var(x, axis=0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var, self.count = m2 / total, total


class ObsNormalizer:
    """clip((obs - mean) / sqrt(var + eps), -clip, clip) with running statistics (identity when disabled)."""

    def __init__(self, shape, enabled: bool, epsilon=1e-8, clip=10.0):
        self.rms, self.enabled, self.epsilon, self.clip = RunningMeanStd(shape), enabled, epsilon, clip

    def __call__(self, obs, update: bool):
        obs = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
        if not self.enabled:
            return obs.astype(np.float32)
        if update:
            self.rms.update(obs)
        return np.clip((obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip) \
            .astype(np.float32)

    def state(self):
        if not self.enabled:
            return None
        return {"mean": torch.tensor(self.rms.mean, dtype=torch.float64),
                "var": torch.tensor(self.rms.var, dtype=torch.float64),
                "epsilon": self.epsilon, "clip": self.clip}


class RewardScaler:
    """Divide rewards by the running std of the discounted return and clip (Gymnasium's NormalizeReward)."""

    def __init__(self, num_envs, gamma, enabled: bool, epsilon=1e-8, clip=10.0):
        self.rms, self.returns = RunningMeanStd(()), np.zeros(num_envs)
        self.gamma, self.enabled, self.epsilon, self.clip = gamma, enabled, epsilon, clip

    def __call__(self, rewards, dones):
        rewards = np.asarray(rewards, dtype=np.float64)
        if not self.enabled:
            return rewards
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns)
        self.returns[dones] = 0.0
        return np.clip(rewards / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip)


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def init_mlp(net: nn.Sequential, last_std: float) -> nn.Sequential:
    """CleanRL's orthogonal initialisation: sqrt(2) on hidden layers, `last_std` on the output layer."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        layer_init(layer)
    layer_init(linears[-1], std=last_std)
    return net


class Agent(nn.Module):
    def __init__(self, obs_dim: int, action_space: gym.Space, hidden_sizes):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.arch = {"in_dim": obs_dim, "hidden": list(hidden_sizes), "out_dim": out_dim, "activation": "tanh"}
        self.critic = init_mlp(mlp(obs_dim, hidden_sizes, 1, "tanh"), last_std=1.0)
        # The actor is exactly the network model.pt saves (promptpo_bench.torch_policy.mlp).
        self.actor = init_mlp(mlp(**self.arch), last_std=0.01)
        if not self.discrete:
            self.actor_logstd = nn.Parameter(torch.zeros(1, out_dim))

    def get_action_and_value(self, x, action=None):
        out = self.actor(x)
        if self.discrete:
            probs = Categorical(logits=out)
            if action is None:
                action = probs.sample()
            return action, probs.log_prob(action), probs.entropy(), self.critic(x)
        probs = Normal(out, torch.exp(self.actor_logstd.expand_as(out)))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


def checkpoint(args: Args, env_kwargs: dict, agent: Agent, action_space, obs_shape, obs_norm: ObsNormalizer) -> dict:
    """What model.pt holds: the deterministic actor and how to rebuild it (no import of this file needed)."""
    return make_checkpoint("ppo", args.env_id, env_kwargs, agent.actor, agent.arch,
                           "argmax" if agent.discrete else "clip", action_space, obs_shape, obs_norm.state())


def truncation_bootstrap(rewards, truncations, infos, value_fn, gamma):
    """r_t + gamma * V(final_obs_t) where step t was truncated (SAME_STEP: final_obs is in infos)."""
    rewards = np.array(rewards, dtype=np.float64)
    if np.any(truncations):
        idx = np.flatnonzero(truncations)
        final = np.stack([infos["final_obs"][i] for i in idx])
        rewards[idx] += gamma * np.asarray(value_fn(final), dtype=np.float64).reshape(-1)
    return rewards


def sample_actions(out, logstd, discrete: bool):
    """What get_action_and_value samples, in NumPy: actions and their log-probabilities from the actor's output
    (Categorical logits, or the mean of a Normal with log-std `logstd`)."""
    if discrete:
        logp = out - out.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        # inverse-CDF sampling; the last bin takes what rounding leaves of 1
        cdf = np.exp(logp).cumsum(axis=1)
        action = np.minimum((cdf < np.random.random_sample((len(out), 1))).sum(axis=1), out.shape[1] - 1)
        return action, logp[np.arange(len(out)), action]
    std = np.exp(logstd)
    noise = np.random.standard_normal(out.shape).astype(np.float32)
    logprob = (-0.5 * noise**2 - logstd - 0.5 * np.log(2 * np.pi)).sum(axis=1)
    return out + std * noise, logprob


def compute_gae(rewards, values, dones, next_value, next_done, gamma, gae_lambda):
    """CleanRL's GAE (NumPy); dones[t] = "obs[t] starts a new episode", i.e. step t-1 ended one (SAME_STEP)."""
    rewards, values, dones = (np.asarray(x, dtype=np.float32) for x in (rewards, values, dones))
    next_value = np.asarray(next_value, dtype=np.float32).reshape(-1)
    next_done = np.asarray(next_done, dtype=np.float32)
    num_steps = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    lastgaelam = 0
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal = 1.0 - next_done
            nextvalues = next_value
        else:
            nextnonterminal = 1.0 - dones[t + 1]
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
    return advantages, advantages + values


def annealed_lr(learning_rate, iteration, num_iterations):
    """The learning rate of iteration 1..num_iterations: from `learning_rate` down linearly, one step short of 0."""
    frac = 1.0 - (iteration - 1.0) / num_iterations
    return frac * learning_rate


def policy_loss(mb_advantages, ratio, clip_coef, norm_adv):
    """The clipped surrogate objective, negated to be minimised; advantages normalised within the minibatch."""
    if norm_adv:
        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(pg_loss1, pg_loss2).mean()


def value_loss(newvalue, returns, old_values, clip_coef, clip_vloss):
    """Half the mean squared error to the returns; clipped: the larger of it and that of a value kept within
    clip_coef of the rollout's."""
    if clip_vloss:
        v_loss_unclipped = (newvalue - returns) ** 2
        v_clipped = old_values + torch.clamp(
            newvalue - old_values,
            -clip_coef,
            clip_coef,
        )
        v_loss_clipped = (v_clipped - returns) ** 2
        v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
        return 0.5 * v_loss_max.mean()
    return 0.5 * ((newvalue - returns) ** 2).mean()


def main(args: Args):
    env_kwargs, single_obs_space, single_action_space = baselines.task_spaces(SCRIPT, args.env_id, args.env_kwargs)
    if not isinstance(single_action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        baselines.fail(SCRIPT, f"{args.env_id} has {type(single_action_space).__name__} actions; PPO here needs "
                       "Discrete or Box")
    discrete = isinstance(single_action_space, gym.spaces.Discrete)
    args = check_args(args, discrete)
    # env setup, the run (directory, W&B, evaluations, record) and seeding
    envs, run, device = baselines.set_up(SCRIPT, args, "ppo", env_kwargs)

    obs_dim = int(np.prod(single_obs_space.shape))
    obs_norm = ObsNormalizer((obs_dim,), args.norm_obs)
    reward_scaler = RewardScaler(args.num_envs, args.gamma, args.norm_reward)
    if not discrete:
        low, high = single_action_space.low, single_action_space.high

    agent = Agent(obs_dim, single_action_space, args.hidden_sizes).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)
    # Rollout steps run the same networks in NumPy on views of their weights: with a few observations per step,
    # torch's per-operation overhead would be most of the rollout's cost. Updates stay in torch.
    actor_np, critic_np = NumpyMLP(agent.actor), NumpyMLP(agent.critic)

    def value_of(raw_obs):
        return critic_np(obs_norm(raw_obs, update=False))

    def current_checkpoint():
        return checkpoint(args, env_kwargs, agent, single_action_space, single_obs_space.shape, obs_norm)

    # ALGO Logic: Storage setup (NumPy during the rollout; the update reads it as tensors)
    obs = np.zeros((args.num_steps, args.num_envs, obs_dim), dtype=np.float32)
    action_shape = () if discrete else (int(np.prod(single_action_space.shape)),)  # Box actions flattened
    actions = np.zeros((args.num_steps, args.num_envs) + action_shape, dtype=np.int64 if discrete else np.float32)
    logprobs = np.zeros((args.num_steps, args.num_envs), dtype=np.float32)
    rewards = np.zeros((args.num_steps, args.num_envs), dtype=np.float32)
    dones = np.zeros((args.num_steps, args.num_envs), dtype=np.float32)
    values = np.zeros((args.num_steps, args.num_envs), dtype=np.float32)

    # TRY NOT TO MODIFY: start the game
    global_step = 0
    run.start_clock()
    next_obs, _ = envs.reset(seed=args.seed)
    next_obs = obs_norm(next_obs, update=True)
    next_done = np.zeros(args.num_envs, dtype=np.float32)

    for iteration in range(1, args.num_iterations + 1):
        run.maybe_evaluate(current_checkpoint, global_step)
        if run.stopped_early:  # --early-stop-fraction: the policy has held its target; stop here
            break
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = annealed_lr(args.learning_rate, iteration, args.num_iterations)
        logstd = None if discrete else agent.actor_logstd.detach().cpu().numpy()  # fixed during the rollout

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done

            # ALGO LOGIC: action logic (get_action_and_value's sampling, in NumPy)
            action, logprobs[step] = sample_actions(actor_np(next_obs), logstd, discrete)
            values[step] = critic_np(next_obs)[:, 0]
            actions[step] = action

            # TRY NOT TO MODIFY: execute the game and log data.
            env_action = action
            if not discrete:  # CleanRL's ClipAction: the env gets clipped actions, the buffer keeps the sample
                env_action = np.clip(action.reshape(envs.action_space.shape), low, high)
            next_obs_raw, reward, terminations, truncations, infos = envs.step(env_action)
            next_done_bool = np.logical_or(terminations, truncations)
            reward = reward_scaler(reward, next_done_bool)
            rewards[step] = truncation_bootstrap(reward, truncations, infos, value_of, args.gamma)
            next_obs = obs_norm(next_obs_raw, update=True)
            next_done = next_done_bool.astype(np.float32)

            run.log_episodes(infos, global_step)

        # bootstrap value if not done
        next_value = critic_np(next_obs).reshape(-1)
        advantages, returns = compute_gae(rewards, values, dones, next_value, next_done, args.gamma, args.gae_lambda)

        # flatten the batch
        def flat(x, *shape):
            return torch.as_tensor(x.reshape((-1, *shape)), device=device)

        b_obs, b_logprobs, b_actions = flat(obs, obs_dim), flat(logprobs), flat(actions, *action_shape)
        b_advantages, b_returns, b_values = flat(advantages), flat(returns), flat(values)

        # Optimizing the policy and value network
        b_inds = np.arange(args.batch_size)
        clipfracs = []
        for epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                end = start + args.minibatch_size
                mb_inds = torch.as_tensor(b_inds[start:end], device=device)

                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                pg_loss = policy_loss(b_advantages[mb_inds], ratio, args.clip_coef, args.norm_adv)
                v_loss = value_loss(newvalue.view(-1), b_returns[mb_inds], b_values[mb_inds], args.clip_coef,
                                    args.clip_vloss)

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = values.reshape(-1), returns.reshape(-1)
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        losses = {"charts/learning_rate": optimizer.param_groups[0]["lr"], "losses/value_loss": v_loss.item(),
                  "losses/policy_loss": pg_loss.item(), "losses/entropy": entropy_loss.item(),
                  "losses/old_approx_kl": old_approx_kl.item(), "losses/approx_kl": approx_kl.item(),
                  "losses/clipfrac": float(np.mean(clipfracs)), "losses/explained_variance": float(explained_var),
                  "charts/SPS": run.sps(global_step)}
        run.log(losses, global_step)

    envs.close()
    # Final evaluation on held-out seeds, model.pt and record.json
    record = run.finish(current_checkpoint(), global_step)
    return {"record": record, "run_dir": run.run_dir, "agent": agent, "obs_norm": obs_norm, "args": args,
            "rollout": {"obs": obs, "actions": actions, "rewards": rewards, "dones": dones, "values": values}}


if __name__ == "__main__":
    main(baselines.cli(Args, SCRIPT))
