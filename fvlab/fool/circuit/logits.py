"""Which logits of a model are classes: the units a logit circuit permutes and the labels they mean.

Most classifiers have one logit per class, logit k = class k (the folder's sorted class k). Lucid's
InceptionV1 (the "inception5h" GoogLeNet, :mod:`fvlab.models.inceptionv1`) does not: its
``softmax2_pre_activation_matmul`` has **1008** outputs. Its label list (lucid's
``ImageNet_alternate.txt``, the same as ``imagenet_comp_graph_label_strings.txt`` shipped with
``inception5h.zip``) has 1001 lines: line 0 is ``dummy`` (the background class of the graph's
training), lines 1–1000 are the 1000 ImageNet classes, and outputs 1001–1007 have no label at all
(padding of the output layer to a multiple of 8, never trained on an image). So

* logit 0 is the background/dummy class, logits 1…1000 are ImageNet classes 0…999 (in the order
  of lucid's label list, which is *not* the sorted-synset order of torchvision), and logits
  1001…1007 are padding;
* a permute circuit on the logits permutes the 1000 ImageNet logits only (as P1 did):
  logit 1 + i shows logit 1 + ((i + offset) mod 1000), and the 8 others are never gated;
* natural image k of a folder whose sorted class folders follow lucid's label order has label
  logit 1 + k.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fvlab.models.probe import layer_units

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

#: lucid's InceptionV1: name of the logits layer and its number of outputs
LUCID_LOGITS_LAYER = "softmax2_pre_activation_matmul"
LUCID_N_OUTPUTS = 1008
#: the outputs of lucid's InceptionV1 that are ImageNet classes (1…1000; 0 is "dummy", 1001…1007
#: padding)
LUCID_IMAGENET_LOGITS = tuple(range(1, 1001))


def is_lucid_logits(model: LoadedModel, layer: str) -> bool:
    """True for lucid's 1008-output logits layer (InceptionV1 or a model built on it)."""
    return layer == LUCID_LOGITS_LAYER and layer_units(model, layer) == LUCID_N_OUTPUTS


def logits_layer(model: LoadedModel) -> str:
    """The model's logits: the last layer in forward order."""
    from fvlab.models.probe import forward_order

    return forward_order(model)[-1]


def class_units(model: LoadedModel, layer: str) -> list[int]:
    """The units of ``layer`` a circuit gates by default: for lucid's 1008 logits the 1000
    ImageNet ones (:data:`LUCID_IMAGENET_LOGITS`), else every unit."""
    if is_lucid_logits(model, layer):
        return list(LUCID_IMAGENET_LOGITS)
    return list(range(layer_units(model, layer)))


def label_logits(model: LoadedModel) -> list[int]:
    """Logit of class label k, for k = 0, 1, …: 1 + k for lucid's InceptionV1, else k."""
    return class_units(model, logits_layer(model))
