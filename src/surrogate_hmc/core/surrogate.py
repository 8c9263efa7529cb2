"""Surrogates of a model's log-density: a network for the expensive part, exact code for the rest.

:class:`AbstractSurrogate` is the interface every sampler uses: a ``force`` (the gradient of the
log-density) for leapfrog, and, for surrogates that have one (``has_logdensity``), a
``logdensity`` for NUTS and the delayed-acceptance correction. The concrete surrogates are
final, in Equinox's abstract/final style; callers never branch on their type.
"""

import abc
from collections.abc import Callable
from typing import ClassVar, Literal

import equinox as eqx
import jax

from surrogate_hmc.core.network import StandardizedMLP
from surrogate_hmc.core.structure import StructuredNetwork

__all__ = [
    "SURROGATE_KINDS",
    "AbstractLearnedSurrogate",
    "AbstractSurrogate",
    "GradientSurrogate",
    "LogDensitySurrogate",
    "GBILogDensity",
    "SurrogateKind",
]

SurrogateKind = Literal["gradient", "logp"]
ExactPart = Callable[[jax.Array], jax.Array]


class AbstractSurrogate(eqx.Module):
    """A learned stand-in for a log-density, as the samplers' kernels see it.

    Learned from an exact model (``"gradient"``, ``"logp"``), a surrogate is a network for the
    expensive part (for example the log-likelihood) plus, optionally, the cheap part (priors and
    transform Jacobians) kept exact; ACE's generalized-Bayes log-density (``"gbi"``) is a prior
    plus a learned cost.
    """

    kind: eqx.AbstractClassVar[str]
    has_logdensity: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def force(self, position: jax.Array) -> jax.Array:
        """The surrogate gradient of the log-density at ``position``."""

    def logdensity(self, position: jax.Array) -> jax.Array:
        """The surrogate log-density at ``position`` (surrogates with ``has_logdensity``)."""
        raise TypeError(f"A {self.kind} surrogate has no log-density, only a force.")


class AbstractLearnedSurrogate(AbstractSurrogate):
    """A surrogate learned from an exact model: a network plus, optionally, the exact cheap part.

    ``network`` learns the expensive part of the model (for example the log-likelihood) and
    ``exact_logdensity``, when given, is the cheap part (priors and transform Jacobians) kept
    exact; without it the network learns everything.
    """

    network: eqx.AbstractVar[StandardizedMLP | StructuredNetwork]
    exact_logdensity: eqx.AbstractVar[ExactPart | None]
    kind: eqx.AbstractClassVar[SurrogateKind]


class GradientSurrogate(AbstractLearnedSurrogate):
    """Force field ``network(q) + grad(exact_logdensity)(q)`` (NNgHMC): no log-density.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from surrogate_hmc.core.network import NetworkConfig, Standardization
    >>> x = np.random.default_rng(0).normal(size=(8, 2))
    >>> net = StandardizedMLP(
    ...     NetworkConfig(width=4).build(2, 2, key=jax.random.key(0)),
    ...     Standardization.fit(x),
    ...     Standardization.fit(x),
    ...     np.full(2, 3.0),
    ... )
    >>> surrogate = GradientSurrogate(net, lambda q: -0.5 * q @ q)
    >>> surrogate.force(jnp.zeros(2)).shape, surrogate.has_logdensity
    ((2,), False)
    """

    network: StandardizedMLP
    exact_logdensity: ExactPart | None = eqx.field(static=True, default=None)
    kind: ClassVar[SurrogateKind] = "gradient"
    has_logdensity: ClassVar[bool] = False

    def force(self, position: jax.Array) -> jax.Array:
        """The network's gradient plus the exact part's."""
        force = self.network(position)
        if self.exact_logdensity is not None:
            force = force + jax.grad(self.exact_logdensity)(position)
        return force


class LogDensitySurrogate(AbstractLearnedSurrogate):
    """Log-density ``network(q) + exact_logdensity(q)``; its force is the gradient of that.

    The network (a :class:`~surrogate_hmc.core.structure.StructuredNetwork`: a Gaussian base and
    a bounded residual on whitened inputs) learns the expensive part in nats (up to a constant);
    the cheap part stays exact when ``exact_logdensity`` is given, and rules where the network
    saw no data. Being a true log-density, it can drive NUTS.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from surrogate_hmc.core.network import NetworkConfig
    >>> net = StructuredNetwork.build(NetworkConfig(width=4), 2, key=jax.random.key(0))
    >>> surrogate = LogDensitySurrogate(net, lambda q: -0.5 * q @ q)
    >>> surrogate.logdensity(jnp.zeros(2)).shape, surrogate.force(jnp.zeros(2)).shape
    ((), (2,))
    """

    network: StructuredNetwork
    exact_logdensity: ExactPart | None = eqx.field(static=True, default=None)
    kind: ClassVar[SurrogateKind] = "logp"
    has_logdensity: ClassVar[bool] = True

    def logdensity(self, position: jax.Array) -> jax.Array:
        """The network's value plus the exact part's."""
        value = self.network(position)[0]
        if self.exact_logdensity is not None:
            value = value + self.exact_logdensity(position)
        return value

    def force(self, position: jax.Array) -> jax.Array:
        """The gradient of :meth:`logdensity`."""
        return jax.grad(self.logdensity)(position)


class GBILogDensity(AbstractSurrogate):
    """ACE's generalized-Bayes log-density ``log p(theta) + log|J| - beta f(theta, x_o)``.

    ``prior`` is the exact prior plus Jacobian on the sampler's unconstrained vector ``q``,
    ``to_theta`` maps ``q`` to the parameters, and ``cost`` is the learned expected distance
    ``f(theta, x)`` (see :mod:`surrogate_hmc.core.cost_network`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> gbi = GBILogDensity(
    ...     lambda q: -0.5 * q @ q, lambda q: q, lambda theta, x: jnp.sum((theta - x) ** 2),
    ...     jnp.ones(2), 2.0,
    ... )
    >>> float(gbi.logdensity(jnp.zeros(2)))
    -4.0
    """

    prior: ExactPart = eqx.field(static=True)
    to_theta: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    cost: Callable[[jax.Array, jax.Array], jax.Array]
    observed: jax.Array
    beta: float
    kind: ClassVar[str] = "gbi"
    has_logdensity: ClassVar[bool] = True

    def logdensity(self, position: jax.Array) -> jax.Array:
        """The generalized-Bayes log-density at the unconstrained ``position``."""
        return self.prior(position) - self.beta * self.cost(self.to_theta(position), self.observed)

    def force(self, position: jax.Array) -> jax.Array:
        """The gradient of :meth:`logdensity`."""
        return jax.grad(self.logdensity)(position)


SURROGATE_KINDS: dict[str, type[GradientSurrogate | LogDensitySurrogate]] = {
    "gradient": GradientSurrogate,
    "logp": LogDensitySurrogate,
}
"""The surrogate class of each kind."""
