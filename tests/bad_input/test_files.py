"""Damaged, foreign and altered files are refused when loaded, with the file and the reason.

Each case damages a real saved file in one way; both ``TrainedSurrogate.load`` and
``CostEstimator.load`` must refuse it with an error naming the file and saying what is wrong.
"""

import json
import re
from pathlib import Path

import jax
import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.cost_network import build_cost_network
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.persistence import module_arrays, write_archive
from surrogate_hmc.core.structure import StructuredNetwork, Whitening
from surrogate_hmc.core.surrogate import LogDensitySurrogate

NETWORK = NetworkConfig(width=8)


def saved_surrogate(path: Path) -> Path:
    x = np.random.default_rng(0).normal(size=(50, 2))
    network = StructuredNetwork(
        NETWORK.build(2, 1, key=jax.random.key(0)), Whitening.fit(x), np.full(2, 3.0),
        np.asarray(4.0), np.zeros(2), np.eye(2), np.zeros(1),
    )  # fmt: skip
    trained = shmc.TrainedSurrogate.from_surrogate(
        LogDensitySurrogate(network), variables=[("x", (2,))], network=NETWORK, step_size=0.5,
        inverse_mass=np.ones(2),
    )  # fmt: skip
    return trained.save(path)


def saved_estimator(path: Path) -> Path:
    network = build_cost_network(2, (3,), False, NETWORK, 4, key=jax.random.key(0))
    estimator = shmc.CostEstimator(
        variables=(("theta", (2,)),), data_shape=(3,), iid_trials=False,
        distance={"name": "mse"}, network=NETWORK, embedding_size=4,
        arrays=module_arrays(network),
    )  # fmt: skip
    return estimator.save(path)


KINDS = {
    "surrogate": (saved_surrogate, shmc.TrainedSurrogate.load),
    "cost estimator": (saved_estimator, shmc.CostEstimator.load),
}


def members(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads(str(arrays.pop("metadata"))), arrays


def rewrite(good: Path, bad: Path, change, *, checksum: str) -> None:
    # The file's metadata and arrays, changed, with the old or a recomputed ("valid") checksum.
    metadata, arrays = members(good)
    change(metadata, arrays)
    if checksum == "valid":
        metadata.pop("checksum", None)
        write_archive(bad, metadata, arrays)
    else:
        np.savez(bad, metadata=np.asarray(json.dumps(metadata)), **arrays)


def flip_a_bit(good: Path, bad: Path) -> None:
    # In the middle of the largest array (a flip in the zip's bookkeeping may be harmless).
    data = bytearray(good.read_bytes())
    largest = max(members(good)[1].values(), key=np.size).tobytes()
    start = data.find(largest)
    assert start >= 0
    data[start + len(largest) // 2] ^= 0x10
    bad.write_bytes(bytes(data))


def older_format(metadata: dict, arrays: dict) -> None:
    name, version = metadata["format"].rsplit("/", 1)
    metadata["format"] = f"{name}/{int(version) - 1}"
    del metadata["checksum"]  # older files had none


def set_item(mapping: str, key: str, value):
    def change(metadata: dict, arrays: dict) -> None:
        target = metadata if mapping == "metadata" else arrays
        target[key] = value(target[key]) if callable(value) else value

    return change


def pickled_weights(metadata: dict, arrays: dict) -> None:
    arrays["array_000"] = np.array([{"code": "print('unpickled')"}], dtype=object)


def first_matrix(arrays: dict) -> str:
    return next(name for name in sorted(arrays) if arrays[name].ndim == 2)


def weights_reshaped(metadata: dict, arrays: dict) -> None:
    name = first_matrix(arrays)
    arrays[name] = arrays[name][:, :-1]


def weight_nan(metadata: dict, arrays: dict) -> None:
    name = first_matrix(arrays)
    arrays[name] = arrays[name].copy()
    arrays[name][0, 0] = np.nan


NOT_SAVED = "is not a {what} saved by surrogate-hmc: "

# (damage(good, bad), error, message after the file's name), id: the case.
# fmt: off
CASES = [
    pytest.param(
        lambda good, bad: bad.write_bytes(b""),
        ValueError, NOT_SAVED + "it is not a readable .npz archive (truncated or damaged?)",
        id="empty file",
    ),
    pytest.param(
        lambda good, bad: bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
        ValueError, NOT_SAVED + "it is not a readable .npz archive (truncated or damaged?)",
        id="truncated file",
    ),
    pytest.param(
        flip_a_bit,
        ValueError,
        NOT_SAVED + "its contents do not match their checksum (the file was altered or damaged)",
        id="bit flipped in the middle",
    ),
    pytest.param(
        lambda good, bad: bad.write_text("weights = [1, 2, 3]\n"),
        ValueError, NOT_SAVED + "it is not a readable .npz archive",
        id="text file",
    ),
    pytest.param(
        lambda good, bad: np.savez(bad, weights=np.ones(3)),
        ValueError, NOT_SAVED + "it has no metadata (it was written by another program)",
        id="foreign npz",
    ),
    pytest.param(
        lambda good, bad: rewrite(good, bad, pickled_weights, checksum="old"),
        ValueError, NOT_SAVED + "it holds pickled Python objects",
        id="pickled object array",
    ),
    pytest.param(
        lambda good, bad: np.savez(bad, metadata=np.asarray("{format: surrogate"), x=np.ones(1)),
        ValueError, NOT_SAVED + "its metadata is not valid JSON",
        id="metadata not JSON",
    ),
    pytest.param(
        lambda good, bad: np.savez(bad, metadata=np.asarray("[1, 2]")),
        ValueError, NOT_SAVED + "its metadata is not a JSON object",
        id="metadata not a JSON object",
    ),
    pytest.param(
        lambda good, bad: rewrite(
            good, bad, set_item("metadata", "format", "foo/1"), checksum="valid"
        ),
        ValueError, NOT_SAVED + "it was written by another program (format 'foo/1')",
        id="wrong format",
    ),
    pytest.param(
        lambda good, bad: rewrite(good, bad, older_format, checksum="old"),
        ValueError, "is a {what} written by an older surrogate-hmc .* must be re-created",
        id="older format",
    ),
    pytest.param(
        lambda good, bad: rewrite(
            good, bad, set_item("arrays", "array_000", lambda a: a + 1.0), checksum="old"
        ),
        ValueError,
        NOT_SAVED + "its contents do not match their checksum (the file was altered or damaged)",
        id="altered weights",
    ),
    pytest.param(
        lambda good, bad: rewrite(good, bad, set_item("metadata", "checksum", 0), checksum="old"),
        ValueError, NOT_SAVED + "it has no checksum",
        id="no checksum",
    ),
    pytest.param(
        lambda good, bad: rewrite(good, bad, weights_reshaped, checksum="valid"),
        ValueError, NOT_SAVED + "its arrays do not fit the network it records",
        id="altered shapes, valid checksum",
    ),
    pytest.param(
        lambda good, bad: rewrite(good, bad, weight_nan, checksum="valid"),
        ValueError, NOT_SAVED + "its network weights are not all finite numbers",
        id="non-finite weights, valid checksum",
    ),
    pytest.param(
        lambda good, bad: None,
        FileNotFoundError, "No saved {what} at {path}",
        id="missing file",
    ),
    pytest.param(
        lambda good, bad: bad.mkdir(),
        ValueError, NOT_SAVED + "it is a directory; give the path of a file saved by ",
        id="directory",
    ),
]
# fmt: on


@pytest.fixture(scope="module")
def good_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("good")
    return {
        what: save(folder / f"{what.replace(' ', '_')}.npz") for what, (save, _) in KINDS.items()
    }


@pytest.mark.parametrize("what", list(KINDS))
def test_an_intact_file_loads(good_files, what):
    load = KINDS[what][1]
    assert load(good_files[what]).arrays


@pytest.mark.parametrize("what", list(KINDS))
@pytest.mark.parametrize(("damage", "error", "message"), CASES)
def test_a_bad_file_is_refused_with_its_name_and_the_reason(
    good_files, tmp_path, what, damage, error, message
):
    bad = tmp_path / "bad.npz"
    damage(good_files[what], bad)
    name = re.escape(repr(str(bad)))
    if "{path}" in message:
        expected = re.escape(message.format(what=what, path=repr(str(bad))))
    else:
        expected = name + " " + re.escape(message.format(what=what)).replace(r"\.\*", ".*")
    with pytest.raises(error, match=expected):
        KINDS[what][1](bad)


# Settings only a surrogate has, altered with a valid checksum.
# fmt: off
SURROGATE_CASES = [
    pytest.param("arrays", "inverse_mass", np.array([1.0, -1.0]),
                 "its inverse mass matrix is not positive definite and finite",
                 id="negative mass"),
    pytest.param("arrays", "inverse_mass", np.array([[1.0, 2.0], [2.0, 1.0]]),
                 "its inverse mass matrix is not positive definite and finite",
                 id="indefinite dense mass"),
    pytest.param("arrays", "inverse_mass", np.ones(3),
                 "its records are invalid (inverse_mass (3,)", id="mass of wrong shape"),
    pytest.param("arrays", "center", np.array([0.0, np.inf]),
                 "its center is not finite", id="infinite center"),
    pytest.param("arrays", "trajectory_lengths", np.zeros(0),
                 "its trajectory lengths are not a list of positive", id="no trajectory lengths"),
    pytest.param("arrays", "trajectory_lengths", np.ones((2, 2)),
                 "its trajectory lengths are not a list of positive", id="2-D trajectory lengths"),
    pytest.param("metadata", "step_size", float("nan"),
                 "its step size nan is not positive and finite", id="NaN step size"),
    pytest.param("metadata", "step_size", 0.0,
                 "its step size 0.0 is not positive and finite", id="zero step size"),
    pytest.param("metadata", "variables", [["x", [3]]],
                 "its records are invalid", id="other dimension"),
    pytest.param("metadata", "kind", "potential",
                 "its records are invalid (TrainedSurrogate.kind must be", id="unknown kind"),
    pytest.param("metadata", "network", {"width": 8, "depth": 3},
                 "its arrays do not fit the network it records (NetworkConfig(width=8, "
                 "depth=3",
                 id="other network"),
]
# fmt: on


@pytest.mark.parametrize(("mapping", "key", "value", "message"), SURROGATE_CASES)
def test_a_surrogate_with_unusable_settings_is_refused(
    good_files, tmp_path, mapping, key, value, message
):
    bad = tmp_path / "bad.npz"
    rewrite(good_files["surrogate"], bad, set_item(mapping, key, value), checksum="valid")
    expected = re.escape(f"{str(bad)!r} is not a surrogate saved by surrogate-hmc: {message}")
    with pytest.raises(ValueError, match=expected):
        shmc.TrainedSurrogate.load(bad)


def test_a_file_of_the_other_kind_is_refused(good_files):
    for what, other in [("surrogate", "cost estimator"), ("cost estimator", "surrogate")]:
        path = good_files[other]
        with pytest.raises(
            ValueError, match=f"is not a {what} saved by surrogate-hmc: it is another kind of"
        ):
            KINDS[what][1](path)


def test_a_directory_given_as_a_surrogate_is_refused_as_a_bad_file(tmp_path):
    expected = re.escape(
        f"{str(tmp_path)!r} is not a surrogate saved by surrogate-hmc: it is a directory; give "
        "the path of a file saved by SurrogateHMC(save_to=...) or TrainedSurrogate.save."
    )
    with pytest.raises(ValueError, match=expected):
        shmc.TrainedSurrogate.load(tmp_path)
    with pm.Model():
        pm.Normal("x", shape=2)
        for given in (tmp_path, str(tmp_path)):
            with pytest.raises(ValueError, match=expected):
                shmc.SurrogateHMC(surrogate=given)
