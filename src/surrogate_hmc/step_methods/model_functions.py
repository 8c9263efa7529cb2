"""Parts of a PyMC model translated to JAX functions of the sampler's raveled vector."""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pymc.model import Model
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs

from surrogate_hmc.core.fitting import ExactPrior

__all__ = [
    "ExactPriors",
    "constrained_parameters",
    "exact_prior_logdensity",
    "exact_priors",
    "prior_is_separable",
]

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


class ExactPriors(NamedTuple):
    """The exact prior for this run's trainings and for a given surrogate (``None``: none)."""

    trained: ExactPrior | None
    given: ExactPrior | None


def exact_priors(
    model: Model, value_vars: list, point_map_info: PointMapInfo, trained: bool, given: bool
) -> ExactPriors:
    """The exact prior in JAX where it is wanted: by this run's trainings, by a given surrogate.

    A surrogate learns the likelihood only when the prior can be added back exactly; where it
    cannot (see :func:`exact_prior_logdensity`) a training learns the whole log-density.
    """
    logdensity = None
    if trained or given:
        logdensity = exact_prior_logdensity(model, value_vars, point_map_info)
    prior = None if logdensity is None else ExactPrior.of(logdensity)
    return ExactPriors(prior if trained else None, prior if given else None)
