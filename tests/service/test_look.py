"""One look vocabulary: the data channel, /api/stylize, /api/jobs and livestyle-video give the same message for
the same bad value, and nothing hostile escapes as anything but a clear error."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clips import write_clip
from conftest import STYLES
from fastapi.testclient import TestClient
from PIL import Image

from service.engine import Engine, RuntimeOptions
from service.errors import BadRequest
from service.http.app import create_app
from service.live.controls import Controls, apply_control
from service.look import Look, LookUpdate, decode_json
from service.settings import JobSettings, Settings
from service.video.cli import main

# (data-channel value, the same value as form/flag text, fragment of the one message)
SAME_MESSAGE = [
    ("strength", 3, "3", "strength must be in [0, 1]"),
    ("strength", float("nan"), "nan", "strength must be a finite number"),
    ("brush", 9, "9", "brush must be in [0.5, 4.0]"),
    ("brush", float("inf"), "inf", "brush must be a finite number"),
    ("weights", {"the_scream": -1}, '{"the_scream": -1}', "non-negative"),
    (
        "weights",
        {"the_scream": 1e308, "starry_night": 1e308},
        '{"the_scream": 1e308, "starry_night": 1e308}',
        "too large",
    ),
    ("weights", {"picasso": 1}, "picasso=1", "unknown styles"),
    ("weights", {"the_scream": {"deep": 1}}, '{"the_scream": {"deep": 1}}', "must be a number"),
]


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Engine:
    return Engine.load(models_dir, RuntimeOptions())


def controls() -> Controls:
    return Controls.starting(Look(model="tiny_realtime", styles=STYLES, weights=np.array([[1.0, 0, 0]], np.float32)), 0)


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    """The app with a one-job queue in a temporary folder (the REST form and the job form side by side)."""
    with TestClient(create_app(settings, JobSettings(max_queued=1, work_dir=tmp_path))) as test_client:
        yield test_client


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("key", "value", "text", "fragment"), SAME_MESSAGE)
def test_the_same_bad_value_gets_the_same_message_everywhere(
    key: str,
    value: object,
    text: str,
    fragment: str,
    engine: Engine,
    client: TestClient,
    tmp_path: Path,
    models_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    channel = apply_control(engine, controls(), json.dumps({key: value}))
    rest = client.post("/api/stylize", files={"image": ("a.png", png(), "image/png")}, data={key: text})
    job = client.post("/api/jobs", files={"video": ("a.mp4", b"not read", "video/mp4")}, data={key: text})
    flag = {"strength": "--strength", "brush": "--brush", "weights": "--style"}[key]
    source = write_clip(tmp_path / "in.mp4", frames=2, audio=False)
    with pytest.raises(SystemExit) as exit_info:
        main([str(source), str(tmp_path / "out.mp4"), flag, text, "--models-dir", str(models_dir), "--quiet"])
    cli = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(cli.splitlines()) == 1
    messages = [channel["error"], rest.json()["detail"], job.json()["detail"], cli]
    assert rest.status_code == 400 and job.status_code == 400
    assert all(fragment in m for m in messages), messages


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x81",
        "[" * 100_000,
        '{"strength": 1' + "0" * 5000 + "}",
        '{"weights": {"starry_night": 1e400}}',
        '{"strength": 1e400}',
        "[]",
        "{}",
        "null",
        '"text"',
        '{"id": {"x": 1}}',
        '{"weights": {"a": 1}, "id": 3, "x": 1}',
        json.dumps({"weights": {f"s{i}": 1 for i in range(1000)}}),
        '{"model": 5}',
        '{"mode": ["style"]}',
        '{"iterations": 1e9}',
        '{"iterations": true}',
        '{"layer": null, "octaves": 99999999999}',
    ],
)
def test_hostile_control_messages_are_replies_never_exceptions(raw: str | bytes, engine: Engine) -> None:
    state = controls()
    reply = apply_control(engine, state, raw)
    assert "error" in reply and isinstance(reply["error"], str) and len(reply["error"]) < 600
    json.dumps(reply)  # the reply itself can always be sent
    assert state.look.strength == 1.0 and state.look.brush == 1.0  # nothing applied


def test_a_good_message_applies_every_field(engine: Engine) -> None:
    state = controls()
    reply = apply_control(
        engine,
        state,
        json.dumps(
            {
                "weights": {STYLES[1]: 1},
                "strength": 0.5,
                "brush": 2,
                "preserve_color": True,
                "stabilize": True,
                "id": "a",
            }
        ),
    )
    assert reply == {"id": "a", "ok": True}
    look = state.look
    assert (look.strength, look.brush, look.preserve_color, look.stabilize is not None) == (0.5, 2.0, True, True)


def test_form_text_is_read_like_json() -> None:
    look = LookUpdate.from_text(
        {
            "weights": "starry_night=1,the_scream=0.5",
            "strength": "0.25",
            "preserve_color": "true",
            "stabilize": "0",
            "brush": "1.5",
            "model": None,
        }
    )
    assert look.weights == {"starry_night": 1.0, "the_scream": 0.5}
    assert (look.strength, look.preserve_color, look.stabilize, look.brush, look.model) == (
        0.25,
        True,
        False,
        1.5,
        None,
    )
    for bad, fragment in [({"preserve_color": "maybe"}, "true or false"), ({"strength": "lots"}, "a number")]:
        with pytest.raises(BadRequest, match=fragment):
            LookUpdate.from_text(bad)


def test_decode_json_turns_every_failure_into_one_error() -> None:
    for raw in (b"\xff", "[" * 50_000, "1" * 5000, "{"):
        with pytest.raises(BadRequest, match="not valid JSON"):
            decode_json(raw)
