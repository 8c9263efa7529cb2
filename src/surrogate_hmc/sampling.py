"""``shmc.sample``: every chain in one run, one shared surrogate, for PyMC models and JAX."""

import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.reuse import check_save_to, given_surrogate
from surrogate_hmc.core.schedule import SwitchTest
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.training import TrainingConfig
from surrogate_hmc.engine import EngineConfig, RunReport, Target, run
from surrogate_hmc.engine.target import leaf_name

__all__ = ["sample"]

_log = logging.getLogger("surrogate_hmc")


def sample(
    logdensity_fn: Callable[[Any], jax.Array] | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    *,
    initial_position: Any = None,
    random_seed: int | None = None,
    progressbar: bool = True,
    initvals: dict | None = None,
    var_names: Sequence[str] | None = None,
    model=None,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    network: NetworkConfig | None = None,
    training: TrainingConfig | None = None,
    switch: SwitchTest | None = None,
    first_training: int | None = None,
    cost_gate: bool = True,
    surrogate_transitions: int | None = None,
    surrogate: "TrainedSurrogate | str | os.PathLike | None" = None,
    save_to: str | os.PathLike | None = None,
):
    """Sample all chains at once, with one surrogate learned from all of them.

    Exact NUTS runs every chain in one compiled program (one batched exact log-density and
    gradient per leapfrog step, the metric estimated from the pooled draws of all chains).
    After a twentieth of the tuning, one log-density surrogate is trained on the pooled
    exact evaluations (every leapfrog point) and piloted; if it passes, a compiled
    delayed-acceptance NUTS kernel finishes the tuning and makes the draws of every chain at
    once, at one exact log-density per draw and chain (after as many NUTS transitions on the
    surrogate as one exact log-density's time pays for). Otherwise exact NUTS goes on, and
    the surrogate is retrained on twice the iterations. A model whose
    exact gradient is too cheap for any surrogate to pay for its setup is left to nutpie (NUTS
    with a low-rank metric), whole. Every draw comes from a kernel that targets the exact
    posterior and is frozen for the draws.

    Parameters
    ----------
    logdensity_fn
        A JAX log-density of a pytree of parameters (then ``initial_position`` is required).
        ``None`` samples the PyMC ``model`` (or the model in context).
    draws, tune, chains, random_seed, progressbar, initvals, var_names, model
        As for :func:`pymc.sample` (``initvals``: one dict for all chains, in the model's
        variables; chains start at jittered copies of it).
    initial_position
        For ``logdensity_fn``: a pytree where chains start (jittered by up to 1 in every
        coordinate when that keeps the log-density finite).
    target_accept, max_tree_depth
        NUTS's step-size target and most doublings.
    network, training, switch, first_training, cost_gate, surrogate_transitions
        The surrogate's network, its training, its switch test, the iterations per chain
        before its first training, the cost gate, and the surrogate NUTS transitions per
        exact correction (see :class:`~surrogate_hmc.engine.EngineConfig`).
    surrogate
        A surrogate saved by an earlier ``shmc.sample`` of the same model (a
        :class:`~surrogate_hmc.TrainedSurrogate` or its file): piloted after 50 exact
        iterations instead of training one; if it fails its pilot, the run trains its own.
        ``None`` (or ``"logp"``) trains one.
    save_to
        A file to save the surrogate that made the draws to (nothing is saved, with a
        warning, when exact NUTS made them). Load it with
        :meth:`~surrogate_hmc.TrainedSurrogate.load` or pass the path as ``surrogate``.

    Returns
    -------
    InferenceData (PyMC 5 and plain JAX targets with ArviZ < 1) or DataTree
        Posterior (a PyMC model's variables and deterministics, or the pytree's leaves),
        sample stats named as :class:`~surrogate_hmc.SurrogateHMC`'s, and for PyMC models the
        observed data. The attributes say what the run decided (``surrogate_decision``) and
        where its time went (``seconds_*``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> idata = sample(
    ...     lambda p: -0.5 * jnp.sum(p["x"] ** 2), draws=200, tune=200, chains=2,
    ...     initial_position={"x": jnp.zeros(3)}, random_seed=1, progressbar=False,
    ... )
    >>> idata["posterior"]["x"].shape
    (2, 200, 3)
    """
    config = EngineConfig(
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
        max_tree_depth=max_tree_depth,
        network=network or NetworkConfig(),
        training=training or TrainingConfig(),
        switch=switch or SwitchTest(),
        first_training=first_training,
        cost_gate=cost_gate,
        surrogate_transitions=surrogate_transitions,
        progressbar=progressbar,
    )
    if surrogate == "gradient":
        raise ValueError(
            "shmc.sample learns a surrogate of the log-density; a gradient surrogate is "
            "SurrogateHMC's (pm.sample(step=shmc.SurrogateHMC(surrogate='gradient')))."
        )
    given = None if surrogate is None else given_surrogate(surrogate)
    check_save_to(save_to)
    seed = int(np.random.SeedSequence(random_seed).generate_state(1)[0])
    start = time.perf_counter()
    if logdensity_fn is None:
        result, output = _run_pymc(model, config, seed, initvals, var_names, given)
    else:
        result, output = _run_jax(logdensity_fn, initial_position, config, seed, given)
    _warn_if_stayed_exact(result.report)
    _log_divergences(result.stats, config.target_accept)
    _save(result.surrogate, save_to)
    return output(_attrs(result.report, start))


def _run_jax(logdensity_fn, initial_position, config, seed, given):
    """Sample a JAX log-density: the engine's result, and how to make its output."""
    if not callable(logdensity_fn):
        raise TypeError(
            "shmc.sample takes a JAX log-density function (with initial_position) or, inside "
            f"a PyMC model's context, no function; got {type(logdensity_fn).__name__}."
        )
    if initial_position is None:
        raise ValueError(
            "shmc.sample(logdensity_fn) needs initial_position: a pytree like the one "
            "logdensity_fn takes, where the chains start."
        )
    target = Target.from_logdensity(logdensity_fn, initial_position)
    result = run(target, config, seed, given=given)
    assert result.positions is not None  # nutpie sampled the target's own log-density
    return result, lambda attrs: _jax_output(target, result.positions, result.stats, attrs)


def _run_pymc(model, config, seed, initvals, var_names, given):
    """Sample a PyMC model: the engine's result, and how to make ``pm.sample``'s output."""
    import pymc as pm

    from surrogate_hmc.frontends.pymc_target import (
        annotated_nutpie_output,
        pymc_output,
        pymc_target,
    )

    model = pm.modelcontext(model)
    target = pymc_target(model, initvals, seed)

    def nutpie_model():
        import nutpie

        return nutpie.compile_pymc_model(model, initial_points=initvals, var_names=var_names)

    # nutpie compiles the model with numba; an Op that has no JAX implementation may have no
    # numba one either, so a host target is sampled through its JAX function.
    result = run(target, config, seed, None if target.on_host else nutpie_model, given)

    def output(attrs):
        if result.positions is None:
            return annotated_nutpie_output(result.trace, result.stats, attrs, var_names)
        return pymc_output(model, target, result.positions, result.stats, var_names, attrs)

    return result, output


def _save(trained: TrainedSurrogate | None, save_to) -> None:
    from surrogate_hmc.step_methods.messages import SurrogateWarning

    if save_to is None:
        return
    if trained is None:
        warnings.warn(
            f"No surrogate made the draws, so none was saved to {str(save_to)!r}.",
            SurrogateWarning,
            stacklevel=3,
        )
        return
    trained.save(save_to)


def _warn_if_stayed_exact(report: RunReport) -> None:
    from surrogate_hmc.step_methods.messages import SurrogateWarning

    if report.decision == "stayed exact: no surrogate passed":
        last = report.trainings[-1]
        reason = last.pilot.reason if last.pilot is not None else last.outcome
        warnings.warn(
            f"No surrogate passed its tests ({reason}); exact NUTS made every draw.",
            SurrogateWarning,
            stacklevel=3,
        )


def _log_divergences(stats: dict[str, np.ndarray], target_accept: float) -> None:
    """Log the draws' divergences as :func:`pymc.sample` does: an error, with what to do.

    A divergence marks a region the step size cannot integrate (a funnel's neck, a curved
    tail): the draws may miss it, and their moments can be off by many MCSE.
    """
    divergences = int(np.sum(stats["diverging"]))
    if divergences == 0:
        return
    share = divergences / stats["diverging"].size
    _log.error(
        "There were %d divergences after tuning (%.1f%% of the draws). Increase target_accept "
        "(now %s; 0.95 or 0.99 on a curved or funnel-shaped posterior) or reparameterize.",
        divergences, 100 * share, target_accept,
    )  # fmt: skip


def _attrs(report: RunReport, start: float) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "inference_library": "surrogate_hmc",
        "sampling_time": time.perf_counter() - start,
        "surrogate_decision": report.decision,
        "exact_gradients": report.exact_gradients,
        "exact_logps": report.exact_logps,
        "interrupted": int(report.interrupted),
    }
    given = [record for record in report.trainings if record.given]
    if given:
        attrs["given_surrogate"] = given[0].outcome
    attrs["n_trainings"] = len(report.trainings) - len(given)
    if report.switched_at is not None:
        attrs["switched_at"] = report.switched_at
        attrs["surrogate_transitions"] = report.surrogate_transitions
    attrs.update({f"seconds_{name}": value for name, value in report.seconds.items()})
    return attrs


def _jax_output(target: Target, positions: np.ndarray, stats, attrs):
    import arviz as az

    chains, draws, dim = positions.shape
    unraveled = jax.vmap(target.unravel)(jnp.asarray(positions.reshape(chains * draws, dim)))
    leaves = jax.tree_util.tree_leaves_with_path(unraveled)
    posterior = {}
    for path, leaf in leaves:
        posterior[leaf_name(path)] = np.asarray(leaf).reshape(chains, draws, *np.shape(leaf)[1:])
    if hasattr(az, "from_dict") and "data" in az.from_dict.__code__.co_varnames:
        return az.from_dict(
            data={"posterior": posterior, "sample_stats": stats},
            sample_dims=["chain", "draw"],
            attrs={"posterior": attrs, "sample_stats": attrs},
        )
    idata = az.from_dict(posterior=posterior, sample_stats=stats)
    idata.posterior.attrs.update(attrs)
    idata.sample_stats.attrs.update(attrs)
    return idata
