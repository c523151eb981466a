"""A caller of the sandbox as a process of its own, for the set-ups a test cannot give this process: a dropped
capability, another uid, a niceness, a umask, a descriptor limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path


def run_caller(folder: Path, source: str, preexec_fn: Callable[[], object] | None = None,
               prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """`source` (dedented) run as folder/caller.py by this interpreter, after `prefix` (e.g. `unshare ...`), with
    `preexec_fn` run in the child before it starts; its output captured as text."""
    script = folder / "caller.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([*prefix, sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          preexec_fn=preexec_fn)
