"""``jax.jit`` for functions whose static arguments change from model to model.

A module-level ``jax.jit`` (or ``eqx.filter_jit``) keeps every program it has compiled for as
long as the process lives, one per value of its static arguments. Ours include a model's
log-density and the surrogate's structure, new with every model, so a process that samples many
models (a simulation study, a notebook, a test suite) would pile up executables, each holding
dozens of memory maps of compiled code, until it reached Linux's limit on memory maps (65,530)
and XLA crashed. Here each static value gets a ``jax.jit`` of its own, and only the most recent
ones are kept: a dropped program's executables are freed with it.
"""

import functools
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import equinox as eqx
import jax

__all__ = ["RECENT_KEPT", "RecentJit", "RecentPrograms", "Structure", "recent_jit"]

RECENT_KEPT = 16
"""Programs kept per store: more than one run compiles, so a run never compiles one twice."""

Program = TypeVar("Program")


class Structure:
    """A pytree without its arrays, hashed once.

    Split once (as the surrogate kernels do, per surrogate), a module passed as a flat list of
    arrays plus this structure costs ``jax.jit`` neither a hash nor a flatten per call.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> structure, leaves = Structure.split((jnp.ones(2), "static"))
    >>> len(leaves), structure.rebuild(leaves)[1]
    (1, 'static')
    """

    __slots__ = ("_hash", "static", "static_treedef", "treedef")

    def __init__(self, treedef, static: tuple, static_treedef) -> None:
        self.treedef, self.static, self.static_treedef = treedef, static, static_treedef
        self._hash = hash((treedef, static, static_treedef))

    @classmethod
    def split(cls, tree: Any) -> tuple["Structure", list[jax.Array]]:
        """The structure of ``tree`` and its arrays."""
        params, static = eqx.partition(tree, eqx.is_array)
        leaves, treedef = jax.tree.flatten(params)
        static_leaves, static_treedef = jax.tree.flatten(static)
        return cls(treedef, tuple(static_leaves), static_treedef), leaves

    def rebuild(self, leaves):
        """The tree, with ``leaves`` as its arrays."""
        static = jax.tree.unflatten(self.static_treedef, self.static)
        return eqx.combine(jax.tree.unflatten(self.treedef, leaves), static)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return isinstance(other, Structure) and (
            self.treedef == other.treedef
            and self.static_treedef == other.static_treedef
            and self.static == other.static
        )


class RecentPrograms(Generic[Program]):
    """Programs built for the most recent keys; older ones are dropped, and freed.

    Examples
    --------
    >>> programs = RecentPrograms(kept=2)
    >>> [programs.get(key, lambda: object()) is not None for key in "abca"]
    [True, True, True, True]
    >>> len(programs)
    2
    """

    def __init__(self, kept: int = RECENT_KEPT) -> None:
        self._kept = kept
        self._programs: OrderedDict[Hashable, Program] = OrderedDict()
        self._lock = threading.Lock()  # the rehearsal compiles from a thread of its own

    def get(self, key: Hashable, build: Callable[[], Program]) -> Program:
        """The program of ``key``, built by ``build()`` if it is not among the recent ones."""
        with self._lock:
            if key in self._programs:
                self._programs.move_to_end(key)
                return self._programs[key]
            program = self._programs[key] = build()
            if len(self._programs) > self._kept:
                self._programs.popitem(last=False)
            return program

    def __len__(self) -> int:
        return len(self._programs)


def _compile(fn: Callable[..., Any], structure: Structure) -> Any:
    """``fn`` compiled for the static arguments of ``structure``, called with its arrays."""

    def program(leaves: list[jax.Array]) -> Any:
        args, kwargs = structure.rebuild(leaves)
        return fn(*args, **kwargs)

    program.__name__ = program.__qualname__ = getattr(fn, "__name__", "program")  # JAX's logs
    return jax.jit(program)


class RecentJit:
    """``eqx.filter_jit(fn)`` that keeps the programs of the most recent static arguments only.

    As with ``eqx.filter_jit``, array arguments are traced and every other leaf is static
    (hashable, compared by ``==``), and arguments left to their defaults share the program of
    the same arguments given. Unlike it, ``fn`` must return arrays (a pytree of them), and each
    call splits, hashes and compares its arguments: meant for calls that do much work each.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> scaled = recent_jit(lambda x, factor: factor * x)
    >>> scaled(jnp.ones(2), 3.0).tolist()
    [3.0, 3.0]
    """

    def __init__(self, fn: Callable[..., Any], kept: int = RECENT_KEPT) -> None:
        self.fn = fn
        self._signature = inspect.signature(fn)
        self._programs: RecentPrograms[Any] = RecentPrograms(kept)
        functools.update_wrapper(self, fn)

    def _program(self, args, kwargs) -> tuple[Any, list[jax.Array]]:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        structure, leaves = Structure.split((bound.args, bound.kwargs))
        program = self._programs.get(structure, lambda: _compile(self.fn, structure))
        return program, leaves

    def __call__(self, *args, **kwargs):
        """``fn(*args, **kwargs)``, compiled."""
        program, leaves = self._program(args, kwargs)
        return program(leaves)

    def lower(self, *args, **kwargs):
        """Lower the program for these arguments, as ``jax.jit(fn).lower`` does."""
        program, leaves = self._program(args, kwargs)
        return program.lower(leaves)


def recent_jit(fn: Callable[..., Any]) -> RecentJit:
    """Decorate ``fn`` as :class:`RecentJit`: compiled, keeping recent static arguments' programs.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> @recent_jit
    ... def norm(x):
    ...     return jnp.sqrt(x @ x)
    >>> float(norm(jnp.array([3.0, 4.0])))
    5.0
    """
    return RecentJit(fn)
