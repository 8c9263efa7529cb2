"""The PyMC front-end: step methods over the JAX core."""

from surrogate_hmc.step_methods.surrogate_hmc import SurrogateHMC, SurrogateWarning

__all__ = ["SurrogateHMC", "SurrogateWarning"]
