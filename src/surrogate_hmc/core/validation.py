"""One validator for option values: clear errors, NumPy numbers accepted, bools refused.

Every public option (constructor arguments, fields of the configuration dataclasses) is checked
here, so that the same kind of mistake gets the same words everywhere. The functions return the
value as a plain Python number, so frozen configurations hash and serialize the same whether a
user passed ``50`` or ``np.int64(50)``.
"""

import difflib
import numbers
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal, TypeVar, overload

import numpy as np

__all__ = [
    "check_bool",
    "check_choice",
    "check_instance",
    "check_int",
    "check_options",
    "check_real",
]

T = TypeVar("T")


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@overload
def check_int(
    name: str, value: Any, *, minimum: int = 1, optional: Literal[False] = False
) -> int: ...
@overload
def check_int(
    name: str, value: Any, *, minimum: int = 1, optional: Literal[True]
) -> int | None: ...
def check_int(name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer ``>= minimum`` (or ``None`` when optional).

    Examples
    --------
    >>> import numpy as np
    >>> check_int("Schedule.start", np.int64(50))
    50
    >>> check_int("Schedule.start", 0)
    Traceback (most recent call last):
    ...
    ValueError: Schedule.start must be an integer >= 1, got 0.
    """
    if value is None and optional:
        return None
    if not _is_integer(value) or value < minimum:
        also = " or None" if optional else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{also}, got {value!r}.")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float = float("-inf"),
    high: float = float("inf"),
    open_low: bool = False,
    open_high: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a ``float`` if it is a real number in the interval from ``low`` to ``high``.

    The bounds are included unless ``open_low``/``open_high``; ``finite`` refuses infinities
    (an infinite bound of the interval is always open).

    Examples
    --------
    >>> import numpy as np
    >>> check_real("ACE.beta", np.float32(2.0), low=0.0, open_low=True)
    2.0
    >>> check_real("target_accept", 1.2, low=0.0, high=1.0, open_low=True, open_high=True)
    Traceback (most recent call last):
    ...
    ValueError: target_accept must be a number in (0, 1), got 1.2.
    """
    inside = _is_real(value) and value == value  # NaN is not in any interval
    if inside:
        value = float(value)
        inside = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high
        )
        inside &= not finite or abs(value) != float("inf")
    if not inside:
        raise ValueError(
            f"{name} must be {_describe(low, high, open_low, open_high)}, got {value!r}."
        )
    return value


def _describe(low: float, high: float, open_low: bool, open_high: bool) -> str:
    if high == float("inf"):
        if low == 0 and open_low:
            return "a positive number"
        if low == float("-inf"):
            return "a finite number"
        return f"a number {'>' if open_low else '>='} {low:g}"
    if low == float("-inf"):
        return f"a number {'<' if open_high else '<='} {high:g}"
    return f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``.

    Examples
    --------
    >>> check_choice("trajectory", "curvy", ("static", "nuts"))
    Traceback (most recent call last):
    ...
    ValueError: trajectory must be one of 'static', 'nuts', got 'curvy'.
    """
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
    return value


def check_instance(name: str, value: Any, cls: type[T]) -> T:
    """``value``, or ``cls()`` for ``None``, if it is a ``cls``.

    Examples
    --------
    >>> from surrogate_hmc.core.schedule import Schedule
    >>> try:
    ...     check_instance("schedule", {"start": 10}, Schedule)
    ... except TypeError as error:
    ...     print(str(error).split(":")[0])
    schedule must be a surrogate_hmc.Schedule, got dict
    """
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(
            f"{name} must be a surrogate_hmc.{cls.__name__}, got {type(value).__name__}: "
            f"for example {name}=shmc.{cls.__name__}()."
        )
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool (NumPy's included).

    Examples
    --------
    >>> check_bool("cost_gate", "no")
    Traceback (most recent call last):
    ...
    TypeError: cost_gate must be True or False, got 'no'.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_options(owner: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Refuse keyword arguments of ``owner`` that are not among ``valid``, naming the closest.

    Called first thing in a constructor that passes its ``**kwargs`` on, so a misspelt option
    fails at once, in the words of the class the user called, not later inside what the
    keywords were passed to.

    Raises
    ------
    TypeError
        For every unknown name, with the closest valid names (``difflib``) and the full list.

    Examples
    --------
    >>> check_options("SurrogateHMC", {"max_treedepth": 8}, ["max_treedepth", "target_accept"])
    >>> check_options("SurrogateHMC", {"target_acceptance": 0.9}, ["max_treedepth", "target_accept"])
    Traceback (most recent call last):
    ...
    TypeError: SurrogateHMC got an unexpected keyword argument 'target_acceptance'. Did you mean 'target_accept'? Valid keyword arguments: max_treedepth, target_accept.
    """  # noqa: E501
    valid = sorted(set(valid))
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
        if close:
            hints.append(f"Did you mean {' or '.join(repr(c) for c in close)}?")
    arguments = "arguments" if len(unknown) > 1 else "argument"
    names = ", ".join(repr(name) for name in unknown)
    raise TypeError(
        " ".join([f"{owner} got an unexpected keyword {arguments} {names}.", *hints])
        + f" Valid keyword arguments: {', '.join(valid)}."
    )
