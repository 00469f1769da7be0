"""Process defaults every entry point sets before Prefect, Ray or vLLM are imported (each can be overridden)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def apply_defaults() -> None:
    state = Path(os.environ.get("WINNOW_HOME", PROJECT_ROOT / ".winnow"))
    defaults = {
        "PREFECT_HOME": str(state / "prefect"),
        # Ephemeral Prefect: analytics off avoids sqlite "database is locked" noise (shared/STACK.md), and a
        # 2-core machine busy with Ray needs more than the default 20 s to start the temporary API server.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        # Ray 2.60 token auth is for shared clusters (docs/deploy.md): on when a token is given, else off for the
        # in-process one
        "RAY_AUTH_MODE": "token" if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        else "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "VLLM_CACHE_ROOT": str(state / "cache" / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(state / "cache" / "inductor"),
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
