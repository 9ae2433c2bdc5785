"""Your own painting over HTTP: upload, learn in a worker process, serve it, keep it across a restart, remove it.

A tiny real style network (exported with its checkpoint, as the bundled models are) and a few synthetic photos;
the learning runs the real worker (``python -m training.learn``) for a handful of steps.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import learnable_models, picture, png
from fastapi.testclient import TestClient
from PIL import Image

from service import contract
from service.http.app import create_app
from service.learned.store import STARTER_DIR, STARTER_PHOTOS, photos_in
from service.settings import Settings, StyleSettings

torch = pytest.importorskip("torch", reason="learning a style needs torch (the train extra)")
from training.checkpoint import load_checkpoint  # noqa: E402
from training.learn import without_styles  # noqa: E402
from training.networks import NetConfig, StyleNet  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, StyleSettings, Path]:
    root = tmp_path_factory.mktemp("learn")
    models, photos = learnable_models(root)
    settings = Settings(models_dir=models, ice_loopback=True)
    style_settings = StyleSettings(dir=root / "store", photos=photos, threads=1, nice=0, max_queued=2)
    return settings, style_settings, root


@pytest.fixture
def client(setup: tuple[Settings, StyleSettings, Path]) -> Iterator[TestClient]:
    settings, style_settings, _ = setup
    with TestClient(create_app(settings, style_settings=style_settings)) as c:
        yield c


def wait_done(client: TestClient, job_id: str, seconds: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    saw_preview = False
    while time.monotonic() < deadline:
        job = client.get(f"/api/styles/jobs/{job_id}").json()
        for url in job["preview_urls"].values():
            reply = client.get(url)
            saw_preview |= reply.status_code == 200 and reply.content[:4] == b"\x89PNG"
        if job["state"] in ("done", "failed", "cancelled"):
            job["saw_preview"] = saw_preview
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"style job {job_id} did not finish in {seconds} s")


def stylized(client: TestClient, style: str) -> np.ndarray:
    reply = client.post("/api/stylize", files={"image": ("p.png", png(picture(5, 64)))}, data={"weights": f"{style}=1"})
    assert reply.status_code == 200, reply.text
    return np.asarray(Image.open(io.BytesIO(reply.content))).astype(np.float32)


def styles_of(client: TestClient) -> dict[str, str]:
    (model,) = client.get("/api/styles").json()["models"]
    return {s["name"]: s["kind"] for s in model["styles"]}


def test_a_picture_becomes_a_style_survives_a_restart_and_is_removed(
    setup: tuple[Settings, StyleSettings, Path],
) -> None:
    settings, style_settings, root = setup
    bundled = {p.name: contract.sha256_file(p) for p in settings.models_dir.rglob("*") if p.is_file()}
    with TestClient(create_app(settings, style_settings=style_settings)) as client:
        info = client.get("/api/styles/learning").json()
        assert info["available"] is True
        assert re.fullmatch(info["name_pattern"], "my_dots") and not re.fullmatch(info["name_pattern"], "Bad Name")
        reply = client.post(
            "/api/styles", files={"image": ("mine.png", png(picture(21, 120)))}, data={"name": "my_dots", "steps": "3"}
        )
        assert reply.status_code == 202, reply.text
        job = wait_done(client, reply.json()["id"])
        assert job["state"] == "done", job
        assert job["saw_preview"] and job["started_from"] in ("stripes", "checks")
        assert styles_of(client) == {"stripes": "painting", "checks": "painting", "my_dots": "added"}
        assert client.get("/api/styles/my_dots/thumbnail").status_code == 200
        mine = stylized(client, "my_dots")
        for other in ("stripes", "checks"):
            assert np.abs(mine - stylized(client, other)).mean() > 1.0
        again = client.post(
            "/api/styles", files={"image": ("x.png", png(picture(3, 120)))}, data={"name": "my_dots", "steps": "3"}
        )
        assert again.status_code == 409
    # only the new rows learned: every convolution and the bundled rows are bit-identical
    store = style_settings.dir
    (grown,) = (store / "checkpoints").glob("realtime-*.pt")
    old, new = load_checkpoint(settings.models_dir / "checkpoints" / "realtime.pt"), load_checkpoint(grown)
    for key, value in old["state_dict"].items():
        torch.testing.assert_close(
            new["state_dict"][key][: value.shape[0]] if key.endswith((".gamma", ".beta")) else new["state_dict"][key],
            value,
            rtol=0,
            atol=0,
        )
    assert {p.name: contract.sha256_file(p) for p in settings.models_dir.rglob("*") if p.is_file()} == bundled
    (entry,) = contract.read_manifest(store / contract.MANIFEST_NAME)
    record = entry.training["added_styles"]["my_dots"]
    assert len(record["source_sha256"]) == 64 and record["steps"] == 3 and record["date"]

    with TestClient(create_app(settings, style_settings=style_settings)) as client:  # a restart keeps it
        assert "my_dots" in styles_of(client)
        assert client.delete("/api/styles/stripes").status_code == 403
        assert client.delete("/api/styles/nope").status_code == 404
        gone = client.delete("/api/styles/my_dots")
        assert gone.status_code == 202 and gone.json()["state"] == "done"
        assert "my_dots" not in styles_of(client)
        assert not (store / contract.MANIFEST_NAME).exists() and not list(store.glob("*.onnx"))


def test_two_styles_queue_one_is_cancelled_and_removing_one_keeps_the_other(client: TestClient) -> None:
    first = client.post(
        "/api/styles", files={"image": ("a.png", png(picture(31, 100)))}, data={"name": "first", "steps": "2"}
    ).json()
    second = client.post(
        "/api/styles", files={"image": ("b.png", png(picture(32, 100)))}, data={"name": "second", "steps": "2"}
    ).json()
    assert second["state"] == "queued"
    assert wait_done(client, first["id"])["state"] == "done"
    assert wait_done(client, second["id"])["state"] == "done"
    assert {"first", "second"} <= set(styles_of(client))
    before = stylized(client, "second")
    slow = client.post(
        "/api/styles", files={"image": ("c.png", png(picture(33, 100)))}, data={"name": "third", "minutes": "30"}
    ).json()
    deadline = time.monotonic() + 60
    while client.get(f"/api/styles/jobs/{slow['id']}").json()["state"] != "learning":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.delete(f"/api/styles/jobs/{slow['id']}").json()["state"] == "cancelled"
    assert "third" not in styles_of(client)
    removal = client.delete("/api/styles/first")  # two added: the worker rebuilds the model without it
    assert removal.status_code == 202 and removal.json()["state"] == "queued"
    assert wait_done(client, removal.json()["id"])["state"] == "done"
    names = styles_of(client)
    assert "first" not in names and names["second"] == "added"
    np.testing.assert_allclose(stylized(client, "second"), before, atol=1.0)  # its rows moved, unchanged


@pytest.mark.parametrize(
    "files, data, status, fragment",
    [
        ({"image": ("a.txt", b"not a picture")}, {"name": "fine"}, 415, "not an image"),
        ({"image": ("a.png", png(picture(1, 32)))}, {"name": "fine"}, 400, "at least 64"),
        ({"image": ("a.png", png(picture(1, 96)))}, {"name": "Bad Name"}, 400, "lowercase"),
        ({"image": ("a.png", png(picture(1, 96)))}, {"name": "dream_relu3_3"}, 400, "dream_"),
        ({"image": ("a.png", png(picture(1, 96)))}, {"name": "stripes"}, 409, "exists"),
        ({"image": ("a.png", png(picture(1, 96)))}, {"name": "fine", "minutes": "-1"}, 400, "minutes"),
        ({"image": ("a.png", png(picture(1, 96)))}, {"name": "fine", "models": "nope"}, 400, "models"),
    ],
)
def test_bad_uploads_get_a_clear_4xx_and_nothing_is_queued(
    client: TestClient, files: dict[str, object], data: dict[str, str], status: int, fragment: str
) -> None:
    reply = client.post("/api/styles", files=files, data=data)
    assert reply.status_code == status and fragment in reply.json()["detail"], reply.text
    assert all(j["state"] in ("done", "failed", "cancelled") for j in client.get("/api/styles/jobs").json())


def test_dropping_rows_keeps_every_other_tensor() -> None:
    net = StyleNet(NetConfig(num_styles=3, widths=(4, 8), res_blocks=1, in_kernel=3, out_kernel=3))
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma.normal_()
    smaller, kept = without_styles(net, ["a", "b", "c"], ("b",))
    assert kept == ["a", "c"] and smaller.config.num_styles == 2
    for key, value in net.state_dict().items():
        expected = value[[0, 2]] if key.endswith((".gamma", ".beta")) else value
        torch.testing.assert_close(smaller.state_dict()[key], expected, rtol=0, atol=0)


def test_the_example_client_adds_a_style_over_real_http(
    setup: tuple[Settings, StyleSettings, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import LiveServer

    from examples.add_style import main

    settings, style_settings, root = setup
    picture_path = root / "example.png"
    Image.fromarray(picture(41, 100)).save(picture_path)
    with LiveServer(settings, style_settings) as live:
        main(
            [
                str(picture_path),
                "--name",
                "from_example",
                "--steps",
                "2",
                "--url",
                live.url,
                "--preview",
                str(root / "preview.png"),
            ]
        )
        assert "from_example is ready" in capsys.readouterr().err
        assert (root / "preview.png").read_bytes()[:4] == b"\x89PNG"
        with pytest.raises(SystemExit) as exit_info:  # the same name again: the server's 409, one line
            main([str(picture_path), "--name", "from_example", "--steps", "2", "--url", live.url])
        assert exit_info.value.code == 2 and "409" in capsys.readouterr().err
        assert httpx.delete(f"{live.url}/api/styles/from_example").status_code == 202


def test_a_server_that_cannot_learn_says_why(models_dir: Path, tmp_path: Path) -> None:
    """Tiny hand-built models ship no checkpoints: 403 with the reason, and the page's info; a photo folder the
    user gave that does not exist is named, not replaced by the starter set."""
    app = create_app(Settings(models_dir=models_dir), style_settings=StyleSettings(dir=tmp_path, photos=None))
    with TestClient(app) as client:
        info = client.get("/api/styles/learning").json()
        assert info["available"] is False and "checkpoints" in info["reason"] and info["photos"] is None
        assert client.get("/api/health").json()["learning"]["available"] is False
        reply = client.post("/api/styles", files={"image": ("a.png", png(picture(1, 96)))}, data={"name": "x"})
        assert reply.status_code == 403 and "does not learn styles" in reply.json()["detail"]
    (tmp_path / "learnable").mkdir()
    models, _ = learnable_models(tmp_path / "learnable")
    missing = tmp_path / "no-such-photos"
    app = create_app(Settings(models_dir=models), style_settings=StyleSettings(dir=tmp_path / "s", photos=missing))
    with TestClient(app) as client:
        info = client.get("/api/styles/learning").json()
        assert info["available"] is False and str(missing) in info["reason"]
        assert not (tmp_path / "s" / STARTER_DIR).exists()


def test_without_a_photo_folder_styles_learn_on_the_starter_set(tmp_path: Path) -> None:
    """No LIVESTYLE_STYLES_PHOTOS: the public-domain / CC0 photos of scikit-image, copied into the store with
    their credits, said in /api/health, and a real job learns on them."""
    pytest.importorskip("skimage", reason="the starter set comes with scikit-image (the learn extra)")
    models, _ = learnable_models(tmp_path)
    style_settings = StyleSettings(dir=tmp_path / "store", photos=None, threads=1, nice=0)
    with TestClient(create_app(Settings(models_dir=models), style_settings=style_settings)) as client:
        said = client.get("/api/health").json()["learning"]
        assert said["available"] is True and "starter set" in said["photos"] and "scikit-image" in said["photos"]
        assert client.get("/api/styles/learning").json()["photos"] == said["photos"]
        folder = tmp_path / "store" / STARTER_DIR
        assert sorted(p.name for p in photos_in(folder)) == sorted(STARTER_PHOTOS)
        assert "Stefan van der Walt (CC0)" in (folder / "CREDITS.txt").read_text()
        reply = client.post(
            "/api/styles",
            files={"image": ("mine.png", png(picture(22, 120)))},
            data={"name": "on_starters", "steps": "2", "models": "realtime"},
        )
        assert reply.status_code == 202, reply.text
        job = wait_done(client, reply.json()["id"])
        assert job["state"] == "done", job
        request = (tmp_path / "store" / "jobs" / job["id"] / "request.json").read_text()
        assert str(folder) in request
