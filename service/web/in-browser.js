// Painting in this browser: the server's realtime model run by onnxruntime-web in a worker (paint-worker.js).
// The server's rules come from GET /api/in-browser (easing frames, the resolution governor); the blend is built
// as service/blend.py builds it: weights in the model's style order, normalized to sum 1, eased linearly over
// frames, following style names when the model's styles change.

// service/live/track.py ResolutionGovernor: the longer side to paint at, so painting fits the frame budget.
class Governor {
  constructor(rules) {
    Object.assign(this, { enabled: rules.enabled, maxSide: rules.max_side, minSide: Math.min(rules.min_side, rules.max_side),
                          targetFps: rules.target_fps, settle: rules.settle, step: rules.step });
    this.side = this.maxSide;
    this.emaMs = 0;
    this.sinceChange = 0;
  }

  get budgetMs() { return 1000 / this.targetFps; }

  observe(ms) {
    if (!this.enabled) return this.side;
    this.emaMs = this.emaMs === 0 ? ms : 0.8 * this.emaMs + 0.2 * ms;
    this.sinceChange += 1;
    if (this.sinceChange < this.settle) return this.side;
    if (this.emaMs > this.budgetMs && this.side > this.minSide) {
      const scaled = this.side * Math.sqrt(this.budgetMs / this.emaMs);
      this.change(Math.max(this.minSide, Math.floor(Math.floor(scaled) / this.step) * this.step));
    } else if (this.emaMs < 0.6 * this.budgetMs && this.side < this.maxSide) {
      this.change(Math.min(this.maxSide, this.side + this.step));
    }
    return this.side;
  }

  change(side) {
    if (side !== this.side) { this.side = side; this.sinceChange = 0; this.emaMs = 0; }
  }
}

// service/contract.py fit_within: the largest size of the same aspect whose longer side is at most maxSide.
function fitWithin(height, width, maxSide) {
  const longest = Math.max(height, width);
  if (longest <= maxSide) return [height, width];
  const scale = maxSide / longest;
  return [Math.max(1, Math.floor(height * scale + 0.5)), Math.max(1, Math.floor(width * scale + 0.5))];
}

// service/blend.py weights_vector: {style: weight} -> Float32Array in the model's order, summing to 1.
function weightsVector(styles, weights) {
  const vector = styles.map((s) => Math.max(0, Number(weights[s]) || 0));
  const total = vector.reduce((a, b) => a + b, 0);
  return Float32Array.from(total > 0 ? vector.map((v) => v / total) : styles.map((_, i) => (i === 0 ? 1 : 0)));
}

// service/blend.py remap_weights: the same blend over another list of styles, by name.
function remapWeights(vector, oldStyles, newStyles) {
  const out = newStyles.map((name) => (oldStyles.includes(name) ? vector[oldStyles.indexOf(name)] : 0));
  const total = out.reduce((a, b) => a + b, 0);
  return Float32Array.from(total > 0 ? out.map((v) => v / total) : newStyles.map((_, i) => (i === 0 ? 1 : 0)));
}

// service/blend.py Easing: from where the weights are to a new target, linearly over `frames` frames.
class Easing {
  constructor(initial, frames) {
    this.frames = Math.max(0, frames);
    this.start = this.target = this.current = initial;
    this.at = this.frames;
  }

  setTarget(target) {
    if (target.length !== this.current.length) { this.start = this.target = this.current = target; this.at = this.frames; return; }
    this.start = this.current; this.target = target; this.at = 0;
  }

  follow(oldStyles, newStyles) {
    [this.start, this.target, this.current] = [this.start, this.target, this.current].map((v) => remapWeights(v, oldStyles, newStyles));
  }

  step() {
    if (this.at < this.frames) {
      this.at += 1;
      const t = this.at / this.frames;
      this.current = this.start.map((s, i) => Math.fround((1 - t) * s + t * this.target[i]));
    } else {
      this.current = this.target;
    }
    return this.current;
  }
}

// WebGPU only on a real adapter (a software fallback runs on the CPU, slower than WASM); ?backend= forces one.
async function chooseBackend(info) {
  const forced = new URLSearchParams(location.search).get("backend");
  if (forced === "wasm" || forced === "webgpu") return forced;
  if (!info.runtime.webgpu || !navigator.gpu) return "wasm";
  try {
    const adapter = await navigator.gpu.requestAdapter();
    const fallback = adapter && (adapter.isFallbackAdapter || (adapter.info && adapter.info.isFallbackAdapter));
    return adapter && !fallback ? "webgpu" : "wasm";
  } catch (err) {
    return "wasm";
  }
}

// How many painters (workers, each with its own session) paint at once, and threads for each. Two one-thread
// painters on two cores show more frames than one two-thread painter (a thread pool's barrier waits on the core
// the camera and the page are using), but each frame takes longer to paint: more latency. With the resolution
// governor on, one painter: the governor keeps the frame rate by painting smaller, and latency stays lowest.
// At a fixed size, frames can only come from a second painter. WebGPU has one device queue: one painter.
// ?painters= forces a count.
function choosePainters(backend, governor) {
  const cores = navigator.hardwareConcurrency || 1;
  const forced = Number(new URLSearchParams(location.search).get("painters"));
  const chosen = !governor.enabled && cores >= 2 ? 2 : 1;
  const painters = backend === "webgpu" ? 1 : forced >= 1 ? Math.min(4, Math.floor(forced)) : chosen;
  return { painters, threads: Math.max(1, Math.min(4, Math.floor(cores / painters))) };
}

// One worker (paint-worker.js) with its own session; at most one frame in flight on it.
class Painter {
  constructor() {
    this.worker = new Worker("paint-worker.js", { type: "module" });
    this.worker.onmessage = ({ data }) => this.onMessage(data);
    this.worker.onerror = (event) => this.fail(event.message || "the painting worker failed");
    this.pending = new Map();  // id -> resolve, for replies
    this.nextId = 1;
    this.busy = false;
  }

  request(message, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  onMessage(data) {
    const waiting = this.pending.get(data.id);
    if (!waiting) return;
    this.pending.delete(data.id);
    if (data.type === "error") waiting.reject(new Error(data.message));
    else waiting.resolve(data);
  }

  fail(message) {
    for (const [id, w] of this.pending) { this.pending.delete(id); w.reject(new Error(message)); }
  }
}

export class BrowserPainter {
  constructor(fetchModel) {
    this.fetchModel = fetchModel;  // (url) -> ArrayBuffer, with the page's token
    this.painters = [];
    this.canvas = null;
    this.shown = null;  // the canvas's bitmaprenderer: a painted picture is shown without a copy
    this.info = null;
    this.backend = null;
    this.threads = 0;
    this.running = false;
    this.sequence = 0;  // camera frames sent to a painter, in order
    this.shownSequence = 0;  // the newest one on screen: a picture older than it is dropped, never shown
    this.counts = { painted: 0, dropped: 0, late: 0 };
    this.runMs = [];
    this.latencyMs = [];
  }

  get sha256() { return this.info ? this.info.model.sha256 : null; }

  // Load the runtime and the model into each painter; resolves when every session is ready.
  async load(info, canvas) {
    this.info = info;
    this.backend = await chooseBackend(info);
    const { painters, threads } = choosePainters(this.backend, info.governor);
    this.painters = Array.from({ length: painters }, () => new Painter());
    this.canvas = canvas;
    this.shown = canvas.getContext("bitmaprenderer");
    const ready = await this.toEach(await this.fetchModel(info.model.url), {
      type: "init", runtimeBase: new URL(info.runtime.base_url, location.href).href, backend: this.backend,
      threads, multiple: info.model.size_multiple,
      names: { frame: info.model.frame_input, weights: info.model.weights_input, output: info.model.output },
    });
    this.threads = ready[0].threads;
    this.isolated = ready.every((r) => r.isolated);
    this.easing = new Easing(weightsVector(info.model.styles, {}), info.ease_frames);
    this.governor = new Governor(info.governor);
  }

  // A new model on the server (a style learned or removed): the blend follows the names.
  async swap(info) {
    await this.toEach(await this.fetchModel(info.model.url), { type: "model", backend: this.backend });
    this.easing.follow(this.info.model.styles, info.model.styles);
    this.info = info;
  }

  // `message` with the model to every painter (each its own copy: a transferred buffer is gone from the page).
  toEach(model, message) {
    return Promise.all(this.painters.map((painter, i) => {
      const own = i === this.painters.length - 1 ? model : model.slice(0);
      return painter.request({ ...message, model: own }, [own]);
    }));
  }

  // One frame's pixels painted (no drawing): for measuring and the parity tests.
  async paintPixels(rgba, width, height, weights, strength = 1, keepColor = false, painter = this.painters[0]) {
    const copy = new Uint8ClampedArray(rgba).buffer;
    const reply = await painter.request({ type: "pixels", rgba: copy, width, height, strength, keepColor,
                                          weights: weightsVector(this.info.model.styles, weights) }, [copy]);
    return { rgba: new Uint8ClampedArray(reply.rgba), runMs: reply.runMs };
  }

  // Milliseconds between painted frames for a grey frame of the camera's aspect with its longer side at `side`:
  // every painter paints `runs` frames at once after two untimed runs each (a session's first run allocates and
  // compiles), and the time is divided by the frames painted.
  async measure(side, aspect, runs = 4) {
    const [height, width] = fitWithin(Math.round(side / aspect), side, side);
    const grey = new Uint8ClampedArray(4 * width * height).fill(128);
    const weights = { [this.info.model.styles[0]]: 1 };
    const paintOn = async (painter, count) => {
      for (let i = 0; i < count; i++) await this.paintPixels(grey, width, height, weights, 1, false, painter);
    };
    await Promise.all(this.painters.map((painter) => paintOn(painter, 2)));
    const started = performance.now();
    await Promise.all(this.painters.map((painter) => paintOn(painter, runs)));
    return (performance.now() - started) / (runs * this.painters.length);
  }

  // Paint `video`'s frames while running: newest frame wins. Each painter has at most one frame in flight; camera
  // frames that arrive while every painter is busy are dropped and counted, and the newest of them is painted as
  // soon as a painter is free (not at the next camera frame: that wait would idle the painter for up to a frame
  // interval).
  run(video, look) {
    this.running = true;
    this.look = look;
    this.waiting = null;  // when the newest dropped frame arrived
    // Each new camera frame: requestVideoFrameCallback, or (a browser without it) an animation frame whose video
    // time has moved on.
    const hasCallback = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
    let shownTime = -1;
    const next = (f) => (hasCallback ? video.requestVideoFrameCallback(f) : requestAnimationFrame(f));
    const onFrame = (now) => {
      if (!this.running) return;
      next(onFrame);
      if (!hasCallback) {
        if (video.currentTime === shownTime) return;
        shownTime = video.currentTime;
      }
      if (!video.videoWidth) return;
      const free = this.painters.find((painter) => !painter.busy);
      if (!free) {
        if (this.waiting !== null) this.counts.dropped += 1;  // overtaken by this newer one
        this.waiting = now;
        return;
      }
      this.paintFrame(free, video, look(), now);
    };
    next(onFrame);
  }

  // `look`: a control message (look.js lookMessage): weights (absent: the first style), strength,
  // preserve_color, mode; the server-only keys (brush, stabilize, dream) are not painted here.
  async paintFrame(painter, video, look, capturedAt) {
    painter.busy = true;
    const sequence = ++this.sequence;
    try {
      const [height, width] = fitWithin(video.videoHeight, video.videoWidth, this.governor.side);
      const bitmap = await createImageBitmap(video, { resizeWidth: width, resizeHeight: height, resizeQuality: "medium" });
      const target = weightsVector(this.info.model.styles, look.weights || {});
      if (target.some((v, i) => v !== this.easing.target[i])) this.easing.setTarget(target);
      const reply = await painter.request({ type: "frame", bitmap, weights: this.easing.step(), strength: look.strength,
                                            keepColor: look.preserve_color, passthrough: look.mode === "passthrough" },
                                          [bitmap]);
      this.show(reply, sequence, capturedAt);
    } catch (err) {
      this.lastError = err.message;
    } finally {
      painter.busy = false;
      if (this.running && this.waiting !== null) {
        const arrived = this.waiting;
        this.waiting = null;
        this.paintFrame(painter, video, this.look(), arrived);
      }
    }
  }

  // A painted picture on screen, unless a newer one is already there. The governor sees the time between
  // pictures: a frame's time shared by the painters working at once.
  show(reply, sequence, capturedAt) {
    if (sequence < this.shownSequence) {
      reply.bitmap.close();
      this.counts.late += 1;
      return;
    }
    this.shownSequence = sequence;
    if (this.canvas.width !== reply.width || this.canvas.height !== reply.height) {
      this.canvas.width = reply.width;
      this.canvas.height = reply.height;
    }
    this.shown.transferFromImageBitmap(reply.bitmap);
    this.counts.painted += 1;
    this.governor.observe(reply.ms / this.painters.length);
    this.runMs.push(reply.runMs);
    this.parts = reply.parts;  // the last frame's read, pre, run, post and draw milliseconds
    this.latencyMs.push(performance.now() - capturedAt);
    if (this.runMs.length > 60) { this.runMs.shift(); this.latencyMs.shift(); }
  }

  stop() { this.running = false; }

  stats() {
    const median = (values) => (values.length ? [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] : null);
    return { side: this.governor ? this.governor.side : null, runMs: median(this.runMs), latencyMs: median(this.latencyMs),
             painted: this.counts.painted, dropped: this.counts.dropped, late: this.counts.late, backend: this.backend,
             painters: this.painters.length, threads: this.threads, parts: this.parts || null };
  }
}
