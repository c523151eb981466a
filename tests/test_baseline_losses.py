"""The classical baselines' losses, targets and bookkeeping, each against a hand computation on a tiny batch.

Unit tests, a few seconds in all: the functions of algorithms/dqn.py, sac.py, ppo.py and promptpo_bench/baselines.py
that decide what a baseline learns and what its record says (the TD targets, the target networks' soft update, SAC's
critic, actor and temperature losses and their hand-written gradients against CleanRL's losses through autograd, the
flat parameters its optimizers step, PPO's GAE, truncation bootstrap, clipped losses and schedules, the replay
buffer, the evaluation schedule and totals of a run). Whole runs are in tests/e2e/test_baselines.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytest.importorskip("tyro")

from algorithm_files import load_algorithm  # noqa: E402
from promptpo_bench import baselines  # noqa: E402
from promptpo_bench.baselines import BaselineArgs, BaselineRun, ReplayBuffer, real_next_obs, soft_update  # noqa: E402
from promptpo_bench.records import load_record  # noqa: E402
from promptpo_bench.registry import ReferenceScores  # noqa: E402
from promptpo_bench.rollout import Episodes, heldout_seeds  # noqa: E402
from promptpo_bench.errors import BenchError  # noqa: E402
from promptpo_bench.torch_policy import HandGradMLP, NumpyMLP, flat_parameters, mlp  # noqa: E402

ppo, dqn, sac = load_algorithm("ppo"), load_algorithm("dqn"), load_algorithm("sac")


def tensor(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def parameters(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --- DQN -----------------------------------------------------------------------------------------------------------


def test_td_target_bootstraps_truncations_only():
    rewards, next_q = tensor(1.0, 1.0, -2.0), tensor(10.0, 10.0, 4.0)
    terminated = tensor(1.0, 0.0, 0.0)  # the second and third transitions were truncated or went on
    np.testing.assert_allclose(dqn.td_target(rewards, next_q, terminated, 0.5).numpy(), [1.0, 6.0, 0.0])


class LinearQ(torch.nn.Module):
    """Test double of a Q-network: Q(s) = W s, so every Q-value can be read off W."""

    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(weight, dtype=torch.float32))

    def forward(self, x):
        return x @ self.weight.T


def test_td_loss_by_hand():
    """Q(s, a) of the stored actions against r + gamma * max_a Q'(s', a) (not after a termination)."""
    online = LinearQ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # Q(s0) = (1, 3, 5), Q(s1) = (2, 4, 6)
    target = LinearQ([[0.0, 0.0], [10.0, -1.0], [2.0, 7.0]])  # Q'(s0) = (0, 10, 2), Q'(s1) = (0, -1, 7)
    s0, s1 = [1.0, 0.0], [0.0, 1.0]
    batch = (tensor(s0, s1), torch.tensor([2, 0]), tensor(s1, s0), tensor(1.0, -1.0), tensor(0.0, 1.0))
    loss, q_taken = dqn.td_loss(online, target, batch, 0.5)
    np.testing.assert_allclose(q_taken.detach().numpy(), [5.0, 2.0])
    # targets: 1 + 0.5 * max Q'(s1) = 4.5; -1 (terminated)
    assert loss.item() == pytest.approx(((4.5 - 5.0) ** 2 + (-1.0 - 2.0) ** 2) / 2)
    loss.backward()  # only the online network learns from it
    assert online.weight.grad is not None and target.weight.grad is None
    # d loss / d W[a] = (Q(s, a) - target) * s (the mean of two squares: 2 / 2 = 1): row 2 gets 0.5 * s0, row 0
    # gets 3 * s1, row 1 (no stored action) nothing
    np.testing.assert_allclose(online.weight.grad.numpy(), [[0.0, 3.0], [0.0, 0.0], [0.5, 0.0]])


def test_linear_schedule_reaches_its_end_and_stays():
    values = [dqn.linear_schedule(1.0, 0.05, 100, t) for t in (0, 50, 100, 101, 1000)]
    np.testing.assert_allclose(values, [1.0, 0.525, 0.05, 0.05, 0.05])


def q_network_after_one_update(seed: int = 0):
    """A DQN Q-network, its target (equal at the start) and the Q-network after one optimizer step on a batch."""
    torch.manual_seed(seed)
    online, target = dqn.QNetwork(3, 2, (8,)), dqn.QNetwork(3, 2, (8,))
    target.load_state_dict(online.state_dict())
    start = parameters(online)
    batch = (torch.randn(16, 3), torch.randint(0, 2, (16,)), torch.randn(16, 3), torch.randn(16), torch.zeros(16))
    optimizer = torch.optim.Adam(online.parameters(), lr=0.1)
    loss, _ = dqn.td_loss(online, target, batch, 0.99)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert not same(parameters(online), start)  # the update moved the online network
    return online, target, start


@pytest.mark.parametrize("tau", [1.0, 0.0, 0.25])
def test_dqn_target_network_soft_update(tau):
    """tau = 1 copies the online network into the target, tau = 0 leaves the target where it was, and in between
    the target moves that fraction of the way; the online network is not touched."""
    online, target, start = q_network_after_one_update()
    trained = parameters(online)
    soft_update(list(target.parameters()), list(online.parameters()), tau)
    for new, old, now in zip(target.parameters(), start, trained, strict=True):
        torch.testing.assert_close(new.detach(), tau * now + (1 - tau) * old, rtol=0, atol=1e-7)
    assert same(parameters(online), trained)
    if tau == 1.0:
        assert same(parameters(target), trained)
    if tau == 0.0:
        assert same(parameters(target), start)


# --- SAC -----------------------------------------------------------------------------------------------------------


def sac_networks(hidden=(8,), obs_dim=3, act_dim=2, seed=0):
    """A small actor, two soft Q-networks and their targets (apart from them), as sac.py builds them."""
    torch.manual_seed(seed)
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    actor = sac.Actor(obs_dim, space, hidden)
    return actor, *(sac.SoftQNetwork(obs_dim, act_dim, hidden) for _ in range(4))


def sac_batch(n=6, obs_dim=3, act_dim=2):
    g = torch.Generator().manual_seed(7)
    terminations = tensor(*[[float(i % 3 == 0)] for i in range(n)])  # some transitions do not bootstrap
    return (torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g),
            torch.randn(n, obs_dim, generator=g), torch.randn(n, 1, generator=g), terminations)


def hand(*nets, dtype=torch.float32):
    return [HandGradMLP(net.network, dtype) for net in nets]


# CleanRL's three losses (sac_continuous_action.py), through Actor.get_action and the networks' forward, with autograd:
# what sac.py's hand-written steps must equal in values and gradients.

def cleanrl_critic_losses(actor, qf1, qf2, qf1_target, qf2_target, batch, alpha, gamma):
    obs, actions, next_obs, rewards, terminations = batch
    with torch.no_grad():
        next_state_actions, next_state_log_pi, _ = actor.get_action(next_obs)
        min_qf_next_target = torch.min(qf1_target(next_obs, next_state_actions),
                                       qf2_target(next_obs, next_state_actions)) - alpha * next_state_log_pi
        next_q_value = rewards.flatten() + (1 - terminations.flatten()) * gamma * min_qf_next_target.view(-1)
    qf1_a_values, qf2_a_values = qf1(obs, actions).view(-1), qf2(obs, actions).view(-1)
    return F.mse_loss(qf1_a_values, next_q_value), F.mse_loss(qf2_a_values, next_q_value), qf1_a_values, qf2_a_values


def cleanrl_actor_loss(actor, qf1, qf2, obs, alpha):
    pi, log_pi, _ = actor.get_action(obs)
    return ((alpha * log_pi) - torch.min(qf1(obs, pi), qf2(obs, pi))).mean()


def cleanrl_alpha_loss(actor, log_alpha, obs, target_entropy):
    with torch.no_grad():
        _, log_pi, _ = actor.get_action(obs)
    return (-log_alpha.exp() * (log_pi + target_entropy)).mean()


def grads(net: torch.nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in net.parameters()]


def assert_grads_close(ours, theirs):
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        assert mine is not None and expected is not None
        torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hidden", [(8,), (16, 16)])
def test_hand_grad_mlp_is_the_networks_forward_and_autograds_backward(hidden):
    torch.manual_seed(0)
    net = mlp(5, hidden, 3, "relu")
    x = torch.randn(7, 5, requires_grad=True)
    upstream = torch.randn(7, 3)
    (net(x) * upstream).sum().backward()
    theirs, their_input_grad = grads(net), x.grad.clone()
    for p in net.parameters():
        p.grad = None
    acts = HandGradMLP(net).forward(x.detach())
    torch.testing.assert_close(acts[-1], net(x).detach(), rtol=0, atol=0)
    input_grad = HandGradMLP(net).backward(acts, upstream, input_grad=True)
    assert_grads_close(grads(net), theirs)
    torch.testing.assert_close(input_grad, their_input_grad, rtol=1e-5, atol=1e-6)
    for p in net.parameters():  # weight_grads=False leaves the parameters' gradients alone
        p.grad = None
    HandGradMLP(net).backward(acts, upstream, weight_grads=False, input_grad=True)
    assert all(p.grad is None for p in net.parameters())
    assert HandGradMLP(net).backward(acts, upstream) is None  # no input gradient unless asked (a product saved)
    with pytest.raises(BenchError, match="Linear layers and ReLUs"):
        HandGradMLP(mlp(5, hidden, 3, "tanh"))


def test_squashed_gaussian_is_get_action():
    """The same draw, action and log pi(a|s) as CleanRL's get_action (torch.distributions.Normal, rsample)."""
    actor = sac_networks()[0]
    obs = torch.randn(9, 3)
    torch.manual_seed(3)
    action, log_pi, _ = actor.get_action(obs)
    torch.manual_seed(3)
    pi = sac.SquashedGaussian(actor.network(obs).detach(), actor.action_scale, actor.action_bias)
    torch.testing.assert_close(pi.action, action.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(pi.log_pi, log_pi.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_sac_critic_step_is_cleanrls_critic_losses(alpha):
    """Each Q-network against r + gamma * (1 - terminated) * (min(Q1', Q2')(s', a') - alpha * log pi(a'|s')): the
    same losses and Q-values as CleanRL's, and the same gradients in the critics only (not the targets)."""
    networks, batch = sac_networks(), sac_batch()
    torch.manual_seed(5)
    losses = cleanrl_critic_losses(*networks, batch, alpha, 0.9)
    (losses[0] + losses[1]).backward()
    theirs = [grads(q) for q in networks[1:3]]
    for q in networks:
        q.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    ours = sac.critic_step(*hand(*networks), batch, alpha, 0.9, networks[0].action_scale, networks[0].action_bias)
    for mine, expected in zip(ours, losses):
        torch.testing.assert_close(mine, expected.detach(), rtol=1e-5, atol=1e-6)
    for q, expected in zip(networks[1:3], theirs):
        assert_grads_close(grads(q), expected)
    assert all(g is None for net in (networks[0], *networks[3:]) for g in grads(net))


def test_sac_critic_step_targets_by_hand():
    """Single-layer critics (Q = s . wx + a . wa): the targets' min, the entropy bonus and a terminated transition
    worked out by hand from the draw the step makes."""
    actor, *critics = sac_networks(hidden=(), obs_dim=2, act_dim=2)
    weights = ([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, -1.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 1.0, 1.0])
    for q, w in zip(critics, weights):
        q.network[0].weight.data = tensor(w)
        q.network[0].bias.data.zero_()
    obs, actions = tensor([1.0, 2.0], [3.0, -1.0]), tensor([0.5, 0.0], [-1.0, 0.0])
    next_obs, rewards, terminations = tensor([2.0, 0.5], [-1.0, 4.0]), tensor([1.0], [2.0]), tensor([0.0], [1.0])
    torch.manual_seed(11)
    q1_loss, q2_loss, q1_values, q2_values = sac.critic_step(
        *hand(actor, *critics), (obs, actions, next_obs, rewards, terminations), 0.1, 0.9, actor.action_scale,
        actor.action_bias)
    torch.manual_seed(11)
    pi = sac.SquashedGaussian(actor.network(next_obs).detach(), actor.action_scale, actor.action_bias)
    a, log_pi = pi.action.numpy(), pi.log_pi.numpy()[:, 0]
    q1_next = 2 * next_obs.numpy()[:, 0]
    q2_next = 2 * next_obs.numpy()[:, 1] + a[:, 0] + a[:, 1]
    target0 = 1.0 + 0.9 * (min(q1_next[0], q2_next[0]) - 0.1 * log_pi[0])
    np.testing.assert_allclose(q1_values.numpy(), [1.5, 2.0])
    np.testing.assert_allclose(q2_values.numpy(), [1.5, 0.0])
    assert q1_loss.item() == pytest.approx(((1.5 - target0) ** 2 + (2.0 - 2.0) ** 2) / 2, rel=1e-5)
    assert q2_loss.item() == pytest.approx(((1.5 - target0) ** 2 + (0.0 - 2.0) ** 2) / 2, rel=1e-5)


def test_sac_actor_step_is_cleanrls_actor_loss():
    """alpha * log pi(a|s) - min(Q1, Q2)(s, a) averaged: CleanRL's value, and its gradient in the actor only (it
    flows through the Q-networks, whose own weight gradients are not computed)."""
    networks, obs = sac_networks(hidden=(16, 16)), sac_batch()[0]
    actor, qf1, qf2 = networks[:3]
    torch.manual_seed(5)
    loss = cleanrl_actor_loss(actor, qf1, qf2, obs, 0.2)
    loss.backward()
    theirs = grads(actor)
    for net in networks:
        net.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    ours = sac.actor_step(*hand(actor, qf1, qf2), obs, 0.2, actor.action_scale, actor.action_bias)
    torch.testing.assert_close(ours, loss.detach(), rtol=1e-5, atol=1e-6)
    assert_grads_close(grads(actor), theirs)
    assert all(p.grad.abs().sum() > 0 for p in actor.parameters())
    assert all(g is None for net in (qf1, qf2) for g in grads(net))


def test_min_grads_split_ties_as_autograd():
    a, b = tensor([1.0], [2.0], [3.0]), tensor([2.0], [2.0], [1.0])
    upstream = tensor([1.0], [1.0], [1.0])
    a_auto, b_auto = a.clone().requires_grad_(), b.clone().requires_grad_()
    (torch.min(a_auto, b_auto) * upstream).sum().backward()
    ga, gb = sac.min_grads(a, b, upstream)
    assert torch.equal(ga, a_auto.grad) and torch.equal(gb, b_auto.grad)
    assert ga.flatten().tolist() == [1.0, 0.5, 0.0]


def test_sac_alpha_step_is_cleanrls_and_its_direction():
    """-alpha * (log pi + target entropy), averaged: CleanRL's value and gradient; a step on it raises alpha while the
    policy's entropy (-log pi) is below the target and lowers it above."""
    actor, obs = sac_networks()[0], sac_batch()[0]
    log_alpha = torch.tensor([math.log(0.5)], requires_grad=True)
    torch.manual_seed(5)
    loss = cleanrl_alpha_loss(actor, log_alpha, obs, -2.0)
    loss.backward()
    theirs = log_alpha.grad.clone()
    log_alpha.grad = None
    torch.manual_seed(5)
    ours = sac.alpha_step(HandGradMLP(actor.network), log_alpha, obs, -2.0, actor.action_scale, actor.action_bias)
    torch.testing.assert_close(ours, loss.detach())
    torch.testing.assert_close(log_alpha.grad, theirs)
    for target_entropy, rises in ((100.0, True), (-100.0, False)):  # far above / below any entropy this policy has
        log_alpha = torch.zeros(1, requires_grad=True)
        sac.alpha_step(HandGradMLP(actor.network), log_alpha, obs, target_entropy, actor.action_scale,
                       actor.action_bias)
        torch.optim.SGD([log_alpha], lr=0.1).step()
        assert (log_alpha.item() > 0) == rises
    assert all(p.grad is None for p in actor.parameters())


@pytest.mark.parametrize("tau", [1.0, 0.0])
def test_sac_target_networks_soft_update(tau):
    """SAC's two target critics updated as one list: tau = 1 copies both online critics, tau = 0 keeps both."""
    torch.manual_seed(0)
    qfs = [sac.SoftQNetwork(3, 1, (8,)) for _ in range(2)]
    targets = [sac.SoftQNetwork(3, 1, (8,)) for _ in range(2)]
    before = [parameters(t) for t in targets]
    soft_update([p for t in targets for p in t.parameters()], [p for q in qfs for p in q.parameters()], tau)
    for qf, target, old in zip(qfs, targets, before, strict=True):
        assert same(parameters(target), parameters(qf) if tau == 1.0 else old)
        assert not same(parameters(qf), old)  # they started apart


def test_flat_parameters_step_as_the_separate_tensors_would():
    """One flat Parameter per optimizer: the layers' weights and gradients become views of it, a fused Adam step on it
    moves every weight as per-tensor Adam does, the NumPy twin follows, and the state dict stays the modules' own."""
    torch.manual_seed(0)
    nets = [mlp(5, [16], 3, "relu"), mlp(5, [16], 2, "relu")]
    plain = [mlp(5, [16], 3, "relu"), mlp(5, [16], 2, "relu")]
    for net, copy in zip(nets, plain):
        copy.load_state_dict(net.state_dict())
    flat = flat_parameters(*nets)
    twin = NumpyMLP(nets[0])
    assert flat.numel() == sum(p.numel() for net in nets for p in net.parameters())
    x = torch.randn(7, 5)
    ours, theirs = torch.optim.Adam([flat], lr=0.1, fused=True), torch.optim.Adam(
        [p for net in plain for p in net.parameters()], lr=0.1, fused=True)
    for _ in range(3):
        for group, optimizer in ((nets, None), (plain, theirs)):
            loss = sum(net(x).pow(2).mean() for net in group)
            if optimizer is None:
                grads = torch.autograd.grad(loss, [p for net in nets for p in net.parameters()])
                for p, g in zip((p for net in nets for p in net.parameters()), grads):
                    p.grad.copy_(g)  # into the views of flat.grad
            else:
                optimizer.zero_grad()
                loss.backward()
        ours.step()
        theirs.step()
    for net, copy in zip(nets, plain):
        for (name, a), b in zip(net.state_dict().items(), copy.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    np.testing.assert_allclose(twin(x.numpy()), nets[0](x).detach().numpy(), rtol=1e-5, atol=1e-6)
    target = flat_parameters(mlp(5, [16], 3, "relu"), grad=False)
    assert target.grad is None


def test_sac_bf16_multiplies_in_bfloat16_but_the_output_layers():
    """--bf16 runs the hidden layers' products in bfloat16 while Q-values and the Gaussian's parameters come from
    float32 output layers; the gradients come back in float32, close to float32's but not equal."""
    networks, batch = sac_networks(hidden=(16, 16)), sac_batch()
    acts = HandGradMLP(networks[1].network, torch.bfloat16).forward(torch.cat(batch[:2], 1))
    assert [a.dtype for a in acts] == [torch.float32, torch.bfloat16, torch.bfloat16, torch.float32]
    plain = networks[1](*batch[:2]).detach()
    assert torch.allclose(acts[-1], plain, rtol=0.05, atol=0.05) and not torch.equal(acts[-1], plain)
    found = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(5)
        sac.critic_step(*hand(*networks, dtype=dtype), batch, 0.2, 0.9, networks[0].action_scale,
                        networks[0].action_bias)
        found[dtype] = grads(networks[1])
    assert all(g.dtype == torch.float32 for g in found[torch.bfloat16])
    for bf, f32 in zip(found[torch.bfloat16], found[torch.float32]):
        assert torch.allclose(bf, f32, rtol=0.1, atol=0.05)
    assert not all(torch.equal(bf, f32) for bf, f32 in zip(found[torch.bfloat16], found[torch.float32]))


# --- PPO -----------------------------------------------------------------------------------------------------------


def test_truncation_bootstrap_adds_the_value_of_final_obs_to_truncated_steps_only():
    infos = {"final_obs": np.array([None, np.array([2.0]), np.array([3.0]), np.array([5.0])], dtype=object)}
    asked = []

    def value_fn(obs):
        asked.append(np.asarray(obs).copy())
        return 10 * np.asarray(obs)  # shape (n, 1), as the critic returns

    rewards = [1.0, 1.0, 1.0, 2.0]
    out = ppo.truncation_bootstrap(rewards, np.array([False, True, False, True]), infos, value_fn, 0.5)
    # env 1 and env 3 truncated (V = 20, 50); env 2 terminated (no bootstrap); env 0 went on
    np.testing.assert_allclose(out, [1.0, 11.0, 1.0, 27.0])
    assert out.dtype == np.float64 and rewards == [1.0, 1.0, 1.0, 2.0]
    np.testing.assert_array_equal(asked[0], [[2.0], [5.0]])  # the critic saw the final observations only
    asked.clear()
    np.testing.assert_allclose(ppo.truncation_bootstrap(rewards, np.zeros(4, bool), {}, value_fn, 0.5), rewards)
    assert asked == []


def gae_by_definition(rewards, values, dones, next_value, next_done, gamma, lam):
    """A_t = sum_k (gamma * lam)^k delta_{t+k} over the rest of t's episode (within the rollout), delta_s = r_s +
    gamma * V(s+1) - V(s), with V(s+1) = 0 when step s ended its episode."""
    steps, envs = rewards.shape
    values_next = np.vstack([values[1:], next_value[None]])
    ended = np.vstack([dones[1:], next_done[None]])  # ended[s]: step s ended its episode
    delta = rewards + gamma * values_next * (1 - ended) - values
    adv = np.zeros_like(rewards)
    for e in range(envs):
        for t in range(steps):
            for k, s in enumerate(range(t, steps)):
                adv[t, e] += (gamma * lam) ** k * delta[s, e]
                if ended[s, e]:
                    break
    return adv


def test_gae_with_a_truncation_and_a_termination():
    """Two envs, five steps: env 0 is truncated at step 1 (its reward bootstraps from V(final_obs) = 5), env 1
    terminates at step 2; neither GAE sum crosses its episode end, and the rollout's last step bootstraps."""
    gamma, lam = 0.9, 0.8
    raw = np.array([[1.0, 0.0], [2.0, -1.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 2.0]])
    truncated = np.zeros((5, 2), bool)
    truncated[1, 0] = True
    terminated = np.zeros((5, 2), bool)
    terminated[2, 1] = True
    infos = {"final_obs": np.array([np.array([0.5]), None], dtype=object)}
    rewards = np.stack([ppo.truncation_bootstrap(raw[t], truncated[t], infos, lambda o: 10 * np.asarray(o), gamma)
                        for t in range(5)])
    assert rewards[1, 0] == pytest.approx(2.0 + 0.9 * 5.0)
    values = np.array([[0.5, 1.0], [1.5, 0.0], [-1.0, 2.0], [0.0, 0.5], [2.0, -0.5]])
    dones = np.zeros((5, 2))
    dones[1:] = (truncated | terminated)[:-1]  # dones[t]: obs[t] starts a new episode
    next_value, next_done = np.array([4.0, -2.0]), np.array([0.0, 1.0])
    adv, returns = ppo.compute_gae(rewards, values, dones, next_value, next_done, gamma, lam)
    expected = gae_by_definition(rewards, values, dones, next_value, next_done, gamma, lam)
    np.testing.assert_allclose(adv, expected, rtol=1e-5)
    np.testing.assert_allclose(returns, expected + values, rtol=1e-5)
    # the same numbers by hand at the episode ends: step 1 of env 0 and step 2 of env 1 do not bootstrap
    assert adv[1, 0] == pytest.approx(6.5 - 1.5)
    assert adv[2, 1] == pytest.approx(3.0 - 2.0)
    # env 0's last step bootstraps from next_value; env 1's last step ended its episode (next_done)
    assert adv[4, 0] == pytest.approx(-1.0 + 0.9 * 4.0 - 2.0)
    assert adv[4, 1] == pytest.approx(2.0 + 0.5)
    assert adv[3, 0] == pytest.approx(1.0 + 0.9 * 2.0 - 0.0 + 0.72 * adv[4, 0])


def test_gae_one_env_by_hand():
    rewards, values, dones = [[1.0], [2.0], [3.0]], [[0.5], [0.5], [0.5]], [[0.0], [0.0], [1.0]]
    adv, ret = ppo.compute_gae(rewards, values, dones, [[4.0]], [0.0], 0.9, 1.0)
    np.testing.assert_allclose(ret[:, 0], [1.0 + 0.9 * 2.0, 2.0, 3.0 + 0.9 * 4.0], rtol=1e-6)


def test_annealed_learning_rate_goes_down_linearly():
    np.testing.assert_allclose([ppo.annealed_lr(1e-3, i, 4) for i in (1, 2, 3, 4)], [1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_clipped_surrogate_by_hand():
    """-min(r A, clip(r, 1 - eps, 1 + eps) A): a ratio past the clip earns no more than the clip's advantage."""
    advantages, ratio = tensor(1.0, -1.0, 2.0, -2.0), tensor(1.5, 0.5, 1.0, 1.1)
    # -A r vs -A clip(r): (-1.5, -1.2) -> -1.2; (0.5, 0.8) -> 0.8; (-2, -2) -> -2; (2.2, 2.2) -> 2.2
    assert ppo.policy_loss(advantages, ratio, 0.2, False).item() == pytest.approx((-1.2 + 0.8 - 2.0 + 2.2) / 4)
    # a ratio below the clip with a positive advantage and above it with a negative one are not clipped
    assert ppo.policy_loss(tensor(1.0, -1.0), tensor(0.5, 1.5), 0.2, False).item() == pytest.approx((-0.5 + 1.5) / 2)


def test_advantages_normalised_within_the_minibatch():
    advantages, ratio = tensor(1.0, -1.0, 2.0), tensor(1.1, 0.7, 1.0)
    a = advantages.numpy()
    normalised = (a - a.mean()) / (a.std(ddof=1) + 1e-8)
    expected = np.maximum(-normalised * ratio.numpy(), -normalised * np.clip(ratio.numpy(), 0.8, 1.2)).mean()
    assert ppo.policy_loss(advantages, ratio, 0.2, True).item() == pytest.approx(expected, rel=1e-6)
    # a constant minibatch normalises to zeros, not to NaNs
    assert ppo.policy_loss(tensor(3.0, 3.0), tensor(1.0, 1.0), 0.2, True).item() == 0.0
    # nor are advantages that differ by less than 1e-8 blown up: (a - mean) / (std + 1e-8) stays below 1 in size
    a = tensor(0.0, 1e-8)
    normalised = float((a[1] - a.mean()) / (a.std() + 1e-8))
    assert 0.25 < normalised < 0.5
    assert ppo.policy_loss(a, tensor(1.1, 0.9), 0.2, True).item() == pytest.approx(0.1 * normalised, rel=1e-4)


def test_value_loss_by_hand():
    newvalue, old, returns = tensor(1.0, 0.0, 0.0), tensor(0.5, 0.3, 0.3), tensor(2.0, 0.25, -1.0)
    # unclipped errors: 1, 0.0625, 1; the values kept within 0.2 of the old ones: 0.7, 0.1, 0.1
    # clipped errors: 1.69, 0.0225, 1.21; the larger of each pair: 1.69, 0.0625, 1.21
    assert ppo.value_loss(newvalue, returns, old, 0.2, True).item() == pytest.approx(0.5 * (1.69 + 0.0625 + 1.21) / 3)
    assert ppo.value_loss(newvalue, returns, old, 0.2, False).item() == pytest.approx(0.5 * (1 + 0.0625 + 1) / 3)


# --- the networks ----------------------------------------------------------------------------------------------------


def test_relu_mlp_in_place_has_the_values_and_gradients_of_out_of_place_relus():
    """mlp's ReLUs work in place (a memory pass fewer); outputs and every weight gradient equal F.relu's, bit for bit."""
    torch.manual_seed(0)
    net = mlp(5, [16, 16], 3, "relu")
    x = torch.randn(7, 5)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]

    def reference(inp):
        h = torch.nn.functional.relu(linears[0](inp))
        return linears[2](torch.nn.functional.relu(linears[1](h)))

    grads = []
    for forward in (net, reference):
        net.zero_grad()
        out = forward(x)
        (out * torch.arange(3.0)).sum().backward()
        grads.append([out.detach(), *[p.grad.clone() for p in net.parameters()]])
    assert same(*grads)
    assert grads[0][1].abs().sum() > 0  # the first layer's weights got gradients through both ReLUs


# --- the replay buffer and final_obs ---------------------------------------------------------------------------------


def test_real_next_obs_is_final_obs_where_an_episode_ended():
    next_obs = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    infos = {"final_obs": np.array([None, np.array([-2.0, -2.0]), np.array([-3.0, -3.0])], dtype=object)}
    real = real_next_obs(next_obs, np.array([False, True, False]), np.array([False, False, True]), infos)
    np.testing.assert_array_equal(real, [[1.0, 1.0], [-2.0, -2.0], [-3.0, -3.0]])
    np.testing.assert_array_equal(next_obs, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # the next step's obs are kept


def rows_of(t: int, num_envs: int) -> tuple:
    """Vector step t's transition of each env, every field encoding (t, env): obs 10t + env, next obs -(10t + env)."""
    code = 10 * t + np.arange(num_envs, dtype=np.float32) + 1
    return np.stack([code, code], axis=1), np.stack([-code, -code], axis=1), code.astype(np.int64), code, code % 2


def check_sample(rb: ReplayBuffer, steps: set[int]):
    """Samples are whole stored transitions of the given vector steps, and every (step, env) of them is drawn."""
    obs, actions, next_obs, rewards, terminations = (x.numpy() for x in rb.sample(2000))
    code = obs[:, 0]
    np.testing.assert_array_equal(obs[:, 1], code)
    np.testing.assert_array_equal(next_obs, -obs)
    np.testing.assert_array_equal(actions, code)
    np.testing.assert_array_equal(rewards, code)
    np.testing.assert_array_equal(terminations, code % 2)
    drawn = [(int(c - 1) // 10, int(c - 1) % 10) for c in code]
    assert set(drawn) == {(t, e) for t in steps for e in range(rb.num_envs)}
    counts = np.unique(np.array(drawn), axis=0, return_counts=True)[1]
    assert counts.max() < 1.25 * counts.mean() and counts.min() > 0.75 * counts.mean()  # uniformly


def test_replay_buffer_adds_samples_and_overwrites_the_oldest():
    np.random.seed(0)
    rb = ReplayBuffer(7, 2, 2, (), np.int64, torch.device("cpu"))  # room for 3 vector steps of 2 envs
    for t in range(2):
        rb.add(*rows_of(t, 2))
    assert len(rb) == 4 and not rb.full
    check_sample(rb, {0, 1})
    rb.add(*rows_of(2, 2))
    assert len(rb) == 6 and rb.full and rb.pos == 0
    check_sample(rb, {0, 1, 2})
    rb.add(*rows_of(3, 2))  # overwrites step 0
    assert len(rb) == 6 and rb.pos == 1
    check_sample(rb, {1, 2, 3})


def test_replay_buffer_keeps_box_actions_and_flattens_observations():
    np.random.seed(0)
    rb = ReplayBuffer(1, 1, 4, (2,), np.float32, torch.device("cpu"))  # smaller than num_envs: still one row
    obs = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    rb.add(obs, obs + 1, np.array([[0.5, -0.5]]), np.array([1.5]), np.array([True]))
    assert len(rb) == 1
    b_obs, b_actions, b_next, b_rewards, b_terms = rb.sample(3)
    np.testing.assert_array_equal(b_obs.numpy(), np.tile([0, 1, 2, 3], (3, 1)))
    np.testing.assert_array_equal(b_next.numpy(), np.tile([1, 2, 3, 4], (3, 1)))
    np.testing.assert_array_equal(b_actions.numpy(), np.tile([0.5, -0.5], (3, 1)))
    assert b_actions.dtype == torch.float32 and b_terms.tolist() == [1.0] * 3 and b_rewards.tolist() == [1.5] * 3


def test_replay_buffer_smaller_than_a_vector_step_keeps_the_last_step():
    np.random.seed(0)
    rb = ReplayBuffer(1, 2, 2, (), np.int64, torch.device("cpu"))
    for t in range(2):
        rb.add(*rows_of(t, 2))
    assert len(rb) == 2
    check_sample(rb, {1})


def test_replay_buffer_stores_final_obs_at_episode_ends():
    """What dqn.py and sac.py store for a step that ended episodes: the true last observation, not the reset one."""
    rb = ReplayBuffer(4, 2, 1, (), np.int64, torch.device("cpu"))
    obs, next_obs = np.array([[0.0], [1.0]]), np.array([[100.0], [101.0]])  # both envs were reset
    infos = {"final_obs": np.array([np.array([7.0]), np.array([8.0])], dtype=object)}
    terminated, truncated = np.array([True, False]), np.array([False, True])
    rb.add(obs, real_next_obs(next_obs, terminated, truncated, infos), np.array([1, 0]), np.array([1.0, 2.0]),
           terminated)
    np.testing.assert_array_equal(rb.next_observations[0], [[7.0], [8.0]])
    np.testing.assert_array_equal(rb.terminations[0], [1.0, 0.0])  # the truncated one bootstraps


# --- a run's evaluations and record ----------------------------------------------------------------------------------


@dataclass
class RunArgs(BaselineArgs):
    env_id: str = "NoiseWorld-Board0-v0"
    total_timesteps: int = 350
    num_envs: int = 1
    eval_every: int = 100
    periodic_eval_episodes: int = 3
    eval_episodes: int = 4


class FakeClock:
    """Test double of the time module: time() returns `now`, which the test moves."""

    def __init__(self):
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def fake_run_episodes(calls: list, clock: FakeClock | None = None, seconds: float = 0.0):
    """Test double of run_episodes: episode i of an evaluation returns 10 * i in 5 + i steps, taking `seconds`."""

    def run(env_id, policy, seeds, env_kwargs, on_episode_end=None):
        calls.append((env_id, list(seeds), env_kwargs))
        if clock:
            clock.now += seconds
        n = len(seeds)
        return Episodes(list(seeds), 10.0 * np.arange(n), 5 + np.arange(n), None)

    return run


def test_periodic_evaluations_at_each_multiple_of_eval_every(tmp_path, monkeypatch):
    """An evaluation at step 0 and at the first step at or past each multiple of --eval-every, none at or past the
    end (the final evaluation is finish's); each on the held-out seeds, each a curve point."""
    calls = []
    monkeypatch.setattr(baselines, "run_episodes", fake_run_episodes(calls))
    args = RunArgs(run_dir=str(tmp_path), env_kwargs='{"board": 0}')
    run = BaselineRun(args, "dqn", {"board": 0})
    checkpoints = []
    for step in range(0, 350, 3):  # 0, 3, ..., 348: past 100 at 102, 200 at 201, 300 at 300
        run.maybe_evaluate(lambda: checkpoints.append(1) or small_checkpoint(), step)
    points = [p["env_steps"] for p in run.recorder.curve]
    assert points == [0, 102, 201, 300] and len(checkpoints) == 4
    assert calls == [("NoiseWorld-Board0-v0", heldout_seeds(3), {"board": 0})] * 4
    assert [p["mean_return"] for p in run.recorder.curve] == [10.0] * 4  # (0 + 10 + 20) / 3
    assert [p["episodes"] for p in run.recorder.curve] == [3] * 4
    assert run.eval_env_steps == 4 * (5 + 6 + 7)
    run.maybe_evaluate(small_checkpoint, 350)  # the end: no periodic evaluation
    assert len(run.recorder.curve) == 4


def test_no_periodic_evaluation_at_the_last_step(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(baselines, "run_episodes", fake_run_episodes(calls))
    run = BaselineRun(RunArgs(run_dir=str(tmp_path), total_timesteps=300), "dqn", {})
    for step in (0, 100, 200, 300):
        run.maybe_evaluate(small_checkpoint, step)
    assert [p["env_steps"] for p in run.recorder.curve] == [0, 100, 200]


def small_checkpoint() -> dict:
    torch.manual_seed(0)
    args = RunArgs()
    return dqn.checkpoint(args, {}, dqn.QNetwork(29, 4, (4,)), gym.spaces.Discrete(4), (29,))


def test_episodes_counted_and_last_return_logged(tmp_path):
    run = BaselineRun(RunArgs(run_dir=str(tmp_path), save_model=False), "dqn", {})
    run.log_episodes({}, 10)
    assert run.episodes == 0 and run.last_return is None
    infos = {"episode": {"r": np.array([5.0, -1.0, 3.0]), "l": np.array([4, 2, 9])},
             "_episode": np.array([True, False, True])}
    run.log_episodes(infos, 20)
    assert run.episodes == 2 and run.last_return == 4.0
    run.log_episodes({"episode": infos["episode"], "_episode": np.array([False, True, False])}, 30)
    assert run.episodes == 3 and run.last_return == -1.0


def test_record_totals_exclude_evaluation_time(tmp_path, monkeypatch):
    """record.json's totals: every training step and episode, the evaluations' own steps apart, and a training time
    (and so steps per second) that leaves out the time spent evaluating."""
    clock, calls = FakeClock(), []
    monkeypatch.setattr(baselines, "time", clock)
    monkeypatch.setattr(baselines, "run_episodes", fake_run_episodes(calls, clock, seconds=7.0))
    run = BaselineRun(RunArgs(run_dir=str(tmp_path)), "dqn", {})
    clock.now += 50.0  # set-up is not training time
    run.start_clock()
    run.maybe_evaluate(small_checkpoint, 0)  # 7 s evaluating
    clock.now += 12.3456  # training
    run.log_episodes({"episode": {"r": np.array([1.0]), "l": np.array([25])}, "_episode": np.array([True])}, 25)
    assert run.train_time == pytest.approx(12.3456) and run.sps(200) == int(200 / 12.3456)
    record = run.finish(small_checkpoint(), 349)
    totals = record["totals"]
    assert totals == {"env_steps": 349, "episodes": 1, "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "cost_usd": None, "eval_env_steps": (5 + 6 + 7) + (5 + 6 + 7 + 8),  # periodic and final
                      "train_time_s": 12.346, "sps": int(349 / 12.3456), "planned_env_steps": 350,
                      "stopped_early": False}
    assert record["final_eval"]["episode_seeds"] == heldout_seeds(4) and record["final_eval"]["mean_return"] == 15.0
    assert [p["env_steps"] for p in record["curve"]] == [0, 349] and record["curve"][-1]["episodes"] == 4
    assert load_record(tmp_path)["totals"] == totals and (tmp_path / "model.pt").is_file()


def test_the_early_stop_needs_its_evaluations_in_a_row(tmp_path, monkeypatch, capsys):
    """--early-stop-fraction: a run stops once --early-stop-evals periodic evaluations in a row reach the target (one
    below it starts the count again) and its record says so; without a target (the default) it never stops."""
    means = iter([10.0, 11.0, 9.9, 10.0, 12.0, 30.0] * 2)

    def scripted(env_id, policy, seeds, env_kwargs, on_episode_end=None):  # test double of run_episodes
        return Episodes(list(seeds), np.full(len(seeds), next(means)), np.full(len(seeds), 5), None)

    monkeypatch.setattr(baselines, "run_episodes", scripted)
    args = RunArgs(run_dir=str(tmp_path), total_timesteps=1000, eval_every=10, early_stop_fraction=0.5,
                   early_stop_evals=3)
    for stop_target, expected in ((10.0, [False] * 5 + [True]), (None, [False] * 6)):
        run = BaselineRun(args, "dqn", {}, stop_target)
        stopped = []
        for step in range(0, 60, 10):
            run.maybe_evaluate(small_checkpoint, step)
            stopped.append(run.stopped_early)
        assert stopped == expected
        said = [line for line in capsys.readouterr().out.splitlines() if "early stop" in line]
        assert said == (["early stop at global_step=50: 3 evaluations in a row reached a mean return of 10 "
                         "(--early-stop-fraction 0.5 of the optimum)"] if stop_target else [])
    means = iter([40.0])
    run = BaselineRun(args, "dqn", {}, 10.0)
    run.held = 3
    totals = run.finish(small_checkpoint(), 50)["totals"]
    assert (totals["env_steps"], totals["planned_env_steps"], totals["stopped_early"]) == (50, 1000, True)


def test_on_a_task_scored_by_success_the_early_stop_holds_a_success_rate(tmp_path, monkeypatch, capsys):
    """Meta-World is scored by success (its expert's return is no upper bound), so its early stop holds a success
    rate: a return far above the expert's with no success does not stop it."""
    rates = iter([0.0, 0.95, 0.9, 0.92])

    def scripted(env_id, policy, seeds, env_kwargs, on_episode_end=None):  # test double of run_episodes
        rate = next(rates)
        return Episodes(list(seeds), np.full(len(seeds), 10_000.0), np.full(len(seeds), 500),
                        np.arange(len(seeds)) < round(rate * len(seeds)))

    monkeypatch.setattr(baselines, "run_episodes", scripted)
    args = RunArgs(env_id="MetaWorld-ButtonPress-v0", run_dir=str(tmp_path), total_timesteps=1000, eval_every=10,
                   periodic_eval_episodes=20, early_stop_fraction=0.9, early_stop_evals=3)
    target = baselines.early_stop_target("sac.py", args, {})
    assert target == 0.9
    run = BaselineRun(args, "sac", {}, target)
    stopped = []
    for step in range(0, 40, 10):
        run.maybe_evaluate(small_checkpoint, step)
        stopped.append(run.stopped_early)
    assert stopped == [False, False, False, True]
    assert "3 evaluations in a row reached a success rate of 0.9" in capsys.readouterr().out


@pytest.mark.parametrize("flags, target", [({}, None), ({"early_stop_fraction": 0.9}, 0.9 * 34.914258),
                                           ({"early_stop_fraction": 1.0, "early_stop_evals": 1}, 34.914258),
                                           # random -42.91, optimum -4.44: half way up; random 107.83, optimum
                                           # 590.33: half way up (349.08) is above half the optimum (295.17)
                                           ({"early_stop_fraction": 0.5, "env_id": "Reacher-v5"}, -23.675),
                                           ({"early_stop_fraction": 0.5, "env_id": "Humanoid-v5"}, 349.08)])
def test_the_early_stop_target_is_a_fraction_of_the_optimum(flags, target):
    found = baselines.early_stop_target("dqn.py", RunArgs(**flags), {})
    assert found == (None if target is None else pytest.approx(target))


@pytest.mark.parametrize("flags, message", [
    ({"early_stop_fraction": -0.1}, "--early-stop-fraction must be in (0, 1] (0: off), got -0.1"),
    ({"early_stop_fraction": 1.01}, "--early-stop-fraction must be in (0, 1] (0: off), got 1.01"),
    ({"early_stop_fraction": 0.5, "early_stop_evals": 0}, "--early-stop-evals must be at least 1, got 0"),
    ({"early_stop_fraction": 0.5, "env_id": "CartPole-v1"},
     "--early-stop-fraction needs a suite task with a known optimal return; CartPole-v1 is not one"),
])
def test_the_early_stop_refuses_what_it_cannot_stop_at(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        baselines.early_stop_target("dqn.py", RunArgs(**flags), {})
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith(f"dqn.py: error: {message}")


@pytest.mark.parametrize("optimal, target", [(-1.0, None), (0.5, 0.25), (-0.5, -0.75)])
def test_the_early_stop_needs_an_optimum_above_random(optimal, target, monkeypatch, capsys):
    """Random returns -1 here: 0.5 of an optimum of 0.5 is 0.25 (above half way, -0.25); of -0.5, half way, -0.75."""
    scores = lambda env_id, **kwargs: ReferenceScores(-1.0, optimal, "a test double")  # noqa: E731
    monkeypatch.setattr(baselines.registry, "reference_scores", scores)
    if target is None:
        with pytest.raises(SystemExit):
            baselines.early_stop_target("dqn.py", RunArgs(early_stop_fraction=0.5), {})
        assert ("needs an optimal return above the random one; NoiseWorld-Board0-v0's are -1 and -1"
                in capsys.readouterr().err)
    else:
        assert baselines.early_stop_target("dqn.py", RunArgs(early_stop_fraction=0.5), {}) == target


def test_no_record_without_save_model(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(baselines, "run_episodes", fake_run_episodes(calls))
    run = BaselineRun(RunArgs(run_dir=str(tmp_path), save_model=False), "dqn", {})
    assert run.finish(small_checkpoint(), 10) is None
    assert calls == [("NoiseWorld-Board0-v0", heldout_seeds(4), {})]  # the final evaluation still runs
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "record.json").exists()
    assert [json_point["env_steps"] for json_point in run.recorder.curve] == [10]


def test_steps_per_second_of_a_short_training_time(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(baselines, "time", clock)
    monkeypatch.setattr(baselines, "run_episodes", fake_run_episodes([]))
    run = BaselineRun(RunArgs(run_dir=str(tmp_path)), "dqn", {})
    run.start_clock()
    assert run.sps(100) > 10**10  # no training time yet: no division by zero
    clock.now += 0.5
    assert run.sps(100) == 200
    assert run.finish(small_checkpoint(), 100)["totals"]["sps"] == 200
    clock.now = run.start_time  # a run that ends as it starts
    assert run.finish(small_checkpoint(), 100)["totals"]["sps"] > 10**10


class RecordingBar:
    """Test double of the live progress bar: always due to be redrawn; records every position and field."""

    def __init__(self):
        self.moves = []

    def due(self) -> bool:
        return True

    def move_to(self, position, **fields) -> None:
        self.moves.append((position, fields))

    def restart(self, total) -> None:
        pass

    def line(self, text) -> None:
        pass

    def close(self) -> None:
        pass


def test_live_bar_shows_steps_sps_last_return_and_next_evaluation(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(baselines, "time", clock)
    monkeypatch.setattr(baselines, "run_episodes", fake_run_episodes([]))
    run = BaselineRun(RunArgs(run_dir=str(tmp_path), total_timesteps=3000, eval_every=1000), "dqn", {})
    run.progress = bar = RecordingBar()
    run.start_clock()
    run.maybe_evaluate(small_checkpoint, 0)
    clock.now += 2.0
    run.log_episodes({}, 20)
    run.log_episodes({"episode": {"r": np.array([-12.34567]), "l": np.array([3])}, "_episode": np.array([True])}, 40)
    run.maybe_evaluate(small_checkpoint, 2000)  # the next one would be at the end: the final evaluation
    run.log_episodes({}, 2000)
    assert bar.moves == [(20, {"SPS": 10, "next_eval": "1,000"}),
                         (40, {"SPS": 20, "next_eval": "1,000", "return": "-12.35"}),
                         (2000, {"SPS": 1000, "next_eval": "end", "return": "-12.35"})]
