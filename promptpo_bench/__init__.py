"""promptpo-bench: Gymnasium tasks, rollouts and leaderboard for Prompted Policy Optimization.

Importing the package registers every task of the suite with Gymnasium.
"""

from importlib.metadata import PackageNotFoundError, version

from . import tasks  # noqa: F401  (registers the tasks)
from .registry import TaskSpec, describe, get, make, reference_scores, specs

try:
    __version__ = version("promptpo-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["TaskSpec", "describe", "get", "make", "reference_scores", "specs", "__version__"]
