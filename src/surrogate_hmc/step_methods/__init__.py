"""The PyMC front-end: step methods over the JAX core."""

from surrogate_hmc.step_methods.ace import ACE
from surrogate_hmc.step_methods.messages import SurrogateCostWarning, SurrogateWarning
from surrogate_hmc.step_methods.surrogate_hmc import SurrogateHMC

__all__ = ["ACE", "SurrogateCostWarning", "SurrogateHMC", "SurrogateWarning"]
