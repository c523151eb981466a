"""Import simglucose 0.2.11's simulator modules without its gym-based package `__init__` or setuptools.

simglucose's `__init__` registers a gym (0.x) env, and its modules call `pkg_resources.resource_filename`
at import time, which setuptools >= 81 no longer ships. We bind the package to its directory without
running `__init__`, and while importing give those modules a one-function stand-in built on the standard
library's `importlib.resources`; the stand-in is removed from `sys.modules` afterwards.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from importlib import resources

from ...errors import BenchError

_MODULES = ("patient.t1dpatient", "sensor.cgm", "actuator.pump", "simulation.scenario_gen", "simulation.env")


def _resource_filename(package: str, name: str) -> str:
    return str(resources.files(package).joinpath(name))


def load() -> dict[str, types.ModuleType]:
    """simglucose's patient, sensor, pump, scenario and env modules, by short name ('t1dpatient', ...)."""
    if "simglucose" not in sys.modules:
        spec = importlib.util.find_spec("simglucose")
        if spec is None or not spec.submodule_search_locations:
            raise BenchError("the Glucose tasks need simglucose: pip install 'promptpo-bench[realworld]' "
                             "and pip install --no-deps simglucose==0.2.11 (see the Makefile)")
        package = types.ModuleType("simglucose")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["simglucose"] = package
    stand_in = None
    if importlib.util.find_spec("pkg_resources") is None:
        stand_in = types.ModuleType("pkg_resources")
        stand_in.resource_filename = _resource_filename
        sys.modules["pkg_resources"] = stand_in
    try:
        return {name.rsplit(".", 1)[1]: importlib.import_module(f"simglucose.{name}") for name in _MODULES}
    finally:
        if stand_in is not None and sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]
