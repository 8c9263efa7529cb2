"""Saving Equinox modules as plain arrays: ``.npz`` files of arrays plus JSON, no pickles.

A module is saved as its arrays in tree order (:func:`module_arrays`) next to the settings it
was built from; loading builds a fresh module from the settings and puts the arrays back into
it (:func:`module_from_arrays`). Files are written atomically, with a checksum
(:func:`write_archive`), and a damaged, foreign or altered file is refused when read
(:func:`read_archive`).
"""

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "all_finite",
    "archive_error",
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

    The metadata gets a ``"checksum"``: a SHA-256 of the metadata and every array, which
    :func:`read_archive` recomputes to refuse an altered or damaged file. A failed write never
    leaves half a file at ``path``: the archive is written next to it, then moved (a failure
    removes the partial file).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = write_archive(f"{folder}/a.npz", {"format": "demo/1"}, {"x": np.arange(3)})
    >>> read_archive(path, "demo/1", "demo")[1]["x"].tolist()
    [0, 1, 2]
    """
    path = Path(path)
    if "metadata" in arrays or "checksum" in metadata:
        raise ValueError("'metadata' and 'checksum' are names reserved by write_archive.")
    arrays = {name: np.asarray(array) for name, array in arrays.items()}
    metadata = json.loads(json.dumps(metadata))  # as it will be read back
    metadata["checksum"] = _checksum(metadata, arrays)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as file:
            text = np.asarray(json.dumps(metadata))
            np.savez(file, metadata=text, **arrays)  # type: ignore[arg-type]
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def read_archive(
    path: str | os.PathLike,
    file_format: str,
    what: str,
    *,
    recreate: str = "save it again",
    saved_by: str = "its save method",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and arrays of an archive of ``file_format`` written by :func:`write_archive`.

    Parameters
    ----------
    path
        The file.
    file_format
        The format it must record, ``"{name}/{version}"``.
    what
        What the file holds, for error messages (``"'a.npz' is not a {what} saved by ..."``).
    recreate
        How to re-create a file of an older version of the format, for its error message.
    saved_by
        What writes such files, for the error message when ``path`` is a directory.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If ``path`` is a directory, or the file is not an archive of ``file_format`` or its
        contents do not match their checksum; the message names the path and says what is wrong.

    Examples
    --------
    >>> import tempfile
    >>> path = write_archive(f"{tempfile.mkdtemp()}/a.npz", {"format": "other/1"}, {})
    >>> try:
    ...     read_archive(path, "demo/1", "demo")
    ... except ValueError as error:
    ...     print(str(error).split(": ", 1)[1])
    it was written by another program (format 'other/1').
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved {what} at {str(path)!r}.")
    if path.is_dir():
        reason = f"it is a directory; give the path of a file saved by {saved_by}"
        raise archive_error(path, what, reason)
    arrays = _read_npz(path, what)
    metadata = _read_metadata(path, what, arrays.pop("metadata", None))
    _check_format(path, what, metadata.get("format"), file_format, recreate)
    checksum = metadata.pop("checksum", None)
    if not isinstance(checksum, str):
        raise archive_error(path, what, "it has no checksum (the file was altered)")
    if checksum != _checksum(metadata, arrays):
        raise _altered(path, what)
    return metadata, arrays


def archive_error(path: str | os.PathLike, what: str, reason: str) -> ValueError:
    """The error refusing the file at ``path``, which is not a ``what``, because of ``reason``.

    Examples
    --------
    >>> print(archive_error("a.npz", "demo", "it is empty"))
    'a.npz' is not a demo saved by surrogate-hmc: it is empty.
    """
    return ValueError(f"{str(path)!r} is not a {what} saved by surrogate-hmc: {reason}.")


def all_finite(arrays: Sequence[np.ndarray], *, positive: bool = False) -> bool:
    """Whether ``arrays`` hold only finite floating-point numbers (and positive ones).

    Examples
    --------
    >>> all_finite([np.ones(2), np.zeros(1)]), all_finite([np.array([1.0, np.nan])])
    (True, False)
    >>> all_finite([np.zeros(1)], positive=True), all_finite([np.arange(2)])
    (False, False)
    """
    return all(
        np.issubdtype(a.dtype, np.floating)
        and bool(np.isfinite(a).all())
        and (not positive or bool((a > 0).all()))
        for a in arrays
    )


def _read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    unreadable = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)
    # Opened here, not by np.load, which leaves the file open when it is not a valid archive.
    with open(path, "rb") as file:
        try:
            data = np.load(file, allow_pickle=False)
        except unreadable as error:
            raise _unreadable(path, what) from error
        if isinstance(data, np.ndarray):  # a single .npy array
            raise _unreadable(path, what)
        with data:
            return {name: _read_member(data, name, path, what) for name in data.files}


def _read_member(data, name: str, path: Path, what: str) -> np.ndarray:
    try:
        return np.asarray(data[name])
    except ValueError as error:
        if "allow_pickle" in str(error):  # NumPy refusing an array of Python objects
            reason = "it holds pickled Python objects, which surrogate-hmc does not load"
            raise archive_error(path, what, reason) from error
        raise _unreadable(path, what) from error
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):  # the zip format's own checksum of each array
            raise _altered(path, what) from error
        raise _unreadable(path, what) from error
    except (OSError, EOFError, KeyError, zlib.error) as error:
        raise _unreadable(path, what) from error


def _unreadable(path: Path, what: str) -> ValueError:
    return archive_error(path, what, "it is not a readable .npz archive (truncated or damaged?)")


def _altered(path: Path, what: str) -> ValueError:
    reason = "its contents do not match their checksum (the file was altered or damaged)"
    return archive_error(path, what, reason)


def _read_metadata(path: Path, what: str, text: np.ndarray | None) -> dict[str, Any]:
    if text is None:
        raise archive_error(path, what, "it has no metadata (it was written by another program)")
    if text.shape != () or text.dtype.kind != "U":
        raise archive_error(path, what, "its metadata is not text")
    try:
        metadata = json.loads(str(text))
    except (ValueError, RecursionError) as error:  # such as json.JSONDecodeError
        raise archive_error(path, what, "its metadata is not valid JSON") from error
    if not isinstance(metadata, dict):
        raise archive_error(path, what, "its metadata is not a JSON object")
    return metadata


def _check_format(path: Path, what: str, found: Any, expected: str, recreate: str) -> None:
    if found == expected:
        return
    if not isinstance(found, str):
        raise archive_error(path, what, "it was written by another program (no format recorded)")
    name, _, version = expected.rpartition("/")
    found_name, _, found_version = found.rpartition("/")
    if found_name != name and found_name.startswith("surrogate-hmc"):
        reason = f"it is another kind of surrogate-hmc file (format {found!r})"
        raise archive_error(path, what, reason)
    if found_name != name or not (found_version.isdigit() and version.isdigit()):
        raise archive_error(path, what, f"it was written by another program (format {found!r})")
    if int(found_version) < int(version):
        raise ValueError(
            f"{str(path)!r} is a {what} written by an older surrogate-hmc (format {found!r}; "
            f"this version reads {expected!r}) and must be re-created: {recreate}."
        )
    raise ValueError(
        f"{str(path)!r} is a {what} written by a newer surrogate-hmc (format {found!r}; this "
        f"version reads {expected!r}): upgrade surrogate-hmc to load it."
    )


def _checksum(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    # Over the metadata (as JSON, keys sorted) and each array's name, dtype, shape and bytes.
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


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
