// The dream controls: off, a dream style blended like a painting, or live DeepDream on the server. The
// layers, defaults and ranges come from GET /api/dream; the dream styles from the model's catalog entry.
import { percent } from "./look.js";
import { $ } from "./page.js";

// What each VGG19 layer tends to bring out, for the layer menu (the API names the layers only).
const LAYER_LOOKS = {
  relu3_1: "strokes", relu3_3: "swirls and edges", relu4_1: "textures", relu4_2: "patterns",
  relu4_4: "eyes and scales", relu5_1: "creature parts", relu5_2: "eyes and faces", relu5_4: "objects",
};
function layerLabel(layer) { return LAYER_LOOKS[layer] ? `${layer} · ${LAYER_LOOKS[layer]}` : layer; }

// Each slider: the unit it shows and the API's value -> the slider's number; `aboveLow`: the server refuses the
// range's low end (0 < intensity), so the slider starts one step above it.
const SLIDERS = {
  intensity: { unit: "%", scale: percent, aboveLow: true },
  feedback: { unit: "%", scale: percent },
  iterations: { unit: "", scale: (value) => value },
};

// The server's defaults and ranges onto the state and the sliders (GET /api/dream).
export function takeDreamInfo(state, info) {
  state.dreamInfo = info;
  state.dream.layer = info.defaults.layer;
  for (const [key, { scale, aboveLow }] of Object.entries(SLIDERS)) {
    const [low, high] = info.ranges[key].map(scale);
    $(`dream-${key}`).min = String(aboveLow ? low + 1 : low);
    $(`dream-${key}`).max = String(high);
    state.dream[key] = scale(info.defaults[key]);
  }
}

export function renderDream(state) {
  const model = state.catalog.models.find((m) => m.name === state.model);
  const dreams = model.styles.filter((s) => s.kind === "dream");
  const info = state.dreamInfo;
  const dream = state.dream;
  const radios = Object.fromEntries([...document.querySelectorAll('input[name="dream-mode"]')].map((r) => [r.value, r]));
  radios.blend.disabled = dreams.length === 0;
  radios.blend.parentElement.title = dreams.length ? "a dream style trained into this model: as fast as a painting"
    : `the ${model.name} model has no dream styles`;
  // live DeepDream runs on the server only: greyed out while painting in this browser
  radios.iterative.disabled = !info.available || state.paint.mode === "browser";
  radios.iterative.parentElement.title = info.available ? "real DeepDream on every frame: GPU quality, CPU best effort"
    : info.reason;
  if ((dream.mode === "blend" && !dreams.length) || (dream.mode === "iterative" && !info.available)) dream.mode = "off";
  if (!dreams.some((d) => d.name === dream.styleLayer)) dream.styleLayer = dreams.length ? dreams[0].name : null;
  radios[dream.mode].checked = true;
  const select = $("dream-layer");
  select.replaceChildren();
  const options = dream.mode === "blend"
    ? dreams.map((d) => [d.name, layerLabel(d.layer) + (d.gain ? ` (×${d.gain.toFixed(1)})` : "")])
    : info.layers.map((l) => [l, layerLabel(l)]);
  for (const [value, text] of options) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    select.appendChild(option);
  }
  select.value = dream.mode === "blend" ? dream.styleLayer : dream.layer;
  $("dream-options").hidden = dream.mode === "off";
  $("dream-iterative-only").hidden = dream.mode !== "iterative";
  for (const [key, { unit }] of Object.entries(SLIDERS)) {
    $(`dream-${key}`).value = dream[key];
    $(`dream-${key}-value`).textContent = `${dream[key]}${unit}`;
  }
  $("dream-note").textContent = dream.mode === "iterative"
    ? "Live DeepDream runs the optimisation on every frame: smooth on a GPU, a few frames a second on a CPU."
    : dream.mode === "blend" ? "The dream is one more style in the network, blended with your paintings." : "";
}

// `changed()`: the look changed (app.js sends it).
export function wireDream(state, changed) {
  for (const radio of document.querySelectorAll('input[name="dream-mode"]')) {
    radio.addEventListener("change", () => {
      state.dream.mode = radio.value;
      renderDream(state);
      changed();
    });
  }
  $("dream-layer").addEventListener("change", (e) => {
    if (state.dream.mode === "blend") state.dream.styleLayer = e.target.value;
    else state.dream.layer = e.target.value;
    renderDream(state);
    changed();
  });
  for (const [key, { unit }] of Object.entries(SLIDERS)) {
    $(`dream-${key}`).addEventListener("input", (e) => {
      state.dream[key] = Number(e.target.value);
      $(`dream-${key}-value`).textContent = `${state.dream[key]}${unit}`;
      changed();
    });
  }
}
