"""The paper's own policies on our tasks: each file of `representitive_policies/` in a local clone of the paper's
reference repository (github.com/Stephanehk/PromptPO), run unchanged in our sandbox on held-out seeds.

The policies stay in your clone (the repository has no licence; nothing of it is copied here). Our adapter,
benchmarks/paper_adapter/, gives each policy the observation object it was written for, under the import path
it uses (`direct_policy_learning.observations`), built from the observation array of the task's default (the
paper's) description variant, the one PromptPO's policies get (MuJoCo: the env's array, then qpos, qvel, dt and the
task's positions). A policy that needs something that observation does not carry fails, and the table says exactly
what. With --reference-env the
NoiseWorld policies also run in the reference's own code from the clone (in a separate process, the
reference's way: in-process, no sandbox, one Policy() per rollout): NoiseWorld in the reference's env on the
same seeds; PointMaze, Meta-World and MuJoCo through the reference's own harness, env and reward functions
(unseeded resets), and the two means are compared (z: their difference over its standard error).

Reproduce:
    git clone https://github.com/Stephanehk/PromptPO /tmp/PromptPO
    .venv/bin/python benchmarks/paper_policies.py --reference-checkout /tmp/PromptPO [--reference-env]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from promptpo_bench import registry
from promptpo_bench.rollout import RolloutFailure, heldout_seeds, run_episodes
from promptpo_bench.sandbox import Limits, PolicyFailure, SandboxedPolicy
from promptpo_bench.statistics import ci95

ADAPTER = Path(__file__).resolve().parent / "paper_adapter"
# folder of representitive_policies/ -> (our task, the adapter's observation class)
TASKS = {
    **{f"noise_world_board_{b}": (f"NoiseWorld-Board{b}-v0", "NoiseWorldObservation") for b in range(7)},
    "point_maze_large_v3": ("PointMaze-Large-v0", "PointMazeLargeV3Observation"),
    "point_maze_large_diverse_g_v3": ("PointMaze-LargeDiverseG-v0", "PointMazeLargeDiverseGV3Observation"),
    "button_press_v3": ("MetaWorld-ButtonPress-v0", "MetaWorldButtonPressV3Observation"),
    "pick_place_v3": ("MetaWorld-PickPlace-v0", "MetaWorldPickPlaceV3Observation"),
    "door_open_v3": ("MetaWorld-DoorOpen-v0", "MetaWorldDoorOpenV3Observation"),
    "drawer_open_v3": ("MetaWorld-DrawerOpen-v0", "MetaWorldDrawerOpenV3Observation"),
    "ant_v5": ("Ant-v5", "MujocoAntObservation"),
    "halfcheetah_v5": ("HalfCheetah-v5", "MujocoHalfCheetahObservation"),
    "hopper_v5": ("Hopper-v5", "MujocoHopperObservation"),
    "swimmer_v5": ("Swimmer-v5", "MujocoSwimmerObservation"),
    "reacher_v5": ("Reacher-v5", "MujocoReacherObservation"),
    "inverted_double_pendulum_v5": ("InvertedDoublePendulum-v5", "MujocoInvertedDoublePendulumObservation"),
    "pandemic": ("Pandemic-Town-v0", "RawObservation"),
    "traffic": ("Traffic-Merge-v0", "RawObservation"),
    "glucose": ("Glucose-Adult-v0", "RawObservation"),
}
# folders whose policies import their observation class from a submodule of direct_policy_learning.observations
SUBMODULES = {"point_maze_large_diverse_g_v3": "point_maze_large_diverse_g_v3_observation"}
# the tasks --reference-env also runs in the reference's own code: NoiseWorld on our seeds, the others through the
# reference's harness (its env and reward functions, unseeded resets; Meta-World ranks by success there)
REFERENCE_ENVS = [name for name in TASKS if name not in ("pandemic", "traffic", "glucose")]


def rounds(name: str) -> str:
    """`round k/N` from the file name: the reference writes `round_<k>_...` and `_nr<N>` when N != 20."""
    k = re.search(r"round_(\d+)_", name)
    n = re.search(r"_nr(\d+)", name)
    return f"{k.group(1) if k else '?'}/{n.group(1) if n else 20}"


def policy_class(code: str) -> str | None:
    match = re.search(r"^class (\w+Policy)\b", code, re.M)
    return match.group(1) if match else None


def why(failure: dict) -> str:
    """One line: the policy's own error (its last traceback line), e.g. which attribute it needs."""
    lines = (failure.get("traceback") or "").strip().splitlines()
    return f"{failure['kind']}: {lines[-1] if lines else failure['message']}"[:160]


def expose_submodules(folder: Path) -> None:
    """Make each submodule in SUBMODULES a copy of the adapter's one module, written into `folder`: the sandbox copies
    only the observation's own file into the worker, so that file must hold the class itself."""
    import direct_policy_learning.observations as adapter

    for name in SUBMODULES.values():
        (folder / f"{name}.py").write_text(Path(adapter.__file__).read_text())
    adapter.__path__.append(str(folder))


def run_ours(path: Path, seeds: list[int], lifetime: str) -> dict:
    folder = path.parent.name
    env_id, observation = TASKS[folder]
    code = path.read_text()
    env = registry.make(env_id)
    action_space = env.action_space
    env.close()
    variant = registry.default_variant(env_id)  # the paper's information, as PromptPO's default
    row = {"task": env_id, "file": f"{folder}/{path.name}", "rounds": rounds(path.name), "episodes": len(seeds)}
    name = policy_class(code)
    if name is None:
        return {**row, "ran": "no: the file defines no *Policy class"}
    limits = Limits(act_seconds=10.0, episode_seconds=1800.0, load_seconds=60.0, cpu_seconds=3600)
    start = time.perf_counter()
    try:
        module = "direct_policy_learning.observations" + (f".{SUBMODULES[folder]}" if folder in SUBMODULES else "")
        with SandboxedPolicy(code, f"{module}:{observation}", action_space, limits,
                             class_name=name, lifetime=lifetime) as policy:
            episodes = run_episodes(env_id, policy, seeds, variant=variant)
    except PolicyFailure as failure:
        return {**row, "ran": f"no: {why(failure.to_dict())}"}
    except RolloutFailure as error:
        return {**row, "ran": f"no: {why(error.failure.to_dict())}"}
    reference = registry.reference_scores(env_id)
    return {**row, "mean": episodes.mean_return, "ci95": episodes.ci95(), "returns": episodes.returns.tolist(),
            "success_rate": episodes.success_rate, "normalised": registry.normalised(episodes.mean_return, reference),
            "ran": "yes, unchanged", "seconds": time.perf_counter() - start, "variant": variant}


# ---- the reference's own NoiseWorld, run in a child process with the clone importable ------------------------------
REFERENCE_ENV_CHILD = r"""
import json, re, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from direct_policy_learning.no_prior_envs.noise_world_env import NoiseWorldEnv
from direct_policy_learning.observations import NoiseWorldObservation
from direct_policy_learning.env_utils import noise_world_env_names as names
from direct_policy_learning.env_utils import rollout_python_policy as harness
path, seeds, per_episode = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "episode"
env_name = path.split("/")[-2]
namespace = {}
code = open(path).read()
exec(compile(code, path, "exec"), namespace)
Policy = namespace[re.search(r"^class (\w+Policy)\b", code, re.M).group(1)]
policy = Policy()  # the reference: one per rollout
if not env_name.startswith("noise_world"):  # the reference's own harness, env and reward; its resets are unseeded
    env = harness._make_env(env_name, None, None, None, None, None)
    reward = harness._make_gt_reward_set(env_name, 0)
    if per_episode:
        returns = [harness.rollout_python_policy(env_name, env, Policy(), reward, 1)["episode_returns"][0]
                   for _ in seeds]
    else:
        returns = harness.rollout_python_policy(env_name, env, policy, reward, len(seeds))["episode_returns"]
    print(json.dumps([float(r) for r in returns]))
    sys.exit()
env = NoiseWorldEnv(n=names.noise_world_grid_n(env_name), seed=names.noise_world_seed(env_name),
                    prerequisite_pair=names.noise_world_prerequisite_pair(env_name),
                    ensure_all_standard_board_codes=names.noise_world_ensure_full_standard_board_codes(env_name))
returns = []
for seed in seeds:  # the same reset seeds as ours, so the two runs can be compared episode by episode
    policy = Policy() if per_episode else policy
    raw, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs = NoiseWorldObservation()
        obs.fill_from_env(env, raw)
        raw, reward, terminated, truncated, _ = env.step(policy.act(obs))
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
print(json.dumps(returns))
"""


def run_reference_env(checkout: Path, path: Path, seeds: list[int], lifetime: str) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "direct_policy_learning").symlink_to(checkout.resolve())
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the clone's package, not our adapter
        out = subprocess.run([sys.executable, "-c", REFERENCE_ENV_CHILD, tmp, str(path), json.dumps(seeds), lifetime],
                             capture_output=True, text=True, cwd=tmp, env=env)
    if out.returncode != 0:
        raise SystemExit(f"paper_policies.py: the reference environment failed on {path}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-checkout", required=True, type=Path, help="a local clone of Stephanehk/PromptPO")
    parser.add_argument("--episodes", type=int, default=10, help="held-out episodes per policy (NoiseWorld: 10x)")
    parser.add_argument("--only", default="", help="run only files whose path contains one of these comma-separated "
                                                   "texts, e.g. noise_world,point_maze")
    parser.add_argument("--reference-env", action="store_true",
                        help="also run each policy in the reference's own code (see above) and compare")
    parser.add_argument("--lifetime", choices=("rollout", "episode"), default="rollout",
                        help="ours: one Policy() plays all of a policy's episodes in order (the paper's, default) or "
                             "one per episode")
    parser.add_argument("--reference-lifetime", choices=("rollout", "episode"), default="rollout",
                        help="in the reference's code: one Policy() per rollout (the reference's) or per episode, to "
                             "tell a lifetime effect from a task difference")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    folder = args.reference_checkout / "representitive_policies"
    if not folder.is_dir():
        raise SystemExit(f"paper_policies.py: error: {folder} does not exist (clone Stephanehk/PromptPO there)")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ADAPTER), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(ADAPTER))  # the sandbox finds the adapter's module here and copies it into the worker's root
    submodules = tempfile.TemporaryDirectory()
    expose_submodules(Path(submodules.name))
    files = sorted(p for p in folder.glob("*/*.py") if any(text in str(p) for text in args.only.split(",")))
    print(f"{len(files)} policy files from {folder}; one Policy() per {args.lifetime} here, per "
          f"{args.reference_lifetime} in the reference's code", flush=True)
    print("| task | policy file | round/rounds | episodes | mean return ± 95% CI | normalised | ran unchanged |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    for path in files:
        if path.parent.name not in TASKS:
            print(f"| ? | {path.parent.name}/{path.name} | | | | | no: no matching task in the suite |", flush=True)
            continue
        n = args.episodes * (10 if path.parent.name.startswith("noise_world") else 1)
        row = run_ours(path, heldout_seeds(n), args.lifetime)
        if args.reference_env and path.parent.name in REFERENCE_ENVS and "mean" in row:
            theirs = np.array(run_reference_env(args.reference_checkout, path, heldout_seeds(n), args.reference_lifetime))
            row["reference_env"] = {"mean": float(theirs.mean()), "ci95": ci95(theirs), "returns": theirs.tolist()}
            se = np.hypot(np.std(row["returns"], ddof=1), theirs.std(ddof=1)) / np.sqrt(n)
            row["reference_env"]["z"] = float((row["mean"] - theirs.mean()) / se) if se > 0 else 0.0
        rows.append(row)
        score = f"{row['mean']:.2f} ± {row['ci95']:.2f}" if "mean" in row else ""
        if "reference_env" in row:
            ref = row["reference_env"]
            score += f" (reference env: {ref['mean']:.2f} ± {ref['ci95']:.2f}, z = {ref['z']:+.2f})"
        norm = f"{row['normalised']:.3f}" if "normalised" in row and np.isfinite(row["normalised"]) else ""
        print(f"| {row['task']} | {row['file'].split('/')[1]} | {row['rounds']} | {row['episodes']} | {score} | "
              f"{norm} | {row['ran']} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"lifetime": args.lifetime, "reference_lifetime": args.reference_lifetime, "rows": rows}, indent=1))
    print(f"\nheld-out seeds 10^9.. (`heldout_seeds`); normalised: random = 0, optimal/expert = 1. Reproduce: "
          f"{' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
