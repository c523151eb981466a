"""W&B set-up, the same for every algorithm and for `submit`: each run's metrics are plotted against
`global_step`, the environment steps (the x axis of ../shared/INTERFACES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start_wandb(project: str, name: str, config: dict[str, Any], entity: str | None = None, group: str | None = None,
                run_dir: Path | None = None, job_type: str | None = None) -> Any:
    """`wandb.init` with every metric stepped by `global_step`; returns the run. `run_dir` also keeps W&B's files
    and the code with the run."""
    import wandb  # the `tracking` extra: imported only when a run is tracked

    run = wandb.init(project=project, entity=entity, group=group, job_type=job_type, name=name, config=config,
                     dir=str(run_dir) if run_dir else None, save_code=run_dir is not None)
    run.define_metric("global_step")
    run.define_metric("*", step_metric="global_step")
    return run
