// Canvas 2D drawing for the demo page: the live chart, the grid of test digits, the drawing pad
// (and its conversion to an MNIST-style 28x28 input), the class-probability bars.

const IMG = 28;

/** Loss (left axis) and accuracy (right axis, 0-1) per step; test accuracy as dots. */
export function drawChart(canvas, { steps, losses, accuracies, tests }) {
  const g = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height, L = 44, R = 44, T = 12, B = 48;
  g.clearRect(0, 0, W, H);
  g.font = '11px system-ui, sans-serif';
  const maxLoss = Math.max(0.5, ...losses.filter(Number.isFinite)) * 1.05;
  const x = (s) => L + ((W - L - R) * s) / Math.max(1, steps);
  const yLoss = (v) => T + (H - T - B) * (1 - Math.min(v, maxLoss) / maxLoss);
  const yAcc = (v) => T + (H - T - B) * (1 - v);
  g.strokeStyle = '#ddd';
  g.fillStyle = '#666';
  for (let i = 0; i <= 4; i++) { // grid lines with both axes' labels
    const y = T + ((H - T - B) * i) / 4;
    g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
    g.textAlign = 'right'; g.fillText((maxLoss * (1 - i / 4)).toFixed(2), L - 4, y + 4);
    g.textAlign = 'left'; g.fillText((1 - i / 4).toFixed(2), W - R + 4, y + 4);
  }
  g.textAlign = 'center';
  for (let i = 0; i <= 5; i++) g.fillText(String(Math.round((steps * i) / 5)), x((steps * i) / 5), H - B + 14);
  g.fillText('step', (L + W - R) / 2, H - B + 27);
  const line = (values, y, color, width) => {
    g.strokeStyle = color; g.lineWidth = width; g.beginPath();
    values.forEach((v, i) => (i ? g.lineTo(x(i + 1), y(v)) : g.moveTo(x(1), y(v))));
    g.stroke(); g.lineWidth = 1;
  };
  line(losses, yLoss, 'rgba(198, 40, 40, 0.3)', 1);
  line(smooth(losses), yLoss, '#c62828', 2);
  line(smooth(accuracies), yAcc, '#1565c0', 2);
  g.fillStyle = '#2e7d32';
  for (const t of tests) { g.beginPath(); g.arc(x(t.step), yAcc(t.accuracy), 4, 0, 2 * Math.PI); g.fill(); }
  g.textAlign = 'left';
  const legend = [['#c62828', 'training loss (left axis)'], ['#1565c0', 'training accuracy (right)'], ['#2e7d32', 'test accuracy (right)']];
  legend.forEach(([c, text], i) => { // one row under the plot, clear of the curves
    const lx = L + i * ((W - L - R) / 3);
    g.fillStyle = c; g.fillRect(lx, H - 13, 10, 10);
    g.fillStyle = '#333'; g.fillText(text, lx + 14, H - 4);
  });
}

/** Exponential moving average, so a noisy per-batch curve reads as a trend. */
function smooth(values, k = 0.15) {
  let m;
  return values.map((v) => (m = m === undefined ? v : m + k * (v - m)));
}

/** A 28x28 image (floats 0-1) drawn at `scale` with its top-left corner at (x, y). */
function drawDigit(g, pixels, x, y, scale) {
  const img = new ImageData(IMG, IMG);
  for (let i = 0; i < IMG * IMG; i++) {
    const v = 255 - Math.round(pixels[i] * 255); // dark ink on white
    img.data.set([v, v, v, 255], 4 * i);
  }
  const tile = new OffscreenCanvas(IMG, IMG);
  tile.getContext('2d').putImageData(img, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(tile, x, y, IMG * scale, IMG * scale);
}

/** The first cols*rows test images with their predicted class above; wrong ones in red, framed, with the label below. */
export function drawGrid(canvas, test, predictions) {
  const g = canvas.getContext('2d');
  const cols = 20, cellW = canvas.width / cols, cellH = 96, scale = 2;
  const rows = Math.floor(canvas.height / cellH);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.textAlign = 'center';
  for (let i = 0; i < Math.min(cols * rows, test.count); i++) {
    const cx = (i % cols) * cellW, cy = Math.floor(i / cols) * cellH;
    const ix = cx + (cellW - IMG * scale) / 2, iy = cy + 20;
    drawDigit(g, test.images.subarray(i * IMG * IMG, (i + 1) * IMG * IMG), ix, iy, scale);
    if (!predictions) continue;
    const wrong = predictions[i] !== test.labels[i];
    g.fillStyle = wrong ? '#c62828' : '#2e7d32';
    g.font = 'bold 15px system-ui, sans-serif';
    g.fillText(String(predictions[i]), cx + cellW / 2, cy + 15);
    if (!wrong) continue;
    g.strokeStyle = '#c62828'; g.lineWidth = 3; g.strokeRect(ix - 2, iy - 2, IMG * scale + 4, IMG * scale + 4); g.lineWidth = 1;
    g.font = '11px system-ui, sans-serif';
    g.fillText(`label ${test.labels[i]}`, cx + cellW / 2, iy + IMG * scale + 15);
  }
}

/** Ten bars: the probability of each class, the predicted one highlighted. */
export function drawProbs(canvas, probabilities) {
  const g = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height, bw = W / 10;
  g.clearRect(0, 0, W, H);
  g.font = '12px system-ui, sans-serif';
  g.textAlign = 'center';
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  for (let k = 0; k < 10; k++) {
    const p = probabilities ? probabilities[k] : 0;
    const h = (H - 34) * p;
    g.fillStyle = k === best ? '#1565c0' : '#90a4ae';
    g.fillRect(k * bw + 4, H - 18 - h, bw - 8, h);
    g.fillStyle = '#333';
    g.fillText(String(k), k * bw + bw / 2, H - 4);
    if (probabilities) g.fillText(p >= 0.995 ? '1' : p.toFixed(2).slice(1), k * bw + bw / 2, H - 22 - h);
  }
}

/** Lets the user draw white strokes on the black pad; calls `onStroke` at the end of each stroke. */
export function setupPad(pad, onStroke) {
  const g = pad.getContext('2d');
  let last;
  const at = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)]; };
  pad.addEventListener('pointerdown', (e) => { last = at(e); pad.setPointerCapture(e.pointerId); });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    g.strokeStyle = '#fff'; g.lineWidth = pad.width / 14; g.lineCap = 'round'; g.lineJoin = 'round';
    g.beginPath(); g.moveTo(...last); g.lineTo(...p); g.stroke();
    last = p;
  });
  const end = () => { if (last) { last = undefined; onStroke(); } };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
}

export function clearPad(pad) {
  const g = pad.getContext('2d');
  g.fillStyle = '#000';
  g.fillRect(0, 0, pad.width, pad.height);
}

/**
 * The pad as MNIST prepares its digits: the ink's bounding box scaled into 20x20, then moved so
 * its centre of mass is the centre of the 28x28 field. Floats 0-1, or undefined for an empty pad.
 */
export function padInput(pad, seen) {
  const src = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
  let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      if (src[4 * (y * pad.width + x)] > 32) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
  }
  if (x1 < 0) return undefined;
  const w = x1 - x0 + 1, h = y1 - y0 + 1, s = 20 / Math.max(w, h);
  const boxed = new OffscreenCanvas(IMG, IMG).getContext('2d', { willReadFrequently: true });
  boxed.drawImage(pad, x0, y0, w, h, (IMG - w * s) / 2, (IMG - h * s) / 2, w * s, h * s);
  let d = boxed.getImageData(0, 0, IMG, IMG).data;
  let m = 0, mx = 0, my = 0;
  for (let i = 0; i < IMG * IMG; i++) { const v = d[4 * i]; m += v; mx += v * ((i % IMG) + 0.5); my += v * (Math.floor(i / IMG) + 0.5); }
  const centred = new OffscreenCanvas(IMG, IMG).getContext('2d', { willReadFrequently: true });
  centred.drawImage(boxed.canvas, Math.round(IMG / 2 - mx / m), Math.round(IMG / 2 - my / m));
  d = centred.getImageData(0, 0, IMG, IMG).data;
  const pixels = new Float32Array(IMG * IMG);
  for (let i = 0; i < IMG * IMG; i++) pixels[i] = d[4 * i] / 255;
  const sg = seen.getContext('2d');
  sg.fillStyle = '#fff'; sg.fillRect(0, 0, seen.width, seen.height);
  drawDigit(sg, pixels, 0, 0, seen.width / IMG);
  return pixels;
}
