"""A PyMC model as the engine's target, and the engine's draws as PyMC's output.

The model's joint log-density over its unconstrained value variables is compiled with PyMC's
JAX backend, or, when an Op has no JAX implementation (an ODE, a custom Op), by PyTensor and
called on the host (:mod:`surrogate_hmc.engine.host`). The draws are mapped back to the
model's variables and deterministics the same way, and returned as ``pm.sample`` returns them
(InferenceData on PyMC 5, DataTree on 6).
"""

import functools
from collections.abc import Sequence
from typing import Any, cast

import jax.numpy as jnp
import numpy as np

from surrogate_hmc.engine.host import host_logdensity
from surrogate_hmc.engine.target import Target

__all__ = ["annotated_nutpie_output", "pymc_output", "pymc_target"]


def _jaxified(inputs, outputs):
    """The graph as a JAX function, or ``None`` when one of its Ops has no JAX implementation."""
    from pymc.sampling.jax import get_jaxified_graph

    try:
        return get_jaxified_graph(inputs=inputs, outputs=outputs)
    except NotImplementedError:
        return None


def _jax_logdensity(model, value_vars, unravel, flat: np.ndarray):
    """The model's log-density in JAX, or ``None`` when an Op has no JAX implementation.

    An Op can lack one when the graph is converted or only when it is traced: both are tried.
    """
    import jax

    logp = _jaxified(value_vars, [model.logp()])
    if logp is None:
        return None

    def logdensity(position):
        return logp(*unravel(position))[0]

    try:
        jax.eval_shape(jax.value_and_grad(logdensity), jnp.asarray(flat))
    except NotImplementedError:
        return None
    return logdensity


def _host_logdensity(model, value_vars, unravel, dim: int):
    """The model's log-density compiled by PyTensor, called from JAX on the host."""
    import pytensor.tensor as pt

    logp = model.logp()
    gradients = cast(list, pt.grad(logp, value_vars))
    gradient = pt.concatenate([pt.flatten(g) for g in gradients])
    value_fn = model.compile_fn(logp, inputs=value_vars, point_fn=False)
    both_fn = model.compile_fn([logp, gradient], inputs=value_vars, point_fn=False)

    def value(position):
        return float(value_fn(*unravel(position)))

    def value_and_gradient(position):
        value, gradient = both_fn(*unravel(position))
        return float(value), np.array(gradient, dtype=np.float64)  # a copy: never PyTensor's

    return host_logdensity(value, value_and_gradient, dim)


def pymc_target(model, initvals: dict | None, random_seed: int) -> Target:
    """The model's log-density over its flattened value variables, starting at ``initvals``."""
    from pymc.initial_point import make_initial_point_fn

    from surrogate_hmc.step_methods.options import discrete_names

    value_vars = list(model.value_vars)
    if not value_vars:
        raise ValueError("The model has no free variables to sample.")
    discrete = discrete_names(value_vars)
    if discrete:
        raise ValueError(
            f"shmc.sample samples continuous variables only, but {discrete} are discrete. "
            "Use pm.sample(step=[shmc.SurrogateHMC(...), pm.Metropolis(...)]) with a step "
            "method for the discrete ones (see the docs' page 'Models with discrete variables')."
        )
    point = make_initial_point_fn(model=model, overrides=initvals, jitter_rvs=set())(random_seed)
    shapes = [np.shape(point[v.name]) for v in value_vars]
    sizes = [int(np.prod(shape)) for shape in shapes]
    splits = np.cumsum(sizes)[:-1].tolist()
    flat = np.concatenate([np.ravel(point[v.name]).astype(np.float64) for v in value_vars])

    def unravel(position, xp=jnp):
        parts = xp.split(position, splits)
        return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]

    logdensity = _jax_logdensity(model, value_vars, unravel, flat)
    on_host = logdensity is None
    if logdensity is None:
        host_unravel = functools.partial(unravel, xp=np)
        logdensity = _host_logdensity(model, value_vars, host_unravel, flat.size)
    variables = tuple((v.name, shape) for v, shape in zip(value_vars, shapes, strict=True))
    return Target(logdensity, flat, unravel, variables=variables, on_host=on_host)


def pymc_output(
    model,
    target: Target,
    positions: np.ndarray,
    stats: dict[str, np.ndarray],
    var_names: Sequence[str] | None,
    attrs: dict[str, Any],
):
    """``pm.sample``'s output from the engine's flat draws ``(chains, draws, dim)``."""
    import pymc as pm
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )
    from pymc.util import get_default_varnames

    outputs = get_default_varnames(model.unobserved_value_vars, include_transformed=False)
    if var_names is not None:
        unknown = set(var_names) - {var.name for var in outputs}
        if unknown:
            raise ValueError(
                f"var_names has {sorted(unknown)}, which the model's free variables and "
                f"deterministics do not: {sorted(var.name for var in outputs)}."
            )
        outputs = [var for var in outputs if var.name in var_names]
    chains, draws, _ = positions.shape
    results = _constrained(model, outputs, target, positions.reshape(chains * draws, -1))
    posterior = {
        var.name: np.asarray(result).reshape(chains, draws, *np.shape(result)[1:])
        for var, result in zip(outputs, results, strict=True)
    }
    coords, dims = coords_and_dims_for_inferencedata(model)
    groups = {"posterior": posterior, "sample_stats": stats}
    observed, constant = find_observations(model), find_constants(model)
    if int(pm.__version__.split(".")[0]) >= 6:
        from arviz_base import from_dict

        if observed:
            groups["observed_data"] = observed
        if constant:
            groups["constant_data"] = constant
        return from_dict(
            data=groups,
            coords=coords,
            dims=dims,
            sample_dims=["chain", "draw"],
            attrs={"posterior": attrs, "sample_stats": attrs},
        )
    import arviz as az

    idata = az.from_dict(
        posterior=posterior,
        sample_stats=stats,
        observed_data=observed,
        constant_data=constant,
        coords=coords,
        dims=dims,
    )
    idata.posterior.attrs.update(attrs)
    idata.sample_stats.attrs.update(attrs)
    return idata


def _constrained(model, outputs, target: Target, flat: np.ndarray) -> list[np.ndarray]:
    """The model's ``outputs`` at every flat position ``(n, dim)``: one array ``(n, ...)`` each.

    Compiled with JAX and vmapped where every Op has a JAX implementation; otherwise
    PyTensor's function, called draw by draw on the NumPy values of ``target.unravel``.
    """
    import jax

    value_vars = list(model.value_vars)
    values = _jaxified(value_vars, outputs)
    if values is not None:

        def constrained(position):
            return values(*target.unravel(position))

        return [np.asarray(r) for r in jax.jit(jax.vmap(constrained))(jnp.asarray(flat))]
    function = model.compile_fn(outputs, inputs=value_vars, point_fn=False)
    rows = [
        [np.array(value) for value in function(*target.unravel(position, xp=np))]
        for position in flat
    ]
    return [np.stack([row[i] for row in rows]) for i in range(len(outputs))]


def annotated_nutpie_output(
    trace,
    stats: dict[str, np.ndarray],
    attrs: dict[str, Any],
    var_names: Sequence[str] | None,
):
    """Nutpie's own output for a PyMC model, with the engine's sample stats and attributes.

    Its posterior (variables, deterministics, coordinates) is already PyMC's, cut to
    ``var_names``; the stats are added beside nutpie's own under the names ``shmc.sample``
    always uses.
    """
    sample_stats = _group(trace, "sample_stats")
    draws = sample_stats.sizes["draw"]
    sample_stats = sample_stats.assign(
        {name: (("chain", "draw"), value[:, :draws]) for name, value in stats.items()}
    )
    posterior = _group(trace, "posterior")
    if var_names is not None:
        posterior = posterior[list(var_names)]
    for group, dataset in (("sample_stats", sample_stats), ("posterior", posterior)):
        dataset.attrs.update(attrs)
        if hasattr(trace, "children"):  # a DataTree (PyMC 6)
            trace[group] = dataset
        else:
            setattr(trace, group, dataset)
    return trace


def _group(trace, name: str):
    group = trace[name]
    return group.to_dataset() if hasattr(group, "to_dataset") else group
