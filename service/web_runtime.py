"""The browser's own ONNX runtime: onnxruntime-web, pinned, fetched from the npm registry at set-up, served by the
app (never a CDN: the page must work on a LAN with no internet).

``python -m service.web_runtime install`` (``make serve`` and ``make setup`` run it) packs the pinned version with
npm, checks the tarball against the pinned sha512 integrity, and keeps only the files the page loads, beside
onnxruntime's licence and third-party notices (the same project's, shipped in the onnxruntime Python wheel).
They land in ``service/vendor/`` (ignored by git), whole or not at all. The server answers the page with
what is there (:func:`runtime_status`); a missing runtime leaves the page painting on the server.

The same command fetches, the same way, an independent WHIP client and WHEP player (npm ``whip-whep``, by an author
of RFC 9725) that the broadcast tests drive in Chromium; nothing serves them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "onnxruntime-web"
VERSION = "1.30.0"
INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
# dist/ files the page loads: the WASM build (SIMD, threads), and the WebGPU build with its asyncify WASM.
WASM_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU_FILES = ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
NOTICES = ("LICENSE", "ThirdPartyNotices.txt")
MEDIA_TYPES = {".mjs": "text/javascript", ".wasm": "application/wasm", ".txt": "text/plain", "": "text/plain"}
DEFAULT_DIR = Path(__file__).parent / "vendor" / f"{PACKAGE}-{VERSION}"
WHIP_PACKAGE, WHIP_VERSION = "whip-whep", "1.2.0"
WHIP_INTEGRITY = "sha512-CP+Tht3O/N6QLebW5LxsNKgzFN5KX6WinLr1SLs74feagYu+Gqy+0dw48p5RQuE+FlrM4xyOlOdW2UOQwljImA=="
WHIP_FILES = ("whip.js", "whep.js", "LICENSE")  # ES modules without dependencies, and their MIT licence
WHIP_CLIENTS_DIR = Path(__file__).parent / "vendor" / f"{WHIP_PACKAGE}-{WHIP_VERSION}"


class RuntimeInstallError(RuntimeError):
    """The runtime could not be fetched, or what was fetched is not what was pinned."""


@dataclass(frozen=True)
class RuntimeStatus:
    available: bool  # the WASM build is there (WebGPU is a bonus)
    version: str
    webgpu: bool
    reason: str | None  # why it is not available: what to run


def runtime_status(folder: Path) -> RuntimeStatus:
    have = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    missing = [name for name in WASM_FILES if name not in have]
    reason = (
        (
            f"the in-browser runtime ({PACKAGE} {VERSION}) is not installed on this server: run `make setup-serve` "
            "(or `python -m service.web_runtime install`)"
        )
        if missing
        else None
    )
    return RuntimeStatus(not missing, VERSION, all(name in have for name in WEBGPU_FILES), reason)


def served_file(folder: Path, name: str) -> tuple[Path, str] | None:
    """(path, media type) of a runtime file the page may load, or None: nothing else in the folder is served."""
    if name not in (*WASM_FILES, *WEBGPU_FILES, *NOTICES):
        return None
    path = folder / name
    return (path, MEDIA_TYPES[Path(name).suffix]) if path.is_file() else None


def integrity_of(path: Path) -> str:
    """npm's Subresource Integrity string of a file (sha512, base64)."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def install(folder: Path = DEFAULT_DIR, tarball: Path | None = None) -> Path:
    """Fetch (or take ``tarball``), check and unpack the pinned runtime into ``folder``; a no-op when it is
    complete. Raises :class:`RuntimeInstallError` with what went wrong."""
    if all((folder / name).is_file() for name in (*WASM_FILES, *WEBGPU_FILES, *NOTICES)):
        return folder
    members = {name: f"package/dist/{name}" for name in (*WASM_FILES, *WEBGPU_FILES)}
    return _unpack((PACKAGE, VERSION, INTEGRITY), members, folder, tarball, _notices())


def install_whip_clients(folder: Path = WHIP_CLIENTS_DIR, tarball: Path | None = None) -> Path:
    """Fetch (or take ``tarball``), check and unpack the pinned WHIP client and WHEP player; a no-op when there."""
    if all((folder / name).is_file() for name in WHIP_FILES):
        return folder
    members = {name: f"package/{name}" for name in WHIP_FILES}
    return _unpack((WHIP_PACKAGE, WHIP_VERSION, WHIP_INTEGRITY), members, folder, tarball)


def _unpack(
    pin: tuple[str, str, str],
    members: dict[str, str],
    folder: Path,
    tarball: Path | None,
    extra: dict[str, str] | None = None,
) -> Path:
    """``members`` (name -> path in the tarball) of the pinned (package, version, integrity), and ``extra`` files
    (name -> text), into ``folder``: whole or not at all."""
    with tempfile.TemporaryDirectory(prefix="livestyle-runtime-") as tmp:
        if tarball is None:
            tarball = _pack(Path(tmp), pin)
        found = integrity_of(tarball)
        if found != pin[2]:
            raise RuntimeInstallError(f"{tarball.name}: integrity {found[:24]}... is not the pinned {pin[2][:24]}...")
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(tarball, "r:gz") as archive:
            for name, inside in members.items():
                member = archive.extractfile(inside)
                if member is None:
                    raise RuntimeInstallError(f"{tarball.name} has no {inside.removeprefix('package/')}")
                with member, (partial / name).open("wb") as out:
                    shutil.copyfileobj(member, out)
        for name, text in (extra or {}).items():
            (partial / name).write_text(text)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder


def _pack(work: Path, pin: tuple[str, str, str]) -> Path:
    package, version, integrity = pin
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeInstallError(
            "npm is not installed (Debian: apt-get install npm); the page will paint on the server only"
        )
    done = subprocess.run(
        [npm, "pack", f"{package}@{version}", "--json", "--silent"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeInstallError(f"npm pack {package}@{version} failed: {done.stderr.strip()[-300:]}")
    (info,) = json.loads(done.stdout)
    if info.get("integrity") != integrity:
        raise RuntimeInstallError(
            f"the registry's {package}@{version} has integrity {info.get('integrity')}, not the pinned {integrity}"
        )
    return work / str(info["filename"])


def _notices() -> dict[str, str]:
    """onnxruntime's MIT licence and third-party notices, from the onnxruntime wheel (the same project)."""
    spec = importlib.util.find_spec("onnxruntime")
    folder = Path(next(iter(spec.submodule_search_locations or ()), "")) if spec else None
    if folder is None or not all((folder / n).is_file() for n in NOTICES):
        raise RuntimeInstallError("onnxruntime's LICENSE and ThirdPartyNotices.txt were not found (pip install -e .)")
    header = (
        f"{PACKAGE} {VERSION} (npm registry), MIT licence, Copyright (c) Microsoft Corporation. "
        "The licence and third-party notices of the ONNX Runtime project follow.\n\n"
    )
    return {
        name: (header if name == "LICENSE" else "") + (folder / name).read_text(encoding="utf-8") for name in NOTICES
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service.web_runtime", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "install",
        help=f"fetch {PACKAGE} {VERSION} (and {WHIP_PACKAGE} {WHIP_VERSION}, for the "
        "tests) from the npm registry, check them, unpack them",
    )
    p.add_argument("--dest", type=Path, default=DEFAULT_DIR)
    p.add_argument("--tarball", type=Path, help="a tarball already fetched (checked all the same)")
    args = parser.parse_args(argv)
    try:
        folder = install(args.dest, args.tarball)
        print(f"{PACKAGE} {VERSION} in {folder}")
        if args.tarball is None:
            print(f"{WHIP_PACKAGE} {WHIP_VERSION} in {install_whip_clients()}")
    except (RuntimeInstallError, OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        print(f"service.web_runtime: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
