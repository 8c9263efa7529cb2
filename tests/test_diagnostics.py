"""plot_diagnostics: the plotted data are the trace's stats; the surrogate_error stat is right.

What plot_diagnostics refuses: tests/bad_input/test_diagnostics.py.
"""

from types import SimpleNamespace

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.transition import HMCState, static_hmc_transition
from tests.ace.simulators import linear_model
from tests.helpers import posterior_array
from tests.step_methods import models

mpl.use("Agg")

QUIET = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}
SMALL = {
    "network": shmc.NetworkConfig(width=32),
    "training": shmc.TrainingConfig(max_steps=500),
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def nuts_run():
    """NUTS on a log-density surrogate, 2 chains, tuning kept; the network learns all of logp."""
    model, *_ = models.banana()
    with model:
        step = shmc.SurrogateHMC(
            surrogate="logp", exact_prior=False, schedule=shmc.Schedule(start=60, every=30),
            cost_gate=False, **SMALL,
        )  # fmt: skip
        idata = pm.sample(
            step=step, tune=200, draws=150, chains=2, random_seed=1,
            discard_tuned_samples=False, **QUIET,
        )  # fmt: skip
    return model, step, idata


@pytest.fixture(scope="module")
def static_run():
    """Static trajectories on a gradient surrogate, 1 chain, tuning discarded."""
    model, *_ = models.banana()
    with model:
        step = shmc.SurrogateHMC(
            surrogate="gradient", schedule=shmc.Schedule(start=40, every=30),
            switch_test=shmc.SwitchTest(max_validation_error=np.inf), cost_gate=False, **SMALL,
        )  # fmt: skip
        idata = pm.sample(step=step, tune=150, draws=100, chains=1, random_seed=2, **QUIET)
    return model, step, idata


def stats(idata, name, warmup=True) -> np.ndarray:
    """A stat as (chain, iteration), tuning first when the trace kept it."""
    draws = np.asarray(idata["sample_stats"][name])
    try:
        tuning = np.asarray(idata["warmup_sample_stats"][name])
    except KeyError:
        return draws
    return np.concatenate([tuning, draws], axis=1) if warmup else draws


def by_gid_all(figure, gid):
    return [
        artist
        for axes in figure.axes
        for artist in [*axes.lines, *axes.collections]
        if artist.get_gid() == gid
    ]


def by_gid(figure, gid):
    found = by_gid_all(figure, gid)
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def axes_titled(figure, start):
    (axes,) = [a for a in figure.axes if a.get_title(loc="left").startswith(start)]
    return axes


def panel_text(axes) -> str:
    texts = [t.get_text() for t in axes.texts]
    legend = axes.get_legend()
    if legend is not None:
        texts += [legend.get_title().get_text(), *(t.get_text() for t in legend.get_texts())]
    return " ".join([*texts, axes.get_xlabel()])


# -- the new stat ---------------------------------------------------------------------------------


def test_surrogate_error_is_the_delayed_acceptance_log_ratio(nuts_run):
    _, step, idata = nuts_run
    phase, error = stats(idata, "phase"), stats(idata, "surrogate_error")
    n_logp = stats(idata, "n_exact_logp")
    assert np.all(np.isnan(error[phase == 0])), "an error without a surrogate proposal"
    surrogate = phase == 1
    assert surrogate.any() and np.all(n_logp[surrogate] <= 1)
    np.testing.assert_array_equal(np.isfinite(error[surrogate]), n_logp[surrogate] == 1)
    assert np.any(n_logp[surrogate] == 0), "NUTS never stayed put: the nan case is untested"

    # Recompute [logp(q') - logp(q)] - [s(q') - s(q)] at the draws that moved, on the last
    # chain, whose frozen surrogate the step returns.
    surrogate = step.trained_surrogate.build()
    x = posterior_array(idata, ["x"])[-1]
    lp = np.asarray(idata["sample_stats"]["lp"])[-1]
    draw_error = np.asarray(idata["sample_stats"]["surrogate_error"])[-1]
    moved = np.flatnonzero(np.any(x[1:] != x[:-1], axis=1)) + 1
    assert moved.size > 50
    s = np.array([float(surrogate.logdensity(q)) for q in x])
    expected = (lp[moved] - lp[moved - 1]) - (s[moved] - s[moved - 1])
    np.testing.assert_allclose(draw_error[moved], expected, rtol=1e-6, atol=1e-9)
    # The second-stage acceptance is exp(min(0, error)) wherever the exact model was asked.
    second = np.asarray(idata["sample_stats"]["second_stage_acceptance"])[-1]
    checked = np.isfinite(draw_error)
    np.testing.assert_allclose(second[checked], np.exp(np.minimum(draw_error[checked], 0.0)))


def test_surrogate_error_of_static_trajectories_is_minus_the_exact_energy_error(static_run):
    _, _, idata = static_run
    phase, error = stats(idata, "phase"), stats(idata, "surrogate_error")
    assert np.all(phase == 1), "the static run did not switch during tuning"
    np.testing.assert_array_equal(~np.isnan(error), stats(idata, "n_exact_logp") == 1)
    x = posterior_array(idata, ["x"])[0]
    moved = np.flatnonzero(np.any(x[1:] != x[:-1], axis=1)) + 1
    assert moved.size > 15
    # An accepted proposal's energy error is the proposal's.
    np.testing.assert_allclose(error[0, moved], -stats(idata, "energy_error")[0, moved])
    checked = ~np.isnan(error[0])
    acceptance = stats(idata, "acceptance_rate")[0, checked]
    np.testing.assert_allclose(acceptance, np.exp(np.minimum(error[0, checked], 0.0)))


def test_a_trajectory_to_a_non_finite_point_evaluates_nothing_exact():
    calls = []

    def exact(q):
        calls.append(q)
        return -0.5 * float(q @ q)

    _, info = static_hmc_transition(
        np.random.default_rng(0), HMCState(np.zeros(2), 0.0), logdensity_fn=exact,
        trajectory_fn=lambda q, p, eps, n: (np.full(2, np.nan), p),
        step_size=0.1, inverse_mass=np.ones(2), n_steps=3,
    )  # fmt: skip
    assert info.n_exact_logp == 0 and not calls and info.diverging
    _, info = static_hmc_transition(
        np.random.default_rng(0), HMCState(np.zeros(2), 0.0), logdensity_fn=exact,
        trajectory_fn=lambda q, p, eps, n: (q + 0.1, p), step_size=0.1, inverse_mass=np.ones(2),
        n_steps=3,
    )  # fmt: skip
    assert info.n_exact_logp == 1 and len(calls) == 1


# -- the figure: what is plotted is what the trace says --------------------------------------------


def test_panels_plot_the_trace_stats(nuts_run):
    _, step, idata = nuts_run
    figure = shmc.plot_diagnostics(idata, step)
    assert len(figure.axes) == 5
    phase = stats(idata, "phase")
    n_tune = np.asarray(idata["warmup_sample_stats"]["phase"]).shape[1]
    assert phase.shape == (2, n_tune + 150)
    for chain in (0, 1):
        # The phase bars cover each chain's exact and surrogate iterations, tuning included.
        for value, name in ((0, "exact"), (1, "surrogate")):
            bars = by_gid(figure, f"phase-{name}-chain-{chain}")
            covered = np.zeros(phase.shape[1], bool)
            for path in bars.get_paths():
                lo, hi = path.vertices[:, 0].min(), path.vertices[:, 0].max()
                covered[int(np.ceil(lo)) : int(np.floor(hi)) + 1] = True
            np.testing.assert_array_equal(covered, phase[chain] == value)
        np.testing.assert_array_equal(
            by_gid(figure, f"surrogate-error-chain-{chain}").get_ydata(),
            stats(idata, "surrogate_error")[chain],
        )
        for name in ("n_exact_grad", "n_exact_logp"):
            np.testing.assert_array_equal(
                by_gid(figure, f"{name}-chain-{chain}").get_ydata(), stats(idata, name)[chain]
            )
        milliseconds = 1e3 * stats(idata, "perf_counter_diff")[chain]
        exact = by_gid(figure, f"time-exact-chain-{chain}").get_ydata()
        surrogate = by_gid(figure, f"time-surrogate-chain-{chain}").get_ydata()
        np.testing.assert_array_equal(np.isnan(exact), phase[chain] == 1)
        np.testing.assert_allclose(np.where(phase[chain] == 0, exact, surrogate), milliseconds)
    evaluations = panel_text(axes_titled(figure, "Exact evaluations"))
    assert f"{int(stats(idata, 'n_exact_grad').sum()):,} in all" in evaluations


def test_loss_curves_are_the_trainings_of_the_last_chain(nuts_run):
    _, step, idata = nuts_run
    figure = shmc.plot_diagnostics(idata, step)
    trained = [r for r in step.training_history if r.train_losses.size]
    assert trained and any(r.switched for r in trained)
    loss = axes_titled(figure, "Training and validation loss")
    train = [line for line in loss.lines if line.get_gid() == "train-loss"]
    validation = [line for line in loss.lines if line.get_gid() == "validation-loss"]
    assert len(train) == len(validation) == len(trained)
    for line, record in zip(train, trained, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), record.train_losses)
        steps = record.steps_per_loss * np.arange(1, record.train_losses.size + 1)
        np.testing.assert_array_equal(line.get_xdata(), steps)
    for line, record in zip(validation, trained, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), record.validation_losses)
    # The switch test's threshold is an error; the losses are squared errors.
    thresholds = {r.max_validation_error**2 for r in trained if np.isfinite(r.max_validation_error)}
    drawn = {line.get_ydata()[0] for line in loss.lines if line.get_linestyle() == ":"}
    assert drawn == thresholds
    assert "chain 1" in panel_text(loss)
    # The trainings are marked on each chain's row, where the pilot starts right after; the
    # last chain's are the step's.
    marks = {m.get_ydata()[0] + 0.5: m for m in by_gid_all(figure, "training-switched")}
    assert sorted(marks) == [0, 1]
    np.testing.assert_array_equal(
        marks[1].get_xdata(), [r.iteration for r in step.training_history if r.switched]
    )
    for row, mark in marks.items():
        assert np.all(stats(idata, "phase")[int(row), np.asarray(mark.get_xdata()) + 1] == 1)
    # Each training's outcome is in the legend.
    for record in trained:
        assert f"iteration {record.iteration}, " in panel_text(loss)
        assert record.outcome in panel_text(loss)


def test_any_step_with_a_training_history_will_do(nuts_run):
    """The step methods are not imported: the figure reads the step's training_history."""
    _, step, idata = nuts_run
    stand_in = SimpleNamespace(training_history=step.training_history)
    figure = shmc.plot_diagnostics(idata, stand_in, panels=["phases", "loss"])
    own = shmc.plot_diagnostics(idata, step, panels=["phases", "loss"])
    for gid in ("training-switched", "train-loss"):
        assert len(by_gid_all(figure, gid)) == len(by_gid_all(own, gid))


def test_chains_panels_and_axes_options(nuts_run):
    _, step, idata = nuts_run
    figure = shmc.plot_diagnostics(idata, chains=1, panels=("error", "phases"), figsize=(6, 4))
    assert [a.get_title(loc="left") for a in figure.axes] == [
        "Surrogate vs exact at the proposals",
        "Phase per chain",
    ]
    assert tuple(figure.get_size_inches()) == (6, 4)
    np.testing.assert_array_equal(
        by_gid(figure, "surrogate-error-chain-1").get_ydata(),
        stats(idata, "surrogate_error")[1],
    )
    assert not [a for a in figure.axes[0].lines if a.get_gid() == "surrogate-error-chain-0"]

    own, axes = plt.subplots(1, 2)
    assert shmc.plot_diagnostics(idata, step, panels=["loss", "time"], ax=axes) is own
    assert axes[0].get_title(loc="left") == "Training and validation loss"
    single, ax = plt.subplots()
    assert shmc.plot_diagnostics(idata, panels="evaluations", ax=ax) is single
    # Chain 0 alone: its trainings come from the trace (the step holds the last chain's).
    figure = shmc.plot_diagnostics(idata, step, chains=[0], panels=["phases"])
    switched = [r.iteration for r in shmc.decisions(idata)[0].records if r.switched]
    np.testing.assert_array_equal(by_gid(figure, "training-switched").get_xdata(), switched)
    # In any order, each chain's trainings are marked on its own row.
    figure = shmc.plot_diagnostics(idata, step, chains=[1, 0], panels=["phases"])
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["chain 1", "chain 0"]
    rows = sorted(m.get_ydata()[0] for m in by_gid_all(figure, "training-switched"))
    assert rows == [-0.5, 0.5]


def test_panels_say_what_is_missing(nuts_run, static_run):
    model, _, idata = nuts_run
    figure = shmc.plot_diagnostics(idata)
    assert "Pass step=" in panel_text(axes_titled(figure, "Training"))
    with model:
        unsampled = shmc.SurrogateHMC(surrogate="logp")  # as in the parent with cores>1
    figure = shmc.plot_diagnostics(idata, unsampled, panels=["loss"])
    assert "cores>1" in panel_text(figure.axes[0])

    _, step, discarded = static_run
    figure = shmc.plot_diagnostics(discarded, step)
    phases = panel_text(axes_titled(figure, "Phase per chain"))
    assert "Tuning was discarded" in phases
    assert f"Trainings during tuning: {len(step.training_history)} in chain 0." in phases
    assert not [line for line in figure.axes[0].lines if line.get_gid()]  # no training marks


def test_ace_trace_has_no_exact_model_to_compare():
    model = linear_model(np.array([0.5, -0.2, 0.4, 0.3]))
    estimator = shmc.CostEstimator.fit(
        model, n_simulations=200, random_seed=0, executor=None, progressbar=False,
        training=shmc.TrainingConfig(max_steps=200),
    )  # fmt: skip
    with model:
        step = shmc.ACE(estimator=estimator, beta=5.0)
        idata = pm.sample(step=step, tune=50, draws=50, chains=1, random_seed=0, **QUIET)
    assert step.training_history == ()
    assert np.all(np.isnan(stats(idata, "surrogate_error")))
    for given in (None, step):
        figure = shmc.plot_diagnostics(idata, given)
        assert "ACE has no exact model" in panel_text(axes_titled(figure, "Surrogate vs exact"))
    loss = axes_titled(figure, "Cost network")
    (train,) = [line for line in loss.lines if line.get_gid() == "train-loss"]
    np.testing.assert_array_equal(train.get_ydata(), estimator.train_losses)
