"""Every use of PyMC's private attributes, in one place.

PyMC has no public way to do these few things. Each access below is named, says what it relies
on, and was checked on PyMC 5.28.5 (pytensor 2.38.3) and PyMC 6.4.0 (pytensor 3.3.7);
``tests/step_methods/test_pymc_internals.py`` fails loudly if a PyMC release moves one.
"""

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import numpy as np

__all__ = [
    "compiled_logp",
    "extra_variable_names",
    "inverse_mass_diagonal",
    "metric_estimate",
    "route_logp_dlogp",
    "run_length_from_pymc5_caller",
]

LogpDlogp = Callable[[np.ndarray, Any], tuple[float, np.ndarray]]


def route_logp_dlogp(integrator: Any, wrap: Callable[[LogpDlogp], LogpDlogp]) -> LogpDlogp:
    """Send every exact evaluation of PyMC's NUTS through ``wrap(original)``; return the original.

    ``CpuLeapfrogIntegrator._logp_dlogp_func(q, point_map_info)`` is the one function PyMC's
    HMC/NUTS calls for the log-density and gradient, at the trajectory's start and at every
    leapfrog point. For raveled inputs (what PyMC's NUTS compiles) it ignores its second
    argument, ``point_map_info``, so our own calls pass ``None``.
    """
    original = integrator._logp_dlogp_func
    integrator._logp_dlogp_func = wrap(original)
    return original


def inverse_mass_diagonal(potential: Any) -> np.ndarray:
    """The diagonal inverse mass matrix of a ``QuadPotentialDiagAdapt`` (its ``_var``)."""
    return np.asarray(potential._var, dtype=np.float64)


def metric_estimate(potential: Any) -> np.ndarray | None:
    """A copy of what an adapting potential has estimated so far (``None``: it does not adapt).

    ``QuadPotentialDiagAdapt`` keeps its variances in ``_var``, ``QuadPotentialFullAdapt`` its
    covariance in ``_cov``; both change for the first time when the first adaptation window
    closes (iteration 101 by default).
    """
    for name in ("_var", "_cov"):
        estimate = getattr(potential, name, None)
        if estimate is not None:
            return np.array(estimate, dtype=np.float64)
    return None


def compiled_logp(function: Any) -> Callable[..., list[np.ndarray]]:
    """The compiled PyTensor function inside a ``ValueGradFunction`` (``_pytensor_function``).

    Called directly with the raveled vector, it skips the wrapper's per-call checks; with
    ``trust_input`` set, PyTensor skips its own as well.
    """
    compiled = function._pytensor_function
    compiled.trust_input = True
    return compiled


def extra_variable_names(step: Any) -> tuple[str, ...]:
    """Names of the variables a gradient-based PyMC step does not sample.

    They are the ``_extra_vars_shared`` of its ``ValueGradFunction`` (``_logp_dlogp_func``). In
    a compound step they belong to other step methods, and their current values must be set
    with a function's public ``set_extra_values`` before it is evaluated.
    """
    return tuple(step._logp_dlogp_func._extra_vars_shared)


def run_length_from_pymc5_caller() -> tuple[int, int] | None:
    """Tuning iterations and draws of the running ``pm.sample`` on PyMC 5.

    PyMC 6 passes them to ``setup_chain``; PyMC 5 calls ``set_rng`` without them, so they are
    read from PyMC's sampling loop: the ``tune`` and ``draws`` (tuning included) arguments of
    ``pymc.sampling.mcmc._iter_sample`` (one process) or ``_Process._tune`` and ``._draws`` in
    ``pymc.sampling.parallel._Process._start_loop`` (worker processes). Returns ``None`` when
    the caller is not one of those.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name, local = frame.f_code.co_name, frame.f_locals
        if name == "_iter_sample" and isinstance(local.get("tune"), int):
            tune = int(local["tune"])
            return tune, int(local.get("draws", 2 * tune)) - tune
        process = local.get("self")
        if process is not None and name == "_start_loop" and isinstance(process._tune, int):
            return int(process._tune), int(process._draws)
        frame = frame.f_back
    return None
