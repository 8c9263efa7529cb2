"""The functions of a PyMC model that the surrogate sampler needs, on the raveled vector."""

import sys
from collections.abc import Callable, Sequence
from types import FrameType

import jax
import jax.numpy as jnp
import numpy as np
from pymc.model import Model
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs

__all__ = [
    "LogpFunction",
    "exact_prior_logdensity",
    "prior_is_separable",
    "tune_from_pymc5_caller",
]

PointMapInfo = Sequence[tuple]


class LogpFunction:
    """Exact log-density without gradient, on the raveled vector of the sampled variables.

    On a GP it costs about a quarter of ``logp`` plus gradient: this is what the exact Metropolis
    correction pays once per proposal.
    """

    def __init__(self, model: Model, value_vars: list, initial_point: dict) -> None:
        self._function = model.logp_dlogp_function(
            value_vars, ravel_inputs=True, compute_grads=False, initial_point=initial_point
        )
        self._compiled = self._function._pytensor_function
        self._compiled.trust_input = True
        self.extra_names = tuple(self._function._extra_vars_shared)

    def set_extra_values(self, point: dict) -> None:
        """Set the variables that are not sampled here (other steps of a compound step)."""
        self._function.set_extra_values({name: point[name] for name in self.extra_names})

    def __call__(self, q: np.ndarray) -> float:
        """Evaluate the log-density at the raveled position ``q``."""
        return float(self._compiled(q)[0])


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
    shapes = [tuple(info[1]) for info in point_map_info]
    bounds = np.cumsum([0] + [int(np.prod(shape, dtype=int)) for shape in shapes])

    def logdensity(q: jax.Array) -> jax.Array:
        pieces = [
            jnp.reshape(q[lo:hi], shape)
            for lo, hi, shape in zip(bounds[:-1], bounds[1:], shapes, strict=True)
        ]
        return jnp.sum(jax_fn(*pieces)[0])

    return logdensity


def tune_from_pymc5_caller() -> int | None:
    """Number of tuning iterations of the running ``pm.sample`` on PyMC 5.

    PyMC 6 passes it to ``setup_chain``; PyMC 5 calls ``set_rng`` without it, so it is read from
    PyMC's sampling loop (the single-process ``_iter_sample`` or a worker's ``_start_loop``).
    Returns ``None`` when the caller is not one of those.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name, local = frame.f_code.co_name, frame.f_locals
        if name == "_iter_sample" and isinstance(local.get("tune"), int):
            return int(local["tune"])
        if name == "_start_loop" and isinstance(getattr(local.get("self"), "_tune", None), int):
            return int(local["self"]._tune)
        frame = frame.f_back
    return None
