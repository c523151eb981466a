"""NoiseWorld against the paper's rules: dynamics, rewards, termination, milestones, seeding, vector env."""

from __future__ import annotations

import hashlib
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

import promptpo_bench
from promptpo_bench.tasks.noiseworld.board import (GOAL, MILESTONE_1, MILESTONE_2, STOCHASTIC_RESET,
                                                   STOCHASTIC_STAY, TRAP, WALL, _reachable, generate_board,
                                                   paper_board, resolve_board)
from promptpo_bench.registry import description_module
from promptpo_bench.tasks.noiseworld.env import observation_table
from promptpo_bench.tasks.noiseworld.oracle import OptimalPolicy, policy_code, solution

PAPER_OPTIMA = [34.91, 974.91, 976.77, 981.28, 969.74, 399.70, 954.81]
ALL_IDS = [spec.id for spec in promptpo_bench.specs() if spec.family == "noiseworld"]
ALPHA = 1e-4  # significance level of every distributional test (fixed seeds, so each verdict is repeatable)


def make(board: int = 1, **kwargs) -> gym.Env:
    return gym.make("NoiseWorld-v0", board=board, **kwargs)


def put(env: gym.Env, cell: int, phase: int | None = None, t: int = 0) -> None:
    """Place the agent (test-only access to the env's state)."""
    inner = env.unwrapped
    inner._cell, inner._t = cell, t
    if phase is not None:
        inner._phase = phase


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_and_spaces(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    board = env.unwrapped.board
    extra = 2 if board.milestones else 0
    assert env.observation_space.shape == (4 + board.n ** 2 + extra,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.Discrete(4)


def test_observation_layout():
    env = make(4)
    obs, _ = env.reset(seed=0)
    board = env.unwrapped.board
    table = observation_table(board)  # shared by every env of the board: one row per (phase, cell), read-only
    assert table.shape == (3, board.n ** 2, 106) and not table.flags.writeable
    assert obs.dtype == np.float32 and obs.shape == (106,)
    np.testing.assert_array_equal(obs[:4], [0, 0, 1, 1])
    np.testing.assert_array_equal(obs[4:104], board.codes)
    np.testing.assert_array_equal(obs[104:], [0, 0])


def test_seeding_is_deterministic_and_seeds_differ():
    def trajectory(seed):
        env = make(5)
        env.reset(seed=seed)
        rng = np.random.default_rng(123)
        out = []
        for _ in range(300):
            obs, r, term, trunc, _ = env.step(int(rng.integers(4)))
            out.append((obs.tobytes(), r))
            if term or trunc:
                env.reset()
        return out

    assert trajectory(7) == trajectory(7)
    assert trajectory(7) != trajectory(8)


def test_pickled_env_continues_identically():
    env = make(3)
    env.reset(seed=3)
    for a in [1, 3, 1, 3]:
        env.step(a)
    twin = pickle.loads(pickle.dumps(env))
    for a in [1, 1, 3, 3, 1, 3, 1, 3]:
        o1, r1, *_ = env.step(a)
        o2, r2, *_ = twin.step(a)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


def _cell_with(board, dynamics_type):
    """A free cell of the given dynamics type whose move down or right is not blocked."""
    for cell in range(board.n ** 2):
        if board.codes[cell] == dynamics_type:
            for action in (1, 3):
                target = board.moves[cell, action]
                if target != cell and board.codes[target] <= STOCHASTIC_RESET:
                    return cell, action, target
    raise AssertionError("no such cell")


@pytest.mark.parametrize("board_id,dynamics_type", [(1, 0), (2, STOCHASTIC_STAY), (1, STOCHASTIC_RESET)])
def test_single_env_transition_frequencies(board_id, dynamics_type):
    env = make(board_id)
    board = env.unwrapped.board
    cell, action, target = _cell_with(board, dynamics_type)
    env.reset(seed=11)
    outcomes = {target: 0, cell: 0, 0: 0}
    trials = 20_000
    for _ in range(trials):
        put(env, cell)
        env.step(action)
        outcomes[env.unwrapped.state[0]] += 1
    success = board.success[cell]
    fail_cell = cell if dynamics_type == STOCHASTIC_STAY else 0
    if dynamics_type == 0:
        assert outcomes[target] == trials
        return
    expected_q = board.p[cell] if dynamics_type == STOCHASTIC_STAY else board.p[cell] / (board.p[cell] + 1 - board.p_alt[cell])
    assert success == pytest.approx(expected_q)
    observed = [outcomes[target], outcomes[fail_cell]]
    assert sum(observed) == trials  # nothing else happens
    assert stats.chisquare(observed, [trials * success, trials * (1 - success)]).pvalue > ALPHA


def test_vector_env_transition_frequencies_match_exact_probabilities():
    board = paper_board(3)
    venv = gym.make_vec("NoiseWorld-Board3-v0", num_envs=50_000, vectorization_mode="vector_entry_point")
    venv.reset(seed=5)
    for dynamics_type in (STOCHASTIC_STAY, STOCHASTIC_RESET):
        cell, action, target = _cell_with(board, dynamics_type)
        venv.unwrapped._cell[:] = cell
        venv.unwrapped._t[:] = 0
        venv.step(np.full(50_000, action))
        after = venv.unwrapped._cell
        fail_cell = cell if dynamics_type == STOCHASTIC_STAY else 0
        observed = [np.sum(after == target), np.sum(after == fail_cell)]
        assert sum(observed) == 50_000
        q = board.success[cell]
        assert stats.chisquare(observed, [50_000 * q, 50_000 * (1 - q)]).pvalue > ALPHA


def test_blocked_moves_stay_and_draw_nothing():
    env = make(1)
    env.reset(seed=0)
    state_before = env.unwrapped.np_random.bit_generator.state
    obs, reward, term, trunc, _ = env.step(0)  # up from (0, 0): off the grid
    assert env.unwrapped.state[0] == 0 and reward == -1 and not term and not trunc
    obs, reward, *_ = env.step(2)  # left: off the grid
    assert env.unwrapped.state[0] == 0
    assert env.unwrapped.np_random.bit_generator.state == state_before
    board = env.unwrapped.board
    wall = int(np.flatnonzero(board.codes == WALL)[0])
    for cell in range(board.n ** 2):
        for action in range(4):
            if board.moves[cell, action] == cell and board.codes[cell] != WALL:
                r, c = divmod(cell, board.n)
                dr, dc = [(-1, 0), (1, 0), (0, -1), (0, 1)][action]
                rr, cc = r + dr, c + dc
                assert not (0 <= rr < board.n and 0 <= cc < board.n) or rr * board.n + cc == wall


def test_goal_and_trap_rewards_and_termination():
    env = make(1)
    env.reset(seed=0)
    board = env.unwrapped.board
    goal = board.n ** 2 - 1
    put(env, goal - 1)  # left of the goal; (9, 8) is deterministic on board 1
    assert board.success[goal - 1] == 1.0
    _, reward, term, trunc, _ = env.step(3)
    assert (reward, term, trunc) == (-1 + 10 ** 3, True, False)
    trap = int(np.flatnonzero(board.codes == TRAP)[0])
    env.reset(seed=0)
    put(env, trap - board.n)  # above the trap
    while env.unwrapped.state[0] != trap:  # retry until the (possibly stochastic) move succeeds
        put(env, trap - board.n)
        _, reward, term, trunc, _ = env.step(1)
    assert (reward, term, trunc) == (-1 - 10 ** 5, True, False)


def test_truncation_at_horizon_and_goal_on_last_step():
    env = make(0)
    env.reset(seed=0)
    for t in range(1, 26):
        _, _, term, trunc, _ = env.step(0)  # bump into the top edge forever
        assert not term and trunc == (t == 25)
    board = env.unwrapped.board
    env.reset(seed=0)
    put(env, board.n ** 2 - 2, t=24)  # left of the goal, deterministic, last step
    _, reward, term, trunc, _ = env.step(3)
    assert (term, trunc, reward) == (True, False, -1 + 5 ** 3)


def test_milestone_order_and_goal_without_milestones():
    env = make(4)
    env.reset(seed=0)
    board = env.unwrapped.board
    n, goal = board.n, board.n ** 2 - 1
    m1, m2 = int(np.flatnonzero(board.codes == MILESTONE_1)[0]), int(np.flatnonzero(board.codes == MILESTONE_2)[0])

    def enter(cell):
        """Step into `cell` from a free deterministic-or-not neighbour, retrying failed moves."""
        for action, (dr, dc) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
            r, c = divmod(cell, n)
            src = (r + dr) * n + (c + dc)
            if 0 <= r + dr < n and 0 <= c + dc < n and board.codes[src] <= STOCHASTIC_RESET \
                    and board.moves[src, action] == cell:
                phase = env.unwrapped.state[1]
                while True:
                    put(env, src, phase)
                    result = env.step(action)
                    if env.unwrapped.state[0] == cell:
                        return result
        raise AssertionError("no entry")

    assert env.unwrapped.state[1] == 0
    obs, *_ = enter(m2)  # second before first: nothing
    assert env.unwrapped.state[1] == 0 and tuple(obs[-2:]) == (0, 0)
    obs, *_ = enter(m1)
    assert env.unwrapped.state[1] == 1 and tuple(obs[-2:]) == (1, 0)
    obs, *_ = enter(m1)  # again: no change
    assert env.unwrapped.state[1] == 1
    obs, *_ = enter(m2)
    assert env.unwrapped.state[1] == 2 and tuple(obs[-2:]) == (1, 1)
    _, reward, term, _, _ = enter(goal)
    assert term and reward == -1 + n ** 3

    env.reset(seed=0)
    _, reward, term, _, _ = enter(goal)  # goal without the milestones: ends, no bonus
    assert term and reward == -1


def test_reset_jump_keeps_milestone_progress():
    env = make(5)
    env.reset(seed=1)
    board = env.unwrapped.board
    cell, action, _ = _cell_with(board, STOCHASTIC_RESET)
    for _ in range(200):
        put(env, cell, phase=1)
        env.step(action)
        if env.unwrapped.state[0] == 0:
            assert env.unwrapped.state[1] == 1
            return
    raise AssertionError("no reset jump in 200 tries")


@pytest.mark.parametrize("board_id", range(7))
def test_oracle_reproduces_paper_optima(board_id):
    exact = solution(paper_board(board_id))
    assert round(exact.optimal_return, 2) == pytest.approx(PAPER_OPTIMA[board_id], abs=0.01)
    assert exact.random_return < exact.optimal_return


@pytest.mark.parametrize("board_id", [1, 5])
def test_vector_env_agrees_with_exact_values(board_id):
    """Monte Carlo returns of the optimal and random policies in the vector env match the exact values."""
    board = paper_board(board_id)
    exact = solution(board)
    episodes = 20_000
    venv = gym.make_vec(f"NoiseWorld-Board{board_id}-v0", num_envs=episodes)
    rng = np.random.default_rng(0)
    for name, expected in [("optimal", exact.optimal_return), ("random", exact.random_return)]:
        obs, _ = venv.reset(seed=board_id)
        returns, alive, t = np.zeros(episodes), np.ones(episodes, bool), np.zeros(episodes, np.int64)
        policy = OptimalPolicy(board)
        while alive.any():
            actions = policy.act(None, obs, t) if name == "optimal" else rng.integers(0, 4, episodes)
            obs, reward, term, trunc, _ = venv.step(actions)
            returns += reward * alive
            alive &= ~(term | trunc)
            t += 1
        z = (returns.mean() - expected) / (returns.std(ddof=1) / np.sqrt(episodes))
        assert abs(z) < 4.5, (name, returns.mean(), expected)


def test_single_and_vector_env_agree_in_distribution():
    """Episode lengths under random actions: same distribution in both implementations (board 3)."""
    rng = np.random.default_rng(1)
    env = make(3)
    env.reset(seed=2)
    single = []
    for _ in range(4000):
        env.reset()
        for t in range(1, 101):
            _, _, term, trunc, _ = env.step(int(rng.integers(4)))
            if term or trunc:
                single.append(t)
                break
    venv = gym.make_vec("NoiseWorld-v0", num_envs=4000, board=3)
    venv.reset(seed=3)
    lengths, alive = np.zeros(4000, np.int64), np.ones(4000, bool)
    while alive.any():
        _, _, term, trunc, _ = venv.step(rng.integers(0, 4, 4000))
        lengths += alive
        alive &= ~(term | trunc)
    bins = [0, 5, 10, 20, 40, 70, 99, 100]
    table = np.array([np.histogram(single, bins)[0], np.histogram(lengths, bins)[0]])
    table = table[:, table.sum(axis=0) > 0]
    assert stats.chi2_contingency(table).pvalue > ALPHA


def test_vector_autoreset_modes():
    kwargs = dict(num_envs=3, board=0, vectorization_mode="vector_entry_point")
    nxt = gym.make_vec("NoiseWorld-v0", **kwargs)
    assert nxt.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = nxt.reset(seed=0)
    for _ in range(25):
        obs, reward, term, trunc, _ = nxt.step(np.zeros(3, np.int64))
    assert trunc.all()
    obs, reward, term, trunc, _ = nxt.step(np.ones(3, np.int64))  # the reset step
    np.testing.assert_array_equal(reward, 0)
    assert not (term | trunc).any()
    np.testing.assert_array_equal(obs[:, :2], 0)
    for t in range(1, 26):  # the new episodes count their own steps from the reset step on
        _, _, _, trunc, _ = nxt.step(np.zeros(3, np.int64))
        assert trunc.all() == (t == 25) and trunc.any() == (t == 25), t

    same = gym.make_vec("NoiseWorld-v0", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, **kwargs)
    same.reset(seed=0)
    same.unwrapped._cell[:] = [23, 0, 23]  # two copies next to the goal
    obs, reward, term, trunc, info = same.step(np.array([3, 0, 3]))
    np.testing.assert_array_equal(term, [True, False, True])
    np.testing.assert_array_equal(info["_final_obs"], [True, False, True])
    np.testing.assert_array_equal(info["final_obs"][0][:2], [1, 1])  # the goal cell
    np.testing.assert_array_equal(obs[0, :2], [0, 0])  # already reset
    obs, reward, term, trunc, _ = same.step(np.array([0, 0, 0]))  # and the next episode goes on from the start
    np.testing.assert_array_equal(obs[:, :2], 0)
    np.testing.assert_array_equal(reward, -1.0)
    for t in range(2, 26):  # with its own step count: the reset copies truncate after 25 steps of their own
        _, _, _, trunc, _ = same.step(np.array([0, 0, 0]))
        assert trunc[0] == trunc[2] == (t == 25), t
    with pytest.raises(ValueError):
        same.step(np.array([0, 4, 0]))


def test_generator_is_seeded_and_follows_the_recipe():
    a, b = generate_board(12, 5, True), generate_board(12, 5, True)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.p, b.p)
    assert not np.array_equal(generate_board(12, 6).codes, a.codes)
    for seed in range(20):
        board = generate_board(10, seed, milestones=seed % 2 == 1)
        assert board.codes[-1] == GOAL and board.codes[0] <= STOCHASTIC_RESET
        assert np.sum(board.codes == WALL) == max(1, int(0.005 * 100))
        assert np.sum(board.codes == TRAP) == max(1, int(0.002 * 100))
        free = board.codes <= STOCHASTIC_RESET
        assert np.all((board.p[free] >= 0.25) & (board.p[free] <= 0.95))
        reachable = _reachable(board.codes, board.n, blocked=(WALL, TRAP))
        assert reachable[-1] and all(reachable[board.codes == code].all() for code in (MILESTONE_1, MILESTONE_2))
        assert np.sum(board.codes == MILESTONE_1) == np.sum(board.codes == MILESTONE_2) == (seed % 2)


@pytest.mark.parametrize("kwargs,message", [
    ({"board": 7}, "board must be an integer in 0..6"),
    ({"board": -1}, "board must be an integer in 0..6"),
    ({"size": 2, "layout_seed": 0}, "size must be an integer in 3..64"),
    ({"size": 8}, "needs both size"),
    ({"milestones": True}, "only applies to generated boards"),
])
def test_bad_kwargs_name_the_valid_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("NoiseWorld-v0", **kwargs)


def test_invalid_action_is_an_error():
    env = make(1)
    env.reset(seed=0)
    for action in (4, -1):
        with pytest.raises(ValueError, match="action must be 0, 1, 2 or 3"):
            env.step(action)


def test_stochastic_moves_read_the_seeded_stream_in_order():
    """Each stochastic move uses the next uniform of the env's seeded generator: u < success moves, else it fails
    (the exact stream that makes recorded episodes reproducible)."""
    import copy

    env = make(2)
    env.reset(seed=3)
    board = env.unwrapped.board
    cell, action, target = _cell_with(board, STOCHASTIC_STAY)
    uniforms = copy.deepcopy(env.unwrapped.np_random).random(2500)  # across every refill size (32 doubling to 1024)
    for u in uniforms:
        put(env, cell)
        env.step(action)
        assert env.unwrapped.state[0] == (target if u < board.success[cell] else cell)
    env.reset(seed=3)  # a used env, seeded again, starts the stream again (no draws left over)
    for u in uniforms[:50]:
        put(env, cell)
        env.step(action)
        assert env.unwrapped.state[0] == (target if u < board.success[cell] else cell)


def test_render_modes_show_what_the_agent_sees():
    env = make(2, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    lines = text.splitlines()
    assert len(lines) == 10 and lines[0][0] == "A" and lines[9][9] == "G"
    rgb = make(2, render_mode="rgb_array")
    rgb.reset(seed=0)
    frame = rgb.render()
    assert frame.shape == (320, 320, 3) and frame.dtype == np.uint8
    board = rgb.unwrapped.board
    same_code = [c for c in range(100) if board.codes[c] == STOCHASTIC_STAY]
    differing = [c for c in same_code if board.p[c] != board.p[same_code[0]]]
    centre = lambda c: frame[(c // 10) * 32 + 16, (c % 10) * 32 + 4]  # noqa: E731
    if differing:  # hidden p is not shown unless asked
        np.testing.assert_array_equal(centre(same_code[0]), centre(differing[0]))
        revealed = make(2, render_mode="rgb_array", render_dynamics=True)
        revealed.reset(seed=0)
        shown = revealed.render()
        pick = lambda c: shown[(c // 10) * 32 + 16, (c % 10) * 32 + 4]  # noqa: E731
        assert not np.array_equal(pick(same_code[0]), pick(differing[0]))
    assert tuple(frame[16, 16]) == (40, 80, 220)  # the agent at (0, 0)


def one_step_lookahead(board, next_values: np.ndarray, phase: int, cell: int, action: int) -> float:
    """Expected reward plus value-to-go of one step, written from the env's rules (not from the oracle's code)."""
    target = int(board.moves[cell, action])
    outcomes = [(target, 1.0)] if target == cell else \
        [(target, board.success[cell]), (int(board.fail_to[cell]), 1.0 - board.success[cell])]
    total = 0.0
    for nxt, probability in outcomes:
        code, new_phase = board.codes[nxt], phase
        if (code, phase) in ((MILESTONE_1, 0), (MILESTONE_2, 1)):
            new_phase = phase + 1
        reward = -1.0 + (board.goal_bonus if code == GOAL and phase == 2 else 0.0) + \
            (board.trap_penalty if code == TRAP else 0.0)
        total += probability * (reward + (0.0 if code in (GOAL, TRAP) else next_values[new_phase, nxt]))
    return total


@pytest.mark.parametrize("board_id", [0, 5])  # board 5 has milestones: every phase is checked
def test_oracle_acts_greedily_on_its_value_table_at_every_step_cell_and_phase(board_id):
    """For every (steps taken, milestone phase, cell) the oracle's action attains the optimal value of that state,
    and the policy.py it writes for the sandbox picks the same action."""
    board = paper_board(board_id)
    exact, oracle = solution(board), OptimalPolicy(board)
    for table in (exact.optimal_values, exact.random_values, exact.policy):
        assert table.shape == (board.horizon + 1, 3, board.n ** 2)  # [steps left, phase, cell]
    code = policy_code(board)
    namespace = {}
    exec(compile(code, "oracle policy.py", "exec"), namespace)  # our own generated code, trusted
    Observation = description_module(f"NoiseWorld-Board{board_id}-v0").Observation
    table = observation_table(board)
    phases = range(3) if board.milestones else [board.start_phase]
    cells = [c for c in range(board.n ** 2) if board.codes[c] not in (WALL, GOAL, TRAP)]
    for phase in phases:
        obs = table[phase, cells]
        for t in range(board.horizon):
            left = board.horizon - t
            actions = oracle.act(np.arange(len(cells)), obs, np.full(len(cells), t))
            for cell, row, action in zip(cells, obs, actions.tolist()):
                value = one_step_lookahead(board, exact.optimal_values[left - 1], phase, cell, action)
                assert value == pytest.approx(exact.optimal_values[left, phase, cell], rel=1e-9, abs=1e-9), \
                    (t, phase, cell, action)
                policy = namespace["Policy"]()
                policy.steps = t
                assert policy.act(Observation.from_array(row)) == action, (t, phase, cell)


def test_only_stochastic_moves_draw_random_numbers():
    """A move out of a deterministic cell draws nothing, so the seeded stream (and every recorded episode) depends
    only on the stochastic moves."""
    env = make(2)
    env.reset(seed=0)
    board = env.unwrapped.board
    cell, action, target = _cell_with(board, 0)
    put(env, cell)
    env.step(action)
    assert env.unwrapped.state[0] == target and env.unwrapped._next_uniform == 0 and not env.unwrapped._uniforms
    stochastic, action, _ = _cell_with(board, STOCHASTIC_STAY)
    put(env, stochastic)
    env.step(action)
    assert env.unwrapped._next_uniform == 1


def test_vector_env_accepts_a_list_of_seeds():
    def trajectory(seed):
        venv = gym.make_vec("NoiseWorld-Board2-v0", num_envs=3, vectorization_mode="vector_entry_point")
        venv.reset(seed=seed)
        return [venv.step(np.array([1, 3, 1]))[0][:, :2].tolist() for _ in range(10)]

    assert trajectory([1, 2, 3]) == trajectory([1, 2, 3]) != trajectory([4, 5, 6])


def test_vector_autoreset_disabled_needs_explicit_resets():
    venv = gym.make_vec("NoiseWorld-v0", num_envs=2, board=0, vectorization_mode="vector_entry_point",
                        autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    venv.reset(seed=0)
    venv.unwrapped._cell[:] = [23, 0]
    _, _, term, _, _ = venv.step(np.array([3, 0]))  # the first copy reaches the goal
    np.testing.assert_array_equal(term, [True, False])
    with pytest.raises(RuntimeError, match="autoreset is disabled"):
        venv.step(np.array([0, 0]))
    obs, _ = venv.reset(options={"reset_mask": np.array([True, False])})
    obs, reward, term, trunc, _ = venv.step(np.array([0, 0]))  # both go on: the first from the start again
    np.testing.assert_array_equal(obs[:, :2], 0)
    np.testing.assert_array_equal(reward, -1.0)


@pytest.mark.parametrize("actions", [np.zeros(2, np.int64), np.zeros(3), np.array([-1, 0, 0]), np.array([0, 4, 0])])
def test_vector_env_rejects_malformed_actions(actions):
    venv = gym.make_vec("NoiseWorld-v0", num_envs=3, board=0, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be 3 integers in 0..3"):
        venv.step(actions)


def _digest(board) -> str:
    arrays = (board.codes, board.dynamics, board.p, board.p_alt)
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:16]


@pytest.mark.parametrize("size, layout_seed, milestones, digest, walls, traps", [
    (5, 0, False, "137a8c40fb38dfc8", 1, 1),
    (12, 5, True, "8a57457706907e11", 1, 1),
    (40, 3, False, "d03e9a67e710607f", 8, 3),
    (64, 1, True, "12c07a059bca1728", 20, 8),
])
def test_generated_boards_never_change(size, layout_seed, milestones, digest, walls, traps):
    """A generated board is named by its kwargs on the leaderboard: the same kwargs must give the same board in every
    version (the digests were taken when the generator was written down); the recipe's counts hold at every size."""
    board = generate_board(size, layout_seed, milestones)
    assert _digest(board) == digest
    assert board.codes.dtype == board.dynamics.dtype == np.int64 and board.p.dtype == board.p_alt.dtype == np.float64
    assert board.n == size and board.codes.shape == (size * size,) and board.layout_seed == layout_seed
    assert (np.sum(board.codes == WALL), np.sum(board.codes == TRAP)) == (walls, traps)
    assert board.name == f"generated board size={size} layout_seed={layout_seed}" + (
        " with milestones" if milestones else "")
    free = board.codes <= STOCHASTIC_RESET
    np.testing.assert_array_equal(board.codes[free], board.dynamics[free])
    regions = max(4, size // 2)  # each Voronoi region draws its own p: one distinct value per region
    milestone = board.codes >= MILESTONE_1
    assert len(np.unique(board.p[~milestone])) == len(np.unique(board.p_alt[~milestone])) == regions
    assert np.all((board.p_alt[~milestone] >= 0.25) & (board.p_alt[~milestone] <= 0.95))
    assert np.all(board.dynamics[milestone] == 0) and np.all(board.p[milestone] == 1.0)
    assert np.all(board.p_alt[milestone] == 1.0) and milestone.sum() == 2 * milestones


def test_reachable_walks_the_grid_without_wrapping_round_its_edges():
    codes = np.array([0, WALL, 0,
                      0, WALL, 0,
                      0, TRAP, 0])
    assert _reachable(codes, 3, blocked=(WALL, TRAP)).tolist() == [True, False, False, True, False, False,
                                                                   True, False, False]
    assert _reachable(codes, 3, blocked=(WALL,)).tolist() == [True, False, True, True, False, True,
                                                              True, True, True]
    ring = np.array([0, 0, 0, 0, WALL, 0, 0, 0, 0])
    assert _reachable(ring, 3, blocked=(WALL,)).sum() == 8
    top = np.array([0, 0, 0, WALL, WALL, WALL, 0, 0, 0])  # the bottom row only by going up from the top one
    assert _reachable(top, 3, blocked=(WALL,)).tolist() == [True] * 3 + [False] * 6
    shut_in = np.array([0, WALL, 0, WALL, 0, 0, 0, 0, 0])  # the start alone is reachable: itself
    assert _reachable(shut_in, 3, blocked=(WALL,)).tolist() == [True] + [False] * 8


def test_paper_boards_are_the_reference_files_layouts(monkeypatch):
    from promptpo_bench.tasks.noiseworld import board as board_module

    raw = board_module._paper_data()["boards"][3]
    board = paper_board(np.int64(3))
    assert board.n == raw["n"] and board.name == "paper board 3" and board.layout_seed == raw["layout_seed"]
    np.testing.assert_array_equal(board.grid(), raw["codes"])
    np.testing.assert_array_equal(board.p, np.ravel(raw["p"]))
    np.testing.assert_array_equal(board.p_alt, np.ravel(raw["p_alt"]))
    assert board.paper_optimum == raw["optimal_expected_return"]
    assert board.codes.dtype == board.dynamics.dtype == np.int64
    for bad in (True, 7, -1, "3", 2.0):
        with pytest.raises(ValueError, match=r"board must be an integer in 0\.\.6"):
            paper_board.__wrapped__(bad)
    generate_board(5, 1)
    with pytest.raises(ValueError, match="layout_seed must be a non-negative integer"):
        generate_board(5, True)  # through the cache too, where True == 1 could share (5, 1)'s entry
    dynamics = [list(row) for row in raw["dynamics"]]
    row, col = divmod(int(np.flatnonzero(np.ravel(raw["codes"]) == STOCHASTIC_RESET)[0]), raw["n"])
    dynamics[row][col] = "stochastic_stay"  # one stochastic-reset cell whose dynamics disagree with its code
    tampered = {"boards": [dict(raw, dynamics=dynamics)]}
    monkeypatch.setattr(board_module, "_paper_data", lambda: tampered)
    with pytest.raises(ValueError, match="board 0 codes disagree with its dynamics"):
        paper_board.__wrapped__(0)


def test_resolve_board_picks_a_paper_or_a_generated_board():
    assert resolve_board(4) is paper_board(4) and resolve_board() is paper_board(1)
    assert resolve_board(4, size=6, layout_seed=2) is generate_board(6, 2, False)
    assert resolve_board(size=6, layout_seed=2, milestones=1) is generate_board(6, 2, True)
    for kwargs in ({"size": 6}, {"layout_seed": 2}):
        with pytest.raises(ValueError, match="needs both size"):
            resolve_board(**kwargs)


@pytest.mark.parametrize("size, layout_seed, message", [
    (65, 0, r"size must be an integer in 3\.\.64, got 65"),
    (2, 0, "size must be an integer in 3..64"),
    (5.0, 0, "size must be an integer"),
    (True, 0, "size must be an integer"),
    (5, -1, "layout_seed must be a non-negative integer, got -1"),
    (5, 1.0, "layout_seed must be a non-negative integer"),
    (5, False, "layout_seed must be a non-negative integer"),
])
def test_generator_rejects_bad_kwargs(size, layout_seed, message):
    with pytest.raises(ValueError, match=message):
        generate_board.__wrapped__(size, layout_seed)


def test_small_boards_keep_their_goal_reachable():
    """On 3x3 boards a wall and a trap can shut the goal in: the generator must refuse such a placement."""
    for seed in range(300):
        board = generate_board.__wrapped__(3, seed, seed % 2 == 1)
        reachable = _reachable(board.codes, 3, blocked=(WALL, TRAP))
        assert reachable[-1] and not reachable[(board.codes == WALL) | (board.codes == TRAP)].any(), seed


def test_generator_takes_the_smallest_size_and_numpy_integers():
    assert generate_board(3, 0).n == 3
    assert not generate_board(12, 6).milestones  # milestones only when asked for
    assert _digest(generate_board.__wrapped__(np.int64(8), np.int64(4))) == _digest(generate_board(8, 4))
