"""A dense mass matrix for the surrogate phase: from the surrogate's curvature, then its draws.

A surrogate trajectory is cheap, so the surrogate phase can afford what exact NUTS cannot: a
dense inverse mass matrix, which removes linear correlations and scales, so that correlated
posteriors mix in a few leapfrog steps. It starts as the inverse Hessian of the surrogate
log-density at the training data's centre (a Laplace approximation; used when that Hessian is
negative definite) and is then re-estimated from the covariance of the surrogate phase's own
tuning draws, in windows, like Stan's warmup. It is frozen with the rest of the kernel for the
draws, so the chain stays exact.
"""

from dataclasses import dataclass, field

import jax
import numpy as np

from surrogate_hmc.core.recent_jit import recent_jit

__all__ = ["METRIC_WINDOWS", "MetricAdaptation", "laplace_inverse_mass", "regularized_covariance"]

METRIC_WINDOWS = (0.15, 0.45)
"""Ends of the covariance windows, as fractions of the tuning left after the switch."""
MIN_WINDOW_DRAWS = 20
"""Fewest draws a window needs for its covariance to replace the mass matrix."""


@recent_jit
def _hessian(logdensity, center):
    return jax.hessian(logdensity)(center)


def laplace_inverse_mass(logdensity, center: np.ndarray) -> np.ndarray | None:
    """The inverse of minus the Hessian of ``logdensity`` at ``center``, if that is positive.

    ``None`` when the Hessian is not finite and negative definite there.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> precision = jnp.array([[2.0, 1.0], [1.0, 2.0]])
    >>> np.round(laplace_inverse_mass(lambda q: -0.5 * q @ precision @ q, np.zeros(2)), 4)
    array([[ 0.6667, -0.3333],
           [-0.3333,  0.6667]])
    """
    hessian = np.asarray(_hessian(logdensity, np.asarray(center, dtype=np.float64)))
    if not np.all(np.isfinite(hessian)):
        return None
    precision = -0.5 * (hessian + hessian.T)
    eigenvalues, vectors = np.linalg.eigh(precision)
    if eigenvalues[0] <= 1e-12 * max(eigenvalues[-1], 0.0) or eigenvalues[-1] <= 0:
        return None
    return (vectors / eigenvalues) @ vectors.T


def regularized_covariance(draws: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The draws' covariance, shrunk toward the ``prior`` metric as much as few draws need.

    The weight of the draws is ``n / (n + 2 dim)``. Shrinking toward the metric in use, not
    toward a diagonal, keeps a near-degenerate correlation that the metric already captures.

    Examples
    --------
    >>> draws = np.random.default_rng(0).normal(size=(4000, 2)) @ np.array([[1.0, 0.9], [0, 0.4]])
    >>> np.round(regularized_covariance(draws, np.eye(2)), 1)
    array([[1. , 0.9],
           [0.9, 1. ]])
    """
    n, dim = draws.shape
    weight = n / (n + 2 * dim)
    covariance = np.atleast_2d(np.cov(draws, rowvar=False))
    return weight * covariance + (1 - weight) * prior


@dataclass
class MetricAdaptation:
    """Windows of the surrogate phase's tuning draws, each ending in a new dense metric.

    Built at the switch for the tuning iterations left; :meth:`update` takes each tuning draw
    and returns a new inverse mass matrix at the end of a window, else ``None``.

    Examples
    --------
    >>> adaptation = MetricAdaptation.plan(switch=100, tune=500)
    >>> adaptation.window_ends
    (160, 280)
    >>> draws = np.random.default_rng(0).normal(size=(60, 2))
    >>> [adaptation.update(i, q, np.ones(2)) is None for i, q in enumerate(draws, start=100)][-1]
    False
    """

    window_ends: tuple[int, ...]
    draws: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def plan(cls, switch: int, tune: int) -> "MetricAdaptation":
        """The windows after a switch at iteration ``switch`` of ``tune``."""
        left = tune - switch
        return cls(tuple(switch + int(fraction * left) for fraction in METRIC_WINDOWS))

    def update(self, iteration: int, position: np.ndarray, in_use: np.ndarray) -> np.ndarray | None:
        """Take in one tuning draw; a new inverse mass matrix when a window ends here.

        ``in_use`` is the inverse mass matrix in use (dense, or its diagonal): the window's
        covariance is shrunk toward it.
        """
        self.draws.append(np.array(position, dtype=np.float64))
        if iteration + 1 not in self.window_ends:
            return None
        draws, self.draws = np.array(self.draws), []
        if len(draws) < MIN_WINDOW_DRAWS or not np.all(np.isfinite(draws)):
            return None
        prior = np.diag(in_use) if np.ndim(in_use) == 1 else in_use
        covariance = regularized_covariance(draws, prior)
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            return None
        return covariance
