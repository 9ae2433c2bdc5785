"use strict";
// Talking to this server, shared by the page (app.js) and the view (view.js): the API token, requests, and
// waiting for ICE gathering (the server takes no trickled candidates).

// ---------- the API token (LIVESTYLE_API_TOKEN) ----------
// Opened once as /?token=..., the page keeps the token for this tab (sessionStorage) and drops it from the
// address bar, so it is neither bookmarked nor shared by copying the URL.
const TOKEN_KEY = "livestyle.token";
(() => {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
})();

class ApiError extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    throw new ApiError("this server needs its access token: open the page as /?token=YOUR_TOKEN");
  }
  return response;
}

async function apiJson(path, options = {}) {
  const response = await api(path, options);
  const body = await response.json();
  if (!response.ok) throw new ApiError(body.detail || `server said ${response.status}`);
  return body;
}

function waitForIceGathering(pc) {
  // aiortc does not trickle: send the offer with every candidate in it
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
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
