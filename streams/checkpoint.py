"""A partition's checkpoint record in the state table: thresholds, input clocks, triggers.

It is written after each batch's visitor records (same changelog partition), so a
recovered worker sees thresholds and clock history that match the recovered states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

META_PREFIX = b"__meta__/"


def meta_key(partition: int) -> bytes:
    return META_PREFIX + str(partition).encode()


@dataclass
class Checkpoint:
    thresholds: dict[str, int] = field(default_factory=dict)  # finality group -> window
    history: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    triggers_next_offset: int | None = None  # in the triggers partition

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "thresholds": self.thresholds,
                "history": self.history,
                "triggers_next_offset": self.triggers_next_offset,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        meta = orjson.loads(raw)
        return cls(
            thresholds={str(k): int(v) for k, v in meta["thresholds"].items()},
            history={
                stream: [(int(o), m) for o, m in history]
                for stream, history in meta["history"].items()
            },
            triggers_next_offset=meta.get("triggers_next_offset"),
        )
