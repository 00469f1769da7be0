"""Named implementations that configs choose by name (losses, rejection criteria, labellers, reward combiners)."""
from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownName(KeyError, ValueError):
    """An unknown name: a KeyError for lookups, a ValueError so config validators report it as a field error."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(dict):
    """A dict of name → implementation with a decorator to add to it and a lookup that names what is known."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[F], F]:
        def wrap(fn: F) -> F:
            self[name] = fn
            return fn
        return wrap

    def lookup(self, name: str) -> Callable:
        if name not in self:
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {sorted(self)}")
        return self[name]
