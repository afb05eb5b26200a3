"""What the demo's sections share: output folder, seed, progress flag, collected numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoContext:
    """``weights``/``detector``: the reference model's weights and the circuit's detector —
    None for the committed ones, files retrained by ``--full`` otherwise."""

    out: Path
    seed: int = 0
    full: bool = False
    show_progress: bool = True
    weights: Path | None = None
    detector: Path | None = None
    numbers: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def load(self):
        """The reference model the demo works on."""
        import fvlab

        return fvlab.load("fmnist-cnn", self.weights)

    def folder(self, name: str) -> Path:
        path = self.out / name
        path.mkdir(parents=True, exist_ok=True)
        return path
