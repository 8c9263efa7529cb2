"""A log-density network with the structure of a posterior: whitened, Gaussian base, bounded rest.

A posterior of many parameters is, near its mode, close to a Gaussian with some dense
covariance. A plain network has to rediscover that quadratic from data, which it does badly
in 20-100 dimensions and with correlations. :class:`StructuredNetwork` learns it in closed form
instead:

1. **Whitening.** Inputs are mapped to ``z = T (q - mean)``, with ``T`` the inverse Cholesky
   factor of the covariance of the central 90% of the training positions (the far points of
   early tuning would set the units otherwise), so every direction has unit scale whatever
   the parametrization.
2. **Gaussian base.** For a Gaussian the gradient is linear in the position, so a least-squares
   fit of the exact gradients, ``h(z) ~ h0 - B z`` in whitened units, gives its precision ``B``
   exactly, from any handful of points. The base is ``h0 . z - z . B z / 2`` within the
   training data's largest radius ``R0``; beyond it, it falls linearly along each ray (a
   radial Huber), so that it never confines a chain more than an exponential tail would.
3. **Bounded residual.** An MLP learns only the departure from the base, and sees each
   whitened coordinate squashed into the range of the training data,
   ``z_i / (1 + (z_i / R_i)^4)^(1/4)`` with ``R_i`` the largest ``|z_i|`` trained on. Inside
   the data it is nearly the identity; outside, the residual is flat, so the network cannot
   invent a wall where it saw no data and confine a chain there.

Along a direction where the expensive part of the model is flat (a parameter informed by its
prior only), the base's curvature is zero and only the exact prior acts there.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.network import NetworkConfig, Standardization, squash

__all__ = ["RIDGE", "StructuredNetwork", "Whitening", "fit_base", "squash"]

RIDGE = 1e-9
"""Relative regularization of the positions' covariance and of the base's least squares."""
CENTRAL = 0.9
"""Share of the training positions, nearest the median, whose covariance whitens."""


class Whitening(eqx.Module):
    """The affine map ``z = transform @ (q - mean)`` to unit-covariance coordinates.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.random.default_rng(0).normal(size=(500, 2)) @ np.array([[3.0, 0.0], [2.0, 0.5]])
    >>> z = Whitening.fit(q).apply_rows(q)
    >>> bool(abs(np.corrcoef(z.T)[0, 1]) < 0.1), np.round(np.std(z, axis=0), 1).tolist()
    (True, [1.2, 1.2])
    """

    mean: jax.Array | np.ndarray
    transform: jax.Array | np.ndarray

    @classmethod
    def fit(cls, positions: np.ndarray) -> "Whitening":
        """Whiten like the central ``CENTRAL`` share of ``positions`` (rows are points).

        Central first by the distance from the median in robust per-coordinate units
        (interquartile range), then by the Mahalanobis distance under those points' covariance;
        the mean and covariance of the second selection set the map.
        """
        positions = np.asarray(positions, dtype=np.float64)
        robust = Standardization.fit(positions)  # applied on the host: no compilation per shape
        robust_z = (positions - np.asarray(robust.mean)) / np.asarray(robust.scale)
        distance = np.linalg.norm(robust_z, axis=1)
        for _ in range(2):
            central = positions[distance <= np.quantile(distance, CENTRAL)]
            if len(central) <= positions.shape[1]:
                central = positions
            mean, transform = _whitening(central)
            distance = np.linalg.norm((positions - mean) @ transform.T, axis=1)
        return cls(jnp.asarray(mean), jnp.asarray(transform))

    def apply(self, position: jax.Array | np.ndarray) -> jax.Array:
        """Whitened coordinates of one position."""
        return jnp.asarray(self.transform @ (position - self.mean))

    def apply_rows(self, positions: np.ndarray) -> np.ndarray:
        """Whitened coordinates of each row of ``positions``."""
        return (np.asarray(positions) - np.asarray(self.mean)) @ np.asarray(self.transform).T

    def pullback(self, gradients: np.ndarray) -> np.ndarray:
        """Gradients with respect to ``q`` (rows) as gradients with respect to ``z``."""
        return np.asarray(gradients) @ np.linalg.inv(np.asarray(self.transform))


def _whitening(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = positions.mean(axis=0)
    covariance = np.atleast_2d(np.cov(positions, rowvar=False))
    scale = np.diag(covariance).copy()
    scale[~(scale > 0)] = 1.0
    cholesky = np.linalg.cholesky(covariance + RIDGE * np.diag(scale))
    return mean, np.linalg.solve(cholesky, np.eye(len(mean)))


def fit_base(z: np.ndarray, gradients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of whitened gradients on whitened positions: ``h(z) ~ h0 - B z``.

    Fitted on the central ``CENTRAL`` share of the rows (by ``|z|``), where a posterior is
    nearest its Gaussian approximation; rows with a non-finite gradient are left out. Returns
    ``h0`` and ``B``, symmetric, with negative eigenvalues set to 0: the base is concave or
    flat, never a bowl that would fling trajectories away.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(50, 2))
    >>> precision = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> h0, B = fit_base(z, 1.0 - z @ precision)
    >>> np.round(B, 6).tolist(), np.round(h0, 6).tolist()
    ([[2.0, 0.5], [0.5, 1.0]], [1.0, 1.0])
    """
    finite = np.all(np.isfinite(gradients), axis=1) & np.all(np.isfinite(z), axis=1)
    z, gradients = z[finite], gradients[finite]
    radius = np.linalg.norm(z, axis=1)
    central = radius <= np.quantile(radius, CENTRAL)
    if central.sum() > 2 * z.shape[1]:
        z, gradients = z[central], gradients[central]
    design = np.column_stack([np.ones(len(z)), z])
    normal = design.T @ design
    normal += RIDGE * np.trace(normal) / len(normal) * np.eye(len(normal))
    coefficients = np.linalg.solve(normal, design.T @ gradients)
    h0, slope = coefficients[0], -coefficients[1:]
    eigenvalues, vectors = np.linalg.eigh(0.5 * (slope + slope.T))
    return h0, (vectors * np.maximum(eigenvalues, 0.0)) @ vectors.T


class StructuredNetwork(eqx.Module):
    """A log-density: Gaussian base plus a bounded MLP residual, on whitened inputs.

    ``__call__(q)`` returns shape ``(1,)``: ``offset + base(z) + mlp(squash(z))`` with
    ``z = inputs.apply(q)`` and ``base(z) = h0 . z - z . B z / 2`` within ``reach`` of the
    centre, continued linearly along each ray beyond it.

    Examples
    --------
    >>> net = StructuredNetwork.build(NetworkConfig(width=4), 2, key=jax.random.key(0))
    >>> net(jnp.zeros(2)).shape
    (1,)
    """

    mlp: eqx.nn.MLP
    inputs: Whitening
    radius: jax.Array | np.ndarray
    reach: jax.Array | np.ndarray
    linear: jax.Array | np.ndarray
    curvature: jax.Array | np.ndarray
    offset: jax.Array | np.ndarray

    @classmethod
    def build(cls, network: NetworkConfig, dim: int, *, key: jax.Array) -> "StructuredNetwork":
        """A network of ``dim`` inputs with identity whitening, no base, and a fresh MLP."""
        return cls(
            network.build(dim, 1, key=key),
            Whitening(np.zeros(dim), np.eye(dim)),
            np.ones(dim),
            np.asarray(np.inf),
            np.zeros(dim),
            np.zeros((dim, dim)),
            np.zeros(1),
        )

    def base(self, z: jax.Array) -> jax.Array:
        """The Gaussian base at whitened ``z`` (without the offset), linear beyond ``reach``."""
        quadratic = z @ (self.curvature @ z)
        r2 = jnp.sum(z**2)
        outside = r2 > self.reach**2
        # Along a ray, r^2 / 2 becomes reach * r - reach^2 / 2: equal value and slope at reach.
        # Inside, the other branch is computed at r = reach = 1 so that its gradient is finite.
        r2_out, reach = jnp.where(outside, r2, 1.0), jnp.where(outside, self.reach, 1.0)
        huber = (quadratic / r2_out) * (reach * jnp.sqrt(r2_out) - 0.5 * reach**2)
        return jnp.asarray(self.linear @ z - jnp.where(outside, huber, 0.5 * quadratic))

    def residual(self, z: jax.Array) -> jax.Array:
        """The network's bounded correction at whitened ``z``, shape ``(1,)``."""
        return self.mlp(squash(z, self.radius))

    def __call__(self, position: jax.Array) -> jax.Array:
        """The learned log-density at ``position``, shape ``(1,)``."""
        z = self.inputs.apply(position)
        return jnp.asarray(self.offset + self.base(z) + self.residual(z))
