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

import numpy as np

__all__ = ["EXPLORATION_DRAWS", "RECENT_DRAWS", "spread_ratio"]

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
