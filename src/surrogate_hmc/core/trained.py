"""A trained surrogate as plain data: saved after one run, reused by the next."""

import itertools
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP
from surrogate_hmc.core.persistence import (
    all_finite,
    archive_error,
    module_arrays,
    module_from_arrays,
    numbered_arrays,
    read_archive,
    write_archive,
)
from surrogate_hmc.core.structure import StructuredNetwork
from surrogate_hmc.core.surrogate import SURROGATE_KINDS, AbstractLearnedSurrogate, SurrogateKind
from surrogate_hmc.core.validation import check_choice

__all__ = ["TrainedSurrogate", "network_shapes"]

# 4: the gradient network squashes its inputs into the training range (one more array).
_FORMAT = "surrogate-hmc/4"
_RECREATE = "run SurrogateHMC again with save_to to save a new one"


@dataclass(frozen=True, eq=False)
class TrainedSurrogate:
    """A trained network and the kernel settings tuned with it, as NumPy data.

    It holds no JAX objects, so it pickles to worker processes and can be passed to a later
    run before JAX has started. :meth:`save` and :meth:`load` use a ``.npz`` file without
    pickled objects.

    Parameters
    ----------
    kind
        ``"gradient"`` (the network outputs a gradient) or ``"logp"`` (a log-density).
    variables
        ``(name, shape)`` of each sampled (value) variable, in the raveled order.
    network
        The architecture the weights belong to (:meth:`build` rebuilds the network from it).
    arrays
        The network's arrays (weights, then standardizations) in tree order.
    exact_prior
        Whether the network learned only the expensive part, the cheap part (priors and
        Jacobians) being added exactly.
    step_size
        The step size tuned for surrogate trajectories.
    inverse_mass
        The inverse mass matrix tuned with it: its diagonal, or the dense matrix.
    trajectory_lengths
        Trajectory lengths (step size x steps) for static trajectories.
    center
        A central position of the training data (where a chain can start its mass matrix).

    Examples
    --------
    >>> import jax, numpy as np
    >>> from surrogate_hmc.core.surrogate import LogDensitySurrogate
    >>> from surrogate_hmc.core.training import TrainingConfig, fit_log_density
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> fit = fit_log_density(
    ...     x, -0.5 * np.sum(x**2, 1), -x, network=NetworkConfig(width=8),
    ...     training=TrainingConfig(max_steps=100), key=jax.random.key(0),
    ... )
    >>> trained = TrainedSurrogate.from_surrogate(
    ...     LogDensitySurrogate(fit.network), variables=[("x", (2,))],
    ...     network=NetworkConfig(width=8), step_size=0.5, inverse_mass=np.ones(2),
    ... )
    >>> trained.kind, trained.dim
    ('logp', 2)
    >>> trained  # doctest: +NORMALIZE_WHITESPACE
    TrainedSurrogate(kind='logp', variables=[x (2,)], network=NetworkConfig(width=8, depth=2,
    activation='silu'), exact_prior=False, step_size=0.5, inverse_mass=<diagonal, 2 values>,
    trajectory_lengths=<1 value>)
    >>> import tempfile
    >>> path = trained.save(f"{tempfile.mkdtemp()}/banana")
    >>> TrainedSurrogate.load(path).build().logdensity(np.zeros(2)).shape
    ()
    """

    kind: SurrogateKind
    variables: tuple[tuple[str, tuple[int, ...]], ...]
    network: NetworkConfig
    arrays: tuple[np.ndarray, ...]
    exact_prior: bool
    step_size: float
    inverse_mass: np.ndarray
    trajectory_lengths: np.ndarray = field(default_factory=lambda: np.ones(1))
    center: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_choice("TrainedSurrogate.kind", self.kind, tuple(SURROGATE_KINDS))
        object.__setattr__(self, "variables", _normalized(self.variables))
        object.__setattr__(self, "arrays", tuple(np.asarray(a) for a in self.arrays))
        object.__setattr__(self, "inverse_mass", np.asarray(self.inverse_mass, dtype=float))
        lengths = np.asarray(self.trajectory_lengths, dtype=float).ravel()
        object.__setattr__(self, "trajectory_lengths", lengths)
        center = np.asarray(np.zeros(self.dim) if self.center is None else self.center, float)
        object.__setattr__(self, "center", center)
        dim = self.dim
        if self.inverse_mass.shape not in ((dim,), (dim, dim)) or center.shape != (dim,):
            raise ValueError(
                f"inverse_mass {self.inverse_mass.shape} must have shape ({dim},) or "
                f"({dim}, {dim}), and center {center.shape} shape ({dim},)."
            )

    def __repr__(self) -> str:
        """One line: what it is and the kernel settings, without the weights."""
        mass = self.inverse_mass
        shown = f"dense {mass.shape}" if mass.ndim == 2 else f"diagonal, {count_values(mass.size)}"
        variables = describe_variables(self.variables, 8)
        return (
            f"TrainedSurrogate(kind={self.kind!r}, variables={variables}, "
            f"network={self.network}, exact_prior={self.exact_prior}, "
            f"step_size={self.step_size:.3g}, inverse_mass=<{shown}>, "
            f"trajectory_lengths=<{count_values(self.trajectory_lengths.size)}>)"
        )

    @property
    def dim(self) -> int:
        """Length of the raveled position vector."""
        return _dim(self.variables)

    @classmethod
    def from_surrogate(
        cls,
        surrogate: AbstractLearnedSurrogate,
        *,
        variables,
        network: NetworkConfig,
        step_size: float,
        inverse_mass: np.ndarray,
        trajectory_lengths: np.ndarray | None = None,
    ) -> "TrainedSurrogate":
        """Capture a surrogate module (its network's arrays) and its kernel settings.

        ``network`` must describe the surrogate's network, for ``variables``: a ``ValueError``
        says so otherwise, rather than a saved file that cannot be loaded.
        """
        variables = _normalized(variables)
        dim = _dim(variables)
        if not _same_structure(surrogate.network, _skeleton(surrogate.kind, dim, network)):
            raise ValueError(
                f"The surrogate's network is not a {network} network for dimension {dim}: "
                "pass the NetworkConfig it was built with."
            )
        return cls(
            kind=surrogate.kind,
            variables=variables,
            network=network,
            arrays=module_arrays(surrogate.network),
            exact_prior=surrogate.exact_logdensity is not None,
            step_size=float(step_size),
            inverse_mass=np.asarray(inverse_mass),
            trajectory_lengths=np.ones(1) if trajectory_lengths is None else trajectory_lengths,
            center=np.asarray(surrogate.network.inputs.mean),
        )

    def build(self, exact_logdensity=None) -> AbstractLearnedSurrogate:
        """Rebuild the surrogate module, with the cheap part ``exact_logdensity`` added back."""
        if self.exact_prior and exact_logdensity is None:
            raise ValueError(
                "This surrogate learned only the expensive part of the log-density and needs "
                "the exact prior added back, but none was given."
            )
        network = self._network()
        exact_part = exact_logdensity if self.exact_prior else None
        return SURROGATE_KINDS[self.kind](network, exact_part)  # type: ignore[arg-type]

    def _network(self) -> StandardizedMLP | StructuredNetwork:
        return module_from_arrays(
            _skeleton(self.kind, self.dim, self.network),
            self.arrays,
            f"a {self.network} network for dimension {self.dim}",
        )

    def check_variables(self, variables) -> None:
        """Raise a ``ValueError`` unless ``variables`` are the ``(name, shape)`` trained on."""
        given = _normalized(variables)
        if given != self.variables:
            raise ValueError(
                f"The surrogate was trained on the variables "
                f"{describe_variables(self.variables)} (dimension {self.dim}), but this sampler "
                f"has {describe_variables(given)}. A surrogate "
                "only fits the model it was trained on: pass the one saved for this model, or "
                "train a new one with surrogate='logp' or 'gradient'."
            )

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (``.npz`` is appended when missing), atomically; return the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        metadata = {
            "format": _FORMAT,
            "kind": self.kind,
            "variables": [[name, list(shape)] for name, shape in self.variables],
            "network": asdict(self.network),
            "exact_prior": self.exact_prior,
            "step_size": self.step_size,
        }
        arrays: dict[str, np.ndarray] = {f"array_{i:03d}": a for i, a in enumerate(self.arrays)}
        arrays |= {
            "inverse_mass": self.inverse_mass,
            "trajectory_lengths": self.trajectory_lengths,
            "center": np.asarray(self.center),
        }
        return write_archive(path, metadata, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainedSurrogate":
        """Read a surrogate written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path`` (nor at ``path`` with ``.npz`` appended).
        ValueError
            If ``path`` is a directory, or the file is damaged, altered, written by another
            program or version, or holds weights and settings that do not make a usable
            surrogate: the message names the file and says what is wrong.
        """
        path = Path(path)
        if not path.exists() and path.with_name(path.name + ".npz").exists():
            path = path.with_name(path.name + ".npz")
        metadata, data = read_archive(
            path, _FORMAT, "surrogate", recreate=_RECREATE,
            saved_by="SurrogateHMC(save_to=...) or TrainedSurrogate.save",
        )  # fmt: skip
        try:
            trained = cls(
                kind=metadata["kind"],
                variables=tuple((name, tuple(shape)) for name, shape in metadata["variables"]),
                network=NetworkConfig(**metadata["network"]),
                arrays=numbered_arrays(data),
                exact_prior=bool(metadata["exact_prior"]),
                step_size=float(metadata["step_size"]),
                inverse_mass=data["inverse_mass"],
                trajectory_lengths=data["trajectory_lengths"],
                center=data["center"],
            )
        except KeyError as error:
            raise archive_error(path, "surrogate", f"it lacks {error}") from error
        except (TypeError, ValueError) as error:
            reason = f"its records are invalid ({str(error).rstrip('.')})"
            raise archive_error(path, "surrogate", reason) from error
        fault = _fault(trained, np.shape(data["trajectory_lengths"]))
        if fault is not None:
            raise archive_error(path, "surrogate", fault)
        return trained


def _fault(trained: TrainedSurrogate, lengths_shape: tuple[int, ...]) -> str | None:
    # What makes a loaded surrogate unusable, if anything. Checked without running JAX: a
    # surrogate loaded before pm.sample must not start JAX in a process that forks chains.
    expected = network_shapes(trained.network, trained.dim, trained.kind)
    if [np.shape(a) for a in trained.arrays] != expected:
        return (
            f"its arrays do not fit the network it records ({trained.network} for dimension "
            f"{trained.dim})"
        )
    if not all_finite(trained.arrays):
        return "its network weights are not all finite numbers"
    if not _positive_definite(trained.inverse_mass):
        return "its inverse mass matrix is not positive definite and finite"
    if not all_finite([np.asarray(trained.center)]):
        return "its center is not finite"
    lengths = trained.trajectory_lengths
    if len(lengths_shape) != 1 or lengths.size == 0 or not all_finite([lengths], positive=True):
        return "its trajectory lengths are not a list of positive, finite numbers"
    if not (math.isfinite(trained.step_size) and trained.step_size > 0):
        return f"its step size {trained.step_size} is not positive and finite"
    return None


def network_shapes(network: NetworkConfig, dim: int, kind: SurrogateKind) -> list[tuple[int, ...]]:
    """The array shapes of a surrogate network of ``kind`` with ``dim`` inputs.

    In tree order: each layer's weight and bias, then (``"logp"``, a
    :class:`~surrogate_hmc.core.structure.StructuredNetwork`) the whitening, radius, Gaussian
    base and offset, or (``"gradient"``, a :class:`StandardizedMLP`) the input and output
    standardizations and the inputs' radius. Computed, not built, so that checking a file runs
    no JAX.

    Examples
    --------
    >>> network_shapes(NetworkConfig(width=4, depth=1), dim=2, kind="logp")
    [(4, 2), (4,), (1, 4), (1,), (2,), (2, 2), (2,), (), (2,), (2, 2), (1,)]
    >>> network_shapes(NetworkConfig(width=4, depth=1), dim=2, kind="gradient")[-5:]
    [(2,), (2,), (2,), (2,), (2,)]
    """
    out = 1 if kind == "logp" else dim
    sizes = [dim, *[network.width] * network.depth, out]
    layers = [[(n_out, n_in), (n_out,)] for n_in, n_out in itertools.pairwise(sizes)]
    mlp = [shape for layer in layers for shape in layer]
    if kind == "logp":
        return [*mlp, (dim,), (dim, dim), (dim,), (), (dim,), (dim, dim), (1,)]
    return [*mlp, (dim,), (dim,), (out,), (out,), (dim,)]


def _skeleton(
    kind: SurrogateKind, dim: int, network: NetworkConfig
) -> StandardizedMLP | StructuredNetwork:
    # The network's structure only: its arrays are placeholders.
    if kind == "logp":
        return StructuredNetwork.build(network, dim, key=jax.random.key(0))
    ones = np.ones(dim)
    return StandardizedMLP(
        network.build(dim, dim, key=jax.random.key(0)),
        Standardization(ones, ones),
        Standardization(ones, ones),
        ones,
    )


def _positive_definite(matrix: np.ndarray) -> bool:
    if not all_finite([matrix]):
        return False
    if matrix.ndim == 1:
        return bool(np.all(matrix > 0))
    try:
        np.linalg.cholesky(0.5 * (matrix + matrix.T))
    except np.linalg.LinAlgError:
        return False
    return bool(np.allclose(matrix, matrix.T))


def _same_structure(module: eqx.Module, skeleton: eqx.Module) -> bool:
    # The same array shapes, and the same everything else (such as the activation).
    shapes = [a.shape for a in module_arrays(module)]
    if shapes != [a.shape for a in module_arrays(skeleton)]:
        return False
    return bool(
        eqx.tree_equal(*(eqx.filter(m, eqx.is_array, inverse=True) for m in (module, skeleton)))
    )


def _normalized(variables) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((str(name), tuple(int(n) for n in shape)) for name, shape in variables)


def _dim(variables: tuple[tuple[str, tuple[int, ...]], ...]) -> int:
    return int(sum(np.prod(shape, dtype=int) for _, shape in variables))


def describe_variables(variables, most: int | None = None) -> str:
    """``[name shape, ...]`` of the first ``most`` variables, and how many more there are."""
    shown = [f"{name} {tuple(shape)}" for name, shape in variables[:most]]
    if len(shown) < len(variables):
        shown.append(f"and {len(variables) - len(shown)} more")
    return "[" + ", ".join(shown) + "]"


def count_values(n: int) -> str:
    """``"1 value"`` or ``"n values"``."""
    return f"{n} value" if n == 1 else f"{n} values"
