"""Surrogate kernels compiled once: a static leapfrog trajectory, or NUTS, as one JAX call.

A surrogate module is split once into its arrays and a hashed structure, so each call is a plain
``jax.jit`` dispatch, and a refitted network (same structure, new weights) reuses the compiled
code. The programs of recent structures only are kept (see :mod:`surrogate_hmc.core.recent_jit`).
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.integrators import leapfrog
from surrogate_hmc.core.recent_jit import RecentPrograms, Structure

__all__ = [
    "SEED_BOUND",
    "NUTSStepInfo",
    "SurrogateNUTS",
    "TrajectoryFn",
    "draw_seed",
    "power_of_two",
    "surrogate_nuts",
    "surrogate_trajectory",
    "values_and_gradients",
]

TrajectoryFn = Callable[..., tuple[jax.Array, jax.Array]]

SEED_BOUND = 2**32
"""Seeds of JAX keys drawn from a NumPy generator lie in ``[0, SEED_BOUND)`` (a ``uint32``)."""


def draw_seed(rng: np.random.Generator) -> int:
    """A seed for a JAX key, drawn from the chain's NumPy generator.

    Examples
    --------
    >>> 0 <= draw_seed(np.random.default_rng(0)) < SEED_BOUND
    True
    """
    return int(rng.integers(SEED_BOUND, dtype=np.uint64))


def power_of_two(n: int) -> int:
    """The least power of two at least ``n`` (padding to it bounds the shapes compiled).

    Examples
    --------
    >>> [power_of_two(n) for n in (1, 3, 4, 1000)]
    [1, 4, 4, 1024]
    """
    return 1 << max(n - 1, 0).bit_length()


_PROGRAMS: RecentPrograms[Callable[..., Any]] = RecentPrograms()


def _program(fn: Callable[..., Any], *static: Any) -> Callable[..., Any]:
    """``fn`` compiled with its leading ``static`` arguments bound (the first a structure)."""
    return _PROGRAMS.get((fn, *static), lambda: jax.jit(functools.partial(fn, *static)))


def _values_and_gradients(structure, leaves, rows):
    return jax.vmap(jax.value_and_grad(structure.rebuild(leaves)))(rows)


def values_and_gradients(
    logdensity: Callable[[jax.Array], jax.Array], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A scalar function's values and gradients at each row, in one compiled call.

    The rows are padded (with copies of the last) to a power of two, so that the call compiles
    once per structure of ``logdensity`` (a module, a method of one, or a function) and power
    of two, however many rows the training buffer holds.

    Examples
    --------
    >>> values, gradients = values_and_gradients(lambda q: -0.5 * q @ q, np.ones((3, 2)))
    >>> values.tolist(), gradients.shape
    ([-1.0, -1.0, -1.0], (3, 2))
    """
    rows = np.asarray(rows, dtype=np.float64)
    n = len(rows)
    padding = np.repeat(rows[-1:], power_of_two(n) - n, axis=0)
    structure, leaves = Structure.split(logdensity)
    program = _program(_values_and_gradients, structure)
    values, gradients = program(leaves, np.concatenate([rows, padding]))
    return np.asarray(values)[:n], np.asarray(gradients)[:n]


def _trajectory(structure, leaves, position, momentum, step_size, inverse_mass, n_steps):
    force_fn = structure.rebuild(leaves)
    return leapfrog(force_fn, position, momentum, step_size, inverse_mass, n_steps)


def surrogate_trajectory(force_fn: Callable[[jax.Array], jax.Array]) -> TrajectoryFn:
    """Compile the whole leapfrog trajectory under a surrogate force field into one call.

    The module's arrays are split from its structure once, here, so each call is a plain
    ``jax.jit`` dispatch, and refitting the network (same structure, new weights) reuses the
    compiled code.

    Parameters
    ----------
    force_fn
        An Equinox module mapping a position to a force, or a method of one, such as a
        surrogate's ``force``.

    Returns
    -------
    trajectory
        ``(position, momentum, step_size, inverse_mass, n_steps) -> (position, momentum)``;
        ``n_steps`` may vary from call to call without recompiling.

    Examples
    --------
    >>> import equinox as eqx
    >>> import jax.numpy as jnp
    >>> class Spring(eqx.Module):
    ...     stiffness: jax.Array
    ...     def __call__(self, q):
    ...         return -self.stiffness * q
    >>> trajectory = surrogate_trajectory(Spring(jnp.asarray(1.0)))
    >>> q, p = trajectory(jnp.ones(2), jnp.zeros(2), 0.1, jnp.ones(2), 5)
    >>> q.shape
    (2,)
    """
    structure, leaves = Structure.split(force_fn)
    program = _program(_trajectory, structure)

    def trajectory(position, momentum, step_size, inverse_mass, n_steps):
        return program(leaves, position, momentum, step_size, inverse_mass, n_steps)

    return trajectory


class NUTSStepInfo(NamedTuple):
    """A surrogate NUTS step on the host: the new position and the tree's diagnostics."""

    position: np.ndarray
    logdensity: float
    acceptance_rate: float
    is_divergent: bool
    is_turning: bool
    energy: float
    initial_kinetic_energy: float
    tree_depth: int
    n_steps: int

    @classmethod
    def unpack(cls, packed: np.ndarray) -> "NUTSStepInfo":
        """Read the vector built by the compiled step (one device-to-host transfer)."""
        position, (logdensity, accept, divergent, turning, energy, kinetic, depth, n) = (
            packed[:-8],
            packed[-8:].tolist(),
        )
        return cls(
            position, logdensity, accept, bool(divergent), bool(turning), energy, kinetic,
            int(depth), int(n),
        )  # fmt: skip


class SurrogateNUTS(NamedTuple):
    """NUTS on a surrogate log-density, compiled: ``init`` a state, then ``step`` it.

    ``init(position)`` returns BlackJAX's ``HMCState`` (position, surrogate log-density and its
    gradient). ``step(seed, state, step_size, inverse_mass)`` returns the next state and a
    :class:`NUTSStepInfo`; ``seed`` is an integer, so a NumPy generator can drive the chain.
    """

    init: Callable[[Any], Any]
    step: Callable[..., tuple[Any, NUTSStepInfo]]


# BlackJAX is imported where it is used: importing it runs JAX computations, and a process that
# has run JAX cannot safely fork (PyMC's default start method for cores > 1 on Linux).


def _nuts_init(structure, leaves, position):
    import blackjax

    return blackjax.nuts.init(position, structure.rebuild(leaves))


def _nuts_step(structure, max_depth, max_energy, n_transitions, leaves, seed, state, eps, inv_mass):
    import blackjax

    kernel = blackjax.nuts.build_kernel(divergence_threshold=max_energy)
    logdensity = structure.rebuild(leaves)

    def transition(state, key):
        state, info = kernel(key, state, logdensity, eps, inv_mass, max_depth)
        velocity = inv_mass @ info.momentum if inv_mass.ndim == 2 else inv_mass * info.momentum
        kinetic = 0.5 * jnp.sum(velocity * info.momentum)
        diagnostics = (info.acceptance_rate, info.is_divergent, info.is_turning, info.energy)
        return state, (*diagnostics, kinetic, info.num_trajectory_expansions,
                       info.num_integration_steps)  # fmt: skip

    keys = jax.random.split(jax.random.key(seed), n_transitions)
    state, (accept, divergent, turning, energy, kinetic, depth, n_steps) = jax.lax.scan(
        transition, state, keys
    )
    scalars = [
        state.logdensity,
        jnp.mean(accept),
        jnp.any(divergent),
        turning[-1],
        energy[-1],
        kinetic[0],
        jnp.max(depth),
        jnp.sum(n_steps),
    ]
    packed = jnp.concatenate([state.position, jnp.stack(scalars).astype(state.position.dtype)])
    return state, packed


def surrogate_nuts(
    logdensity: Callable[[jax.Array], jax.Array],
    *,
    max_tree_depth: int = 10,
    max_energy_error: float = 1000.0,
    n_transitions: int = 1,
) -> SurrogateNUTS:
    """Compile BlackJAX's multinomial NUTS on a surrogate log-density into one call per step.

    As with :func:`surrogate_trajectory`, the module is split into arrays and structure once,
    so refitting the network reuses the compiled code. NUTS is reversible with respect to
    ``exp(logdensity)``, and so are its powers, which is what a delayed-acceptance correction
    with the exact log-density needs (see
    :func:`~surrogate_hmc.core.delayed_acceptance_transition`).

    Parameters
    ----------
    logdensity
        An Equinox module mapping a position to a scalar, or a method of one, such as a
        surrogate's ``logdensity``.
    max_tree_depth
        Most trajectory doublings per step.
    max_energy_error
        Energy error above which a trajectory counts as divergent.
    n_transitions
        NUTS transitions per step, in the same compiled call. The step's diagnostics are the
        mean acceptance, any divergence, the deepest tree and the total of leapfrog steps; its
        energy is the last transition's and its initial kinetic energy the first's.

    Examples
    --------
    >>> import equinox as eqx
    >>> class Gaussian(eqx.Module):
    ...     def __call__(self, q):
    ...         return -0.5 * q @ q
    >>> nuts = surrogate_nuts(Gaussian())
    >>> state = nuts.init(jnp.zeros(3))
    >>> state, info = nuts.step(0, state, 0.5, jnp.ones(3))
    >>> info.position.shape, info.tree_depth >= 1
    ((3,), True)
    """
    structure, leaves = Structure.split(logdensity)
    init_program = _program(_nuts_init, structure)
    step_program = _program(
        _nuts_step, structure, int(max_tree_depth), float(max_energy_error), int(n_transitions)
    )

    def init(position):
        return init_program(leaves, jnp.asarray(position, dtype=jnp.float64))

    def step(seed, state, step_size, inverse_mass):
        state, packed = step_program(
            leaves, np.uint32(seed), state, np.float64(step_size), inverse_mass
        )
        return state, NUTSStepInfo.unpack(np.asarray(packed))

    return SurrogateNUTS(init, step)
