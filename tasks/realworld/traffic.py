"""Traffic: 5 autonomous vehicles smoothing a highway on-ramp merge, on SUMO 1.28 (eclipse-sumo + libsumo).

The merge follows Flow's `merge` benchmark that Pan et al. used: a one-lane highway joined by a one-lane
on-ramp at a zipper junction, human drivers on SUMO's Krauss model with Flow's default parameters (their random
dawdling makes stop-and-go waves at the merge), 25% of the highway inflow autonomous; the first 5 autonomous
vehicles on the approach are controlled by bounded accelerations and handed back to SUMO's driver after the merge.

An action accelerates a controlled vehicle's cruise speed, not the vehicle itself. At cruise speed 30 (the limit,
where control starts) SUMO's human driver drives the car, so zero acceleration drives exactly like the humans;
below it the car drives at its cruise speed (without dawdling) unless SUMO's safe-speed check or the merge's
right of way brakes it, and regains the cruise speed at up to 1.5 m/s^2 once it may. Flow applies v + a*dt to
the current speed instead, so under zero acceleration a car braked by SUMO kept its braked speed for good and
jammed the road (README, "Real-world tasks"). The network is built by SUMO's own `netconvert` from the node/edge
lists below, once per machine, into a cache folder. A step reads SUMO through subscriptions: their values
come with the step's own answer, so over TraCI a step costs a few socket round trips instead of one per getter.

libsumo runs one simulation per process, so the first env of a process drives libsumo and any further
env in the same process talks to its own `sumo` over TraCI (same API, slower). For many fast copies
use `gym.make_vec(ENV_ID, num_envs=K, vectorization_mode="async")`: one process, one libsumo each;
`run_episodes` gives each env of a rollout a process of its own (`TaskSpec.env_per_process`).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path

import gymnasium as gym
import numpy as np

from ...errors import BenchError

NUM_AVS = 5
MAX_ACCEL = 1.5  # m/s^2, both ways (Flow's merge)
STEP_SECONDS = 0.5
HORIZON = 750  # steps of 0.5 s after the warm-up
WARMUP_STEPS = 200  # 100 s of human-only control before the agent acts, so the road is full
TARGET_SPEED = 25.0  # m/s, the desired velocity of the reward
SPEED_LIMIT = 30.0  # m/s
MAX_GAP = 1000.0  # gap reported when there is no leader / follower (m)
# TraCI's variable ids (traci.constants): TRACI_ID_LIST, LAST_STEP_VEHICLE_ID_LIST, VAR_DEPARTED_VEHICLES_IDS,
# VAR_SPEED, VAR_LANEPOSITION, VAR_LEADER, VAR_FOLLOWER
ID_LIST, EDGE_VEHICLES, DEPARTED, SPEED, POSITION, LEADER, FOLLOWER = 0x00, 0x12, 0x74, 0x40, 0x56, 0x68, 0x78
SLOT = 8  # observation values per controlled vehicle
HIGHWAY_INFLOW, MERGE_INFLOW, AV_SHARE = 2000, 100, 0.25  # vehicles/hour (Flow's merge) and autonomous share (Flow's merge1)
# Flow's SumoCarFollowingParams defaults (flow/core/params.py) on SUMO's default Krauss model, whose driver
# imperfection sigma makes the humans dawdle at random: the source of the merge's stop-and-go waves
HUMAN = {"carFollowModel": "Krauss", "accel": 2.6, "decel": 4.5, "sigma": 0.5, "tau": 1.0, "minGap": 2.5,
         "maxSpeed": SPEED_LIMIT, "speedFactor": 1.0, "speedDev": 0.1}

NODES = """<nodes>
  <node id="inflow_highway" x="0" y="0"/>
  <node id="merge" x="600" y="0" type="zipper"/>
  <node id="outflow" x="800" y="0"/>
  <node id="inflow_merge" x="459" y="-141"/>
</nodes>
"""
EDGES = f"""<edges>
  <edge id="highway" from="inflow_highway" to="merge" numLanes="1" speed="{SPEED_LIMIT}" priority="2"/>
  <edge id="after_merge" from="merge" to="outflow" numLanes="1" speed="{SPEED_LIMIT}" priority="2"/>
  <edge id="on_ramp" from="inflow_merge" to="merge" numLanes="1" speed="{SPEED_LIMIT}" priority="1"/>
</edges>
"""
HUMAN_ATTRS = " ".join(f'{k}="{v}"' for k, v in HUMAN.items())
ROUTES = f"""<routes>
  <vType id="human" {HUMAN_ATTRS} length="5"/>
  <vType id="av" {HUMAN_ATTRS} length="5" color="1,0,0"/>
  <route id="main" edges="highway after_merge"/>
  <route id="ramp" edges="on_ramp after_merge"/>
  <flow id="human_main" type="human" route="main" probability="{HIGHWAY_INFLOW * (1 - AV_SHARE) / 3600:.6f}" departSpeed="desired" departLane="free" begin="0" end="86400"/>
  <flow id="av_main" type="av" route="main" probability="{HIGHWAY_INFLOW * AV_SHARE / 3600:.6f}" departSpeed="desired" departLane="free" begin="0" end="86400"/>
  <flow id="human_merge" type="human" route="ramp" probability="{MERGE_INFLOW / 3600:.6f}" departSpeed="desired" departLane="free" begin="0" end="86400"/>
</routes>
"""


def network_dir() -> Path:
    """The folder holding merge.net.xml and merge.rou.xml, built with netconvert on first use."""
    import sumo

    key = hashlib.sha256((NODES + EDGES + ROUTES + sumo.__file__).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"promptpo-bench-merge-{key}"
    if (folder / "merge.net.xml").exists():
        return folder
    work = Path(tempfile.mkdtemp(prefix="promptpo-bench-merge-"))
    (work / "merge.nod.xml").write_text(NODES)
    (work / "merge.edg.xml").write_text(EDGES)
    (work / "merge.rou.xml").write_text(ROUTES)
    netconvert = Path(sumo.SUMO_HOME) / "bin" / "netconvert"
    subprocess.run([str(netconvert), "--node-files", str(work / "merge.nod.xml"), "--edge-files", str(work / "merge.edg.xml"),
                    "--output-file", str(work / "merge.net.xml"), "--no-turnarounds", "true", "--no-warnings", "true"],
                   check=True, capture_output=True)
    try:
        os.rename(work, folder)  # atomic: a concurrent builder's identical folder wins
    except OSError:
        pass
    return folder if (folder / "merge.net.xml").exists() else work


_libsumo_owner: list[weakref.ref] = []  # the env of this process that drives libsumo, if any (a dead one frees it)
_labels = itertools.count()  # TraCI connection labels
_libsumo_lock = threading.Lock()  # rollouts of several envs may start side by side in threads (PromptPO)


def _sumo_args(folder: Path, seed: int) -> list[str]:
    return ["-n", str(folder / "merge.net.xml"), "-r", str(folder / "merge.rou.xml"), "--step-length", str(STEP_SECONDS),
            "--seed", str(seed), "--no-step-log", "true", "--no-warnings", "true", "--collision.action", "warn",
            "--time-to-teleport", "-1", "--default.speeddev", "0"]


class TrafficMergeEnv(gym.Env):
    """The highway merge; each reset seed fixes SUMO's random insertions of the episode.

    Observation (float32, 5 * 8): per controlled autonomous vehicle (oldest in the network first; absent
    slots are all zeros): present flag, position on the approach (m; the merge is at 600 m), speed (m/s), leader speed, gap to
    the leader (m), follower speed, gap to the follower (1000 m when none), cruise speed. Action: 5 accelerations of the
    cruise speeds in [-1.5, 1.5] m/s^2 (one per slot; ignored for absent slots). Reward: see `step_reward`.
    """

    metadata = {"render_modes": []}

    def __init__(self, horizon: int = HORIZON, warmup_steps: int = WARMUP_STEPS):
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.horizon, self.warmup_steps = horizon, warmup_steps
        self.observation_space = gym.spaces.Box(0.0, MAX_GAP, (NUM_AVS * SLOT,), np.float32)
        self.action_space = gym.spaces.Box(-MAX_ACCEL, MAX_ACCEL, (NUM_AVS,), np.float32)
        self._sumo = None
        self._controlled: list[str] = []
        self._cruise: dict[str, float] = {}  # cruise speed of each controlled vehicle (m/s)
        self._vehicles: dict[str, dict] = {}  # subscribed values after the last step, per vehicle ("": the id list)
        self._ids: tuple[str, ...] = ()  # the vehicles in the network after the last step, in SUMO's order
        self._highway: tuple[str, ...] = ()  # those of them on the highway before the merge
        self._t = 0

    def _start(self, seed: int) -> None:
        folder = network_dir()
        if self._sumo is not None:
            self._sumo.load(_sumo_args(folder, seed))
            return
        try:
            import libsumo
            import traci
            import sumo
        except ImportError:
            raise BenchError("the Traffic tasks need SUMO: pip install 'promptpo-bench[realworld]'") from None
        with _libsumo_lock:
            if not _libsumo_owner or _libsumo_owner[0]() is None:
                if _libsumo_owner:  # its env was dropped without close(): take its simulation over
                    libsumo.load(_sumo_args(folder, seed))
                else:
                    libsumo.start(["sumo", *_sumo_args(folder, seed)])
                _libsumo_owner[:] = [weakref.ref(self)]
                self._sumo = libsumo
                return
        label = f"promptpo-bench-{next(_labels)}"  # libsumo is taken in this process: a sumo of our own over TraCI
        port = traci.getFreeSocketPort()
        process = subprocess.Popen([str(Path(sumo.SUMO_HOME) / "bin" / "sumo"), *_sumo_args(folder, seed),
                                    "--remote-port", str(port)])
        with contextlib.redirect_stdout(io.StringIO()):  # traci prints each retry; SUMO is up within ~0.1 s
            self._sumo = traci.connect(port, numRetries=600, proc=process, waitBetweenRetries=0.02, label=label)

    def _subscribe(self) -> None:
        """Have SUMO send what a step needs with the step's own answer (over TraCI: no round trip per getter): the
        vehicles in the network, those on the highway, those that entered, and each vehicle's speed."""
        self._sumo.vehicle.subscribe("", [ID_LIST])
        self._sumo.edge.subscribe("highway", [EDGE_VEHICLES])
        self._sumo.simulation.subscribe([DEPARTED])
        for v in self._sumo.vehicle.getIDList():
            self._sumo.vehicle.subscribe(v, [SPEED])

    def _subscribe_controlled(self, v: str) -> None:
        """A controlled vehicle's position, leader and follower (within MAX_GAP) come with each step too."""
        gap = MAX_GAP if self._sumo is sys.modules.get("libsumo") else ("d", MAX_GAP)  # TraCI types its parameters
        self._sumo.vehicle.subscribe(v, [SPEED, POSITION, LEADER, FOLLOWER], parameters={LEADER: gap, FOLLOWER: gap})
        self._vehicles[v] = self._sumo.vehicle.getSubscriptionResults(v)  # the values now, sent with the answer

    def _read_vehicles(self) -> None:
        """Read the subscribed values of the step just simulated, subscribing the vehicles that entered in it first
        (a vehicle's subscription ends when it leaves; an earlier episode's may linger after load)."""
        for v in self._sumo.simulation.getSubscriptionResults()[DEPARTED]:
            self._sumo.vehicle.subscribe(v, [SPEED])
        self._vehicles = dict(self._sumo.vehicle.getAllSubscriptionResults())  # our copy: TraCI reuses its dict
        self._ids = self._vehicles[""][ID_LIST]  # in SUMO's order
        self._highway = self._sumo.edge.getSubscriptionResults("highway")[EDGE_VEHICLES]

    def _update_controlled(self) -> None:
        """Control the 5 autonomous vehicles that entered the approach first; hand them back to SUMO at the merge."""
        vehicle = self._sumo.vehicle
        present = set(self._ids)
        on_approach = set(self._highway)
        for v in self._controlled:
            if v not in on_approach and v in present:
                vehicle.setSpeed(v, -1.0)  # SUMO's own driver again
                vehicle.setSpeedMode(v, 31)
                vehicle.unsubscribe(v)  # a new subscription would add to the old one's variables
                vehicle.subscribe(v, [SPEED])
        self._controlled = [v for v in self._controlled if v in on_approach]
        self._cruise = {v: self._cruise[v] for v in self._controlled}
        for v in sorted((v for v in on_approach if v.startswith("av_main") and v not in self._controlled),
                        key=lambda v: int(v.rsplit(".", 1)[1])):
            if len(self._controlled) == NUM_AVS:
                break
            self._controlled.append(v)
            self._cruise[v] = SPEED_LIMIT  # its driver's desired speed: zero acceleration keeps it driving like a human
            vehicle.setSpeedMode(v, 9)  # safe speed + right of way at the merge (Flow: 1, no right of way)
            self._subscribe_controlled(v)

    def _observation(self) -> np.ndarray:
        obs = np.zeros((NUM_AVS, SLOT), dtype=np.float32)
        state = self._vehicles
        for i, v in enumerate(self._controlled):
            leader, follower = state[v][LEADER], state[v][FOLLOWER]  # ("", -1) when there is none
            lead_speed, lead_gap = (state[leader[0]][SPEED], leader[1]) if leader and leader[0] else (SPEED_LIMIT, MAX_GAP)
            follow_speed, follow_gap = ((state[follower[0]][SPEED], follower[1]) if follower and follower[0]
                                        else (0.0, MAX_GAP))
            obs[i] = (1.0, state[v][POSITION], state[v][SPEED], lead_speed, min(max(lead_gap, 0.0), MAX_GAP),
                      follow_speed, min(max(follow_gap, 0.0), MAX_GAP), self._cruise[v])
        return obs.ravel()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1)) if seed is None else int(seed)
        self._start(episode_seed)
        self._controlled, self._cruise = [], {}
        for _ in range(self.warmup_steps):
            self._sumo.simulationStep()
        self._subscribe()
        self._read_vehicles()
        self._update_controlled()
        self._t = 0
        return self._observation(), {}

    def step(self, action):
        if self._sumo is None:
            raise RuntimeError("call reset() before step()")
        accel = np.clip(np.asarray(action, dtype=np.float64).reshape(NUM_AVS), -MAX_ACCEL, MAX_ACCEL)
        vehicle = self._sumo.vehicle
        for v, a in zip(self._controlled, accel.tolist()):  # a forced brake lowers the speed, never the cruise speed
            self._cruise[v] = min(max(self._cruise[v] + a * STEP_SECONDS, 0.0), SPEED_LIMIT)
            # at the speed limit the car is left to SUMO's human driver; below it, it drives at its cruise speed
            vehicle.setSpeed(v, -1.0 if self._cruise[v] >= SPEED_LIMIT else
                             min(self._cruise[v], self._vehicles[v][SPEED] + MAX_ACCEL * STEP_SECONDS))
        self._sumo.simulationStep()
        self._read_vehicles()
        self._update_controlled()
        obs = self._observation()
        speeds = np.array([self._vehicles[v][SPEED] for v in self._ids], dtype=np.float64)
        self._t += 1
        info = {"speeds": tuple(speeds.tolist()),  # every vehicle's speed; a tuple, so vector envs can stack it
                "mean_speed": float(speeds.mean()) if len(speeds) else 0.0}
        return obs, step_reward(speeds, obs, accel), False, self._t >= self.horizon, info

    def close(self):
        if self._sumo is not None:
            with _libsumo_lock:
                self._sumo.close()
                if _libsumo_owner and _libsumo_owner[0]() is self:
                    _libsumo_owner.clear()
            self._sumo = None


def step_reward(speeds: np.ndarray, obs: np.ndarray, accel: np.ndarray) -> float:
    """Flow's merge reward (desired velocity of every vehicle plus 0.1 x the autonomous vehicles' short-headway
    penalty) minus 0.05 x the mean absolute commanded acceleration of the controlled vehicles present."""
    slots = obs.reshape(NUM_AVS, SLOT).astype(np.float64)
    desired = 0.0
    if len(speeds):
        best = np.sqrt(len(speeds)) * TARGET_SPEED
        desired = max(best - float(np.linalg.norm(speeds - TARGET_SPEED)), 0.0) / best
    present = slots[:, 0] > 0.5
    headway = 0.0
    for speed, gap in zip(slots[present, 2], slots[present, 4]):
        if speed > 0 and gap < MAX_GAP:
            headway += min(gap / speed - 1.0, 0.0)  # time headway under 1 s is penalised
    effort = float(np.abs(accel[present]).mean()) if present.any() else 0.0
    return desired + 0.1 * headway - 0.05 * effort


class DesiredSpeed:
    """The hand-written expert: steer every cruise speed to the reward's desired 25 m/s as fast as allowed, so each
    autonomous car leads the humans behind it at that speed instead of their 30 (speed harmonisation; it beats zero
    acceleration, i.e. SUMO's human driver, on every seed 0-9: docs, "Real-world tasks")."""

    def act(self, obs):
        accel = np.clip((TARGET_SPEED - obs.cruise_speed) / STEP_SECONDS, -MAX_ACCEL, MAX_ACCEL)
        return np.where(obs.present, accel, 0.0)


# The same class as a policy.py (the LLM answer contract), so a reference run scores it in the sandbox like any code
# policy; in-process rollouts run it through descriptions.ObservationPolicy.
EXPERT_CODE = (f"import numpy as np\n\nTARGET_SPEED, STEP_SECONDS, MAX_ACCEL = {TARGET_SPEED!r}, {STEP_SECONDS!r}, "
               f"{MAX_ACCEL!r}\n\n\n" + inspect.getsource(DesiredSpeed).replace("class DesiredSpeed:", "class Policy:", 1))
