"""Reach: dense, ill-conditioned and many-parameter posteriors, a wide prior, the cost gate.

Every posterior here is known in closed form, and the draws are z-tested against it in the
model's coordinates and in the posterior's principal coordinates (where the smallest and largest
scales are tested directly). Every model is cheap, so ``cost_gate=False`` makes the sampler
learn a surrogate anyway, except in the tests of the gate itself.
"""

import warnings

import arviz as az
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

import surrogate_hmc as shmc
from surrogate_hmc.core.exploration import EXPLORATION_DRAWS, RECENT_DRAWS, spread_ratio
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.structure import StructuredNetwork
from surrogate_hmc.core.surrogate import LogDensitySurrogate
from surrogate_hmc.step_methods.kernel import KernelSettings, SurrogateKernel
from tests.helpers import SlowTerm, moment_z_scores, posterior_array, sample_stat
from tests.step_methods import models

SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}


def gaussian_z_scores(draws, mean, covariance):
    """z-scores of means and variances in the model's and in the principal coordinates.

    Shape (2, 2 * dim): the model's coordinates first, then ``(x - mean) V / sqrt(lambda)``
    with ``covariance = V diag(lambda) V^T`` (independent, unit variance under the target).
    """
    eigenvalues, vectors = np.linalg.eigh(covariance)
    principal = (np.asarray(draws) - mean) @ vectors / np.sqrt(eigenvalues)
    return np.hstack(
        [
            moment_z_scores(draws, mean, np.diag(covariance)),
            moment_z_scores(principal, 0.0, 1.0),
        ]
    )


def assert_gaussian(draws, mean, covariance, z_max=4.5):
    """Means and variances within ``z_max`` Monte Carlo errors, in both coordinate systems.

    4.5 keeps the chance that a correct sampler fails any of up to 400 z-scores below 0.3%.
    """
    z = gaussian_z_scores(draws, mean, covariance)
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) < z_max, f"z-scores:\n{np.round(z, 1)}"


def run(model, *, tune, draws, chains=2, seed=1, **step_kwargs):
    with model:
        step = shmc.SurrogateHMC(**step_kwargs)
        idata = pm.sample(
            step=step, tune=tune, draws=draws, chains=chains, random_seed=seed, **SAMPLE
        )
    return idata, step


def assert_surrogate_draws(idata):
    assert np.all(sample_stat(idata, "phase") == 1), "a draw did not come from the surrogate"
    np.testing.assert_array_equal(sample_stat(idata, "n_exact_grad"), 0)


# -- a dense, ill-conditioned Gaussian --------------------------------------------------------


def dense_gaussian(dim, seed=0):
    """``x ~ N(m, Sigma)`` with variances from 0.1 to 100 in a random orthogonal basis.

    A flat prior and one observation of ``MvNormal(x, Sigma)``, as in the benchmarks: the
    covariance is dense (a diagonal mass matrix cannot undo it) with condition number 1e3.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    covariance = (basis * np.geomspace(0.1, 100.0, dim)) @ basis.T
    mean = rng.normal(size=dim)
    with pm.Model() as model:
        x = pm.Flat("x", shape=dim)
        pm.MvNormal("y", mu=x, chol=np.linalg.cholesky(covariance), observed=mean)
    return model, mean, covariance


def test_dense_ill_conditioned_gaussian_20d():
    model, mean, covariance = dense_gaussian(20)
    idata, _ = run(model, tune=400, draws=1500, chains=1, cost_gate=False)
    assert_surrogate_draws(idata)
    assert_gaussian(posterior_array(idata, ["x"]), mean, covariance)


@pytest.mark.slow
def test_dense_ill_conditioned_gaussian_50d():
    model, mean, covariance = dense_gaussian(50, seed=1)
    idata, _ = run(model, tune=1000, draws=2000, cost_gate=False)
    assert_surrogate_draws(idata)
    assert_gaussian(posterior_array(idata, ["x"]), mean, covariance)


# -- a hierarchical model with a known (Gaussian) posterior -----------------------------------


def hierarchical(groups, seed=0, tau=0.5, sigma=2.0):
    """Non-centred group intercepts ``mu + tau z_g`` and two slopes, ``tau`` and ``sigma`` fixed.

    Groups have 2 to 40 rows, so some intercepts are pinned down by the data and others by
    the prior. With the scales fixed the posterior of ``(mu, z, b)`` is exactly Gaussian:
    its precision is ``D^T D / sigma^2`` plus the prior's, for the design ``D = [1, tau G, X]``.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 41, size=groups)
    group = np.repeat(np.arange(groups), sizes)
    X = rng.normal(size=(len(group), 2))
    intercepts = 1.0 + tau * rng.normal(size=groups)
    y = intercepts[group] + X @ np.array([0.5, -0.3]) + sigma * rng.normal(size=len(group))
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        z = pm.Normal("z", 0.0, 1.0, shape=groups)
        b = pm.Normal("b", 0.0, 1.0, shape=2)
        pm.Normal("y", mu + tau * z[group] + pt.dot(X, b), sigma, observed=y)
    design = np.column_stack([np.ones(len(group)), tau * np.eye(groups)[group], X])
    prior_precision = np.diag(np.concatenate([[1 / 25], np.ones(groups + 2)]))
    covariance = np.linalg.inv(design.T @ design / sigma**2 + prior_precision)
    mean = covariance @ design.T @ y / sigma**2
    return model, ["mu", "z", "b"], mean, covariance


def test_hierarchical_model_with_43_parameters():
    model, names, mean, covariance = hierarchical(40)
    idata, _ = run(model, tune=400, draws=1500, chains=1, cost_gate=False)
    assert_surrogate_draws(idata)
    assert_gaussian(posterior_array(idata, names), mean, covariance)


@pytest.mark.slow
def test_hierarchical_model_with_103_parameters():
    model, names, mean, covariance = hierarchical(100, seed=1)
    idata, _ = run(model, tune=1000, draws=2000, cost_gate=False)
    assert_surrogate_draws(idata)
    assert_gaussian(posterior_array(idata, names), mean, covariance)


# -- a coefficient only its wide prior informs ------------------------------------------------

PRIOR_SD = 1000.0


def regression_with_an_uninformed_coefficient(rows=200, seed=0):
    """Three well-identified coefficients, and ``b ~ N(0, 1000)`` that no data inform."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=rows)
    with pm.Model() as model:
        pm.Normal("beta", 0.0, 10.0, shape=3)
        pm.Normal("b", 0.0, PRIOR_SD)
        pm.Normal("y", pt.dot(X, model["beta"]), 1.0, observed=y)
    covariance = np.linalg.inv(X.T @ X + np.eye(3) / 100)
    return model, covariance @ X.T @ y, covariance


def test_an_uninformed_coefficient_roams_its_whole_prior_on_every_chain():
    """A surrogate that invented a wall where it saw no data would confine ``b``.

    The exact iterations before the first training see ``|b|`` of a few hundred at most, so
    a confined chain has a standard deviation far below 1000. Each chain's mean of ``b**2``
    is z-tested on its own (with an ESS of 100 or more, checked, a chain confined to
    ``|b| < 500`` has a z-score beyond -5), and its standard deviation must be within
    [0.6, 1.6] x 1000 (about 6 standard errors at that ESS).
    """
    model, beta_mean, beta_covariance = regression_with_an_uninformed_coefficient()
    idata, _ = run(model, tune=1000, draws=1000, cost_gate=False)
    assert_surrogate_draws(idata)
    b = np.asarray(idata.posterior["b"])
    for chain in b:
        ess = float(np.asarray(az.ess(chain[None] ** 2)).squeeze())
        assert ess > 100, f"b mixes too slowly to judge its spread (ESS of b^2 {ess:.0f})"
        z = moment_z_scores(chain[None, :, None], 0.0, PRIOR_SD**2)
        assert np.max(np.abs(z)) < 4.5, z
        assert 0.6 * PRIOR_SD < chain.std() < 1.6 * PRIOR_SD, chain.std()
    draws = np.concatenate([posterior_array(idata, ["beta"]), b[..., None]], axis=-1)
    covariance = np.zeros((4, 4))
    covariance[:3, :3], covariance[3, 3] = beta_covariance, PRIOR_SD**2
    assert_gaussian(draws, np.append(beta_mean, 0.0), covariance)


# -- negative control: a wrong Gaussian base, with and without the exact correction -----------

TARGET_MEAN = np.array([1.0, -0.5, 0.0, 2.0, 0.3])
TARGET_COVARIANCE = np.array(
    [
        [1.0, 0.6, 0.0, 0.0, 0.2],
        [0.6, 2.0, 0.3, 0.0, 0.0],
        [0.0, 0.3, 0.5, -0.1, 0.0],
        [0.0, 0.0, -0.1, 4.0, 1.0],
        [0.2, 0.0, 0.0, 1.0, 1.0],
    ]
)
TARGET_PRECISION = np.linalg.inv(TARGET_COVARIANCE)


def exact_logp(q):
    d = np.asarray(q) - TARGET_MEAN
    return float(-0.5 * d @ TARGET_PRECISION @ d)


def gaussian_surrogate(mean, precision):
    """A structured network that is exactly the Gaussian ``N(mean, precision^-1)``."""
    net = StructuredNetwork.build(NetworkConfig(width=4), len(mean), key=jax.random.key(0))
    net = eqx.tree_at(
        lambda n: (n.linear, n.curvature, n.mlp.layers[-1].weight, n.mlp.layers[-1].bias),
        net,
        (precision @ mean, precision, jnp.zeros((1, 4)), jnp.zeros(1)),
    )
    return LogDensitySurrogate(net)


def wrong_gaussian_surrogate():
    """A structured network whose base is N(m + 1 sd, 2.25 diag(Sigma)): no MLP, no whitening."""
    wrong_mean = TARGET_MEAN + np.sqrt(np.diag(TARGET_COVARIANCE))
    wrong_precision = np.diag(1 / (2.25 * np.diag(TARGET_COVARIANCE)))
    surrogate = gaussian_surrogate(wrong_mean, wrong_precision)
    return surrogate, wrong_mean, np.linalg.inv(wrong_precision)


def run_kernel(*, corrected, chains=4, tune=300, draws=1500, seed=0):
    """The surrogate kernel as ``SurrogateHMC`` runs it: a step-size and dense-metric tuning
    (Laplace of the surrogate, then windows of the draws), then frozen draws."""
    surrogate, *_ = wrong_gaussian_surrogate()
    kernel = SurrogateKernel(KernelSettings("nuts"))
    rng = np.random.default_rng(seed)
    out = np.empty((chains, draws, 5))
    second_stage = []
    for chain in range(chains):
        state = kernel.start(surrogate, step_size=0.5)
        potential = QuadPotentialDiagAdapt(5, np.zeros(5), np.ones(5), 10)
        position = TARGET_MEAN + rng.normal(size=5)
        for iteration in range(tune + draws):
            tune_now = iteration < tune
            state, position, stats = kernel.step(
                state, rng, position, potential, exact_logp=exact_logp if corrected else None,
                tune=tune_now, iteration=iteration,
            )  # fmt: skip
            if iteration == 0:  # the switch: the kernel's own dense metric from now on
                kernel.adapt_metric(state, iteration, tune)
            if not tune_now:
                out[chain, iteration - tune] = position
                second_stage.append(stats["second_stage_acceptance"])
    return out, state, np.array(second_stage)


def test_a_wrong_gaussian_base_is_corrected_exactly():
    draws, state, second_stage = run_kernel(corrected=True)
    assert state.inverse_mass is not None and state.inverse_mass.shape == (5, 5)
    assert np.nanmean(second_stage) < 0.8, "the surrogate should be visibly wrong"
    assert_gaussian(draws, TARGET_MEAN, TARGET_COVARIANCE)


def test_without_the_correction_the_same_z_tests_fail():
    """Negative control: the tests above catch a sampler of the wrong distribution."""
    draws, _, _ = run_kernel(corrected=False)
    _, wrong_mean, wrong_covariance = wrong_gaussian_surrogate()
    assert np.max(np.abs(gaussian_z_scores(draws, TARGET_MEAN, TARGET_COVARIANCE))) > 15
    assert_gaussian(draws, wrong_mean, wrong_covariance)  # it samples its own base, exactly


# -- the exploration check --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_the_exploration_check_catches_a_confining_surrogate(seed):
    """Exact draws of ``N(0, diag(1, 1000^2))`` (the wide prior of ``b``): a surrogate that
    gives ``b`` an sd of 2 spreads over about 4e-6 of its variance, the right one over ~1."""
    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 1000.0])
    exact_draws = rng.normal(scale=scales, size=(RECENT_DRAWS, 2))
    kernel = SurrogateKernel(KernelSettings("nuts"))
    potential = QuadPotentialDiagAdapt(2, np.zeros(2), scales**2, 10)
    spreads = {}
    for name, sd_b in [("right", 1000.0), ("confining", 2.0)]:
        surrogate = gaussian_surrogate(np.zeros(2), np.diag(1 / np.array([1.0, sd_b]) ** 2))
        state = kernel.start(surrogate, step_size=0.5)
        draws = kernel.explore(state, rng, exact_draws[-1], potential, EXPLORATION_DRAWS)
        spreads[name] = spread_ratio(draws, exact_draws)
    assert spreads["right"] > 0.3, spreads
    assert spreads["confining"] < 1e-3 < shmc.SwitchTest().min_spread, spreads


def test_the_sampler_runs_the_exploration_check_before_each_pilot():
    model, *_ = models.conjugate_regression()
    with model:
        step = shmc.SurrogateHMC(cost_gate=False, schedule=shmc.Schedule(start=50, stop=50))
        pm.sample(step=step, tune=150, draws=10, chains=1, random_seed=2, **SAMPLE)
    (record,) = step.training_history
    assert record.pilot is not None and record.pilot.spread is not None
    assert record.pilot.spread > shmc.SwitchTest().min_spread and record.switched


# -- the cost gate ----------------------------------------------------------------------------


@pytest.mark.parametrize("tune", [200, 400], ids=["decided-at-the-last-training", "settled"])
def test_a_cheap_model_stays_plain_nuts_with_one_warning(tune):
    """With tune=400 the gate waits for NUTS's adapted metric (iteration 101) and judges the
    iterations after it; with tune=200 its last chance (iteration 100) comes before that."""
    model, *_ = models.conjugate_regression()
    with model:
        step = shmc.SurrogateHMC()
        with pytest.warns(shmc.SurrogateCostWarning) as record:
            idata = pm.sample(step=step, tune=tune, draws=100, chains=2, random_seed=1, **SAMPLE)
    messages = [str(w.message) for w in record if w.category is shmc.SurrogateCostWarning]
    assert len(messages) == 1, messages
    assert "cost_gate=False" in messages[0] and "cannot pay off" in messages[0]
    assert np.all(sample_stat(idata, "phase") == 0)
    assert step.training_history == ()
    verdict = step.chain.life.cost
    assert verdict is not None and not verdict.pays
    assert verdict.settled == (tune == 400)
    assert ("takes at least" in messages[0]) == (tune == 200)
    judged_at = tune + 100 - verdict.remaining
    assert (judged_at >= step.chain.settled_at + 20) == (tune == 400)
    assert step.trained_surrogate is None
    # Too cheap even with a free exact logp: the logp alone was never evaluated (nor compiled).
    assert not verdict.logp_measured and "even if its exact logp cost nothing" in messages[0]
    assert np.all(sample_stat(idata, "n_exact_logp") == 0)


def test_without_the_gate_a_cheap_model_learns_a_surrogate():
    model, *_ = models.conjugate_regression()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", shmc.SurrogateCostWarning)  # "too cheap", at the end
        step = shmc.SurrogateHMC(cost_gate=False)
        idata = pm.sample(step=step, tune=200, draws=100, chains=1, random_seed=1, **SAMPLE)
    assert np.all(sample_stat(idata, "phase") == 1)
    assert step.chain.life.cost is None and step.training_history[0].switched


SLEEP_SECONDS = 0.012


@pytest.mark.filterwarnings("ignore:Numba will use object mode:UserWarning")  # PyTensor 3
def test_an_expensive_model_passes_the_gate_and_learns_a_surrogate():
    """Every exact evaluation sleeps 12 ms; a strong correlation makes NUTS take long trees.

    A plain NUTS run of 600 iterations takes over 20 s, so a failed training (about 4 s) would
    cost less than a quarter of it: the gate may take the risk."""
    with pm.Model() as model:
        x = pm.Flat("x", shape=2)
        pm.MvNormal("y", mu=x, cov=np.array([[1.0, 0.95], [0.95, 1.0]]), observed=np.zeros(2))
        pm.Potential("slow", SlowTerm(seconds=SLEEP_SECONDS)(x))
    idata, step = run(model, tune=300, draws=300, chains=1)
    verdict = step.chain.life.cost
    assert verdict is not None and verdict.pays, verdict
    assert verdict.surrogate_iteration > SLEEP_SECONDS, "the gate did not time the slow logp"
    assert step.training_history[0].switched
    assert np.all(sample_stat(idata, "phase") == 1)
