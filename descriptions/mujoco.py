"""What an LLM reads about the MuJoCo v5 tasks: observation, actions, reward, termination and horizon, as Python.

One module for the whole family. The `# <context>` parts without a tag are shown for every task; a part tagged
`when="HalfCheetah"` (etc.) only for that task, so the LLM reads the shared base class and its own task's part.
Everything follows Gymnasium's v5 environments with their default kwargs (read off their source): the
observation layouts, the actuators and the reward terms. Tests (tests/test_mujoco.py) check every field against
MuJoCo's own qpos/qvel and every reward function against the environment's reward. It imports nothing but
NumPy, so the sandbox can load it.
"""

# <context>
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Observation:
    """Base class of the observation of every MuJoCo task: named fields read in order from the flat array.

    Units are MuJoCo's: metres, radians, seconds (velocities in m/s and rad/s). A field typed `float` is one
    number; a field typed `np.ndarray` is a float64 block whose shape is given in the class's SHAPES.
    `obs` passed to your policy is an instance of the last subclass below (the task's).
    """

    SHAPES = {}  # shapes of the array fields, per task (a plain class attribute, not a field)

    @classmethod
    def size(cls) -> int:
        """How many numbers of the flat observation this class reads."""
        return sum(math.prod(cls.SHAPES.get(f.name, (1,))) for f in fields(cls))

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float64 array (the task's class, by its size)."""
        values = np.array(array, dtype=np.float64)  # a copy: the policy may keep or change it
        task_class, slices = _layout(cls, len(values))
        return task_class(**{name: values[a:b].reshape(shape) if shape else float(values[a])
                             for name, a, b, shape in slices})


@functools.lru_cache(maxsize=None)
def _layout(cls: type, size: int) -> tuple[type, tuple]:
    """The task's class (found by the observation size when called on the base class) and each field's slice."""
    if cls is Observation:
        matches = [c for c in _descendants(Observation) if c.size() == size]
        if not matches:
            raise ValueError(f"no MuJoCo observation layout has {size} numbers")
        cls = matches[0]
    slices, start = [], 0
    for f in fields(cls):
        shape = cls.SHAPES.get(f.name)
        count = math.prod(shape) if shape else 1
        slices.append((f.name, start, start + count, shape))
        start += count
    return cls, tuple(slices)


def _descendants(cls: type) -> list[type]:
    return [d for sub in cls.__subclasses__() for d in (sub, *_descendants(sub))]


def control_cost(action, weight: float) -> float:
    """weight * sum of squared actions: every task charges for effort this way."""
    return weight * float(np.sum(np.square(np.asarray(action, dtype=np.float64))))
# </context>

# <context when="HalfCheetah">
@dataclass
class HalfCheetahObservation(Observation):
    """HalfCheetah-v5: a planar two-legged "cheetah" (a torso, a back and a front leg of three links each)
    that should run forward along +x. 17 numbers: the joint positions without the torso's x position (8),
    then all joint velocities (9). Joint angles are relative to the parent link; 0 is the standing pose."""

    rootz: float  # vertical displacement of the torso from its starting height (m), about 0 at the start
    rooty: float  # pitch angle of the torso (rad)
    bthigh: float  # back thigh angle (rad)
    bshin: float  # back shin angle (rad)
    bfoot: float  # back foot angle (rad)
    fthigh: float  # front thigh angle (rad)
    fshin: float  # front shin angle (rad)
    ffoot: float  # front foot angle (rad)
    rootx_vel: float  # forward velocity of the torso (m/s): what the reward pays for
    rootz_vel: float  # vertical velocity of the torso (m/s)
    rooty_vel: float  # pitch angular velocity of the torso (rad/s)
    bthigh_vel: float  # (rad/s)
    bshin_vel: float
    bfoot_vel: float
    fthigh_vel: float
    fshin_vel: float
    ffoot_vel: float
# </context>

# <context when="HalfCheetah_state">
@dataclass
class HalfCheetahObservationWithState(HalfCheetahObservation):
    """The 17 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {"qpos": (9,), "qvel": (9,), "main_body_xy": (2,)}

    qpos: np.ndarray  # all joint positions: rootx, rootz, rooty, bthigh, bshin, bfoot, fthigh, fshin, ffoot
    qvel: np.ndarray  # all joint velocities, same order (unclipped)
    dt: float  # seconds per step: 0.05
    main_body_xy: np.ndarray  # (qpos[0], 0.0): the torso's x position, which the reward's forward speed uses
# </context>

# <context when="HalfCheetah">
# Actions: 6 numbers in [-1, 1], torques on (in this order) the joints below; the torque is action * gear.
HALF_CHEETAH_ACTIONS = [  # (joint, gear)
    ("bthigh", 120), ("bshin", 90), ("bfoot", 60), ("fthigh", 120), ("fshin", 60), ("ffoot", 30),
]


def half_cheetah_reward(action, x_before: float, x_after: float) -> float:
    """Reward of one step. x is the torso's x position (m), {x_where}; one step is
    dt = 0.05 s, so (x_after - x_before) / dt is the average forward velocity over the step."""
    forward_reward = 1.0 * (x_after - x_before) / 0.05
    return forward_reward - control_cost(action, 0.1)


# Episode: never terminates; it ends after 1000 steps (the horizon).
# </context>

# <context when="Hopper">
@dataclass
class HopperObservation(Observation):
    """Hopper-v5: a planar one-legged robot (torso, thigh, leg, foot) that should hop forward along +x.
    11 numbers: the joint positions without the torso's x position (5), then the joint velocities (6), each
    velocity clipped to [-10, 10]. Joint angles are relative to the parent link; 0 is the upright pose."""

    rootz: float  # height of the torso (m), about 1.25 when standing
    rooty: float  # pitch angle of the torso (rad), 0 = upright
    thigh_joint: float  # thigh angle (rad)
    leg_joint: float  # leg (knee) angle (rad)
    foot_joint: float  # foot angle (rad)
    rootx_vel: float  # forward velocity of the torso (m/s)
    rootz_vel: float  # vertical velocity of the torso (m/s)
    rooty_vel: float  # pitch angular velocity of the torso (rad/s)
    thigh_joint_vel: float  # (rad/s)
    leg_joint_vel: float
    foot_joint_vel: float
# </context>

# <context when="Hopper_state">
@dataclass
class HopperObservationWithState(HopperObservation):
    """The 11 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {"qpos": (6,), "qvel": (6,)}

    qpos: np.ndarray  # all joint positions: rootx, rootz, rooty, thigh_joint, leg_joint, foot_joint
    qvel: np.ndarray  # all joint velocities, same order, unclipped
    dt: float  # seconds per step: 0.008
    root_x_position: float  # qpos[0]: the torso's x position, which the reward's forward speed uses
# </context>

# <context when="Hopper">
# Actions: 3 numbers in [-1, 1], torques on the joints below (torque = action * gear).
HOPPER_ACTIONS = [("thigh_joint", 200), ("leg_joint", 200), ("foot_joint", 200)]  # (joint, gear)


def hopper_is_healthy(obs: HopperObservation) -> bool:
    """Healthy: torso high and upright enough, and no joint position/velocity out of (-100, 100).
    (The velocity check uses the true, unclipped velocities.)"""
    state = [obs.rooty, obs.thigh_joint, obs.leg_joint, obs.foot_joint, obs.rootx_vel, obs.rootz_vel,
             obs.rooty_vel, obs.thigh_joint_vel, obs.leg_joint_vel, obs.foot_joint_vel]
    return obs.rootz > 0.7 and -0.2 < obs.rooty < 0.2 and all(-100.0 < v < 100.0 for v in state)


def hopper_reward(action, x_before: float, x_after: float, next_obs: HopperObservation) -> float:
    """Reward of one step. x is the torso's x position (m), {x_where}; dt = 0.008 s."""
    forward_reward = 1.0 * (x_after - x_before) / 0.008
    healthy_reward = 1.0 if hopper_is_healthy(next_obs) else 0.0
    return forward_reward + healthy_reward - control_cost(action, 1e-3)


# Episode: terminates as soon as the hopper is not healthy (hopper_is_healthy(next_obs) is False); otherwise
# it ends after 1000 steps (the horizon).
# </context>

# <context when="Swimmer">
@dataclass
class SwimmerObservation(Observation):
    """Swimmer-v5: a three-link snake in a viscous fluid, on a plane, that should swim forward along +x.
    8 numbers: the joint positions without the front link's x and y position (3), then all velocities (5)."""

    free_body_rot: float  # heading angle of the front link (rad)
    motor1_rot: float  # angle between the front and the middle link (rad)
    motor2_rot: float  # angle between the middle and the back link (rad)
    slider1_vel: float  # x velocity of the front link (m/s): what the reward pays for
    slider2_vel: float  # y velocity of the front link (m/s)
    free_body_rot_vel: float  # (rad/s)
    motor1_rot_vel: float
    motor2_rot_vel: float
# </context>

# <context when="Swimmer_state">
@dataclass
class SwimmerObservationWithState(SwimmerObservation):
    """The 8 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {"qpos": (5,), "qvel": (5,), "tip_xy": (2,)}

    qpos: np.ndarray  # all joint positions: slider1 (front x), slider2 (front y), free_body_rot, motor1_rot, motor2_rot
    qvel: np.ndarray  # all joint velocities, same order
    dt: float  # seconds per step: 0.04
    tip_xy: np.ndarray  # qpos[0:2]: the front link's (x, y); the reward's forward speed uses x
# </context>

# <context when="Swimmer">
# Actions: 2 numbers in [-1, 1], torques on the two joints below (torque = action * gear).
SWIMMER_ACTIONS = [("motor1_rot", 150), ("motor2_rot", 150)]  # (joint, gear)


def swimmer_reward(action, x_before: float, x_after: float) -> float:
    """Reward of one step. x is the front link's x position (m), {x_where}; dt = 0.04 s."""
    forward_reward = 1.0 * (x_after - x_before) / 0.04
    return forward_reward - control_cost(action, 1e-4)


# Episode: never terminates; it ends after 1000 steps (the horizon).
# </context>

# <context when="Ant">
@dataclass
class AntObservation(Observation):
    """Ant-v5: a 3D quadruped (a torso and four legs of two links each) that should walk forward along +x.
    105 numbers: the joint positions without the torso's x and y position (13), all velocities (14), then
    the external contact forces on the 13 bodies (13 x 6), each number clipped to [-1, 1].
    Leg k points diagonally away from the torso: leg 1 towards (+x, +y), leg 2 (-x, +y), leg 3 (-x, -y),
    leg 4 (+x, -y). Its hip joint swings it about the vertical, its ankle joint bends the lower leg."""

    SHAPES = {"cfrc_ext": (13, 6)}  # shapes of the array fields

    torso_z: float  # height of the torso (m), about 0.75 at the start
    torso_qw: float  # orientation of the torso as a unit quaternion (w, x, y, z); (1, 0, 0, 0) = upright
    torso_qx: float
    torso_qy: float
    torso_qz: float
    hip_1: float  # (rad)
    ankle_1: float
    hip_2: float
    ankle_2: float
    hip_3: float
    ankle_3: float
    hip_4: float
    ankle_4: float
    torso_vx: float  # torso velocity, world frame (m/s)
    torso_vy: float
    torso_vz: float
    torso_wx: float  # torso angular velocity (rad/s)
    torso_wy: float
    torso_wz: float
    hip_1_vel: float  # (rad/s)
    ankle_1_vel: float
    hip_2_vel: float
    ankle_2_vel: float
    hip_3_vel: float
    ankle_3_vel: float
    hip_4_vel: float
    ankle_4_vel: float
    # contact force/torque on each body (rows: torso, then for legs 1..4 in turn its root, upper and lower link),
    # 6 numbers per row (3 torque, 3 force), each clipped to [-1, 1]
    cfrc_ext: np.ndarray
# </context>

# <context when="Ant_state">
@dataclass
class AntObservationWithState(AntObservation):
    """The 105 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {**AntObservation.SHAPES, "qpos": (15,), "qvel": (14,), "cfrc_ext_full": (14, 6), "main_body_xy": (2,)}

    qpos: np.ndarray  # all joint positions: torso x, y, z, quaternion (w, x, y, z), then the 8 hinges in field order
    qvel: np.ndarray  # all joint velocities: torso linear (3) and angular (3), then the 8 hinges
    dt: float  # seconds per step: 0.05
    cfrc_ext_full: np.ndarray  # (14, 6) unclipped contact forces, world body first (cfrc_ext: bodies 1..13, clipped)
    main_body_xy: np.ndarray  # the torso's (x, y) in the world (m); the reward's forward speed uses x
# </context>

# <context when="Ant">
# Actions: 8 numbers in [-1, 1], torques (action * gear) on the joints below, in this order.
ANT_ACTIONS = [  # (joint, gear)
    ("hip_4", 150), ("ankle_4", 150), ("hip_1", 150), ("ankle_1", 150),
    ("hip_2", 150), ("ankle_2", 150), ("hip_3", 150), ("ankle_3", 150),
]


def ant_is_healthy(obs: AntObservation) -> bool:
    """Healthy: torso height in [0.2, 1.0] and every position and velocity finite."""
    values = [getattr(obs, f.name) for f in fields(AntObservation) if f.name != "cfrc_ext"]
    return 0.2 <= obs.torso_z <= 1.0 and all(math.isfinite(v) for v in values)


def ant_reward(action, x_before: float, x_after: float, next_obs: AntObservation) -> float:
    """Reward of one step. x is the torso's x position (m), {x_where}; dt = 0.05 s."""
    forward_reward = 1.0 * (x_after - x_before) / 0.05
    healthy_reward = 1.0 if ant_is_healthy(next_obs) else 0.0
    contact_cost = 5e-4 * float(np.sum(np.square(next_obs.cfrc_ext)))  # cfrc_ext is already clipped to [-1, 1]
    return forward_reward + healthy_reward - control_cost(action, 0.5) - contact_cost


# Episode: terminates as soon as the ant is not healthy (ant_is_healthy(next_obs) is False); otherwise it
# ends after 1000 steps (the horizon).
# </context>

# Humanoid's free-root fields (torso_z, quaternion, torso_v*, torso_w*) repeat Ant's on purpose: each task's
# Observation is shown to the LLM alone, so it spells out every field of its own observation in order.
# <context when="Humanoid">
@dataclass
class HumanoidObservation(Observation):
    """Humanoid-v5: a 3D humanoid (torso, abdomen, pelvis, two legs, two arms) that should walk forward
    along +x without falling. 348 numbers: the joint positions without the torso's x and y position (22),
    all velocities (23), then per body (13 bodies, world excluded) its inertia (10 each), its velocity
    (6 each), the actuator forces on the 17 joints, and the external contact forces (6 each).
    Body rows: torso, lwaist, pelvis, right_thigh, right_shin, right_foot, left_thigh, left_shin, left_foot,
    right_upper_arm, right_lower_arm, left_upper_arm, left_lower_arm."""

    SHAPES = {"cinert": (13, 10), "cvel": (13, 6), "qfrc_actuator": (17,), "cfrc_ext": (13, 6)}  # array fields

    torso_z: float  # height of the torso (m), about 1.4 when standing
    torso_qw: float  # orientation of the torso as a unit quaternion (w, x, y, z); (1, 0, 0, 0) = upright
    torso_qx: float
    torso_qy: float
    torso_qz: float
    abdomen_z: float  # joint angles (rad)
    abdomen_y: float
    abdomen_x: float
    right_hip_x: float
    right_hip_z: float
    right_hip_y: float
    right_knee: float
    left_hip_x: float
    left_hip_z: float
    left_hip_y: float
    left_knee: float
    right_shoulder1: float
    right_shoulder2: float
    right_elbow: float
    left_shoulder1: float
    left_shoulder2: float
    left_elbow: float
    torso_vx: float  # torso velocity, world frame (m/s)
    torso_vy: float
    torso_vz: float
    torso_wx: float  # torso angular velocity (rad/s)
    torso_wy: float
    torso_wz: float
    abdomen_z_vel: float  # joint angular velocities (rad/s)
    abdomen_y_vel: float
    abdomen_x_vel: float
    right_hip_x_vel: float
    right_hip_z_vel: float
    right_hip_y_vel: float
    right_knee_vel: float
    left_hip_x_vel: float
    left_hip_z_vel: float
    left_hip_y_vel: float
    left_knee_vel: float
    right_shoulder1_vel: float
    right_shoulder2_vel: float
    right_elbow_vel: float
    left_shoulder1_vel: float
    left_shoulder2_vel: float
    left_elbow_vel: float
    cinert: np.ndarray  # (13, 10) per body: inertia about the centre of mass and mass (MuJoCo's cinert)
    cvel: np.ndarray  # (13, 6) per body: angular (3) and linear (3) velocity about the centre of mass
    qfrc_actuator: np.ndarray  # (17,) the force the actuators apply on each joint, in the joint order above
    cfrc_ext: np.ndarray  # (13, 6) per body: external contact torque (3) and force (3)
# </context>

# <context when="Humanoid_state">
@dataclass
class HumanoidObservationWithState(HumanoidObservation):
    """The 348 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {**HumanoidObservation.SHAPES, "qpos": (24,), "qvel": (23,), "torso_xy": (2,), "mass_center_xy": (2,),
              "ctrl": (17,), "cfrc_ext_full": (14, 6)}

    qpos: np.ndarray  # all joint positions: torso x, y, z, quaternion (w, x, y, z), then the 17 hinges in field order
    qvel: np.ndarray  # all joint velocities: torso linear (3) and angular (3), then the 17 hinges
    dt: float  # seconds per step: 0.015
    torso_xy: np.ndarray  # qpos[0:2]: the torso's (x, y) (m)
    mass_center_xy: np.ndarray  # (x, y) of the whole body's centre of mass (m); the reward's forward speed uses x
    ctrl: np.ndarray  # (17,) the control signals of the last step (the action), in action order
    cfrc_ext_full: np.ndarray  # (14, 6) contact forces, the world body's row first (cfrc_ext is rows 1..13)
# </context>

# <context when="Humanoid">
# Actions: 17 numbers in [-0.4, 0.4], torques (action * gear) on the joints below, in this order
# (note: abdomen_y comes before abdomen_z).
HUMANOID_ACTIONS = [  # (joint, gear)
    ("abdomen_y", 100), ("abdomen_z", 100), ("abdomen_x", 100),
    ("right_hip_x", 100), ("right_hip_z", 100), ("right_hip_y", 300), ("right_knee", 200),
    ("left_hip_x", 100), ("left_hip_z", 100), ("left_hip_y", 300), ("left_knee", 200),
    ("right_shoulder1", 25), ("right_shoulder2", 25), ("right_elbow", 25),
    ("left_shoulder1", 25), ("left_shoulder2", 25), ("left_elbow", 25),
]


def humanoid_is_healthy(obs: HumanoidObservation) -> bool:
    """Healthy: the torso is between 1.0 and 2.0 m high."""
    return 1.0 < obs.torso_z < 2.0


def humanoid_reward(action, x_before: float, x_after: float, next_obs: HumanoidObservation) -> float:
    """Reward of one step. x is the x position of the whole body's centre of mass (m), {x_where};
    dt = 0.015 s."""
    forward_reward = 1.25 * (x_after - x_before) / 0.015
    healthy_reward = 5.0 if humanoid_is_healthy(next_obs) else 0.0
    contact_cost = min(5e-7 * float(np.sum(np.square(next_obs.cfrc_ext))), 10.0)
    return forward_reward + healthy_reward - control_cost(action, 0.1) - contact_cost


# Episode: terminates as soon as the humanoid is not healthy (humanoid_is_healthy(next_obs) is False);
# otherwise it ends after 1000 steps (the horizon).
# </context>

# <context when="Reacher">
@dataclass
class ReacherObservation(Observation):
    """Reacher-v5: a two-link arm on a table, fixed at the origin, whose fingertip should reach a target
    placed at random at the start of each episode (within 0.2 m of the origin). 10 numbers."""

    cos_joint0: float  # cos of the first link's angle
    cos_joint1: float  # cos of the second link's angle (relative to the first)
    sin_joint0: float
    sin_joint1: float
    target_x: float  # target position (m)
    target_y: float
    joint0_vel: float  # angular velocities (rad/s)
    joint1_vel: float
    fingertip_minus_target_x: float  # fingertip position minus target position (m)
    fingertip_minus_target_y: float
# </context>

# <context when="Reacher_state">
@dataclass
class ReacherObservationWithState(ReacherObservation):
    """The 10 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {"qpos": (4,), "qvel": (4,), "fingertip_minus_target": (3,), "fingertip_com": (3,), "target_com": (3,)}

    qpos: np.ndarray  # all joint positions: joint0, joint1 (rad), target_x, target_y (m)
    qvel: np.ndarray  # all joint velocities, same order (the target's are 0)
    dt: float  # seconds per step: 0.02
    fingertip_minus_target: np.ndarray  # (x, y, z) fingertip position minus target position (m); z is 0
    fingertip_com: np.ndarray  # (x, y, z) of the fingertip (m)
    target_com: np.ndarray  # (x, y, z) of the target (m)
# </context>

# <context when="Reacher">
# Actions: 2 numbers in [-1, 1], torques (action * gear) on the two joints.
REACHER_ACTIONS = [("joint0", 200), ("joint1", 200)]  # (joint, gear)


def reacher_reward(action, next_obs: ReacherObservation) -> float:
    """Reward of one step: minus the fingertip's distance to the target after the step, minus the effort."""
    distance = math.hypot(next_obs.fingertip_minus_target_x, next_obs.fingertip_minus_target_y)
    return -1.0 * distance - control_cost(action, 1.0)


# Episode: never terminates; it ends after 50 steps (the horizon).
# </context>

# <context when="InvertedDoublePendulum">
@dataclass
class InvertedDoublePendulumObservation(Observation):
    """InvertedDoublePendulum-v5: a cart on a rail carries two hinged poles (0.6 m each) that should stay
    upright. 9 numbers; angles are 0 when upright, the second pole's angle is relative to the first."""

    cart_x: float  # cart position along the rail (m)
    sin_hinge: float  # sin of the first pole's angle
    sin_hinge2: float  # sin of the second pole's angle (relative to the first)
    cos_hinge: float
    cos_hinge2: float
    cart_vel: float  # velocities, each clipped to [-10, 10] (m/s, rad/s)
    hinge_vel: float
    hinge2_vel: float
    cart_constraint_force: float  # constraint force on the cart (at the rail's ends), clipped to [-10, 10]
# </context>

# <context when="InvertedDoublePendulum_state">
@dataclass
class InvertedDoublePendulumObservationWithState(InvertedDoublePendulumObservation):
    """The 9 numbers above, then what the simulator holds beyond them (read after the step)."""

    SHAPES = {"qpos": (3,), "qvel": (3,), "tip_site_pos": (3,)}

    qpos: np.ndarray  # all joint positions: slider (cart x, m), hinge, hinge2 (rad)
    qvel: np.ndarray  # all joint velocities, same order, unclipped
    dt: float  # seconds per step: 0.05
    tip_site_pos: np.ndarray  # (x, y, z) of the second pole's tip in the world (m), as the simulator reports it: the
    # reward and termination use tip_x = tip_site_pos[0] and tip_y = tip_site_pos[2]
# </context>

# <context when="InvertedDoublePendulum">
# Actions: 1 number in [-1, 1], the force (action * 500) that pushes the cart along the rail.
INVERTED_DOUBLE_PENDULUM_ACTIONS = [("slider", 500)]  # (joint, gear)


def inverted_double_pendulum_tip(obs: InvertedDoublePendulumObservation) -> tuple[float, float]:
    """(x, height) of the tip of the second pole (m), from the cart position and the two angles."""
    sin_sum = obs.sin_hinge * obs.cos_hinge2 + obs.cos_hinge * obs.sin_hinge2  # sin(hinge + hinge2)
    cos_sum = obs.cos_hinge * obs.cos_hinge2 - obs.sin_hinge * obs.sin_hinge2
    return obs.cart_x + 0.6 * obs.sin_hinge + 0.6 * sin_sum, 0.6 * obs.cos_hinge + 0.6 * cos_sum


def inverted_double_pendulum_reward(tip_x: float, tip_y: float, hinge_vel: float, hinge2_vel: float) -> float:
    """Reward of one step, from the tip position and the pole velocities after the step: 10 for staying
    up, minus how far the tip is from (0, 2) and how fast the poles turn."""
    terminated = tip_y <= 1.0
    alive_bonus = 0.0 if terminated else 10.0
    distance_penalty = 0.01 * tip_x**2 + (tip_y - 2.0) ** 2
    velocity_penalty = 1e-3 * hinge_vel**2 + 5e-3 * hinge2_vel**2
    return alive_bonus - distance_penalty - velocity_penalty


# Episode: terminates when the tip's height drops to 1 m or below (tip_y <= 1, the poles have fallen);
# otherwise it ends after 1000 steps (the horizon).
# </context>

# <context>
# Success: no success criterion is defined for this task; the score is the episode's return.
# </context>

VARIANTS = {
    "paper": "the paper's information: the observation plus what its observation object reads from the simulator "
             "(full qpos and qvel, dt, and the task's positions its reward uses: torso or tip x, contact forces, ...)",
    "suite": "the observation array only (what PPO and SAC see); the forward rewards' x is left out",
}
_X_WHERE = {"HalfCheetah": "obs.qpos[0] (obs.main_body_xy[0])", "Hopper": "obs.qpos[0] (obs.root_x_position)",
            "Swimmer": "obs.qpos[0] (obs.tip_xy[0])", "Ant": "obs.main_body_xy[0]", "Humanoid": "obs.mass_center_xy[0]"}

_TASK_OF_CLASS = {"AntEnv": "Ant", "HalfCheetahEnv": "HalfCheetah", "HopperEnv": "Hopper", "HumanoidEnv": "Humanoid",
                  "SwimmerEnv": "Swimmer", "ReacherEnv": "Reacher", "InvertedDoublePendulumEnv": "InvertedDoublePendulum"}


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The part of this module that describes `env` (an unwrapped Gymnasium MuJoCo v5 env) in `variant`.

    The layouts above are those of Gymnasium's default observation kwargs; any other layout is refused here
    rather than described wrongly.
    """
    task = _TASK_OF_CLASS[type(env).__name__]
    layout = globals()[f"{task}Observation"]
    if env.observation_space.shape != (layout.size(),):
        raise ValueError(f"the {task} description covers Gymnasium's default observation ({layout.size()} numbers), "
                         f"not {env.observation_space.shape}: leave the observation kwargs at their defaults")
    if variant == "paper":
        return {task, f"{task}_state"}, {"x_where": f"in the observation as {_X_WHERE.get(task)}"}
    return {task}, {"x_where": "left out of the observation"}


def simulator_state(env) -> np.ndarray:
    """The numbers the `paper` variant's observation carries beyond the env's array, read from `env` (unwrapped) now,
    flattened in its `...WithState` class's field order: the rollout appends them after each reset and step (as
    the paper's observation objects read them), so the policy gets these values and never the env itself."""
    data, task = env.data, _TASK_OF_CLASS[type(env).__name__]
    extra = {
        "HalfCheetah": lambda: [(data.qpos[0], 0.0)],
        "Hopper": lambda: [data.qpos[0]],
        "Swimmer": lambda: [data.qpos[0:2]],
        "Ant": lambda: [data.cfrc_ext, env.get_body_com("torso")[:2]],
        "Humanoid": lambda: [data.qpos[0:2], _mass_center_xy(env),
                             data.ctrl, data.cfrc_ext],
        "Reacher": lambda: [env.get_body_com("fingertip") - env.get_body_com("target"), env.get_body_com("fingertip"),
                            env.get_body_com("target")],
        "InvertedDoublePendulum": lambda: [data.site_xpos[0]],
    }[task]()
    return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in [data.qpos, data.qvel, env.dt, *extra]])


def _mass_center_xy(env) -> np.ndarray:
    """The whole body's centre of mass (x, y), computed as Gymnasium's Humanoid reward does."""
    mass = np.expand_dims(env.model.body_mass, axis=1)
    return (np.sum(mass * env.data.xipos, axis=0) / np.sum(mass))[:2]


SIMULATOR_STATE = {"paper": simulator_state}  # the variants whose Observation carries more than the env's array
