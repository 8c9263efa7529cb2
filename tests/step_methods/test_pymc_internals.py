"""Each private PyMC attribute we rely on is still where we reach for it.

These fail loudly, by name, when a PyMC release moves one (see
``surrogate_hmc/step_methods/pymc_internals.py``).
"""

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.step_methods import pymc_internals

PYMC_MAJOR = int(pm.__version__.split(".")[0])


def normal_model():
    with pm.Model() as model:
        pm.Normal("x", 1.0, 2.0, shape=3)
    return model


def test_every_exact_evaluation_of_nuts_goes_through_the_routed_function():
    model = normal_model()
    with model:
        nuts = pm.NUTS()
    seen = []

    def wrap(original):
        def routed(q, point_map_info):
            seen.append(q.copy())
            return original(q, point_map_info)

        return routed

    original = pymc_internals.route_logp_dlogp(nuts.integrator, wrap)
    _, gradient = original(np.zeros(3), None)
    np.testing.assert_allclose(gradient, 0.25)  # -(0 - 1) / 2**2
    point = model.initial_point()
    _, stats = nuts.step(point)
    # The trajectory's start plus one evaluation per leapfrog step.
    assert len(seen) == stats[0]["tree_size"] + 1


def test_the_inverse_mass_diagonal_is_the_adapted_variance():
    potential = pm.step_methods.hmc.quadpotential.QuadPotentialDiagAdapt(
        2, np.zeros(2), np.array([3.0, 5.0]), 10
    )
    np.testing.assert_array_equal(pymc_internals.inverse_mass_diagonal(potential), [3.0, 5.0])


@pytest.mark.filterwarnings("ignore:QuadPotentialFullAdapt is an experimental feature")
def test_the_metric_estimate_changes_first_when_the_first_window_closes():
    quadpotential = pm.step_methods.hmc.quadpotential
    potential = quadpotential.QuadPotentialDiagAdapt(2, np.zeros(2), np.ones(2), 10)
    initial = pymc_internals.metric_estimate(potential)
    draws = np.random.default_rng(0).normal(scale=3.0, size=(200, 2))
    changed_at = None
    for iteration, draw in enumerate(draws):
        potential.update(draw, None, True)
        if changed_at is None and not np.array_equal(
            pymc_internals.metric_estimate(potential), initial
        ):
            changed_at = iteration
    assert changed_at == potential.adaptation_window + 1
    full = quadpotential.QuadPotentialFullAdapt(2, np.zeros(2), np.eye(2), 10)
    assert pymc_internals.metric_estimate(full).shape == (2, 2)
    assert pymc_internals.metric_estimate(quadpotential.QuadPotentialDiag(np.ones(2))) is None


def test_the_compiled_logp_and_the_variables_of_other_steps():
    with pm.Model() as model:
        z = pm.Normal("z")
        x = pm.Normal("x", z, 2.0, shape=2)
        nuts = pm.NUTS([x])
    assert pymc_internals.extra_variable_names(nuts) == ("z",)
    function = model.logp_dlogp_function(
        [model.rvs_to_values[x]], ravel_inputs=True, compute_grads=False
    )
    function.set_extra_values({"z": np.array(0.5)})
    compiled = pymc_internals.compiled_logp(function)
    expected = model.compile_logp()({"z": np.array(0.5), "x": np.array([0.0, 1.0])})
    assert float(compiled(np.array([0.0, 1.0]))[0]) == pytest.approx(float(expected))


def test_the_numbers_of_tuning_iterations_and_draws_reach_the_step():
    # PyMC 6 passes them to setup_chain; on PyMC 5 they are read from the sampling loop's frame.
    with normal_model():
        step = shmc.SurrogateHMC(schedule=shmc.Schedule(start=40, stop=40))
        pm.sample(
            step=step, tune=123, draws=5, chains=1, cores=1, progressbar=False,
            compute_convergence_checks=False, random_seed=1,
        )  # fmt: skip
    assert (step.chain.tune, step.chain.draws) == (123, 5)
    assert pymc_internals.run_length_from_pymc5_caller() is None  # not called from PyMC's loop
