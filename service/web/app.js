// The livestyle page: camera -> painting (here or on the server) -> screen. This module holds the page's one
// state and wires the parts: api.js (requests, the token), look.js (the state as one control message),
// rtc.js (the server path), paint.js (where the painting happens), gallery.js, dream.js, styles.js.
import { ApiError, apiJson } from "./api.js";
import { renderDream, takeDreamInfo, wireDream } from "./dream.js";
import { followCatalog, refreshTiers, renderGallery, renderTiers, wireGallery } from "./gallery.js";
import { lookMessage } from "./look.js";
import { $, setStatus, toast } from "./page.js";
import { beginPainting, browserUsable, followBrowserModel, stopPainting } from "./paint.js";
import { send } from "./rtc.js";
import { removeStyle, renderAddStyle, wireAddStyle } from "./styles.js";

const CATALOG_MS = 10000;  // how often styles added or removed elsewhere are picked up

// Everything the page knows, timers and counters included; exposed as window.livestyle for debugging, the
// browser tests and the benchmarks. Percent where a control shows percent: look.js converts once.
const state = {
  catalog: null,          // GET /api/styles
  iceServers: [],         // GET /api/rtc-config
  model: null,            // the chosen model's name
  weights: {},            // model name -> {painting: 0..100}
  strength: 100,
  brush: 1,               // stroke scale
  preserveColor: false,
  stabilize: false,
  passthrough: false,
  dream: { mode: "off", styleLayer: null, layer: null, intensity: null, feedback: null, iterations: null },
  dreamInfo: null,        // GET /api/dream: whether live DeepDream runs here, its layers, defaults, ranges
  learning: null,         // GET /api/styles/learning: whether this server learns new styles
  // Where the painting happens: "auto" (measured), "browser" or "server" (?paint= or the switch)
  paint: { choice: "auto", mode: null, why: "", info: null, painter: null, serverFps: null, loadError: null },
  add: { file: null, job: null },  // the picture picked, the style job this page started
  pc: null,
  channel: null,
  stream: null,
  status: "idle",
  lastServerMessage: 0,   // when the server last spoke on the control channel (stats every second)
  serverStats: null,
  fpsShown: 0,
  latencyMs: null,
  replies: 0,
  errors: [],
  frames: { shown: 0, counting: false, decoded: null, painted: 0 },  // per-second counts behind fpsShown
  sendQueued: false,      // a look is waiting for the next animation frame
  timers: { toast: 0, stats: 0, job: 0, remove: 0, catalog: 0 },
};
window.livestyle = state;
state.loadPainter = () => browserUsable(state);  // the browser tests load the in-browser painter without a camera

// The look changed: the server path gets the whole look once per animation frame (controls fire far faster
// than frames arrive); the in-browser painter reads it on its next frame by itself.
function lookChanged() {
  if (state.sendQueued) return;
  state.sendQueued = true;
  requestAnimationFrame(() => {
    state.sendQueued = false;
    send(state, lookMessage(state));
  });
}

function selectModel(name) {
  state.model = name;
  refreshTiers(state);
  renderGallery(state);
  renderDream(state);
}

// ---------- the camera ----------

async function start() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    toast(state, "The camera needs a secure page: open this over https or http://localhost.");
    return;
  }
  $("start").disabled = true;
  setStatus(state, "connecting", "connecting…");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: false,
    });
    $("original").srcObject = state.stream;
    $("pip").hidden = false;
    await beginPainting(state, streamEnded);
    $("start").textContent = "Start camera";
    $("stop").disabled = false;
  } catch (err) {
    toast(state, err.message || String(err));
    setStatus(state, "error", "not connected");
    stop();
  }
}

function stop() {
  stopPainting(state);
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  $("stylized").srcObject = null;
  $("original").srcObject = null;
  $("pip").hidden = true;
  $("overlay").hidden = true;
  $("placeholder").hidden = false;
  $("start").disabled = false;
  $("stop").disabled = true;
  if (state.status !== "error") setStatus(state, "idle", "camera off");
}

// The stream is gone (its server worker stopped, the network dropped): say so, and offer to reconnect;
// a new offer lands on a live worker.
function streamEnded(why) {
  if (!state.pc) return;
  stop();
  setStatus(state, "error", "stream ended");
  $("start").textContent = "Reconnect";
  toast(state, `${why} Press Reconnect to stream again.`);
}

// Switching keeps the camera and the look (styles, blend, strength, colour): only the painting path changes.
async function switchPaint(choice) {
  state.paint.choice = choice;
  if (!state.stream) return;
  stopPainting(state);
  setStatus(state, "connecting", "switching…");
  try {
    await beginPainting(state, streamEnded);
  } catch (err) {
    toast(state, err.message || String(err));
    setStatus(state, "error", "not connected");
  }
}

// ---------- the controls ----------

function wireControls() {
  $("strength").addEventListener("input", (e) => {
    state.strength = Number(e.target.value);
    $("strength-value").textContent = `${state.strength}%`;
    lookChanged();
  });
  $("brush").addEventListener("input", (e) => {
    state.brush = Number(e.target.value);
    $("brush-value").textContent = `${Number(state.brush.toFixed(2))}x`;
    lookChanged();
  });
  for (const [id, key] of [["preserve-color", "preserveColor"], ["stabilize", "stabilize"], ["passthrough", "passthrough"]]) {
    $(id).addEventListener("change", (e) => {
      state[key] = e.target.checked;
      lookChanged();
    });
  }
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
  wireGallery(state, {
    select: (name) => { selectModel(name); lookChanged(); },
    changed: lookChanged,
    remove: (name) => removeStyle(state, name, refreshCatalog),
  });
  wireDream(state, lookChanged);
  wireAddStyle(state, refreshCatalog);
}

// ---------- the catalog ----------

async function loadCatalog() {
  const [styles, rtc, dream, learning] = await Promise.all([
    apiJson("/api/styles"),
    apiJson("/api/rtc-config"),
    apiJson("/api/dream"),
    apiJson("/api/styles/learning").catch(() => null),
  ]);
  state.learning = learning;
  renderAddStyle(state);
  takeRanges(styles.controls);
  state.iceServers = rtc.iceServers;
  takeDreamInfo(state, dream);
  followCatalog(state, styles);
  state.model = styles.default_model;
  renderTiers(state);
  selectModel(state.model);
  state.timers.catalog = setInterval(() => refreshCatalog().catch(() => null), CATALOG_MS);
}

// The sliders span what the server takes (strength in percent on the page, brush as a factor).
function takeRanges(controls) {
  if (!controls) return;
  $("strength").min = controls.strength.min * 100;
  $("strength").max = controls.strength.max * 100;
  $("brush").min = controls.brush.min;
  $("brush").max = controls.brush.max;
}

function styleNames(catalog) {
  return catalog.models.map((m) => `${m.name}:${m.styles.map((s) => s.name).join(",")}`).join(";");
}

// Styles added or removed (here or by anyone): the browser's model follows, new cards join at weight 0.
async function refreshCatalog() {
  await followBrowserModel(state);
  const styles = await apiJson("/api/styles");
  if (styleNames(styles) === styleNames(state.catalog)) return;
  followCatalog(state, styles);
  renderGallery(state);
}

wireControls();
loadCatalog().catch((err) => {
  const token = err instanceof ApiError && err.status === 401;
  toast(state, token ? err.message : `cannot load styles: ${err.message}`);
  setStatus(state, "error", token ? "token needed" : "server unreachable");
});
