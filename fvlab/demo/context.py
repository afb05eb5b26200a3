"""What the demo's sections share: output folder, seed, progress flag, collected numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoContext:
    out: Path
    seed: int = 0
    full: bool = False
    show_progress: bool = True
    numbers: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def folder(self, name: str) -> Path:
        path = self.out / name
        path.mkdir(parents=True, exist_ok=True)
        return path
