"""A PyMC model as the engine's target, and the engine's draws as PyMC's output.

The model's joint log-density over its unconstrained value variables is compiled with PyMC's
JAX backend; the draws are mapped back to the model's variables and deterministics with the same
backend, and returned as ``pm.sample`` returns them (InferenceData on PyMC 5, DataTree on 6).
"""

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from surrogate_hmc.engine.target import Target

__all__ = ["annotated_nutpie_output", "pymc_output", "pymc_target"]


def _jaxified(inputs, outputs, what: str):
    from pymc.sampling.jax import get_jaxified_graph

    try:
        return get_jaxified_graph(inputs=inputs, outputs=outputs)
    except NotImplementedError as error:
        raise NotImplementedError(
            f"shmc.sample needs the model's {what} in JAX, and PyTensor has no JAX "
            f"implementation of one of its operations ({error}). Use "
            "pm.sample(step=shmc.SurrogateHMC()), which works with any PyMC model."
        ) from error


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
    logp = _jaxified(value_vars, [model.logp()], "log-density")
    point = make_initial_point_fn(model=model, overrides=initvals, jitter_rvs=set())(random_seed)
    shapes = [np.shape(point[v.name]) for v in value_vars]
    sizes = [int(np.prod(shape)) for shape in shapes]
    splits = np.cumsum(sizes)[:-1].tolist()
    flat = np.concatenate([np.ravel(point[v.name]).astype(np.float64) for v in value_vars])

    def unravel(position):
        parts = jnp.split(position, splits)
        return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]

    def logdensity(position):
        return logp(*unravel(position))[0]

    return Target(logdensity, flat, unravel)


def pymc_output(
    model,
    target: Target,
    positions: np.ndarray,
    stats: dict[str, np.ndarray],
    var_names: Sequence[str] | None,
    attrs: dict[str, Any],
):
    """``pm.sample``'s output from the engine's flat draws ``(chains, draws, dim)``."""
    import jax
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
    values = _jaxified(list(model.value_vars), outputs, "variables")

    def constrained(position):
        return values(*target.unravel(position))

    chains, draws, _ = positions.shape
    flat = jnp.asarray(positions.reshape(chains * draws, -1))
    results = jax.jit(jax.vmap(constrained))(flat)
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
