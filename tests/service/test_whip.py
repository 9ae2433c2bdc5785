"""WHIP ingest and WHEP playback against the live server over loopback, with aiortc publishers and viewers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from cameras import TOLERANCE, StillTrack, distance, gradient
from conftest import LiveServer, reference_output
from fastapi.testclient import TestClient
from whip_clients import AUTH, SDP, TOKEN, Publisher, Viewer, answered_codecs, ends, section, wait_for_match

from examples.client import StyleClient
from service import contract
from service.http.app import create_app
from service.live.offers import with_bitrate_cap
from service.settings import Settings


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings.model_copy(update={"api_token": TOKEN, "max_viewers": 2})) as live:
        yield live


def painted(style: int) -> np.ndarray:
    return reference_output(gradient(), contract.one_hot(style, 3))


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
def test_a_whip_publisher_is_painted_once_and_played_to_whep_viewers(server: LiveServer, codec: str) -> None:
    source = gradient()
    assert np.abs(painted(0).astype(np.float32) - source).mean() > 5 * TOLERANCE  # painted is far from the camera

    async def scenario() -> None:
        publisher = Publisher(server.url, codec)
        published = await publisher.publish("?weights=starry_night=1&strength=1")
        assert published.status_code == 201, published.text
        assert published.headers["content-type"] == "application/sdp"
        assert publisher.location == f"/api/whip/{publisher.session}" and len(publisher.session) >= 16
        assert answered_codecs(published.text) - {"rtx"} == {codec.split("/")[1]}
        assert "a=recvonly" in published.text[published.text.index("m=video") :]  # RFC 9725: the answer receives
        assert "\r\nb=AS:6000\r\nb=TIAS:6000000\r\n" in section(published.text, "video")  # the ingest cap
        viewers = [Viewer(server.url, "video/VP8"), Viewer(server.url, "video/H264")]  # each encoded its way
        try:
            for viewer in viewers:
                watched = await viewer.watch(publisher.session)
                assert watched.status_code == 201, watched.text
                assert answered_codecs(watched.text) - {"rtx"} == {viewer.codec.split("/")[1]}  # type: ignore
                assert watched.headers["location"].startswith(f"/api/whep/{publisher.session}/")
            for viewer in viewers:  # painted, not the camera picture
                remote = await asyncio.wait_for(viewer.track, 20)
                await wait_for_match(remote, painted(0), 90)
                assert distance(await asyncio.wait_for(remote.recv(), 10), source) > 3 * TOLERANCE
            listed = httpx.get(f"{server.url}/api/sessions", headers=AUTH).json()
            assert [(s["id"], s["source"], len(s["viewers"])) for s in listed] == [(publisher.session, "whip", 2)]
            # one painting for both viewers: painted frames never outnumber the camera's frames
            assert 0 < listed[0]["frames_painted"] <= listed[0]["frames_in"]
            encoded = listed[0]["frames_encoded"]  # one encode per codec the viewers play
            assert encoded.keys() == {"VP8", "H264"} and 0 < max(encoded.values()) <= listed[0]["frames_painted"]

            async with httpx.AsyncClient(headers=AUTH) as http:
                assert (await http.delete(server.url + viewers[1].location)).status_code == 200
                assert (await http.delete(server.url + viewers[1].location)).status_code == 404
                assert (await http.delete(server.url + publisher.location)).status_code == 200
                assert (await http.delete(server.url + publisher.location)).status_code == 404
                assert (await http.get(f"{server.url}/api/sessions")).json() == []
            assert server.app.state.broadcasts.viewers == {}  # nothing kept of an ended session
            assert await ends(viewers[0].track.result(), 10), "the viewer's stream went on after DELETE"
        finally:
            for pc in (publisher.pc, *(v.pc for v in viewers)):
                await pc.close()

    asyncio.run(scenario())


def test_viewers_of_one_codec_share_one_encode(server: LiveServer) -> None:
    async def scenario() -> None:
        publisher = Publisher(server.url, "video/H264")
        assert (await publisher.publish("?weights=starry_night=1")).status_code == 201
        viewers = [Viewer(server.url, "video/VP8"), Viewer(server.url, "video/VP8")]
        try:
            for viewer in viewers:
                assert (await viewer.watch(publisher.session)).status_code == 201
            for viewer in viewers:  # the same packets decode to the painting at each viewer
                await wait_for_match(await asyncio.wait_for(viewer.track, 20), painted(0), 90)
            broadcasts = server.app.state.broadcasts
            [feed] = broadcasts.feeds.values()
            assert len(feed.viewers) == 2 and feed.codec == "VP8"
            [listed] = httpx.get(f"{server.url}/api/sessions", headers=AUTH).json()
            assert 0 < listed["frames_encoded"]["VP8"] <= listed["frames_painted"]  # not one encode per viewer
            assert all(v["frames_sent"] > 0 for v in listed["viewers"])
            async with httpx.AsyncClient(headers=AUTH) as http:
                for viewer in viewers:
                    assert (await http.delete(server.url + viewer.location)).status_code == 200
            assert broadcasts.feeds == {}  # the last viewer out stops the encode
            [listed] = httpx.get(f"{server.url}/api/sessions", headers=AUTH).json()
            assert listed["frames_encoded"] == {} and listed["streaming"]  # the session paints on
        finally:
            for pc in (publisher.pc, *(v.pc for v in viewers)):
                await pc.close()

    asyncio.run(scenario())


def test_an_obs_shaped_offer_with_sound_is_painted_and_its_sound_declined(server: LiveServer) -> None:
    async def scenario() -> None:
        publisher = Publisher(server.url, "video/H264", audio=True)
        viewer = Viewer(server.url, audio=True)
        try:
            published = await publisher.publish("?weights=the_scream=1")
            assert published.status_code == 201, published.text
            assert "a=inactive" in section(published.text, "audio")  # nothing here paints or relays sound
            assert "a=recvonly" in section(published.text, "video")
            watched = await viewer.watch(publisher.session)
            assert watched.status_code == 201, watched.text
            assert "a=inactive" in section(watched.text, "audio") and "a=sendonly" in section(watched.text, "video")
            await wait_for_match(await asyncio.wait_for(viewer.track, 20), painted(1), 90)
        finally:
            await publisher.pc.close()
            await viewer.pc.close()

    asyncio.run(scenario())


def test_a_look_change_on_a_live_session_changes_the_picture(server: LiveServer) -> None:
    async def scenario() -> None:
        publisher = Publisher(server.url)
        assert (await publisher.publish("?weights=starry_night=1")).status_code == 201
        viewer = Viewer(server.url)
        try:
            assert (await viewer.watch(publisher.session)).status_code == 201
            remote = await asyncio.wait_for(viewer.track, 20)
            await wait_for_match(remote, painted(0), 90)
            look = f"{server.url}{publisher.location}/look"
            async with httpx.AsyncClient(headers=AUTH) as http:
                changed = await http.patch(look, json={"weights": {"the_scream": 1}})
                assert changed.json() == {"ok": True}
                # the same checks and words as the data channel (test_stream), and nothing applied
                for bad, fragment in [
                    ({"weights": {"nope": 1}}, "unknown styles"),
                    ({"strength": 3}, "strength"),
                    ({"colour": 1}, "unknown control keys"),
                ]:
                    refused = await http.patch(look, json=bad)
                    assert refused.status_code == 400 and fragment in refused.json()["detail"], refused.text
                assert (await http.patch(f"{server.url}/api/whip/nope/look", json={})).status_code == 404
            await wait_for_match(remote, painted(1), 30)
        finally:
            await publisher.pc.close()
            await viewer.pc.close()

    asyncio.run(scenario())


def test_the_pages_own_stream_is_playable_by_whep(server: LiveServer) -> None:
    async def scenario() -> None:
        client = StyleClient(server.url, token=TOKEN)
        viewer = Viewer(server.url)
        try:
            await client.connect(StillTrack(gradient()), weights={"the_scream": 1})
            assert client.session == client.peer_id and client.session
            assert (await viewer.watch(client.session)).status_code == 201
            await wait_for_match(await asyncio.wait_for(viewer.track, 20), painted(1), 90)
            listed = httpx.get(f"{server.url}/api/sessions", headers=AUTH).json()
            assert [(s["source"], len(s["viewers"])) for s in listed] == [("page", 1)]
        finally:
            await client.close()
            await viewer.pc.close()

    asyncio.run(scenario())


def test_viewers_past_the_cap_are_refused_with_retry_after(server: LiveServer) -> None:
    async def scenario() -> None:
        publisher = Publisher(server.url)
        assert (await publisher.publish()).status_code == 201
        viewers = [Viewer(server.url) for _ in range(3)]
        try:
            for viewer in viewers[:2]:
                assert (await viewer.watch(publisher.session)).status_code == 201
            refused = await viewers[2].watch(publisher.session)
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
            assert "2 viewers" in refused.json()["detail"]
        finally:
            for pc in (publisher.pc, *(v.pc for v in viewers)):
                await pc.close()

    asyncio.run(scenario())


def test_sessions_and_connecting_viewers_past_their_limits_are_refused(settings: Settings) -> None:
    limited = settings.model_copy(update={"api_token": TOKEN, "max_peers": 1, "max_pending_offers": 2})
    with LiveServer(limited) as server:

        async def scenario() -> None:
            publishers = [Publisher(server.url), Publisher(server.url)]
            viewers = [Viewer(server.url) for _ in range(3)]
            try:
                assert (await publishers[0].publish()).status_code == 201
                refused = await publishers[1].publish()  # a session is a peer: max_peers holds
                assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0, refused.text
                for viewer in viewers[:2]:  # offers whose answers are never used: they stay connecting
                    assert (await viewer.watch(publishers[0].session, answer=False)).status_code == 201
                refused = await viewers[2].watch(publishers[0].session)
                assert refused.status_code == 429 and "still connecting" in refused.json()["detail"]
                assert int(refused.headers["retry-after"]) > 0
            finally:
                for pc in (*(p.pc for p in publishers), *(v.pc for v in viewers)):
                    await pc.close()

        asyncio.run(scenario())


def test_a_camera_larger_than_the_limit_ends_its_session(settings: Settings) -> None:
    small = settings.model_copy(update={"api_token": TOKEN, "max_camera_pixels": 160 * 120, "stats_interval": 0.2})
    with LiveServer(small) as server:  # the publisher's camera is 320x240

        async def scenario() -> None:
            publisher = Publisher(server.url)
            try:
                assert (await publisher.publish()).status_code == 201
                deadline = time.monotonic() + 15
                while httpx.get(f"{server.url}/api/sessions", headers=AUTH).json() and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                assert httpx.get(f"{server.url}/api/sessions", headers=AUTH).json() == []
            finally:
                await publisher.pc.close()

        asyncio.run(scenario())


def test_a_publisher_that_vanishes_ends_its_viewers(settings: Settings) -> None:
    quick = settings.model_copy(update={"api_token": TOKEN, "idle_timeout": 1.0, "stats_interval": 0.2})
    with LiveServer(quick) as server:

        async def scenario() -> None:
            publisher = Publisher(server.url)
            assert (await publisher.publish()).status_code == 201
            viewer = Viewer(server.url)
            assert (await viewer.watch(publisher.session)).status_code == 201
            remote = await asyncio.wait_for(viewer.track, 20)
            await wait_for_match(remote, painted(0), 90)
            for sender in publisher.pc.getSenders():  # the camera stops without a goodbye (a killed OBS)
                assert sender.track is not None
                sender.track.stop()
            try:
                assert await ends(remote, 15), "the viewer's stream did not end when its publisher vanished"
                assert httpx.get(f"{server.url}/api/sessions", headers=AUTH).json() == []
            finally:
                await publisher.pc.close()
                await viewer.pc.close()

        asyncio.run(scenario())


def offer_text(codec: str = "video/VP8") -> str:
    async def make() -> str:
        publisher = Publisher("http://unused", codec)
        try:
            return await publisher.offer()
        finally:
            await publisher.pc.close()

    return asyncio.run(make())


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"api_token": TOKEN}))) as client:
        yield client


def test_what_a_whip_server_answers_without_media(guarded: TestClient) -> None:
    vp8 = offer_text()
    assert guarded.post("/api/whip", content=vp8, headers={"Content-Type": "application/sdp"}).status_code == 401
    wrong = {**SDP, "Authorization": "Bearer wrong-token-0123456789"}
    assert guarded.post("/api/whip", content=vp8, headers=wrong).status_code == 401
    options = guarded.options("/api/whip")  # a CORS preflight carries no token (RFC 9725)
    assert options.status_code == 200 and options.headers["accept-post"] == "application/sdp"

    for body, headers, status, fragment in [
        (vp8, {**AUTH, "Content-Type": "application/json"}, 415, "application/sdp"),
        ("", SDP, 400, "empty"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 oops\r\n", SDP, 400, "malformed SDP"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", SDP, 400, "video track"),
        (vp8.replace("VP8/90000", "VP9/90000"), SDP, 422, "VP9"),  # a codec this server cannot decode
        (vp8 + "a=x\r\n" * 20_000, SDP, 413, "limit"),  # the gate counts the body: 64 KiB for an offer
    ]:
        refused = guarded.post("/api/whip", content=body, headers=headers)
        assert refused.status_code == status and fragment in refused.json()["detail"], (status, refused.text)
    for query, fragment in [
        ("?weights=nope=1", "unknown styles"),
        ("?strength=3", "strength"),
        ("?style=the_scream=1", "unknown control keys"),
    ]:
        refused = guarded.post(f"/api/whip{query}", content=vp8, headers=SDP)
        assert refused.status_code == 400 and fragment in refused.json()["detail"], (query, refused.text)
    assert guarded.get("/api/sessions", headers=AUTH).json() == []  # nothing was left half open

    for method, path in [
        ("DELETE", "/api/whip/nope"),
        ("GET", "/api/whip/nope"),
        ("PATCH", "/api/whip/nope"),
        ("DELETE", "/api/whep/nope/viewer"),
        ("DELETE", "/api/sessions/nope"),
    ]:
        assert guarded.request(method, path, headers=AUTH).status_code == 404, (method, path)
    assert guarded.post("/api/whep/nope", content=vp8, headers=SDP).status_code == 404

    paths = guarded.get("/openapi.json", headers=AUTH).json()["paths"]
    assert "application/sdp" in paths["/api/whip"]["post"]["requestBody"]["content"]
    assert "application/sdp" in paths["/api/whep/{session}"]["post"]["requestBody"]["content"]
    assert {"/api/sessions", "/api/whip/{session}/look", "/api/whep/{session}/{viewer}"} <= set(paths)


def test_a_live_session_takes_no_trickle_and_says_so(server: LiveServer) -> None:
    async def scenario() -> None:
        publisher = Publisher(server.url, "video/H264")
        assert (await publisher.publish()).status_code == 201
        try:
            async with httpx.AsyncClient(headers=AUTH) as http:
                url = server.url + publisher.location
                assert (await http.get(url)).status_code == 204
                patched = await http.patch(
                    url, content="a=end-of-candidates\r\n", headers={"Content-Type": "application/trickle-ice-sdpfrag"}
                )
                assert patched.status_code == 405 and "DELETE" in patched.headers["allow"]
                assert "trickle" in patched.text
        finally:
            await publisher.pc.close()

    asyncio.run(scenario())


def test_the_ingest_cap_goes_into_each_video_section_after_its_connection_line() -> None:
    sdp = "\r\n".join(
        ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "m=video 9 UDP/TLS/RTP/SAVPF 96"]
        + ["c=IN IP4 0.0.0.0", "b=AS:99999", "a=rtpmap:96 VP8/90000", ""]
    )
    capped = with_bitrate_cap(sdp, 2_500_000).split("\r\n")
    assert capped[3:9] == [
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "b=AS:2500",
        "b=TIAS:2500000",
        "a=rtpmap:96 VP8/90000",
        "",
    ]
    assert capped[:3] == sdp.split("\r\n")[:3]  # sound is not capped
