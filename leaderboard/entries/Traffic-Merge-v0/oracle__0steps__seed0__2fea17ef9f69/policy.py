import numpy as np


class Policy:
    """Cruise at the reward's desired 25 m/s: steer every cruise speed there as fast as allowed."""

    def act(self, obs):
        accel = np.clip((25.0 - obs.cruise_speed) / 0.5, -1.5, 1.5)
        return np.where(obs.present, accel, 0.0)
