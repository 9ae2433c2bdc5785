"""Real HTTP through the app: styles, stylize, health, and clear 4xx errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import FAST, SLOW, STYLES, reference_output
from fastapi.testclient import TestClient
from PIL import Image

from service import contract
from service.errors import BadRequest
from service.http.app import create_app
from service.look import LookUpdate
from service.settings import Settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)


def test_health(client: TestClient) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["models"] == sorted([FAST, SLOW]) and body["peers"] == 0


def test_styles_lists_models_styles_in_order_and_thumbnails(client: TestClient) -> None:
    body = client.get("/api/styles").json()
    assert body["default_model"] == FAST
    model = next(m for m in body["models"] if m["name"] == FAST)
    assert [s["name"] for s in model["styles"]] == list(STYLES)
    thumb = client.get(model["styles"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (160, 160)
    assert client.get("/api/styles/nope/thumbnail").status_code == 404
    kinds = {s["name"]: (s["kind"], s["layer"], s["gain"]) for s in model["styles"]}
    assert kinds == {
        "starry_night": ("painting", None, None),
        "the_scream": ("painting", None, None),
        "dream_relu3_3": ("dream", "relu3_3", 2.5),
    }


def test_dream_endpoint_says_what_live_dreaming_allows(client: TestClient) -> None:
    from service import dream

    body = client.get("/api/dream").json()
    assert body["available"] == (dream.missing_requirement() is None)
    assert body["layers"] == list(dream.LAYERS) and body["defaults"]["layer"] in body["layers"]
    assert body["ranges"]["iterations"] == list(dream.ITERATIONS)


def test_the_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "livestyle" in page.text.lower()
    assert client.get("/app.js").status_code == 200


def test_stylize_returns_the_blended_png(client: TestClient, picture: np.ndarray) -> None:
    response = client.post(
        "/api/stylize",
        files={"image": ("in.png", png_bytes(picture), "image/png")},
        data={"weights": json.dumps({"the_scream": 1, "dream_relu3_3": 1}), "model": SLOW},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    out = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    expected = reference_output(picture, contract.normalize_weights([0, 1, 1], 3))
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_stylize_text_weights_strength_and_preserve_color(client: TestClient, picture: np.ndarray) -> None:
    response = client.post(
        "/api/stylize",
        files={"image": ("in.png", png_bytes(picture), "image/png")},
        data={"weights": "starry_night=1", "strength": "0"},
    )
    out = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    np.testing.assert_array_equal(out, picture)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"weights": '{"nope": 1}'}, "unknown styles"),
        ({"weights": '{"starry_night": -1}'}, "non-negative"),
        ({"weights": "{bad json"}, "not valid JSON"),
        ({"strength": "2"}, "strength"),
        ({"model": "nope"}, "unknown model"),
    ],
)
def test_stylize_bad_fields_are_400(client: TestClient, picture: np.ndarray, data: dict, fragment: str) -> None:
    response = client.post("/api/stylize", files={"image": ("a.png", png_bytes(picture), "image/png")}, data=data)
    assert response.status_code == 400 and fragment in response.json()["detail"]


def test_not_an_image_is_415(client: TestClient) -> None:
    response = client.post("/api/stylize", files={"image": ("a.png", b"this is text", "image/png")})
    assert response.status_code == 415 and "not an image" in response.json()["detail"]


def test_oversize_upload_is_413(client: TestClient, settings: Settings) -> None:
    noise = np.random.default_rng(3).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    body = png_bytes(noise)
    assert len(body) > settings.max_upload_bytes
    response = client.post("/api/stylize", files={"image": ("big.png", body, "image/png")})
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_missing_image_is_400(client: TestClient) -> None:
    response = client.post("/api/stylize", data={"strength": "1"})
    assert response.status_code == 400 and "image" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "JSON decode error"),
        (json.dumps({"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}), "malformed SDP"),
        (json.dumps({"sdp": "v=0\r\n", "type": "offer"}), "video track"),
        (json.dumps({"sdp": "x", "type": "answer"}), "type"),
        (json.dumps({"type": "offer"}), "sdp"),
    ],
)
def test_bad_offers_are_400(client: TestClient, body: str, fragment: str) -> None:
    response = client.post("/api/offer", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]
    assert client.get("/api/health").json()["peers"] == 0


def test_openapi_docs(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/styles", "/api/stylize", "/api/offer", "/api/health"} <= set(paths)


def test_the_catalog_says_the_ranges_the_vocabulary_takes(client: TestClient) -> None:
    """The page's sliders span what /api/styles says, and those are the bounds the one vocabulary checks."""
    controls = client.get("/api/styles").json()["controls"]
    for key in ("strength", "brush"):
        low, high = controls[key]["min"], controls[key]["max"]
        LookUpdate.parse({key: low})
        LookUpdate.parse({key: high})
        for outside in (low - 0.01, high + 0.01):
            with pytest.raises(BadRequest):
                LookUpdate.parse({key: outside})
