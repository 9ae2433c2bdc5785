"""The report's sections whose pictures are made by optimisation: class visualization, the adversarial example,
feature inversion, and the style network's norms."""

from __future__ import annotations

import numpy as np
import torch

from training.images import to_image
from training.interpret import (
    adversarial,
    class_visualization,
    figures,
    style_norms,
)
from training.interpret.page import Section
from training.interpret.report_base import VIS_CHANNEL, VIS_CLASSES, ReportBase
from training.optimize.engine import OptimConfig


class OptimizedSections(ReportBase):
    """Sections mixed into the report; they use only :class:`ReportBase`'s models, photos and helpers."""

    def class_pictures(self) -> Section:
        base = class_visualization.ENGINE
        iterations = class_visualization.split_iterations(self.cfg.iterations, base.octaves)
        engine = OptimConfig(**{**base.__dict__, "iterations": iterations, "seed": self.cfg.seed})
        pictures, captions = [], []
        for target in VIS_CLASSES:
            result = class_visualization.visualize(
                class_visualization.class_objective(self.model, target), engine=engine
            )
            with torch.no_grad():
                prob = float(torch.softmax(self.model(result.image), 1)[0, target])
            pictures.append(to_image(result.image))
            captions.append(f"{self.name(target)} (p={prob:.2f})")
        layer, channel = VIS_CHANNEL
        result = class_visualization.visualize(
            class_visualization.channel_objective(self.model, layer, channel), engine=engine
        )
        pictures.append(to_image(result.image))
        captions.append(f"{layer} channel {channel}")
        return Section(
            "Class visualization",
            f"Gradient ascent on the pixels from grey ({self.cfg.iterations} "
            "Adam steps on the shared optimisation engine) with an L2 pull to grey, blur every 4 "
            "steps (sigma 1 px), 16 px jitter and clipping.",
            [
                self.save(
                    "class_visualization",
                    figures.captioned_row(pictures, captions, 224),
                    "Three class scores and one inner channel maximised; p is the classifier's "
                    "own probability for the class on the result. Colours and repeated parts of "
                    "the class appear, not a whole object.",
                )
            ],
        )

    def adversarial_example(self) -> Section:
        assert self.photos is not None
        q = self.query()
        image = self.photos.images[q : q + 1]
        example = adversarial.smallest_flip(self.model, image)
        pictures = [to_image(image), to_image(example.image), to_image(example.difference(image))]
        captions = [
            f"{self.name(example.original)} {example.original_probability:.2f}",
            f"{self.name(example.adversarial)} {example.adversarial_probability:.2f}",
            f"difference x{0.5 / example.epsilon:.0f}",
        ]
        return Section(
            "Adversarial example",
            "The fast gradient sign method, with the smallest step that flips "
            f"the top-1 class: epsilon = {example.epsilon * 255:.2f} grey levels of 255.",
            [
                self.save(
                    "adversarial",
                    figures.captioned_row(pictures, captions, 224),
                    f"Original (left, {self.name(example.original)} "
                    f"{example.original_probability:.1%}), adversarial (middle: "
                    f"{self.name(example.adversarial)} {example.adversarial_probability:.1%}, the "
                    f"original class now {example.original_probability_after:.1%}), and the "
                    "perturbation amplified to full range (right). The two photos look identical.",
                )
            ],
        )

    def inversion(self) -> Section:
        assert self.photos is not None
        try:
            from training.optimize.invert import InvertConfig, invert
        except ImportError as exc:  # written in another issue; the report still runs without it
            return Section("Feature inversion", f"Skipped: training/optimize/invert.py is not importable ({exc}).")
        path = self.photos.paths[self.query()]
        layers = ("relu2_1", "relu3_1", "relu4_1")
        engine = OptimConfig(iterations=(self.cfg.iterations,), tv_weight=0.5, seed=self.cfg.seed, progress=False)
        photo, results = invert(InvertConfig(image=path, size=128, layers=layers), engine, vgg=self.vgg)
        pictures = [to_image(photo), *[to_image(r.image) for r in results]]
        captions = ["photo (128 px)", *[f"from {layer}" for layer in layers]]
        return Section(
            "Feature inversion (VGG19)",
            "Images whose VGG19 features at one layer match the photo's "
            f"(Mahendran & Vedaldi; training/optimize/invert.py, {self.cfg.iterations} L-BFGS steps, "
            "TV prior).",
            [
                self.save(
                    "inversion",
                    figures.captioned_row(pictures, captions, 192),
                    "Shallow layers keep the picture almost exactly; deeper ones keep parts and "
                    "textures but lose exact colours and positions.",
                )
            ],
        )

    def style_norm_map(self) -> Section:
        from training.checkpoint import build_from_checkpoint, load_checkpoint

        if self.cfg.checkpoint is None:
            return Section("Style network norms", "Skipped: no style network checkpoint (pass --checkpoint).")
        net, styles = build_from_checkpoint(load_checkpoint(self.cfg.checkpoint))
        net.eval()
        s = len(styles)
        eye = torch.eye(s)
        pairs = [(i, (i + 1) % s) for i in range(s)] if s > 2 else [(0, 1)]
        blends = torch.stack([(eye[i] + eye[j]) / 2 for i, j in pairs] + [torch.full((s,), 1.0 / s)])
        result = style_norms.norm_map(net, blends)
        names = [*styles, *[f"{styles[i][:6]}+{styles[j][:6]}" for i, j in pairs], "all"]
        points = np.concatenate([result.styles, result.blends])
        points[:, 1] *= -1
        groups = ["style"] * s + ["50/50 blend"] * len(pairs) + ["uniform blend"]
        assert self.photos is not None
        photo = self.photos.images[self.query() : self.query() + 1]
        photo = torch.nn.functional.interpolate(photo, size=(128, 128), mode="bilinear", antialias=True)
        with torch.no_grad():
            outputs = [to_image(net.stylize_any_size(photo, w[None]).clamp(0, 1)) for w in torch.cat([eye, blends])]
        axes = f"PC1 {result.explained[0]:.0%}, PC2 {result.explained[1]:.0%} of the variance"
        return Section(
            "Style network: conditional instance norm",
            f"{self.cfg.checkpoint.name}: each of the {s} "
            "styles is the concatenation of every CondInstanceNorm's gamma and beta; PCA of those "
            f"vectors ({axes}). A blend is the same weighted sum of the vectors, so it is placed exactly.",
            [
                self.save(
                    "style_norms_map",
                    figures.label_scatter(points, groups, 700, labels=names),
                    "Styles and blends on the PCA map: 50/50 blends sit halfway between their two "
                    "styles, the uniform blend at the centre.",
                ),
                self.save(
                    "style_norms_outputs",
                    figures.image_scatter(points, outputs, 900, 110),
                    "The same map with each point's stylized photo: nearby points give similar pictures.",
                ),
            ],
        )
