"""JAX settings this package needs: 64-bit floats and a persistent compilation cache.

PyMC models are float64, so 64-bit mode is always on. The compiled surrogate code (the training
step, NUTS on the surrogate) takes seconds to build, every run; like PyTensor's compiledir for
PyMC's own functions, a cache on disk lets later runs load it instead. The cache goes to
``$SURROGATE_HMC_CACHE_DIR`` if set (empty: no cache), otherwise to the user cache directory.
A cache the user has configured in JAX is left alone.
"""

import os
from pathlib import Path

import jax
import platformdirs

__all__ = ["compilation_cache_dir", "configure_jax"]

_MIN_COMPILE_SECONDS = 0.1  # JAX's default (1 s) would miss NUTS on the surrogate


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
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
