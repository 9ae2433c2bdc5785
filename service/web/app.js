// livestyle page: camera -> WebRTC -> stylized video back; sliders drive the blend over "control".
"use strict";

const $ = (id) => document.getElementById(id);

// Everything the page knows; exposed as window.livestyle for debugging and the browser tests.
const state = {
  lastServerMessage: 0,   // when the server last spoke on the control channel (stats every second)
  catalog: null,          // GET /api/styles
  iceServers: [],
  model: null,            // current model name
  weights: {},            // model name -> {style: 0..100}
  strength: 100,
  brush: 1,               // stroke scale, 0.5..4
  preserveColor: false,
  stabilize: false,
  passthrough: false,
  dream: { mode: "off", styleLayer: null, layer: null, intensity: 30, feedback: 60, iterations: 3 },
  dreamInfo: null,        // GET /api/dream: whether live DeepDream runs here, its layers
  learning: null,         // GET /api/styles/learning: whether this server learns new styles
  // Where the painting happens: "auto" (measured), "browser" or "server" (?paint= or the switch)
  paint: { choice: "auto", mode: null, why: "", info: null, painter: null, serverFps: null },
  addJob: null,           // the style job this page started (GET /api/styles/jobs/{id})
  pc: null,
  channel: null,
  stream: null,
  status: "idle",
  serverStats: null,
  fpsShown: 0,
  latencyMs: null,
  replies: 0,
  errors: [],
};
window.livestyle = state;
state.loadPainter = () => browserUsable();  // the browser tests load the in-browser painter without a camera

async function showThumbnail(img, url) {
  // <img src> cannot send the token: fetch the picture and show it from memory
  if (!sessionStorage.getItem(TOKEN_KEY)) { img.src = url; return; }
  const response = await api(url);
  if (response.ok) img.src = URL.createObjectURL(await response.blob());
}

function setStatus(status, text) {
  state.status = status;
  $("status").dataset.state = status;
  $("status").textContent = text;
}

let toastTimer = 0;
function toast(message) {
  const el = $("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

function prettyName(style) { return style.replace(/_/g, " "); }
function currentModel() { return state.catalog.models.find((m) => m.name === state.model); }
function paintings(model) { return model.styles.filter((s) => s.kind !== "dream"); }
function dreamStyles(model) { return model.styles.filter((s) => s.kind === "dream"); }
const LAYER_LOOKS = {
  relu3_1: "strokes", relu3_3: "swirls and edges", relu4_1: "textures", relu4_2: "patterns",
  relu4_4: "eyes and scales", relu5_1: "creature parts", relu5_2: "eyes and faces", relu5_4: "objects",
};
function layerLabel(layer) { return LAYER_LOOKS[layer] ? `${layer} · ${LAYER_LOOKS[layer]}` : layer; }

// ---------- catalog and controls ----------

async function loadCatalog() {
  const [styles, rtc, dream, learning] = await Promise.all([
    apiJson("/api/styles"),
    apiJson("/api/rtc-config"),
    apiJson("/api/dream"),
    apiJson("/api/styles/learning").catch(() => null),
  ]);
  state.catalog = styles;
  state.learning = learning;
  renderAddStyle();
  state.iceServers = rtc.iceServers;
  state.dreamInfo = dream;
  state.dream.layer = dream.defaults.layer;
  state.dream.iterations = dream.defaults.iterations;
  state.dream.feedback = Math.round(100 * dream.defaults.feedback);
  for (const m of styles.models) {
    state.weights[m.name] = Object.fromEntries(paintings(m).map((s, i) => [s.name, i === 0 ? 100 : 0]));
  }
  renderTiers();
  selectModel(styles.default_model, false);
}

function renderTiers() {
  const box = $("tiers");
  for (const m of state.catalog.models) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="model"><span>${m.tier}<small>${m.name}</small></span>`;
    const radio = label.querySelector("input");
    radio.value = m.name;
    radio.dataset.tier = m.tier;
    radio.addEventListener("change", () => selectModel(m.name, true));
    box.appendChild(label);
  }
}

function selectModel(name, send) {
  state.model = name;
  for (const radio of document.querySelectorAll('input[name="model"]')) radio.checked = radio.value === name;
  renderGallery();
  renderDream();
  if (send) sendControl({ model: name, weights: blendFor(name) });
}

function renderGallery() {
  const list = $("gallery");
  list.replaceChildren();
  for (const style of paintings(currentModel())) {
    const item = document.createElement("li");
    item.className = "card";
    item.dataset.style = style.name;
    item.innerHTML = `
      <button class="thumb" type="button" title="Use only this painting"><img alt="" loading="lazy"></button>
      <div class="name"><b></b><output></output></div>
      <input type="range" min="0" max="100">`;
    showThumbnail(item.querySelector("img"), style.thumbnail_url);
    if (style.kind === "added") {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.title = `Remove ${prettyName(style.name)} (added here)`;
      remove.addEventListener("click", () => removeStyle(style.name));
      item.appendChild(remove);
    }
    item.querySelector("img").alt = prettyName(style.name);
    item.querySelector("b").textContent = prettyName(style.name);
    const slider = item.querySelector("input");
    slider.value = state.weights[state.model][style.name];
    slider.dataset.style = style.name;
    slider.setAttribute("aria-label", `${prettyName(style.name)} weight`);
    slider.addEventListener("input", () => {
      state.weights[state.model][style.name] = Number(slider.value);
      weightsChanged();
    });
    item.querySelector("button").addEventListener("click", () => {
      for (const key of Object.keys(state.weights[state.model])) state.weights[state.model][key] = 0;
      state.weights[state.model][style.name] = 100;
      weightsChanged();
    });
    list.appendChild(item);
  }
  refreshCards();
}

function refreshCards() {
  const weights = state.weights[state.model];
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  for (const card of document.querySelectorAll(".card")) {
    const value = weights[card.dataset.style];
    card.querySelector("input").value = value;
    card.querySelector("output").textContent = total > 0 ? `${Math.round((100 * value) / total)}%` : "0%";
    card.classList.toggle("active", value > 0);
  }
  $("blend-hint").hidden = total > 0;
}

// The paintings' blend, and with "Dream style" on, the chosen dream style mixed in at the intensity.
function blendFor(model) {
  const out = {};
  const paint = state.weights[model];
  const total = Object.values(paint).reduce((a, b) => a + b, 0);
  const dream = state.dream.mode === "blend" ? state.dream.styleLayer : null;
  const share = dream ? state.dream.intensity / 100 : 0;
  for (const [k, v] of Object.entries(paint)) out[k] = total > 0 ? ((1 - share) * v) / total : 0;
  if (dream) out[dream] = share;
  return out;
}

function streamMode() {
  if (state.passthrough) return "passthrough";
  return state.dream.mode === "iterative" ? "dream" : "style";
}

function dreamMessage() {
  return {
    layer: state.dream.layer, intensity: state.dream.intensity / 100,
    feedback: state.dream.feedback / 100, iterations: state.dream.iterations,
  };
}

// ---------- dream ----------

function renderDream() {
  const model = currentModel();
  const dreams = dreamStyles(model);
  const info = state.dreamInfo;
  const radios = Object.fromEntries([...document.querySelectorAll('input[name="dream-mode"]')].map((r) => [r.value, r]));
  radios.blend.disabled = dreams.length === 0;
  radios.blend.parentElement.title = dreams.length ? "a dream style trained into this model: as fast as a painting"
    : `the ${model.name} model has no dream styles`;
  radios.iterative.disabled = !info.available;
  radios.iterative.parentElement.title = info.available ? "real DeepDream on every frame: GPU quality, CPU best effort"
    : info.reason;
  if ((state.dream.mode === "blend" && !dreams.length) || (state.dream.mode === "iterative" && !info.available)) {
    state.dream.mode = "off";
  }
  if (!dreams.some((d) => d.name === state.dream.styleLayer)) state.dream.styleLayer = dreams.length ? dreams[0].name : null;
  radios[state.dream.mode].checked = true;
  const select = $("dream-layer");
  select.replaceChildren();
  const options = state.dream.mode === "blend"
    ? dreams.map((d) => [d.name, layerLabel(d.layer) + (d.gain ? ` (×${d.gain.toFixed(1)})` : "")])
    : info.layers.map((l) => [l, layerLabel(l)]);
  for (const [value, text] of options) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    select.appendChild(option);
  }
  select.value = state.dream.mode === "blend" ? state.dream.styleLayer : state.dream.layer;
  $("dream-options").hidden = state.dream.mode === "off";
  $("dream-iterative-only").hidden = state.dream.mode !== "iterative";
  $("dream-intensity").value = state.dream.intensity;
  $("dream-intensity-value").textContent = `${state.dream.intensity}%`;
  $("dream-feedback").value = state.dream.feedback;
  $("dream-feedback-value").textContent = `${state.dream.feedback}%`;
  $("dream-iterations").value = state.dream.iterations;
  $("dream-iterations-value").textContent = String(state.dream.iterations);
  $("dream-note").textContent = state.dream.mode === "iterative"
    ? "Live DeepDream runs the optimisation on every frame: smooth on a GPU, a few frames a second on a CPU."
    : state.dream.mode === "blend" ? "The dream is one more style in the network, blended with your paintings." : "";
}

function dreamChanged() {
  renderDream();
  const message = { mode: streamMode(), weights: blendFor(state.model) };
  if (state.dream.mode === "iterative") Object.assign(message, dreamMessage());
  sendControl(message);
}

function wireDream() {
  for (const radio of document.querySelectorAll('input[name="dream-mode"]')) {
    radio.addEventListener("change", () => { state.dream.mode = radio.value; dreamChanged(); });
  }
  $("dream-layer").addEventListener("change", (e) => {
    if (state.dream.mode === "blend") state.dream.styleLayer = e.target.value;
    else state.dream.layer = e.target.value;
    dreamChanged();
  });
  for (const key of ["intensity", "feedback", "iterations"]) {
    $(`dream-${key}`).addEventListener("input", (e) => {
      state.dream[key] = Number(e.target.value);
      $(`dream-${key}-value`).textContent = key === "iterations" ? e.target.value : `${e.target.value}%`;
      if (state.dream.mode === "blend") weightsChanged();
      else if (state.dream.mode === "iterative") sendControl(dreamMessage());
    });
  }
}

// Slider input fires far faster than frames arrive; send the newest blend once per animation frame.
let blendPending = false;
function weightsChanged() {
  refreshCards();
  if (blendPending) return;
  blendPending = true;
  requestAnimationFrame(() => {
    blendPending = false;
    const weights = blendFor(state.model);
    if (Object.values(weights).some((w) => w > 0)) sendControl({ weights });
  });
}

function sendControl(message) {
  if (state.channel && state.channel.readyState === "open") state.channel.send(JSON.stringify(message));
}

function wireControls() {
  $("strength").addEventListener("input", (e) => {
    state.strength = Number(e.target.value);
    $("strength-value").textContent = `${state.strength}%`;
    sendControl({ strength: state.strength / 100 });
  });
  $("brush").addEventListener("input", (e) => {
    state.brush = Number(e.target.value);
    $("brush-value").textContent = `${Number(state.brush.toFixed(2))}x`;
    sendControl({ brush: state.brush });
  });
  $("preserve-color").addEventListener("change", (e) => {
    state.preserveColor = e.target.checked;
    sendControl({ preserve_color: state.preserveColor });
  });
  $("stabilize").addEventListener("change", (e) => {
    state.stabilize = e.target.checked;
    sendControl({ stabilize: state.stabilize });
  });
  $("passthrough").addEventListener("change", (e) => {
    state.passthrough = e.target.checked;
    sendControl({ mode: streamMode() });
  });
  const forced = new URLSearchParams(location.search).get("paint");
  if (["auto", "browser", "server"].includes(forced)) state.paint.choice = forced;
  for (const radio of document.querySelectorAll('input[name="paint-mode"]')) {
    radio.checked = radio.value === state.paint.choice;
    radio.addEventListener("change", () => switchPaint(radio.value));
  }
  $("to-server").addEventListener("click", () => {
    document.querySelector('input[name="paint-mode"][value="server"]').checked = true;
    switchPaint("server");
  });
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
}

// ---------- WebRTC ----------

async function start() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    toast("The camera needs a secure page: open this over https or http://localhost.");
    return;
  }
  $("start").disabled = true;
  setStatus("connecting", "connecting…");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: false,
    });
    $("original").srcObject = state.stream;
    $("pip").hidden = false;
    await beginPainting();
    $("start").textContent = "Start camera";
    $("stop").disabled = false;
  } catch (err) {
    toast(err.message || String(err));
    setStatus("error", "not connected");
    stop();
  }
}

// ---------- where the painting happens ----------

// Auto: in this browser when it paints at least as fast as the server path delivers (this tab's last server
// stream, else the frame rate the server's governor aims for); a server that cannot take the stream falls back.
async function beginPainting() {
  const mode = await choosePaintMode();
  if (mode === "browser") {
    await startBrowser();
    return;
  }
  try {
    await startServer();
  } catch (err) {
    const refused = err instanceof ServerRefused || err instanceof TypeError;  // 4xx/5xx or unreachable
    if (!refused || state.paint.choice === "server" || !(await browserUsable())) throw err;
    state.paint.why = `the server could not take the stream (${err.message}); painting here instead`;
    await startBrowser();
  }
}

async function browserUsable() {
  if (state.paint.painter) return true;
  try {
    const info = state.paint.info || await apiJson("/api/in-browser");
    state.paint.info = info;
    if (!info.available) return false;
    const painter = new BrowserPainter(async (url) => (await api(url)).arrayBuffer());
    await painter.load(info, $("painted"));
    state.paint.painter = painter;
    showRuntimeCredit(info);
    return true;
  } catch (err) {
    state.paint.loadError = err.message || String(err);
    return false;
  }
}

async function choosePaintMode() {
  const choice = state.paint.choice;
  if (choice === "server") return paintWhy("server", "you chose the server");
  if (currentModel().tier !== "realtime") return paintWhy("server", `the ${currentModel().tier} tier paints on the server only`);
  if (!(await browserUsable())) {
    const info = state.paint.info;
    const reason = info && !info.available ? info.reason : `this browser cannot run the model (${state.paint.loadError})`;
    return paintWhy("server", reason);
  }
  if (choice === "browser") return paintWhy("browser", "you chose this browser");
  const painter = state.paint.painter;
  const video = $("original");
  await waitForVideo(video);
  const aspect = video.videoWidth / video.videoHeight || 4 / 3;
  const ms = await painter.measure(painter.governor.maxSide, aspect);
  const here = 1000 / ms;
  const server = state.paint.serverFps || painter.info.governor.target_fps;
  const whose = state.paint.serverFps ? "the server's stream gave" : "the server aims for";
  const how = `${painter.backend.toUpperCase()}, ${painter.threads} thread${painter.threads > 1 ? "s" : ""}`;
  if (here >= server) {
    return paintWhy("browser", `${here.toFixed(0)} fps here at ${painter.governor.maxSide} px (${how}); ${whose} ${server.toFixed(0)}`);
  }
  return paintWhy("server", `${here.toFixed(0)} fps here at ${painter.governor.maxSide} px (${how}); ${whose} ${server.toFixed(0)}`);
}

function paintWhy(mode, why) {
  state.paint.why = why;
  return mode;
}

function waitForVideo(video) {
  if (video.videoWidth) return Promise.resolve();
  return new Promise((resolve) => {
    video.addEventListener("loadedmetadata", resolve, { once: true });
    setTimeout(resolve, 3000);
  });
}

function showRuntimeCredit(info) {
  $("runtime-licence").href = info.runtime.licence_url;
  $("runtime-notices").href = info.runtime.notices_url;
  $("runtime-credit").hidden = false;
}

async function startBrowser() {
  const painter = state.paint.painter;
  state.paint.mode = "browser";
  $("stylized").hidden = true;
  $("painted").hidden = false;
  $("placeholder").hidden = true;
  $("overlay").hidden = false;
  painter.run($("original"), () => ({
    weights: blendFor(painter.info.model.name), strength: state.strength / 100, keepColor: state.preserveColor,
    passthrough: state.passthrough,
  }));
  setStatus("live", "live · this browser");
  showPaintMode();
  statsTimer = setInterval(browserStats, 1000);
}

let lastPainted = 0;
function browserStats() {
  const painter = state.paint.painter;
  if (!painter || state.paint.mode !== "browser") return;
  const s = painter.stats();
  state.fpsShown = s.painted - lastPainted;
  lastPainted = s.painted;
  state.latencyMs = s.latencyMs === null ? null : Math.round(s.latencyMs);
  $("fps-shown").textContent = `${state.fpsShown} fps`;
  $("latency").textContent = state.latencyMs === null ? "–" : `≈${state.latencyMs} ms`;
  $("server-fps").textContent = "not used";
  $("infer").textContent = s.runMs === null ? "–" : `${s.runMs.toFixed(0)} ms @ ${s.side} px`;
  $("dropped").textContent = String(s.dropped);
}

function showPaintMode() {
  const browser = state.paint.mode === "browser";
  $("paint-where").textContent = browser ? "this browser" : state.paint.mode === "server" ? "server" : "–";
  $("paint-why").textContent = state.paint.mode ? `Painting ${browser ? "in this browser" : "on the server"}: ${state.paint.why}.` : "";
  // what only the server paints: said where the control is, with a way to switch
  for (const id of ["brush", "stabilize"]) {
    $(id).disabled = browser;
    $(id).title = browser ? "server only: switch to the server to use it" : "";
  }
  const iterative = document.querySelector('input[name="dream-mode"][value="iterative"]');
  if (browser) iterative.disabled = true; else renderDream();
  for (const radio of document.querySelectorAll('input[name="model"]')) {
    radio.disabled = browser && radio.dataset.tier !== "realtime";
  }
  $("server-only-note").hidden = !browser;
}

// Switching keeps the camera and the look (styles, blend, strength, colour): only the painting path changes.
async function switchPaint(choice) {
  state.paint.choice = choice;
  if (!state.stream) return;
  stopPainting();
  setStatus("connecting", "switching…");
  try {
    await beginPainting();
  } catch (err) {
    toast(err.message || String(err));
    setStatus("error", "not connected");
  }
}

class ServerRefused extends Error {}

async function startServer() {
  state.paint.mode = "server";
  $("painted").hidden = true;
  $("stylized").hidden = false;
  const pc = new RTCPeerConnection({ iceServers: state.iceServers });
  state.pc = pc;
  for (const track of state.stream.getVideoTracks()) pc.addTrack(track, state.stream);
  const channel = pc.createDataChannel("control");
  state.channel = channel;
  channel.onmessage = onControlMessage;
  channel.onopen = () => sendControl({
    strength: state.strength / 100,
    brush: state.brush,
    preserve_color: state.preserveColor,
    stabilize: state.stabilize,
    mode: streamMode(),
    ...(state.dream.mode === "iterative" ? dreamMessage() : {}),
  });
  pc.ontrack = (event) => {
    $("stylized").srcObject = new MediaStream([event.track]);
    $("placeholder").hidden = true;
    $("overlay").hidden = false;
    countShownFrames();
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") setStatus("live", "live · server");
    if (pc.connectionState === "failed") streamEnded("The connection to the server failed.");
    if (pc.connectionState === "disconnected") {
      setTimeout(() => {
        if (state.pc === pc && pc.connectionState === "disconnected") streamEnded("The connection was lost.");
      }, 3000);
    }
  };

  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  const response = await api("/api/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      sdp: pc.localDescription.sdp, type: pc.localDescription.type,
      model: state.model, weights: blendFor(state.model),
    }),
  });
  const answer = await response.json();
  if (!response.ok) {
    pc.close();
    state.pc = state.channel = null;
    throw new ServerRefused(answer.detail || `server said ${response.status}`);
  }
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  showShare(answer.session);
  state.lastServerMessage = 0;
  showPaintMode();
  statsTimer = setInterval(pollStats, 1000);
}

// The view of this stream (view.html, played by WHEP) for OBS or a second screen; none when painted here.
function showShare(session) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const query = new URLSearchParams(session ? { session, ...(token ? { token } : {}) } : {});
  $("share").href = session ? `view.html?${query}` : "";
  $("share").hidden = !session;
}

// Ends the painting path (server stream or this browser's loop); the camera stays.
function stopPainting() {
  clearInterval(statsTimer);
  showShare(null);
  if (state.pc) state.pc.close();
  state.pc = state.channel = null;
  if (state.paint.painter) state.paint.painter.stop();
  state.paint.mode = null;
  showPaintMode();
}

function stop() {
  stopPainting();
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  $("stylized").srcObject = null;
  $("original").srcObject = null;
  $("pip").hidden = true;
  $("overlay").hidden = true;
  $("placeholder").hidden = false;
  $("start").disabled = false;
  $("stop").disabled = true;
  if (state.status !== "error") setStatus("idle", "camera off");
}

// The stream is gone (its server worker stopped, the network dropped): say so, and offer to reconnect;
// a new offer lands on a live worker.
function streamEnded(why) {
  if (!state.pc) return;
  stop();
  setStatus("error", "stream ended");
  $("start").textContent = "Reconnect";
  toast(`${why} Press Reconnect to stream again.`);
}

function onControlMessage(event) {
  const message = JSON.parse(event.data);
  state.lastServerMessage = performance.now();
  if (message.draining) {
    toast("This server worker is shutting down: your stream goes on; if it ends, Reconnect takes you to another.");
  } else if (message.stats) {
    state.serverStats = message.stats;
    const s = message.stats;
    if (s.fps_out > 0) state.paint.serverFps = s.fps_out;
    $("server-fps").textContent = `${s.fps_out.toFixed(0)}/${s.fps_in.toFixed(0)} fps`;
    const at = s.side ? ` @ ${s.side} px` : "";
    $("infer").textContent = `${s.infer_ms_p50.toFixed(0)} ms (p90 ${s.infer_ms_p90.toFixed(0)})${at}`;
    $("dropped").textContent = String(s.dropped);
  } else if (message.error) {
    state.errors.push(message.error);
    toast(message.error);
  } else {
    state.replies += 1;
  }
}

// Frames actually painted on screen, counted per second.
let shown = 0;
function countShownFrames() {
  const video = $("stylized");
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;  // getStats fallback
  const tick = () => {
    shown += 1;
    if (state.pc) video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}

let statsTimer = 0;
let lastDecoded = null;
async function pollStats() {
  if (!state.pc) return;
  if (state.lastServerMessage && performance.now() - state.lastServerMessage > 6000) {
    streamEnded("The server stopped answering.");
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
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    state.fpsShown = shown;
  } else if (decoded !== null && lastDecoded !== null) {
    state.fpsShown = decoded - lastDecoded;
  }
  shown = 0;
  lastDecoded = decoded;
  $("fps-shown").textContent = `${state.fpsShown} fps`;
  // glass-to-glass estimate: network round trip + server inference + our jitter buffer
  const inferMs = state.serverStats ? state.serverStats.infer_ms_p50 : 0;
  if (rtt !== null) {
    state.latencyMs = Math.round(1000 * rtt + inferMs + jitterMs);
    $("latency").textContent = `≈${state.latencyMs} ms`;
  }
}

// ---------- your own painting: learned on the server, then a style like the others ----------

function styleNames(catalog) {
  return catalog.models.map((m) => `${m.name}:${m.styles.map((s) => s.name).join(",")}`).join(";");
}

// Styles added or removed (here or by anyone): new ones join at weight 0, the blend keeps its names.
async function refreshCatalog() {
  await followBrowserModel();
  const styles = await apiJson("/api/styles");
  if (state.catalog && styleNames(styles) === styleNames(state.catalog)) return;
  state.catalog = styles;
  for (const m of styles.models) {
    const old = state.weights[m.name] || {};
    const next = Object.fromEntries(paintings(m).map((s) => [s.name, old[s.name] || 0]));
    if (!Object.values(next).some((v) => v > 0)) next[paintings(m)[0].name] = 100;
    state.weights[m.name] = next;
  }
  renderGallery();
}

// A style learned or removed on the server changes the model's sha256: the browser's copy is reloaded.
async function followBrowserModel() {
  const painter = state.paint.painter;
  if (!painter) return;
  const info = await apiJson("/api/in-browser");
  if (info.available && info.model.sha256 !== painter.sha256) {
    await painter.swap(info);
    state.paint.info = info;
  }
}

function renderAddStyle() {
  const form = $("add-style");
  const info = state.learning;
  const ok = info && info.available;
  form.classList.toggle("disabled", !ok);
  for (const el of form.querySelectorAll("input, button")) el.disabled = !ok;
  $("add-note").textContent = ok
    ? `Learned on this server for up to ${info.minutes} min per model; the stream keeps running.`
    : info ? `Not on this server: ${info.reason}` : "Not on this server.";
}

function pickFile(file) {
  if (!file) return;
  state.addFile = file;
  const img = $("add-picked");
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  $("add-drop-text").textContent = file.name;
  if (!$("add-name").value) {
    $("add-name").value = file.name.replace(/\.[^.]*$/, "").toLowerCase().replace(/[^a-z0-9]+/g, "_")
      .replace(/^[^a-z]+/, "").slice(0, 40) || "my_style";
  }
}

async function submitStyle(event) {
  event.preventDefault();
  if (!state.addFile) { toast("Pick a picture first."); return; }
  const body = new FormData();
  body.append("image", state.addFile);
  body.append("name", $("add-name").value.trim());
  try {
    state.addJob = await apiJson("/api/styles", { method: "POST", body });
  } catch (err) {
    toast(err.message);
    return;
  }
  $("add-progress").hidden = false;
  $("add-go").disabled = true;
  followJob();
}

async function followJob() {
  const job = state.addJob;
  if (!job) return;
  try {
    state.addJob = await apiJson(`/api/styles/jobs/${job.id}`);
  } catch (err) {
    toast(err.message);
    return;
  }
  const j = state.addJob;
  const total = j.minutes ? 60 * j.minutes : null;
  const part = j.models.indexOf(j.model);
  const within = total && j.seconds_left !== null ? 1 - j.seconds_left / total : 0;
  $("add-bar").value = j.state === "done" ? 1 : Math.max(0, (Math.max(part, 0) + within) / j.models.length);
  const left = j.seconds_left !== null ? `, about ${Math.ceil(j.seconds_left / 60)} min left on ${j.model}` : "";
  $("add-state").textContent = j.state === "learning" ? `learning ${prettyName(j.name)}: step ${j.step}${left}`
    : j.state === "failed" ? `failed: ${j.error}` : `${j.state}`;
  const previews = Object.values(j.preview_urls);
  if (previews.length) {
    showThumbnail($("add-preview"), `${previews[previews.length - 1]}?t=${Date.now()}`);
    $("add-preview").hidden = false;
  }
  if (["done", "failed", "cancelled"].includes(j.state)) {
    $("add-go").disabled = false;
    $("add-cancel").hidden = true;
    if (j.state === "done") {
      await refreshCatalog();
      toast(`${prettyName(j.name)} is ready: slide it into the blend.`);
    }
    return;
  }
  $("add-cancel").hidden = false;
  setTimeout(followJob, 1500);
}

async function removeStyle(name) {
  try {
    const job = await apiJson(`/api/styles/${encodeURIComponent(name)}`, { method: "DELETE" });
    if (job.state !== "done") toast(`removing ${prettyName(name)}…`);
    setTimeout(refreshCatalog, job.state === "done" ? 0 : 3000);
  } catch (err) {
    toast(err.message);
  }
}

function wireAddStyle() {
  const drop = $("add-drop");
  $("add-file").addEventListener("change", (e) => pickFile(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pickFile(e.dataTransfer.files[0]);
  });
  $("add-style").addEventListener("submit", submitStyle);
  $("add-cancel").addEventListener("click", async () => {
    if (state.addJob) await apiJson(`/api/styles/jobs/${state.addJob.id}`, { method: "DELETE" }).catch(() => null);
  });
  setInterval(() => { if (state.catalog) refreshCatalog().catch(() => null); }, 10000);
}

wireControls();
wireDream();
wireAddStyle();
loadCatalog().catch((err) => {
  toast(err instanceof ApiError ? err.message : `cannot load styles: ${err.message}`);
  setStatus("error", err instanceof ApiError ? "token needed" : "server unreachable");
});
