// Your own painting as a style: pick a picture, name it, the server learns it (POST /api/styles, then the job
// at /api/styles/jobs/{id}); an added style's × removes it. `refresh()` (app.js) reloads the catalog after.
import { apiJson, showPicture } from "./api.js";
import { $, prettyName, toast } from "./page.js";

const FOLLOW_MS = 1500;  // how often a running job is asked how far it got

// Whether this server learns styles (GET /api/styles/learning), said on the form.
export function renderAddStyle(state) {
  const form = $("add-style");
  const info = state.learning;
  const ok = info && info.available;
  form.classList.toggle("disabled", !ok);
  for (const el of form.querySelectorAll("input, button")) el.disabled = !ok;
  if (info && info.name_pattern) {  // the server's own rule, without the anchors the attribute implies
    $("add-name").pattern = info.name_pattern.replace(/^\^/, "").replace(/\$$/, "");
  }
  $("add-note").textContent = ok
    ? `Learned on this server for up to ${info.minutes} min per model; the stream keeps running.`
    : info ? `Not on this server: ${info.reason}` : "Not on this server.";
}

// A name the form's pattern takes, from the file's: "My Sketch.png" -> "my_sketch".
function nameFrom(file, input) {
  return file.name.replace(/\.[^.]*$/, "").toLowerCase().replace(/[^a-z0-9]+/g, "_")
    .replace(/^[^a-z]+/, "").slice(0, input.maxLength) || "my_style";
}

function pickFile(state, file) {
  if (!file) return;
  state.add.file = file;
  const img = $("add-picked");
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  $("add-drop-text").textContent = file.name;
  if (!$("add-name").value) $("add-name").value = nameFrom(file, $("add-name"));
}

async function submitStyle(state, refresh) {
  if (!state.add.file) { toast(state, "Pick a picture first."); return; }
  const body = new FormData();
  body.append("image", state.add.file);
  body.append("name", $("add-name").value.trim());
  try {
    state.add.job = await apiJson("/api/styles", { method: "POST", body });
  } catch (err) {
    toast(state, err.message);
    return;
  }
  $("add-progress").hidden = false;
  $("add-go").disabled = true;
  followJob(state, refresh);
}

async function followJob(state, refresh) {
  if (!state.add.job) return;
  try {
    state.add.job = await apiJson(`/api/styles/jobs/${state.add.job.id}`);
  } catch (err) {
    toast(state, err.message);
    return;
  }
  const j = state.add.job;
  const total = j.minutes ? 60 * j.minutes : null;
  const part = j.models.indexOf(j.model);
  const within = total && j.seconds_left !== null ? 1 - j.seconds_left / total : 0;
  $("add-bar").value = j.state === "done" ? 1 : Math.max(0, (Math.max(part, 0) + within) / j.models.length);
  const left = j.seconds_left !== null ? `, about ${Math.ceil(j.seconds_left / 60)} min left on ${j.model}` : "";
  $("add-state").textContent = j.state === "learning" ? `learning ${prettyName(j.name)}: step ${j.step}${left}`
    : j.state === "failed" ? `failed: ${j.error}` : `${j.state}`;
  const previews = Object.values(j.preview_urls);
  if (previews.length) {
    showPicture($("add-preview"), `${previews[previews.length - 1]}?t=${Date.now()}`);
    $("add-preview").hidden = false;
  }
  if (["done", "failed", "cancelled"].includes(j.state)) {
    $("add-go").disabled = false;
    $("add-cancel").hidden = true;
    if (j.state === "done") {
      await refresh();
      toast(state, `${prettyName(j.name)} is ready: slide it into the blend.`);
    }
    return;
  }
  $("add-cancel").hidden = false;
  state.timers.job = setTimeout(() => followJob(state, refresh), FOLLOW_MS);
}

export async function removeStyle(state, name, refresh) {
  try {
    const job = await apiJson(`/api/styles/${encodeURIComponent(name)}`, { method: "DELETE" });
    if (job.state !== "done") toast(state, `removing ${prettyName(name)}…`);
    state.timers.remove = setTimeout(refresh, job.state === "done" ? 0 : 3000);
  } catch (err) {
    toast(state, err.message);
  }
}

export function wireAddStyle(state, refresh) {
  const drop = $("add-drop");
  $("add-file").addEventListener("change", (e) => pickFile(state, e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pickFile(state, e.dataTransfer.files[0]);
  });
  $("add-style").addEventListener("submit", (e) => {
    e.preventDefault();
    submitStyle(state, refresh);
  });
  $("add-cancel").addEventListener("click", async () => {
    if (state.add.job) await apiJson(`/api/styles/jobs/${state.add.job.id}`, { method: "DELETE" }).catch(() => null);
  });
}
