"""Delayed-acceptance NUTS for all chains at once: pure JAX, in BlackJAX's ``init``/``step`` style.

A step runs one or more multinomial NUTS transitions on the surrogate log-density ``s`` and
corrects their end point ``q'`` with the exact log-density ``logp``: accepted with probability
``min(1, exp([logp(q') - logp(q)] - [s(q') - s(q)]))``. Each NUTS transition is reversible with
respect to ``exp(s)``, and so is a fixed number of them, so the composite is reversible with
respect to ``exp(logp)`` (Christen & Fox, 2005) whatever the surrogate, at one exact
log-density per step and chain. Chains are the leading axis
of every array; the exact log-density is evaluated for all of them in one batched call.

During tuning each chain adapts its step size by dual averaging on NUTS's acceptance on the
surrogate; for the draws the step size and the metric are frozen, so the draws come from one
fixed kernel that targets the exact posterior.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.recent_jit import recent_jit

__all__ = [
    "DAInfo",
    "DAState",
    "TuningState",
    "init",
    "init_nuts",
    "recording",
    "run_chunk",
    "start_tuning",
    "tuned_step_size",
]

LogDensity = Callable[[jax.Array], jax.Array]


class DAState(NamedTuple):
    """The chains' states: NUTS's state on the surrogate, and the exact log-density there."""

    surrogate: Any
    """BlackJAX's ``HMCState``: position, surrogate log-density and its gradient."""
    logdensity: jax.Array
    """Exact log-density at each chain's position."""

    @property
    def position(self) -> jax.Array:
        """Positions, one row per chain."""
        return self.surrogate.position


class DAInfo(NamedTuple):
    """What each chain's step did (one value per chain).

    ``acceptance_rate`` (their mean), ``n_steps`` (their sum), ``tree_depth`` (the deepest)
    and ``diverging`` (any) describe the step's NUTS trees on the surrogate;
    ``second_stage_acceptance`` is the exact correction's acceptance probability (1 when the
    trees returned to the current point, where nothing exact is needed).
    """

    acceptance_rate: jax.Array
    second_stage_acceptance: jax.Array
    is_accepted: jax.Array
    diverging: jax.Array
    n_steps: jax.Array
    tree_depth: jax.Array
    reached_max_treedepth: jax.Array
    energy: jax.Array
    step_size: jax.Array
    model_logp: jax.Array
    """Exact log-density at the chain's new position."""


class TuningState(NamedTuple):
    """The chains' states and their step sizes' dual-averaging states."""

    chains: Any
    """A :class:`DAState`, or BlackJAX's ``HMCState`` for exact NUTS."""
    step_size: Any


def init(positions: jax.Array, surrogate: LogDensity, exact: LogDensity) -> DAState:
    """The chains' state at ``positions`` (one row per chain).

    Examples
    --------
    >>> state = init(jnp.zeros((4, 2)), lambda q: -q @ q, lambda q: -0.5 * q @ q)
    >>> state.position.shape, state.logdensity.tolist()
    ((4, 2), [0.0, 0.0, 0.0, 0.0])
    """
    return DAState(init_nuts(positions, surrogate), jax.vmap(exact)(positions))


class _Transitions(NamedTuple):
    """What a chain's surrogate transitions between two exact corrections did, together."""

    acceptance_rate: jax.Array
    """Mean of the transitions' NUTS acceptance (what the step size adapts to)."""
    n_steps: jax.Array
    """Leapfrog steps of all the transitions."""
    diverging: jax.Array
    tree_depth: jax.Array
    """The deepest tree."""
    momentum: jax.Array
    """The last transition's momentum."""


def _surrogate_transitions(key, nuts_state, surrogate, step_size, inverse_mass, max_tree_depth,
                           transitions):  # fmt: skip
    """``transitions`` NUTS steps of one chain on the surrogate, with one step size and metric.

    Each step is reversible with respect to ``exp(surrogate)``, so their composition is too,
    whatever their number: the exact correction after them keeps the kernel exact.
    """
    import blackjax

    kernel = blackjax.nuts.build_kernel()
    int_type = jnp.int32

    def transition(i, carry):
        state, done = carry
        state, info = kernel(jax.random.fold_in(key, i), state, surrogate, step_size,
                             inverse_mass, max_tree_depth)  # fmt: skip
        done = _Transitions(
            done.acceptance_rate + info.acceptance_rate,
            done.n_steps + info.num_integration_steps.astype(int_type),
            done.diverging | info.is_divergent,
            jnp.maximum(done.tree_depth, info.num_trajectory_expansions.astype(int_type)),
            info.momentum,
        )
        return state, done

    zero = jnp.zeros((), int_type)
    start = _Transitions(
        jnp.zeros_like(nuts_state.logdensity), zero, jnp.bool_(False), zero,
        jnp.zeros_like(nuts_state.position),
    )  # fmt: skip
    state, done = jax.lax.fori_loop(0, transitions, transition, (nuts_state, start))
    return state, done._replace(acceptance_rate=done.acceptance_rate / transitions)


def _step(key, state, surrogate, exact, step_size, inverse_mass, max_tree_depth, transitions):
    """One delayed-acceptance step of every chain (``step_size`` per chain).

    Each chain makes ``transitions`` NUTS steps on the surrogate, then one exact correction.
    """

    def propose(key, nuts_state, eps):
        return _surrogate_transitions(key, nuts_state, surrogate, eps, inverse_mass,
                                      max_tree_depth, transitions)  # fmt: skip

    chains = state.logdensity.shape[0]
    nuts_keys, accept_keys = jnp.split(jax.random.split(key, 2 * chains), 2)
    proposal, info = jax.vmap(propose)(nuts_keys, state.surrogate, step_size)
    exact_logdensity = jax.vmap(exact)(proposal.position)
    moved = jnp.any(proposal.position != state.position, axis=1)
    log_ratio = (exact_logdensity - state.logdensity) - (
        proposal.logdensity - state.surrogate.logdensity
    )
    log_ratio = jnp.where(moved, jnp.nan_to_num(log_ratio, nan=-jnp.inf), 0.0)
    second_stage = jnp.exp(jnp.minimum(log_ratio, 0.0))
    uniform = jax.vmap(jax.random.uniform)(accept_keys)
    accepted = moved & (jnp.log(uniform) < log_ratio)

    def keep(new, old):
        mask = accepted.reshape(accepted.shape + (1,) * (new.ndim - 1))
        return jnp.where(mask, new, old)

    surrogate_state = jax.tree.map(keep, proposal, state.surrogate)
    new_state = DAState(surrogate_state, keep(exact_logdensity, state.logdensity))
    step_info = DAInfo(
        acceptance_rate=info.acceptance_rate,
        second_stage_acceptance=second_stage,
        is_accepted=accepted,
        diverging=info.diverging,
        n_steps=info.n_steps,
        tree_depth=info.tree_depth,
        reached_max_treedepth=info.tree_depth >= max_tree_depth,
        energy=-new_state.logdensity + _kinetic_energy(info.momentum, inverse_mass),
        step_size=step_size,
        model_logp=new_state.logdensity,
    )
    return new_state, step_info


def _exact_step(key, state, exact, step_size, inverse_mass, max_tree_depth, in_turn):
    """One exact NUTS step of every chain: ``state`` is BlackJAX's ``HMCState`` on ``exact``.

    Batched, the chains' trees grow in lockstep, and a chain whose tree is done is evaluated
    (and discarded) until the longest one is. ``in_turn`` builds one chain's tree after the
    other instead, each with its own steps only: for a log-density on the host, which
    evaluates a batch one position after the other anyway.
    """
    import blackjax

    kernel = blackjax.nuts.build_kernel()

    def transition(key, nuts_state, eps):
        return kernel(key, nuts_state, exact, eps, inverse_mass, max_tree_depth)

    keys = jax.random.split(key, state.logdensity.shape[0])
    if in_turn:
        new_state, info = jax.lax.map(lambda args: transition(*args), (keys, state, step_size))
    else:
        new_state, info = jax.vmap(transition)(keys, state, step_size)
    step_info = DAInfo(
        acceptance_rate=info.acceptance_rate,
        second_stage_acceptance=jnp.full_like(info.acceptance_rate, jnp.nan),
        is_accepted=jnp.any(new_state.position != state.position, axis=1),
        diverging=info.is_divergent,
        n_steps=info.num_integration_steps,
        tree_depth=info.num_trajectory_expansions,
        reached_max_treedepth=info.num_trajectory_expansions >= max_tree_depth,
        energy=info.energy,
        step_size=step_size,
        model_logp=new_state.logdensity,
    )
    return new_state, step_info


def init_nuts(positions: jax.Array, logdensity: LogDensity) -> Any:
    """Every chain's NUTS state at ``positions``: BlackJAX's ``HMCState``, batched.

    Examples
    --------
    >>> state = init_nuts(jnp.ones((4, 2)), lambda q: -0.5 * q @ q)
    >>> state.logdensity.tolist()
    [-1.0, -1.0, -1.0, -1.0]
    """
    import blackjax

    return jax.vmap(lambda q: blackjax.nuts.init(q, logdensity))(positions)


def recording(
    logdensity: LogDensity, record: Callable[[np.ndarray, np.ndarray, np.ndarray], None]
) -> LogDensity:
    """``logdensity``, with every evaluation of its value and gradient handed to ``record``.

    ``record(position, value, gradient)`` runs on the host once per evaluation and position,
    also under ``vmap`` (a batched NUTS tree also evaluates, and discards, a step of each chain
    whose tree has already ended: those are reported too, and are exact evaluations all the
    same). NUTS evaluates the gradient at every leapfrog point, so an exact NUTS kernel on
    the returned log-density reports every exact evaluation it makes, the surrogate's training
    data, without evaluating anything twice: the gradient is computed once, with the value
    (each report is a host call, negligible beside a log-density worth a surrogate).

    Examples
    --------
    >>> seen = []
    >>> logdensity = recording(lambda q: -0.5 * q @ q, lambda *row: seen.append(row))
    >>> value, gradient = jax.jit(jax.vmap(jax.value_and_grad(logdensity)))(jnp.ones((3, 2)))
    >>> jax.effects_barrier()
    >>> len(seen), seen[0][1].item(), seen[0][2].tolist()
    (3, -1.0, [-1.0, -1.0])
    """

    @jax.custom_vjp
    def recorded(position: jax.Array) -> jax.Array:
        return logdensity(position)

    def forward(position: jax.Array):
        value, gradient = jax.value_and_grad(logdensity)(position)
        jax.debug.callback(record, position, value, gradient)
        return value, gradient

    def backward(gradient: jax.Array, cotangent: jax.Array):
        return (cotangent * gradient,)

    recorded.defvjp(forward, backward)
    return recorded


def _kinetic_energy(momentum: jax.Array, inverse_mass: jax.Array) -> jax.Array:
    """``p^T M^{-1} p / 2`` of each chain's momentum (rows), for a dense or diagonal metric."""
    velocity = momentum @ inverse_mass if inverse_mass.ndim == 2 else momentum * inverse_mass
    return 0.5 * jnp.sum(velocity * momentum, axis=1)


def step_size_adaptation(target_accept: float):
    """Dual averaging of ``log(step size)`` on NUTS's acceptance (Hoffman & Gelman, 2014)."""
    import blackjax

    return blackjax.adaptation.step_size.dual_averaging_adaptation(target=target_accept)


@recent_jit
def run_chunk(
    key: jax.Array,
    state: TuningState,
    surrogate: LogDensity | None,
    exact: LogDensity,
    inverse_mass: jax.Array,
    adapting: jax.Array,
    n_steps: int,
    target_accept: float,
    max_tree_depth: int,
    transitions: jax.Array,
    in_turn: bool = False,
) -> tuple[TuningState, jax.Array, jax.Array | None, DAInfo]:
    """``n_steps`` steps of every chain: states, positions, exact gradients and the steps' info.

    Positions (and gradients) have shape ``(steps, chains, dim)``; the gradients are ``None``
    with a surrogate.

    With a ``surrogate``, each step is delayed-acceptance NUTS (``state.chains`` a
    :class:`DAState`): ``transitions`` NUTS steps on the surrogate, then one exact correction
    (an integer array: changing it does not compile the program again). With
    ``surrogate=None``, exact NUTS on ``exact`` (``state.chains`` an ``HMCState`` from
    :func:`init_nuts` on ``exact``; a :func:`recording` log-density reports every evaluation,
    the surrogate's training data), and ``transitions`` is unused. While ``adapting`` (a boolean
    array, so that tuning and draws share one compiled program) each chain adapts its step
    size by dual averaging, whose state is ``state.step_size`` (BlackJAX's); otherwise every
    chain keeps its tuned step size (dual averaging's averaged iterate,
    :func:`tuned_step_size`) and the kernel is frozen. ``in_turn`` builds the exact NUTS
    trees one chain after the other rather than in lockstep (for a log-density on the host).
    """
    _, update, final = step_size_adaptation(target_accept)

    def one(carry, key):
        chains, adaptation = carry
        step_size = jnp.where(
            adapting, jnp.exp(adaptation.log_step_size), jax.vmap(final)(adaptation)
        )
        if surrogate is None:
            chains, info = _exact_step(key, chains, exact, step_size, inverse_mass,
                                       max_tree_depth, in_turn)  # fmt: skip
            gradient = chains.logdensity_grad
        else:
            chains, info = _step(key, chains, surrogate, exact, step_size, inverse_mass,
                                 max_tree_depth, transitions)  # fmt: skip
            gradient = None
        updated = jax.vmap(update)(adaptation, info.acceptance_rate)
        adaptation = jax.tree.map(lambda new, old: jnp.where(adapting, new, old), updated,
                                  adaptation)  # fmt: skip
        return (chains, adaptation), (chains.position, gradient, info)

    keys = jax.random.split(key, n_steps)
    (chains, adaptation), (positions, gradients, info) = jax.lax.scan(
        one, (state.chains, state.step_size), keys
    )
    return TuningState(chains, adaptation), positions, gradients, info


def start_tuning(state: Any, step_size: jax.Array, target_accept: float) -> TuningState:
    """Begin adapting every chain's step size from ``step_size`` (one per chain).

    BlackJAX starts dual averaging from Python numbers, which JAX types weakly, and a chunk
    returns them strongly typed: they are made strong here, so that the first and every later
    chunk share one compiled program.
    """
    init_adaptation, _, _ = step_size_adaptation(target_accept)
    adaptation = jax.vmap(init_adaptation)(jnp.asarray(step_size))
    strong = jax.tree.map(lambda leaf: jax.lax.convert_element_type(leaf, leaf.dtype), adaptation)
    return TuningState(state, strong)


def tuned_step_size(state: TuningState, target_accept: float) -> jax.Array:
    """The step size each chain keeps for its draws: dual averaging's averaged iterate."""
    _, _, final = step_size_adaptation(target_accept)
    return jax.vmap(final)(state.step_size)
