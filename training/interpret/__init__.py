"""Interpretability toolkit for any PyTorch CNN: one method per module, hooks always removed.

Attribution methods share captum's signature: ``attribute(model, inputs, target) -> Tensor`` with
``inputs`` a [B,3,H,W] image in [0,1] and ``target`` a class index. ``report.py`` runs them all on this
project's networks (the EfficientNet-Lite0 classifier, the VGG19 loss network, the style networks).
"""
