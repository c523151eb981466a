"""What the classical baselines (algorithms/ppo.py, dqn.py, sac.py) share, so each file keeps only its algorithm.

- one-line errors for bad flags, ids, kwargs and action spaces (`fail`, `cli`, `task_spaces`);
- Gymnasium 1.x vector envs in SAME_STEP autoreset mode, with episode statistics (`make_envs`, `real_next_obs`):
  a step that ends an episode returns the next episode's first observation and puts the true last one in
  `infos["final_obs"]`, which is what CleanRL's files were written for under Gymnasium 0.29;
- a replay buffer (DQN, SAC);
- `Run`, the protocol shared with PromptPO: `global_step` counts every training environment step, W&B logs
  against it, the deterministic policy is evaluated on held-out episode seeds every `--eval-every` steps and at
  the end, and the run directory gets `record.json` and a self-describing `model.pt` (see torch_policy.py); on a
  terminal, a live bar shows steps, SPS, the last episodic return and the next evaluation;
- the early stop (`--early-stop-fraction`): a run ends once its policy has held a fraction of the task's optimal
  return for `--early-stop-evals` evaluations in a row, and says so in record.json (`totals.stopped_early`).
"""

from __future__ import annotations

import contextlib
import io
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, Optional

import gymnasium as gym
import numpy as np
import torch
import tyro

from . import registry
from .errors import BenchError
from .progress import Progress
from .records import RunRecorder, final_eval, run_dir_of
from .rollout import HELDOUT_SEED_BASE, Episodes, heldout_seeds, make_env, run_episodes
from .torch_policy import TorchPolicy
from .tracking import start_wandb


@dataclass
class BaselineArgs:
    """The flags every baseline shares, with CleanRL's names; each file's `Args` adds its algorithm's."""

    exp_name: str = "baseline"
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment (training resets use seed, seed+1, ...; evaluation uses held-out seeds)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, cuda will be enabled by default (when available)"""
    torch_threads: int = 1
    """CPU threads of torch (0: torch's default); one is fastest for these small networks on shared cores"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases (WANDB_MODE=offline works without a key)"""
    wandb_project_name: str = "promptpo-bench"
    """the wandb's project name"""
    wandb_entity: Optional[str] = None
    """the entity (team) of wandb's project"""
    wandb_group: Optional[str] = None
    """the W&B group of the run (`promptpo-bench sweep --track` groups a sweep's runs)"""
    capture_video: bool = False
    """whether to capture videos of the agent's training episodes (env 0) into RUN_DIR/videos (needs moviepy)"""
    save_model: bool = True
    """save model.pt in the run directory (record.json needs it; with --no-save-model no record.json is written)"""
    run_dir: Optional[str] = None
    """where the run is written (default: runs/{env_id}__{exp_name}__{seed}__{unix_time})"""
    env_kwargs: str = "{}"
    """environment kwargs as a JSON object, e.g. '{"board": 3}'"""
    native_vector_env: bool = True
    """use the task's native vector env when it has one (NoiseWorld); else a SyncVectorEnv of single envs"""
    eval_every: int = 10_000
    """evaluate the deterministic policy every this many environment steps (and at 0 and at the end)"""
    periodic_eval_episodes: int = 10
    """held-out episodes of each periodic evaluation"""
    eval_episodes: int = 50
    """held-out episodes of the final evaluation (record.json's final_eval)"""
    early_stop_fraction: float = 0.0
    """stop once --early-stop-evals periodic evaluations in a row reach this fraction of the task's optimum
    (Meta-World: this success rate; 0: run the whole budget); the board counts such a run at its planned budget with
    its last evaluation"""
    early_stop_evals: int = 5
    """periodic evaluations in a row that must reach the --early-stop-fraction target before the run stops"""


def fail(script: str, message: str) -> NoReturn:
    """A user error: one line on stderr, exit status 2."""
    print(f"{script}: error: {message}", file=sys.stderr)
    sys.exit(2)


def cli(args_type: type, script: str) -> Any:
    """tyro.cli(args_type), with tyro's boxed parse errors folded into one line on stderr (exit 2)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(args_type)
    except SystemExit as exit_:
        if exit_.code:
            lines = [line.strip(" \t│╭╮╰╯─") for line in captured.getvalue().splitlines()]
            lines = [line for line in lines if line and not line.startswith(("For full helptext", "Argument helptext"))]
            if len(lines) > 1 and lines[1].startswith(lines[0]):  # the box's title repeats the message
                lines = lines[1:]
            fail(script, " ".join(lines[:2]) or f"bad arguments (see {script} --help)")
        sys.stderr.write(captured.getvalue())
        raise


def task_spaces(script: str, env_id: str, env_kwargs_text: str) -> tuple[dict, gym.spaces.Box, gym.Space]:
    """The env kwargs, observation space and action space of a task, or a one-line error."""
    try:
        env_kwargs = registry.parse_kwargs(env_kwargs_text)
        probe = make_env(env_id, env_kwargs)
    except BenchError as e:
        fail(script, str(e))
    except (gym.error.Error, TypeError, ValueError, ImportError) as e:
        fail(script, f"cannot make {env_id} with {env_kwargs}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    obs_space, action_space = probe.observation_space, probe.action_space
    probe.close()
    if not isinstance(obs_space, gym.spaces.Box):
        fail(script, f"{env_id} has {type(obs_space).__name__} observations; these baselines need Box")
    return env_kwargs, obs_space, action_space


def check_positive(script: str, args: Any, names: tuple[str, ...]) -> None:
    """Every named flag is at least 1, and training seeds stay below the held-out ones."""
    for name in names:
        if getattr(args, name) < 1:
            fail(script, f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0 or args.seed + args.num_envs > HELDOUT_SEED_BASE:
        fail(script, f"--seed must be in 0..{HELDOUT_SEED_BASE - args.num_envs} (seeds from {HELDOUT_SEED_BASE} are "
             "held out for evaluation)")


def early_stop_target(script: str, args: Any, env_kwargs: dict) -> float | None:
    """The return --early-stop-fraction asks a run to hold (`registry.fraction_of_optimum`); None: off."""
    if not 0 <= args.early_stop_fraction <= 1:
        fail(script, f"--early-stop-fraction must be in (0, 1] (0: off), got {args.early_stop_fraction}")
    if args.early_stop_fraction == 0:
        return None
    if args.early_stop_evals < 1:
        fail(script, f"--early-stop-evals must be at least 1, got {args.early_stop_evals}")
    try:
        return registry.fraction_of_optimum(args.env_id, args.early_stop_fraction, **env_kwargs)
    except BenchError as e:
        fail(script, f"--early-stop-fraction {e}")


def seed_everything(args: Any) -> torch.device:
    """CleanRL's seeding (python, numpy, torch), torch threads, and the device to train on."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    return torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")


def make_envs(args: Any, env_kwargs: dict, run_dir: Path | None) -> gym.vector.VectorEnv:
    """SAME_STEP-autoreset vector env with episode statistics: the suite's native one where it has one."""
    autoreset = gym.vector.AutoresetMode.SAME_STEP
    native = (args.native_vector_env and not args.capture_video and registry.is_registered(args.env_id)
              and registry.get(args.env_id).vector_entry_point is not None)
    if native:
        envs = registry.make_vec(args.env_id, args.num_envs, autoreset_mode=autoreset, **env_kwargs)
    else:
        def thunk(index: int):
            def make() -> gym.Env:
                if args.capture_video and index == 0:
                    env = gym.make(args.env_id, render_mode="rgb_array", **env_kwargs)
                    return gym.wrappers.RecordVideo(env, f"{run_dir}/videos")
                return make_env(args.env_id, env_kwargs)
            return make

        envs = gym.vector.SyncVectorEnv([thunk(i) for i in range(args.num_envs)], autoreset_mode=autoreset)
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def real_next_obs(next_obs: np.ndarray, terminations: np.ndarray, truncations: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each transition actually led to: `final_obs` where the episode ended (SAME_STEP)."""
    real = np.array(next_obs, copy=True)
    for idx in np.flatnonzero(np.logical_or(terminations, truncations)):
        real[idx] = infos["final_obs"][idx]
    return real


class ReplayBuffer:
    """A ring buffer of (obs, next_obs, action, reward, terminated), one row per vector step (like SB3's)."""

    def __init__(self, buffer_size: int, num_envs: int, obs_dim: int, action_shape: tuple, action_dtype,
                 device: torch.device):
        self.size = max(1, buffer_size // num_envs)
        self.num_envs, self.device, self.pos, self.full = num_envs, device, 0, False
        self.observations = np.zeros((self.size, num_envs, obs_dim), dtype=np.float32)
        self.next_observations = np.zeros((self.size, num_envs, obs_dim), dtype=np.float32)
        self.actions = np.zeros((self.size, num_envs, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros((self.size, num_envs), dtype=np.float32)
        self.terminations = np.zeros((self.size, num_envs), dtype=np.float32)

    def add(self, obs, next_obs, actions, rewards, terminations) -> None:
        self.observations[self.pos] = np.asarray(obs).reshape(self.num_envs, -1)
        self.next_observations[self.pos] = np.asarray(next_obs).reshape(self.num_envs, -1)
        self.actions[self.pos] = np.asarray(actions).reshape(self.actions.shape[1:])
        self.rewards[self.pos] = rewards
        self.terminations[self.pos] = terminations
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def __len__(self) -> int:
        return (self.size if self.full else self.pos) * self.num_envs

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        rows = np.random.randint(0, self.size if self.full else self.pos, size=batch_size)
        envs = np.random.randint(0, self.num_envs, size=batch_size)

        def t(x):
            return torch.as_tensor(x[rows, envs], device=self.device)

        return (t(self.observations), t(self.actions), t(self.next_observations), t(self.rewards),
                t(self.terminations))


def soft_update(target_params: list[torch.Tensor], online_params: list[torch.Tensor], tau: float) -> None:
    """target = tau * online + (1 - tau) * target, all parameters at once: DQN's and SAC's target networks."""
    with torch.no_grad():
        torch._foreach_mul_(target_params, 1.0 - tau)
        torch._foreach_add_(target_params, online_params, alpha=tau)


def set_up(script: str, args: Any, algorithm: str, env_kwargs: dict) -> tuple[gym.vector.VectorEnv, BaselineRun,
                                                                             torch.device]:
    """The envs, the run (directory, W&B, evaluations, record) and the seeded device: every baseline's set-up."""
    try:
        envs = make_envs(args, env_kwargs, run_dir_of(args))
    except (gym.error.Error, ImportError) as e:
        fail(script, str(e).splitlines()[0])
    run = BaselineRun(args, algorithm, env_kwargs, early_stop_target(script, args, env_kwargs))
    return envs, run, seed_everything(args)


class BaselineRun:
    """One baseline run: its directory, W&B, the held-out evaluations and the final record."""

    def __init__(self, args: Any, algorithm: str, env_kwargs: dict, stop_target: float | None = None):
        self.args, self.env_kwargs, self.stop_target = args, env_kwargs, stop_target
        self.score_key = registry.score_key(args.env_id)  # what the early stop holds: return, or success rate
        self.run_dir = run_dir_of(args)
        config = {**asdict(args), "env_kwargs": env_kwargs}
        self.recorder = RunRecorder(self.run_dir, algorithm=algorithm, env_id=args.env_id, env_kwargs=env_kwargs,
                                    seed=args.seed, config=config)
        self.wandb = start_wandb(args.wandb_project_name, self.run_dir.name, config, args.wandb_entity,
                                 args.wandb_group, self.run_dir) if args.track else None
        self.episodes, self.eval_time, self.eval_env_steps = 0, 0.0, 0
        self.start_time = time.time()
        self.next_eval = 0
        self.held = 0  # periodic evaluations in a row that reached stop_target
        self.last_return: float | None = None
        self.progress = Progress(args.total_timesteps, f"{algorithm} {args.env_id}", unit="step", unit_scale=True)

    def start_clock(self) -> None:
        """Training starts now (set-up is not training time)."""
        self.start_time = time.time()
        self.progress.restart(self.args.total_timesteps)  # its clock too

    def log(self, scalars: dict, global_step: int) -> None:
        if self.wandb:
            self.wandb.log({**scalars, "global_step": global_step})

    def log_episodes(self, infos: dict, global_step: int) -> None:
        """Count and log the episodes that ended in this vector step (RecordEpisodeStatistics' `infos`); move the
        progress bar."""
        if "episode" in infos:
            ended = infos["_episode"]
            self.episodes += int(ended.sum())
            self.last_return = float(infos["episode"]["r"][ended].mean())
            self.log({"charts/episodic_return": self.last_return,
                      "charts/episodic_length": float(infos["episode"]["l"][ended].mean())}, global_step)
        if self.progress.due():
            next_eval = f"{self.next_eval:,}" if self.next_eval < self.args.total_timesteps else "end"
            self.progress.move_to(global_step, SPS=self.sps(global_step), next_eval=next_eval,
                             **({} if self.last_return is None else {"return": f"{self.last_return:.4g}"}))

    @property
    def train_time(self) -> float:
        """Wall time spent training, evaluations excluded."""
        return time.time() - self.start_time - self.eval_time

    def sps(self, global_step: int) -> int:
        return int(global_step / max(self.train_time, 1e-9))

    def evaluate(self, checkpoint: dict, global_step: int, episodes: int) -> Episodes:
        """The checkpoint's deterministic policy on the first `episodes` held-out seeds: one curve point."""
        t0 = time.time()
        policy = TorchPolicy(checkpoint)
        with Progress(episodes, "held-out evaluation", unit="episode") as bar:
            result = run_episodes(self.args.env_id, policy, heldout_seeds(episodes), self.env_kwargs,
                                  on_episode_end=bar.advance)
        self.recorder.add_point(global_step, result.mean_return, success_rate=result.success_rate,
                                episodes=len(result.returns))
        self.log({"eval/mean_return": result.mean_return}, global_step)
        self.progress.line(f"global_step={global_step}, eval_mean_return={result.mean_return:.2f} "
                           f"({episodes} held-out episodes)")
        self.eval_time += time.time() - t0
        self.eval_env_steps += result.env_steps
        return result

    def maybe_evaluate(self, checkpoint_fn, global_step: int) -> None:
        """A periodic evaluation when `global_step` has reached the next multiple of --eval-every."""
        if global_step >= self.next_eval and self.next_eval < self.args.total_timesteps:
            result = self.evaluate(checkpoint_fn(), global_step, self.args.periodic_eval_episodes)
            self.next_eval = (global_step // self.args.eval_every + 1) * self.args.eval_every
            if self.stop_target is not None:
                value = getattr(result, self.score_key)  # Episodes.mean_return or .success_rate
                self.held = self.held + 1 if value is not None and value >= self.stop_target else 0
                if self.stopped_early:
                    what = "a success rate of" if self.score_key == "success_rate" else "a mean return of"
                    self.progress.line(f"early stop at global_step={global_step}: {self.held} evaluations in a row "
                                       f"reached {what} {self.stop_target:.4g} (--early-stop-fraction "
                                       f"{self.args.early_stop_fraction:g} of the optimum)")

    @property
    def stopped_early(self) -> bool:
        """Whether the last --early-stop-evals periodic evaluations all reached the early-stop return: stop now."""
        return self.stop_target is not None and self.held >= self.args.early_stop_evals

    def finish(self, checkpoint: dict, global_step: int) -> dict | None:
        """Final evaluation on held-out seeds, model.pt and record.json (without --save-model: neither file)."""
        train_time = self.train_time
        self.progress.close()
        print(f"SPS: {self.sps(global_step)} ({global_step} steps in {train_time:.1f}s of training)")
        final = self.evaluate(checkpoint, global_step, self.args.eval_episodes)
        record = None
        if self.args.save_model:
            torch.save(checkpoint, self.run_dir / "model.pt")
            record = self.recorder.finish(
                totals={"env_steps": global_step, "episodes": self.episodes, "llm_calls": 0, "prompt_tokens": 0,
                        "completion_tokens": 0, "cost_usd": None, "eval_env_steps": self.eval_env_steps,
                        "train_time_s": round(train_time, 3), "sps": int(global_step / max(train_time, 1e-9)),
                        "planned_env_steps": self.args.total_timesteps, "stopped_early": self.stopped_early},
                final_eval=final_eval(final), policy_path="model.pt", policy_kind="torch")
            print(f"model saved to {self.run_dir / 'model.pt'}; record written to {self.run_dir / 'record.json'}")
        else:
            print("--no-save-model: no model.pt, so no record.json (curve.jsonl has the evaluations)")
        if self.wandb:
            self.wandb.finish()
        return record
