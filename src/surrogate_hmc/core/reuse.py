"""A trained surrogate given to a run, or a file to save one to: checked before sampling.

Shared by both entry points (``SurrogateHMC`` and ``shmc.sample``); no PyMC here.
"""

import os
import tempfile
from pathlib import Path
from typing import Any

from surrogate_hmc.core.exploration import RECENT_DRAWS
from surrogate_hmc.core.trained import TrainedSurrogate

__all__ = ["REUSE_AFTER", "check_save_to", "given_pilot_at", "given_surrogate"]


def given_surrogate(surrogate: Any) -> TrainedSurrogate | None:
    """The trained surrogate given as ``surrogate``, or ``None`` for one to train."""
    if isinstance(surrogate, TrainedSurrogate):
        return surrogate
    if isinstance(surrogate, str) and surrogate in ("gradient", "logp"):
        return None
    if isinstance(surrogate, str | os.PathLike):
        try:
            return TrainedSurrogate.load(surrogate)
        except FileNotFoundError as error:
            raise ValueError(
                "surrogate must be 'gradient', 'logp', a shmc.TrainedSurrogate or the path of "
                f"a saved one; {error}"
            ) from None
    raise TypeError(
        "surrogate must be 'gradient', 'logp', a shmc.TrainedSurrogate or the path of a saved "
        f"one, got {type(surrogate).__name__}."
    )


def check_save_to(save_to: Any) -> None:
    """Refuse a ``save_to`` that is not a path to a file that can be written, before sampling.

    The directory must exist, and a file must be creatable in it (tried with a temporary file,
    which is removed); the surrogate itself is written at the end of tuning.
    """
    if save_to is None:
        return
    if not isinstance(save_to, str | os.PathLike):
        raise TypeError(f"save_to must be a path, got {type(save_to).__name__}.")
    path = Path(save_to)
    if path.is_dir():
        raise ValueError(
            f"save_to must be the path of a file, but {str(path)!r} is a directory: for example "
            f"save_to={str(path / 'surrogate.npz')!r}."
        )
    directory = path.parent
    if not directory.exists():
        raise ValueError(
            f"save_to: the directory {str(directory)!r} does not exist; create it first or "
            "choose another path."
        )
    if not directory.is_dir():
        raise ValueError(
            f"save_to: {str(directory)!r} is not a directory, so {str(path)!r} cannot be "
            "written there."
        )
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ValueError(
            f"save_to: the directory {str(directory)!r} is not writable "
            f"({type(error).__name__}: {error})."
        ) from None


REUSE_AFTER = 50
"""Exact iterations that take a chain to the posterior before a given surrogate is piloted."""


def given_pilot_at(tune: int) -> int:
    """The tuning iteration at which a given surrogate is piloted.

    ``min(50, tune // 4)``, but never before the exploration check has its ``RECENT_DRAWS``
    exact draws to compare with (a pilot that cannot be checked fails).

    Examples
    --------
    >>> given_pilot_at(1000), given_pilot_at(100), given_pilot_at(20)
    (50, 30, 30)
    """
    return min(REUSE_AFTER, max(RECENT_DRAWS, tune // 4))
