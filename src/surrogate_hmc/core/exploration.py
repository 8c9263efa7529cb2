"""Whether a surrogate lets a chain go wherever the exact chain has been.

A surrogate far too low somewhere the exact chain has been makes its trajectories avoid that
place. The exact correction keeps the chain exact in the limit, but in a run of finite length
the place is visited too rarely: a confined chain, which only R-hat may show. So before a
switch the surrogate alone (no exact correction, so no exact evaluation) runs from the chain's
position, and its draws must spread, in every coordinate, over a good share of the variance of
the exact chain's recent draws. The same check fails while the exact chain is still drifting
(its recent draws then spread wider than any posterior), so a chain switches only once it has
settled where it samples.
"""

import jax
import numpy as np

from surrogate_hmc.core.recent_jit import recent_jit
from surrogate_hmc.core.structure import Whitening

__all__ = ["EXPLORATION_DRAWS", "RECENT_DRAWS", "TAIL_STEP", "spread_ratio", "tail_gap"]

EXPLORATION_DRAWS = 100
"""Draws of the surrogate alone in the exploration check (each one call of the kernel)."""
RECENT_DRAWS = 30
"""Recent exact draws the surrogate's draws are compared with."""


def spread_ratio(surrogate_draws: np.ndarray, exact_draws: np.ndarray) -> float | None:
    """The smallest ratio, over coordinates, of the two sets of draws' variances.

    ``surrogate_draws`` and ``exact_draws`` have shape ``(draws, dim)``. Coordinates along which
    the exact draws did not move are left out; ``None`` when no coordinate is left (nothing to
    compare with). A surrogate that samples its own distribution gives a ratio near 1 in every
    coordinate when that distribution is the posterior; a confining one, a ratio near 0 where it
    confines.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> exact = rng.normal(scale=[1.0, 10.0], size=(200, 2))
    >>> 0.7 < spread_ratio(rng.normal(scale=[1.0, 10.0], size=(200, 2)), exact) < 1.3
    True
    >>> round(spread_ratio(rng.normal(scale=[1.0, 1.0], size=(200, 2)), exact), 2)
    0.01
    """
    surrogate_variance = np.var(np.asarray(surrogate_draws, dtype=np.float64), axis=0)
    exact_variance = np.var(np.asarray(exact_draws, dtype=np.float64), axis=0)
    moved = exact_variance > 0.0
    if not np.any(moved) or len(exact_draws) < 2:
        return None
    return float(np.min(surrogate_variance[moved] / exact_variance[moved]))


TAIL_STEP = 0.5
"""How far beyond the data the tail check looks, in whitened units (posterior scales)."""
TAIL_POINTS = 64
"""Outermost training points the tail check starts from."""
OUTER_QUANTILE = 0.95
"""The tail check starts from training points beyond this quantile of the whitened radius."""


@recent_jit
def _forces(surrogate, positions):
    return jax.vmap(surrogate.force)(positions)


def tail_gap(surrogate, positions: np.ndarray, gradients: np.ndarray) -> float | None:
    """How much faster than its tangent the surrogate falls just beyond the data (nats).

    From each of the outermost training points ``a`` (exact gradient ``g``), one step of
    ``TAIL_STEP`` whitened units downhill along the exact gradient, ``d``: the
    exact log-density's tangent changes by ``g . d``, the surrogate by the integral of its force
    along the step (Simpson's rule). Their difference is about ``lambda TAIL_STEP^2 / 2`` for a
    Gaussian posterior whose precision is ``lambda`` in whitened units (a fraction of a nat),
    and the median over the points is returned (``None``: too few points with a gradient).

    A surrogate that falls many nats faster than the tangent just beyond the data puts far too
    little mass where the exact chain has not been yet, as a Gaussian base does along a
    curved posterior's arms: its trajectories would never go there, and delayed acceptance can
    only reject, so the draws would miss that mass without any diagnostic showing it.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import equinox as eqx
    >>> class Quadratic(eqx.Module):
    ...     scale: float
    ...     def force(self, q):
    ...         return -q / self.scale**2
    >>> q = np.random.default_rng(0).normal(size=(400, 2))
    >>> round(tail_gap(Quadratic(1.0), q, -q), 2)
    0.09
    >>> tail_gap(Quadratic(0.3), q, -q) > 3
    True
    """
    positions = np.asarray(positions, dtype=np.float64)
    gradients = np.asarray(gradients, dtype=np.float64)
    usable = np.all(np.isfinite(gradients), axis=1) & np.all(np.isfinite(positions), axis=1)
    positions, gradients = positions[usable], gradients[usable]
    if len(positions) <= 2 * positions.shape[1]:
        return None
    whitening = Whitening.fit(positions)
    z = whitening.apply_rows(positions)
    radius = np.linalg.norm(z, axis=1)
    outer = np.flatnonzero(radius >= np.quantile(radius, OUTER_QUANTILE))
    outer = outer[np.argsort(radius[outer])[-TAIL_POINTS:]]
    unwhiten = np.linalg.inv(np.asarray(whitening.transform))
    downhill = -whitening.pullback(gradients[outer])
    length = np.linalg.norm(downhill, axis=1, keepdims=True)
    steps = (TAIL_STEP * downhill / np.where(length > 0, length, 1.0)) @ unwhiten.T
    start = positions[outer]
    along = [start, start + 0.5 * steps, start + steps]
    forces = np.asarray(_forces(surrogate, np.concatenate(along)), dtype=np.float64)
    f0, f_half, f1 = np.split(forces, 3)
    surrogate_change = np.sum((f0 + 4.0 * f_half + f1) / 6.0 * steps, axis=1)
    tangent_change = np.sum(gradients[outer] * steps, axis=1)
    return float(np.median(tangent_change - surrogate_change))
