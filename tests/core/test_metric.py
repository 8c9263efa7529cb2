"""The surrogate phase's dense metric: Laplace at the start, then windows of its draws."""

import jax.numpy as jnp
import numpy as np
import pytest

from surrogate_hmc.core.metric import (
    METRIC_WINDOWS,
    MIN_WINDOW_DRAWS,
    MetricAdaptation,
    laplace_inverse_mass,
    regularized_covariance,
)


def dense_covariance(dim, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (basis * np.geomspace(1e-2, 1e2, dim)) @ basis.T


def test_laplace_of_a_gaussian_is_its_covariance_wherever_it_is_taken():
    covariance = dense_covariance(6)
    precision, mean = jnp.asarray(np.linalg.inv(covariance)), jnp.arange(6.0)

    def logdensity(q):
        return -0.5 * (q - mean) @ precision @ (q - mean)

    for center in (np.arange(6.0), np.full(6, 40.0)):
        inverse_mass = laplace_inverse_mass(logdensity, center)
        np.testing.assert_allclose(inverse_mass, covariance, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(inverse_mass, inverse_mass.T, rtol=1e-14)


def test_laplace_of_a_non_gaussian_is_the_local_curvature():
    def logdensity(q):  # -q0^4/4 - q1^2/2 - q0 q1 / 2: Hessian [[-3 q0^2, -1/2], [-1/2, -1]]
        return -0.25 * q[0] ** 4 - 0.5 * q[1] ** 2 - 0.5 * q[0] * q[1]

    expected = np.linalg.inv(np.array([[3.0, 0.5], [0.5, 1.0]]))
    np.testing.assert_allclose(laplace_inverse_mass(logdensity, np.array([1.0, 7.0])), expected)


@pytest.mark.parametrize(
    "logdensity, center",
    [
        (lambda q: -0.5 * q[0] ** 2 + 0.5 * q[1] ** 2, np.zeros(2)),  # a saddle
        (lambda q: -((q[0] ** 2 - 1.0) ** 2) - q[1] ** 2, np.zeros(2)),  # between two modes
        (lambda q: 0.5 * q @ q, np.ones(2)),  # a bowl
        (lambda q: -0.5 * q[0] ** 2 + 0.0 * q[1], np.zeros(2)),  # flat along q1
        (lambda q: -jnp.sum(q**2) + jnp.sum(jnp.sqrt(q)), -np.ones(2)),  # not finite
    ],
    ids=["saddle", "between-modes", "convex", "flat", "nan"],
)
def test_laplace_is_none_where_the_log_density_is_not_concave(logdensity, center):
    assert laplace_inverse_mass(logdensity, center) is None


def test_windows_end_where_planned_with_the_covariance_of_their_own_draws():
    covariance = dense_covariance(4, seed=1)
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(500, 4)) @ np.linalg.cholesky(covariance).T
    switch, tune = 100, 1100
    adaptation = MetricAdaptation.plan(switch=switch, tune=tune)
    assert adaptation.window_ends == tuple(switch + int(f * 1000) for f in METRIC_WINDOWS)
    first_end, second_end = adaptation.window_ends
    in_use = np.diag(covariance)  # a diagonal metric (PyMC's), as at the switch
    metrics = {}
    for iteration in range(switch, tune):
        metric = adaptation.update(iteration, draws[(iteration - switch) % 500], in_use)
        if metric is not None:
            metrics[iteration], in_use = metric, metric
    assert sorted(metrics) == [first_end - 1, second_end - 1]
    # Each window's metric is from its own draws only, shrunk toward the metric in use.
    window = draws[first_end - switch : second_end - switch]
    np.testing.assert_allclose(
        metrics[second_end - 1], regularized_covariance(window, metrics[first_end - 1])
    )
    scale = np.sqrt(np.outer(np.diag(covariance), np.diag(covariance)))
    for end, n in ((first_end, first_end - switch), (second_end, len(window))):
        np.linalg.cholesky(metrics[end - 1])
        # Close to the truth, as n draws allow (in units of each pair's scales), once the
        # shrinkage (weight 2 dim / (n + 2 dim) off the draws) is allowed for.
        error = np.abs(metrics[end - 1] - covariance) / scale
        assert np.max(error) < 5 / np.sqrt(n) + 8 / (n + 8), error


def test_a_window_too_short_or_not_finite_changes_nothing():
    short = MetricAdaptation.plan(switch=480, tune=500)
    assert short.window_ends[-1] - 480 < MIN_WINDOW_DRAWS
    rng = np.random.default_rng(3)
    assert all(short.update(i, rng.normal(size=2), np.ones(2)) is None for i in range(480, 500))
    broken = MetricAdaptation((50,))
    positions = rng.normal(size=(50, 2))
    positions[10, 1] = np.nan
    assert all(broken.update(i, q, np.eye(2)) is None for i, q in enumerate(positions))


@pytest.mark.parametrize("n", [5, 20, 29])
def test_the_covariance_of_fewer_draws_than_dimensions_is_positive_definite(n):
    scales = np.geomspace(1e-3, 1e3, 30)
    draws = np.random.default_rng(n).normal(size=(n, 30)) * scales
    assert np.linalg.matrix_rank(np.cov(draws, rowvar=False)) < 30  # singular on its own
    for prior in (np.diag(scales**2), dense_covariance(30, seed=n)):
        covariance = regularized_covariance(draws, prior)
        np.linalg.cholesky(covariance)
        assert np.linalg.eigvalsh(covariance).min() > 0


def test_a_correlation_the_metric_in_use_captures_is_kept_by_a_short_window():
    """Shrinking toward the metric in use, not toward a diagonal: a near-degenerate
    correlation survives a window of a few draws."""
    rho = 0.999
    truth = np.array([[1.0, rho], [rho, 1.0]])
    draws = np.random.default_rng(6).normal(size=(10, 2)) @ np.linalg.cholesky(truth).T
    covariance = regularized_covariance(draws, truth)
    correlation = covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1])
    assert correlation > 0.99
    # The smallest scale stays that of the truth: no mass matrix wider than the posterior.
    assert np.linalg.eigvalsh(covariance)[0] < 5 * (1 - rho)


def test_with_many_draws_the_covariance_is_barely_shrunk():
    covariance = dense_covariance(5, seed=4)
    draws = np.random.default_rng(5).normal(size=(5000, 5)) @ np.linalg.cholesky(covariance).T
    sample = np.cov(draws, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(sample), np.diag(sample)))
    shrunk = regularized_covariance(draws, np.diag(np.diag(sample)))
    assert np.max(np.abs(shrunk - sample) / scale) < 2e-3
