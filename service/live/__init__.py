"""Live streams: WebRTC signalling and the peer registry (signalling.py), the stylizing video track (track.py)."""
