"""`samcache sweep`'s settings: the text passes to re-score, and each composition setting's values to try."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from samcache.choices import COMPOSE_MODES
from samcache.pipeline.config import StageConfig, register
from samcache.pipeline.configs.fields import OUT_HELP, OVERWRITE_HELP, RunFolders

LISTS = "Comma-separated values (or repeat the option); default: the first run's own setting."
YES_NO = {"yes": True, "no": False, "true": True, "false": False}


def _split(values) -> list[str]:
    """["0.1,0.3", "0.5"] (or a YAML list of numbers) -> ["0.1", "0.3", "0.5"]."""
    if isinstance(values, (str, int, float, bool)):
        values = [values]
    out = [str(v).strip().lower() if isinstance(v, bool) else str(v).strip()
           for item in values for v in (item.split(",") if isinstance(item, str) else [item])]
    return list(dict.fromkeys(v for v in out if v))


@register
class SweepConfig(StageConfig):
    SECTION = "sweep"
    runs: RunFolders = Field(..., description="zero-shot --prompt text --keep-scores runs of one cache split (one "
                                             "per prompt set).", json_schema_extra={"argument": True})
    compose: list[str] = Field([], description=f"Rules to score: {', '.join(COMPOSE_MODES)}. " + LISTS)
    score_threshold: list[str] = Field([], description="instances and fused: presence x score thresholds. " + LISTS)
    min_instance_area: list[str] = Field([], description="instances: minimum areas in pixels. " + LISTS)
    semantic_threshold: list[str] = Field([], description="semantic-head: thresholds. " + LISTS)
    fused_presence: list[str] = Field([], description="fused: the presence factor, yes and/or no. " + LISTS)
    fused_instances: list[str] = Field([], description="fused: the instance term, yes and/or no. " + LISTS)
    fused_semantic: list[str] = Field([], description="fused: the semantic term, yes and/or no. " + LISTS)
    fused_threshold: list[str] = Field([], description="fused: thresholds on the best class score. " + LISTS)
    out: Optional[str] = Field(None, description=OUT_HELP.format(kind="sweep"))
    overwrite: bool = Field(False, description=OVERWRITE_HELP)

    @field_validator("compose", "score_threshold", "min_instance_area", "semantic_threshold", "fused_presence",
                     "fused_instances", "fused_semantic", "fused_threshold", mode="before")
    @classmethod
    def _values(cls, values, info):
        values = _split(values or [])
        name = "--" + info.field_name.replace("_", "-")
        for v in values:
            if info.field_name == "compose":
                ok = v in COMPOSE_MODES
            elif info.field_name.startswith("fused_") and info.field_name != "fused_threshold":
                ok = v.lower() in YES_NO
            elif info.field_name == "min_instance_area":
                ok = v.isdigit()
            else:
                try:
                    ok = 0.0 <= float(v) <= 1.0
                except ValueError:
                    ok = False
            if not ok:
                want = {"compose": f"one of {', '.join(COMPOSE_MODES)}", "min_instance_area": "an integer >= 0"}.get(
                    info.field_name, "yes or no" if info.field_name in ("fused_presence", "fused_instances",
                                                                         "fused_semantic") else "a number in [0, 1]")
                raise ValueError(f"{name} takes comma-separated values, each {want}; got {v!r}")
        return values
