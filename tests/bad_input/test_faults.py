"""Faults around a run: where the surrogate is saved, forked processes, Ctrl-C.

Each case has a defined outcome: a clear error before any sampling, or a warning while the run
goes on and its trace is kept.
"""

import textwrap

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.helpers import run_python

QUICK = shmc.Schedule(start=50, every=50, stop=100)
SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}


def normal_model():
    with pm.Model() as model:
        pm.Normal("x", 1.0, 2.0, shape=2)
    return model


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("missing", r"save_to: the directory '.*no_such_dir' does not exist"),
        ("under_a_file", r"save_to: '.*plain_file' is not a directory"),
        ("a_directory", r"save_to must be the path of a file, but '.*' is a directory"),
        ("unwritable", r"save_to: the directory '/proc' is not writable"),
    ],
)
def test_a_save_to_that_cannot_be_written_is_refused_before_sampling(tmp_path, where, match):
    (tmp_path / "plain_file").write_text("not a directory")
    save_to = {
        "missing": tmp_path / "no_such_dir" / "s.npz",
        "under_a_file": tmp_path / "plain_file" / "s.npz",
        "a_directory": tmp_path,
        "unwritable": "/proc/s.npz",
    }[where]
    with normal_model(), pytest.raises(ValueError, match=match):
        shmc.SurrogateHMC(save_to=save_to)


def test_a_surrogate_that_cannot_be_written_after_tuning_is_a_warning_and_the_trace_is_kept(
    tmp_path,
):
    directory = tmp_path / "gone"
    directory.mkdir()
    with normal_model():
        step = shmc.SurrogateHMC(
            surrogate="logp", schedule=QUICK, save_to=directory / "s.npz", cost_gate=False
        )
        directory.rmdir()  # removed while sampling runs
        with pytest.warns(
            shmc.SurrogateWarning, match=r"Could not save the surrogate to '.*s\.npz'"
        ):
            idata = pm.sample(step=step, tune=200, draws=100, chains=1, random_seed=1, **SAMPLE)
    assert np.asarray(idata["posterior"]["x"]).shape == (1, 100, 2)
    assert step.trained_surrogate is not None, "the surrogate can still be saved by hand"


FORK_AFTER_JAX = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, pymc as pm, surrogate_hmc as shmc
    jax.jit(lambda x: x + 1)(jnp.ones(2)).block_until_ready()  # the user's own JAX code
    iterations = []  # every iteration the parent receives, tuning included
    with pm.Model():
        pm.Normal("x", shape=2)
        try:
            step = shmc.SurrogateHMC(schedule=shmc.Schedule(start=20, stop=20), cost_gate=False)
            pm.sample(step=step, tune=100, draws=10, chains=2, cores=2,
                      progressbar=False, compute_convergence_checks=False,
                      callback=lambda trace, draw: iterations.append(draw))
        except Exception as error:
            print("error:", error)
        else:
            print("sampled")
    print("iterations before the error:", len(iterations))
    """
)


def test_chains_forked_after_the_users_jax_fail_before_their_first_iteration():
    output = run_python(FORK_AFTER_JAX, timeout=300, PYTHONWARNINGS="ignore").stdout
    assert output.startswith("error:"), output
    assert "forked from one that had already run JAX" in output
    assert "mp_ctx='forkserver'" in output
    assert "__main__" in output, "the error tells script users the guard forkserver needs"
    assert output.strip().endswith("iterations before the error: 0"), output


REUSED_WITH_FORKSERVER = textwrap.dedent(
    """
    import pymc as pm, surrogate_hmc as shmc
    with pm.Model():
        pm.Normal("x", shape=2)
        step = shmc.SurrogateHMC(schedule=shmc.Schedule(start=20, stop=20), cost_gate=False)
        kwargs = dict(tune=100, draws=10, progressbar=False, compute_convergence_checks=False)
        pm.sample(step=step, chains=1, cores=1, **kwargs)  # JAX runs here, in the parent
        # The step, its JAX arrays included, goes to workers that did not fork from here.
        idata = pm.sample(step=step, chains=2, cores=2, mp_ctx="forkserver", **kwargs)
    print("draws", idata["posterior"]["x"].shape[1])
    """
)


def test_a_used_step_sampled_again_in_forkserver_workers_is_not_refused():
    output = run_python(REUSED_WITH_FORKSERVER, PYTHONWARNINGS="ignore").stdout
    assert output.strip().endswith("draws 10")


SWALLOWED_INTERRUPT = textwrap.dedent(
    """
    import gc, signal, sys, warnings
    import pymc as pm, surrogate_hmc as shmc
    warnings.simplefilter("ignore")
    # Python's own Ctrl-C handler, as in a terminal; a shell that starts background jobs
    # without job control (CI runners do) makes them ignore SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt_inside_a_gc_callback(trace, draw):
        # Ctrl-C landing while the garbage collector runs a callback (JAX registers one):
        # Python prints "Exception ignored" and the KeyboardInterrupt is lost.
        if draw.draw_idx == 60 and draw.chain == 0:
            def callback(phase, info):
                if phase == "start":
                    gc.callbacks.remove(callback)
                    signal.raise_signal(signal.SIGINT)
            gc.callbacks.append(callback)
            gc.collect()

    with pm.Model():
        pm.Normal("x", shape=2)
        step = (pm.NUTS() if sys.argv[1] == "nuts"
                else shmc.SurrogateHMC(schedule=shmc.Schedule(start=20, stop=20)))
        idata = pm.sample(step=step, tune=50, draws=500, chains=1, cores=1, random_seed=1,
                          progressbar=False, compute_convergence_checks=False,
                          callback=interrupt_inside_a_gc_callback)
    print("draws", idata["posterior"]["x"].shape[1])
    """
)


def draws_after_a_swallowed_interrupt(sampler: str) -> int:
    output = run_python(SWALLOWED_INTERRUPT, sampler, timeout=300).stdout
    return int(output.split("draws")[-1])


def test_an_interrupt_swallowed_by_a_gc_callback_still_stops_sampling():
    # PyMC's NUTS loses it (the negative control: the check can fail) ...
    assert draws_after_a_swallowed_interrupt("nuts") == 500
    # ... SurrogateHMC stops at its next step and PyMC returns the partial trace.
    assert draws_after_a_swallowed_interrupt("surrogate") < 100


GIVEN_BEFORE_FORK = textwrap.dedent(
    """
    import sys, pymc as pm, surrogate_hmc as shmc
    from jax._src.xla_bridge import backends_are_initialized
    with pm.Model():
        pm.Normal("x", 1.0, 2.0, shape=2)
        shmc.SurrogateHMC(surrogate=sys.argv[1])
    print("jax started" if backends_are_initialized() else "jax not started")
    """
)


def test_a_given_surrogate_is_checked_without_starting_jax_in_the_parent(tmp_path):
    # Chains forked from the parent can then use JAX (see the fork test above).
    path = tmp_path / "s.npz"
    with normal_model():
        step = shmc.SurrogateHMC(surrogate="logp", schedule=QUICK, save_to=path, cost_gate=False)
        pm.sample(step=step, tune=200, draws=10, chains=1, random_seed=1, **SAMPLE)
    output = run_python(GIVEN_BEFORE_FORK, str(path), timeout=300).stdout
    assert output.strip().endswith("jax not started")
