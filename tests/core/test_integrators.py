import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogate_hmc  # noqa: F401  (enables 64-bit JAX)
from surrogate_hmc.core import leapfrog


def wrong_force(q):
    """A smooth, position-only force that is *not* the gradient of any Gaussian we sample."""
    return -1.7 * q + 0.3 * jnp.sin(3.0 * q[::-1])


@pytest.mark.parametrize("n_steps", [1, 7, 40])
def test_surrogate_leapfrog_is_reversible(n_steps):
    key_q, key_p = jax.random.split(jax.random.key(0))
    q0 = jax.random.normal(key_q, (5,))
    p0 = jax.random.normal(key_p, (5,))
    inverse_mass = jnp.linspace(0.5, 2.0, 5)
    q1, p1 = leapfrog(wrong_force, q0, p0, 0.13, inverse_mass, n_steps)
    q2, p2 = leapfrog(wrong_force, q1, -p1, 0.13, inverse_mass, n_steps)
    assert not np.allclose(q1, q0)
    np.testing.assert_allclose(q2, q0, atol=1e-12)
    np.testing.assert_allclose(-p2, p0, atol=1e-12)


def test_leapfrog_preserves_volume():
    def flow(z):
        q, p = leapfrog(wrong_force, z[:3], z[3:], 0.2, jnp.ones(3), 9)
        return jnp.concatenate([q, p])

    z = jax.random.normal(jax.random.key(1), (6,))
    assert abs(float(jnp.linalg.det(jax.jacfwd(flow)(z))) - 1.0) < 1e-10


def test_energy_error_shrinks_with_the_step_size_squared():
    def energy(q, p):
        return 0.5 * q @ q + 0.5 * p @ p

    q0, p0 = jnp.array([1.0, -0.5]), jnp.array([0.3, 0.8])
    errors = []
    for step_size in (0.1, 0.05):
        n = round(2.0 / step_size)
        q, p = leapfrog(lambda q: -q, q0, p0, step_size, jnp.ones(2), n)
        errors.append(abs(float(energy(q, p) - energy(q0, p0))))
    assert 3.0 < errors[0] / errors[1] < 5.0
