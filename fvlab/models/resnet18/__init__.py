"""``fmnist-resnet18``: torchvision's ResNet-18, unmodified, trained on Fashion-MNIST at 64 px.

* :mod:`.model` — the architecture (``torchvision.models.resnet18(num_classes=10)``), its input
  spec, the one rule that turns a 28-px Fashion-MNIST image into the model's 3×64×64 input, and
  the half-precision weights file;
* :mod:`.train` — the deterministic training run that made the committed weights
  (``python -m fvlab.models.resnet18.train --out fvlab/models/weights/fmnist-resnet18.pt``).
"""
