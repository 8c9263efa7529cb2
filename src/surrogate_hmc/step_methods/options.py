"""``SurrogateHMC``'s constructor arguments, checked and resolved before any sampling."""

import inspect
from typing import Any, Literal

import numpy as np
import pytensor
from pymc.step_methods.hmc.nuts import NUTS
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt
from pymc.util import get_value_vars_from_user_vars
from pymc.vartypes import continuous_types

from surrogate_hmc.core.reuse import check_save_to, given_surrogate
from surrogate_hmc.core.surrogate import SurrogateKind
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.validation import check_choice, check_int, check_real

__all__ = [
    "MASS_MATRIX_WINDOW",
    "MIN_BUFFER_SIZE",
    "check_given",
    "check_kind",
    "check_numbers",
    "check_save_to",
    "continuous_value_vars",
    "discrete_names",
    "given_surrogate",
    "keyword_names",
    "nuts_options",
    "resolve_trajectory",
    "start_from_given",
]

MIN_BUFFER_SIZE = 64
"""Smallest training buffer: a fit holds out a fifth of it and needs rows to learn from."""
MASS_MATRIX_WINDOW = 10
"""Adaptation window of the ``QuadPotentialDiagAdapt`` we build (PyMC's default): for a given
surrogate's start, and for ACE's mass matrix."""


NOT_PASSED_ON = frozenset({"self", "vars", "model", "initial_point", "shared", "logp_dlogp_func"})
"""Keywords of NUTS that ``SurrogateHMC`` sets itself (or that would replace its functions)."""
NOT_COMPILE_OPTIONS = frozenset({"inputs", "outputs", "updates", "givens"})
"""Keywords of ``pytensor.function`` that would change the model's functions, not compile them."""


def keyword_names(function) -> set[str]:
    """The names ``function`` takes as keywords (not ``*args`` or ``**kwargs``)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds}


def nuts_options() -> set[str]:
    """The keyword arguments ``SurrogateHMC`` passes on to PyMC's NUTS, for this PyMC.

    The named parameters of the constructors of NUTS and its base classes, and the compile
    options of ``pytensor.function`` (PyMC passes unknown keywords on to it).

    Examples
    --------
    >>> {"max_treedepth", "Emax", "scaling", "step_scale", "mode"} <= nuts_options()
    True
    """
    names = set()
    for cls in NUTS.__mro__:
        if "__init__" in vars(cls):
            names |= keyword_names(vars(cls)["__init__"])
    names |= keyword_names(pytensor.function) - NOT_COMPILE_OPTIONS
    return names - NOT_PASSED_ON


def check_kind(surrogate: str) -> SurrogateKind:
    """The kind of surrogate to train, ``"gradient"`` or ``"logp"``."""
    return (
        "logp"
        if check_choice("surrogate", surrogate, ("gradient", "logp")) == "logp"
        else "gradient"
    )


def resolve_trajectory(
    kind: str, trajectory: str | None, n_steps: Any
) -> Literal["static", "nuts"]:
    """The surrogate trajectory, ``"static"`` or ``"nuts"``, checked against the other options."""
    if trajectory is None:
        trajectory = "nuts" if kind == "logp" else "static"
    check_choice("trajectory", trajectory, ("static", "nuts"))
    if trajectory == "nuts" and kind == "gradient":
        raise ValueError(
            "trajectory='nuts' needs a surrogate of the log-density to build trees with; a "
            "gradient surrogate has no energy. Use surrogate='logp' or trajectory='static'."
        )
    if n_steps is not None:
        check_int("n_steps", n_steps, optional=True)
        if trajectory == "nuts":
            raise ValueError(
                "n_steps sets static trajectories; NUTS chooses its own lengths. Drop n_steps "
                "or use trajectory='static'."
            )
    return "nuts" if trajectory == "nuts" else "static"


def check_numbers(buffer_size: Any, target_accept: Any, surrogate_transitions: Any) -> None:
    """Refuse numbers out of range."""
    check_int("buffer_size", buffer_size, minimum=MIN_BUFFER_SIZE)
    check_real("target_accept", target_accept, low=0.0, high=1.0, open_low=True, open_high=True)
    check_int("surrogate_transitions", surrogate_transitions)


def check_given(given: TrainedSurrogate, variables, prior_is_separable: bool) -> None:
    """Refuse a given surrogate that does not fit this sampler's variables or priors."""
    given.check_variables(variables)
    if given.exact_prior and not prior_is_separable:
        raise ValueError(
            "The given surrogate learned the likelihood only, but this model's priors "
            "depend on variables sampled by another step, so they cannot be added back."
        )


def start_from_given(given: TrainedSurrogate, dim: int, kwargs: dict) -> dict:
    """NUTS options that start the adaptation where the given surrogate's run ended."""
    kwargs = dict(kwargs)
    if "scaling" not in kwargs and "potential" not in kwargs:
        diagonal = given.inverse_mass
        if diagonal.ndim == 2:
            diagonal = np.diag(diagonal)
        kwargs["potential"] = QuadPotentialDiagAdapt(
            dim, given.center, diagonal, MASS_MATRIX_WINDOW
        )
    kwargs.setdefault("step_scale", given.step_size * dim**0.25)
    return kwargs


def continuous_value_vars(model, vars) -> list:
    """The value variables to sample; a clear error for discrete ones or none at all."""
    if vars is None:
        value_vars = model.continuous_value_vars
        if not value_vars:
            raise ValueError(
                "The model has no continuous free variables; SurrogateHMC samples continuous "
                "variables only. Use a sampler for discrete variables such as pm.Metropolis."
            )
        return value_vars
    value_vars = get_value_vars_from_user_vars(vars, model)
    discrete = discrete_names(value_vars)
    if discrete:
        raise ValueError(
            f"SurrogateHMC samples continuous variables only, but {discrete} are discrete. "
            "Give them to another step method (e.g. pm.Metropolis) in a list: "
            "pm.sample(step=[shmc.SurrogateHMC(vars=[...continuous...]), pm.Metropolis(...)])."
        )
    return value_vars


def discrete_names(value_vars) -> list[str]:
    """Names of the value variables that are not continuous."""
    return [v.name for v in value_vars if v.dtype not in continuous_types]
