// Talking to this server's API, for the page (app.js and its modules) and the view (view.js): the API token,
// requests, and the one way a refusal becomes an error.

// ---------- the API token (LIVESTYLE_API_TOKEN) ----------
// Opened once as /?token=..., the page keeps the token for this tab (sessionStorage) and drops it from the
// address bar, so it is neither bookmarked nor shared by copying the URL.
const TOKEN_KEY = "livestyle.token";
{
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }

// status: the HTTP status the server answered with; 401 means the token is missing or wrong.
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// Every request to /api goes through here, with the token. fetch starts before the first await, so a request
// made while the page is being left (keepalive) still goes out.
export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    throw new ApiError("this server needs its access token: open the page as /?token=YOUR_TOKEN", 401);
  }
  return response;
}

// A refused request as an error: the server's JSON `detail` says what was wrong.
export async function refusal(response) {
  const body = await response.json().catch(() => ({}));
  return new ApiError(body.detail || `server said ${response.status}`, response.status);
}

export async function apiJson(path, options = {}) {
  const response = await api(path, options);
  if (!response.ok) throw await refusal(response);
  return response.json();
}

// <img src> cannot send the token: with one, the picture is fetched and shown from memory.
export async function showPicture(img, url) {
  if (!token()) { img.src = url; return; }
  const response = await api(url);
  if (response.ok) img.src = URL.createObjectURL(await response.blob());
}
