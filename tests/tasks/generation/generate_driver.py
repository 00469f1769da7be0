"""A generation stage run as its own process, so a test can kill -9 it mid-stage and run it again.

usage: python tests/tasks/generation/generate_driver.py spec.json   (spec: ctx, cfg, problems, models as JSON)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[3])]

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

from tasks.generation.generate import GenerateConfig, sample_completions  # noqa: E402
from tasks.core.stage_cache import StageContext  # noqa: E402
from tasks.core.store import ArtifactRef  # noqa: E402

spec = json.loads(Path(sys.argv[1]).read_text())
ref = sample_completions.fn(
    "driver", ArtifactRef(**spec["problems"]), {m: ArtifactRef(**r) for m, r in spec["models"].items()},
    GenerateConfig(**spec["cfg"]), StageContext(**spec["ctx"]),
)
print("RESULT", ref.model_dump_json())
