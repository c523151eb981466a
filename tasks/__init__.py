"""Task families of the suite; importing this package registers every task."""

from . import noiseworld  # noqa: F401
from . import mujoco  # noqa: F401
from . import pointmaze  # noqa: F401
from . import metaworld  # noqa: F401
from . import realworld  # noqa: F401
from . import minigrid  # noqa: F401
