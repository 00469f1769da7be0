"""Plain data across the sandbox boundary (tasks/labelling/verdicts.py): a tagged JSON-able encoding of values built
only from the exact built-in types. Standard library only: the sandbox imports this very file (shipped in as
source), so both sides encode and decode with the same code."""
from __future__ import annotations


class NotPlainData(TypeError):
    """A value that is not built from the plain types (an object with its own comparison, a generator, ...)."""


def encode(value, depth: int = 0):
    """A JSON-able tagged form of a plain value; exact types only (a subclass of int is not an int here)."""
    if depth > 50:
        raise NotPlainData("nested deeper than 50")
    kind = type(value)
    if value is None or kind in (bool, str):
        return [kind.__name__, value]
    if kind is int:
        return ["int", str(value)]
    if kind is float:
        return ["float", value.hex()]
    if kind is bytes:
        import base64  # here, not at the top: the sandbox imports this file for every program it runs

        return ["bytes", base64.b64encode(value).decode()]
    if kind in (list, tuple, set, frozenset):
        return [kind.__name__, [encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["dict", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    raise NotPlainData(f"a {kind.__name__} is not plain data")


def decode(tagged):
    """The value `encode` described; malformed input raises ValueError/TypeError (never runs code)."""
    kind, body = tagged
    simple = {"NoneType": lambda b: None, "bool": bool, "str": str, "int": int, "float": float.fromhex,
              "bytes": _b64decode}
    if kind in simple:
        value = simple[kind](body)
        if kind in ("bool", "str") and type(value) is not type(body):
            raise TypeError(f"bad {kind}")
        return value
    if kind in ("list", "tuple", "set", "frozenset"):
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind](decode(v) for v in body)
    if kind == "dict":
        return {decode(k): decode(v) for k, v in body}
    raise ValueError(f"unknown tag {kind!r}")


def _b64decode(body: str) -> bytes:
    import base64

    return base64.b64decode(body, validate=True)
