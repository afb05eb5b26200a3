"""The classifier-gated fooling circuit (docs/fool.md, "The classifier-gated circuit").

* construction (maths): :mod:`.gate` — ``Circuit``, ``GateConstants``, ``derive_constants``,
  ``install``, ``rebuild`` (the saved-model constructor, registered as ``circuit``);
* the detector E: :mod:`.detector`, its training data :mod:`.trajectories` (natural images:
  :mod:`.natural`), and the train-detector job :mod:`.train_detector` for any model (settings
  in :mod:`.settings`, importable without torch);
* which logits are classes (lucid's InceptionV1: 1000 of 1008): :mod:`.logits`;
* building it from data: :mod:`.build` — ``build_circuit(model, natural, CircuitConstruction)``;
* evaluating it: :mod:`.evaluate`;
* the job: :mod:`.job` — ``run_circuit(model, CircuitSettings, out) -> CircuitResult``.

Names are imported lazily, so importing the settings costs nothing.
"""

from __future__ import annotations

from fvlab.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "BuiltCircuit": "fvlab.fool.circuit.build",
        "CircuitConstruction": "fvlab.fool.circuit.build",
        "build_circuit": "fvlab.fool.circuit.build",
        "default_detector_path": "fvlab.fool.circuit.build",
        "Detector": "fvlab.fool.circuit.detector",
        "load_detector": "fvlab.fool.circuit.detector",
        "DetectorTraining": "fvlab.fool.circuit.settings",
        "DetectorSettings": "fvlab.fool.circuit.settings",
        "compare_outputs": "fvlab.fool.circuit.evaluate",
        "count_violations": "fvlab.fool.circuit.evaluate",
        "fooling_measures": "fvlab.fool.circuit.evaluate",
        "Circuit": "fvlab.fool.circuit.gate",
        "GateConstants": "fvlab.fool.circuit.gate",
        "derive_constants": "fvlab.fool.circuit.gate",
        "install": "fvlab.fool.circuit.gate",
        "rebuild": "fvlab.fool.circuit.gate",
        "CircuitResult": "fvlab.fool.circuit.job",
        "CircuitSettings": "fvlab.fool.circuit.job",
        "run_circuit": "fvlab.fool.circuit.job",
        "DetectorResult": "fvlab.fool.circuit.train_detector",
        "run_train_detector": "fvlab.fool.circuit.train_detector",
    },
)
