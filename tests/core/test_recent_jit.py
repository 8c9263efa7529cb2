"""Compiled programs of models sampled earlier are freed: a long process does not pile them up.

Each check holds a weak reference to a model-specific static argument (a closure, or a module's
static field); once more models than the kept number have been compiled, the first must be
gone, which means no cache, ours or JAX's, still holds its program. The negative control is a
module-level ``jax.jit`` with a static argument, which keeps every one.
"""

import functools
import gc
import weakref

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from surrogate_hmc.core import compiled
from surrogate_hmc.core.recent_jit import RECENT_KEPT, RecentJit, RecentPrograms


def model_closure(i: int):
    """A log-density new to every model, as a PyMC model's JAX function is."""
    scale = float(i + 1)

    def logdensity(q):
        return -0.5 * jnp.sum((q / scale) ** 2)

    return logdensity


class Surrogate(eqx.Module):
    weight: jax.Array
    prior: object = eqx.field(static=True)

    def __call__(self, q):
        return self.weight * self.prior(q)


def evaluate(fn, logdensity):
    return float(fn(logdensity, jnp.ones(3)))


def first_survives(compile_models, models: int) -> bool:
    first = model_closure(0)
    alive = weakref.ref(first)
    compile_models(first)
    del first
    for i in range(1, models):
        compile_models(model_closure(i))
    gc.collect()
    return alive() is not None


def test_a_recent_jit_frees_the_programs_of_models_beyond_the_kept_ones():
    wrapped = RecentJit(lambda logdensity, q: logdensity(q), kept=3)
    assert not first_survives(lambda logdensity: evaluate(wrapped, logdensity), models=5)
    assert len(wrapped._programs) == 3


def test_a_module_level_jit_keeps_them_all_the_negative_control():
    keeping = jax.jit(lambda logdensity, q: logdensity(q), static_argnums=0)
    assert first_survives(lambda logdensity: evaluate(keeping, logdensity), models=5)


def test_the_surrogate_kernels_free_the_programs_of_earlier_models():
    def compile_models(prior):
        surrogate = Surrogate(jnp.asarray(1.0), prior)
        nuts = compiled.surrogate_nuts(surrogate)
        nuts.step(0, nuts.init(jnp.zeros(3)), 0.5, jnp.ones(3))
        compiled.values_and_gradients(surrogate, jnp.ones((2, 3)))

    assert not first_survives(compile_models, models=RECENT_KEPT + 1)


def test_a_refitted_surrogate_reuses_its_compiled_programs():
    traces = []

    def prior(q):
        traces.append(None)  # runs when JAX traces, not when a compiled program runs
        return -0.5 * jnp.sum(q**2)

    for weight in (1.0, 2.0):  # a fit, then a refit: new weights, the same structure
        nuts = compiled.surrogate_nuts(Surrogate(jnp.asarray(weight), prior))
        nuts.step(0, nuts.init(jnp.zeros(3)), 0.5, jnp.ones(3))
        if weight == 1.0:
            traced_by_the_fit = len(traces)
    assert traced_by_the_fit > 0
    assert len(traces) == traced_by_the_fit


def test_recent_programs_drop_the_least_recently_used():
    programs = RecentPrograms(kept=2)
    built = []
    for key in ["a", "b", "a", "c", "a", "b"]:
        programs.get(key, functools.partial(built.append, key))
    assert built == ["a", "b", "c", "b"]


def counting(traces):
    def power(q, exponent, offset=0.0):
        traces.append(None)
        return q**exponent + offset

    return power


def test_lowering_shares_the_program_of_the_call():
    traces = []
    wrapped = RecentJit(counting(traces))
    compiled_program = wrapped.lower(jnp.ones(2), 2).compile()
    three = 3.0 * jnp.ones(2)  # as jnp.ones(2): not weakly typed, unlike jnp.full(2, 3.0)
    assert float(compiled_program([three])[0]) == pytest.approx(9.0)
    assert len(traces) == 1
    assert float(wrapped(three, 2)[0]) == pytest.approx(9.0)
    assert len(traces) == 1  # the call found the lowered program: not traced again


def test_arguments_left_to_their_defaults_share_the_program_of_those_given():
    traces = []
    wrapped = RecentJit(counting(traces))
    wrapped(jnp.ones(2), 2)
    wrapped(jnp.ones(2), 2, 0.0)
    wrapped(jnp.ones(2), exponent=2, offset=0.0)
    assert len(traces) == 1
    wrapped(jnp.ones(2), 2, 1.0)  # the negative control: another static value
    assert len(traces) == 2
