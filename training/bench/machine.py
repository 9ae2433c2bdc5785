"""What a benchmark ran on: CPU model and cores, GPU, library versions, the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from service.contract import MANIFEST_NAME, ContractError, read_manifest

VERSIONED = ("onnxruntime", "torch", "numpy", "opencv-python-headless")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return ", ".join(sorted(set(out.splitlines()))) or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def model_hashes(models_dir: Path) -> str:
    """'realtime sha256 f15f38cb39f4, quality sha256 ...' from the manifest (its recorded sha256, which the
    engine checks against the files at load)."""
    try:
        entries = read_manifest(models_dir / MANIFEST_NAME)
    except (ContractError, OSError):
        return "unreadable manifest"
    return ", ".join(f"{e.name} sha256 {e.sha256[:12]}" for e in entries)


@dataclass(frozen=True)
class Machine:
    when: str
    cpu: str
    cores: int
    gpu: str
    versions: str
    commit: str
    models: str = ""  # the measured models and their sha256 (short), from the manifest

    @classmethod
    def describe(cls, repo: Path, models_dir: Path | None = None) -> Machine:
        versions = ", ".join(f"{p} {version(p)}" for p in VERSIONED)
        return cls(
            when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            cpu=cpu_model(),
            cores=os.cpu_count() or 0,
            gpu=gpu_name(),
            versions=f"Python {platform.python_version()}, {versions}",
            commit=git_commit(repo),
            models=model_hashes(models_dir) if models_dir is not None else "",
        )

    def line(self, command: str) -> str:
        """The context every table carries."""
        models = f"; models {self.models}" if self.models else ""
        return (
            f"{self.when}; {self.cpu}, {self.cores} cores, GPU: {self.gpu}; {self.versions}; "
            f"livestyle {self.commit}{models}; command: `{command}`"
        )
