"""Batched DQN: the K members of a Crypto Module's ensemble trained together as one network.

Each member is exactly the network stable-baselines3's DQN builds for a Crypto Module
(:func:`agents.crypto_module.build_algo`: the SAM's network, :class:`agents.networks.SAMCNN` or
:class:`agents.networks.LatestMLP`, and the Q head), with
its own initial weights (seeded from its seed). The K networks are stacked
(``torch.func.stack_module_state``) and run as one (``torch.func.functional_call`` under
``torch.vmap``); one Adam steps all of them, which is K independent Adams since the loss is a
sum over members and Adam works element by element. The K x ``n_envs`` training episodes are
one :class:`envs.CryptoModuleVecEnv` stepped in one NumPy call, member k's environments seeded
``seed_k + i`` as its own vector environment would be.

The loop follows SB3's DQN step for step (``learning_starts``, ``train_freq`` and
``gradient_steps`` in vector steps, the target copy every ``target_update_interval // n_envs``
vector steps, the linear exploration schedule, Huber loss, gradient norm clipped to
``max_grad_norm`` per member), with two differences: epsilon-greedy draws one coin per
environment (SB3 draws one for the whole vector of environments), from the member's own
generator (seeded with its seed); and the replay buffer holds bar numbers and positions, not
observations: a Crypto Module's observation is the environment's precomputed row of that bar
with the position row written in, so the buffer rebuilds exactly the observation SB3 would
have stored, in a few bytes per transition instead of kilobytes. Episodes end by truncation
only, so no transition is terminal (as SB3 treats timeouts).

Every ``eval_freq`` steps (per member) ``evaluate`` receives all members' validation decisions
(one stacked forward; with the position observed, both position values at once and then the
position recurrence) and says which members improved; their weights are kept. At the end each
member's kept weights go back into its SB3 DQN (``q_net`` and ``q_net_target``), so the module
is saved and loaded as any other.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN
from torch.func import functional_call, stack_module_state

from envs import CryptoModuleEnv, CryptoModuleVecEnv

from .crypto_module import walk_from_cash
from .networks import SAMCNN, LatestMLP

# Hyper-parameters the batched learner implements, with SB3's defaults.
_DQN_DEFAULTS = inspect.signature(DQN.__init__).parameters
SUPPORTED = (
    "learning_rate",
    "buffer_size",
    "learning_starts",
    "batch_size",
    "tau",
    "gamma",
    "train_freq",
    "gradient_steps",
    "target_update_interval",
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
    "max_grad_norm",
)


def dqn_hyperparams(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """SB3's DQN defaults updated by ``hyperparams``; a key this learner does not implement is an error."""
    unknown = sorted(set(hyperparams) - set(SUPPORTED))
    if unknown:
        raise ValueError(f"the batched learner does not implement {unknown}: use backend 'sb3' for them")
    hp = {k: _DQN_DEFAULTS[k].default for k in SUPPORTED} | dict(hyperparams)
    for key in ("learning_rate", "train_freq"):
        if not isinstance(hp[key], (int, float)) or isinstance(hp[key], bool):
            raise ValueError(f"the batched learner takes a number for {key}, got {hp[key]!r}: use backend 'sb3'")
    return hp


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op torch threads (None: leave as is), restoring the previous number.

    The SAM's networks are tiny: more threads than one only spin beside other processes.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StackedQ:
    """K SB3 ``QNetwork`` s as one: stacked parameters, one vmapped forward."""

    def __init__(self, nets: Sequence[torch.nn.Module], device: torch.device):
        params, _ = stack_module_state(list(nets))
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self._base = copy.deepcopy(nets[0]).to("meta")

    def _one(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._base, params, (x,))

    def __call__(self, obs: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Q-values (K, B, actions) of observations (K, B, ...) (each member its own batch)."""
        return torch.vmap(self._one)(self.params if params is None else params, obs)

    def shared(self, obs: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Q-values (K, B, actions) of one batch of observations (B, ...) seen by every member."""
        return torch.vmap(self._one, in_dims=(0, None))(self.params if params is None else params, obs)

    def detached(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.params.items()}


class CryptoCashQ:
    """The stacked Q-networks' forward for Crypto Module observations, computing the function of
    :class:`StackedQ` with less work (a training hot path; the tests compare the two).

    * The cash row of an observation is the same at every bar but for its position feature
      (1 - position), and the first three convolutions read each row alone: the cash row's
      features after them are computed once for each position value (0, 1) and looked up.
    * Observations come channels-last, ``(bars, time, features)`` for the crypto row, so no
      permutation is needed; a time convolution is one matrix product over the windows of its
      input: the shifted views side by side where the input needs a gradient, one strided view
      (``unfold``) where it does not.
    """

    def __init__(self, table: torch.Tensor, first_bar: int, observe_position: bool, skip: int = 0):
        # table (T, f, 2, n) as the environment's obs_tensor; skip: the window positions the
        # first convolution leaves out at the start (``TimeConv.offset``)
        self.skip = skip
        self.crypto = table[:, :, 0, :].transpose(1, 2).contiguous()  # (T, n, f)
        cash = table[first_bar, :, 1, :].T.contiguous()  # (n, f): the same for every bar from first_bar
        if observe_position:
            self.cash = torch.stack([cash.clone(), cash.clone()])
            self.cash[0, :, -1], self.cash[1, :, -1] = 1.0, 0.0  # position 0: cash weight 1; position 1: 0
        else:
            self.cash = cash[None]
        self.observe_position = observe_position

    @staticmethod
    def cash_row_is_constant(table: np.ndarray, first_bar: int, observe_position: bool) -> bool:
        rows = table[first_bar:, : -1 if observe_position else None, 1, :]
        return bool(np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)))

    @staticmethod
    def _time_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, k: int, stride: int) -> torch.Tensor:
        """TimeConv on stacked channels-last x (K, B, n, c) with weight (K, o, k*c): (K, B, t, o)."""
        K, B, n, c = x.shape
        o = w.shape[1]
        t = (n - k) // stride + 1
        if k == n:
            return torch.baddbmm(b[:, None], x.reshape(K, B, n * c), w.transpose(1, 2)).view(K, B, 1, o)
        if x.requires_grad:  # the shifted views side by side: a cheap backward to x
            span = stride * (t - 1) + 1
            views = torch.cat([x[:, :, j : j + span : stride] for j in range(k)], dim=-1)
        else:  # no gradient to x (the observations, or no grad at all): the windows as one strided view
            views = x.unfold(2, k, stride).transpose(3, 4)  # (K, B, t, k, c)
        return torch.baddbmm(b[:, None], views.reshape(K, B * t, k * c), w.transpose(1, 2)).view(K, B, t, o)

    def _rows(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """conv1..conv3 on rows x (K, B, n, f): (K, B, channels)."""
        e = "features_extractor."
        x = x[:, :, self.skip :]
        h = torch.relu(self._time_conv(x, p[e + "conv1.linear.weight"], p[e + "conv1.linear.bias"], 3, 2))
        h = torch.relu(self._time_conv(h, p[e + "conv2.linear.weight"], p[e + "conv2.linear.bias"], 3, 1))
        w3 = p[e + "conv3.linear.weight"]
        h = torch.relu(self._time_conv(h, w3, p[e + "conv3.linear.bias"], w3.shape[2] // h.shape[3], 1))
        return h[:, :, 0]

    def __call__(self, p: dict[str, torch.Tensor], bars: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Q-values (K, B, actions) of the observations at ``bars`` (K, B) holding ``positions``."""
        K, B = bars.shape
        x = self.crypto[bars]  # (K, B, n, f)
        if self.observe_position:
            x[..., -1] = positions[..., None]
        crypto = self._rows(p, x)
        cash_in = self.cash[None].expand(K, *self.cash.shape)
        cash = self._rows(p, cash_in)  # (K, 1 or 2, channels)
        if self.observe_position:
            idx = positions.long()[..., None].expand(K, B, cash.shape[2])
            cash = cash.gather(1, idx)
        else:
            cash = cash.expand(K, B, cash.shape[2])
        e = "features_extractor."
        h = torch.cat([crypto, cash], dim=2)  # (K, B, 2 * channels): rows (crypto, cash) as flatten(1)
        h = torch.relu(torch.baddbmm(p[e + "conv4.bias"][:, None], h, p[e + "conv4.weight"].transpose(1, 2)))
        h = torch.relu(torch.baddbmm(p[e + "linear.0.bias"][:, None], h, p[e + "linear.0.weight"].transpose(1, 2)))
        h = torch.relu(torch.baddbmm(p["q_net.0.bias"][:, None], h, p["q_net.0.weight"].transpose(1, 2)))
        return torch.baddbmm(p["q_net.2.bias"][:, None], h, p["q_net.2.weight"].transpose(1, 2))


def stacked_decisions(
    q: StackedQ, obs: np.ndarray, observe_position: bool, device: torch.device, skip: int = 0
) -> np.ndarray:
    """All members' greedy actions (K, T - skip) on consecutive bars' observations (T, f, 2, n)
    from ``obs[skip]`` on.

    With the position observed: Q for both position values of every bar in one forward, then
    the recurrence ``a_t = argmax Q(obs_t, a_(t-1))`` from cash at ``obs[0]``
    (:func:`walk_from_cash`, which decides only the bars before ``skip`` that it needs).
    """
    x = torch.as_tensor(np.array(obs, dtype=np.float32), device=device)
    with torch.no_grad():
        if not observe_position:
            return q.shared(x[skip:]).argmax(-1).cpu().numpy().astype(np.float64)
        k = next(iter(q.params.values())).shape[0]

        def both(start: int) -> np.ndarray:
            part = x[start:]
            acts = q.shared(torch.cat([_with_position(part, 0.0), _with_position(part, 1.0)])).argmax(-1)
            return acts.cpu().numpy().reshape(k, 2, -1)

        return walk_from_cash(both, skip)


def _with_position(x: torch.Tensor, position) -> torch.Tensor:
    """Observations (..., f, 2, n) with the position row (the last feature) written: what
    :func:`envs.crypto_module.with_position` does, on tensors (``position`` broadcast over (...))."""
    x = x.clone()
    p = torch.as_tensor(position, dtype=x.dtype, device=x.device)
    if p.ndim:
        p = p[..., None]
    x[..., -1, 0, :] = p
    x[..., -1, 1, :] = 1.0 - p
    return x


def learn_dqn_members(
    members: Sequence[DQN],
    template: CryptoModuleEnv,
    seeds: Sequence[int],
    total_timesteps: int,
    hyperparams: dict[str, Any],
    *,
    n_envs: int,
    device: torch.device,
    validation_obs: np.ndarray | None = None,
    validation_skip: int = 0,
    evaluate: Callable[[np.ndarray, int], np.ndarray] | None = None,
    eval_freq: int | None = 2_000,
    on_step: Callable[[int], None] | None = None,
) -> None:
    """Train the K SB3 DQNs ``members`` together (see the module docstring), in place.

    ``evaluate(crypto, timesteps)`` gets the members' validation crypto shares (K, T - skip),
    decided on ``validation_obs`` from ``validation_obs[validation_skip]`` on, and returns which
    members to keep now (K booleans), every ``eval_freq`` steps per member (None: never along the
    way) and after training; at the end each member holds its last kept weights (all the final
    ones without ``evaluate``).
    ``on_step(timesteps)`` is called after every vector step with the steps per member so far.
    """
    hp = dqn_hyperparams(hyperparams)
    K, n = len(members), int(n_envs)
    gamma, batch = float(hp["gamma"]), int(hp["batch_size"])
    rngs = [np.random.default_rng(s) for s in seeds]  # exploration and replay sampling, per member
    env = CryptoModuleVecEnv(template, K * n, seed=[s + i for s in seeds for i in range(n)])
    observe_position = template.observe_position

    q = StackedQ([m.q_net for m in members], device)
    target = StackedQ([m.q_net_target for m in members], device)
    for v in target.params.values():
        v.requires_grad_(False)
    optimizer = torch.optim.Adam(q.params.values(), lr=float(hp["learning_rate"]), foreach=True)
    table = torch.as_tensor(np.array(template.obs_tensor), device=device)  # (T, f, 2, n): one row per bar

    extractor = members[0].q_net.features_extractor
    if isinstance(extractor, LatestMLP):  # it reads the newest bar alone: the rest of the window is never used
        table = table[..., -1:].contiguous()
    fast = None
    if isinstance(extractor, SAMCNN) and CryptoCashQ.cash_row_is_constant(
        template.obs_tensor, template.first_step, observe_position
    ):
        skip = extractor.conv1.offset(table.shape[-1])  # window positions conv1 leaves out
        fast = CryptoCashQ(table, template.first_step, observe_position, skip)

    def q_of(net: StackedQ, bars: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Q-values (K, B, 2) of the observations at bars (K, B) holding positions (K, B)."""
        if fast is not None:
            return fast(net.params, bars, positions)
        x = table[bars]
        return net(_with_position(x, positions) if observe_position else x)

    # Replay buffer: (K, rows, n) bar numbers, positions, actions, rewards; rows as SB3 sizes it.
    rows = max(int(hp["buffer_size"]) // n, 1)
    buf_bar = torch.zeros((K, rows, n), dtype=torch.long, device=device)
    buf_pos = torch.zeros((K, rows, n), dtype=torch.float32, device=device)
    buf_act = torch.zeros((K, rows, n), dtype=torch.long, device=device)
    buf_rew = torch.zeros((K, rows, n), dtype=torch.float32, device=device)
    row, full = 0, False

    def explore(timesteps: int) -> float:  # SB3's linear schedule on the progress so far
        frac = min(timesteps / total_timesteps / float(hp["exploration_fraction"]), 1.0)
        start, end = float(hp["exploration_initial_eps"]), float(hp["exploration_final_eps"])
        return start + frac * (end - start)

    def train_step() -> None:
        filled = (rows if full else row) * n
        idx = torch.as_tensor(np.stack([r.integers(0, filled, size=batch) for r in rngs]), device=device)
        bars = buf_bar.view(K, -1).gather(1, idx)
        pos = buf_pos.view(K, -1).gather(1, idx)
        act = buf_act.view(K, -1).gather(1, idx)
        rew = buf_rew.view(K, -1).gather(1, idx)
        with torch.no_grad():  # the next observation: the next bar, holding the action taken
            next_q = q_of(target, bars + 1, act.to(torch.float32)).max(-1).values
            td_target = rew + gamma * next_q
        current = q_of(q, bars, pos).gather(-1, act[..., None]).squeeze(-1)
        loss = F.smooth_l1_loss(current, td_target, reduction="none").mean(1).sum()
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        grads = [p.grad for p in q.params.values()]
        norms = torch.stack([g.reshape(K, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
        coef = (float(hp["max_grad_norm"]) / (norms + 1e-6)).clamp(max=1.0)  # as clip_grad_norm_, per member
        for g in grads:
            g.mul_(coef.view((K,) + (1,) * (g.ndim - 1)))
        optimizer.step()

    def validate(timesteps: int) -> None:
        crypto = stacked_decisions(q, validation_obs, observe_position, device, validation_skip)
        keep = np.asarray(evaluate(crypto, timesteps), dtype=bool)
        with torch.no_grad():
            for name, value in q.params.items():
                best_q[name][keep] = value[keep]
            for name, value in target.params.items():
                best_target[name][keep] = value[keep]

    best_q, best_target = q.detached(), target.detached()
    env.reset()
    bars = env.steps.copy()
    positions = np.zeros(K * n, dtype=np.float32)
    timesteps, calls, last_eval, epsilon = 0, 0, 0, 0.0
    target_every = max(int(hp["target_update_interval"]) // n, 1)
    tau = float(hp["tau"])
    while timesteps < total_timesteps:
        # 1. act: random before learning_starts, then epsilon-greedy per environment
        if timesteps < int(hp["learning_starts"]):
            actions = np.stack([r.integers(0, 2, size=n) for r in rngs])
        else:
            with torch.no_grad():
                b = torch.as_tensor(bars.reshape(K, n), device=device)
                actions = q_of(q, b, torch.as_tensor(positions.reshape(K, n), device=device)).argmax(-1).cpu().numpy()
            for k, r in enumerate(rngs):
                explored = r.random(n) < epsilon
                if explored.any():
                    actions[k, explored] = r.integers(0, 2, size=int(explored.sum()))
        # 2. step the K x n episodes; store (bar, position, action, reward)
        _, rewards, dones, _ = env.step(actions.reshape(-1))
        buf_bar[:, row] = torch.as_tensor(bars.reshape(K, n), device=device)
        buf_pos[:, row] = torch.as_tensor(positions.reshape(K, n), device=device)
        buf_act[:, row] = torch.as_tensor(actions, device=device)
        buf_rew[:, row] = torch.as_tensor(rewards.reshape(K, n), dtype=torch.float32, device=device)
        row = (row + 1) % rows
        full = full or row == 0
        bars = env.steps.copy()
        positions = np.where(dones, 0.0, actions.reshape(-1)).astype(np.float32)
        timesteps += n
        calls += 1
        # where SB3 calls its callback
        if evaluate is not None and eval_freq is not None and timesteps - last_eval >= eval_freq:
            last_eval = timesteps
            validate(timesteps)
        # 3. SB3's _on_step: target network, exploration rate
        if calls % target_every == 0:
            with torch.no_grad():
                for name, value in target.params.items():
                    value.mul_(1.0 - tau).add_(q.params[name].detach(), alpha=tau)
        epsilon = explore(timesteps)
        # 4. train
        if timesteps > int(hp["learning_starts"]) and calls % int(hp["train_freq"]) == 0:
            for _ in range(int(hp["gradient_steps"])):
                train_step()
        if on_step is not None:
            on_step(timesteps)
    if evaluate is not None:
        validate(timesteps)  # as ValidationCallback at the end of training
    else:
        best_q, best_target = q.detached(), target.detached()
    for k, model in enumerate(members):
        model.q_net.load_state_dict({name: v[k].cpu() for name, v in best_q.items()})
        model.q_net_target.load_state_dict({name: v[k].cpu() for name, v in best_target.items()})
        model.num_timesteps = timesteps


__all__ = [
    "SUPPORTED",
    "CryptoCashQ",
    "StackedQ",
    "dqn_hyperparams",
    "learn_dqn_members",
    "stacked_decisions",
    "torch_threads",
]
