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
from surrogate_hmc.core.recent_jit import RECENT_KEPT, RecentJit, RecentPrograms, Structure


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
    prior = model_closure(0)
    first = compiled.surrogate_nuts(Surrogate(jnp.asarray(1.0), prior))
    refit = compiled.surrogate_nuts(Surrogate(jnp.asarray(2.0), prior))
    key = (compiled._nuts_step, Structure.split(Surrogate(jnp.asarray(3.0), prior))[0], 10)
    assert first.step is not refit.step  # each surrogate has its own weights
    programs = [p for k, p in compiled._PROGRAMS._programs.items() if k[:3] == key]
    assert len(programs) == 1


def test_recent_programs_drop_the_least_recently_used():
    programs = RecentPrograms(kept=2)
    built = []
    for key in ["a", "b", "a", "c", "a", "b"]:
        programs.get(key, functools.partial(built.append, key))
    assert built == ["a", "b", "c", "b"]


def test_lowering_shares_the_program_of_the_call():
    wrapped = RecentJit(lambda q, power: q**power)
    compiled_program = wrapped.lower(jnp.ones(2), 2).compile()
    assert float(compiled_program([jnp.full(2, 3.0)])[0]) == pytest.approx(9.0)
    assert len(wrapped._programs) == 1
    wrapped(jnp.ones(2), 2)
    assert len(wrapped._programs) == 1
