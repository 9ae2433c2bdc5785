// The view: plays one session's painted stream by WHEP (POST /api/whep/{session}) and retries while it is away.
import { api, apiJson, refusal } from "./api.js";
import { completeOffer, eachFrame } from "./rtc.js";

const RETRY_MS = 2000;
const view = { state: "idle", session: null, location: null, frames: 0, error: null };
window.livestyleView = view;

const wanted = new URLSearchParams(location.search).get("session");  // none: follow the newest WHIP stream

function note(text) {
  const element = document.getElementById("note");
  element.textContent = text;
  element.hidden = !text;
}

async function pickSession() {
  if (wanted) return wanted;
  const sessions = await apiJson("/api/sessions");
  const whip = sessions.filter((s) => s.source === "whip").sort((a, b) => a.seconds - b.seconds);
  return whip.length ? whip[0].id : null;
}

// One viewing: resolves when the stream ends (its session ended, the connection failed), throws when refused.
async function watch(session, iceServers) {
  const pc = new RTCPeerConnection({ iceServers });
  pc.addTransceiver("video", { direction: "recvonly" });
  const ended = new Promise((resolve) => {
    pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState)) resolve();
    };
  });
  pc.ontrack = (event) => {
    document.getElementById("view").srcObject = new MediaStream([event.track]);
    event.track.onended = () => pc.close();
  };
  try {
    const offer = await completeOffer(pc);
    const response = await api(`/api/whep/${encodeURIComponent(session)}`, {
      method: "POST", headers: { "Content-Type": "application/sdp" }, body: offer.sdp,
    });
    if (response.status !== 201) throw await refusal(response);
    view.location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    view.state = "playing";
    view.session = session;
    note("");
    await ended;
  } finally {
    pc.close();
    view.state = "ended";
    view.location = null;
  }
}

async function main() {
  eachFrame(document.getElementById("view"), () => { view.frames += 1; return true; });
  const { iceServers } = await apiJson("/api/rtc-config");
  for (;;) {
    try {
      const session = await pickSession();
      if (session) {
        view.state = "connecting";
        await watch(session, iceServers);
        note("the stream ended; waiting for it…");
      } else {
        note("waiting for a stream (publish one by WHIP)…");
      }
    } catch (err) {
      view.error = err.message || String(err);
      note(view.error);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

// Leave politely: the server frees this viewer's slot at once instead of after its connection times out.
window.addEventListener("pagehide", () => {
  if (view.location) api(view.location, { method: "DELETE", keepalive: true }).catch(() => null);
});

main().catch((err) => note(err.message || String(err)));
