"""Simulators of the ACE tests, with analytic expected MSE distances, and a call counter."""

import numpy as np
import pymc as pm

A = np.array([[1.0, 0.5], [-0.3, 1.0], [0.8, -0.6], [0.2, 0.9]])
NOISE = 0.3
CALLS = {"linear": 0}


def linear(rng, theta, size=None):
    """x = A theta + N(0, NOISE^2): E[mse(x, x_o)] = |A theta - x_o|^2 / 4 + NOISE^2."""
    CALLS["linear"] += 1
    return A @ theta + NOISE * rng.normal(size=A.shape[0])


def linear_model(observed) -> pm.Model:
    """theta ~ N(0, I_2) with the linear simulator."""
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", linear, theta, observed=np.asarray(observed, dtype=float))
    return model


def linear_gbi_posterior(observed, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of p(theta) exp(-beta E[mse]): Gaussian."""
    dim = A.shape[0]
    precision = 2 * beta / dim * A.T @ A + np.eye(2)
    covariance = np.linalg.inv(precision)
    return covariance @ (2 * beta / dim * A.T @ np.asarray(observed)), covariance


def curve(rng, theta, size=None):
    """A 1-D parameter seen through (theta, theta^2, sin 2 theta) plus N(0, 0.2^2) noise."""
    return _curve(np.squeeze(theta)) + 0.2 * rng.normal(size=3)


def _curve(theta):
    theta = np.asarray(theta, dtype=float)
    return np.stack([theta, theta**2, np.sin(2 * theta)], axis=-1)


def curve_grid_posterior(observed, beta: float) -> tuple[float, float]:
    """Mean and variance, on a grid, of U(-1.5, 1.5) x exp(-beta E[mse])."""
    grid = np.linspace(-1.5, 1.5, 20001)
    expected = np.mean((_curve(grid) - observed) ** 2, axis=-1) + 0.2**2
    weights = np.exp(-beta * (expected - expected.min()))
    weights /= weights.sum()
    mean = float(np.sum(weights * grid))
    return mean, float(np.sum(weights * (grid - mean) ** 2))
