"""``ACE``: NUTS on the generalized-Bayes posterior of a simulator model, with a learned cost."""

import os
import time
from dataclasses import field
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
import pymc as pm
from pymc.blocking import RaveledVars
from pymc.step_methods.arraystep import ArrayStepShared
from pymc.step_methods.compound import Competence, StepMethodState
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt
from pymc.step_methods.state import dataclass_state

from surrogate_hmc.core.surrogate import GBILogDensity
from surrogate_hmc.core.validation import check_int, check_options, check_real
from surrogate_hmc.estimator import CostEstimator
from surrogate_hmc.simulation import SimulatorModel
from surrogate_hmc.step_methods.kernel import STATS, KernelSettings, KernelState, SurrogateKernel
from surrogate_hmc.step_methods.model_functions import (
    constrained_parameters,
    exact_prior_logdensity,
)
from surrogate_hmc.step_methods.options import MASS_MATRIX_WINDOW, keyword_names
from surrogate_hmc.step_methods.processes import INTERRUPTS, refuse_fork_after_jax
from surrogate_hmc.step_methods.progress import PhaseProgressBar

__all__ = ["ACE"]

INITIAL_STEP_SCALE = 0.25
"""The first step size is ``INITIAL_STEP_SCALE / dim**0.25``, as in PyMC's NUTS."""


@dataclass_state
class ACEState(StepMethodState):
    potential: Any
    kernel_state: KernelState | None
    tune: bool
    iter_count: int
    beta: float = field(metadata={"frozen": True})


class ACE(PhaseProgressBar, ArrayStepShared):
    """Sample ``p(theta | x_o) ∝ p(theta) exp(-beta f(theta, x_o))`` of a ``pm.Simulator`` model.

    ``f`` is a :class:`~surrogate_hmc.CostEstimator`: a network of the expected distance between
    simulations at ``theta`` and the observation ``x_o`` (amortized cost estimation,
    arXiv:2305.15208). Sampling runs no simulation: NUTS (BlackJAX, one compiled call per draw)
    runs on that log-density, with the priors and transform Jacobians exact, and adapts its step
    size and diagonal mass matrix during tuning as PyMC's NUTS does. The same estimator serves
    any observation of the same shape: a model with the same parameters and another observed
    value needs no new simulation.

    Parameters
    ----------
    vars
        The model's free variables (default: all; ACE samples them all jointly).
    estimator
        A fitted :class:`~surrogate_hmc.CostEstimator`, or the path of a saved one. Without it,
        one is fit first with ``n_simulations`` and ``fit_kwargs``.
    beta
        Inverse temperature of the generalized-Bayes posterior (> 0): larger values concentrate
        it on parameters whose simulations are closer to the data.
    n_simulations
        Simulations for the estimator fit when none is given.
    fit_kwargs
        Other arguments of :meth:`CostEstimator.fit` (``distance``, ``executor``, ...).
    target_accept, max_treedepth, max_energy_error
        NUTS settings, as in PyMC's NUTS.
    model
        The model (default: the one in context).
    rng
        Seed or generator (``pm.sample`` sets one per chain).

    Notes
    -----
    There is no exact model to correct with: the network *defines* the generalized-Bayes
    posterior, as in the paper. Its accuracy is the estimator's ``validation_error``.

    Sample stats: those of ``SurrogateHMC`` (one table, from the kernel both share), with
    ``model_logp`` the generalized-Bayes log-density, ``phase`` always 1 (surrogate), the exact
    evaluations ``n_exact_grad`` and ``n_exact_logp`` always 0 (no simulation runs while
    sampling), and ``surrogate_error`` and ``second_stage_acceptance`` always ``nan`` (there
    is no exact model to compare the network with).

    Examples
    --------
    >>> import numpy as np, pymc as pm, surrogate_hmc as shmc
    >>> def simulate(rng, theta, size=None):
    ...     return theta + 0.1 * rng.normal(size=2)
    >>> with pm.Model() as model:
    ...     theta = pm.Uniform("theta", -1, 1, shape=2)
    ...     _ = pm.Simulator("x", simulate, theta, observed=np.zeros(2))
    ...     step = shmc.ACE(beta=10.0, n_simulations=200, fit_kwargs={
    ...         "executor": None, "progressbar": False, "random_seed": 0,
    ...         "training": shmc.TrainingConfig(max_steps=200)})
    ...     idata = pm.sample(step=step, tune=100, draws=100, chains=1, progressbar=False,
    ...                       compute_convergence_checks=False, random_seed=0)
    >>> float(idata.posterior["theta"].mean()) ** 2 < 0.25
    True
    """

    name = "ace"
    default_blocked = True
    stats_dtypes_shapes: ClassVar[dict[str, tuple[Any, list | None]]] = STATS
    _state_class = ACEState

    def __init__(
        self,
        vars=None,
        *,
        estimator: CostEstimator | str | os.PathLike | None = None,
        beta: float = 1.0,
        n_simulations: int = 2000,
        fit_kwargs: dict[str, Any] | None = None,
        target_accept: float = 0.8,
        max_treedepth: int = 10,
        max_energy_error: float = 1000.0,
        model=None,
        rng=None,
        **unknown,
    ) -> None:
        check_options("ACE", unknown, keyword_names(ACE.__init__) - {"self"})
        if fit_kwargs is not None:
            if not isinstance(fit_kwargs, dict):
                raise TypeError(f"fit_kwargs must be a dict, got {type(fit_kwargs).__name__}.")
            fit_options = keyword_names(CostEstimator.fit) - {"model", "n_simulations"}
            check_options("ACE's fit_kwargs (for CostEstimator.fit)", fit_kwargs, fit_options)
        model = pm.modelcontext(model)
        beta = check_real("beta", beta, low=0.0, open_low=True)
        target_accept = check_real(
            "target_accept", target_accept, low=0.0, high=1.0, open_low=True, open_high=True
        )
        simulator_model = SimulatorModel.from_model(model)
        free_values = [model.rvs_to_values[rv] for rv in model.free_RVs]
        if vars is not None:
            chosen = {model.rvs_to_values.get(v, v) for v in vars}
            if chosen != set(free_values):
                raise ValueError(
                    "ACE samples all of the model's free variables jointly "
                    f"({[v.name for v in model.free_RVs]}); do not combine it with other steps."
                )
        if estimator is None:
            fit_kwargs = {"random_seed": None, **(fit_kwargs or {})}
            estimator = CostEstimator.fit(model, n_simulations, **fit_kwargs)
        elif isinstance(estimator, str | os.PathLike):
            estimator = CostEstimator.load(estimator)
        elif not isinstance(estimator, CostEstimator):
            raise TypeError(
                f"estimator must be a CostEstimator or the path of a saved one, got "
                f"{type(estimator).__name__}."
            )
        estimator.check(simulator_model)
        self.estimator = estimator
        self.beta = beta
        self._kernel = SurrogateKernel(
            KernelSettings(
                "nuts",
                target_accept=target_accept,
                max_treedepth=int(check_int("max_treedepth", max_treedepth)),
                max_energy_error=check_real("max_energy_error", max_energy_error, low=0.0),
            )
        )
        self._model = model
        self._observed = simulator_model.observed
        point = model.initial_point()
        self._variables = [(v.name, point[v.name].shape) for v in free_values]
        self._dim = int(sum(np.size(point[v.name]) for v in free_values))
        self._surrogate: GBILogDensity | None = None  # built in the chain's process
        super().__init__(free_values, {}, rng=rng)
        self._reset_chain()

    @staticmethod
    def competence(var, has_grad):
        """ACE is never chosen automatically: pass it as ``step=``."""
        return Competence.INCOMPATIBLE

    @property
    def training_history(self) -> tuple:
        """Nothing is trained while sampling: the cost network was fit before (``estimator``)."""
        return ()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_surrogate"] = None
        return state

    def _reset_chain(self) -> None:
        self.tune = True
        self.iter_count = 0
        self.potential = QuadPotentialDiagAdapt(
            self._dim, np.zeros(self._dim), np.ones(self._dim), MASS_MATRIX_WINDOW
        )
        self.kernel_state: KernelState | None = None  # started on the first step

    def setup_chain(self, rng, tune: int, draws: int) -> None:
        """Start a chain (PyMC 6): fresh adaptation."""
        super().setup_chain(rng, tune, draws)
        INTERRUPTS.watch()
        INTERRUPTS.forget()
        self._reset_chain()

    def set_rng(self, rng) -> None:
        """Start a chain (PyMC 5): fresh adaptation."""
        super().set_rng(rng)
        INTERRUPTS.watch()
        INTERRUPTS.forget()
        self._reset_chain()

    def reset_tuning(self, start=None) -> None:
        """Restart tuning from scratch (PyMC calls this as each chain starts)."""
        self._reset_chain()

    def stop_tuning(self) -> None:
        """Freeze step size and mass matrix for the draws."""
        self.tune = False

    def astep(self, q0: RaveledVars) -> tuple[RaveledVars, list[dict[str, Any]]]:
        """One NUTS transition on the generalized-Bayes log-density."""
        INTERRUPTS.raise_missed()
        perf_start, process_start = time.perf_counter(), time.process_time()
        if self.kernel_state is None:
            refuse_fork_after_jax("ACE")
            step_size = INITIAL_STEP_SCALE / self._dim**0.25
            self.kernel_state = self._kernel.start(self._gbi_logdensity(), step_size=step_size)
        self.kernel_state, position, stats = self._kernel.step(
            self.kernel_state, self.rng, q0.data, self.potential, exact_logp=None,
            tune=self.tune, iteration=self.iter_count,
        )  # fmt: skip
        self.iter_count += 1
        stats |= {
            "n_exact_grad": 0,
            "n_exact_logp": 0,
            "perf_counter_diff": time.perf_counter() - perf_start,
            "process_time_diff": time.process_time() - process_start,
            "perf_counter_start": perf_start,
        }
        return RaveledVars(position, q0.point_map_info), [stats]

    def _gbi_logdensity(self) -> GBILogDensity:
        if self._surrogate is None:
            prior = exact_prior_logdensity(self._model, self.vars, self._variables)
            if prior is None:
                raise ValueError(
                    "ACE needs the priors in JAX, and a prior of this model has no JAX "
                    "implementation in PyTensor."
                )
            to_theta = constrained_parameters(self._model, self.vars, self._variables)
            self._surrogate = GBILogDensity(
                prior, to_theta, self.estimator.build(), jnp.asarray(self._observed), self.beta
            )
        return self._surrogate
