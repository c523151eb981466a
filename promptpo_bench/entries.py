"""The leaderboard's layout on disk, which `submit` writes and `leaderboard` reads.

A board is a folder (default `leaderboard/`) whose `entries/<task>/<entry>/` folders each hold a verified run:
`record.json`, its policy file and `verification.json`. `<task>` is `task_key(env_id, env_kwargs)`; `<entry>` is
`<algorithm>__<N>steps__seed<seed>__<sha12 of the policy>`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DEFAULT_BOARD = Path("leaderboard")


def task_key(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """The board's name of a task: the env id, plus its kwargs when there are any (a directory name)."""
    if not env_kwargs:
        return env_id
    text = ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(env_kwargs.items()))
    return f"{env_id}__{re.sub(r'[^A-Za-z0-9=.,_+-]', '', text)}"


def entry_dir(board: str | Path, record: dict[str, Any]) -> Path:
    """Where the entry of a run with this record goes on `board`."""
    return Path(board, "entries", task_key(record["env_id"], record["env_kwargs"]),
                f"{record['algorithm']}__{record['totals']['env_steps']}steps__seed{record['seed']}__"
                f"{record['policy']['sha256'][:12]}")


def entries(board: str | Path) -> list[Path]:
    """Every entry directory of a leaderboard, sorted."""
    return sorted(p.parent for p in Path(board, "entries").glob("*/*/verification.json"))


def find_duplicate(board: str | Path, record: dict[str, Any]) -> Path | None:
    """The entry of the same policy (sha256) on the same task (env id and kwargs), if the board has one."""
    key = task_key(record["env_id"], record["env_kwargs"])
    for entry in entries(board):
        other = json.loads((entry / "record.json").read_text())
        if (task_key(other["env_id"], other["env_kwargs"]) == key
                and other["policy"]["sha256"] == record["policy"]["sha256"]):
            return entry
    return None
