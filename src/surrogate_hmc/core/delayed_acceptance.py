"""NUTS on a surrogate log-density, corrected by a delayed-acceptance step with the exact one.

NUTS is reversible with respect to the surrogate density ``exp(s)``. Accepting its output ``q'``
with probability ``min(1, exp([logp(q') - logp(q)] - [s(q') - s(q)]))`` makes the composite
reversible with respect to ``exp(logp)`` (Christen & Fox, 2005), at one exact log-density
evaluation per draw, and none when NUTS returns the current point.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from surrogate_hmc.core.compiled import SurrogateNUTS, draw_seed

__all__ = ["DAInfo", "DAState", "delayed_acceptance_transition"]


class DAState(NamedTuple):
    """Where the chain is: position, its exact log-density, and the surrogate NUTS state there.

    Build one with :meth:`start`.
    """

    position: np.ndarray
    logdensity: float
    surrogate: Any
    surrogate_logdensity: float

    @classmethod
    def start(
        cls, position: np.ndarray, logdensity: float | None, nuts: SurrogateNUTS
    ) -> "DAState":
        """The state at ``position``, whose exact log-density is ``logdensity``.

        ``None``: there is no exact model, the surrogate is the target.
        """
        surrogate = nuts.init(position)
        surrogate_logdensity = float(surrogate.logdensity)
        if logdensity is None:
            logdensity = surrogate_logdensity
        return cls(np.asarray(position), logdensity, surrogate, surrogate_logdensity)


class DAInfo(NamedTuple):
    """Diagnostics of one transition.

    ``acceptance_rate``, ``tree_depth``, ``n_steps`` and ``diverging`` describe NUTS's tree on
    the surrogate; ``second_stage_acceptance`` is the exact correction's acceptance probability
    (1 when NUTS returned the current point), which measures how well the surrogate agrees with
    the model, and ``log_ratio`` its log ratio ``[logp(q') - logp(q)] - [s(q') - s(q)]`` (0 for
    a perfect surrogate, ``-inf`` when it is not finite, ``nan`` when NUTS returned the current
    point and nothing exact was evaluated). ``energy`` and ``energy_error`` use the exact
    log-density.
    """

    acceptance_rate: float
    second_stage_acceptance: float
    log_ratio: float
    is_accepted: bool
    diverging: bool
    energy: float
    energy_error: float
    n_steps: int
    tree_depth: int
    reached_max_treedepth: bool
    n_exact_logp: int


def delayed_acceptance_transition(
    rng: np.random.Generator,
    state: DAState,
    *,
    logdensity_fn: Callable[[np.ndarray], float] | None,
    nuts: SurrogateNUTS,
    step_size: float,
    inverse_mass: np.ndarray,
    max_tree_depth: int = 10,
) -> tuple[DAState, DAInfo]:
    """One NUTS step on the surrogate, then the exact delayed-acceptance correction.

    Parameters
    ----------
    rng
        Seeds NUTS and draws the correction's uniform.
    state
        Current position, its exact log-density and the surrogate state there
        (:meth:`DAState.start`).
    logdensity_fn
        The exact log-density (no gradient needed); called at most once. ``None``: there is no
        exact model and NUTS's output is taken as it is (the surrogate is the target; the
        second-stage acceptance and log ratio are then ``nan``).
    nuts
        The compiled surrogate NUTS (:func:`~surrogate_hmc.core.surrogate_nuts`).
    step_size, inverse_mass
        NUTS's step size and the diagonal of its inverse mass matrix; fixed for exactness.
    max_tree_depth
        The tree depth ``nuts`` was compiled with (for ``reached_max_treedepth``).

    Returns
    -------
    state, info

    Examples
    --------
    A surrogate with the wrong scale, corrected by the exact log-density:

    >>> import equinox as eqx, jax.numpy as jnp, numpy as np
    >>> from surrogate_hmc.core.compiled import surrogate_nuts
    >>> class Wide(eqx.Module):
    ...     def __call__(self, q):
    ...         return -0.25 * q @ q
    >>> nuts = surrogate_nuts(Wide())
    >>> exact = lambda q: -0.5 * float(q @ q)
    >>> state = DAState.start(np.zeros(2), 0.0, nuts)
    >>> state, info = delayed_acceptance_transition(
    ...     np.random.default_rng(0), state, logdensity_fn=exact, nuts=nuts,
    ...     step_size=0.5, inverse_mass=np.ones(2),
    ... )
    >>> info.n_exact_logp <= 1
    True
    """
    surrogate, nuts_info = nuts.step(draw_seed(rng), state.surrogate, step_size, inverse_mass)
    position, surrogate_logdensity = nuts_info.position, nuts_info.logdensity
    initial_energy = nuts_info.initial_kinetic_energy - state.logdensity
    # Drawn before it is known whether it is needed: the stream must not depend on the state.
    log_uniform = np.log(rng.uniform()) if logdensity_fn is not None else 0.0

    n_exact_logp, second_stage, is_accepted, log_ratio = 0, 1.0, False, np.nan
    if logdensity_fn is None:
        second_stage, is_accepted = np.nan, not np.array_equal(position, state.position)
        new_state = DAState(position, surrogate_logdensity, surrogate, surrogate_logdensity)
        energy = nuts_info.energy
    elif np.array_equal(position, state.position):
        new_state = state._replace(surrogate=surrogate)
        energy = initial_energy
    else:
        n_exact_logp = 1
        exact = float(logdensity_fn(position))
        log_ratio = exact - state.logdensity - (surrogate_logdensity - state.surrogate_logdensity)
        if not np.isfinite(log_ratio):
            log_ratio = -np.inf
        second_stage = float(np.exp(min(0.0, log_ratio)))
        is_accepted = bool(log_uniform < log_ratio)
        if is_accepted:
            new_state = DAState(position, exact, surrogate, surrogate_logdensity)
            # NUTS's energy of the chosen point, with the exact potential in place of s.
            energy = nuts_info.energy + surrogate_logdensity - exact
        else:
            new_state, energy = state, initial_energy

    tree_depth, diverging = nuts_info.tree_depth, nuts_info.is_divergent
    return new_state, DAInfo(
        acceptance_rate=nuts_info.acceptance_rate,
        second_stage_acceptance=second_stage,
        log_ratio=float(log_ratio),
        is_accepted=is_accepted,
        diverging=diverging,
        energy=energy,
        energy_error=energy - initial_energy,
        n_steps=nuts_info.n_steps,
        tree_depth=tree_depth,
        reached_max_treedepth=bool(
            tree_depth >= max_tree_depth and not diverging and not nuts_info.is_turning
        ),
        n_exact_logp=n_exact_logp,
    )
