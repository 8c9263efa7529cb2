"""Plain ``.npz`` archives of arrays plus JSON metadata: no pickles, written atomically."""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["numbered_arrays", "read_archive", "write_archive"]


def write_archive(
    path: str | os.PathLike, metadata: dict[str, Any], arrays: dict[str, np.ndarray]
) -> Path:
    """Write ``arrays`` and ``metadata`` to exactly ``path``; a crash never leaves half a file."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as file:
        np.savez(file, metadata=np.asarray(json.dumps(metadata)), **arrays)  # type: ignore[arg-type]
    os.replace(partial, path)
    return path


def read_archive(
    path: str | os.PathLike, file_format: str, what: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an archive of ``file_format``; a missing or foreign file raises a clear error."""
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
    """The arrays saved as ``{prefix}000``, ``{prefix}001``, ... in order."""
    return tuple(arrays[name] for name in sorted(n for n in arrays if n.startswith(prefix)))
