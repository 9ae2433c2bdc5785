// WebRTC with this server: the offer every connection sends (the page's stream, the view's WHEP), counting the
// frames a video shows, and the page's server path (offer/answer, the "control" data channel, its stats).
import { api, refusal } from "./api.js";
import { lookMessage } from "./look.js";
import { $, toast } from "./page.js";

const SILENT_MS = 6000;  // the server sends stats every second: this long without a word, the stream is gone

// aiortc takes no trickled candidates: the offer goes out once ICE gathering is complete (or after 5 s).
export async function completeOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 5000);
    });
  }
  return pc.localDescription;
}

// Calls onFrame for every frame `video` shows while it returns true; false when this browser cannot say
// (no requestVideoFrameCallback).
export function eachFrame(video, onFrame) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return false;
  const tick = () => { if (onFrame()) video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  return true;
}

// The server refused the stream (4xx/5xx other than the token) or could not be reached: the page may paint
// in this browser instead.
export class ServerRefused extends Error {}

export function send(state, message) {
  if (state.channel && state.channel.readyState === "open") state.channel.send(JSON.stringify(message));
}

// Paints on the server: the camera goes out, the painting comes back into #stylized, the look goes over
// "control". Resolves once the answer is set; `ended(why)` when the stream is lost later.
export async function startServer(state, { live, ended }) {
  const pc = new RTCPeerConnection({ iceServers: state.iceServers });
  state.pc = pc;
  for (const track of state.stream.getVideoTracks()) pc.addTrack(track, state.stream);
  const channel = pc.createDataChannel("control");
  state.channel = channel;
  channel.onmessage = (event) => onControlMessage(state, JSON.parse(event.data));
  channel.onopen = () => send(state, lookMessage(state));
  pc.ontrack = (event) => {
    $("stylized").srcObject = new MediaStream([event.track]);
    $("placeholder").hidden = true;
    $("overlay").hidden = false;
    state.frames.counting = eachFrame($("stylized"), () => { state.frames.shown += 1; return state.pc === pc; });
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") live();
    if (pc.connectionState === "failed") ended("The connection to the server failed.");
    if (pc.connectionState === "disconnected") {
      setTimeout(() => {
        if (state.pc === pc && pc.connectionState === "disconnected") ended("The connection was lost.");
      }, 3000);
    }
  };

  const offer = await completeOffer(pc);
  const { model, weights } = lookMessage(state);
  let response;
  try {
    response = await api("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: offer.sdp, type: offer.type, model, weights }),
    });
  } catch (err) {
    if (err instanceof TypeError) err = new ServerRefused(err.message);  // unreachable
    closeServer(state);
    throw err;
  }
  if (!response.ok) {
    closeServer(state);
    throw new ServerRefused((await refusal(response)).message);
  }
  const answer = await response.json();
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  state.lastServerMessage = 0;
  state.timers.stats = setInterval(() => pollStats(state, ended), 1000);
  return answer.session;
}

export function closeServer(state) {
  if (state.pc) state.pc.close();
  state.pc = state.channel = null;
}

function onControlMessage(state, message) {
  state.lastServerMessage = performance.now();
  if (message.draining) {
    toast(state, "This server worker is shutting down: your stream goes on; if it ends, Reconnect takes you to another.");
  } else if (message.stats) {
    const s = message.stats;
    state.serverStats = s;
    if (s.fps_out > 0) state.paint.serverFps = s.fps_out;
    $("server-fps").textContent = `${s.fps_out.toFixed(0)}/${s.fps_in.toFixed(0)} fps`;
    const at = s.side ? ` @ ${s.side} px` : "";
    $("infer").textContent = `${s.infer_ms_p50.toFixed(0)} ms (p90 ${s.infer_ms_p90.toFixed(0)})${at}`;
    $("dropped").textContent = String(s.dropped);
  } else if (message.error) {
    state.errors.push(message.error);
    toast(state, message.error);
  } else {
    state.replies += 1;
  }
}

// Once a second: frames shown (counted per shown frame, else decoded frames from getStats), and a
// glass-to-glass estimate: network round trip + server inference + this browser's jitter buffer.
async function pollStats(state, ended) {
  if (!state.pc) return;
  if (state.lastServerMessage && performance.now() - state.lastServerMessage > SILENT_MS) {
    ended("The server stopped answering.");
    return;
  }
  const report = await state.pc.getStats();
  let rtt = null;
  let jitterMs = 0;
  let decoded = null;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
    if (s.type === "inbound-rtp" && s.kind === "video") {
      decoded = s.framesDecoded;
      if (s.jitterBufferEmittedCount) jitterMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
    }
  });
  const frames = state.frames;
  if (frames.counting) {
    state.fpsShown = frames.shown;
  } else if (decoded !== null && frames.decoded !== null) {
    state.fpsShown = decoded - frames.decoded;
  }
  frames.shown = 0;
  frames.decoded = decoded;
  $("fps-shown").textContent = `${state.fpsShown} fps`;
  const inferMs = state.serverStats ? state.serverStats.infer_ms_p50 : 0;
  if (rtt !== null) {
    state.latencyMs = Math.round(1000 * rtt + inferMs + jitterMs);
    $("latency").textContent = `≈${state.latencyMs} ms`;
  }
}
