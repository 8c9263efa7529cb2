"""A bounded buffer of exact evaluations (position, log-density, gradient)."""

import numpy as np

__all__ = ["MAX_POINTS_PER_ITERATION", "TrainingBuffer", "evenly_spaced"]

MAX_POINTS_PER_ITERATION = 64
"""Most evaluations one iteration adds to the buffer: a long NUTS trajectory (hundreds of
leapfrog points on a correlated posterior, each next to the last) is thinned evenly along its
length, so that the buffer spans many trajectories rather than the last few."""


def evenly_spaced(n: int, most: int) -> np.ndarray:
    """Indices of at most ``most`` of ``n`` items, evenly spaced, the first and last included.

    Examples
    --------
    >>> evenly_spaced(5, 64).tolist()
    [0, 1, 2, 3, 4]
    >>> evenly_spaced(1023, 5).tolist()
    [0, 256, 511, 766, 1022]
    """
    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


class TrainingBuffer:
    """Keep the most recent ``capacity`` finite exact evaluations.

    Every exact evaluation the sampler makes (every leapfrog point, not only the draws) is
    offered; evaluations with a non-finite log-density or gradient are dropped and counted. An
    evaluation of the log-density alone (``gradient=None``) is kept with a gradient of NaN, which
    :func:`~surrogate_hmc.core.fit_log_density` reads as "value only".

    A position is stored once: an evaluation at a position already in the buffer (NUTS starts
    each trajectory at the last draw; a gradient learned where only the log-density was known)
    fills in that row's gradient instead of adding a copy, which could otherwise fall on both
    sides of the held-out split and make the validation error optimistic.

    Parameters
    ----------
    capacity
        Largest number of evaluations kept; the oldest are overwritten first.
    dim
        Length of a position vector.

    Examples
    --------
    >>> import numpy as np
    >>> buffer = TrainingBuffer(capacity=2, dim=1)
    >>> for x in (1.0, 2.0, np.nan, 3.0):
    ...     _ = buffer.add(np.array([x]), -x, np.array([-x]))
    >>> buffer.positions().ravel().tolist(), buffer.n_dropped
    ([2.0, 3.0], 1)
    >>> buffer.add(np.array([3.0]), -3.0, None), len(buffer)
    (True, 2)
    """

    __slots__ = (
        "_gradients", "_logps", "_positions", "_rows", "capacity", "n_dropped", "n_seen",
    )  # fmt: skip

    def __init__(self, capacity: int, dim: int) -> None:
        if capacity < 1 or dim < 1:
            raise ValueError(f"capacity and dim must be positive, got {capacity} and {dim}.")
        self.capacity = capacity
        self._positions = np.zeros((capacity, dim))
        self._logps = np.zeros(capacity)
        self._gradients = np.zeros((capacity, dim))
        self._rows: dict[bytes, int] = {}  # position -> its row
        self.n_seen = 0
        self.n_dropped = 0

    def __len__(self) -> int:
        return min(self.n_seen, self.capacity)

    def add(self, position: np.ndarray, logp: float, gradient: np.ndarray | None) -> bool:
        """Store one evaluation; return ``False`` if it was dropped as non-finite."""
        if not (np.isfinite(logp) and (gradient is None or np.all(np.isfinite(gradient)))):
            self.n_dropped += 1
            return False
        key = np.asarray(position, dtype=np.float64).tobytes()
        row = self._rows.get(key)
        if row is not None:
            if gradient is not None:
                self._gradients[row] = gradient
            return True
        row = self.n_seen % self.capacity
        if self.n_seen >= self.capacity:
            del self._rows[self._positions[row].tobytes()]
        self._rows[key] = row
        self._positions[row] = position
        self._logps[row] = logp
        self._gradients[row] = np.nan if gradient is None else gradient
        self.n_seen += 1
        return True

    def _order(self) -> np.ndarray:
        size = len(self)
        return (np.arange(size) + self.n_seen - size) % self.capacity

    def positions(self) -> np.ndarray:
        """Stored positions, oldest first."""
        return self._positions[self._order()]

    def logps(self) -> np.ndarray:
        """Stored log-densities, oldest first."""
        return self._logps[self._order()]

    def gradients(self) -> np.ndarray:
        """Stored gradients, oldest first (NaN rows: the log-density alone was evaluated)."""
        return self._gradients[self._order()]
