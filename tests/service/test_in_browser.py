"""What the page needs to paint in the viewer's browser, over real HTTP: the info, the model file with its ETag
behind the token, the runtime files with their types and cache, and the cross-origin isolation headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST, STYLES
from fastapi.testclient import TestClient

from service import contract, web_runtime
from service.http.app import create_app
from service.settings import Settings


def runtime_folder(root: Path) -> Path:
    """Stand-ins for the runtime's files (the real ones are tested in a browser)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in (*web_runtime.WASM_FILES, *web_runtime.WEBGPU_FILES, *web_runtime.NOTICES):
        (root / name).write_bytes(b"// " + name.encode())
    return root


def test_the_page_learns_the_model_the_runtime_and_the_servers_rules(settings: Settings, tmp_path: Path) -> None:
    app = create_app(
        settings.model_copy(
            update={"web_runtime_dir": runtime_folder(tmp_path / "rt"), "ease_frames": 5, "target_fps": 24.0}
        )
    )
    with TestClient(app) as client:
        info = client.get("/api/in-browser").json()
        assert info["available"] is True and info["reason"] is None
        model = info["model"]
        assert model["name"] == FAST and model["styles"] == list(STYLES) and model["size_multiple"] == 4
        assert info["ease_frames"] == 5 and info["governor"]["target_fps"] == 24.0
        assert info["runtime"]["base_url"] == f"/runtime/{web_runtime.VERSION}/" and info["runtime"]["webgpu"]

        reply = client.get(model["url"])
        assert reply.status_code == 200 and reply.headers["etag"] == f'"{model["sha256"]}"'
        assert contract.sha256_file(settings.models_dir / f"{FAST}.onnx") == model["sha256"]
        assert reply.content == (settings.models_dir / f"{FAST}.onnx").read_bytes()
        again = client.get(model["url"], headers={"If-None-Match": reply.headers["etag"]})
        assert again.status_code == 304 and not again.content
        assert client.get(model["url"], headers={"If-None-Match": '"stale"'}).status_code == 200
        assert client.get("/api/models/nope/onnx").status_code == 404

        wasm = client.get(f"{info['runtime']['base_url']}ort-wasm-simd-threaded.wasm")
        assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
        assert "immutable" in wasm.headers["cache-control"]
        module = client.get(f"{info['runtime']['base_url']}ort.wasm.min.mjs")
        assert module.headers["content-type"].startswith("text/javascript")
        assert client.get(info["runtime"]["licence_url"]).status_code == 200
        assert client.get(f"{info['runtime']['base_url']}../../etc/passwd").status_code == 404
        assert client.get("/runtime/0.0.1/ort.wasm.min.mjs").status_code == 404  # only the pinned version

        for path in ("/", "/app.js", "/api/health", "/api/nope", model["url"]):
            headers = client.get(path).headers
            assert headers["cross-origin-opener-policy"] == "same-origin", path
            assert headers["cross-origin-embedder-policy"] == "require-corp", path


def test_without_the_runtime_the_page_is_told_to_paint_on_the_server(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings.model_copy(update={"web_runtime_dir": tmp_path / "none"}))) as client:
        info = client.get("/api/in-browser").json()
        assert info["available"] is False and "make setup-serve" in info["reason"]
        assert client.get(f"/runtime/{web_runtime.VERSION}/ort.wasm.min.mjs").status_code == 404


def test_the_model_file_needs_the_token_like_the_rest_of_the_api(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"api_token": "s3cret-token-for-tests"}))) as client:
        url = f"/api/models/{FAST}/onnx"
        refused = client.get(url)
        assert refused.status_code == 401 and refused.headers["cross-origin-embedder-policy"] == "require-corp"
        assert client.get("/api/in-browser").status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer s3cret-token-for-tests"}).status_code == 200


def test_install_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    fake = tmp_path / "onnxruntime-web-1.30.0.tgz"
    fake.write_bytes(b"not the runtime")
    with pytest.raises(web_runtime.RuntimeInstallError, match="integrity"):
        web_runtime.install(tmp_path / "rt", fake)
    assert not (tmp_path / "rt").exists()
