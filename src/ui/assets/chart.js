// The latency chart: one row per pipeline component, p95 as a pale bar with the p50 bar drawn
// over it, on a shared millisecond axis. Hand-drawn SVG: no chart library to ship or update.

import { fmtInt, fmtMs, h, percentile, renderIfChanged, s } from './dom.js';

/** The components in pipeline order, with the transcript field each is measured in. */
export const COMPONENTS = [
  { key: 'stt', label: 'Speech-to-text', field: 'stt_ms' },
  { key: 'llm_first_token', label: 'LLM first token', field: 'llm_first_token_ms' },
  { key: 'tts_first_byte', label: 'TTS first byte', field: 'tts_first_byte_ms' },
  { key: 'voice_to_voice', label: 'Voice to voice', field: 'voice_to_voice_ms' },
  { key: 'added', label: 'Added by us', field: 'added_ms' },
];

/** `{stt: {count, p50, p95}, …}` from transcript turns, the same shape analytics return. */
export function latencyFromTurns(turns) {
  const out = {};
  for (const c of COMPONENTS) {
    const values = turns.map((t) => t[c.field]).filter((v) => typeof v === 'number' && v >= 0);
    out[c.key] = { count: values.length, p50: percentile(values, 50), p95: percentile(values, 95) };
  }
  return out;
}

/** A round axis maximum (1, 2, 2.5 or 5 × 10ⁿ per step) and its ticks. */
function axis(max) {
  const target = Math.max(max, 1) / 4;
  const pow = 10 ** Math.floor(Math.log10(target));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((v) => v >= target);
  const top = Math.ceil(Math.max(max, 1) / step) * step;
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return { top, ticks };
}

function tickLabel(v) {
  return v >= 1000 ? `${+(v / 1000).toFixed(2)} s` : `${v}`;
}

function rowValue(x, y, p50, p95, anchor) {
  return s(
    'text',
    { x, y, class: 'row-value', 'text-anchor': anchor },
    s('tspan', { class: 'v50' }, fmtMs(p50)),
    s('tspan', { class: 'sep', dx: 5 }, '/'),
    s('tspan', { class: 'v95', dx: 5 }, fmtMs(p95)),
  );
}

/**
 * The chart for `latency` (`{component: {count, p50, p95}}`) drawn at `width` pixels (one SVG
 * unit per pixel, so text stays readable in a narrow card), or an empty state when nothing was
 * measured yet. Narrow: each label sits above its bar; wide: labels, bars and values in columns.
 */
export function latencyChart(latency, { caption, width = 640 } = {}) {
  const rows = COMPONENTS.map((c) => ({ ...c, ...(latency?.[c.key] || {}) })).filter(
    (r) => typeof r.p50 === 'number' || typeof r.p95 === 'number',
  );
  if (!rows.length) {
    return h(
      'div',
      { class: 'empty' },
      h('div', { class: 'empty-title' }, 'No latency measured yet'),
      h('div', { class: 'empty-text' }, 'Figures appear after the first answered turn.'),
    );
  }
  const W = Math.max(240, Math.round(width));
  const wide = W >= 520;
  const labelW = wide ? Math.min(150, Math.round(W * 0.24)) : 0;
  const valueW = wide ? 150 : 0;
  const rowH = wide ? 36 : 48;
  const barH = wide ? 18 : 14;
  const top = 4;
  const axisH = 24;
  const plotW = W - labelW - valueW - (wide ? 0 : 2);
  const H = top + rows.length * rowH + axisH;
  const { top: maxMs, ticks } = axis(Math.max(...rows.map((r) => r.p95 ?? r.p50 ?? 0)));
  const x = (ms) => labelW + (Math.max(0, ms) / maxMs) * plotW;
  const gridBottom = top + rows.length * rowH;

  const barTop = (i) => (wide ? top + i * rowH + (rowH - barH) / 2 : top + i * rowH + rowH - barH - 8);
  // Wide: gridlines run the full height. Narrow: only behind the bars, never through the text.
  const spans = wide ? [[top, gridBottom]] : rows.map((_, i) => [barTop(i) - 3, barTop(i) + barH + 3]);
  const grid = ticks.map((t, i) =>
    s(
      'g',
      { class: 'tick' },
      spans.map(([y1, y2]) => s('line', { x1: x(t), x2: x(t), y1, y2, class: t ? 'grid' : 'grid base' })),
      s('text', { x: x(t), y: H - 7, 'text-anchor': i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle', class: 'axis-label' }, tickLabel(t)),
    ),
  );
  const bars = rows.map((r, i) => {
    const barY = barTop(i);
    const p50 = r.p50 ?? r.p95;
    const p95 = r.p95 ?? r.p50;
    const title = `${r.label}: p50 ${fmtMs(p50)}, p95 ${fmtMs(p95)} over ${fmtInt(r.count)} turns`;
    const textY = wide ? barY + barH / 2 + 4.5 : barY - 7;
    return s(
      'g',
      { class: `row row-${r.key}`, 'data-component': r.key },
      s('title', {}, title),
      wide
        ? s('text', { x: labelW - 14, y: textY, 'text-anchor': 'end', class: 'row-label' }, r.label)
        : s('text', { x: 0, y: textY, class: 'row-label' }, r.label),
      s('rect', { x: labelW, y: barY, width: Math.max(3, x(p95) - labelW), height: barH, rx: 4, class: 'bar-p95' }),
      s('rect', { x: labelW, y: barY, width: Math.max(3, x(p50) - labelW), height: barH, rx: 4, class: 'bar-p50' }),
      rowValue(W, textY, p50, p95, 'end'),
    );
  });
  const svg = s(
    'svg',
    {
      class: 'latency-chart',
      width: W,
      height: H,
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': rows.map((r) => `${r.label} p50 ${fmtMs(r.p50)} p95 ${fmtMs(r.p95)}`).join('; '),
    },
    grid,
    bars,
  );
  return h(
    'figure',
    { class: 'chart' },
    h(
      'div',
      { class: 'legend' },
      h('span', { class: 'key key-p50' }, 'p50'),
      h('span', { class: 'key key-p95' }, 'p95'),
      h('span', { class: 'legend-note' }, caption || 'per turn'),
    ),
    svg,
  );
}

/**
 * A chart that fills `container` and is redrawn when the container's width changes (or new
 * figures arrive). `update(latency)` gives it figures.
 */
export function chartIn(container, options = {}) {
  let latency = null;
  const draw = () => {
    const width = Math.floor(container.clientWidth) || 640;
    renderIfChanged(container, [latency, width], () => latencyChart(latency, { ...options, width }));
  };
  new ResizeObserver(draw).observe(container);
  return {
    update(next) {
      latency = next;
      draw();
    },
  };
}
