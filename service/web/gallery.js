// The catalog on screen (GET /api/styles): the model tiers, a card per painting with its thumbnail and blend
// slider. Dream styles are not cards: they come in through the dream controls (dream.js).
import { showPicture } from "./api.js";
import { $, prettyName } from "./page.js";

function paintings(model) { return model.styles.filter((s) => s.kind !== "dream"); }

// Each model's blend, in slider percent, following the catalog by style name: a new style joins at 0, and a
// blend left with no weight falls back to the first painting.
export function followCatalog(state, catalog) {
  state.catalog = catalog;
  for (const model of catalog.models) {
    const old = state.weights[model.name] || {};
    const next = Object.fromEntries(paintings(model).map((s) => [s.name, old[s.name] || 0]));
    if (!Object.values(next).some((v) => v > 0)) next[paintings(model)[0].name] = 100;
    state.weights[model.name] = next;
  }
}

export function renderTiers(state) {
  const box = $("tiers");
  for (const m of state.catalog.models) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="model"><span>${m.tier}<small>${m.name}</small></span>`;
    const radio = label.querySelector("input");
    radio.value = m.name;
    box.appendChild(label);
  }
  refreshTiers(state);
}

// The chosen model checked; while painting in this browser, only the model it runs can be chosen.
export function refreshTiers(state) {
  const browser = state.paint.mode === "browser";
  for (const radio of document.querySelectorAll('input[name="model"]')) {
    radio.checked = radio.value === state.model;
    radio.disabled = browser && radio.value !== state.paint.info.model.name;
  }
}

export function renderGallery(state) {
  const list = $("gallery");
  list.replaceChildren();
  const model = state.catalog.models.find((m) => m.name === state.model);
  for (const style of paintings(model)) {
    const item = document.createElement("li");
    item.className = "card";
    item.dataset.style = style.name;
    item.innerHTML = `
      <button class="thumb" type="button" title="Use only this painting"><img alt="" loading="lazy"></button>
      <div class="name"><b></b><output></output></div>
      <input type="range" min="0" max="100">`;
    showPicture(item.querySelector("img"), style.thumbnail_url);
    if (style.kind === "added") {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.title = `Remove ${prettyName(style.name)} (added here)`;
      item.appendChild(remove);
    }
    item.querySelector("img").alt = prettyName(style.name);
    item.querySelector("b").textContent = prettyName(style.name);
    const slider = item.querySelector("input");
    slider.dataset.style = style.name;
    slider.setAttribute("aria-label", `${prettyName(style.name)} weight`);
    list.appendChild(item);
  }
  refreshCards(state);
}

// Each card's slider, its share of the blend, and whether it is in it.
function refreshCards(state) {
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

// Wired once on the containers (cards come and go with the catalog): `select(model)` for a tier,
// `changed()` when the blend moved, `remove(style)` for an added style's ×.
export function wireGallery(state, { select, changed, remove }) {
  $("tiers").addEventListener("change", (e) => select(e.target.value));
  const list = $("gallery");
  list.addEventListener("input", (e) => {
    if (!e.target.dataset.style) return;
    state.weights[state.model][e.target.dataset.style] = Number(e.target.value);
    refreshCards(state);
    changed();
  });
  list.addEventListener("click", (e) => {
    const card = e.target.closest(".card");
    if (!card) return;
    if (e.target.closest("button.remove")) {
      remove(card.dataset.style);
    } else if (e.target.closest("button.thumb")) {
      const weights = state.weights[state.model];
      for (const key of Object.keys(weights)) weights[key] = 0;
      weights[card.dataset.style] = 100;
      refreshCards(state);
      changed();
    }
  });
}
