"""Live progress of long commands: one tqdm bar on stderr, drawn only when stderr is a terminal.

Off a terminal (CI, a log file, a sweep's run) nothing is drawn and the commands print what they always printed:
one line per evaluation, round or run. `Progress.line` prints such a line without tearing a live bar.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm

REDRAW_S = 0.25  # `Progress.due` says yes at most this often (baselines ask every vector step)


class Progress:
    """A bar of `total` units (None: a counter) with named fields after it; every method is a no-op when off."""

    def __init__(self, total: float | None, desc: str, unit: str = "it", stream: TextIO | None = None,
                 unit_scale: bool = False):
        stream = stream or sys.stderr
        self.enabled = stream.isatty()
        self.fields: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._last = 0.0
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=stream, dynamic_ncols=True,
                        leave=False, smoothing=0.1) if self.enabled else None

    def advance(self, n: float = 1, **fields: Any) -> None:
        """Move `n` units on and set fields (thread-safe)."""
        if self.bar is not None:
            with self._lock:
                self.fields.update(fields)
                self.bar.set_postfix(self.fields, refresh=False)
                self.bar.update(n)

    def due(self) -> bool:
        """Whether REDRAW_S seconds passed since it last said so (always False when off): a loop asks this every
        step and computes its fields only when it is time to show them."""
        if self.bar is None or time.monotonic() - self._last < REDRAW_S:
            return False
        self._last = time.monotonic()
        return True

    def move_to(self, position: float, **fields: Any) -> None:
        """Set the position and fields."""
        if self.bar is not None:
            self.advance(position - self.bar.n, **fields)

    def add(self, **counts: int) -> None:
        """Add to counter fields (e.g. failed=1) without moving the bar."""
        if self.bar is not None:
            with self._lock:
                for name, n in counts.items():
                    self.fields[name] = self.fields.get(name, 0) + n
                self.bar.set_postfix(self.fields)

    def set(self, desc: str | None = None, **fields: Any) -> None:
        """Change the description and/or fields."""
        if self.bar is not None:
            with self._lock:
                if desc is not None:
                    self.bar.set_description(desc, refresh=False)
                self.fields.update(fields)
                self.bar.set_postfix(self.fields)

    def restart(self, total: float | None, desc: str | None = None, **fields: Any) -> None:
        """Start again from 0 with a fresh clock (e.g. the next round), keeping the fields not given."""
        if self.bar is not None:
            with self._lock:
                self.bar.reset(total=total)
                if desc is not None:
                    self.bar.set_description(desc, refresh=False)
                self.fields.update(fields)
                self.bar.set_postfix(self.fields)

    def line(self, text: str, file: TextIO | None = None) -> None:
        """Print one line (stdout by default) above the bar; a plain print when the bar is off."""
        if self.bar is None:
            print(text, file=file, flush=True)
        else:
            tqdm.write(text, file=file or sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
