"""The module path one of the paper's PointMaze policies imports its observation class from."""

from . import PointMazeLargeDiverseGV3Observation  # noqa: F401
