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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from training.classifier import (
    EfficientNetLite0,
    accuracy,
    classifier_input,
    imagenet_classes,
    load_classifier,
    photo_class,
)
from training.features import VGGFeatures, load_vgg
from training.images import list_images, save_png, to_image
from training.interpret import (
    activations,
    adversarial,
    class_visualization,
    embedding,
    figures,
    filters,
    guided_backprop,
    neighbours,
    occlusion,
    patches,
    saliency,
    segment_study,
    style_norms,
)
from training.interpret.page import Figure, Section, render_html
from training.optimize.engine import OptimConfig

log = logging.getLogger(__name__)

VIS_CLASSES = (130, 327, 945)  # flamingo, starfish, bell pepper: distinctive colours and shapes
VIS_CHANNEL = ("_blocks.10", 7)
PATCH_LAYERS = ("_blocks.2", "_blocks.4")
VGG_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass(frozen=True)
class ReportConfig:
    """What the report runs on; built by the CLI."""

    out: Path
    photos: Path | None = None  # folder of imagenet_<wnid>_<label>.jpg photos
    max_photos: int = 200
    checkpoint: Path | None = None  # style network checkpoint; its section is skipped without one
    classifier_weights: Path | None = None
    vgg_weights: Path | None = None
    iterations: int = 100  # class visualization and feature inversion steps
    scenes: int = 24  # composed scenes (known masks) that score segmentation from saliency
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_photos < 10:
            raise ValueError("--max-photos must be >= 10 (neighbours and t-SNE need a set)")
        if self.iterations < 1:
            raise ValueError("--iterations must be >= 1")
        if self.scenes < 1:
            raise ValueError("--scenes must be >= 1")
        if self.photos is not None and not self.photos.is_dir():
            raise ValueError(f"{self.photos}: photo folder not found")


@dataclass
class PhotoSet:
    """The photos as the classifier sees them, with its outputs."""

    paths: list[Path]
    images: torch.Tensor  # [N,3,224,224]
    truth: list[int | None]
    logits: torch.Tensor  # [N,1000]
    embeddings: torch.Tensor  # [N,1280]


def select_photos(folder: Path, limit: int) -> list[Path]:
    """Up to ``limit`` imagenet_* photos, evenly spread over the sorted list (so over the classes)."""
    photos = [p for p in list_images(folder) if p.name.startswith("imagenet_")]
    if not photos:
        raise ValueError(f"{folder}: no imagenet_<wnid>_<label>.jpg photos")
    step = max(1, len(photos) // limit)
    return photos[::step][:limit]


class Report:
    """Runs the sections in order, saving each figure as it is made."""

    def __init__(self, cfg: ReportConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.out / "figures"
        self.classes = imagenet_classes()
        self.model: EfficientNetLite0 = load_classifier(cfg.classifier_weights)
        self.vgg: VGGFeatures = load_vgg(VGG_TAPS, cfg.vgg_weights)
        self.photos: PhotoSet | None = None
        self.notes: list[str] = []

    # helpers -----------------------------------------------------------------------------------
    def save(self, name: str, picture: Image.Image, caption: str) -> Figure:
        save_png(picture, self.dir / f"{name}.png")
        return Figure(f"figures/{name}.png", caption)

    def name(self, index: int) -> str:
        return self.classes[index].label

    def queries(self, count: int) -> list[int]:
        assert self.photos is not None
        n = len(self.photos.paths)
        return [round(i * (n - 1) / max(count - 1, 1)) for i in range(count)]

    def query(self) -> int:
        """A cat photo if the set has one (the lecture's example), else the first photo."""
        assert self.photos is not None
        cats = [i for i, t in enumerate(self.photos.truth) if t is not None and 281 <= t <= 285]
        return cats[0] if cats else 0

    def thumbs(self, indices: list[int]) -> list[Image.Image]:
        assert self.photos is not None
        return [to_image(self.photos.images[i : i + 1]) for i in indices]

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
        intro = (f"EfficientNet-Lite0 on {len(paths)} labelled ImageNet photos (resize 256, centre crop 224): "
                 + (f"<b>top-1 {score.top1:.1%}, top-5 {score.top5:.1%}</b>." if score else "no labels."))
        predicted = logits.argmax(1).tolist()
        wrong = [i for i, t in enumerate(self.photos.truth) if t is not None and t != predicted[i]][:8]
        section = Section("Classifier accuracy", intro)
        if wrong:
            captions = [f"{self.name(self.photos.truth[i] or 0)} -> {self.name(predicted[i])}" for i in wrong]
            section.figures.append(self.save("mistakes", figures.captioned_row(self.thumbs(wrong), captions, 160),
                                             "Some mistakes (truth -> top-1): most are confusions between "
                                             "near-identical classes, or photos with several objects."))
        return section

    def filter_pictures(self) -> Section:
        vgg_convs = [m for m in self.vgg.features if isinstance(m, torch.nn.Conv2d)]
        return Section("Filters", "Learned convolution kernels, drawn with grey = 0.", [
            self.save("filters_effnet_stem", filters.rgb_tiles(self.model._conv_stem.weight),
                      "EfficientNet-Lite0 stem: 32 filters of 3x3x3 as RGB tiles (each scaled to its own range). "
                      "Colour-opponent and oriented-edge detectors already at 3x3."),
            self.save("filters_vgg_conv1_1", filters.rgb_tiles(vgg_convs[0].weight),
                      "VGG19 conv1_1: 64 filters of 3x3x3 as RGB tiles: edges in several orientations, "
                      "colour blobs and opponent colours."),
            self.save("filters_vgg_conv2_1", filters.gray_slices(vgg_convs[2].weight),
                      "VGG19 conv2_1 as grayscale slices: a row per output filter (first 16), a column per "
                      "input channel (first 16). Higher-layer filters are hard to read directly."),
        ])

    def activation_maps(self) -> Section:
        assert self.photos is not None
        q = self.query()
        image = self.photos.images[q : q + 1]
        label = self.name(self.photos.truth[q] or 0)
        section = Section("Activation maps", f"Channels of one layer for one photo ({label}), each scaled to its "
                                             "own maximum: white = strongly active.")
        section.figures.append(self.save("activation_input", to_image(image), "The input photo."))
        for tap in ("relu1_1", "relu3_1"):
            maps = activations.attribute(self.vgg, image, f"features.{self.vgg.names.index(tap)}")
            section.figures.append(self.save(f"activations_vgg_{tap}", activations.grid_image(maps),
                                             f"VGG19 {tap} ({maps.shape[0]} channels, first 32, {maps.shape[1]}x"
                                             f"{maps.shape[2]}): edges and colours early, textures and parts at "
                                             "relu3_1."))
        maps = activations.attribute(self.model, image, "_blocks.4")
        section.figures.append(self.save("activations_effnet_block4", activations.grid_image(maps),
                                         f"EfficientNet-Lite0 block 4 output ({maps.shape[0]} channels, "
                                         f"{maps.shape[1]}x{maps.shape[2]}). Sparse: most channels fire on few "
                                         "places."))
        return section

    def nearest_neighbours(self) -> Section:
        assert self.photos is not None
        images, feats = self.photos.images, self.photos.embeddings
        qs = self.queries(4)
        pixel = neighbours.nearest(neighbours.pixel_vectors(images[qs]), neighbours.pixel_vectors(images), 5,
                                   exclude=qs)
        feature = neighbours.nearest(feats[qs], feats, 5, cosine=True, exclude=qs)
        rows = []
        for n, q in enumerate(qs):
            for kind, found in (("pixels", pixel[n]), ("features", feature[n])):
                idx = [q, *found.tolist()]
                captions = [f"query ({kind})", *[self.label_of(i) for i in found.tolist()]]
                rows.append(figures.captioned_row(self.thumbs(idx), captions, 128))
        return Section("Nearest neighbours", "For each query photo: its 5 nearest photos in pixel space "
                       "(32x32 thumbnails, Euclidean) and in feature space (the 1280-d penultimate layer, cosine).",
                       [self.save("neighbours", figures.stack(rows),
                                  "Each pair of rows: pixel-space neighbours share colour and layout only; "
                                  "feature-space neighbours are closer in meaning (a fish finds an eel, a rabbit "
                                  "a grey fox). The set has one photo per class, so none can share the class.")])

    def label_of(self, i: int) -> str:
        assert self.photos is not None
        return self.name(int(self.photos.logits[i].argmax()))

    def embeddings(self) -> Section:
        assert self.photos is not None
        feats = self.photos.embeddings.numpy()
        groups = [embedding.coarse_group(t if t is not None else int(self.photos.logits[i].argmax()))
                  for i, t in enumerate(self.photos.truth)]
        thumbs = self.thumbs(list(range(len(feats))))
        section = Section("PCA and t-SNE of the features", f"The {len(feats)} photos' penultimate features "
                          "(1280-d) mapped to 2-D, drawn as thumbnails and as dots coloured by a coarse label group.")
        for method in ("pca", "tsne"):
            points = embedding.project(feats, method, self.cfg.seed)
            points[:, 1] *= -1  # image rows grow downwards; keep the usual orientation
            title = "PCA" if method == "pca" else "t-SNE"
            section.figures.append(self.save(f"{method}_images", figures.image_scatter(points, thumbs),
                                             f"{title}: thumbnails at their 2-D positions."))
            section.figures.append(self.save(f"{method}_groups", figures.label_scatter(points, groups),
                                             f"{title} coloured by coarse group. "
                                             + ("PCA keeps the global spread (linear, 2 axes only)."
                                                if method == "pca" else
                                                "t-SNE keeps neighbourhoods: animals gather with animals, objects "
                                                "spread around them; one photo per class: loose groups.")))
        return section

    def top_patches(self) -> Section:
        assert self.photos is not None
        images = self.photos.images
        section = Section("Maximally activating patches", "For chosen channels: the 8 photo crops (one per photo) "
                          "where the channel fires most. Each crop is the unit's exact receptive field, traced "
                          "through the network's convolutions (clipped at the image border).")
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
            section.figures.append(self.save(f"patches_{layer.replace('.', '_')}", figures.stack(rows),
                                             f"EfficientNet-Lite0 {layer}: receptive field {rows_rf.size}x"
                                             f"{rows_rf.size} px with stride {rows_rf.jump}; a row per channel. "
                                             + ("Early units pick colours and simple textures."
                                                if layer == PATCH_LAYERS[0] else
                                                "Deeper units pick textures and object parts.")))
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
            pictures = [to_image(image), figures.colormap(grad.sqrt()), to_image(guided),
                        figures.overlay(image, (drop / max(float(drop.max()), 1e-6)).clamp(0, 1))]
            captions = [f"{self.name(target)}", "gradient saliency", "guided backprop", "occlusion (32 px)"]
            rows.append(figures.captioned_row(pictures, captions, 192))
        return Section("Saliency", "Where the predicted class's evidence is. Gradient saliency: |d score / d pixel| "
                       "(max over colours, square-root scaled). Guided backprop: the gradient with only positive "
                       "gradients passed through each ReLU6. Occlusion: the drop in the class probability when a "
                       "32 px grey square (stride 16) covers the pixel.",
                       [self.save("saliency", figures.stack(rows),
                                  "A row per photo, target = its top-1 class. Guided backprop shows crisp object "
                                  "edges; occlusion is coarse but measures what really changes the output.")])

    def segmentation(self) -> Section:
        assert self.photos is not None and self.cfg.photos is not None
        shown = [self.photos.paths[q] for q in self.queries(8)]
        found = segment_study.study(self.model, shown, list_images(self.cfg.photos), self.cfg.scenes, self.cfg.seed,
                                    self.name)
        self.notes.append(found.note)
        return Section("Segmentation from saliency", found.intro, [
            self.save("segmentation", found.photos, segment_study.PHOTOS_CAPTION),
            self.save("segmentation_composed", found.composed, segment_study.COMPOSED_CAPTION)])

    def class_pictures(self) -> Section:
        base = class_visualization.ENGINE
        iterations = class_visualization.split_iterations(self.cfg.iterations, base.octaves)
        engine = OptimConfig(**{**base.__dict__, "iterations": iterations, "seed": self.cfg.seed})
        pictures, captions = [], []
        for target in VIS_CLASSES:
            result = class_visualization.visualize(class_visualization.class_objective(self.model, target),
                                                   engine=engine)
            with torch.no_grad():
                prob = float(torch.softmax(self.model(result.image), 1)[0, target])
            pictures.append(to_image(result.image))
            captions.append(f"{self.name(target)} (p={prob:.2f})")
        layer, channel = VIS_CHANNEL
        result = class_visualization.visualize(class_visualization.channel_objective(self.model, layer, channel),
                                               engine=engine)
        pictures.append(to_image(result.image))
        captions.append(f"{layer} channel {channel}")
        return Section("Class visualization", f"Gradient ascent on the pixels from grey ({self.cfg.iterations} "
                       "Adam steps on the shared optimisation engine) with an L2 pull to grey, blur every 4 "
                       "steps (sigma 1 px), 16 px jitter and clipping.",
                       [self.save("class_visualization", figures.captioned_row(pictures, captions, 224),
                                  "Three class scores and one inner channel maximised; p is the classifier's "
                                  "own probability for the class on the result. Colours and repeated parts of "
                                  "the class appear, not a whole object.")])

    def adversarial_example(self) -> Section:
        assert self.photos is not None
        q = self.query()
        image = self.photos.images[q : q + 1]
        example = adversarial.smallest_flip(self.model, image)
        pictures = [to_image(image), to_image(example.image), to_image(example.difference(image))]
        captions = [f"{self.name(example.original)} {example.original_probability:.2f}",
                    f"{self.name(example.adversarial)} {example.adversarial_probability:.2f}",
                    f"difference x{0.5 / example.epsilon:.0f}"]
        return Section("Adversarial example", "The fast gradient sign method, with the smallest step that flips "
                       f"the top-1 class: epsilon = {example.epsilon * 255:.2f} grey levels of 255.",
                       [self.save("adversarial", figures.captioned_row(pictures, captions, 224),
                                  f"Original (left, {self.name(example.original)} "
                                  f"{example.original_probability:.1%}), adversarial (middle: "
                                  f"{self.name(example.adversarial)} {example.adversarial_probability:.1%}, the "
                                  f"original class now {example.original_probability_after:.1%}), and the "
                                  "perturbation amplified to full range (right). The two photos look identical.")])

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
        return Section("Feature inversion (VGG19)", "Images whose VGG19 features at one layer match the photo's "
                       f"(Mahendran & Vedaldi; training/optimize/invert.py, {self.cfg.iterations} L-BFGS steps, "
                       "TV prior).",
                       [self.save("inversion", figures.captioned_row(pictures, captions, 192),
                                  "Shallow layers keep the picture almost exactly; deeper ones keep parts and "
                                  "textures but lose exact colours and positions.")])

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
        return Section("Style network: conditional instance norm", f"{self.cfg.checkpoint.name}: each of the {s} "
                       "styles is the concatenation of every CondInstanceNorm's gamma and beta; PCA of those "
                       f"vectors ({axes}). A blend is the same weighted sum of the vectors, so it is placed exactly.",
                       [self.save("style_norms_map", figures.label_scatter(points, groups, 700, labels=names),
                                  "Styles and blends on the PCA map: 50/50 blends sit halfway between their two "
                                  "styles, the uniform blend at the centre."),
                        self.save("style_norms_outputs", figures.image_scatter(points, outputs, 900, 110),
                                  "The same map with each point's stylized photo: nearby points give similar "
                                  "pictures.")])

    def run(self) -> list[Section]:
        steps: list[tuple[str, Callable[[], Section]]] = [
            ("filters", self.filter_pictures), ("photos", self.classify_photos),
            ("activations", self.activation_maps), ("neighbours", self.nearest_neighbours),
            ("embeddings", self.embeddings), ("patches", self.top_patches), ("saliency", self.saliency_maps),
            ("segmentation", self.segmentation),
            ("class visualization", self.class_pictures), ("adversarial", self.adversarial_example),
            ("inversion", self.inversion), ("style norms", self.style_norm_map),
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

