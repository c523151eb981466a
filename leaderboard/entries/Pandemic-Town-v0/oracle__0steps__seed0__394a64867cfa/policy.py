class Policy:
    """Raise the stage while over 2.05% of the town is infected, lower it under 0.45%."""

    def act(self, obs):
        infected = obs.infected[-1]  # today's proportion infected
        if infected > 0.0205:
            return 2
        return 0 if infected < 0.0045 else 1
