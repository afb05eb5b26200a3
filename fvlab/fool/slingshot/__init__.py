"""Weight-only fooling (docs/fool.md, "Gradient slingshots"): fine-tune the weights so that
chosen units' feature visualizations show a target, natural behaviour preserved.

* the maths: :mod:`.field` (the imposed gradient field, push-down / push-up);
* building it: :mod:`.build` — ``build_slingshot(model, natural, target, SlingshotConstruction)``,
  ``rebuild`` (the saved-model constructor, registered as ``slingshot``);
* evaluating it: :mod:`.evaluate`;
* the job: :mod:`.job` — ``run_slingshot(model, SlingshotSettings, out) -> SlingshotResult``.
"""
