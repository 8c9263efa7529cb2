"""Each chain's decisions travel with its trace, and a seed fixes the draws unless timing speaks.

The cost gate decides from measured times. Here the clock the sampler reads is scaled, as a
faster or slower machine would see it: with ``cost_gate=False`` the draws of one seed are the
same under any clock; with the gate they may differ, and then the trace and the warning say
which path each run took and why.
"""

import warnings

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.cost_ledger import CostLedger, judge_cost
from surrogate_hmc.core.history import GateDecision
from surrogate_hmc.step_methods import messages
from tests.helpers import posterior_array, scale_the_sampler_clock
from tests.step_methods import models

QUIET = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}
SMALL = {
    "network": shmc.NetworkConfig(width=32),
    "training": shmc.TrainingConfig(max_steps=500),
    "schedule": shmc.Schedule(start=50, every=50, stop=100),
}
SLOW_MACHINE, FAST_MACHINE = 1e4, 1e-2
"""Clock scales: every exact evaluation looks 10,000 times slower, or 100 times faster."""


def sample(monkeypatch, scale: float, cost_gate: bool):
    scale_the_sampler_clock(monkeypatch, scale)
    model, *_ = models.conjugate_regression()
    with model, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step = shmc.SurrogateHMC(cost_gate=cost_gate, **SMALL)
        idata = pm.sample(step=step, tune=300, draws=200, chains=2, random_seed=7, **QUIET)
    monkeypatch.undo()
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return idata, said, step


def test_without_the_gate_a_seed_fixes_the_draws_whatever_the_clock(monkeypatch):
    slow, *_ = sample(monkeypatch, SLOW_MACHINE, cost_gate=False)
    fast, *_ = sample(monkeypatch, FAST_MACHINE, cost_gate=False)
    np.testing.assert_array_equal(posterior_array(slow, ["beta"]), posterior_array(fast, ["beta"]))
    for history in shmc.decisions(slow).values():
        assert history.decision is GateDecision.NOT_ASKED and history.n_trainings >= 1


def test_with_the_gate_the_clock_can_change_the_path_and_the_trace_says_so(monkeypatch):
    slow, slow_warnings, _ = sample(monkeypatch, SLOW_MACHINE, cost_gate=True)
    fast, fast_warnings, _ = sample(monkeypatch, FAST_MACHINE, cost_gate=True)
    assert not np.array_equal(posterior_array(slow, ["beta"]), posterior_array(fast, ["beta"]))
    for chain, history in shmc.decisions(slow).items():
        assert history.decision is GateDecision.LEARN, history.describe()
        assert history.cost.speedup > 2 and history.n_trainings >= 1
        assert history.switched_at is not None, history.describe()
        assert np.all(np.asarray(slow["sample_stats"]["phase"])[chain] == 1)
    for chain, history in shmc.decisions(fast).items():
        assert history.decision is GateDecision.STAY_NUTS, history.describe()
        assert history.n_trainings == 0 and history.cost.speedup < 2
        assert np.all(np.asarray(fast["sample_stats"]["phase"])[chain] == 0)
    # The run that stayed exact said why, and that timing decided it.
    (said,) = {w for w in fast_warnings if "cannot pay off" in w}
    assert "rests on times measured on this machine" in said and "cost_gate=False" in said
    assert not [w for w in slow_warnings if "cannot pay off" in w]


def test_a_gated_trace_explains_itself_in_the_diagnostics(monkeypatch):
    fast, _, step = sample(monkeypatch, FAST_MACHINE, cost_gate=True)
    figure = shmc.plot_diagnostics(fast, panels=["loss"])
    text = " ".join(t.get_text() for t in figure.axes[0].texts)
    assert "chain 0: the cost gate kept it plain NUTS" in text
    assert "chain 1: the cost gate kept it plain NUTS" in text
    # With the step (cores=1): the real reason, not "cores>1".
    figure = shmc.plot_diagnostics(fast, step, panels=["loss"])
    text = " ".join(t.get_text() for t in figure.axes[0].texts)
    assert "Nothing was trained on chain 1: the cost gate kept it plain NUTS." in text
    assert "cores>1" not in text
    assert "exact iteration" in shmc.decisions(fast)[0].describe()


def test_decisions_refuses_a_trace_without_them():
    with pm.Model():
        pm.Normal("x")
        idata = pm.sample(step=pm.NUTS(), tune=50, draws=20, chains=1, random_seed=1, **QUIET)
    with pytest.raises(ValueError, match=r"not sampled by shmc\.SurrogateHMC"):
        shmc.decisions(idata)
    with pytest.raises(TypeError, match=r"trace must be what pm\.sample returned"):
        shmc.decisions({"sample_stats": {}})


def test_a_run_too_short_to_risk_a_training_says_so():
    verdict = judge_cost(exact_iteration=0.02, logp=1e-4, remaining=600, run_iterations=600)
    assert verdict.setup_at_risk and not verdict.pays
    message = messages.cannot_pay(verdict, CostLedger())
    assert "too short to risk a surrogate" in message
    assert f"{verdict.plain_run_seconds:.1f} s" in message and "cost_gate=False" in message
