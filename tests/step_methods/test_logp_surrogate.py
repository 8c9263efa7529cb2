"""The log-density surrogate: NUTS with delayed acceptance, static trajectories, reuse, costs."""

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.helpers import assert_moments, posterior_array, sample_stat
from tests.step_methods import models

SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}
QUICK = shmc.Schedule(start=60, every=30, stop=120)


def run(model, *, tune=400, draws=1000, chains=2, seed=1, keep_warmup=False, **step_kwargs):
    """Sample with a log-density surrogate; past the cost gate, which keeps cheap models NUTS."""
    with model:
        step = shmc.SurrogateHMC(surrogate="logp", **{"cost_gate": False, **step_kwargs})
        idata = pm.sample(
            step=step, tune=tune, draws=draws, chains=chains, random_seed=seed,
            discard_tuned_samples=not keep_warmup, **SAMPLE,
        )  # fmt: skip
    return idata, step


def assert_delayed_acceptance_draws(idata):
    assert np.all(sample_stat(idata, "phase") == 1), "the draws are not from the surrogate"
    np.testing.assert_array_equal(sample_stat(idata, "n_exact_grad"), 0)
    n_logp = sample_stat(idata, "n_exact_logp")
    assert np.all((n_logp == 0) | (n_logp == 1)), "more than one exact logp in a draw"
    second_stage = sample_stat(idata, "second_stage_acceptance")
    assert np.all((second_stage >= 0) & (second_stage <= 1))
    assert np.all(sample_stat(idata, "tree_depth") >= 1)


@pytest.mark.parametrize(
    "make_model",
    [models.conjugate_regression, models.banana, models.skewed_gamma],
    ids=["correlated", "banana", "skewed"],
)
def test_nuts_on_the_surrogate_is_exact(make_model):
    model, names, mean, variance = make_model()
    idata, _ = run(model)
    assert_delayed_acceptance_draws(idata)
    assert sample_stat(idata, "second_stage_acceptance").mean() > 0.8
    assert_moments(posterior_array(idata, names), mean, variance)


@pytest.mark.parametrize(
    "make_model",
    [models.ill_conditioned_gaussian, models.banana],
    ids=["ill-conditioned", "banana"],
)
def test_static_trajectories_on_the_logp_surrogate_are_exact(make_model):
    model, names, mean, variance = make_model()
    idata, step = run(model, trajectory="static")
    assert step.trajectory == "static"
    assert np.all(sample_stat(idata, "phase") == 1)
    np.testing.assert_array_equal(sample_stat(idata, "n_exact_logp"), 1)
    assert np.all(np.isnan(sample_stat(idata, "second_stage_acceptance")))
    assert_moments(posterior_array(idata, names), mean, variance)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make_model", "trajectory"),
    [
        (lambda: models.ill_conditioned_gaussian(dim=20), "nuts"),
        (lambda: models.skewed_gamma(shape=1.5), "nuts"),
        (models.conjugate_regression, "static"),
    ],
    ids=["ill-conditioned-20d", "strongly-skewed", "correlated-static"],
)
def test_logp_surrogate_long(make_model, trajectory):
    model, names, mean, variance = make_model()
    idata, _ = run(model, tune=1000, draws=5000, chains=4, trajectory=trajectory)
    assert np.all(sample_stat(idata, "phase") == 1)
    assert_moments(posterior_array(idata, names), mean, variance, z_max=4.0)


def test_badly_trained_logp_surrogate_is_still_exact():
    """A network trained for a few steps, forced in: the second stage rejects, the answer holds.

    The core test ``test_biased_surrogate_is_visibly_wrong_without_the_second_stage`` is the
    negative control: the same kind of surrogate without the correction fails this z-test.
    Not a Gaussian posterior: the network's Gaussian base learns that in closed form, so no
    training is too short for it.
    """
    model, names, mean, variance = models.banana()
    idata, step = run(
        model,
        draws=2000,
        training=shmc.TrainingConfig(max_steps=20, eval_every=10, learning_rate=1e-4),
        switch_test=shmc.SwitchTest(
            max_validation_error=np.inf, min_acceptance_ratio=0.0, min_second_stage=0.0
        ),
    )
    assert_delayed_acceptance_draws(idata)
    assert step.training_history[-1].validation_error > 0.5, "the surrogate was not bad"
    assert sample_stat(idata, "second_stage_acceptance").mean() < 0.8, "nothing was corrected"
    assert_moments(posterior_array(idata, names), mean, variance)


def test_exact_logp_evaluations_are_at_most_one_per_draw_and_one_per_move():
    model, names, *_ = models.conjugate_regression()
    idata, _ = run(model, tune=200, draws=500, schedule=QUICK)
    assert_delayed_acceptance_draws(idata)
    draws = posterior_array(idata, names)
    moved = np.any(draws[:, 1:] != draws[:, :-1], axis=-1)
    n_logp = sample_stat(idata, "n_exact_logp")[:, 1:]
    # A draw that moved paid its one exact logp; one that NUTS left in place paid none
    # unless the exact correction rejected NUTS's proposal (the core tests check the "none").
    assert np.all(n_logp[moved] == 1)


def test_the_surrogate_keeps_learning_until_its_refit():
    model, names, mean, variance = models.banana()
    idata, step = run(
        model, tune=400, draws=1000, keep_warmup=True,
        schedule=shmc.Schedule(start=60, every=30, stop=120, refit=250),
    )  # fmt: skip
    refit = step.training_history[-1]
    assert refit.iteration == 250 and refit.refit and refit.outcome == "refitted"
    switched = step.training_history[-2].iteration
    assert refit.n_points > step.training_history[-2].n_points, "nothing was learned"
    warmup = idata["warmup_sample_stats"]
    grads = np.asarray(warmup["n_exact_grad"])[-1, switched + 1 :]
    off = np.abs(np.asarray(warmup["surrogate_error"])[-1, switched + 1 :]) > 0.1
    before_refit = np.arange(switched + 1, 400) < 250
    # An exact gradient exactly where the surrogate was off, before the refit; none after it:
    # the draws cost one exact logp each, as before.
    np.testing.assert_array_equal(grads, off & before_refit)
    assert_delayed_acceptance_draws(idata)
    assert_moments(posterior_array(idata, names), mean, variance)


def warmup_exact_gradients(idata) -> int:
    return int(np.asarray(idata["warmup_sample_stats"]["n_exact_grad"]).sum())


def test_save_and_reuse_skips_most_of_the_exact_phase(tmp_path):
    model, names, mean, variance = models.conjugate_regression()
    path = tmp_path / "regression"
    first, step = run(
        model, tune=400, draws=200, seed=2, save_to=path, keep_warmup=True,
        schedule=shmc.Schedule(start=150),
    )  # fmt: skip
    saved = shmc.TrainedSurrogate.load(path)
    assert saved.kind == "logp" and saved.variables == (("beta", (3,)),)
    for a, b in zip(saved.arrays, step.trained_surrogate.arrays, strict=True):
        np.testing.assert_array_equal(a, b)

    with model:
        # This run learns the whole log-density: its refit of the given likelihood-only
        # network starts afresh on those targets instead of continuing that network.
        step = shmc.SurrogateHMC(surrogate=path.with_suffix(".npz"), exact_prior=False)
        second = pm.sample(
            step=step, tune=400, draws=1000, chains=2, random_seed=3,
            discard_tuned_samples=False, **SAMPLE,
        )  # fmt: skip
    given, *_, refit = step.training_history
    assert given.given and given.switched
    assert given.iteration == 50
    assert refit.refit and refit.outcome == "refitted"
    assert not step.trained_surrogate.exact_prior
    # A fresh fit: early stopping needs more checks (patience 5) than a warm start's quarter
    # of the steps allows (2000 // 4 steps, a check every 100).
    assert refit.train_losses.size > shmc.TrainingConfig().max_steps // 4 // 100
    assert_delayed_acceptance_draws(second)
    assert warmup_exact_gradients(second) < 0.5 * warmup_exact_gradients(first)
    assert_moments(posterior_array(second, names), mean, variance)


def test_a_surrogate_of_other_data_fails_its_pilot_and_a_new_one_is_trained(tmp_path):
    model, *_ = models.conjugate_regression(seed=0)
    _, step = run(model, tune=200, draws=10, chains=1, schedule=QUICK)
    given = step.trained_surrogate
    assert given.exact_prior and given.network == shmc.NetworkConfig()
    other, names, mean, variance = models.conjugate_regression(seed=1, n=400)
    # The new surrogate is trained with this run's options, and recorded as it was trained.
    this_run = {"network": shmc.NetworkConfig(width=32), "exact_prior": False}
    path = tmp_path / "retrained.npz"
    with other:
        step = shmc.SurrogateHMC(surrogate=given, schedule=QUICK, save_to=path, **this_run)
        with pytest.warns(shmc.SurrogateWarning, match="failed its pilot"):
            idata = pm.sample(step=step, tune=300, draws=500, chains=1, random_seed=4, **SAMPLE)
    first, *retrained = step.training_history
    assert first.given and not first.switched
    assert retrained[-1].switched
    assert np.all(sample_stat(idata, "phase") == 1)
    assert_moments(posterior_array(idata, names), mean, variance)
    saved = shmc.TrainedSurrogate.load(path)
    for trained in (step.trained_surrogate, saved):
        assert trained.network == this_run["network"] and not trained.exact_prior


def test_a_cheap_model_gets_one_cost_warning_and_keeps_sampling():
    model, *_ = models.conjugate_regression()
    with model:
        # Past the cost gate, the surrogate's measured cost is what warns.
        step = shmc.SurrogateHMC(surrogate="logp", schedule=QUICK, cost_gate=False)
        with pytest.warns(shmc.SurrogateCostWarning, match="too cheap") as record:
            idata = pm.sample(step=step, tune=200, draws=300, chains=2, random_seed=5, **SAMPLE)
    assert len([w for w in record if w.category is shmc.SurrogateCostWarning]) == 1
    assert "ms per evaluation" in str(record[0].message)
    assert np.all(sample_stat(idata, "phase") == 1)
