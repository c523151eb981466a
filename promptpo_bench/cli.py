"""`promptpo-bench`: list tasks, print what an LLM reads about one, roll out a policy on it, and look at runs."""

from __future__ import annotations

import argparse
import fcntl
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence


from . import policies, registry, sweep
from .errors import BenchError
from .progress import Progress
from .records import atomic_write_json
from .rollout import Episodes, RandomPolicy, RolloutFailure, episode_seeds, run_episodes
from .sweep_backends import BACKENDS, SweepProgress


def _kwarg(text: str) -> tuple[str, Any]:
    """Parse KEY=VALUE, VALUE read as JSON where it can be (3, true, "x"), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def cmd_tasks(args: argparse.Namespace) -> None:
    rows, missing = [], {}
    for spec in registry.specs():
        if args.family and spec.family != args.family:
            continue
        if spec.observation and spec.action and spec.default_references:  # from the spec alone: no env is built
            spaces, ref = (spec.observation, spec.action), spec.default_references()
        else:  # a task registered without them
            env = registry.make(spec.id)
            spaces, ref = (registry.space_text(env.observation_space), registry.space_text(env.action_space)), \
                spec.references(env.unwrapped)
            env.close()
        rows.append((spec.id, spec.family, str(spec.horizon), *spaces, f"{ref.random:.2f}", f"{ref.optimal:.2f}",
                     spec.summary))
        absent = registry.missing_requirements(spec)
        if absent:
            missing.setdefault(spec.family, (spec.extra, absent))
    header = ("id", "family", "horizon", "observation", "action", "random", "optimal", "task")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("\nrandom / optimal: the returns that normalise scores (random = 0, optimal = 1). NoiseWorld: exact, by value "
          "iteration; MuJoCo: random measured on 100 seeded episodes, optimal = the best published PPO/SAC score; "
          "PointMaze, Meta-World, MiniGrid and real-world: random and the expert (planner, scripted policy, "
          "hand-written controller) measured on fixed seeds. Each task's source: `promptpo-bench rollout ID --policy expert`.")
    for family, (extra, modules) in missing.items():
        print(f"not installed: {family} (needs {', '.join(modules)}: pip install 'promptpo-bench[{extra}]'); its "
              "tasks are listed but cannot be made")


def cmd_describe(args: argparse.Namespace) -> None:
    if args.list_variants:
        for name, text in registry.description_variants(args.env_id).items():
            print(f"{name}: {text}")
        return
    print(registry.describe(args.env_id, args.variant, **dict(args.kwarg)), end="")


def _policy(args: argparse.Namespace, env) -> tuple[Any, str, str | None]:
    """The batch policy named by --policy, a label for it, and the description variant whose observation it reads
    (`run_episodes`' `variant`: None for the built-in ones, which act on the env's own)."""
    spec = registry.get(args.env_id)
    if args.policy == "random":
        return RandomPolicy(env.action_space, args.seed), "uniform random", None
    if args.policy in ("optimal", "expert"):
        if spec.expert is None:
            reference = spec.references(env.unwrapped)
            raise BenchError(f"{args.env_id} has no built-in optimal/expert policy to roll out; its reference score "
                             f"{reference.optimal:.2f} is not a policy here ({reference.source})")
        return spec.expert(env.unwrapped), args.policy, None
    path = Path(args.policy)
    if not path.exists():
        raise BenchError(f"--policy must be random, optimal, a policy file or a run directory; {path} does not exist")
    lifetime = args.policy_lifetime or policies.run_policy_lifetime(path) or "rollout"  # a run: as it was scored
    return (policies.load_policy(path, args.env_id, env, args.act_timeout, args.memory_mb, lifetime,
                                 args.unsafe_sandbox, policies.run_episodes_per_worker(path)), str(path),
            policies.policy_variant(path, args.env_id))


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
        policy, label, variant = _policy(args, env)
        with Progress(len(seeds), f"rollout {args.env_id}", unit="episode") as progress:
            episodes = run_episodes(args.env_id, policy, seeds, kwargs, on_episode_end=progress.advance,
                                    variant=variant)
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
                          "success_rate": episodes.success_rate,
                          "reference": {"random": reference.random, "optimal": reference.optimal}}))
        return 0
    print(f"{args.env_id} {kwargs or ''} policy={label}: {len(seeds)} episodes, seeds {seeds[0]}..{seeds[-1]}")
    _print_episodes(episodes, args.show_episodes)
    success = "" if episodes.success_rate is None else f", success rate {episodes.success_rate:.2f}"
    print(f"mean return {episodes.mean_text()}{success}, {episodes.env_steps} env steps")
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


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `promptpo-bench sweep` (every one can also be a key of the sweep file)."""
    parser.add_argument("sweep_file", nargs="?", help="a TOML file with the same keys as the flags (flags win)")
    parser.add_argument("--algos", help="algorithm files to run, e.g. ppo,dqn,promptpo (algorithms/NAME.py)")
    parser.add_argument("--tasks", help="task ids, e.g. NoiseWorld-Board0-v0,NoiseWorld-Board1-v0")
    parser.add_argument("--seeds", help="seeds, e.g. 1-5 or 1,3,7")
    parser.add_argument("--budget", help="environment steps per run: N for every algorithm, or ALGO=N pairs "
                        "(ppo=1000000,promptpo=50000); maps to --total-timesteps (baselines) / --max-env-steps "
                        "(promptpo); default: each algorithm's own")
    parser.add_argument("--args", action="append", metavar="ALGO='FLAGS'",
                        help="extra flags of one algorithm, repeatable: --args promptpo='--llm-model gpt-4o-mini'")
    parser.add_argument("--configs", action="append", metavar="ALGO:NAME='FLAGS'",
                        help="a tuning sweep: named configurations of one algorithm, repeatable (--configs "
                        "ppo:default='' --configs ppo:ent-0.05='--ent-coef 0.05'); each runs on every task and seed "
                        "in OUT/{env_id}__{algo}-{NAME}__{seed}, and the summary picks the best mean score")
    parser.add_argument("--out", help="sweep directory; each run in OUT/{env_id}__{algo}__{seed} (default runs/sweep)")
    parser.add_argument("--backend", choices=("local", "ray"), help="local process pool (default) or Ray tasks")
    parser.add_argument("-j", "--jobs", type=int, help="runs at once on the local backend / CPUs of a local Ray "
                        "instance (default: cores)")
    parser.add_argument("--ray-address", help="an existing Ray cluster (e.g. auto, or HEAD_IP:6379); default: start "
                        "a Ray instance on this machine, loopback only")
    parser.add_argument("--cpus-per-run", type=float, help="Ray CPUs each run asks for (default 1)")
    parser.add_argument("--gpus-per-run", type=float, help="Ray GPUs each run asks for (default 0)")
    parser.add_argument("--max-concurrent-llm-runs", type=int, metavar="K",
                        help="at most K LLM-using runs at once per endpoint (Ray: a custom resource per endpoint)")
    parser.add_argument("--max-retries", type=int, help="Ray retries of a run whose worker or node died (default 3); "
                        "a run that fails by itself is never retried within a sweep")
    parser.add_argument("--track", action="store_true", default=None, help="log every run to W&B, grouped")
    parser.add_argument("--wandb-group", help="W&B group of the runs (default: the name of the sweep directory)")
    parser.add_argument("--wandb-project-name", help="W&B project (default: each algorithm's)")
    parser.add_argument("--submit", action="store_true", default=None,
                        help="send every finished run through `promptpo-bench submit`")
    parser.add_argument("--leaderboard", help="leaderboard directory for --submit")
    parser.add_argument("--algorithms-dir", help="where the algorithm files are (default: ./algorithms, the "
                        "checkout the sweep is started in); each file may declare SWEEP_TRAITS (budget flag, LLM, "
                        "resumable)")
    parser.add_argument("--dry-run", action="store_true", help="print each run's state and command, run nothing")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep's grid with its backend (skipping finished runs), print its summary, and submit if asked."""
    options = sweep.load_sweep_file(args.sweep_file) if args.sweep_file else {}
    if args.algos is not None:  # a narrower --algos than the file's: its budget and args of the others do not apply
        chosen = set(sweep.parse_list(args.algos, "algorithms")) | {"default"}
        for key in ("budget", "args", "configs"):
            if isinstance(options.get(key), dict):
                options[key] = {algo: value for algo, value in options[key].items() if algo in chosen}
    flags = {k: v for k, v in vars(args).items() if k not in ("sweep_file", "dry_run", "command", "func")}
    options.update({k: v for k, v in flags.items() if v is not None})
    grid = sweep.build_sweep(options)
    runs = grid.runs()
    states = {run: sweep.state(run) for run in runs}
    if args.dry_run:
        for run in runs:
            command = [sys.executable, str(run.script), "--resume", str(run.run_dir)] if states[run] == "resume" \
                else run.command()
            print(f"{states[run]:8} {shlex.join(command)}")
        return 0
    todo = [run for run in runs if states[run] != "finished"]
    grid.out.mkdir(parents=True, exist_ok=True)
    lock = open(grid.out / ".sweep.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BenchError(f"another sweep is running in {grid.out}") from None
    counts = Counter(states.values())
    methods = len({run.method for run in runs})
    kind = "configurations" if grid.configs else "algorithms"
    print(f"[sweep] {len(runs)} runs ({methods} {kind} x {len(grid.tasks)} tasks x {len(grid.seeds)} seeds) in "
          f"{grid.out}: {counts['finished']} finished (skipped), "
          f"{counts['resume']} to resume, {counts['restart']} to restart, {counts['new']} new; backend "
          f"{grid.backend}" + (f" at {grid.ray_address}" if grid.ray_address else ""), flush=True)
    progress = SweepProgress(len(todo), running_label="running" if grid.backend == "local" else "in Ray")
    t0 = time.time()
    try:
        outcomes = BACKENDS[grid.backend](grid, todo, progress) if todo else []
    except KeyboardInterrupt:
        return 130
    finally:
        progress.close()
    failed = [o for o in outcomes if not o.ok]
    print(f"[sweep] {len(outcomes) - len(failed)} runs finished, {len(failed)} failed, "
          f"{counts['finished']} skipped, in {time.time() - t0:.1f}s")
    rows = sweep.summarize(runs)
    print()
    print(sweep.format_summary(rows, len(grid.seeds)))
    picks = sweep.pick_configs(rows, len(grid.seeds))
    if picks:
        print(sweep.format_picks(picks))
    atomic_write_json(grid.out / "summary.json", {"rows": rows, "picks": picks,
                                                  "wall_time_s": round(time.time() - t0, 3),
                                                  "backend": grid.backend, "ran": len(outcomes),
                                                  "failed": [o.run.name for o in failed],
                                                  "skipped": counts["finished"]})
    submit_failures = sweep.submit(runs, grid.out, grid.leaderboard) if grid.submit else 0
    return 1 if failed or submit_failures else 0


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
                      help="the board's score instead of return: normalised (random = 0, optimal = 1) where the "
                           "task has reference scores, the success rate where it is scored by success (Meta-World)")
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
    _add_sweep_arguments(sweep_parser)
    sweep_parser.set_defaults(func=cmd_sweep)
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
