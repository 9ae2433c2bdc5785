// What every part of the page shares on screen: its elements by id, the status pill and the toast.

export const $ = (id) => document.getElementById(id);

export function setStatus(state, status, text) {
  state.status = status;
  $("status").dataset.state = status;
  $("status").textContent = text;
}

export function toast(state, message) {
  const el = $("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(state.timers.toast);
  state.timers.toast = setTimeout(() => { el.hidden = true; }, 4000);
}

// A style's name as people read it: my_sketch -> "my sketch".
export function prettyName(style) { return style.replace(/_/g, " "); }
