"""The classifier-gated fooling circuit (docs/fool.md, "The classifier-gated circuit").

* construction (maths): :mod:`.gate` — ``Circuit``, ``GateConstants``, ``derive_constants``,
  ``install``, ``rebuild`` (the saved-model constructor, registered as ``circuit``);
* the detector E: :mod:`.detector`, its training data :mod:`.trajectories`, and the
  train-detector job :mod:`.train_detector`;
* building it from data: :mod:`.build` — ``build_circuit(model, natural, CircuitConstruction)``;
* evaluating it: :mod:`.evaluate`;
* the job: :mod:`.job` — ``run_circuit(model, CircuitSettings, out) -> CircuitResult``.
"""

from fvlab.fool.circuit.build import (
    BuiltCircuit,
    CircuitConstruction,
    build_circuit,
    default_detector_path,
)
from fvlab.fool.circuit.detector import Detector, DetectorTraining, load_detector
from fvlab.fool.circuit.evaluate import compare_outputs, count_violations, fooling_measures
from fvlab.fool.circuit.gate import Circuit, GateConstants, derive_constants, install, rebuild
from fvlab.fool.circuit.job import CircuitResult, CircuitSettings, run_circuit
from fvlab.fool.circuit.train_detector import (
    DetectorResult,
    DetectorSettings,
    run_train_detector,
)

__all__ = [
    "BuiltCircuit",
    "Circuit",
    "CircuitConstruction",
    "CircuitResult",
    "CircuitSettings",
    "Detector",
    "DetectorResult",
    "DetectorSettings",
    "DetectorTraining",
    "GateConstants",
    "build_circuit",
    "compare_outputs",
    "count_violations",
    "default_detector_path",
    "derive_constants",
    "fooling_measures",
    "install",
    "load_detector",
    "rebuild",
    "run_circuit",
    "run_train_detector",
]
