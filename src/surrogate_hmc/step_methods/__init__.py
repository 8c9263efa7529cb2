"""The PyMC front-end: step methods over the JAX core."""

from surrogate_hmc.step_methods.ace import ACE
from surrogate_hmc.step_methods.surrogate_hmc import (
    SurrogateCostWarning,
    SurrogateHMC,
    SurrogateWarning,
)

__all__ = ["ACE", "SurrogateCostWarning", "SurrogateHMC", "SurrogateWarning"]
