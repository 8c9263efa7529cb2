"""What the engine samples: a JAX log-density of one flat vector, and where its chains start."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["Target", "leaf_name"]

JITTER = 1.0
"""Chains start at the initial position plus uniform noise in ``[-JITTER, JITTER]`` per
coordinate, as PyMC's ``jitter+adapt_diag`` does (unconstrained space)."""


def leaf_name(path: tuple) -> str:
    """A pytree leaf's name: its path's keys and indices joined by dots (``"x"`` at the root).

    Examples
    --------
    >>> [leaf_name(path) for path, _ in jax.tree_util.tree_leaves_with_path({"a": [1, 2]})]
    ['a.0', 'a.1']
    """
    parts = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return ".".join(map(str, parts)) or "x"


@dataclass(frozen=True)
class Target:
    """A posterior as the engine sees it: a log-density of a flat float64 vector.

    Parameters
    ----------
    logdensity
        JAX-traceable map from a position of shape ``(dim,)`` to the log-density (up to a
        constant).
    initial_position
        Where chains start, before jitter.
    unravel
        Maps a flat position back to the structure the user's function takes (for output).
    jitter
        Whether chains start at jittered copies of ``initial_position``.
    variables
        ``(name, shape)`` of each part of a flat position, in order (what a saved surrogate
        is checked against); by default one variable ``"x"``.
    on_host
        Whether ``logdensity`` calls the host (:mod:`surrogate_hmc.engine.host`) rather
        than running in JAX.

    Examples
    --------
    >>> target = Target.from_logdensity(lambda p: -0.5 * jnp.sum(p["x"] ** 2), {"x": jnp.zeros(3)})
    >>> target.dim, float(target.logdensity(jnp.ones(3)))
    (3, -1.5)
    """

    logdensity: Callable[[jax.Array], jax.Array]
    initial_position: np.ndarray
    unravel: Callable[..., Any] = field(default=lambda flat: flat)
    jitter: bool = True
    variables: tuple[tuple[str, tuple[int, ...]], ...] = ()
    on_host: bool = False

    def __post_init__(self) -> None:
        position = np.asarray(self.initial_position, dtype=np.float64)
        if position.ndim != 1 or position.size == 0:
            raise ValueError(
                f"The initial position must hold at least one value; got shape {position.shape}."
            )
        if not np.all(np.isfinite(position)):
            raise ValueError("The initial position has non-finite values: give a finite one.")
        object.__setattr__(self, "initial_position", position)
        variables = tuple((str(n), tuple(int(k) for k in shape)) for n, shape in self.variables)
        object.__setattr__(self, "variables", variables or (("x", (position.size,)),))
        sizes = sum(int(np.prod(shape)) for _, shape in self.variables)
        if sizes != position.size:
            raise ValueError(
                f"The variables {self.variables} hold {sizes} values, the position {position.size}."
            )

    @property
    def dim(self) -> int:
        """Length of a flat position."""
        return self.initial_position.size

    @classmethod
    def from_logdensity(cls, logdensity_fn: Callable[[Any], jax.Array], initial_position: Any):
        """A target from a log-density of any JAX pytree, flattened with ``ravel_pytree``.

        Its variables are the pytree's leaves, named by their paths (:func:`leaf_name`).
        """
        tree = jax.tree.map(jnp.asarray, initial_position)
        raveled, unravel = ravel_pytree(tree)
        flat = np.asarray(raveled, dtype=np.float64)
        variables = tuple(
            (leaf_name(path), np.shape(leaf))
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
        )

        def logdensity(position: jax.Array) -> jax.Array:
            return jnp.asarray(logdensity_fn(unravel(position)), dtype=jnp.float64).reshape(())

        return cls(logdensity, flat, unravel, variables=variables)

    def initial_positions(
        self, chains: int, rng: np.random.Generator, value_and_grad=None
    ) -> np.ndarray:
        """Jittered starts ``(chains, dim)`` with a finite log-density and gradient.

        A jittered start whose log-density or gradient is not finite is drawn again (up to ten
        times), then the unjittered position is used; an unjittered position that is not
        finite is an error that says so. ``value_and_grad`` maps positions ``(chains, dim)``
        to log-densities and gradients (by default, compiled here).
        """
        if value_and_grad is None:
            value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(self.logdensity)))

        def finite(positions: np.ndarray) -> np.ndarray:
            values, gradients = value_and_grad(positions)
            return np.isfinite(np.asarray(values)) & np.all(np.isfinite(gradients), axis=1)

        center = np.tile(self.initial_position, (chains, 1))
        if not finite(center)[0]:
            raise ValueError(
                "The log-density or its gradient is not finite at the initial position "
                f"({np.array2string(self.initial_position, threshold=8)}): give an initial "
                "position inside the support, or check the model."
            )
        if not self.jitter:
            return center
        starts = center.copy()
        pending = np.ones(chains, dtype=bool)
        for _ in range(10):
            candidates = center + rng.uniform(-JITTER, JITTER, center.shape)
            accepted = pending & finite(candidates)
            starts[accepted] = candidates[accepted]
            pending &= ~accepted
            if not pending.any():
                break
        return starts
