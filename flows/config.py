"""Loading a flow's pydantic config from `configs/<method>/<name>.yaml` plus dotted command-line overrides."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
STORE_ENV = "WINNOW_STORE"  # names the store of every flow (and of `winnow ls` / `winnow report`)
DEFAULT_STORE = ".winnow/store"
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the field."""


def config_path(method: str, name: str) -> Path:
    """`name` is a config name under configs/<method>/ or a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in {".yaml", ".yml"} and candidate.exists():
        return candidate
    path = CONFIG_ROOT / method / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (CONFIG_ROOT / method).glob("*.yaml"))
        raise ConfigError(f"no config {name!r} for {method!r}: expected {path} (known: {known})")
    return path


def apply_override(tree: dict, dotted: str) -> None:
    """`a.b.c=value`: value parsed as YAML (numbers, bools, lists), so `sample.sampling.n=8` is an int."""
    if "=" not in dotted:
        raise ConfigError(f"override {dotted!r} must look like key.path=value")
    key, raw = dotted.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {dotted!r}: {key.strip()!r} is not a key path like a.b.c")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {dotted!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def load_config(model: type[M], method: str, name: str = "default", overrides: list[str] = ()) -> M:
    path = config_path(method, name)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(tree).__name__}")
    tree = unaliased(tree)
    apply_store_env(tree)
    for dotted in overrides:
        apply_override(tree, dotted)
    return validate_config(model, tree, str(path))


def unaliased(node: Any) -> Any:
    """The YAML tree with every alias its own copy: `rft_sft: *sft` loads as the very object `base_sft` is, so an
    override of `rft_sft.optim.steps` silently changed the base's steps too."""
    if isinstance(node, dict):
        return {key: unaliased(value) for key, value in node.items()}
    if isinstance(node, list):
        return [unaliased(value) for value in node]
    return node


def apply_store_env(tree: dict) -> None:
    """$WINNOW_STORE names the store for every flow, over what a config file says (a `-s store.url=...`
    override still wins): the one place it is applied."""
    url = os.environ.get(STORE_ENV)
    if url:
        store = tree.get("store")
        tree["store"] = (store if isinstance(store, dict) else {}) | {"url": url}


def validate_config(model: type[M], tree: dict[str, Any], source: str) -> M:
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")  # a validator's own message says what is wrong
            problems.append(f"{field}: {message}" + (f" (got {err['input']!r})" if err["type"] != "missing" and
                                                      not isinstance(err.get("input"), dict) else ""))
        if len(problems) == 1:  # one line: the file, the field, what is wrong
            raise ConfigError(f"invalid config {source}: {problems[0]}") from None
        raise ConfigError(f"invalid config {source}:\n" + "\n".join(f"  {p}" for p in problems)) from None
