"""A non-editable install, used from another directory, has every task, description and data file."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import gymnasium as gym, promptpo_bench, sys
assert promptpo_bench.__file__.startswith(sys.argv[1]), promptpo_bench.__file__
for spec in promptpo_bench.specs():
    env = gym.make(spec.id); env.reset(seed=0); env.step(env.action_space.sample())
    vec = gym.make_vec(spec.id, num_envs=2); vec.reset(seed=0)
    assert "class Observation" in promptpo_bench.describe(spec.id)
    promptpo_bench.reference_scores(spec.id)
print(len(promptpo_bench.specs()), "tasks ok")
"""


def test_wheel_install_works_from_another_directory(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("promptpo_bench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("promptpo_bench/tasks/noiseworld/boards.json", "promptpo_bench/descriptions/noiseworld.py",
                   "promptpo_bench/tasks/noiseworld/env.py", "promptpo_bench/cli.py"):
        assert needed in names
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", CHECK, str(target)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(__import__('promptpo_bench').specs())} tasks ok" in result.stdout
