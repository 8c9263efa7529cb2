"""The benchmark models of the method papers, as PyMC model builders with simulated data.

Each builder takes its size as keyword arguments and simulates its data from a fixed numpy seed,
so every run of the suite samples the same posterior. :data:`BENCHMARKS` lists them with the
sizes and run lengths of the full suite and of its ``--quick`` smoke run.

- ``gp``: GP regression marginal likelihood, Matern 3/2 with one lengthscale per feature
  (``pm.gp.Marginal``), n=500 points and 4 features (NNgHMC, Li et al. 2019, section 4.3).
- ``garch``: GARCH(2,1) on 1000 observations, the variance recursion as a ``pytensor.scan``
  (NNgHMC section 4.3).
- ``logistic``: Bayesian logistic regression on 50,000 rows (NNgHMC section 4.2, with fewer
  features: see :func:`logistic_regression`).
- ``banana``: the 2-D banana of NNgHMC's equation 23 (moderately twisted) as a
  ``pm.Potential``.
- ``gaussian``: a 30-D correlated Gaussian with condition number 1e4 (NNgHMC section 4.1's
  variances, rotated so that a diagonal mass matrix cannot undo the correlation).
- ``lotka_volterra``: Lotka-Volterra with ``pm.ode.DifferentialEquation``, whose gradient
  integrates the forward sensitivities with scipy.
- ``regression``: linear regression on 5,000 rows with 25 strongly correlated predictors
  (three latent factors plus small noise), whose coefficients' posterior is so correlated that
  PyMC's NUTS with its diagonal mass matrix needs deep trees.
- ``hierarchical``: non-centred hierarchical linear regression, 40 group intercepts and two
  shared slopes on 4,000 rows.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "banana",
    "correlated_regression",
    "garch21",
    "gp_regression",
    "hierarchical_regression",
    "ill_conditioned_gaussian",
    "logistic_regression",
    "lotka_volterra",
    "simulate_gp",
]

DATA_SEED = 20240601


@dataclass(frozen=True)
class Benchmark:
    """One model of the suite: its builder and how big and how long it runs.

    ``size``/``quick_size`` are the builder's keyword arguments; ``tune``/``draws`` the run
    length of the full suite (``None``: the suite's default) and ``quick_tune``/``quick_draws``
    of ``--quick``; ``chains`` the full suite's number of chains (``None``: ``--chains``'s
    default); ``notes`` say why a full run differs from the default.
    """

    title: str
    build: Callable[..., pm.Model]
    size: dict[str, Any]
    quick_size: dict[str, Any]
    tune: int | None = None
    draws: int | None = None
    quick_tune: int = 200
    quick_draws: int = 200
    chains: int | None = None
    notes: str = ""


# -- GP regression ----------------------------------------------------------------------------

GP_FEATURES = 4
GP_LENGTHSCALES = np.array([0.7, 1.2, 2.0, 4.0])
GP_ETA = 1.0
GP_SIGMA = 0.3


def matern32(X: np.ndarray, lengthscales: np.ndarray, eta: float) -> np.ndarray:
    """Matern 3/2 covariance with one lengthscale per feature."""
    scaled = X / lengthscales
    sq = np.sum(scaled**2, axis=1)
    r = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * scaled @ scaled.T, 0.0))
    return eta**2 * (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)


def simulate_gp(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``X`` (n x 4, standard normal) and outputs ``y`` drawn from the GP plus noise."""
    rng = np.random.default_rng(DATA_SEED)
    X = rng.normal(size=(n, GP_FEATURES))
    cov = matern32(X, GP_LENGTHSCALES, GP_ETA) + 1e-8 * np.eye(n)
    f = np.linalg.cholesky(cov) @ rng.normal(size=n)
    return X, f + GP_SIGMA * rng.normal(size=n)


def gp_regression(n: int = 500) -> pm.Model:
    """GP regression marginal likelihood, Matern 3/2 kernel with ARD lengthscales.

    ``ls[i] ~ Gamma(2, 1)``, ``eta ~ HalfNormal(2)``, ``sigma ~ HalfNormal(1)``,
    ``y ~ N(0, eta^2 K(X; ls) + sigma^2 I)``: one Cholesky of an n x n matrix per evaluation.
    """
    X, y = simulate_gp(n)
    with pm.Model() as model:
        ls = pm.Gamma("ls", alpha=2.0, beta=1.0, shape=GP_FEATURES)
        eta = pm.HalfNormal("eta", sigma=2.0)
        sigma = pm.HalfNormal("sigma", sigma=1.0)
        cov = eta**2 * pm.gp.cov.Matern32(GP_FEATURES, ls=ls)
        gp = pm.gp.Marginal(cov_func=cov)
        gp.marginal_likelihood("y", X=X, y=y, sigma=sigma)
    return model


# -- GARCH(2,1) -------------------------------------------------------------------------------

GARCH_TRUE = {"alpha0": 0.1, "alpha1": 0.1, "alpha2": 0.15, "beta1": 0.6}


def simulate_garch(n: int) -> np.ndarray:
    """``n`` observations of a GARCH(2,1) process after a burn-in of 500."""
    rng = np.random.default_rng(DATA_SEED + 1)
    a0, a1, a2, b1 = GARCH_TRUE.values()
    burn = 500
    y = np.zeros(n + burn)
    var = np.full(n + burn, a0 / (1 - a1 - a2 - b1))
    for t in range(2, n + burn):
        var[t] = a0 + a1 * y[t - 1] ** 2 + a2 * y[t - 2] ** 2 + b1 * var[t - 1]
        y[t] = np.sqrt(var[t]) * rng.normal()
    return y[burn:]


def garch21(n: int = 1000) -> pm.Model:
    """GARCH(2,1): ``y_t ~ N(0, s_t)``, ``s_t = a0 + a1 y_{t-1}^2 + a2 y_{t-2}^2 + b1 s_{t-1}``.

    The likelihood conditions on the first two observations, with ``s_2`` set to the sample
    variance of ``y``; the recursion is a ``pytensor.scan`` over the remaining ``n - 2`` steps,
    so each evaluation and its gradient are sequential in ``n``. Stationarity
    (``a1 + a2 + b1 < 1``) is built into the prior: ``(a1, a2, b1, 1 - a1 - a2 - b1)`` is
    Dirichlet(1, 1, 1, 1), and ``a0 ~ HalfNormal(1)``.
    """
    y = simulate_garch(n)
    with pm.Model() as model:
        alpha0 = pm.HalfNormal("alpha0", sigma=1.0)
        weights = pm.Dirichlet("weights", a=np.ones(4))
        alpha1, alpha2, beta1 = weights[0], weights[1], weights[2]
        pm.Deterministic("alpha_beta", weights[:3])
        # Innovation of the variance recursion: s_t = u_t + beta1 * s_{t-1}, for t = 2..n-1.
        innovation = alpha0 + alpha1 * y[1:-1] ** 2 + alpha2 * y[:-2] ** 2
        variance = pytensor.scan(
            lambda u, previous, b: u + b * previous,
            sequences=[innovation],
            outputs_info=[pt.as_tensor_variable(np.var(y))],
            non_sequences=[beta1],
            return_updates=False,
        )
        pm.Normal("y", mu=0.0, sigma=pt.sqrt(variance), observed=y[2:])
    return model


# -- Logistic regression ----------------------------------------------------------------------


def logistic_regression(rows: int = 50_000, features: int = 20) -> pm.Model:
    """Bayesian logistic regression: ``beta ~ N(0, 1)``, ``y_i ~ Bern(logistic(X_i beta))``.

    ``X`` is standard normal and the true coefficients are ``Uniform(-1, 1)``, as in NNgHMC's
    section 4.2, which used 200 features; 20 keep PyMC's NUTS run within the suite's time.
    """
    rng = np.random.default_rng(DATA_SEED + 2)
    X = rng.normal(size=(rows, features))
    beta_true = rng.uniform(-1.0, 1.0, size=features)
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-X @ beta_true)))
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 1.0, shape=features)
        pm.Bernoulli("y", logit_p=pt.dot(X, beta), observed=y)
    return model


# -- Banana -----------------------------------------------------------------------------------


def banana(a: float = 1.0, b: float = 0.03, c: float = 1.0) -> pm.Model:
    """The banana of NNgHMC's equation 23, with flat priors and the density as a potential.

    ``log f(x1, x2) = -(a x1)^2 / 200 - (c x2 + b (a x1)^2 - 100 b)^2 / 2``: ``x1`` has a
    standard deviation of ``10 / a`` and ``x2`` bends along ``-b x1^2``. The default ``b=0.03``
    is Haario et al.'s "moderately twisted" banana: with ``b=0.1`` PyMC's NUTS reaches a min
    bulk ESS of about 7 in 2 x 1000 draws (its chains do not reach the tails), too few to
    compare samplers by.
    """
    with pm.Model() as model:
        x = pm.Flat("x", shape=2)
        ax1 = a * x[0]
        pm.Potential("banana", -(ax1**2) / 200 - 0.5 * (c * x[1] + b * ax1**2 - 100 * b) ** 2)
    return model


# -- Ill-conditioned Gaussian -----------------------------------------------------------------


def ill_conditioned_gaussian(dim: int = 30, smallest: float = 0.1, largest: float = 1000.0):
    """A correlated ``dim``-D Gaussian posterior: flat prior, one observation ``y = 0``.

    The covariance has NNgHMC's variances (``smallest``, ``largest`` and the others uniform on
    [1, 100]; condition number 1e4 by default) in a random orthogonal basis, so a diagonal mass
    matrix cannot remove the correlation. The posterior of ``x`` is ``N(0, Sigma)`` exactly.
    """
    rng = np.random.default_rng(DATA_SEED + 3)
    variances = np.concatenate([[smallest, largest], rng.uniform(1.0, 100.0, size=dim - 2)])
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    cov = (basis * variances) @ basis.T
    with pm.Model() as model:
        x = pm.Flat("x", shape=dim)
        pm.MvNormal("y", mu=x, chol=np.linalg.cholesky(cov), observed=np.zeros(dim))
    return model


# -- Lotka-Volterra ---------------------------------------------------------------------------

LV_TRUE = {"alpha": 0.55, "beta": 0.028, "gamma": 0.84, "delta": 0.026}
LV_START = np.array([33.0, 6.0])


def lotka_volterra_rhs(y, t, p):
    """Prey ``y[0]`` and predators ``y[1]``: ``p = (alpha, beta, gamma, delta)``."""
    return [
        p[0] * y[0] - p[1] * y[0] * y[1],
        -p[2] * y[1] + p[3] * y[0] * y[1],
    ]


def simulate_lotka_volterra(n_times: int, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Times and log-normal observations of both populations (log-scale noise 0.25)."""
    from scipy.integrate import odeint

    times = np.linspace(t_end / n_times, t_end, n_times)
    p = np.array(list(LV_TRUE.values()))
    states = odeint(
        lambda y, t: lotka_volterra_rhs(y, t, p), LV_START, np.concatenate([[0], times])
    )
    rng = np.random.default_rng(DATA_SEED + 4)
    return times, states[1:] * np.exp(0.25 * rng.normal(size=(n_times, 2)))


def lotka_volterra(n_times: int = 16, t_end: float = 8.0) -> pm.Model:
    """Lotka-Volterra with ``pm.ode.DifferentialEquation`` and log-normal observation noise.

    ``n_times`` observations of both populations, evenly spaced up to ``t_end`` (the true
    cycle lasts about 9). Unknown: the four rates (log-normal priors around the truth's scale),
    both initial populations and the noise. Each evaluation solves the ODE with its forward
    sensitivities (scipy's ``odeint`` on a 14-state system whose right-hand side is a compiled
    PyTensor function called from Python), logp alone included, so its cost grows with
    ``t_end``.
    """
    times, observed = simulate_lotka_volterra(n_times, t_end)
    ode = pm.ode.DifferentialEquation(
        func=lotka_volterra_rhs, times=times, n_states=2, n_theta=4, t0=0.0
    )
    with pm.Model() as model:
        alpha = pm.LogNormal("alpha", mu=np.log(0.5), sigma=0.5)
        beta = pm.LogNormal("beta", mu=np.log(0.03), sigma=0.5)
        gamma = pm.LogNormal("gamma", mu=np.log(0.8), sigma=0.5)
        delta = pm.LogNormal("delta", mu=np.log(0.03), sigma=0.5)
        start = pm.LogNormal("start", mu=np.log(LV_START), sigma=0.5, shape=2)
        sigma = pm.HalfNormal("sigma", sigma=1.0)
        solution = ode(y0=start, theta=pt.stack([alpha, beta, gamma, delta]))
        pm.LogNormal("populations", mu=pt.log(solution), sigma=sigma, observed=observed)
    return model


# -- Correlated linear regression -------------------------------------------------------------

REGRESSION_FACTORS = 3
REGRESSION_NOISE = 0.02
REGRESSION_SIGMA = 0.5


def simulate_correlated_regression(
    rows: int, features: int, factors: int = REGRESSION_FACTORS, noise: float = REGRESSION_NOISE
) -> tuple[np.ndarray, np.ndarray]:
    """Predictors ``X`` (rows x features) from a few latent factors plus small noise, and ``y``.

    ``X = F W + noise E`` with ``F`` (rows x factors) and ``E`` standard normal and loadings
    ``W ~ N(0, 1 / factors)``, so every column has variance close to 1 and all lie near a
    ``factors``-dimensional subspace. ``y = 1 + X beta + 0.5 eps`` with ``beta ~ N(0, 0.5^2)``.
    """
    rng = np.random.default_rng(DATA_SEED + 5)
    loadings = rng.normal(scale=1.0 / np.sqrt(factors), size=(factors, features))
    X = rng.normal(size=(rows, factors)) @ loadings + noise * rng.normal(size=(rows, features))
    beta_true = rng.normal(scale=0.5, size=features)
    y = 1.0 + X @ beta_true + REGRESSION_SIGMA * rng.normal(size=rows)
    return X, y


def correlated_regression(rows: int = 5000, features: int = 25) -> pm.Model:
    """Linear regression with strongly correlated predictors: ``y ~ N(a + X beta, sigma)``.

    ``beta[j] ~ N(0, 1)``, ``a ~ N(0, 5)``, ``sigma ~ HalfNormal(1)``; ``X`` has three latent
    factors plus noise of standard deviation 0.02 (:func:`simulate_correlated_regression`), so
    the data pin down three combinations of the coefficients 50 times better than the others
    and the posterior of ``beta`` is strongly correlated. A diagonal mass matrix cannot undo
    that: PyMC's NUTS needs trees of depth 8 or more. One evaluation is a rows x features
    matrix-vector product.
    """
    X, y = simulate_correlated_regression(rows, features)
    with pm.Model() as model:
        intercept = pm.Normal("intercept", 0.0, 5.0)
        beta = pm.Normal("beta", 0.0, 1.0, shape=features)
        sigma = pm.HalfNormal("sigma", sigma=1.0)
        pm.Normal("y", mu=intercept + pt.dot(X, beta), sigma=sigma, observed=y)
    return model


# -- Hierarchical regression (non-centred) ----------------------------------------------------

HIERARCHICAL_TRUE = {"mu_a": 1.0, "tau_a": 0.4, "b": np.array([0.5, -0.3]), "sigma": 4.0}


def simulate_hierarchical(groups: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group index, predictors (rows x 2, standard normal) and ``y`` of the hierarchical model.

    Each row's group is drawn uniformly, so groups have about ``rows / groups`` rows each.
    """
    rng = np.random.default_rng(DATA_SEED + 6)
    mu_a, tau_a, b, sigma = HIERARCHICAL_TRUE.values()
    a = mu_a + tau_a * rng.normal(size=groups)
    group = rng.integers(groups, size=rows)
    X = rng.normal(size=(rows, len(b)))
    y = a[group] + X @ b + sigma * rng.normal(size=rows)
    return group, X, y


def hierarchical_regression(groups: int = 40, rows: int = 4000) -> pm.Model:
    """Non-centred hierarchical linear regression: ``y_i ~ N(a[g_i] + X_i b, sigma)``.

    Group intercepts ``a = mu_a + tau_a z_a`` with ``z_a ~ N(0, 1)`` (one per group),
    ``mu_a ~ N(0, 5)``, ``tau_a ~ HalfNormal(1)``; two shared slopes ``b ~ N(0, 1)`` and
    ``sigma ~ HalfNormal(5)``: ``groups + 4`` parameters. The data (true ``tau_a = 0.4``,
    ``sigma = 4``) pin each group's intercept down to about ``4 / sqrt(100) = 0.4`` with the
    default 100 rows per group, about ``tau_a``: the regime that suits the non-centred form, in
    which PyMC's NUTS samples without divergences. (With ``sigma = 1`` and ``tau_a = 0.8`` the
    groups are so well determined that ``mu_a`` and the ``z_a`` mix badly: bulk ESS below 100
    in 2 x 1000 draws.)
    """
    group, X, y = simulate_hierarchical(groups, rows)
    with pm.Model() as model:
        mu_a = pm.Normal("mu_a", 0.0, 5.0)
        tau_a = pm.HalfNormal("tau_a", sigma=1.0)
        z_a = pm.Normal("z_a", 0.0, 1.0, shape=groups)
        a = pm.Deterministic("a", mu_a + tau_a * z_a)
        b = pm.Normal("b", 0.0, 1.0, shape=X.shape[1])
        sigma = pm.HalfNormal("sigma", sigma=5.0)
        pm.Normal("y", mu=a[group] + pt.dot(X, b), sigma=sigma, observed=y)
    return model


FAST_MODEL_CHAINS = 8
FAST_MODEL_NOTE = (
    "8 chains, run one after the other: PyMC's NUTS samples this model in seconds, and the min "
    "bulk ESS of 2 chains varies several-fold between seeds (on the banana from 8 to 208), "
    "which would decide the ratio"
)

BENCHMARKS: dict[str, Benchmark] = {
    "gp": Benchmark(
        "GP regression (Matern 3/2, ARD)",
        gp_regression,
        size={"n": 500},
        quick_size={"n": 100},
        tune=500,
        draws=500,
        notes="tune=500 and draws=500 keep PyMC's NUTS and nutpie (26 ms per logp+gradient) "
        "within the suite's time",
    ),
    "garch": Benchmark("GARCH(2,1)", garch21, size={"n": 1000}, quick_size={"n": 200}),
    "logistic": Benchmark(
        "Logistic regression",
        logistic_regression,
        size={"rows": 50_000, "features": 20},
        quick_size={"rows": 5_000, "features": 5},
    ),
    "banana": Benchmark(
        "Banana (2-D)",
        banana,
        size={},
        quick_size={},
        chains=FAST_MODEL_CHAINS,
        notes=FAST_MODEL_NOTE,
    ),
    "gaussian": Benchmark(
        "Ill-conditioned Gaussian (30-D)",
        ill_conditioned_gaussian,
        size={"dim": 30},
        quick_size={"dim": 10},
        chains=FAST_MODEL_CHAINS,
        notes=FAST_MODEL_NOTE,
    ),
    "lotka_volterra": Benchmark(
        "Lotka-Volterra ODE",
        lotka_volterra,
        size={"n_times": 16, "t_end": 8.0},
        quick_size={"n_times": 5, "t_end": 2.0},
        tune=500,
        draws=500,
        quick_tune=100,
        quick_draws=100,
        notes="tune=500 and draws=500: NUTS needs about 30 leapfrog steps per iteration here, "
        "each one an ODE solve with sensitivities",
    ),
    "regression": Benchmark(
        "Correlated linear regression",
        correlated_regression,
        size={"rows": 5000, "features": 25},
        quick_size={"rows": 500, "features": 8},
    ),
    "hierarchical": Benchmark(
        "Hierarchical regression (non-centred)",
        hierarchical_regression,
        size={"groups": 40, "rows": 4000},
        quick_size={"groups": 10, "rows": 400},
        chains=FAST_MODEL_CHAINS,
        notes=FAST_MODEL_NOTE,
    ),
}
