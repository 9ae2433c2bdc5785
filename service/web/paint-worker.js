// The in-browser painter: the server's realtime ONNX model in onnxruntime-web, off the page's main thread.
// Each frame is painted exactly as the server's engine does it (service/engine.py stylize, service/contract.py):
// pixels / 255 -> reflect-pad bottom/right to the size multiple (at least two) -> the network -> crop ->
// keep colour (YUV: the painting's luma, the frame's chroma) -> strength mix -> round to 8 bits.
// Messages: init {runtimeBase, backend, threads, model, names} -> ready | error;
// frame {bitmap, weights, strength, keepColor} -> painted {bitmap, ms, runMs} (the painted picture, handed back
// to the page to show: several painters can work at once, and the page shows the newest picture);
// pixels {rgba, width, height, ...} -> pixels.

let ort = null;
let session = null;
let names = null;
let multiple = 8;
let canvas = null;  // the painted picture is drawn here, then handed to the page as an ImageBitmap
let shown = null;   // its 2D context, taken once
let scratch = null; // frames are read back here
let scratchContext = null;

async function init(message) {
  const module = message.backend === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
  ort = await import(message.runtimeBase + module);
  ort.env.wasm.wasmPaths = message.runtimeBase;
  ort.env.wasm.numThreads = message.threads;
  ort.env.logLevel = "error";
  names = message.names;
  multiple = message.multiple;
  canvas = new OffscreenCanvas(1, 1);
  shown = canvas.getContext("2d");
  await load(message.model, message.backend);
  return { type: "ready", backend: message.backend, threads: ort.env.wasm.numThreads,
           isolated: self.crossOriginIsolated === true };
}

async function load(model, backend) {
  const next = await ort.InferenceSession.create(new Uint8Array(model), {
    executionProviders: [backend],
  });
  if (session) await session.release();
  session = next;
}

// numpy's "reflect" (the edge pixel is not repeated); "edge" when the frame is smaller than its padding.
function source(i, n, reflect) {
  if (i < n) return i;
  return reflect ? 2 * (n - 1) - i : n - 1;
}

function padded(size) {
  return Math.max(Math.ceil(size / multiple), 2) * multiple;
}

const INV255 = 1 / 255;

// RGBA bytes -> [1,3,hp,wp] floats in [0,1], reflect-padded at the bottom and right. The frame's own rows are
// one straight pass; only the padding looks its source pixel up.
function toInput(rgba, width, height, hp, wp) {
  const plane = hp * wp;
  const input = new Float32Array(3 * plane);
  const reflect = hp - height < height && wp - width < width;
  for (let y = 0; y < hp; y++) {
    const row = source(y, height, reflect) * width;
    let o = y * wp;
    let at = 4 * row;
    for (let x = 0; x < width; x++, o++, at += 4) {
      input[o] = rgba[at] * INV255;
      input[plane + o] = rgba[at + 1] * INV255;
      input[2 * plane + o] = rgba[at + 2] * INV255;
    }
    for (let x = width; x < wp; x++, o++) {
      const from = 4 * (row + source(x, width, reflect));
      input[o] = rgba[from] * INV255;
      input[plane + o] = rgba[from + 1] * INV255;
      input[2 * plane + o] = rgba[from + 2] * INV255;
    }
  }
  return input;
}

// clip(v * 255 + 0.5, 0, 255) then floor: service/contract.py frame_to_image
function toByte(v) {
  const b = v * 255 + 0.5;
  return b <= 0 ? 0 : b >= 255 ? 255 : Math.floor(b);
}

function clip01(v) {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

// The network's [1,3,hp,wp] output cropped, with kept colours and the strength mix -> RGBA bytes.
function toPixels(out, rgba, width, height, wp, plane, strength, keepColor) {
  const pixels = new Uint8ClampedArray(4 * width * height);
  const mix = strength < 1;
  for (let y = 0; y < height; y++) {
    let o = y * wp;
    let at = 4 * y * width;
    for (let x = 0; x < width; x++, o++, at += 4) {
      let r = out[o], g = out[plane + o], b = out[2 * plane + o];
      if (keepColor || mix) {
        const cr = rgba[at] * INV255, cg = rgba[at + 1] * INV255, cb = rgba[at + 2] * INV255;
        if (keepColor) {  // the painting's luma, the frame's chroma (YUV)
          const ys = 0.299 * r + 0.587 * g + 0.114 * b;
          const yc = 0.299 * cr + 0.587 * cg + 0.114 * cb;
          const u = 0.492 * (cb - yc), v = 0.877 * (cr - yc);
          r = ys + v / 0.877;
          b = ys + u / 0.492;
          g = (ys - 0.299 * r - 0.114 * b) / 0.587;
          r = clip01(r); g = clip01(g); b = clip01(b);
        }
        if (mix) {
          r = r * strength + cr * (1 - strength);
          g = g * strength + cg * (1 - strength);
          b = b * strength + cb * (1 - strength);
        }
      }
      pixels[at] = toByte(r);
      pixels[at + 1] = toByte(g);
      pixels[at + 2] = toByte(b);
      pixels[at + 3] = 255;
    }
  }
  return pixels;
}

async function paint(rgba, width, height, weights, strength, keepColor) {
  const t0 = performance.now();
  const hp = padded(height), wp = padded(width);
  const feeds = {
    [names.frame]: new ort.Tensor("float32", toInput(rgba, width, height, hp, wp), [1, 3, hp, wp]),
    [names.weights]: new ort.Tensor("float32", Float32Array.from(weights), [1, weights.length]),
  };
  const started = performance.now();
  const result = await session.run(feeds);
  const runMs = performance.now() - started;
  const pixels = toPixels(result[names.output].data, rgba, width, height, wp, hp * wp, strength, keepColor);
  for (const tensor of Object.values(result)) if (tensor.dispose) tensor.dispose();
  return { pixels, runMs, parts: { pre: started - t0, run: runMs, post: performance.now() - started - runMs } };
}

function readBitmap(bitmap) {
  const { width, height } = bitmap;
  if (!scratch || scratch.width !== width || scratch.height !== height) {
    scratch = new OffscreenCanvas(width, height);
    scratchContext = scratch.getContext("2d", { willReadFrequently: true });
  }
  scratchContext.drawImage(bitmap, 0, 0);
  bitmap.close();
  return scratchContext.getImageData(0, 0, width, height).data;
}

async function onFrame(message) {
  const started = performance.now();
  const { width, height } = message.bitmap;
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  if (message.passthrough) {  // "Show unpainted": the camera as it is
    shown.drawImage(message.bitmap, 0, 0);
    message.bitmap.close();
    return { type: "painted", id: message.id, width, height, runMs: 0, ms: performance.now() - started,
             bitmap: canvas.transferToImageBitmap() };
  }
  const rgba = readBitmap(message.bitmap);
  const read = performance.now() - started;
  const { pixels, runMs, parts: painted } = await paint(rgba, width, height, message.weights, message.strength,
                                                       message.keepColor);
  const drawn = performance.now();
  shown.putImageData(new ImageData(pixels, width, height), 0, 0);
  const bitmap = canvas.transferToImageBitmap();
  const parts = { read, ...painted, draw: performance.now() - drawn };
  return { type: "painted", id: message.id, width, height, runMs, parts, ms: performance.now() - started, bitmap };
}

self.onmessage = async ({ data }) => {
  try {
    if (data.type === "init") {
      self.postMessage({ ...(await init(data)), id: data.id });
    } else if (data.type === "model") {
      await load(data.model, data.backend);
      self.postMessage({ type: "ready", id: data.id });
    } else if (data.type === "frame") {
      const reply = await onFrame(data);
      self.postMessage(reply, [reply.bitmap]);
    } else if (data.type === "pixels") {
      const { pixels, runMs } = await paint(new Uint8ClampedArray(data.rgba), data.width, data.height, data.weights,
                                            data.strength, data.keepColor);
      self.postMessage({ type: "pixels", id: data.id, rgba: pixels.buffer, runMs }, [pixels.buffer]);
    }
  } catch (err) {
    if (data.bitmap) data.bitmap.close();
    self.postMessage({ type: "error", id: data.id, message: String(err && err.message ? err.message : err) });
  }
};
