"""`promptpo-bench`: list tasks, print what an LLM reads about one, roll out a policy on it, and look at runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


from . import policies, registry, sweep
from .errors import BenchError
from .progress import Progress
from .rollout import Episodes, RandomPolicy, RolloutFailure, episode_seeds, run_episodes


def _kwarg(text: str) -> tuple[str, Any]:
    """Parse KEY=VALUE, VALUE read as JSON where it can be (3, true, "x"), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _format_space(space) -> str:
    shape = getattr(space, "shape", None)
    if hasattr(space, "n"):
        return f"Discrete({space.n})"
    return f"{type(space).__name__}{tuple(shape) if shape is not None else ''}"


def cmd_tasks(args: argparse.Namespace) -> None:
    rows = []
    for spec in registry.specs():
        if args.family and spec.family != args.family:
            continue
        env = registry.make(spec.id)
        ref = spec.references(env.unwrapped)
        rows.append((spec.id, spec.family, str(spec.horizon), _format_space(env.observation_space),
                     _format_space(env.action_space), f"{ref.random:.2f}", f"{ref.optimal:.2f}", spec.summary))
        env.close()
    header = ("id", "family", "horizon", "observation", "action", "random", "optimal", "task")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("\nrandom / optimal: the returns that normalise scores (random = 0, optimal = 1). NoiseWorld: exact, by value "
          "iteration; MuJoCo: random measured on 100 seeded episodes, optimal = the best published PPO/SAC score; "
          "PointMaze, Meta-World, MiniGrid and real-world: random and the expert (planner, scripted policy, "
          "hand-written controller) measured on fixed seeds. Each task's source: `promptpo-bench rollout ID --policy expert`.")


def cmd_describe(args: argparse.Namespace) -> None:
    if args.list_variants:
        for name, text in registry.description_variants(args.env_id).items():
            print(f"{name}: {text}")
        return
    print(registry.describe(args.env_id, args.variant, **dict(args.kwarg)), end="")


def _policy(args: argparse.Namespace, env) -> tuple[Any, str]:
    """The batch policy named by --policy, and a label for it."""
    spec = registry.get(args.env_id)
    if args.policy == "random":
        return RandomPolicy(env.action_space, args.seed), "uniform random"
    if args.policy in ("optimal", "expert"):
        if spec.expert is None:
            reference = spec.references(env.unwrapped)
            raise BenchError(f"{args.env_id} has no built-in optimal/expert policy to roll out; its reference score "
                             f"{reference.optimal:.2f} is not a policy here ({reference.source})")
        return spec.expert(env.unwrapped), args.policy
    path = Path(args.policy)
    if not path.exists():
        raise BenchError(f"--policy must be random, optimal, a policy file or a run directory; {path} does not exist")
    lifetime = args.policy_lifetime or policies.run_policy_lifetime(path) or "rollout"  # a run: as it was scored
    return policies.load_policy(path, args.env_id, env, args.act_timeout, args.memory_mb, lifetime,
                                args.unsafe_sandbox, policies.run_episodes_per_worker(path)), str(path)


def _print_episodes(episodes: Episodes, show: int) -> None:
    shown = episodes.returns[:show]
    for i in range(0, len(shown), 10):
        print("  " + " ".join(f"{r:9.2f}" for r in shown[i:i + 10]))
    if len(episodes.returns) > show:
        print(f"  ... {len(episodes.returns) - show} more (--show-episodes N or --json for all)")


def cmd_rollout(args: argparse.Namespace) -> int:
    from .sandbox import PolicyFailure

    kwargs = dict(args.kwarg) or policies.run_env_kwargs(args.policy)  # a run is re-evaluated on its own task
    env = registry.make(args.env_id, **kwargs)
    reference = registry.get(args.env_id).references(env.unwrapped)
    seeds = episode_seeds(args.seed, args.episodes)
    policy = None
    try:
        policy, label = _policy(args, env)
        with Progress(len(seeds), f"rollout {args.env_id}", unit="episode") as progress:
            episodes = run_episodes(args.env_id, policy, seeds, kwargs, on_episode_end=progress.advance)
    except (PolicyFailure, RolloutFailure) as error:
        failure = getattr(error, "failure", error)
        if not isinstance(failure, PolicyFailure):
            raise
        print(f"promptpo-bench: policy failed ({failure.kind}): {failure.message}", file=sys.stderr)
        if failure.traceback and args.verbose:
            print(failure.traceback, file=sys.stderr)
        return 1
    finally:
        getattr(policy, "close", lambda: None)()
        env.close()
    score = registry.normalised(episodes.mean_return, reference)
    if args.json:
        print(json.dumps({"env_id": args.env_id, "env_kwargs": kwargs, "policy": label, "episode_seeds": seeds,
                          "returns": episodes.returns.tolist(), "lengths": episodes.lengths.tolist(),
                          "mean_return": episodes.mean_return, "ci95": episodes.ci95(), "normalised_score": score,
                          "reference": {"random": reference.random, "optimal": reference.optimal}}))
        return 0
    print(f"{args.env_id} {kwargs or ''} policy={label}: {len(seeds)} episodes, seeds {seeds[0]}..{seeds[-1]}")
    _print_episodes(episodes, args.show_episodes)
    print(f"mean return {episodes.mean_text()}, {episodes.env_steps} env steps")
    print(f"reference:  random {reference.random:.2f}   optimal {reference.optimal:.2f}   "
          f"normalised score {score:.3f} (random = 0, optimal = 1)")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from .submit import submit, track_entry

    entry = submit(args.run_dir, args.leaderboard)
    verification = json.loads((entry / "verification.json").read_text())
    print(f"accepted: {entry} ({verification['mode']} reproduction, re-evaluated mean return "
          f"{verification['reevaluated_mean_return']:.2f}, claimed {verification['claimed_mean_return']:.2f})")
    if args.track:
        track_entry(entry, args.wandb_project_name, args.wandb_entity)
    return 0


def cmd_leaderboard_build(args: argparse.Namespace) -> int:
    from .leaderboard import build

    result = build(args.leaderboard, args.track, args.wandb_project_name, args.wandb_entity)
    print(f"leaderboard: {result['entries']} entries, {len(result['plots'])} plots")
    print(f"  {result['readme']}\n  {result['html']}")
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from .reference_runs import write_reference_run

    record = write_reference_run(args.env_id, args.policy, args.run_dir, dict(args.kwarg), args.episodes)
    print(f"{args.run_dir}: {record['algorithm']} on {args.env_id}, held-out mean return "
          f"{record['final_eval']['mean_return']:.2f} over {args.episodes} episodes")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_runs

    figure = plot_runs(args.run_dirs, args.x, args.out, args.normalised, args.log_x)
    for name in figure.skipped:
        print(f"skipped {name}", file=sys.stderr)
    for task, labels in figure.lines.items():
        print(f"{task}: {', '.join(labels)}")
    print(figure.path)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .show import format_summary, summarize

    summary = summarize(args.run_dir, args.code_lines)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _board_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leaderboard", type=Path, default=Path("leaderboard"),
                        help="the leaderboard directory (default: ./leaderboard)")
    parser.add_argument("--track", action="store_true", help="also log to W&B (WANDB_MODE=offline works)")
    parser.add_argument("--wandb-project-name", default="promptpo-bench", help="W&B project (default: promptpo-bench)")
    parser.add_argument("--wandb-entity", default=None, help="W&B entity (team)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptpo-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    tasks = sub.add_parser("tasks", help="list every task with its horizon, spaces and reference scores")
    tasks.add_argument("--family", help="only this family (e.g. noiseworld)")
    tasks.set_defaults(func=cmd_tasks)

    kwarg_help = "environment kwarg, repeatable (e.g. --kwarg board=3, or --kwarg size=8 --kwarg layout_seed=1)"
    describe = sub.add_parser("describe", help="print exactly the task context an LLM gets")
    describe.add_argument("env_id", help="a task id from `promptpo-bench tasks`")
    describe.add_argument("--variant", default=None,
                          help="the information variant (default: the paper's; see --list-variants), e.g. "
                               "NoiseWorld: paper, paper-key-info, explained")
    describe.add_argument("--list-variants", action="store_true", help="list the task's description variants")
    describe.add_argument("--kwarg", type=_kwarg, action="append", default=[], metavar="KEY=VALUE", help=kwarg_help)
    describe.set_defaults(func=cmd_describe)

    rollout = sub.add_parser("rollout", help="roll out a policy and print its returns and normalised score")
    rollout.add_argument("env_id", help="a task id from `promptpo-bench tasks`")
    rollout.add_argument("--policy", default="random",
                         help="random, optimal (alias expert), a .py file defining class Policy with act(obs) (run "
                              "in the sandbox), or a baseline's run directory / model.pt (default: random)")
    rollout.add_argument("--episodes", type=int, default=10, help="number of episodes (default: 10)")
    rollout.add_argument("--seed", type=int, default=0, help="reset seed of the first episode; episode i uses seed+i")
    rollout.add_argument("--kwarg", type=_kwarg, action="append", default=[], metavar="KEY=VALUE",
                         help=kwarg_help + "; a run directory's own env kwargs (from its record) when none is given")
    rollout.add_argument("--show-episodes", type=int, default=20, help="print this many per-episode returns")
    rollout.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    rollout.add_argument("--act-timeout", type=float, default=1.0, help="seconds a policy file may take per act call")
    rollout.add_argument("--memory-mb", type=int, default=2048, help="address-space limit of the policy process")
    rollout.add_argument("--policy-lifetime", choices=["rollout", "episode"], default=None,
                         help="how long one Policy() of a policy file lives: rollout (one object plays the episodes "
                              "in order, as in the paper) or episode (a new object per episode); default: a run "
                              "directory's recorded lifetime, else rollout")
    rollout.add_argument("--unsafe-sandbox", action="store_true",
                         help="run a policy file even where a sandbox layer (namespaces, seccomp, ...) is unavailable "
                              "on this machine, i.e. without that protection")
    rollout.add_argument("-v", "--verbose", action="store_true", help="print the policy's traceback on failure")
    rollout.set_defaults(func=cmd_rollout)

    submit = sub.add_parser("submit", help="verify a run directory by re-evaluating its policy and add it to the "
                                           "leaderboard")
    submit.add_argument("run_dir", type=Path, help="a run directory (record.json + policy.py or model.pt)")
    _board_flags(submit)
    submit.set_defaults(func=cmd_submit)

    board = sub.add_parser("leaderboard", help="render the leaderboard from its entries")
    board_sub = board.add_subparsers(dest="action", required=True)
    build = board_sub.add_parser("build", help="write README.md, index.html and plots/ of the leaderboard")
    _board_flags(build)
    build.set_defaults(func=cmd_leaderboard_build)

    reference = sub.add_parser("reference", help="write a reference run (random or optimal policy as policy.py, "
                                                 "scored in the sandbox) that submit verifies like any run")
    reference.add_argument("env_id", help="a task id from `promptpo-bench tasks`")
    reference.add_argument("--policy", choices=["random", "optimal"], required=True,
                           help="random: uniform random actions; optimal: the registry's optimal/expert policy")
    reference.add_argument("--run-dir", type=Path, required=True, help="where to write policy.py and record.json")
    reference.add_argument("--episodes", type=int, default=50, help="held-out evaluation episodes (default: 50)")
    reference.add_argument("--kwarg", type=_kwarg, action="append", default=[], metavar="KEY=VALUE", help=kwarg_help)
    reference.set_defaults(func=cmd_reference)

    plot = sub.add_parser("plot", help="plot return (or normalised score) vs environment steps or tokens of run "
                                       "directories, seeds aggregated as IQM with a 95%% bootstrap band",
                          description="One panel per task, one line per method; seeds are aggregated as the IQM "
                                      "with a 95% percentile-bootstrap band (the leaderboard's statistics).")
    plot.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                      help="finished run directories, or folders searched for them (e.g. a sweep's --out)")
    plot.add_argument("--x", choices=("env_steps", "tokens"), default="env_steps",
                      help="x axis: environment steps (default) or LLM tokens (LLM runs only)")
    plot.add_argument("--out", type=Path, metavar="FILE", help="image to write, .png, .svg or .pdf (default: curves_X.png in the "
                                               "folder that holds the runs)")
    plot.add_argument("--normalised", action="store_true",
                      help="normalised score (random = 0, optimal = 1) instead of return, where the task has "
                           "reference scores")
    plot.add_argument("--log-x", action=argparse.BooleanOptionalAction, default=None,
                      help="logarithmic x axis (default: where a task's runs end 10x or more apart)")
    plot.set_defaults(func=cmd_plot)

    show = sub.add_parser("show", help="one screen about a run: task, budget, final held-out return and score; "
                                       "PromptPO's rounds and winning candidate")
    show.add_argument("run_dir", type=Path, help="a finished run directory (record.json)")
    show.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    show.add_argument("--code-lines", type=int, default=12, metavar="N",
                      help="lines of the winning PromptPO policy's code to show (default: 12)")
    show.set_defaults(func=cmd_show)

    sweep_parser = sub.add_parser(
        "sweep", help="run algorithms x tasks x seeds, resumably, locally or on Ray",
        description="Run every algorithm x task x seed of a grid, each as the algorithm's own command writing "
                    "OUT/{env_id}__{algo}__{seed}. Rerunning skips finished runs, resumes interrupted PromptPO runs "
                    "(--resume) and restarts interrupted baseline runs; the sweep ends with a summary table.")
    sweep.add_arguments(sweep_parser)
    sweep_parser.set_defaults(func=sweep.cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "episodes", 1) < 1:
        print("promptpo-bench: error: --episodes must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.func(args) or 0
    except BenchError as e:
        print(f"promptpo-bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
