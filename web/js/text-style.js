// Text elements, drawn the same way by the overlay and by the panel's stage: font (the bundled
// families of /fonts/fonts.css or any CSS family), size, colour, alignment in both directions,
// outline (stroke), drop shadow, background, and auto-fit (the size shrinks until the text fits).

/** The bundled families, as offered by the panel (value: CSS font-family). */
export const FONTS = [
  { value: "", label: "System sans (default)" },
  { value: "Inter", label: "Inter" },
  { value: "Bebas Neue", label: "Bebas Neue (headline)" },
  { value: "Roboto Slab", label: "Roboto Slab" },
  { value: "serif", label: "System serif" },
  { value: "monospace", label: "Monospace" },
];

const finite = (value, fallback) => (typeof value === "number" && Number.isFinite(value) ? value : fallback);
const colour = (value) => (typeof value === "string" ? value : "");

/** A CSS font-family list for a `font` value: a family name is quoted, a list or generic is kept. */
export function fontFamily(font) {
  if (typeof font !== "string" || !font.trim()) return "";
  const value = font.trim();
  if (value.includes(",") || /^(serif|sans-serif|monospace|cursive|fantasy|system-ui)$/.test(value)) return value;
  return `"${value.replace(/["\\]/g, "")}", system-ui, sans-serif`;
}

/** Builds the node of a text element: the box (`.ov-text`) with one line box inside it. */
export function createTextNode(doc = document) {
  const node = doc.createElement("div");
  node.className = "ov-text";
  const inner = doc.createElement("span");
  inner.className = "ov-text-inner";
  node.appendChild(inner);
  return node;
}

/**
 * Applies a text element's fields to its node.
 * @param {{node: HTMLElement, styles: object, text: string|null, fitKey?: string}} rec
 * @param {object} el  the element
 * @param {(rec: object, property: string, value: string) => void} setStyle  sets a style when it changed
 */
export function updateText(rec, el, setStyle) {
  const inner = rec.node.firstElementChild;
  const text = typeof el.text === "string" ? el.text : "";
  if (rec.text !== text) {
    rec.text = text;
    inner.textContent = text;
  }
  const size = finite(el.size, 48);
  setStyle(rec, "fontFamily", fontFamily(el.font));
  setStyle(rec, "color", colour(el.color));
  setStyle(rec, "textAlign", ["left", "center", "right"].includes(el.align) ? el.align : "left");
  // Scenes from before `valign` keep their text at the top.
  setStyle(rec, "justifyContent", { middle: "center", bottom: "flex-end" }[el.valign] || "flex-start");
  setStyle(rec, "background", colour(el.background));
  const strokeWidth = finite(el.stroke_width, 0);
  // The stroke is painted under the fill (paint-order), so the outline shows outside the glyphs only:
  // twice the width is drawn for the width asked.
  setStyle(rec, "webkitTextStroke", el.stroke && strokeWidth > 0 ? `${strokeWidth * 2}px ${el.stroke}` : "");
  setStyle(rec, "paintOrder", el.stroke && strokeWidth > 0 ? "stroke fill" : "");
  // Room for the outline inside the box, so auto-fit never clips the first and last glyph's stroke.
  setStyle(rec, "padding", el.stroke && strokeWidth > 0 ? `${strokeWidth}px` : "");
  setStyle(rec, "textShadow", el.shadow
    ? `${finite(el.shadow_x, 3)}px ${finite(el.shadow_y, 3)}px ${finite(el.shadow_blur, 6)}px ${el.shadow}` : "");
  const width = finite(el.width, 320);
  const height = finite(el.height, 180);
  const key = [text, size, el.font || "", width, height, el.autofit === true, strokeWidth].join("|");
  if (rec.fitKey === key && rec.node.isConnected) return;
  rec.fitKey = key;
  setStyle(rec, "fontSize", `${size}px`);
  if (el.autofit === true) {
    autofitted.set(rec, { size, setStyle });
    fitText(rec, size, setStyle);
  } else {
    autofitted.delete(rec);
    rec.fitted = size;
  }
}

/** Auto-fitted texts, measured again when fonts finish loading or a node was not laid out yet. */
const autofitted = new Map();
let refitQueued = false;

function refitAll() {
  refitQueued = false;
  for (const [rec, { size, setStyle }] of autofitted) {
    if (!rec.node.isConnected) {
      autofitted.delete(rec);
      continue;
    }
    fitText(rec, size, setStyle);
  }
}

function queueRefit() {
  if (refitQueued) return;
  refitQueued = true;
  setTimeout(refitAll, 50);
}

if (typeof document !== "undefined" && document.fonts) {
  document.fonts.addEventListener("loadingdone", queueRefit);
  document.fonts.ready.then(queueRefit).catch(() => {});
}

/**
 * Shrinks the font size (never above `size`) until the text fits its box, by bisection on the
 * rendered size. Runs again when the bundled fonts finish loading (their metrics differ).
 */
export function fitText(rec, size, setStyle) {
  const node = rec.node;
  if (!node.isConnected || !node.clientWidth || !node.clientHeight) {
    queueRefit(); // measured once the node is laid out
    return;
  }
  const fits = () => node.scrollHeight <= node.clientHeight + 1 && node.scrollWidth <= node.clientWidth + 1;
  setStyle(rec, "fontSize", `${size}px`);
  if (fits()) {
    rec.fitted = size;
    return;
  }
  let low = 4;
  let high = size;
  for (let i = 0; i < 9 && high - low > 0.5; i += 1) {
    const mid = (low + high) / 2;
    setStyle(rec, "fontSize", `${mid}px`);
    if (fits()) low = mid;
    else high = mid;
  }
  rec.fitted = Math.floor(low * 2) / 2;
  setStyle(rec, "fontSize", `${rec.fitted}px`);
}
