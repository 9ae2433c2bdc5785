"""WHIP publishers and WHEP viewers on aiortc, for tests against a live server (one process or Ray Serve)."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
from aiortc import AudioStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from cameras import TOLERANCE, StillTrack, distance, gradient

TOKEN = "whip-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SDP = {"Content-Type": "application/sdp", **AUTH}


def prefer(pc: RTCPeerConnection, codec: str) -> None:
    """Offer only ``codec`` (video/H264 or video/VP8) on every video transceiver."""
    chosen = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (codec, "video/rtx")]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(chosen)


class Publisher:
    """A WHIP client on aiortc: a still camera, sent only (as OBS sends)."""

    def __init__(self, url: str, codec: str = "video/VP8", audio: bool = False) -> None:
        self.url, self.codec, self.audio = url, codec, audio
        self.pc = RTCPeerConnection()
        self.location = ""

    async def offer(self) -> str:
        if self.audio:  # OBS sends its microphone too (Opus)
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        self.pc.addTransceiver(StillTrack(gradient()), direction="sendonly")
        prefer(self.pc, self.codec)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def publish(self, query: str = "") -> httpx.Response:
        sdp = await self.offer()
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{self.url}/api/whip{query}", content=sdp, headers=SDP)
        if response.status_code == 201:
            self.location = response.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        return response

    @property
    def session(self) -> str:
        return self.location.rsplit("/", 1)[-1]


class Viewer:
    """A WHEP client on aiortc: receive-only video (in ``codec``, when given)."""

    def __init__(self, url: str, codec: str | None = None, audio: bool = False) -> None:
        self.url, self.codec, self.audio = url, codec, audio
        self.pc = RTCPeerConnection()
        self.location = ""
        self.track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not self.track.done():
                self.track.set_result(track)

    async def watch(self, session: str, answer: bool = True) -> httpx.Response:
        """Offer to watch ``session``; ``answer=False`` leaves the answer unused (a viewer that never connects)."""
        if self.audio:  # as whip-whep's README example asks: audio and video
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        if self.codec:
            prefer(self.pc, self.codec)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.url}/api/whep/{session}", content=self.pc.localDescription.sdp, headers=SDP
            )
        if response.status_code == 201 and answer:
            self.location = response.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        return response


async def ends(track: MediaStreamTrack, seconds: float) -> bool:
    """Whether ``track`` ends (recv raises MediaStreamError) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(track.recv(), max(0.1, deadline - time.monotonic()))
        except MediaStreamError:
            return True
        except TimeoutError:
            return False
    return False


async def wait_for_match(track: MediaStreamTrack, expected: np.ndarray, frames: int) -> int:
    """Index of the first of ``frames`` received frames within TOLERANCE of ``expected``; each within 10 s."""
    for index in range(frames):
        frame = await asyncio.wait_for(track.recv(), 10)
        if distance(frame, expected) < TOLERANCE:
            return index
    raise AssertionError(f"no frame within {TOLERANCE} of the expected picture in {frames} frames")


def answered_codecs(sdp: str) -> set[str]:
    video = sdp[sdp.index("m=video") :]
    return {line.split(" ", 1)[1].split("/")[0] for line in video.splitlines() if line.startswith("a=rtpmap:")}


def section(sdp: str, kind: str) -> str:
    start = sdp.index(f"m={kind}")
    end = sdp.find("\nm=", start + 1)
    return sdp[start:] if end < 0 else sdp[start:end]
