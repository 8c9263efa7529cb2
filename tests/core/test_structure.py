"""The structured log-density network: whitening, the Gaussian base, the bounded residual."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.structure import StructuredNetwork, Whitening, fit_base, squash
from surrogate_hmc.core.training import TrainingConfig, fit_log_density


def random_covariance(dim, smallest, largest, seed):
    """A dense covariance: log-spaced variances in a random orthogonal basis."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (basis * np.geomspace(smallest, largest, dim)) @ basis.T


def test_fit_base_recovers_a_gaussian_precision_exactly():
    rng = np.random.default_rng(0)
    precision = np.linalg.inv(random_covariance(6, 0.1, 10.0, seed=1))
    h0 = rng.normal(size=6)
    z = rng.normal(size=(200, 6))
    gradients = h0 - z @ precision
    z[3, 0] = np.nan  # rows with a non-finite position or gradient are left out
    gradients[7, 2] = np.inf
    fitted_h0, fitted = fit_base(z, gradients)
    np.testing.assert_allclose(fitted, precision, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fitted_h0, h0, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fitted, fitted.T, rtol=0, atol=1e-14)


def test_the_base_is_never_convex():
    """A saddle's negative curvature is clipped to 0; the positive part is kept."""
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    eigenvalues = np.array([3.0, 1.0, -0.5, -2.0])
    slope = (basis * eigenvalues) @ basis.T
    z = rng.normal(size=(100, 4))
    _, curvature = fit_base(z, 0.5 - z @ slope)
    assert np.linalg.eigvalsh(curvature).min() > -1e-10
    np.testing.assert_allclose(curvature, (basis * np.maximum(eigenvalues, 0)) @ basis.T, atol=1e-8)
    # A convex bowl everywhere becomes flat: the base never pushes trajectories away.
    _, curvature = fit_base(z, z @ np.diag([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(curvature, 0.0, atol=1e-10)


def test_whitening_decorrelates_despite_far_points():
    rng = np.random.default_rng(2)
    covariance = random_covariance(5, 1e-2, 1e2, seed=3)
    mean = np.arange(5.0)
    q = mean + rng.normal(size=(2000, 5)) @ np.linalg.cholesky(covariance).T
    far = np.vstack([q, mean + 1e3 * rng.normal(size=(60, 5))])  # early-tuning stragglers
    whitening = Whitening.fit(far)
    z = np.asarray(jax.vmap(whitening.apply)(q))
    z_covariance = np.cov(z, rowvar=False)
    # The central 90% set the units, so the whole sample is a little wider than 1 in every
    # direction, and the same in all of them.
    scales = np.sqrt(np.diag(z_covariance))
    assert np.all((scales > 1.0) & (scales < 1.5)), scales
    assert scales.max() / scales.min() < 1.12, scales
    correlation = z_covariance / np.outer(scales, scales)
    assert np.max(np.abs(correlation - np.eye(5))) < 0.08, correlation
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.1)


def test_whitening_pulls_gradients_back_by_the_chain_rule():
    q = np.random.default_rng(4).normal(size=(300, 3)) @ np.array(
        [[2.0, 0.0, 0.0], [1.0, 0.3, 0.0], [0.0, -1.0, 5.0]]
    )
    whitening = Whitening.fit(q)
    inverse = np.linalg.inv(np.asarray(whitening.transform))
    a = np.array([1.0, -2.0, 0.5])

    def f_of_z(z):  # f(q) = sum(sin(a * q)) with q = mean + T^-1 z
        return jnp.sum(jnp.sin(a * (whitening.mean + inverse @ z)))

    z = np.array([0.3, -1.0, 0.7])
    q_at = np.asarray(whitening.mean) + inverse @ z
    np.testing.assert_allclose(
        whitening.pullback(a * np.cos(a * q_at)[None])[0], jax.grad(f_of_z)(z), rtol=1e-10
    )


def test_squash_is_bounded_odd_monotone_and_near_the_identity_inside():
    radius = jnp.array([0.5, 2.0, 40.0])
    z = np.linspace(-1e6, 1e6, 200_001)[:, None] * np.ones(3)
    squashed = np.asarray(jax.vmap(squash, in_axes=(0, None))(jnp.asarray(z), radius))
    assert np.all(np.abs(squashed) <= np.asarray(radius) * (1 + 1e-12))
    np.testing.assert_allclose(squashed, -squashed[::-1], atol=1e-12)
    assert np.all(np.diff(squashed, axis=0) >= -1e-12 * np.asarray(radius))  # rounding only
    np.testing.assert_allclose(np.abs(squashed[0]), radius, rtol=1e-12)
    inside = np.linspace(-1, 1, 101)[:, None] * np.asarray(radius) / 3
    near = np.asarray(jax.vmap(squash, in_axes=(0, None))(jnp.asarray(inside), radius))
    np.testing.assert_allclose(near, inside, rtol=0.004)  # (1/3)^4 / 4 at the edge


def gaussian_sample(dim, n, seed):
    """Draws from a fixed correlated Gaussian (condition number 1e4), with its log-density."""
    covariance = random_covariance(dim, 1e-2, 1e2, seed=0)
    precision = np.linalg.inv(covariance)
    mean = np.linspace(-1.0, 2.0, dim)
    rng = np.random.default_rng(seed)
    q = mean + rng.normal(size=(n, dim)) @ np.linalg.cholesky(covariance).T
    d = q - mean
    return q, -0.5 * np.einsum("ni,ij,nj->n", d, precision, d), -d @ precision, precision


def test_a_correlated_30d_gaussian_is_learned_by_a_small_network():
    q, values, gradients, precision = gaussian_sample(30, 600, seed=1)
    result = fit_log_density(
        q, values, gradients, network=NetworkConfig(width=16),
        training=TrainingConfig(max_steps=300), key=jax.random.key(0),
    )  # fmt: skip
    # Over the validation split's randomness (keys 0-7) the error was 0.004-0.014.
    assert result.validation_error < 0.02
    net = result.network
    # The base alone is the Gaussian: its curvature, mapped back to q, is the precision.
    transform = np.asarray(net.inputs.transform)
    np.testing.assert_allclose(
        transform.T @ np.asarray(net.curvature) @ transform, precision, rtol=1e-5, atol=1e-6
    )
    # Differences of log-density (what a sampler uses) are right at new points within the
    # base's reach; at points three times as far from the centre as the data the base falls
    # linearly, not quadratically: it is above the truth there (it never confines), and it
    # still falls (it keeps trajectories near the data).
    new_q, new_values, *_ = gaussian_sample(30, 100, seed=2)
    centre = q.mean(axis=0)
    far_q = centre + 3 * (new_q[:20] - centre)
    d = far_q - np.linspace(-1.0, 2.0, 30)
    far_values = -0.5 * np.einsum("ni,ij,nj->n", d, precision, d)
    learned = np.array(jax.vmap(net)(np.vstack([new_q, far_q])))[:, 0]
    learned -= learned[0]
    within = np.linalg.norm(np.asarray(jax.vmap(net.inputs.apply)(new_q)), axis=1) < net.reach
    assert within[0] and within.mean() > 0.9
    near_error = (learned[:100] - (new_values - new_values[0]))[within]
    far_error = learned[100:] - (far_values - new_values[0])
    assert np.max(np.abs(near_error)) < 0.02, near_error
    assert np.min(far_error) > 0, far_error
    assert np.max(learned[100:]) < np.min(learned[:100][within]), "the base does not fall"
    assert np.min(np.abs(far_values)) > 50, "the far points are not far"


def test_the_residual_is_flat_far_outside_the_data():
    """A non-Gaussian target leaves the MLP something to learn; it is constant far away."""
    rng = np.random.default_rng(6)
    q = rng.normal(size=(800, 3))
    values = -0.5 * np.sum(q**2, axis=1) - 0.3 * q[:, 0] ** 4 + np.sin(2 * q[:, 1])
    gradients = -q
    gradients[:, 0] -= 1.2 * q[:, 0] ** 3
    gradients[:, 1] += 2 * np.cos(2 * q[:, 1])
    result = fit_log_density(
        q, values, gradients, network=NetworkConfig(width=32),
        training=TrainingConfig(max_steps=1000), key=jax.random.key(1),
    )  # fmt: skip
    net = result.network
    residual = jax.jit(lambda z: net.residual(z)[0])
    z_data = np.asarray(jax.vmap(net.inputs.apply)(q))
    inside = np.array([residual(z) for z in z_data[:200]])
    assert np.ptp(inside) > 0.5, "the residual learned nothing: the test would be empty"
    radius = np.asarray(net.radius)
    for i in range(3):
        for sign in (-1.0, 1.0):
            direction = sign * np.eye(3)[i] * radius
            near, far = residual(10 * direction), residual(1e3 * direction)
            assert abs(far - near) < 1e-3 * np.ptp(inside), (i, sign, near, far)
            slope = np.asarray(jax.grad(residual)(1e3 * direction))[i]
            assert abs(slope) < 1e-8, slope
    # The whole network is its base out there: a concave quadratic, no invented wall.
    far_point = np.asarray(net.inputs.mean) + 1e3 * np.linalg.solve(
        np.asarray(net.inputs.transform), radius * np.eye(3)[0]
    )
    z_far = np.asarray(net.inputs.apply(far_point))
    expected = net.offset[0] + net.base(z_far) + residual(z_far)
    np.testing.assert_allclose(net(far_point)[0], expected, rtol=1e-12)


def test_a_built_network_is_zero_base_identity_whitening():
    net = StructuredNetwork.build(NetworkConfig(width=4), 3, key=jax.random.key(0))
    zero_mlp = eqx.tree_at(lambda n: n.mlp.layers[-1].weight, net, jnp.zeros((1, 4)))
    zero_mlp = eqx.tree_at(lambda n: n.mlp.layers[-1].bias, zero_mlp, jnp.zeros(1))
    for q in np.random.default_rng(7).normal(size=(5, 3)):
        assert float(zero_mlp(q)[0]) == 0.0
        np.testing.assert_array_equal(net.inputs.apply(q), q)
