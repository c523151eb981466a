"""What an LLM reads about a Meta-World v3 task: observation, actions, reward, horizon and success, as Python.

Everything between a `# <context ...>` and `# </context>` marker is shown to the LLM verbatim (`when=`
picks the task's reward, `{name}` placeholders are filled in per task); the rest of this file only
chooses. The reward functions are Meta-World's own v2 rewards (`compute_reward` with
reward_function_version="v2", the default of metaworld 3.1.1) rewritten over `Observation`; some need
simulator quantities that the observation does not contain, passed as extra arguments and named as such.
It imports nothing but NumPy, so the sandbox can load it.
"""

from __future__ import annotations

VARIANTS = {
    "paper": "the paper's information: the 39 numbers by block, the action's channels, the reward and success as code",
    "suite": "adds the world frame's axes, the gripper reading's scale, what each object and goal field means in this "
             "task, the action's step size, the hand's box and dt, and how success counts over an episode",
}

# <context>
from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    """What the agent sees at each step: a Sawyer robot arm with a two-finger gripper, {task_words}.

    Positions are in metres in the world frame{frame_axes}.
    Arrays are float64 NumPy arrays; the 39 numbers of the raw observation are, in order, the fields below
    (the current 18, the previous step's 18, the goal's 3).
    """

    hand_pos: np.ndarray  # (3,) position of the hand (end effector)
    gripper_distance: float  # {gripper}
    obj1_pos: np.ndarray  # (3,) {obj1}
    obj1_quat: np.ndarray  # (4,) {obj1_quat}
    obj2_pos: np.ndarray  # (3,) {obj2}
    obj2_quat: np.ndarray  # (4,) {obj2}
    prev_hand_pos: np.ndarray  # (3,) the same 18 numbers one step earlier (at the first step: equal to the current ones)
    prev_gripper_distance: float
    prev_obj1_pos: np.ndarray  # (3,)
    prev_obj1_quat: np.ndarray  # (4,)
    prev_obj2_pos: np.ndarray  # (3,)
    prev_obj2_quat: np.ndarray  # (4,)
    goal_pos: np.ndarray  # (3,) {goal}

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Observation":
        """Build the observation from the environment's flat float64 array of 39 numbers."""
        v = np.array(array, dtype=np.float64)  # a copy: the policy may keep or change it
        return cls(v[0:3], float(v[3]), v[4:7], v[7:11], v[11:14], v[14:18],
                   v[18:21], float(v[21]), v[22:25], v[25:29], v[29:32], v[32:36], v[36:39])
# </context>

# <context when="paper">
# Action: a NumPy array of 4 floats in [-1, 1].
#   action[0:3]: xyz delta translation for the hand controller.
#   action[3]:   gripper / finger control (it drives the two finger actuators).
# </context>

# <context when="suite">
# Action: a NumPy array of 4 floats in [-1, 1].
#   action[0:3]: move the hand's target point by action * 0.01 m along x, y, z this step (clipped to
#                [-1, 1] first); the hand follows it. The target stays inside the box {hand_box}.
#   action[3]:   gripper effort: +1 closes the fingers, -1 opens them.
# One step lasts {dt} s of simulated time. The task's goal and its objects' start positions are
# drawn anew for every episode, from 50 fixed variants of the task.
# </context>

# <context>

def tolerance(x: float, lower: float, upper: float, margin: float) -> float:
    """1 when lower <= x <= upper, else falling off with the distance d to the interval: 1 / ((3 d / margin)^2 + 1)
    (0.1 at d = margin). Meta-World's reward_utils.tolerance with sigmoid="long_tail"."""
    if lower <= x <= upper:
        return 1.0
    if margin == 0:
        return 0.0
    d = (lower - x if x < lower else x - upper) / margin
    return 1.0 / ((d * 3.0) ** 2 + 1.0)


def hamacher_product(a: float, b: float) -> float:
    """A soft AND of two values in [0, 1]: a * b / (a + b - a * b), 0 when both are 0."""
    denominator = a + b - a * b
    return a * b / denominator if denominator > 0 else 0.0
# </context>

# <context when="button_press">
def reward(obs: Observation, action: np.ndarray, tcp_center: np.ndarray, init_tcp: np.ndarray,
           obj_to_target_init: float) -> float:
    """The reward of the step that produced `obs`, from 0 to 10.

    Not in the observation (the simulator knows them, a policy does not):
    `tcp_center`, {tcp};
    `init_tcp`, that point at the start of the episode;
    `obj_to_target_init`, the button's distance from being fully pressed at the start (|y|).
    """
    button = obs.obj1_pos
    tcp_to_button = float(np.linalg.norm(button - tcp_center))
    tcp_to_button_init = float(np.linalg.norm(button - init_tcp))
    button_to_target = abs(obs.goal_pos[1] - button[1])
    gripper_open = max(obs.gripper_distance, 0.0)  # Meta-World calls this "tcp_closed"
    near_button = tolerance(tcp_to_button, 0.0, 0.05, tcp_to_button_init)
    button_pressed = tolerance(button_to_target, 0.0, 0.005, obj_to_target_init)
    r = 2 * hamacher_product(gripper_open, near_button)
    if tcp_to_button <= 0.05:
        r += 8 * button_pressed
    return r


def success(obs: Observation) -> bool:
    """The button is pressed to within 2 cm of the goal along y."""
    return abs(obs.goal_pos[1] - obs.obj1_pos[1]) <= 0.02
# </context>

# <context when="door_open">
def reward(obs: Observation, action: np.ndarray, door_angle: float) -> float:
    """The reward of the step that produced `obs`, from 0 to 10.

    Not in the observation (the simulator knows it, a policy does not): `door_angle`, the angle of the
    door's hinge in radians (0 closed, negative as the door swings open).
    """
    hand = obs.hand_pos
    door = obs.obj1_pos + np.array([-0.05, 0.0, 0.0])
    # stay above a funnel-shaped "floor" centred on the handle, so the hand does not hit it from above
    threshold = 0.12
    radius = np.linalg.norm(hand[:2] - door[:2])
    floor = 0.0 if radius <= threshold else 0.04 * np.log(radius - threshold) + 0.4
    above_floor = 1.0 if hand[2] >= floor else tolerance(floor - hand[2], 0.0, 0.01, floor / 2.0)
    # hand between the handle and the door
    in_place = tolerance(float(np.linalg.norm(hand - door - np.array([0.05, 0.03, -0.01]))), 0.0, threshold / 2.0, 0.5)
    ready_to_open = hamacher_product(above_floor, in_place)
    # how far the door is open
    opened = 0.2 * float(door_angle < -np.pi / 90.0) + 0.8 * tolerance(
        np.pi / 2.0 + np.pi / 6 + door_angle, 0.0, 0.5, np.pi / 3.0)
    grab_effort = float((np.clip(action[3], -1, 1) + 1.0) / 2.0)
    r = 2.0 * hamacher_product(ready_to_open, grab_effort) + 8.0 * opened
    if abs(obs.obj1_pos[0] - obs.goal_pos[0]) <= 0.08:  # success overrides everything
        r = 10.0
    return r


def success(obs: Observation) -> bool:
    """The handle has swung to within 8 cm of the goal along x."""
    return abs(obs.obj1_pos[0] - obs.goal_pos[0]) <= 0.08
# </context>

# <context when="drawer_open">
def reward(obs: Observation, action: np.ndarray, init_tcp: np.ndarray) -> float:
    """The reward of the step that produced `obs`, from 0 to 10.

    Not in the observation (the simulator knows it, a policy does not):
    `init_tcp`, {init_tcp}.
    """
    gripper, handle, target = obs.hand_pos, obs.obj1_pos, obs.goal_pos
    max_dist = 0.2  # how far the drawer opens
    handle_error = float(np.linalg.norm(handle - target))
    reward_for_opening = tolerance(handle_error, 0.0, 0.02, max_dist)
    handle_pos_init = target + np.array([0.0, max_dist, 0.0])
    scale = np.array([3.0, 3.0, 1.0])  # x and y errors count three times: reach the handle before dropping down
    gripper_error = (handle - gripper) * scale
    gripper_error_init = (handle_pos_init - init_tcp) * scale
    reward_for_caging = tolerance(float(np.linalg.norm(gripper_error)), 0.0, 0.01,
                                  float(np.linalg.norm(gripper_error_init)))
    return 5.0 * (reward_for_caging + reward_for_opening)


def success(obs: Observation) -> bool:
    """The handle is within 3 cm of the goal (the drawer is open)."""
    return float(np.linalg.norm(obs.obj1_pos - obs.goal_pos)) <= 0.03
# </context>

# <context when="pick_place">
def reward(obs: Observation, action: np.ndarray, tcp_center: np.ndarray, left_pad: np.ndarray,
           right_pad: np.ndarray, init_tcp: np.ndarray, obj_init_pos: np.ndarray) -> float:
    """The reward of the step that produced `obs`, from 0 to 10.

    Not in the observation (the simulator knows them, a policy does not):
    `tcp_center`, {tcp};
    `left_pad` / `right_pad`, the centres of the two finger pads now;
    `init_tcp`, that point at the start of the episode; `obj_init_pos`, the puck's position at the start{obj_init}.
    """
    puck, target = obs.obj1_pos, obs.goal_pos
    # grasp: both pads on either side of the puck along y, fingertips at the puck in x-z, fingers closing
    puck_radius, pad_margin, xz_margin = 0.015, 0.05, 0.005
    # (Meta-World means the pads' start positions in the two margins; metaworld 3.1.1 stores them as live
    # views of the simulator's state, so what it computes, and this function, uses the current positions.)
    right_caging = tolerance(puck[1] - right_pad[1], puck_radius, pad_margin,
                             abs(abs(puck[1] - right_pad[1]) - pad_margin))
    left_caging = tolerance(left_pad[1] - puck[1], puck_radius, pad_margin,
                            abs(abs(puck[1] - left_pad[1]) - pad_margin))
    y_caging = hamacher_product(left_caging, right_caging)
    xz = [0, 2]
    xz_caging = tolerance(float(np.linalg.norm(tcp_center[xz] - puck[xz])), 0.0, xz_margin,
                          float(np.linalg.norm(obj_init_pos[xz] - init_tcp[xz])) - xz_margin)
    gripper_closed = min(max(0.0, action[3]), 1.0)
    caging = hamacher_product(y_caging, xz_caging)
    gripping = gripper_closed if caging > 0.97 else 0.0
    object_grasped = (hamacher_product(caging, gripping) + caging) / 2
    # place: puck near the goal
    puck_to_target = float(np.linalg.norm(puck - target))
    in_place = tolerance(puck_to_target, 0.0, 0.05, float(np.linalg.norm(obj_init_pos - target)))
    r = hamacher_product(object_grasped, in_place)
    if np.linalg.norm(puck - tcp_center) < 0.02 and obs.gripper_distance > 0 and puck[2] - 0.01 > obj_init_pos[2]:
        r += 1.0 + 5.0 * in_place  # lifted while held
    if puck_to_target < 0.05:
        r = 10.0
    return r


def success(obs: Observation) -> bool:
    """The puck is within 7 cm of the goal."""
    return float(np.linalg.norm(obs.obj1_pos - obs.goal_pos)) <= 0.07
# </context>

# <context when="paper">
# Episode: it ends after {horizon} steps (the horizon).
# </context>

# <context when="suite">
# Episode: it lasts exactly {horizon} steps (the horizon); success does not end it. The episode counts as
# a success if success(obs) holds at any step. (If the physics ever goes unstable, that step repeats the
# last stable observation with reward 0 and no success.)
# </context>

# One row of the same shape per task (a table of the words each task's context fills in), deliberately.
_TASKS = {
    "button-press-v3": dict(
        tag="button_press", task_words="a button sticking out of a wall towards the robot", thing="the button",
        obj1="the button's tip (its position minus 0.193 m along y); pressing moves it along +y",
        obj1_quat="the button's orientation quaternion (w, x, y, z)",
        goal="where the button's tip is when fully pressed; press it there", paper_goal="the target xyz of the press"),
    "door-open-v3": dict(
        tag="door_open", task_words="a door on a vertical hinge with a handle", thing="the door handle",
        obj1="the door handle; opening the door swings it towards the robot and to the left (-x)",
        obj1_quat="the handle's orientation quaternion (x, y, z, w)",
        goal="where the handle is when the door is open", paper_goal="the target of the pull (the handle's)"),
    "drawer-open-v3": dict(
        tag="drawer_open", task_words="a drawer with a handle facing the robot", thing="the drawer handle",
        obj1="the drawer handle (the drawer's position minus 0.16 m along y); opening pulls it along -y",
        obj1_quat="the drawer's orientation quaternion (w, x, y, z)",
        goal="where the handle is when the drawer is fully open (0.2 m out)",
        paper_goal="the target of the pull (the handle's, the drawer open)"),
    "pick-place-v3": dict(
        tag="pick_place", task_words="a puck on the table", thing="the puck",
        obj1="the puck (its centre of mass)",
        obj1_quat="the puck's orientation quaternion (x, y, z, w)",
        goal="where to put the puck (it may be in the air: lift and carry it there)",
        paper_goal="the target xyz for placing the puck"),
}


# what each variant says in the shared parts: the paper's words (its env_contexts/*_v3_*.txt) or the suite's
_WORDS = {
    "paper": dict(frame_axes="", gripper="the gripper's opening (one number)", obj2="padding (no second object)",
                  tcp="the gripper's centre point now (the simulator's tcp_center)",
                  init_tcp="the gripper's centre point at the start of the episode", obj_init=""),
    "suite": dict(frame_axes=": x to the robot's right, y away from the robot's base, z up",
                  gripper="distance between the two fingers, divided by 0.1 m and clipped to [0, 1]: 1 = open",
                  obj2="always zeros in this task (there is no second object)",
                  tcp="the point midway between the two fingertips now (about 0.045 m below `hand_pos`)",
                  init_tcp="the point midway between the two fingertips at the start of the episode (about 0.045 m "
                           "below the first `hand_pos`)",
                  obj_init=" (its first `obj1_pos`, nearly)"),
}


def context_variables(env, variant: str) -> tuple[set[str], dict[str, str]]:
    """The task's reward part, the variant's parts and the placeholder values for `env` (an unwrapped MetaWorldEnv)."""
    task = dict(_TASKS[env.env_name])
    thing, paper_goal = task.pop("thing"), task.pop("paper_goal")
    if variant == "paper":  # the reference names each block's object, not its offsets or quaternion order
        task.update(obj1=f"{thing}'s position", obj1_quat=f"{thing}'s orientation (quaternion)", goal=paper_goal)
    low, high = env.sim.mocap_low, env.sim.mocap_high
    box = ", ".join(f"{axis} in [{lo:g}, {hi:g}]" for axis, lo, hi in zip("xyz", low, high))
    return {task.pop("tag"), variant}, {**task, **_WORDS[variant], "horizon": str(env.horizon), "hand_box": box,
                                        "dt": f"{env.sim.dt:g}"}
