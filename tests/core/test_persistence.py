"""Modules as arrays and back; archives; a TrainedSurrogate that records its network truly."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogate_hmc  # noqa: F401  (enables 64-bit JAX)
from surrogate_hmc.core.cost_network import build_cost_network
from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP
from surrogate_hmc.core.persistence import (
    module_arrays,
    module_from_arrays,
    numbered_arrays,
    read_archive,
    write_archive,
)
from surrogate_hmc.core.structure import StructuredNetwork, Whitening
from surrogate_hmc.core.surrogate import GradientSurrogate, LogDensitySurrogate
from surrogate_hmc.core.trained import TrainedSurrogate

DIM = 3


def standardized_mlp(network: NetworkConfig, out: int, seed: int = 0) -> StandardizedMLP:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, DIM))
    return StandardizedMLP(
        network.build(DIM, out, key=jax.random.key(seed)),
        Standardization.fit(x),
        Standardization.fit(rng.normal(size=(50, out))),
        rng.uniform(1.0, 3.0, size=DIM),
    )


def structured_network(network: NetworkConfig, seed: int = 0) -> StructuredNetwork:
    # A log-density network with a whitening, radius, reach, base and offset not at defaults.
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(50, DIM)) @ rng.normal(size=(DIM, DIM))
    square = rng.normal(size=(DIM, DIM))
    return StructuredNetwork(
        network.build(DIM, 1, key=jax.random.key(seed)),
        Whitening.fit(positions),
        rng.uniform(1.0, 3.0, size=DIM),
        np.asarray(2.5),
        rng.normal(size=DIM),
        square @ square.T,
        rng.normal(size=1),
    )


def test_a_cost_network_round_trips_through_its_arrays():
    def build(seed):
        return build_cost_network(
            2, (10, 2), True, NetworkConfig(width=8), 4, key=jax.random.key(seed), scale=3.0
        )

    original, skeleton = build(0), build(1)
    arrays = module_arrays(original)
    assert all(isinstance(a, np.ndarray) for a in arrays)
    restored = module_from_arrays(skeleton, arrays, "a cost network")
    theta, x = jnp.array([0.3, -0.2]), jnp.ones((10, 2))
    assert float(restored(theta, x)) == float(original(theta, x)) != float(skeleton(theta, x))
    for saved, back in zip(arrays, module_arrays(restored), strict=True):
        np.testing.assert_array_equal(saved, back)


@pytest.mark.parametrize(
    "damage",
    [
        lambda arrays: arrays[:-1],
        lambda arrays: (*arrays, np.zeros(2)),
        lambda arrays: (np.zeros((5, 5)), *arrays[1:]),
    ],
    ids=["missing", "extra", "reshaped"],
)
def test_arrays_that_do_not_fit_the_skeleton_are_refused(damage):
    mlp = standardized_mlp(NetworkConfig(width=8), 1)
    with pytest.raises(ValueError, match="do not fit a test network: the file is damaged or was"):
        module_from_arrays(mlp, damage(module_arrays(mlp)), "a test network")


def test_archives_round_trip_and_refuse_foreign_files(tmp_path):
    arrays = {"array_001": np.ones(2), "array_000": np.arange(3), "extra": np.zeros(1)}
    path = write_archive(tmp_path / "a.npz", {"format": "demo/1", "n": 3}, arrays)
    metadata, read = read_archive(path, "demo/1", "demo")
    assert metadata == {"format": "demo/1", "n": 3}
    assert [a.tolist() for a in numbered_arrays(read)] == [[0, 1, 2], [1.0, 1.0]]
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind
    name = re.escape(repr(str(path)))
    with pytest.raises(ValueError, match=f"{name} is not a demo saved by surrogate-hmc: it was"):
        read_archive(path, "other/1", "demo")
    with pytest.raises(ValueError, match=f"{name} is a demo written by an older surrogate-hmc"):
        read_archive(path, "demo/2", "demo", recreate="make it again")
    with pytest.raises(ValueError, match="must be re-created: make it again"):
        read_archive(path, "demo/2", "demo", recreate="make it again")
    with pytest.raises(ValueError, match=f"{name} is a demo written by a newer surrogate-hmc"):
        read_archive(path, "demo/0", "demo")
    (tmp_path / "b.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="is not a demo saved by surrogate-hmc: it is not a"):
        read_archive(tmp_path / "b.npz", "demo/1", "demo")
    with pytest.raises(FileNotFoundError, match="No saved demo"):
        read_archive(tmp_path / "c.npz", "demo/1", "demo")


@pytest.mark.parametrize(
    "change",
    [
        lambda metadata, arrays: metadata.update(n=4),
        lambda metadata, arrays: arrays.update(x=np.arange(3.0)),
        lambda metadata, arrays: arrays.update(x=np.arange(3).reshape(3, 1)),
        lambda metadata, arrays: arrays.update(y=np.zeros(0)),
        lambda metadata, arrays: arrays.pop("x"),
    ],
    ids=["metadata", "dtype", "shape", "extra array", "missing array"],
)
def test_the_checksum_covers_metadata_and_every_array(tmp_path, change):
    path = write_archive(tmp_path / "a.npz", {"format": "demo/1", "n": 3}, {"x": np.arange(3)})
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    metadata = json.loads(str(arrays.pop("metadata")))
    change(metadata, arrays)
    np.savez(path, metadata=np.asarray(json.dumps(metadata)), **arrays)
    with pytest.raises(ValueError, match="its contents do not match their checksum"):
        read_archive(path, "demo/1", "demo")


def test_names_the_checksum_needs_are_reserved(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        write_archive(tmp_path / "a.npz", {"format": "demo/1", "checksum": "0"}, {})


def trained(surrogate, network: NetworkConfig) -> TrainedSurrogate:
    return TrainedSurrogate.from_surrogate(
        surrogate, variables=[("x", (DIM,))], network=network, step_size=0.3,
        inverse_mass=np.ones(DIM),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("surrogate_class", "make_network"),
    [
        (GradientSurrogate, lambda network: standardized_mlp(network, DIM)),
        (LogDensitySurrogate, structured_network),
    ],
    ids=["gradient", "logp"],
)
def test_a_trained_surrogate_saves_and_loads_the_same_function(
    tmp_path, surrogate_class, make_network
):
    network = NetworkConfig(width=8, depth=1, activation="tanh")
    surrogate = surrogate_class(make_network(network))
    loaded = TrainedSurrogate.load(trained(surrogate, network).save(tmp_path / "surrogate"))
    assert loaded.kind == surrogate.kind and loaded.network == network
    rebuilt = loaded.build()
    assert type(rebuilt) is surrogate_class
    q = jnp.array([0.1, -0.4, 2.0])
    np.testing.assert_array_equal(rebuilt.force(q), surrogate.force(q))
    if surrogate.has_logdensity:  # the offset too, which the force does not show
        assert float(rebuilt.logdensity(q)) == float(surrogate.logdensity(q))


@pytest.mark.parametrize(
    "recorded",
    [
        NetworkConfig(width=16, depth=2),
        NetworkConfig(width=8, depth=3),
        NetworkConfig(width=8, depth=2, activation="tanh"),
    ],
    ids=["width", "depth", "activation"],
)
def test_a_network_config_that_does_not_describe_the_network_is_refused(recorded):
    surrogate = LogDensitySurrogate(structured_network(NetworkConfig(width=8, depth=2)))
    with pytest.raises(ValueError, match="The surrogate's network is not a NetworkConfig"):
        trained(surrogate, recorded)


def test_variables_that_do_not_match_the_network_are_refused():
    network = NetworkConfig(width=8)
    surrogate = GradientSurrogate(standardized_mlp(network, DIM))
    with pytest.raises(ValueError, match="for dimension 2: pass the NetworkConfig"):
        TrainedSurrogate.from_surrogate(
            surrogate, variables=[("x", (2,))], network=network, step_size=0.3,
            inverse_mass=np.ones(2),
        )  # fmt: skip
