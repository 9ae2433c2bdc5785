// Where the painting happens: in this browser (in-browser.js, the model and rules from GET /api/in-browser) or
// on the server (rtc.js), chosen when the camera starts and switched while it runs.
import { api, apiJson, token } from "./api.js";
import { renderDream } from "./dream.js";
import { refreshTiers } from "./gallery.js";
import { BrowserPainter } from "./in-browser.js";
import { lookMessage } from "./look.js";
import { $, setStatus } from "./page.js";
import { ServerRefused, closeServer, startServer } from "./rtc.js";

// Auto: in this browser when it paints at least as fast as the server path delivers (this tab's last server
// stream, else the frame rate the server's governor aims for); a server that cannot take the stream falls back.
export async function beginPainting(state, ended) {
  const mode = await choosePaintMode(state);
  if (mode === "browser") {
    startBrowser(state);
    return;
  }
  try {
    state.paint.mode = "server";
    $("painted").hidden = true;
    $("stylized").hidden = false;
    const session = await startServer(state, { live: () => setStatus(state, "live", "live · server"), ended });
    showShare(session);
    showPaintMode(state);
  } catch (err) {
    state.paint.mode = null;
    if (!(err instanceof ServerRefused) || state.paint.choice === "server" || !(await browserUsable(state))) throw err;
    state.paint.why = `the server could not take the stream (${err.message}); painting here instead`;
    startBrowser(state);
  }
}

// Ends the painting path (the server stream or this browser's loop); the camera stays.
export function stopPainting(state) {
  clearInterval(state.timers.stats);
  showShare(null);
  closeServer(state);
  if (state.paint.painter) state.paint.painter.stop();
  state.paint.mode = null;
  showPaintMode(state);
}

// GET /api/in-browser once: whether this server lets a browser paint, which model, and the rules.
async function paintInfo(state) {
  try {
    state.paint.info = state.paint.info || await apiJson("/api/in-browser");
  } catch (err) {
    state.paint.loadError = err.message || String(err);
  }
  return state.paint.info;
}

// The painter loaded and ready (the model downloaded into its worker), or false with the reason kept.
export async function browserUsable(state) {
  if (state.paint.painter) return true;
  const info = await paintInfo(state);
  if (!info || !info.available) return false;
  try {
    const painter = new BrowserPainter(async (url) => (await api(url)).arrayBuffer());
    await painter.load(info, $("painted"));
    state.paint.painter = painter;
    $("runtime-licence").href = info.runtime.licence_url;
    $("runtime-notices").href = info.runtime.notices_url;
    $("runtime-credit").hidden = false;
    return true;
  } catch (err) {
    state.paint.loadError = err.message || String(err);
    return false;
  }
}

// A style learned or removed on the server changes the model's sha256: the browser's copy is reloaded.
export async function followBrowserModel(state) {
  const painter = state.paint.painter;
  if (!painter) return;
  const info = await apiJson("/api/in-browser");
  if (info.available && info.model.sha256 !== painter.sha256) {
    await painter.swap(info);
    state.paint.info = info;
  }
}

async function choosePaintMode(state) {
  const choice = state.paint.choice;
  if (choice === "server") return paintWhy(state, "server", "you chose the server");
  const info = await paintInfo(state);
  if (info && info.model && info.model.name !== state.model) {
    const tier = state.catalog.models.find((m) => m.name === state.model).tier;
    return paintWhy(state, "server", `the ${tier} tier paints on the server only`);
  }
  if (!(await browserUsable(state))) {
    const reason = info && !info.available ? info.reason : `this browser cannot run the model (${state.paint.loadError})`;
    return paintWhy(state, "server", reason);
  }
  if (choice === "browser") return paintWhy(state, "browser", "you chose this browser");
  const painter = state.paint.painter;
  const video = $("original");
  await waitForVideo(video);
  const aspect = video.videoWidth / video.videoHeight || 4 / 3;
  const ms = await painter.measure(painter.governor.maxSide, aspect);
  const here = 1000 / ms;
  const server = state.paint.serverFps || painter.info.governor.target_fps;
  const whose = state.paint.serverFps ? "the server's stream gave" : "the server aims for";
  const plural = (n, word) => `${n} ${word}${n > 1 ? "s" : ""}`;
  const how = `${painter.backend.toUpperCase()}, ${plural(painter.painters.length, "painter")} of ${plural(painter.threads, "thread")}`;
  const measured = `${here.toFixed(0)} fps here at ${painter.governor.maxSide} px (${how}); ${whose} ${server.toFixed(0)}`;
  return paintWhy(state, here >= server ? "browser" : "server", measured);
}

function paintWhy(state, mode, why) {
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

// The painter reads the look from the same function the server path sends, once per frame.
function startBrowser(state) {
  const painter = state.paint.painter;
  state.paint.mode = "browser";
  $("stylized").hidden = true;
  $("painted").hidden = false;
  $("placeholder").hidden = true;
  $("overlay").hidden = false;
  painter.run($("original"), () => lookMessage(state));
  setStatus(state, "live", "live · this browser");
  showPaintMode(state);
  state.timers.stats = setInterval(() => browserStats(state), 1000);
}

function browserStats(state) {
  const painter = state.paint.painter;
  if (!painter || state.paint.mode !== "browser") return;
  const s = painter.stats();
  state.fpsShown = s.painted - state.frames.painted;
  state.frames.painted = s.painted;
  state.latencyMs = s.latencyMs === null ? null : Math.round(s.latencyMs);
  $("fps-shown").textContent = `${state.fpsShown} fps`;
  $("latency").textContent = state.latencyMs === null ? "–" : `≈${state.latencyMs} ms`;
  $("server-fps").textContent = "not used";
  $("infer").textContent = s.runMs === null ? "–" : `${s.runMs.toFixed(0)} ms @ ${s.side} px`;
  $("dropped").textContent = String(s.dropped);
}

// What only the server paints is said where its control is, with a way to switch.
export function showPaintMode(state) {
  const browser = state.paint.mode === "browser";
  $("paint-where").textContent = browser ? "this browser" : state.paint.mode === "server" ? "server" : "–";
  $("paint-why").textContent = state.paint.mode ? `Painting ${browser ? "in this browser" : "on the server"}: ${state.paint.why}.` : "";
  for (const id of ["brush", "stabilize"]) {
    $(id).disabled = browser;
    $(id).title = browser ? "server only: switch to the server to use it" : "";
  }
  renderDream(state);
  refreshTiers(state);
  $("server-only-note").hidden = !browser;
}

// The view of this stream (view.html, played by WHEP) for OBS or a second screen; none when painted here.
function showShare(session) {
  const query = new URLSearchParams(session ? { session, ...(token() ? { token: token() } : {}) } : {});
  $("share").href = session ? `view.html?${query}` : "";
  $("share").hidden = !session;
}
