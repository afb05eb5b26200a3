"""Activation sweeps: stream a dataset through a model and keep bounded per-unit statistics.

Used by every pillar that reads natural activations (path check, audit, silent units, study
exemplars); shards of a dataset give results that merge exactly.
"""

from fvlab.activations.accumulators import Moments, Sample, TopK
from fvlab.activations.sweep import REDUCTIONS, SweepResult, merge_sweeps, reduce_activation, sweep

__all__ = [
    "REDUCTIONS",
    "Moments",
    "Sample",
    "SweepResult",
    "TopK",
    "merge_sweeps",
    "reduce_activation",
    "sweep",
]
