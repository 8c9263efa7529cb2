"""JAX settings this package needs: 64-bit floats and a persistent compilation cache.

PyMC models are float64, so 64-bit mode is always on. The compiled surrogate code (the training
step, NUTS on the surrogate) takes seconds to build, every run; like PyTensor's compiledir for
PyMC's own functions, a cache on disk lets later runs load it instead. The cache goes to
``$SURROGATE_HMC_CACHE_DIR`` if set (empty: no cache), otherwise to the user cache directory.
A cache the user has configured in JAX is left alone.

Chains sampled in parallel processes compile the same functions at the same time, and JAX
writes a cache entry in place: without its file lock, one process could load an entry another
is still writing and crash. The lock comes with a size limit, whose eviction reads an access
time beside every entry; an entry without one was written without the lock, or not finished, and
is dropped first. A cache directory that cannot be locked or written is not used (with a warning).
"""

import os
import warnings
from pathlib import Path

import filelock
import jax
import platformdirs

__all__ = ["compilation_cache_dir", "configure_jax"]

_MIN_COMPILE_SECONDS = 0.1  # JAX's default (1 s) would miss NUTS on the surrogate
_MAX_CACHE_BYTES = 2 * 1024**3
_LOCK_SECONDS = 10.0  # as JAX's own lock
# Names of JAX's LRU cache files (jax/_src/lru_cache.py), which has no public API for them.
_ENTRY_SUFFIX, _ACCESS_TIME_SUFFIX, _LOCK_FILE = "-cache", "-atime", ".lockfile"


def compilation_cache_dir() -> Path | None:
    """Where the package caches JAX's compiled code, or ``None`` for nowhere.

    Examples
    --------
    >>> import os
    >>> os.environ["SURROGATE_HMC_CACHE_DIR"] = ""
    >>> compilation_cache_dir() is None
    True
    >>> del os.environ["SURROGATE_HMC_CACHE_DIR"]
    """
    configured = os.environ.get("SURROGATE_HMC_CACHE_DIR")
    if configured is None:
        return Path(platformdirs.user_cache_dir("surrogate-hmc")) / "jax"
    return Path(configured) if configured else None


def configure_jax() -> None:
    """Enable 64-bit mode and, unless JAX already has one, the persistent compilation cache."""
    jax.config.update("jax_enable_x64", True)
    if jax.config.jax_compilation_cache_dir is not None:
        return
    directory = compilation_cache_dir()
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _drop_unstamped_entries(directory)
    except (OSError, filelock.Timeout) as error:
        warnings.warn(
            f"surrogate_hmc cannot use the compilation cache at {directory} ({error}): compiled "
            "code is not cached. Set SURROGATE_HMC_CACHE_DIR to a writable directory, or to "
            "the empty string for no cache.",
            stacklevel=2,
        )
        return
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", _MAX_CACHE_BYTES)


def _drop_unstamped_entries(directory: Path) -> None:
    """Delete every cache entry without an access time, which JAX's eviction would fail on.

    Such an entry was written without the lock (by an earlier version) or by a process stopped
    before its stamp: it may be incomplete, and it is only a cache.
    """
    with filelock.FileLock(directory / _LOCK_FILE, timeout=_LOCK_SECONDS):
        for entry in directory.glob(f"*{_ENTRY_SUFFIX}"):
            stamp = directory / (entry.name.removesuffix(_ENTRY_SUFFIX) + _ACCESS_TIME_SUFFIX)
            if not stamp.exists():
                entry.unlink(missing_ok=True)
