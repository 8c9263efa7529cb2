"""PyMC's step-method contract and multi-chain behaviour (bad input: tests/bad_input/)."""

import textwrap

import cloudpickle
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from pymc.blocking import DictToArrayBijection, RaveledVars
from pymc.step_methods.hmc.base_hmc import BaseHMC

import surrogate_hmc as shmc
from tests.helpers import assert_moments, posterior_array, run_python, sample_stat
from tests.step_methods import models

QUICK = shmc.Schedule(start=60, every=30, stop=120)
SAMPLE = {"progressbar": False, "compute_convergence_checks": False}


def quick_sample(model, seed=3, **kwargs):
    """A short run that switches to a gradient surrogate (past the cost gate) during tuning."""
    options = {"tune": 200, "draws": 100, "chains": 2, "cores": 1, "random_seed": seed} | kwargs
    step = {"surrogate": "gradient", "schedule": QUICK, "cost_gate": False}
    with model:
        return pm.sample(step=shmc.SurrogateHMC(**step), **SAMPLE, **options)


def test_stats_say_what_each_draw_cost():
    model, *_ = models.conjugate_regression()
    idata = quick_sample(model, discard_tuned_samples=False)
    stats = idata["sample_stats"]
    for name in ("phase", "acceptance_rate", "diverging", "energy", "energy_error", "step_size",
                 "n_steps", "tree_depth", "lp", "n_exact_grad", "n_exact_logp"):  # fmt: skip
        assert name in stats, name
    warmup = idata["warmup_sample_stats"]
    phase = np.asarray(warmup["phase"])
    grads = np.asarray(warmup["n_exact_grad"])
    assert np.all(grads[phase == 0] >= 1) and np.all(grads[phase == 1] == 0)
    assert np.all(np.asarray(warmup["n_exact_logp"])[phase == 1] >= 1)
    np.testing.assert_array_equal(sample_stat(idata, "n_exact_logp"), 1)


def test_same_seed_same_draws_and_chains_differ():
    model, *_ = models.conjugate_regression()
    first = posterior_array(quick_sample(model, seed=7), ["beta"])
    second = posterior_array(quick_sample(model, seed=7), ["beta"])
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], first[1])
    assert not np.array_equal(first, posterior_array(quick_sample(model, seed=8), ["beta"]))


def run_steps(step, point, n):
    """``n`` iterations of ``step`` from ``point``: each one's point and stats."""
    out = []
    for _ in range(n):
        point, stats = step.step(point)
        out.append((point, stats[0]))
    return out


def start_chain(step, seed: int) -> None:
    """Start a chain of ``step`` as ``pm.sample`` does, with 1000 tuning iterations."""
    rng = np.random.default_rng(seed)
    if int(pm.__version__.split(".")[0]) >= 6:
        step.setup_chain(rng, 1000, 10)
    else:
        step.set_rng(rng)  # outside pm.sample, tune is pm.sample's default: 1000


class _Started(Exception):
    """Raised by :func:`chain_start` once the chain's first NUTS step has shown where it starts."""


def chain_start(step, model, seed: int, monkeypatch) -> np.ndarray:
    """Where a chain of ``step`` starts: the position its first (exact) NUTS step starts from.

    PyMC's ``BaseHMC.astep`` is the transition the chain's first iteration runs; it is stopped
    as it starts (a start the jitter should have refused may have no finite energy).
    """
    seen = []

    def first_step(self, q0):
        seen.append(q0.data.copy())
        raise _Started

    start_chain(step, seed)
    with monkeypatch.context() as patch:
        patch.setattr(BaseHMC, "astep", first_step)
        with pytest.raises(_Started):
            step.step(model.initial_point())
    return seen[0]


def raveled_initial_point(step, model) -> np.ndarray:
    point = model.initial_point()
    return DictToArrayBijection.map({v.name: point[v.name] for v in step.vars}).data


def jitter_model(jitter: bool = True):
    with pm.Model() as model:
        pm.Normal("x", shape=3)
        pm.HalfNormal("s")  # sampled as log(s)
        step = shmc.SurrogateHMC(jitter=jitter)
    return model, step


def assert_jittered(starts, initial) -> None:
    """Each start is the initial point plus U(-1, 1) noise in every coordinate, its own noise."""
    for start in starts:
        assert np.all(np.abs(start - initial) < 1) and np.all(start != initial), start - initial
    assert not np.allclose(*starts), starts


@pytest.mark.parametrize("jitter", [True, False])
def test_chains_start_jittered_as_pm_sample_starts_its_own_nuts(jitter, monkeypatch):
    # pm.sample jitters its NUTS's start by U(-1, 1) in the sampled space, not a given step's.
    model, step = jitter_model(jitter)
    initial = raveled_initial_point(step, model)
    starts = [chain_start(step, model, seed, monkeypatch) for seed in (1, 2)]
    if jitter:
        assert_jittered(starts, initial)
    else:
        for start in starts:
            np.testing.assert_array_equal(start, initial)


JITTERED = shmc.SurrogateHMC._jittered


def _probe_then_start_unjittered(self, q0):
    # Evaluates the model at a jittered point (as the real jitter's finiteness probe does), then
    # starts at q0 anyway: a test reading the first exact evaluation would take the probe for it.
    JITTERED(self, q0)
    return q0


@pytest.mark.parametrize(
    "jittered",
    [lambda self, q0: q0, _probe_then_start_unjittered],
    ids=["start unchanged", "probed, then start unchanged"],
)
def test_the_jitter_check_catches_an_unjittered_start(jittered, monkeypatch):
    """Negative control: with a jitter that leaves the start where it was, the check fails."""
    model, step = jitter_model()
    initial = raveled_initial_point(step, model)
    monkeypatch.setattr(shmc.SurrogateHMC, "_jittered", jittered)
    starts = [chain_start(step, model, seed, monkeypatch) for seed in (1, 2)]
    with pytest.raises(AssertionError):
        assert_jittered(starts, initial)


def wall_model():
    with pm.Model() as model:
        x = pm.Normal("x", initval=0.6)
        pm.Potential("wall", pt.switch(x > 0.5, 0.0, -np.inf))  # jitters below 0.5: -inf
        step = shmc.SurrogateHMC()
    return model, step


def assert_starts_beyond_the_wall(starts) -> None:
    assert np.all((starts > 0.5) & (starts < 1.6) & (starts != 0.6)), starts


def test_a_jittered_start_is_drawn_again_until_the_log_density_is_finite(monkeypatch):
    model, step = wall_model()
    starts = np.array([chain_start(step, model, seed, monkeypatch)[0] for seed in range(8)])
    assert_starts_beyond_the_wall(starts)


def test_the_wall_check_catches_a_jitter_that_does_not_draw_again(monkeypatch):
    """Negative control: a jitter taking its first draw, finite or not, fails the check."""

    def first_draw(self, q0):
        noise = self.rng.uniform(-1.0, 1.0, size=q0.data.shape)
        return RaveledVars(q0.data + noise, q0.point_map_info)

    model, step = wall_model()
    monkeypatch.setattr(shmc.SurrogateHMC, "_jittered", first_draw)
    starts = np.array([chain_start(step, model, seed, monkeypatch)[0] for seed in range(8)])
    with pytest.raises(AssertionError):
        assert_starts_beyond_the_wall(starts)


@pytest.mark.parametrize("surrogate", ["gradient", "logp"])
def test_sampling_state_round_trip_reproduces_a_surrogate_step(surrogate):
    model, *_ = models.conjugate_regression()
    with model:
        step = shmc.SurrogateHMC(surrogate=surrogate, schedule=QUICK, cost_gate=False)
    start_chain(step, seed=0)  # still tuning after 160 steps; a logp surrogate learns until 300
    point = model.initial_point()
    for _ in range(160):
        point, stats = step.step(point)
    assert stats[0]["phase"] == 1, "the chain should be in the surrogate phase by now"
    state = step.sampling_state
    after = run_steps(step, point, 5)
    # Restored into a copy, as a step sent to another process: the exact evaluations of the
    # next steps must reach the restored chain's own buffer and ledger.
    restored = cloudpickle.loads(cloudpickle.dumps(step))
    restored.sampling_state = state
    again = run_steps(restored, point, 5)
    for (after_point, after_stats), (again_point, again_stats) in zip(after, again, strict=True):
        np.testing.assert_array_equal(after_point["beta"], again_point["beta"])
        for name in ("acceptance_rate", "second_stage_acceptance", "n_exact_logp", "n_exact_grad"):
            np.testing.assert_equal(after_stats[name], again_stats[name])
    for chain in (step.chain, restored.chain):
        assert chain.exact.ledger.n_logp == step.chain.exact.ledger.n_logp
        assert len(chain.exact.buffer) == len(step.chain.exact.buffer)
    learned_online = len(step.chain.exact.buffer) > len(state.chain.exact.buffer)
    assert learned_online == (surrogate == "logp")


def test_compound_step_next_to_a_discrete_sampler():
    """z ~ Bernoulli(0.5), x | z ~ N(3 z, 1): x's marginal has mean 1.5 and variance 3.25.

    The network sees x only, and x's gradient depends on z, so the surrogate cannot pass the
    switch test: the defined outcome is a warning and exact NUTS for x, with the right answer.
    """
    with pm.Model():
        z = pm.Bernoulli("z", 0.5)
        x = pm.Normal("x", 3.0 * z, 1.0)
        surrogate = shmc.SurrogateHMC(
            vars=[x], surrogate="gradient", schedule=QUICK, cost_gate=False
        )
        steps = [surrogate, pm.BinaryGibbsMetropolis([z])]
        with pytest.warns(shmc.SurrogateWarning, match="never passed"):
            idata = pm.sample(
                step=steps, tune=300, draws=2000, chains=2, cores=1, random_seed=5, **SAMPLE
            )
    assert_moments(posterior_array(idata, ["x"]), 1.5, 3.25)
    assert np.asarray(idata["posterior"]["z"]).std() > 0.3


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, pymc as pm, surrogate_hmc as shmc
    surrogate, save_to = sys.argv[1:]
    with pm.Model():
        pm.Normal("x", 1.0, 2.0, shape=2)
        step = shmc.SurrogateHMC(
            surrogate=surrogate, save_to=save_to, cost_gate=False,
            schedule=shmc.Schedule(start=60, every=30, stop=120),
        )
        idata = pm.sample(
            step=step, tune=200, draws=200, chains=2, cores=2, random_seed=1,
            progressbar=False, compute_convergence_checks=False,
        )
    phase = np.asarray(idata["sample_stats"]["phase"])
    draws = np.asarray(idata["posterior"]["x"])
    assert phase.shape == (2, 200) and np.all(phase == 1), phase
    assert not np.allclose(draws[0], draws[1])
    assert shmc.TrainedSurrogate.load(save_to).kind == surrogate
    # Each worker's trainings came back with its draws.
    for history in shmc.decisions(idata).values():
        assert history.n_trainings >= 1 and history.switched_at is not None, history.describe()
    print("ok")
    """
)


@pytest.mark.parametrize("surrogate", ["gradient", "logp"])
def test_cores_2_with_the_default_start_method_does_not_hang(surrogate, tmp_path):
    # A fresh interpreter: this test process already ran JAX, which a real user's parent has not.
    # The chains run in worker processes, so the trained surrogate comes back through save_to.
    result = run_python(MULTIPROCESS_SCRIPT, surrogate, str(tmp_path / "surrogate.npz"))
    assert result.stdout.strip().endswith("ok")


PROGRESSBAR_SCRIPT = textwrap.dedent(
    """
    import pymc as pm, surrogate_hmc as shmc
    with pm.Model():
        pm.Normal("x", shape=2)
        step = shmc.SurrogateHMC(
            surrogate="logp", schedule=shmc.Schedule(start=50, every=50), cost_gate=False
        )
        pm.sample(step=step, tune=150, draws=20, chains=1, cores=1, progressbar=True,
                  compute_convergence_checks=False, random_seed=1)
    """
)


def test_progressbar_shows_the_phase():
    # The final render of PyMC's progress bar, as a user sees it when sampling ends.
    result = run_python(PROGRESSBAR_SCRIPT, COLUMNS="200")
    lines = (result.stdout + result.stderr).splitlines()  # PyMC 5 draws it on stderr
    header = next(line for line in lines if "Progress" in line and "Phase" in line).split()
    row = next(line for line in lines if "draws/s" in line).split()
    assert header[:6] == ["Progress", "Draw", "Phase", "Div", "Step", "Grads"]
    # The bar, the draw, then the step's own columns: it ended in the surrogate phase, where
    # no exact gradient is evaluated.
    phase, divergences, step_size, grad_evals = row[-8:-4]
    assert phase == "surr" and divergences == "0" and grad_evals == "0"
    assert float(step_size) > 0
