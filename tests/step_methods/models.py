"""Models with known posteriors for the step-method tests."""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor.tensor as pt


def conjugate_regression(n=50, seed=0):
    """Bayesian linear regression with known noise: the posterior is Gaussian and correlated."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) @ np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)
    prior_scale = 3.0
    precision = x.T @ x + np.eye(3) / prior_scale**2
    cov = np.linalg.inv(precision)
    mean = cov @ x.T @ y
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, prior_scale, shape=3)
        pm.Normal("y", x @ beta, 1.0, observed=y)
    return model, ["beta"], mean, np.diag(cov)


def ill_conditioned_gaussian(dim=6):
    """A Flat prior and a Gaussian potential with scales over three orders of magnitude."""
    scales = np.logspace(-1.5, 1.5, dim)
    mean = np.linspace(-1.0, 1.0, dim)
    with pm.Model() as model:
        x = pm.Flat("x", shape=dim)
        pm.Potential("likelihood", -0.5 * pt.sum(((x - mean) / scales) ** 2))
    return model, ["x"], mean, scales**2


class Checked(NamedTuple):
    """Named variables and the functions of their draws that a test checks (``features``)."""

    names: list[str]
    features: Callable[[np.ndarray], np.ndarray]


def banana(b=0.5, sigma=0.5):
    """x1 ~ N(0, 1), x2 | x1 ~ N(b (x1^2 - 1), sigma^2), as a potential the network learns.

    The checked functionals are ``x1`` and ``x2 - b (x1^2 - 1) ~ N(0, sigma^2)``, both
    Gaussian. The variance of ``x2`` itself (``2 b^2 + sigma^2``) is an average of ``x1^4``,
    whose MCSE is underestimated in runs of a few thousand draws: PyMC's own NUTS, exact, gave
    z-scores of -5.9, -8.1 and -4.1 for it on 3 of 12 seeds (2 x 1000 draws).
    """
    with pm.Model() as model:
        x = pm.Flat("x", shape=2)
        pm.Potential(
            "banana",
            -0.5 * x[0] ** 2 - 0.5 * ((x[1] - b * (x[0] ** 2 - 1.0)) / sigma) ** 2,
        )

    def features(draws):
        x1, x2 = draws[..., 0], draws[..., 1]
        return np.stack([x1, x2 - b * (x1**2 - 1.0)], axis=-1)

    return model, Checked(["x"], features), np.zeros(2), np.array([1.0, sigma**2])


def truncated_normal():
    """A potential that is -inf for x > 1: non-finite evaluations happen all the time."""
    with pm.Model() as model:
        x = pm.Flat("x")
        pm.Potential("truncated", pt.switch(x > 1.0, -np.inf, -0.5 * x**2))
    from scipy import stats

    dist = stats.truncnorm(-np.inf, 1.0)
    return model, ["x"], np.array([dist.mean()]), np.array([dist.var()])


def skewed_gamma(shape=3.0):
    """A positive variable with a Gamma(shape, 1) potential: skewed, on a log-transformed scale."""
    with pm.Model() as model:
        s = pm.HalfFlat("s")
        pm.Potential("gamma", (shape - 1.0) * pt.log(s) - s)
    return model, ["s"], np.array([shape]), np.array([shape])


def student_t(nu=3.0, dim=2):
    """Independent Student-t coordinates with ``nu`` degrees of freedom: tails heavier than any
    Gaussian's, as a potential the network learns. The checked functional is the probability
    integral transform of each coordinate, uniform under the target (mean 1/2, variance 1/12),
    since the variance of ``x`` itself has no finite MCSE for ``nu <= 4``."""
    from scipy import stats

    with pm.Model() as model:
        x = pm.Flat("x", shape=dim)
        pm.Potential("student_t", -0.5 * (nu + 1.0) * pt.sum(pt.log1p(x**2 / nu)))

    def features(draws):
        return stats.t(nu).cdf(draws)

    return model, Checked(["x"], features), np.full(dim, 0.5), np.full(dim, 1.0 / 12.0)


def funnel(scale=1.0):
    """Neal's funnel in two dimensions: ``v ~ N(0, scale^2)``, ``x | v ~ N(0, exp(v))``, as a
    potential the network learns. Checked: ``v`` and ``x exp(-v / 2) ~ N(0, 1)``."""
    with pm.Model() as model:
        q = pm.Flat("q", shape=2)
        v, x = q[0], q[1]
        pm.Potential("funnel", -0.5 * (v / scale) ** 2 - 0.5 * v - 0.5 * x**2 * pt.exp(-v))

    def features(draws):
        v, x = draws[..., 0], draws[..., 1]
        return np.stack([v, x * np.exp(-v / 2.0)], axis=-1)

    return model, Checked(["q"], features), np.zeros(2), np.array([scale**2, 1.0])
