"""Every setting of the service, typed, in one place: the server (``LIVESTYLE_*``), video jobs
(``LIVESTYLE_JOBS_*``), added styles (``LIVESTYLE_STYLES_*``) and the Ray Serve workers (``livestyle-serve
--engine ray`` flags). Read at the entry point (service/cli.py, a test) and passed down, never read again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import web_runtime
from service.engine import RuntimeOptions
from service.video.media import VideoLimits


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/livestyle`` (``~/.local/share/livestyle``): what the server keeps, outside the checkout."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "livestyle"


class Settings(BaseSettings):
    """Everything the service can be told; built once in ``service.cli.main`` (or a test) and passed down."""

    model_config = SettingsConfigDict(env_prefix="LIVESTYLE_", frozen=True, extra="ignore")

    # access (README "Deployment")
    api_token: str | None = Field(
        None,
        min_length=16,
        description="LIVESTYLE_API_TOKEN: Bearer token every /api/* "
        "route but /api/health needs; unset: no token (loopback use)",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"], description='Host header values served, e.g. ["style.example.org"]'
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="other sites whose pages may POST here (default: none but this one)"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    models_dir: Path = Path("models")
    thumbnails_dir: Path | None = Field(None, description="default: <models_dir>/thumbnails")
    default_model: str | None = Field(None, description="default: the first realtime model")

    # ONNX Runtime; one intra-op thread without spinning left the browser enough CPU on 2 cores
    providers: Annotated[list[str] | None, NoDecode] = Field(
        None, description="default: TensorRT, CUDA, CPU as available"
    )
    intra_op_threads: int = Field(1, ge=0)
    inter_op_threads: int = Field(1, ge=0)
    spinning: bool = False
    inference_workers: int = Field(1, ge=1, description="threads running inference for all peers")

    # painting in the viewer's browser (service/web_runtime.py)
    web_runtime_dir: Path = Field(web_runtime.DEFAULT_DIR, description="onnxruntime-web's files, as installed")

    # streaming
    max_peers: int = Field(4, ge=1)
    max_viewers: int = Field(8, ge=0, description="WHEP viewers per stream; the viewers of one codec share one encode")
    max_ingest_bitrate: int = Field(
        6_000_000, ge=100_000, description="bits per second a WHIP publisher is asked to stay under (b=AS, b=TIAS)"
    )
    max_camera_pixels: int = Field(
        1920 * 1080, ge=256, description="largest camera frame (width x height) a stream may send; larger ends it"
    )
    viewer_bitrate: int = Field(
        1_000_000, ge=100_000, le=20_000_000, description="bits per second of the one encode WHEP viewers share"
    )
    viewer_keyframe_seconds: float = Field(
        2.0, gt=0, le=60, description="a keyframe at least this often, so a viewer that lost one recovers"
    )
    max_frame_side: int = Field(640, ge=16, description="longer frame side fed to the network")
    ease_frames: int = Field(6, ge=0, description="frames over which a new blend is eased in")
    adaptive_resolution: bool = Field(True, description="stylize smaller when inference overruns target_fps")
    target_fps: float = Field(20.0, gt=0, le=120, description="frame rate adaptive resolution aims for")
    min_frame_side: int = Field(320, ge=16, description="adaptive resolution never goes below this")
    pipeline_frames: bool = Field(
        True, description="stylize the next frame while the last one is encoded (a new control shows a frame later)"
    )
    idle_timeout: float = Field(5.0, gt=0, description="seconds a streaming peer may go without a frame (gone)")
    connect_timeout: float = Field(10.0, gt=0, description="seconds an offer's peer has to connect and send media")
    max_pending_offers: int = Field(2, ge=1, description="offers from one client address still connecting")
    max_sdp_bytes: int = Field(64 * 1024, ge=1024, description="largest SDP offer")
    max_media_sections: int = Field(8, ge=2, description="most m= sections in an offer")
    control_rate: float = Field(20.0, gt=0, description="control messages per second per peer, sustained")
    control_burst: int = Field(40, ge=1, description="control messages per peer in a burst")
    stats_interval: float = Field(1.0, gt=0)
    ice_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description='e.g. ["stun:stun.example.org:3478"]'
    )
    ice_loopback: bool = Field(False, description="host candidates 127.0.0.1 only, no ICE servers (tests)")

    # live DeepDream (mode "dream"): needs the dream extra (torch + VGG19 weights)
    dream: bool = Field(True, description="offer the iterative dream mode when torch is installed")
    dream_device: str | None = Field(None, description="cpu or cuda; default cuda when available")
    dream_max_side_cpu: int = Field(160, ge=16, description="longer side dreamed on a CPU")
    dream_max_side_gpu: int = Field(640, ge=16, description="longer side dreamed on a GPU")
    dream_threads: int = Field(0, ge=0, description="torch CPU threads for dreaming (0: default)")
    vgg_weights: Path | None = Field(None, description="torchvision VGG19 state_dict for dreaming")

    # REST
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_image_side: int = Field(1280, ge=16, description="longer side of /api/stylize results")
    max_image_pixels: int = Field(40_000_000, ge=256, description="pixels of an upload, read from its header")
    stylize_workers: int = Field(2, ge=1, description="/api/stylize requests at once; more answer 503")

    @field_validator("providers", "ice_servers", "allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        """Environment lists may be JSON (``["a", "b"]``) or comma-separated (``a,b``)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    def runtime_options(self) -> RuntimeOptions:
        """How ONNX Runtime runs, for the engine (the one place settings become runtime options)."""
        return RuntimeOptions(
            providers=tuple(self.providers) if self.providers else None,
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            spinning=self.spinning,
        )

    @property
    def thumbnails_path(self) -> Path:
        return self.thumbnails_dir if self.thumbnails_dir is not None else self.models_dir / "thumbnails"

    @property
    def effective_ice_servers(self) -> list[str]:
        return [] if self.ice_loopback else list(self.ice_servers)


class JobSettings(BaseSettings):
    """Video job limits (``LIVESTYLE_JOBS_*``); a test may put its own in ``app.state.job_settings``."""

    model_config = SettingsConfigDict(env_prefix="LIVESTYLE_JOBS_", frozen=True, extra="ignore")

    workers: int = Field(1, ge=1, description="videos processed at once")
    max_queued: int = Field(4, ge=1, description="jobs waiting to start; more answer 503")
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1)
    work_dir: Path = Field(
        default_factory=lambda: default_work_dir(), description="uploads, results and job records; kept across restarts"
    )
    keep_hours: float = Field(24.0, gt=0, description="a finished job's files are deleted this long after it ends")
    min_free_bytes: int = Field(1024**3, ge=0, description="free disk below which uploads answer 507")
    max_pixels: int = Field(3840 * 2160, ge=256, description="pixels a frame of an uploaded video")
    max_frames: int = Field(30 * 60 * 30, ge=1, description="frames of an uploaded video")
    max_seconds: float = Field(30 * 60, gt=0, description="duration of an uploaded video")

    @property
    def video_limits(self) -> VideoLimits:
        return VideoLimits(self.max_pixels, self.max_frames, self.max_seconds)


def default_work_dir() -> Path:
    """``$XDG_DATA_HOME/livestyle/jobs`` (``~/.local/share/livestyle/jobs``): outside the checkout, kept."""
    return user_data_dir() / "jobs"


def default_styles_dir() -> Path:
    """``$XDG_DATA_HOME/livestyle/styles`` (``~/.local/share/livestyle/styles``): outside the checkout, kept."""
    return user_data_dir() / "styles"


def default_photos() -> Path | None:
    data = os.environ.get("LIVESTYLE_DATA")
    return Path(data) / "photos" if data else None


class StyleSettings(BaseSettings):
    """Added styles (``LIVESTYLE_STYLES_*``); a test may put its own in ``app.state.style_settings``."""

    model_config = SettingsConfigDict(env_prefix="LIVESTYLE_STYLES_", frozen=True, extra="ignore")

    dir: Path = Field(default_factory=default_styles_dir, description="added styles, their models and jobs")
    photos: Path | None = Field(
        default_factory=default_photos, description="photos a new style learns on (default: $LIVESTYLE_DATA/photos)"
    )
    minutes: float = Field(10.0, gt=0, description="default learning budget per model")
    max_minutes: float = Field(60.0, gt=0, description="largest budget a request may ask")
    max_steps: int = Field(20_000, ge=1, description="largest step budget a request may ask")
    threads: int = Field(1, ge=1, description="torch threads of the learning worker")
    nice: int = Field(10, ge=0, le=19, description="the worker's niceness: live streams come first")
    max_queued: int = Field(2, ge=0, description="jobs waiting behind the one learning; more answer 429")
    max_added: int = Field(16, ge=1, description="added styles the store holds")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_pixels: int = Field(40_000_000, ge=256, description="pixels of an uploaded picture (from its header)")
    min_side: int = Field(64, ge=16, description="shorter side of an uploaded picture")
    min_free_bytes: int = Field(256 * 1024**2, ge=0, description="free disk below which uploads answer 507")
    keep_jobs: int = Field(20, ge=1, description="finished jobs whose records and previews are kept")


class ClusterSettings(BaseModel):
    """How many workers and where (``livestyle-serve --engine ray`` flags)."""

    model_config = {"frozen": True}

    replicas: int = Field(2, ge=1, description="workers at start; the fixed count unless max_replicas is higher")
    max_replicas: int | None = Field(None, ge=1, description="autoscale between replicas and this")
    peers_per_replica: float | None = Field(
        None, gt=0, description="autoscaling target of peers per worker (default: 3/4 of max_peers)"
    )
    address: str | None = Field(None, description="Ray cluster to join (ray://host:10001 or auto); None: start one")
    replica_cpus: float | None = Field(
        None, ge=0, description="CPUs reserved per worker (None: one each, shared out when the cluster has fewer)"
    )
    replica_gpus: float = Field(0.0, ge=0, description="GPUs per worker (1: ONNX Runtime runs CUDA there)")
    drain_seconds: float = Field(120.0, ge=0, description="how long a worker being removed waits for its streams")
    stats_period: float = Field(0.5, gt=0, description="seconds between a worker's peer-count reports")
    upscale_delay: float = Field(2.0, ge=0, description="seconds of more peers than wanted before a worker is added")
    downscale_delay: float = Field(30.0, ge=0, description="seconds of fewer peers before a worker is removed")

    @model_validator(mode="after")
    def _bounds(self) -> ClusterSettings:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.replicas

    @property
    def most_workers(self) -> int:
        return self.max_replicas if self.autoscaling and self.max_replicas is not None else self.replicas
