"""Saving Equinox modules as plain arrays: ``.npz`` files of arrays plus JSON, no pickles.

A module is saved as its arrays in tree order (:func:`module_arrays`) next to the settings it
was built from; loading builds a fresh module from the settings and puts the arrays back into
it (:func:`module_from_arrays`). Files are written atomically (:func:`write_archive`).
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "module_arrays",
    "module_from_arrays",
    "numbered_arrays",
    "read_archive",
    "write_archive",
]

M = TypeVar("M", bound=eqx.Module)


def module_arrays(module: eqx.Module) -> tuple[np.ndarray, ...]:
    """The arrays of ``module`` (its array leaves), as NumPy arrays in tree order.

    Examples
    --------
    >>> mlp = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(0))
    >>> [a.shape for a in module_arrays(mlp)]
    [(4, 2), (4,), (1, 4), (1,)]
    """
    return tuple(np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(module, eqx.is_array)))


def module_from_arrays(skeleton: M, arrays: Sequence[np.ndarray], what: str) -> M:
    """``skeleton`` with its arrays replaced by ``arrays`` (as from :func:`module_arrays`).

    Parameters
    ----------
    skeleton
        A module of the right structure, for example freshly initialised from the settings the
        arrays were saved with.
    arrays
        Its arrays in tree order.
    what
        What the module is, for the error message: "The saved arrays do not fit {what}".

    Raises
    ------
    ValueError
        If the arrays' number or shapes differ from the skeleton's: the file they came from is
        damaged or was written by another version.

    Examples
    --------
    >>> mlp = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(0))
    >>> fresh = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(1))
    >>> restored = module_from_arrays(fresh, module_arrays(mlp), "an MLP")
    >>> bool(restored(jnp.ones(2)) == mlp(jnp.ones(2)))
    True
    >>> try:
    ...     module_from_arrays(fresh, module_arrays(mlp)[:2], "an MLP")
    ... except ValueError as error:
    ...     print(error)
    The saved arrays do not fit an MLP: the file is damaged or was written by another version.
    """
    params, static = eqx.partition(skeleton, eqx.is_array)
    leaves, treedef = jax.tree.flatten(params)
    if [np.shape(leaf) for leaf in leaves] != [np.shape(array) for array in arrays]:
        raise ValueError(
            f"The saved arrays do not fit {what}: the file is damaged or was written by "
            "another version."
        )
    return eqx.combine(jax.tree.unflatten(treedef, [jnp.asarray(a) for a in arrays]), static)


def write_archive(
    path: str | os.PathLike, metadata: dict[str, Any], arrays: dict[str, np.ndarray]
) -> Path:
    """Write ``arrays`` and JSON ``metadata`` to exactly ``path``, atomically; return the path.

    A crash never leaves half a file: the archive is written next to ``path`` and then moved.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = write_archive(f"{folder}/a.npz", {"format": "demo/1"}, {"x": np.arange(3)})
    >>> read_archive(path, "demo/1", "demo")[1]["x"].tolist()
    [0, 1, 2]
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as file:
        np.savez(file, metadata=np.asarray(json.dumps(metadata)), **arrays)  # type: ignore[arg-type]
    os.replace(partial, path)
    return path


def read_archive(
    path: str | os.PathLike, file_format: str, what: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and arrays of an archive of ``file_format`` written by :func:`write_archive`.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not an archive of ``file_format`` (``what`` names it in the message).

    Examples
    --------
    >>> import tempfile
    >>> path = write_archive(f"{tempfile.mkdtemp()}/a.npz", {"format": "demo/1"}, {})
    >>> read_archive(path, "demo/2", "demo file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '...a.npz' is not a demo file saved by surrogate-hmc.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved {what} at {str(path)!r}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        metadata = json.loads(str(arrays.pop("metadata")))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{str(path)!r} is not a {what} saved by surrogate-hmc.") from error
    if not isinstance(metadata, dict) or metadata.get("format") != file_format:
        raise ValueError(f"{str(path)!r} is not a {what} saved by surrogate-hmc.")
    return metadata, arrays


def numbered_arrays(
    arrays: dict[str, np.ndarray], prefix: str = "array_"
) -> tuple[np.ndarray, ...]:
    """The arrays named ``{prefix}000``, ``{prefix}001``, ... in order.

    Examples
    --------
    >>> arrays = {"array_001": np.ones(1), "array_000": np.zeros(2), "other": np.ones(3)}
    >>> [a.shape for a in numbered_arrays(arrays)]
    [(2,), (1,)]
    """
    return tuple(arrays[name] for name in sorted(n for n in arrays if n.startswith(prefix)))
