"""The one seam to the exact model: every exact evaluation, its cost, and the training data.

PyMC's NUTS (the exact phase) and the surrogate kernel's correction both evaluate the model
here, and nowhere else. Each evaluation is counted in one :class:`~surrogate_hmc.core.CostLedger`
and, while the chain's lifecycle says so, written to the one
:class:`~surrogate_hmc.core.TrainingBuffer`, one row per position (at most
``MAX_POINTS_PER_ITERATION`` per iteration, evenly spaced along it).
"""

import functools
import time
from dataclasses import dataclass, field

import numpy as np
from pymc.model import Model

from surrogate_hmc.core.buffer import MAX_POINTS_PER_ITERATION, TrainingBuffer, evenly_spaced
from surrogate_hmc.core.cost_ledger import CostLedger
from surrogate_hmc.step_methods.pymc_internals import (
    compiled_logp,
    route_logp_dlogp,
)

__all__ = ["ExactModel", "ExactRecord"]


@dataclass
class ExactRecord:
    """What one chain's exact evaluations left behind: their costs and the training data.

    While ``collecting``, an iteration's evaluations wait in ``pending`` until :meth:`flush`
    writes at most ``MAX_POINTS_PER_ITERATION`` of them, evenly spaced, to ``buffer``.
    """

    buffer: TrainingBuffer
    ledger: CostLedger = field(default_factory=CostLedger)
    collecting: bool = False
    """Whether evaluations are kept for ``buffer`` now."""
    pending: list[tuple[np.ndarray, float, np.ndarray | None]] = field(default_factory=list)
    """This iteration's evaluations, in the order they were made."""

    def keep(self, q: np.ndarray, logp: float, gradient: np.ndarray | None) -> None:
        """Keep one evaluation for the buffer (copies: PyMC may reuse its arrays)."""
        if self.collecting:
            copy = None if gradient is None else np.array(gradient, dtype=np.float64)
            self.pending.append((np.array(q, dtype=np.float64), logp, copy))

    def flush(self, most: int = MAX_POINTS_PER_ITERATION) -> None:
        """Write at most ``most`` of the kept evaluations, evenly spaced, to the buffer."""
        pending, self.pending = self.pending, []
        for i in evenly_spaced(len(pending), most):
            self.buffer.add(*pending[i])


class ExactModel:
    """The exact log-density (with or without gradient) on the raveled vector of ``value_vars``.

    Parameters
    ----------
    model, value_vars, initial_point
        The PyMC model and the variables sampled.
    integrator
        PyMC NUTS's leapfrog integrator: its evaluations are routed through
        :meth:`logp_and_gradient`.
    extra_names
        The variables of the model that other step methods sample (see
        :meth:`set_extra_values`).

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> with pm.Model() as model:
    ...     x = pm.Normal("x", shape=2)
    ...     nuts = pm.NUTS()
    >>> exact = ExactModel(model, nuts.vars, model.initial_point(), nuts.integrator)
    >>> exact.record = ExactRecord(TrainingBuffer(capacity=8, dim=2), collecting=True)
    >>> bool(exact.logp(np.zeros(2)) == exact.logp_and_gradient(np.zeros(2))[0])
    True
    >>> exact.record.flush()
    >>> exact.record.ledger.n_logp, exact.record.ledger.n_grad, len(exact.record.buffer)
    (1, 1, 1)
    """

    def __init__(
        self,
        model: Model,
        value_vars: list,
        initial_point: dict,
        integrator,
        extra_names: tuple[str, ...] = (),
    ) -> None:
        self._build_logp_function = functools.partial(
            model.logp_dlogp_function, value_vars, ravel_inputs=True, compute_grads=False,
            initial_point=initial_point,
        )  # fmt: skip
        self._logp_dlogp = route_logp_dlogp(integrator, lambda _: self._routed)
        self.extra_names = extra_names
        self._extra_values: dict[str, np.ndarray] | None = None
        self.record = ExactRecord(TrainingBuffer(capacity=1, dim=1))

    @functools.cached_property
    def _logp_function(self):
        # Compiled at its first use: a chain the cost gate keeps on NUTS may never need it.
        function = self._build_logp_function()
        if self._extra_values is not None:
            function.set_extra_values(self._extra_values)
        return function

    @functools.cached_property
    def _logp(self):
        return compiled_logp(self._logp_function)

    def logp(self, q: np.ndarray) -> float:
        """The exact log-density at ``q``, counted and (while collecting) kept, value only."""
        start = time.perf_counter()
        logp = float(self._logp(q)[0])
        self.record.ledger.add_logp(time.perf_counter() - start)
        self.record.keep(q, logp, None)
        return logp

    def logp_and_gradient(self, q: np.ndarray) -> tuple[float, np.ndarray]:
        """The exact log-density and its gradient at ``q``, counted and (while collecting) kept."""
        return self._routed(q, None)

    def _routed(self, q: np.ndarray, point_map_info) -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        logp, gradient = self._logp_dlogp(q, point_map_info)
        self.record.ledger.add_grad(time.perf_counter() - start)
        self.record.keep(q, logp, gradient)
        return logp, gradient

    def set_extra_values(self, point: dict[str, np.ndarray]) -> bool:
        """Take the current values of the variables other steps sample; ``True`` if they changed.

        NUTS's own function gets them from PyMC; the log-density-only function gets them here
        (when it is built, if it is not yet).
        """
        if not self.extra_names:
            return False
        extra = {name: np.array(point[name]) for name in self.extra_names}
        known = self._extra_values
        if known is not None and all(np.array_equal(extra[n], known[n]) for n in extra):
            return False
        self._extra_values = extra
        if "_logp_function" in self.__dict__:
            self._logp_function.set_extra_values(extra)
        return True
