"""PPL-agnostic numerics in plain JAX and NumPy; nothing here imports PyMC."""

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.integrators import leapfrog
from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP
from surrogate_hmc.core.schedule import Schedule, SchedulePlan, SwitchTest
from surrogate_hmc.core.surrogate import GradientSurrogate, surrogate_trajectory
from surrogate_hmc.core.training import TrainingConfig, TrainingResult, fit_network
from surrogate_hmc.core.transition import HMCInfo, HMCState, kinetic_energy, static_hmc_transition

__all__ = [
    "GradientSurrogate",
    "HMCInfo",
    "HMCState",
    "NetworkConfig",
    "Schedule",
    "SchedulePlan",
    "Standardization",
    "StandardizedMLP",
    "SwitchTest",
    "TrainingBuffer",
    "TrainingConfig",
    "TrainingResult",
    "fit_network",
    "kinetic_energy",
    "leapfrog",
    "static_hmc_transition",
    "surrogate_trajectory",
]
