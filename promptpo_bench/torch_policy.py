"""Torch policies of the classical baselines: the one MLP builder, its NumPy twin for acting, its hand-written
gradients and flat parameters for SAC's update, and `model.pt` back to a BatchPolicy.

`algorithms/ppo.py`, `dqn.py` and `sac.py` build the network that acts (PPO's actor, DQN's Q-network,
SAC's actor) with `mlp` below and save a self-describing checkpoint, so any run of any algorithm is
re-evaluated from its `model.pt` alone, without importing the algorithm file:

    {"format": 1, "algorithm": "ppo"|"dqn"|"sac", "kind": "discrete"|"box", "env_id": str, "env_kwargs": dict,
     "obs_shape": [int, ...],
     "action_space": {"type": "Discrete", "n": int, "start": int}
                   | {"type": "Box", "shape": [int, ...], "low": Tensor, "high": Tensor},
     "arch": {"in_dim": int, "hidden": [int, ...], "out_dim": int, "activation": "tanh"|"relu"},
     "head": "argmax" | "clip" | "tanh",
     "state_dict": the weights of `mlp(**arch)` (the deterministic actor only),
     "obs_normalization": None | {"mean": Tensor, "var": Tensor, "epsilon": float, "clip": float}}

Heads (all deterministic): `argmax` takes the largest output (PPO-Discrete logits, DQN Q-values);
`clip` clips the Gaussian mean to the Box bounds (PPO-Box); `tanh` squashes the first `act_dim`
outputs (SAC's mean; the remaining outputs are its log-std) and rescales them to the bounds.
Observations are flattened, normalised as `clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`
when the checkpoint has `obs_normalization`, and fed as float32.

Checkpoints load with `torch.load(..., weights_only=True)`: plain tensors, numbers, strings, lists
and dicts only, so a file from an untrusted leaderboard entry cannot run code.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import BenchError

FORMAT = 1
# ReLU in place: the same values and gradients (autograd checks in-place safety), one memory pass fewer over each
# hidden activation; for SAC's 256-wide layers at batch 256 that is ~9% of an update (docs/performance.md)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": functools.partial(nn.ReLU, inplace=True)}
HEADS = ("argmax", "clip", "tanh")


def mlp(in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int, activation: str = "tanh") -> nn.Sequential:
    """Linear-activation-...-Linear, no activation on the output; the only network shape the loader knows."""
    if activation not in ACTIVATIONS:
        raise BenchError(f"unknown activation {activation!r} (known: {', '.join(ACTIVATIONS)})")
    layers: list[nn.Module] = []
    last = int(in_dim)
    for width in hidden:
        layers += [nn.Linear(last, int(width)), ACTIVATIONS[activation]()]
        last = int(width)
    layers.append(nn.Linear(last, int(out_dim)))
    return nn.Sequential(*layers)


class NumpyMLP:
    """The forward pass of an `mlp` in NumPy, on views of its weights (so it follows in-place optimizer steps).

    Acting on the few observations of one vector step, torch's per-operation overhead is most of the cost of a
    forward pass; this one is several times cheaper. Weights off the CPU are no host memory: then it calls the
    module itself.
    """

    def __init__(self, net: nn.Sequential):
        self.net = net
        self.device = next(net.parameters()).device
        linears = [m for m in net if isinstance(m, nn.Linear)]
        self.layers = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears] \
            if self.device.type == "cpu" else []
        self.tanh = any(isinstance(m, nn.Tanh) for m in net)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if not self.layers:
            with torch.no_grad():
                return self.net(torch.as_tensor(x, device=self.device)).cpu().numpy()
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = np.tanh(x) if self.tanh else np.maximum(x, 0.0)
        return x


class HandGradMLP:
    """A relu `mlp`'s forward pass keeping its activations, and its backward pass written out, without autograd.

    SAC's update is small operations around 17 products of 256x256 matrices; autograd's graph, its bookkeeping and
    the ops it adds cost ~20% of it (docs/performance.md). `backward` writes the same gradients into the parameters'
    `.grad` (tests check them against autograd). `hidden_dtype` bfloat16 multiplies the hidden layers in bfloat16,
    autocast's way (operands cast, bfloat16 results and gradients), and keeps the output layer in float32.
    """

    def __init__(self, net: nn.Sequential, hidden_dtype: torch.dtype = torch.float32):
        if any(not isinstance(m, (nn.Linear, nn.ReLU)) for m in net):
            raise BenchError("HandGradMLP needs an mlp of Linear layers and ReLUs")
        self.layers = [(m.weight, m.bias) for m in net if isinstance(m, nn.Linear)]
        self.dtype = hidden_dtype

    def _cast(self, k: int, tensor: torch.Tensor) -> torch.Tensor:
        """A hidden layer's operand in `hidden_dtype` (itself when it is already); the output layer's as it is."""
        return tensor if k == len(self.layers) - 1 else tensor.to(self.dtype)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[input, each hidden layer's relu output, the output]; the output is acts[-1], in float32."""
        acts, last = [x], len(self.layers) - 1
        for k in range(len(self.layers)):
            weight, bias = (self._cast(k, t) for t in self.layers[k])
            x = torch.addmm(bias, x.to(weight.dtype), weight.t())
            if k < last:
                x.relu_()
            acts.append(x)
        return acts

    @torch.no_grad()
    def backward(self, acts: list[torch.Tensor], grad: torch.Tensor, weight_grads: bool = True,
                 input_grad: bool = False) -> torch.Tensor | None:
        """Backpropagate d loss / d output through the layers: each weight's and bias's gradient into its `.grad`
        (unless `weight_grads` is False), and d loss / d input returned if `input_grad`."""
        for k in range(len(self.layers) - 1, -1, -1):
            weight = self._cast(k, self.layers[k][0])
            grad = grad.to(weight.dtype)
            if weight_grads:
                _write_grad(self.layers[k][0], grad.t(), acts[k].to(weight.dtype))
                _write_grad(self.layers[k][1], grad)
            if k == 0:
                return grad.mm(weight).float() if input_grad else None
            grad = torch.ops.aten.threshold_backward(grad.mm(weight).to(acts[k].dtype), acts[k], 0)
        return None


def _write_grad(param: nn.Parameter, a: torch.Tensor, b: torch.Tensor | None = None) -> None:
    """param.grad = a @ b (a weight's gradient) or a summed over rows (a bias's), written into `.grad` in place where
    it exists (a view of `flat_parameters`' gradient) and in float32."""
    if param.grad is None:
        param.grad = (a.mm(b) if b is not None else a.sum(0)).float()
    elif a.dtype != param.grad.dtype:
        param.grad.copy_(a.mm(b) if b is not None else a.sum(0))
    elif b is not None:
        torch.mm(a, b, out=param.grad)
    else:
        torch.sum(a, 0, out=param.grad)


@torch.no_grad()
def flat_parameters(*modules: nn.Module, grad: bool = True) -> nn.Parameter:
    """One contiguous Parameter holding all the modules' parameters, each of which becomes a view of it, and likewise
    its `.grad`: a fused Adam then steps them all in one kernel call instead of one per tensor (for SAC's
    Q-networks at two threads, ~0.5 ms an update less), and a soft update is two operations. `grad` False: no
    gradient buffer (target networks)."""
    params = [p for m in modules for p in m.parameters()]
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat) if grad else None
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset:offset + n].view_as(p)
        if grad:
            p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    return flat


def make_checkpoint(algorithm: str, env_id: str, env_kwargs: dict, network: nn.Module, arch: dict, head: str,
                    action_space, obs_shape, obs_normalization: dict | None = None) -> dict[str, Any]:
    """The model.pt dict (module docstring): the acting network's weights and how to rebuild it."""
    return {"format": FORMAT, "algorithm": algorithm, "kind": "discrete" if head == "argmax" else "box",
            "env_id": env_id, "env_kwargs": env_kwargs, "obs_shape": list(obs_shape),
            "action_space": describe_action_space(action_space), "arch": dict(arch), "head": head,
            "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
            "obs_normalization": obs_normalization}


def describe_action_space(space) -> dict[str, Any]:
    """The `action_space` entry of a checkpoint (Discrete or Box only)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape),
                "low": torch.as_tensor(space.low, dtype=torch.float32).clone(),
                "high": torch.as_tensor(space.high, dtype=torch.float32).clone()}
    raise BenchError(f"torch policies support Discrete and Box action spaces, not {type(space).__name__}")


def _check_space(checkpoint: dict[str, Any], space) -> None:
    """A one-line error when the checkpoint's action space is not `space`."""
    saved = checkpoint["action_space"]
    want = describe_action_space(space)
    if saved["type"] != want["type"]:
        raise BenchError(f"model.pt acts in a {saved['type']} space but the task's actions are {space}")
    if saved["type"] == "Discrete" and (saved["n"], saved.get("start", 0)) != (want["n"], want["start"]):
        raise BenchError(f"model.pt has Discrete({saved['n']}) actions but the task's actions are {space}")
    if saved["type"] == "Box" and (list(saved["shape"]) != want["shape"]
                                   or not torch.allclose(saved["low"], want["low"])
                                   or not torch.allclose(saved["high"], want["high"])):
        raise BenchError(f"model.pt has Box{tuple(saved['shape'])} actions with other bounds than the task's {space}")


class TorchPolicy:
    """A deterministic BatchPolicy from a checkpoint dict (see the module docstring)."""

    def __init__(self, checkpoint: dict[str, Any], device: str | torch.device = "cpu"):
        if checkpoint.get("format") != FORMAT:
            raise BenchError(f"model.pt has format {checkpoint.get('format')!r}; this version reads format {FORMAT}")
        if checkpoint["head"] not in HEADS:
            raise BenchError(f"model.pt has unknown head {checkpoint['head']!r} (known: {', '.join(HEADS)})")
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        arch = checkpoint["arch"]
        self.net = mlp(arch["in_dim"], arch["hidden"], arch["out_dim"], arch["activation"]).to(self.device)
        try:
            self.net.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as e:
            raise BenchError(f"model.pt weights do not match its arch {arch}: {str(e).splitlines()[0]}") from None
        self.net.eval()
        self.head = checkpoint["head"]
        self.space = checkpoint["action_space"]
        norm = checkpoint.get("obs_normalization")
        self.norm = None if norm is None else (norm["mean"].to(self.device).float(),
                                               torch.sqrt(norm["var"].to(self.device).float() + float(norm["epsilon"])),
                                               float(norm["clip"]))
        if self.space["type"] == "Box":
            self.low = self.space["low"].to(self.device).flatten()
            self.high = self.space["high"].to(self.device).flatten()
            self.act_dim = int(np.prod(self.space["shape"]))

    @torch.no_grad()
    def actions(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Deterministic actions of a batch of observations, as a tensor."""
        # a copy: observations may be read-only views (np.frombuffer), which torch warns it cannot guard
        x = torch.as_tensor(np.array(obs, dtype=np.float32) if not isinstance(obs, torch.Tensor) else obs,
                            dtype=torch.float32, device=self.device)
        x = x.reshape(x.shape[0], -1)
        if self.norm is not None:
            mean, std, clip = self.norm
            x = torch.clamp((x - mean) / std, -clip, clip)
        out = self.net(x)
        if self.head == "argmax":
            return out.argmax(dim=1) + int(self.space.get("start", 0))
        if self.head == "clip":
            return torch.maximum(torch.minimum(out[:, :self.act_dim], self.high), self.low)
        squashed = torch.tanh(out[:, :self.act_dim])  # "tanh": SAC's mean through its squashing
        action = self.low + (squashed + 1.0) * 0.5 * (self.high - self.low)
        return torch.maximum(torch.minimum(action, self.high), self.low)

    def act(self, episode_ids: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> np.ndarray:
        a = self.actions(obs).cpu().numpy()
        if self.space["type"] == "Discrete":
            return a.astype(np.int64)
        return a.reshape((a.shape[0], *self.space["shape"]))


def checkpoint_path(path_or_run_dir: str | Path) -> Path:
    """`model.pt` itself, or the `model.pt` of a run directory (as its record.json names it, if any)."""
    path = Path(path_or_run_dir)
    if path.is_dir():
        record = path / "record.json"
        name = "model.pt"
        if record.is_file():
            import json

            try:
                name = json.loads(record.read_text()).get("policy", {}).get("path", name)
            except (ValueError, AttributeError):
                pass
        path = path / name
    if not path.is_file():
        raise BenchError(f"{path} does not exist (expected a model.pt or a run directory holding one)")
    return path


def load_checkpoint(path_or_run_dir: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded safely (`weights_only=True`)."""
    path = checkpoint_path(path_or_run_dir)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unreadable or unsafe file is the user's input error)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BenchError(f"{path} is not a loadable model.pt: {reason}") from None
    if not isinstance(checkpoint, dict) or "arch" not in checkpoint or "state_dict" not in checkpoint:
        raise BenchError(f"{path} is not a promptpo-bench model.pt (no arch/state_dict)")
    return checkpoint


def load_torch_policy(path_or_run_dir: str | Path, action_space=None, observation_space=None) -> TorchPolicy:
    """A deterministic BatchPolicy from `model.pt` (or a run directory); checks the spaces when given."""
    checkpoint = load_checkpoint(path_or_run_dir)
    if action_space is not None:
        _check_space(checkpoint, action_space)
    if observation_space is not None:
        want = int(np.prod(observation_space.shape))
        if int(checkpoint["arch"]["in_dim"]) != want:
            raise BenchError(f"model.pt takes {checkpoint['arch']['in_dim']}-dim observations but the task's are "
                             f"{tuple(observation_space.shape)}")
    return TorchPolicy(checkpoint)
