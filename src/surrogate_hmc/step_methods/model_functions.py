"""Parts of a PyMC model translated to JAX functions of the sampler's raveled vector."""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from pymc.model import Model
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs

__all__ = ["constrained_parameters", "exact_prior_logdensity", "prior_is_separable"]

PointMapInfo = Sequence[tuple]


def prior_is_separable(model: Model, value_vars: list) -> bool:
    """Whether the priors and Jacobians depend on ``value_vars`` only (no other step's)."""
    inputs = {v for v in graph_inputs([model.varlogp]) if not isinstance(v, Constant)}
    return inputs & set(model.value_vars) <= set(value_vars)


def exact_prior_logdensity(
    model: Model, value_vars: list, point_map_info: PointMapInfo
) -> Callable[[jax.Array], jax.Array] | None:
    """Priors plus transform Jacobians as a JAX function of the raveled vector.

    This is the cheap part of the log-density that the surrogate keeps exact. Returns ``None``
    when that is not practical: the prior depends on variables sampled by another step, or a
    PyTensor operation has no JAX implementation.
    """
    from pymc.sampling.jax import get_jaxified_graph

    if not prior_is_separable(model, value_vars):
        return None
    prior = model.varlogp
    try:
        jax_fn = get_jaxified_graph(inputs=list(value_vars), outputs=[prior])
    except NotImplementedError:
        return None
    unravel = _unravel(point_map_info)

    def logdensity(q: jax.Array) -> jax.Array:
        return jnp.sum(jax_fn(*unravel(q))[0])

    return logdensity


def _unravel(point_map_info: PointMapInfo) -> Callable[[jax.Array], list[jax.Array]]:
    shapes = [tuple(info[1]) for info in point_map_info]
    bounds = np.cumsum([0] + [int(np.prod(shape, dtype=int)) for shape in shapes])

    def unravel(q: jax.Array) -> list[jax.Array]:
        return [
            jnp.reshape(q[lo:hi], shape)
            for lo, hi, shape in zip(bounds[:-1], bounds[1:], shapes, strict=True)
        ]

    return unravel


def constrained_parameters(
    model: Model, value_vars: list, point_map_info: PointMapInfo
) -> Callable[[jax.Array], jax.Array]:
    """The model's free variables on their own (constrained) scale, raveled, as a JAX function."""
    from pymc.sampling.jax import get_jaxified_graph

    rvs = model.replace_rvs_by_values(model.free_RVs)
    constrained = get_jaxified_graph(inputs=list(value_vars), outputs=rvs)
    unravel = _unravel(point_map_info)

    def to_theta(q: jax.Array) -> jax.Array:
        return jnp.concatenate([jnp.ravel(t) for t in constrained(*unravel(q))])

    return to_theta
