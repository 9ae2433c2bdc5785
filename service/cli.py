"""``livestyle-serve``: settings from flags and ``LIVESTYLE_*`` variables, then the app under uvicorn, or on Ray
Serve (``--engine ray``, service/http/cluster.py). Config flows one way: built here, passed down."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import uvicorn

from service.http.app import create_app
from service.settings import ClusterSettings, JobSettings, Settings, StyleSettings

CLUSTER_FLAGS = ("engine", "replicas", "max_replicas", "peers_per_replica", "address", "replica_cpus", "replica_gpus")


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    """Command-line overrides; anything not given comes from LIVESTYLE_* variables or defaults."""
    parser = argparse.ArgumentParser(prog="livestyle-serve", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--default-model")
    parser.add_argument("--providers", help="comma-separated ONNX Runtime providers")
    parser.add_argument("--intra-op-threads", type=int)
    parser.add_argument("--max-peers", type=int)
    parser.add_argument("--ice-loopback", action="store_true", default=None)
    parser.add_argument("--dream-device", help="live DeepDream device: cpu or cuda (default: cuda if present)")
    parser.add_argument("--log-level", default="info")
    scale = parser.add_argument_group("live streams on several workers (Ray Serve; the ray extra)")
    scale.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process holds every stream; ray: stylizing workers as Ray Serve replicas",
    )
    scale.add_argument("--replicas", type=int, help="workers (ray; default 2)")
    scale.add_argument("--max-replicas", type=int, help="autoscale between --replicas and this many workers")
    scale.add_argument("--peers-per-replica", type=float, help="autoscaling target (default: 3/4 of max peers)")
    scale.add_argument("--address", help="the Ray cluster to join (default: start one on this machine)")
    scale.add_argument(
        "--replica-cpus",
        type=float,
        help="CPUs reserved per worker (default 1, shared out when the cluster has fewer CPUs)",
    )
    scale.add_argument("--replica-gpus", type=float, help="GPUs per worker (1 with --providers CUDAExecutionProvider)")
    args = vars(parser.parse_args(argv))
    level = args.pop("log_level")
    cluster = {k: args.pop(k) for k in CLUSTER_FLAGS}
    overrides = {k: v for k, v in args.items() if v is not None}
    overrides["_log_level"] = level
    overrides["_cluster"] = {k: v for k, v in cluster.items() if v is not None}
    return overrides


def main(argv: list[str] | None = None) -> None:
    overrides = parse_args(argv)
    level = str(overrides.pop("_log_level")).upper()
    cluster = dict(overrides.pop("_cluster"))
    engine = cluster.pop("engine", "local")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    try:
        settings = Settings(**overrides)
        job_settings = JobSettings.model_validate({})  # LIVESTYLE_JOBS_* variables
        style_settings = StyleSettings.model_validate({})  # LIVESTYLE_STYLES_* variables
    except ValueError as exc:
        _exit_usage(f"invalid settings: {exc}")
    manifest = settings.models_dir / "manifest.json"
    if not manifest.is_file():
        _exit_usage(f"{manifest} not found (set LIVESTYLE_MODELS_DIR or --models-dir)")
    if engine == "ray":
        _serve_on_ray(settings, job_settings, style_settings, cluster)
        return
    if cluster:
        _exit_usage(f"--{next(iter(cluster)).replace('_', '-')} needs --engine ray")
    uvicorn.run(
        create_app(settings, job_settings, style_settings),
        host=settings.host,
        port=settings.port,
        log_level=level.lower(),
    )


def _serve_on_ray(
    settings: Settings, job_settings: JobSettings, style_settings: StyleSettings, flags: dict[str, Any]
) -> None:
    try:
        from service.http import cluster
    except ImportError as exc:
        _exit_usage(f"--engine ray needs Ray Serve (pip install 'livestyle[ray]'): {exc}")
    try:
        options = ClusterSettings(**flags)
    except ValueError as exc:
        _exit_usage(f"invalid settings: {exc}")
    try:
        cluster.run(settings, job_settings, style_settings, options)
    except cluster.ClusterDoesNotFit as exc:
        _exit_usage(str(exc))


def _exit_usage(message: str) -> NoReturn:
    sys.stderr.write(f"livestyle-serve: {message}\n")
    raise SystemExit(2)


if __name__ == "__main__":
    main()
