"""One HTML report that runs every interpretability method on this project's networks.

The classifier (EfficientNet-Lite0) gets accuracy, filters, activations, neighbours, PCA / t-SNE,
maximally activating patches, saliency, guided backprop, occlusion, segmentation from saliency
(GrabCut), class visualization and an adversarial example; the VGG19 loss network gets filters,
activations and feature inversion; the style network gets a map of what its conditional instance
norms learned. Each figure has a short caption.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from training.classifier import (
    accuracy,
    classifier_input,
    photo_class,
)
from training.images import list_images, to_image
from training.interpret import (
    activations,
    embedding,
    figures,
    filters,
    guided_backprop,
    neighbours,
    occlusion,
    patches,
    saliency,
    segment_study,
)
from training.interpret.page import Section, render_html
from training.interpret.report_base import PATCH_LAYERS, PhotoSet, ReportConfig, select_photos
from training.interpret.report_optimized import OptimizedSections

log = logging.getLogger(__name__)


class Report(OptimizedSections):
    """Runs the sections in order, saving each figure as it is made."""

    # sections ----------------------------------------------------------------------------------
    def classify_photos(self) -> Section:
        assert self.cfg.photos is not None
        paths = select_photos(self.cfg.photos, self.cfg.max_photos)
        images = torch.cat([classifier_input(p) for p in paths])
        with torch.no_grad():
            embeddings = torch.cat([self.model.embed(images[i : i + 32]) for i in range(0, len(images), 32)])
            logits = self.model._fc(embeddings)
        self.photos = PhotoSet(paths, images, [photo_class(p) for p in paths], logits, embeddings)
        score = accuracy(self.model, paths) if any(t is not None for t in self.photos.truth) else None
        intro = f"EfficientNet-Lite0 on {len(paths)} labelled ImageNet photos (resize 256, centre crop 224): " + (
            f"<b>top-1 {score.top1:.1%}, top-5 {score.top5:.1%}</b>." if score else "no labels."
        )
        predicted = logits.argmax(1).tolist()
        wrong = [i for i, t in enumerate(self.photos.truth) if t is not None and t != predicted[i]][:8]
        section = Section("Classifier accuracy", intro)
        if wrong:
            captions = [f"{self.name(self.photos.truth[i] or 0)} -> {self.name(predicted[i])}" for i in wrong]
            section.figures.append(
                self.save(
                    "mistakes",
                    figures.captioned_row(self.thumbs(wrong), captions, 160),
                    "Some mistakes (truth -> top-1): most are confusions between "
                    "near-identical classes, or photos with several objects.",
                )
            )
        return section

    def filter_pictures(self) -> Section:
        vgg_convs = [m for m in self.vgg.features if isinstance(m, torch.nn.Conv2d)]
        return Section(
            "Filters",
            "Learned convolution kernels, drawn with grey = 0.",
            [
                self.save(
                    "filters_effnet_stem",
                    filters.rgb_tiles(self.model._conv_stem.weight),
                    "EfficientNet-Lite0 stem: 32 filters of 3x3x3 as RGB tiles (each scaled to its own range). "
                    "Colour-opponent and oriented-edge detectors already at 3x3.",
                ),
                self.save(
                    "filters_vgg_conv1_1",
                    filters.rgb_tiles(vgg_convs[0].weight),
                    "VGG19 conv1_1: 64 filters of 3x3x3 as RGB tiles: edges in several orientations, "
                    "colour blobs and opponent colours.",
                ),
                self.save(
                    "filters_vgg_conv2_1",
                    filters.gray_slices(vgg_convs[2].weight),
                    "VGG19 conv2_1 as grayscale slices: a row per output filter (first 16), a column per "
                    "input channel (first 16). Higher-layer filters are hard to read directly.",
                ),
            ],
        )

    def activation_maps(self) -> Section:
        assert self.photos is not None
        q = self.query()
        image = self.photos.images[q : q + 1]
        label = self.name(self.photos.truth[q] or 0)
        section = Section(
            "Activation maps",
            f"Channels of one layer for one photo ({label}), each scaled to its own maximum: white = strongly active.",
        )
        section.figures.append(self.save("activation_input", to_image(image), "The input photo."))
        for tap in ("relu1_1", "relu3_1"):
            maps = activations.attribute(self.vgg, image, f"features.{self.vgg.names.index(tap)}")
            section.figures.append(
                self.save(
                    f"activations_vgg_{tap}",
                    activations.grid_image(maps),
                    f"VGG19 {tap} ({maps.shape[0]} channels, first 32, {maps.shape[1]}x"
                    f"{maps.shape[2]}): edges and colours early, textures and parts at "
                    "relu3_1.",
                )
            )
        maps = activations.attribute(self.model, image, "_blocks.4")
        section.figures.append(
            self.save(
                "activations_effnet_block4",
                activations.grid_image(maps),
                f"EfficientNet-Lite0 block 4 output ({maps.shape[0]} channels, "
                f"{maps.shape[1]}x{maps.shape[2]}). Sparse: most channels fire on few "
                "places.",
            )
        )
        return section

    def nearest_neighbours(self) -> Section:
        assert self.photos is not None
        images, feats = self.photos.images, self.photos.embeddings
        qs = self.queries(4)
        pixel = neighbours.nearest(
            neighbours.pixel_vectors(images[qs]), neighbours.pixel_vectors(images), 5, exclude=qs
        )
        feature = neighbours.nearest(feats[qs], feats, 5, cosine=True, exclude=qs)
        rows = []
        for n, q in enumerate(qs):
            for kind, found in (("pixels", pixel[n]), ("features", feature[n])):
                idx = [q, *found.tolist()]
                captions = [f"query ({kind})", *[self.label_of(i) for i in found.tolist()]]
                rows.append(figures.captioned_row(self.thumbs(idx), captions, 128))
        return Section(
            "Nearest neighbours",
            "For each query photo: its 5 nearest photos in pixel space "
            "(32x32 thumbnails, Euclidean) and in feature space (the 1280-d penultimate layer, cosine).",
            [
                self.save(
                    "neighbours",
                    figures.stack(rows),
                    "Each pair of rows: pixel-space neighbours share colour and layout only; "
                    "feature-space neighbours are closer in meaning (a fish finds an eel, a rabbit "
                    "a grey fox). The set has one photo per class, so none can share the class.",
                )
            ],
        )

    def label_of(self, i: int) -> str:
        assert self.photos is not None
        return self.name(int(self.photos.logits[i].argmax()))

    def embeddings(self) -> Section:
        assert self.photos is not None
        feats = self.photos.embeddings.numpy()
        groups = [
            embedding.coarse_group(t if t is not None else int(self.photos.logits[i].argmax()))
            for i, t in enumerate(self.photos.truth)
        ]
        thumbs = self.thumbs(list(range(len(feats))))
        section = Section(
            "PCA and t-SNE of the features",
            f"The {len(feats)} photos' penultimate features "
            "(1280-d) mapped to 2-D, drawn as thumbnails and as dots coloured by a coarse label group.",
        )
        for method in ("pca", "tsne"):
            points = embedding.project(feats, method, self.cfg.seed)
            points[:, 1] *= -1  # image rows grow downwards; keep the usual orientation
            title = "PCA" if method == "pca" else "t-SNE"
            section.figures.append(
                self.save(
                    f"{method}_images",
                    figures.image_scatter(points, thumbs),
                    f"{title}: thumbnails at their 2-D positions.",
                )
            )
            section.figures.append(
                self.save(
                    f"{method}_groups",
                    figures.label_scatter(points, groups),
                    f"{title} coloured by coarse group. "
                    + (
                        "PCA keeps the global spread (linear, 2 axes only)."
                        if method == "pca"
                        else "t-SNE keeps neighbourhoods: animals gather with animals, objects "
                        "spread around them; one photo per class: loose groups."
                    ),
                )
            )
        return section

    def top_patches(self) -> Section:
        assert self.photos is not None
        images = self.photos.images
        section = Section(
            "Maximally activating patches",
            "For chosen channels: the 8 photo crops (one per photo) "
            "where the channel fires most. Each crop is the unit's exact receptive field, traced "
            "through the network's convolutions (clipped at the image border).",
        )
        for layer in PATCH_LAYERS:
            maps = activations.attribute(self.model, images[:32], layer)  # pick channels that vary
            spread = maps.flatten(1).std(dim=1)
            channels = spread.topk(6).indices.tolist()
            rows_rf, _ = patches.trace_receptive_field(self.model, layer, (images.shape[-2], images.shape[-1]))
            found = patches.top_patches(self.model, layer, images, channels, k=8)
            rows = []
            for channel in channels:
                crops = [to_image(patches.crop(images, p)) for p in found[channel]]
                captions = [f"ch {channel}: {p.value:.2f}" for p in found[channel]]
                rows.append(figures.captioned_row(crops, captions, 96, text=18))
            section.figures.append(
                self.save(
                    f"patches_{layer.replace('.', '_')}",
                    figures.stack(rows),
                    f"EfficientNet-Lite0 {layer}: receptive field {rows_rf.size}x"
                    f"{rows_rf.size} px with stride {rows_rf.jump}; a row per channel. "
                    + (
                        "Early units pick colours and simple textures."
                        if layer == PATCH_LAYERS[0]
                        else "Deeper units pick textures and object parts."
                    ),
                )
            )
        return section

    def saliency_maps(self) -> Section:
        assert self.photos is not None
        rows = []
        for q in self.queries(3):
            image = self.photos.images[q : q + 1]
            target = int(self.photos.logits[q].argmax())
            grad = figures.normalize(saliency.to_map(saliency.attribute(self.model, image, target))[0])
            guided = figures.signed(guided_backprop.attribute(self.model, image, target))
            drop = occlusion.attribute(self.model, image, target)[0, 0]
            pictures = [
                to_image(image),
                figures.colormap(grad.sqrt()),
                to_image(guided),
                figures.overlay(image, (drop / max(float(drop.max()), 1e-6)).clamp(0, 1)),
            ]
            captions = [f"{self.name(target)}", "gradient saliency", "guided backprop", "occlusion (32 px)"]
            rows.append(figures.captioned_row(pictures, captions, 192))
        return Section(
            "Saliency",
            "Where the predicted class's evidence is. Gradient saliency: |d score / d pixel| "
            "(max over colours, square-root scaled). Guided backprop: the gradient with only positive "
            "gradients passed through each ReLU6. Occlusion: the drop in the class probability when a "
            "32 px grey square (stride 16) covers the pixel.",
            [
                self.save(
                    "saliency",
                    figures.stack(rows),
                    "A row per photo, target = its top-1 class. Guided backprop shows crisp object "
                    "edges; occlusion is coarse but measures what really changes the output.",
                )
            ],
        )

    def segmentation(self) -> Section:
        assert self.photos is not None and self.cfg.photos is not None
        shown = [self.photos.paths[q] for q in self.queries(8)]
        found = segment_study.study(
            self.model, shown, list_images(self.cfg.photos), self.cfg.scenes, self.cfg.seed, self.name
        )
        self.notes.append(found.note)
        return Section(
            "Segmentation from saliency",
            found.intro,
            [
                self.save("segmentation", found.photos, segment_study.PHOTOS_CAPTION),
                self.save("segmentation_composed", found.composed, segment_study.COMPOSED_CAPTION),
            ],
        )

    def run(self) -> list[Section]:
        steps: list[tuple[str, Callable[[], Section]]] = [
            ("filters", self.filter_pictures),
            ("photos", self.classify_photos),
            ("activations", self.activation_maps),
            ("neighbours", self.nearest_neighbours),
            ("embeddings", self.embeddings),
            ("patches", self.top_patches),
            ("saliency", self.saliency_maps),
            ("segmentation", self.segmentation),
            ("class visualization", self.class_pictures),
            ("adversarial", self.adversarial_example),
            ("inversion", self.inversion),
            ("style norms", self.style_norm_map),
        ]
        if self.cfg.photos is None:
            self.notes.append("No photo folder given (--photos or LIVESTYLE_DATA): only the filters are shown.")
            steps = steps[:1]
        sections = []
        bar = tqdm(steps, desc="report", unit="section", disable=not self.cfg.progress)
        for name, step in bar:
            bar.set_postfix_str(name)
            started = time.perf_counter()
            section = step()
            section.seconds = time.perf_counter() - started
            sections.append(section)
        return sections


def write_report(cfg: ReportConfig) -> Path:
    """Run every section and write ``cfg.out``/index.html (atomically) with its figures beside it."""
    started = time.perf_counter()
    report = Report(cfg)
    sections = report.run()
    path = cfg.out / "index.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(sections, report.notes, time.perf_counter() - started), encoding="utf-8")
    tmp.replace(path)
    return path
