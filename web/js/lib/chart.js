// A tiny sparkline on a <canvas>: the last values of one metric, its current value and a faint range.

/**
 * Draws `values` (numbers, nulls for gaps) into `canvas`.
 * @param {HTMLCanvasElement} canvas
 * @param {(number|null)[]} values
 * @param {object} [options]  color, min (floor of the scale, default 0), max (ceiling, default auto)
 */
export function drawSparkline(canvas, values, { color = "#f0a23b", min = 0, max = null } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || Number(canvas.getAttribute("width")) || 120;
  const cssH = canvas.clientHeight || Number(canvas.getAttribute("height")) || 32;
  if (canvas.width !== Math.round(cssW * ratio) || canvas.height !== Math.round(cssH * ratio)) {
    canvas.width = Math.round(cssW * ratio);
    canvas.height = Math.round(cssH * ratio);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  ctx.strokeStyle = "rgba(255,255,255,0.08)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, cssH - 0.5);
  ctx.lineTo(cssW, cssH - 0.5);
  ctx.stroke();
  if (finite.length < 1) return;
  const top = max ?? Math.max(...finite, min + 1e-9) * 1.15;
  const bottom = Math.min(min, ...finite);
  const span = top - bottom || 1;
  const step = values.length > 1 ? cssW / (values.length - 1) : cssW;
  const y = (v) => cssH - 2 - ((v - bottom) / span) * (cssH - 4);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = color;
  ctx.lineJoin = "round";
  ctx.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      drawing = false;
      return;
    }
    const px = i * step;
    if (drawing) ctx.lineTo(px, y(v));
    else ctx.moveTo(px, y(v));
    drawing = true;
  });
  ctx.stroke();
  // Fill under the line, faintly.
  const last = values.length - 1;
  if (typeof values[last] === "number") {
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(last * step - 1.5, y(values[last]), 2, 0, Math.PI * 2);
    ctx.fill();
  }
}
