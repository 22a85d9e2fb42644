"""Funnel definitions (config, not code) and their loading."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from schemas.model import STREAM_OF_EVENT
from streams.errors import FunnelConfigError

Scope = Literal["session", "user"]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
# Package data (pyproject.toml: [tool.setuptools.package-data] streams), so an installed
# wheel finds it too.
DEFAULT_FUNNELS: Final[Traversable] = files("streams") / "funnels.yaml"
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class FunnelDef:
    name: str
    steps: tuple[str, ...]
    scope: Scope
    window_ms: int

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self.steps)


def parse_duration_ms(text: str) -> int:
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"duration {text!r} is not like 30m, 1h or 7d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def _funnel_from_mapping(raw: Any, source: str) -> FunnelDef:
    if not isinstance(raw, dict):
        raise FunnelConfigError(
            f"{source}: each funnel must be a mapping with name/steps/scope/window"
        )
    name = str(raw.get("name", "")).strip()
    where = f"{source}: funnel {name or '<unnamed>'}"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
        raise FunnelConfigError(f"{where}: name must be lower_snake_case (a-z, 0-9, _)")
    steps = raw.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        raise FunnelConfigError(f"{where}: 'steps' must list at least two event types")
    unknown = [s for s in steps if s not in STREAM_OF_EVENT]
    if unknown:
        raise FunnelConfigError(
            f"{where}: unknown event type(s) {unknown}; use types from schemas/model.py"
        )
    scope = raw.get("scope", "session")
    if scope not in ("session", "user"):
        raise FunnelConfigError(f"{where}: scope must be 'session' or 'user', got {scope!r}")
    try:
        window_ms = parse_duration_ms(raw.get("window", "1h"))
    except ValueError as exc:
        raise FunnelConfigError(f"{where}: {exc}") from exc
    if len(steps) > 20:
        raise FunnelConfigError(f"{where}: at most 20 steps are supported")
    return FunnelDef(name=name, steps=tuple(steps), scope=scope, window_ms=window_ms)


def parse_funnels(text: str, source: str = "<funnels>") -> tuple[FunnelDef, ...]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FunnelConfigError(f"{source}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("funnels"), list):
        raise FunnelConfigError(f"{source}: expected a top-level 'funnels:' list")
    funnels = tuple(_funnel_from_mapping(raw, source) for raw in doc["funnels"])
    names = [f.name for f in funnels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FunnelConfigError(f"{source}: funnel names must be unique, repeated: {duplicates}")
    return funnels


def load_funnels(path: Path | None = None) -> tuple[FunnelDef, ...]:
    """Load funnels from ``path`` or the packaged default ``streams/funnels.yaml``."""
    if path is None:
        try:
            default = DEFAULT_FUNNELS.read_text("utf-8")
        except OSError as exc:
            raise FunnelConfigError(
                f"cannot read the packaged default funnels {DEFAULT_FUNNELS}: {exc.strerror}; "
                "reinstall shop-funnel with its package data (streams/funnels.yaml) or pass "
                "a funnel file (funnel worker --funnels FILE)"
            ) from exc
        return parse_funnels(default, "streams/funnels.yaml")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise FunnelConfigError(f"cannot read funnel file {path}: {exc.strerror}") from exc
    return parse_funnels(text, str(path))
