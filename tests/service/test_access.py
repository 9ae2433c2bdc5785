"""A public host: the token, foreign pages, body limits that bite while the body arrives, SDP and pixel limits,
slots that offers which never connect cannot hold, control-message rates, EXIF orientation."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, VideoStreamTrack
from cameras import StillTrack, gradient
from conftest import LiveServer
from fastapi.testclient import TestClient
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from examples.client import ClientError, StyleClient
from service.errors import PayloadTooLarge, ServiceBusy, UnsupportedMedia
from service.http.app import create_app
from service.http.deps import Slots
from service.http.gate import BodyLimits, Gate
from service.pictures import decode_image
from service.settings import Settings

TOKEN = "s3cret-token-for-tests-0123456789"


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"api_token": TOKEN}))) as client:
        yield client


def test_the_token_guards_every_api_route_but_health(guarded: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/api/health").status_code == 200
    assert guarded.get("/").status_code == 200  # the page itself asks for the token
    for method, path in [
        ("GET", "/api/styles"),
        ("GET", "/api/styles/starry_night/thumbnail"),
        ("POST", "/api/stylize"),
        ("POST", "/api/offer"),
        ("GET", "/api/jobs/abc"),
        ("DELETE", "/api/jobs/abc"),
        ("GET", "/api/rtc-config"),
    ]:
        refused = guarded.request(method, path)
        assert refused.status_code == 401, (method, path)
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = guarded.request(method, path, headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
        assert wrong.status_code == 401
    assert guarded.get("/api/styles", headers=auth).status_code == 200
    image = png(np.full((20, 30, 3), 90, np.uint8))
    done = guarded.post("/api/stylize", files={"image": ("a.png", image)}, headers=auth)
    assert done.status_code == 200 and done.headers["content-type"] == "image/png"
    assert guarded.get("/api/jobs/abc", headers=auth).status_code == 404  # past the gate: the route answers


def test_a_foreign_page_cannot_post(client_app: TestClient) -> None:
    image = png(np.full((20, 30, 3), 90, np.uint8))
    foreign = client_app.post(
        "/api/stylize", files={"image": ("a.png", image)}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "another site" in foreign.json()["detail"]
    assert (
        client_app.post("/api/stylize", files={"image": ("a.png", image)}, headers={"Origin": "null"}).status_code
        == 403
    )  # sandboxed frames, file pages
    same = client_app.post("/api/stylize", files={"image": ("a.png", image)}, headers={"Origin": "http://testserver"})
    assert same.status_code == 200
    assert client_app.get("/api/styles", headers={"Origin": "https://evil.example"}).status_code == 200  # reads


@pytest.fixture
def client_app(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"allowed_origins": ["https://app.example"]}))) as client:
        yield client


def test_an_allowed_origin_may_post(client_app: TestClient) -> None:
    image = png(np.full((20, 30, 3), 90, np.uint8))
    ok = client_app.post("/api/stylize", files={"image": ("a.png", image)}, headers={"Origin": "https://app.example"})
    assert ok.status_code == 200


def test_allowed_hosts_refuse_other_host_names(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"allowed_hosts": ["style.example.org"]}))
    with TestClient(app, base_url="http://style.example.org") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health", headers={"Host": "rebound.attacker"}).status_code == 400


def raw_request(port: int, head: str, chunks: Iterator[bytes], read_after: int = 0) -> tuple[int, float]:
    """Send ``head`` then ``chunks`` on a raw socket until the server answers; returns the status and how many
    body bytes had been sent when it did (a limit that waits for the whole body would see them all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        sent = 0
        sock.setblocking(False)
        answer = b""
        for chunk in chunks:
            try:
                answer += sock.recv(4096)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            time.sleep(0.002)
        sock.setblocking(True)
        deadline = time.monotonic() + 10
        while b"\r\n" not in answer and time.monotonic() < deadline:
            answer += sock.recv(4096)
    return int(answer.split(b" ", 2)[1]), sent


def test_body_limits_bite_while_the_body_arrives(settings: Settings) -> None:
    with LiveServer(settings) as server:  # max_upload_bytes 200_000
        port = server.settings.port
        declared = (
            "POST /api/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
            "boundary=x\r\nContent-Length: 60000000\r\n\r\n"
        )
        status, sent = raw_request(port, declared, iter([b"x" * 65536] * 900))
        assert status == 413 and sent < 2_000_000  # refused from the header, not after 60 MB

        def chunked() -> Iterator[bytes]:
            yield (
                b"10000\r\n"
                + b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'.ljust(0x10000, b"a")
                + b"\r\n"
            )
            while True:
                yield b"10000\r\n" + b"a" * 0x10000 + b"\r\n"

        head = (
            "POST /api/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        status, sent = raw_request(port, head, chunked())
        assert status == 413 and sent < 3_000_000
        assert httpx.get(f"{server.url}/api/health").status_code == 200


def test_a_precheck_refuses_before_the_body_is_read() -> None:
    read: list[int] = []

    async def upload(request: Request) -> PlainTextResponse:
        read.append(len(await request.body()))
        return PlainTextResponse("ok")

    def full() -> None:
        raise ServiceBusy("4 video jobs are waiting already", retry_after=30)

    app = Gate(
        Starlette(routes=[Route("/api/jobs", upload, methods=["POST"])]),
        token=None,
        allowed_origins=(),
        limits=BodyLimits(default=10_000),
        prechecks={("POST", "/api/jobs"): full},
    )
    with TestClient(app) as client:
        busy = client.post("/api/jobs", content=b"v" * 5000)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "30" and read == []


def offer_sdp(sections: int = 1) -> str:
    async def make() -> str:
        pc = RTCPeerConnection()
        for _ in range(sections):
            pc.addTrack(VideoStreamTrack())
        pc.createDataChannel("control")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return asyncio.run(make())


def test_sdp_limits_before_parsing(guarded_settings: Settings) -> None:
    with TestClient(create_app(guarded_settings)) as client:
        huge = client.post("/api/offer", json={"sdp": "v=0\r\n" + "m=video 9 UDP 96\r\n" * 120_000, "type": "offer"})
        assert huge.status_code == 413
        many = client.post("/api/offer", json={"sdp": offer_sdp(12), "type": "offer"})
        assert many.status_code == 400 and "media sections" in many.json()["detail"]
        assert client.get("/api/health").json()["peers"] == 0


@pytest.fixture
def guarded_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"connect_timeout": 1.5, "stats_interval": 0.2})


def test_offers_that_never_connect_give_their_slot_back(guarded_settings: Settings) -> None:
    quick = guarded_settings.model_copy(update={"max_peers": 3})
    with LiveServer(quick) as server:
        sdp = offer_sdp()
        answers = [httpx.post(f"{server.url}/api/offer", json={"sdp": sdp, "type": "offer"}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]  # two pending per address at most
        assert "still connecting" in answers[2].json()["detail"] and answers[2].headers["retry-after"]
        assert httpx.get(f"{server.url}/api/health").json()["peers"] == 2
        started = time.monotonic()
        while httpx.get(f"{server.url}/api/health").json()["peers"] and time.monotonic() - started < 10:
            time.sleep(0.1)
        held = time.monotonic() - started
        assert httpx.get(f"{server.url}/api/health").json()["peers"] == 0 and held < 3.5

        async def real_user() -> None:  # the slots are free again for someone who connects
            client = StyleClient(server.url)
            try:
                await client.connect(StillTrack(gradient(60, 80)))
                assert await client.send({"strength": 0.5}) == {"ok": True}
            finally:
                await client.close()

        asyncio.run(real_user())


def test_a_control_burst_gets_one_error_then_silence(settings: Settings) -> None:
    burst = settings.model_copy(update={"control_rate": 5.0, "control_burst": 10})
    with LiveServer(burst) as server:

        async def scenario() -> list[dict[str, object]]:
            client = StyleClient(server.url)
            try:
                await client.connect(StillTrack(gradient(60, 80)))
                for _ in range(200):
                    client.channel.send('{"strength": 0.5}')
                await asyncio.sleep(1.0)
                replies = []
                while not client._replies.empty():
                    replies.append(client._replies.get_nowait())
                await asyncio.sleep(0.5)  # the bucket refills: a message is answered again
                replies.append(await client.send({"strength": 0.7}))
                return replies
            finally:
                await client.close()

        replies = asyncio.run(scenario())
    errors = [r for r in replies if "error" in r]
    assert len(errors) == 1 and "too many control messages" in str(errors[0]["error"])
    assert 10 <= sum(r == {"ok": True} for r in replies[:-1]) <= 20  # the burst, plus a refill or so
    assert replies[-1] == {"ok": True}


def test_pixels_are_checked_from_the_header_before_decoding() -> None:
    big = io.BytesIO()
    Image.new("L", (13000, 13000)).save(big, format="PNG")  # half a megabyte, 169 megapixels
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="13000x13000"):
        decode_image(big.getvalue(), 10_000_000, max_pixels=40_000_000)
    assert time.perf_counter() - started < 1.0  # nothing was decoded


def test_every_picture_upload_answers_a_fault_the_same_way() -> None:
    """/api/stylize's decoder and the learned-style upload share one decoder: one answer per fault."""
    from service.learned.store import read_picture
    from service.settings import StyleSettings

    big = io.BytesIO()
    Image.new("L", (13000, 13000)).save(big, format="PNG")
    settings = StyleSettings.model_validate({"max_pixels": 40_000_000})
    for decode in (lambda d: decode_image(d, 10_000_000), lambda d: read_picture(d, settings)):
        with pytest.raises(PayloadTooLarge, match="13000x13000"):
            decode(big.getvalue())
        with pytest.raises(UnsupportedMedia, match="not an image"):
            decode(b"not a picture at all")


def test_exif_orientation_is_honoured(client_app: TestClient) -> None:
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # left half white
    photo = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    Image.fromarray(rgb).save(photo, format="JPEG", exif=exif.tobytes(), quality=95)
    upright = decode_image(photo.getvalue(), 1_000_000)
    assert upright.shape == (40, 20, 3)
    assert upright[:18].mean() > 200 and upright[22:].mean() < 50  # white half on top, as the phone showed it
    out = client_app.post("/api/stylize", files={"image": ("p.jpg", photo.getvalue())}, data={"strength": "0"})
    assert Image.open(io.BytesIO(out.content)).size == (20, 40)


def test_stylize_slots_refuse_one_past_the_limit() -> None:
    slots = Slots(2, "image stylizing")
    with slots.hold(), slots.hold():
        with pytest.raises(ServiceBusy) as refused:
            with slots.hold():
                pass
        assert refused.value.retry_after == 1
    with slots.hold():
        assert slots.taken == 1


def test_a_refused_client_is_told_why(guarded_settings: Settings) -> None:
    with LiveServer(guarded_settings.model_copy(update={"api_token": TOKEN})) as server:

        async def scenario() -> None:
            client = StyleClient(server.url)
            with pytest.raises(ClientError, match="401"):
                await client.connect(StillTrack(gradient(60, 80)))
            await client.close()
            client = StyleClient(server.url, token=TOKEN)
            try:
                await client.connect(StillTrack(gradient(60, 80)))
                assert await client.send({"strength": 0.5}) == {"ok": True}
            finally:
                await client.close()

        asyncio.run(scenario())
