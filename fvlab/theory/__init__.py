"""Numeric demonstrations of why a feature visualization cannot predict a general unit.

One module per demonstration; each has a ``demonstrate_*`` function returning a result with the
measured numbers and checks, and a ``plot_*`` function. :func:`run_theory` (the job behind
``fvlab theory``) runs them all.
These are numeric illustrations of the mechanisms described in the paper, not its theorems.

* :mod:`~fvlab.theory.relu_tents` — add ReLU tents to any ReLU MLP without changing its
  visualization; any decoder then errs by at least half the tent height.
* :mod:`~fvlab.theory.affine` — ordering pairs of inputs of an affine unit from its arg max.
* :mod:`~fvlab.theory.lipschitz` — the radius in which the arg max certifies the value.
* :mod:`~fvlab.theory.convex_monotone` — convex / monotone pairs with identical extrema.
* :mod:`~fvlab.theory.toy_fooling` — a 2-D classifier with a gated, fooling unit.
* :mod:`~fvlab.theory.erm` — two ERM-trained networks with the same loss and extremes.
* :mod:`~fvlab.theory.positive` — constants and affine units of one input, decoded exactly.
* :mod:`~fvlab.theory.lipschitz_small` — the L below which the visualization bounds f everywhere.
* :mod:`~fvlab.theory.structured` — single-index monotone networks vs unstructured ones.

:mod:`~fvlab.theory.table` turns the results into P1's table of function classes.
"""

from fvlab.theory.run import TheoryResult, TheorySettings, run_theory

__all__ = ["TheoryResult", "TheorySettings", "run_theory"]
