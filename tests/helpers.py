"""Test helpers: z-scores with errors from the effective sample size; fresh interpreters; a
model term as slow as a real model's."""

import os
import subprocess
import sys
import time

import arviz as az
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op


def _mcse_of_mean(values: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of ``values`` with shape (chain, draw)."""
    if np.ptp(values) == 0:  # a chain that never moved: no error to estimate
        return 0.0
    ess = float(np.asarray(az.ess(values, method="mean")).squeeze())
    return float(np.sqrt(values.var() / ess))


def moment_z_scores(
    draws: np.ndarray, mean, variance, allowance: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """z-scores of the sample mean and variance of each coordinate against the truth.

    ``draws`` has shape (chain, draw, dim). The variance is checked as the mean ``V`` of
    ``(x - true_mean)**2``, so both checks are means of chain functionals with an ESS-based error.
    ``allowance`` adds a known approximation error in quadrature (0 for exact samplers): for the
    mean, a fraction of the true standard deviation; for the variance, a relative error ``a``
    taken the same way in both directions, ``a * min(V, V0)``, so (MCSE aside) a z-score ``z``
    is reached at ``V / V0 = 1 + z a`` above and at ``V0 / V = 1 + z a`` below: a chain
    collapsed to a point (V -> 0) fails as surely as one too wide. Returns an array of shape
    (2, dim): row 0 for means, row 1 for variances.
    """
    draws = np.asarray(draws, dtype=float)
    mean, variance = np.broadcast_arrays(np.asarray(mean, float), np.asarray(variance, float))
    mean = np.broadcast_to(mean, draws.shape[-1:])
    variance = np.broadcast_to(variance, draws.shape[-1:])
    z = np.empty((2, draws.shape[-1]))
    for i in range(draws.shape[-1]):
        x = draws[..., i]
        squares = (x - mean[i]) ** 2
        estimate = squares.mean()
        mean_error = np.hypot(_mcse_of_mean(x), allowance[0] * np.sqrt(variance[i]))
        variance_error = np.hypot(_mcse_of_mean(squares), allowance[1] * min(estimate, variance[i]))
        with np.errstate(divide="ignore", invalid="ignore"):  # a chain that never moved: +-inf
            z[0, i] = (x.mean() - mean[i]) / mean_error
            z[1, i] = (estimate - variance[i]) / variance_error
    return z


def assert_moments(draws, mean, variance, z_max: float = 4.5, allowance=(0.0, 0.0)) -> None:
    """Fail unless every mean and variance is within ``z_max`` Monte Carlo standard errors."""
    z = moment_z_scores(draws, mean, variance, allowance)
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) < z_max, f"z-scores:\n{np.round(z, 2)}"


def posterior_array(idata, names) -> np.ndarray:
    """Draws of the named variables as one array of shape (chain, draw, dim).

    ``names`` may also be a ``models.Checked``: its features of the named variables' draws.
    """
    if hasattr(names, "features"):
        return names.features(posterior_array(idata, names.names))
    posterior = idata["posterior"]
    parts = [
        np.asarray(posterior[name]).reshape(*np.shape(posterior[name])[:2], -1) for name in names
    ]
    return np.concatenate(parts, axis=-1)


def sample_stat(idata, name) -> np.ndarray:
    """A sample stat as an array of shape (chain, draw)."""
    return np.asarray(idata["sample_stats"][name])


def run_python(
    script: str, *args: str, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (as a user's own process), with ``args``.

    Fails unless it exits cleanly; the result has its ``stdout`` and ``stderr``. ``env`` adds
    environment variables.
    """
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


class _Pause(Op):
    """Zeros like its input, after ``seconds``: the gradient of :class:`SlowTerm`."""

    __props__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        time.sleep(self.seconds)
        outputs[0][0] = np.zeros_like(inputs[0])


class SlowTerm(Op):
    """A model term that is zero, after ``seconds``; its gradient, zeros, after
    ``gradient_seconds``: add it with ``pm.Potential`` to make a test model as slow as a real
    one, for the cost gate (a pause per logp, or per gradient only)."""

    __props__ = ("seconds", "gradient_seconds")

    def __init__(self, seconds: float = 0.0, gradient_seconds: float = 0.0) -> None:
        self.seconds, self.gradient_seconds = seconds, gradient_seconds

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [pt.dscalar()])

    def perform(self, node, inputs, outputs):
        time.sleep(self.seconds)
        outputs[0][0] = np.asarray(0.0)

    def pullback(self, inputs, outputs, cotangents):
        return [_Pause(self.gradient_seconds)(inputs[0])]


if not hasattr(Op, "pullback"):  # PyTensor 2 (PyMC 5) differentiates through L_op
    SlowTerm.L_op = SlowTerm.pullback


def scale_the_sampler_clock(monkeypatch, scale: float) -> None:
    """Make ``SurrogateHMC`` read a clock running ``scale`` times as fast as the real one.

    As on a machine ``scale`` times slower: the exact evaluations and iterations the cost gate
    times look ``scale`` times as long (the trainings' own clock is left alone).
    """
    from types import SimpleNamespace

    from surrogate_hmc.step_methods import exact_model, surrogate_hmc

    clock = SimpleNamespace(
        perf_counter=lambda: scale * time.perf_counter(), process_time=time.process_time
    )
    for module in (exact_model, surrogate_hmc):
        monkeypatch.setattr(module, "time", clock)
