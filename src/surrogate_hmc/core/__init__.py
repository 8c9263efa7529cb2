"""PPL-agnostic numerics in plain JAX and NumPy; nothing here imports PyMC."""

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.compiled import SurrogateNUTS, surrogate_nuts, surrogate_trajectory
from surrogate_hmc.core.cost_ledger import CostLedger
from surrogate_hmc.core.delayed_acceptance import DAInfo, DAState, delayed_acceptance_transition
from surrogate_hmc.core.history import ChainHistory, GateDecision
from surrogate_hmc.core.integrators import leapfrog
from surrogate_hmc.core.lifecycle import (
    Action,
    IterationStats,
    Lifecycle,
    LifecycleState,
    Phase,
    PilotRecord,
    TrainingRecord,
)
from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP
from surrogate_hmc.core.schedule import Schedule, SchedulePlan, SwitchTest
from surrogate_hmc.core.surrogate import (
    AbstractSurrogate,
    GradientSurrogate,
    LogDensitySurrogate,
)
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.training import (
    TrainingConfig,
    TrainingResult,
    fit_log_density,
    fit_network,
)
from surrogate_hmc.core.transition import HMCInfo, HMCState, kinetic_energy, static_hmc_transition

__all__ = [
    "AbstractSurrogate",
    "Action",
    "ChainHistory",
    "CostLedger",
    "DAInfo",
    "DAState",
    "GateDecision",
    "GradientSurrogate",
    "HMCInfo",
    "HMCState",
    "IterationStats",
    "Lifecycle",
    "LifecycleState",
    "LogDensitySurrogate",
    "NetworkConfig",
    "Phase",
    "PilotRecord",
    "Schedule",
    "SchedulePlan",
    "Standardization",
    "StandardizedMLP",
    "SurrogateNUTS",
    "SwitchTest",
    "TrainedSurrogate",
    "TrainingBuffer",
    "TrainingConfig",
    "TrainingRecord",
    "TrainingResult",
    "delayed_acceptance_transition",
    "fit_log_density",
    "fit_network",
    "kinetic_energy",
    "leapfrog",
    "static_hmc_transition",
    "surrogate_nuts",
    "surrogate_trajectory",
]
