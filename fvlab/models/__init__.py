"""Models: input specs, the zoo, layer hooks, probing, the embedded reference model, and the
model jobs (``fvlab evaluate``, ``fvlab train-reference``). Names load lazily."""

from __future__ import annotations

from fvlab.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "InputSpec": "fvlab.models.spec",
        "LoadedModel": "fvlab.models.zoo",
        "load": "fvlab.models.zoo",
        "from_module": "fvlab.models.zoo",
        "capture": "fvlab.models.hooks",
        "resolve_layers": "fvlab.models.hooks",
        "layer_units": "fvlab.models.probe",
        "check_units": "fvlab.models.probe",
        "forward_order": "fvlab.models.probe",
        "choose_layers": "fvlab.models.probe",
        "describe_layers": "fvlab.models.inspect",
        "EvaluateSettings": "fvlab.models.evaluate",
        "run_evaluate": "fvlab.models.evaluate",
        "TrainConfig": "fvlab.models.train_reference",
        "run_train_reference": "fvlab.models.train_reference",
    },
)
