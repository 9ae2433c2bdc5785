// The look: the page's state as ONE control message (service/look.py's vocabulary). The server path sends it
// over the data channel and in the offer, the in-browser painter reads it every frame, so both paint the same.
// The state keeps what the controls show (percent); the message carries what the server takes (fractions).

export const fraction = (percent) => percent / 100;
export const percent = (value) => Math.round(100 * value);

// The paintings' blend, and with "Dream style" on, the chosen dream style mixed in at the dream's intensity;
// null when no painting has weight (the server refuses a blend that sums to 0).
function blend(state) {
  const paint = state.weights[state.model];
  const total = Object.values(paint).reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const dream = state.dream.mode === "blend" ? state.dream.styleLayer : null;
  const share = dream ? fraction(state.dream.intensity) : 0;
  const out = {};
  for (const [name, value] of Object.entries(paint)) out[name] = ((1 - share) * value) / total;
  if (dream) out[dream] = share;
  return out;
}

function mode(state) {
  if (state.passthrough) return "passthrough";
  return state.dream.mode === "iterative" ? "dream" : "style";
}

// The whole look, every key each time: a message applied twice changes nothing, and a message the server
// dropped (sent too fast) is made good by the next.
export function lookMessage(state) {
  const weights = blend(state);
  return {
    model: state.model,
    ...(weights ? { weights } : {}),
    strength: fraction(state.strength),
    brush: state.brush,
    preserve_color: state.preserveColor,
    stabilize: state.stabilize,
    mode: mode(state),
    layer: state.dream.layer,
    intensity: fraction(state.dream.intensity),
    feedback: fraction(state.dream.feedback),
    iterations: state.dream.iterations,
  };
}
