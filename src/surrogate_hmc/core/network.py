"""The surrogate network: an Equinox MLP on standardized inputs and outputs."""

from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.validation import check_choice, check_int

__all__ = ["NetworkConfig", "Standardization", "StandardizedMLP", "squash"]

Activation = Literal["silu", "selu", "tanh", "softplus", "gelu"]
_ACTIVATIONS = {
    "silu": jax.nn.silu,
    "selu": jax.nn.selu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
}


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the surrogate network.

    Parameters
    ----------
    width
        Units per hidden layer.
    depth
        Number of hidden layers.
    activation
        A smooth activation (the surrogate's force must be smooth for leapfrog to be accurate):
        one of ``"silu"``, ``"selu"``, ``"tanh"``, ``"softplus"``, ``"gelu"``.

    Examples
    --------
    >>> import jax
    >>> NetworkConfig(width=32).build(3, 3, key=jax.random.key(0)).width_size
    32
    """

    width: int = 128
    depth: int = 2
    activation: Activation = "silu"

    def __post_init__(self) -> None:
        for name in ("width", "depth"):
            object.__setattr__(self, name, check_int(f"NetworkConfig.{name}", getattr(self, name)))
        check_choice("NetworkConfig.activation", self.activation, tuple(_ACTIVATIONS))

    def build(self, in_size: int, out_size: int, *, key: jax.Array) -> eqx.nn.MLP:
        """Return a freshly initialised MLP from ``in_size`` to ``out_size`` features."""
        return eqx.nn.MLP(
            in_size,
            out_size,
            self.width,
            self.depth,
            activation=_ACTIVATIONS[self.activation],
            key=key,
        )


class Standardization(eqx.Module):
    """An affine map to zero mean and unit scale, per feature.

    Examples
    --------
    >>> import numpy as np
    >>> s = Standardization(np.array([1.0, 1.0]), np.array([1.0, 2.0]))
    >>> s.apply(np.array([2.0, 1.0])).tolist()
    [1.0, 0.0]
    """

    mean: jax.Array | np.ndarray
    scale: jax.Array | np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray) -> "Standardization":
        """Standardize like ``data`` (rows are observations), robustly.

        The centre is the median and the scale the interquartile range / 1.349 (the standard
        deviation for Gaussian data), so the heavy tails of early-tuning evaluations do not
        set the units. Features without spread keep scale 1.
        """
        data = np.asarray(data, dtype=np.float64)
        median = np.median(data, axis=0)
        q25, q75 = np.percentile(data, [25.0, 75.0], axis=0)
        scale = (q75 - q25) / 1.349
        scale = np.where(scale > 0, scale, data.std(axis=0))
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(median)), scale, 1.0)
        return cls(jnp.asarray(median), jnp.asarray(scale))

    def apply(self, x: jax.Array | np.ndarray) -> jax.Array:
        """Map ``x`` to standardized units."""
        return jnp.asarray((x - self.mean) / self.scale)

    def invert(self, z: jax.Array | np.ndarray) -> jax.Array:
        """Map standardized ``z`` back to original units."""
        return jnp.asarray(self.mean + self.scale * z)


def squash(z: jax.Array | np.ndarray, radius: jax.Array | np.ndarray | float) -> jax.Array:
    """``z / (1 + (z / radius)^4)^(1/4)`` per coordinate: near the identity inside, bounded.

    Examples
    --------
    >>> np.round(np.asarray(squash(jnp.array([0.5, 3.0, 300.0]), jnp.full(3, 3.0))), 3)
    array([0.5  , 2.523, 3.   ])
    """
    return jnp.asarray(z / jnp.sqrt(jnp.sqrt(1.0 + (z / radius) ** 4)))


class StandardizedMLP(eqx.Module):
    """An MLP on standardized inputs, squashed into ``radius``, with standardized outputs.

    Each standardized input is squashed into the range the network was trained on
    (:func:`squash`, with ``radius`` the largest ``|x_i|`` trained on): inside it the map is
    nearly the identity; beyond it the network's output stays what it was at the edge of the
    data, so it cannot extrapolate a force (a wall, say) from where it saw nothing.

    Examples
    --------
    >>> import jax, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(10, 2))
    >>> net = StandardizedMLP(
    ...     NetworkConfig(width=8).build(2, 2, key=jax.random.key(0)),
    ...     Standardization.fit(x),
    ...     Standardization.fit(-x),
    ...     np.full(2, 3.0),
    ... )
    >>> net(x[0]).shape
    (2,)
    >>> far = net(np.array([1e3, 0.0])) - net(np.array([1e6, 0.0]))
    >>> bool(np.all(np.abs(far) < 1e-6))
    True
    """

    mlp: eqx.nn.MLP
    inputs: Standardization
    outputs: Standardization
    radius: jax.Array | np.ndarray

    def __call__(self, x: jax.Array) -> jax.Array:
        """Predict in original units."""
        return self.outputs.invert(self.mlp(squash(self.inputs.apply(x), self.radius)))
