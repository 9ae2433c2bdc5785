"""What an SDP offer must be before any media work (size, sections, a video codec this server decodes), and the
answer every offer gets (video only)."""

from __future__ import annotations

from typing import Any, Literal

from aiortc import RTCPeerConnection
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcpeerconnection import find_common_codecs  # aiortc's own negotiation, so the verdict is the same

from service.errors import BadRequest, PayloadTooLarge, Unprocessable

Codec = Literal["VP8", "H264"]  # the video codecs aiortc encodes


def check_sdp(sdp: str, max_bytes: int, max_sections: int) -> None:
    """Size and media-section limits, before aiortc parses anything (a 2 MB offer of 1147 sections stalled the
    loop for 7 s): 413 past the size, 400 past the section count or without video."""
    size = len(sdp.encode())
    if size > max_bytes:
        raise PayloadTooLarge(f"the SDP offer is {size} bytes; the limit is {max_bytes}")
    sections = sdp.count("\nm=") + sdp.startswith("m=")
    if sections > max_sections:
        raise BadRequest(f"the SDP offer has {sections} media sections; at most {max_sections} are accepted")
    if "m=video" not in sdp:
        raise BadRequest("the offer must send a video track (no 'm=video' line in the SDP)")


def check_codecs(sdp: str) -> Codec:
    """Every video section of an offer names a codec aiortc decodes and encodes (VP8; H.264 constrained baseline or
    baseline, packetization-mode 1), judged by aiortc's own negotiation; 422 otherwise (RFC 9725: no partially
    successful answers), 400 when the SDP does not parse. Runs before any peer connection exists. Returns the codec
    aiortc will answer the first video section with: the offer's first one it supports (its negotiation keeps the
    offer's order)."""
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the text trips (ValueError, KeyError, IndexError)
        raise BadRequest(f"malformed SDP offer ({type(exc).__name__}: {exc})") from exc
    chosen: list[Codec] = []
    for media in description.media:
        if media.kind == "video" and not media.rtp.codecs:
            raise BadRequest("malformed SDP offer: a video section names no codec (no a=rtpmap line)")
        common = find_common_codecs(CODECS["video"], media.rtp.codecs) if media.kind == "video" else []
        if media.kind == "video" and not common:
            offered = sorted({_codec_name(c) for c in media.rtp.codecs if not is_rtx(c)})
            raise Unprocessable(
                f"no video codec of the offer can be decoded here (offered: {', '.join(offered)}); "
                "send VP8, or H.264 constrained baseline (profile-level-id 42e01f, "
                "packetization-mode=1)"
            )
        if common:
            chosen.append("VP8" if common[0].mimeType.split("/")[-1].upper() == "VP8" else "H264")
    if not chosen:
        raise BadRequest("the offer must send a video track (no video section in the SDP)")
    return chosen[0]


def with_bitrate_cap(sdp: str, bits_per_second: int) -> str:
    """An answer that asks the sender to stay under ``bits_per_second`` in each video section: ``b=TIAS`` (RFC 3890)
    and ``b=AS`` (kbit/s, RFC 4566), placed after the section's ``c=`` line, where SDP's order puts them."""
    lines, out, video = sdp.split("\r\n"), [], False
    for line in lines:
        if line.startswith("m="):
            video = line.startswith("m=video")
        if not (video and line.startswith("b=")):  # the cap replaces any bandwidth line the section had
            out.append(line)
        if video and line.startswith("c="):
            out += [f"b=AS:{max(1, bits_per_second // 1000)}", f"b=TIAS:{bits_per_second}"]
    return "\r\n".join(out)


def _codec_name(codec: Any) -> str:
    name = str(codec.mimeType).split("/")[-1]
    profile = codec.parameters.get("profile-level-id")
    return f"{name} {profile}" if profile else name


async def answer_video_only(pc: RTCPeerConnection) -> None:
    """Answer a remote offer with audio inactive: nothing here paints or relays sound, and an audio track nobody
    reads would queue decoded frames without bound."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.direction = "inactive"
    await pc.setLocalDescription(await pc.createAnswer())
