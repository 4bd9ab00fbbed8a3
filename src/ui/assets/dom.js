// DOM and formatting helpers. Every piece of data reaches the page as a text node or an
// attribute value, never as HTML: transcripts are what callers said and must not become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function applyAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

/** `h('div', {class: 'card'}, 'text', child)`: an HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * Re-renders `el` only when `key` changed since its last render, so a poll that brings the same
 * data leaves the DOM (focus, hover, a button about to be clicked) untouched.
 */
export function renderIfChanged(el, key, build) {
  const sig = typeof key === 'string' ? key : JSON.stringify(key);
  if (el.dataset.sig === sig) return false;
  el.dataset.sig = sig;
  el.replaceChildren(...[build()].flat(Infinity).filter((c) => c !== null && c !== undefined));
  return true;
}

const number = new Intl.NumberFormat(undefined);
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function fmtInt(n) {
  return typeof n === 'number' && Number.isFinite(n) ? number.format(n) : '—';
}

export function fmtPct(ratio) {
  return typeof ratio === 'number' && Number.isFinite(ratio) ? `${decimal.format(ratio * 100)}%` : '—';
}

export function fmtMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return ms >= 10000 ? `${decimal.format(ms / 1000)} s` : `${number.format(Math.round(ms))} ms`;
}

/** `75` → `1:15`; an hour or more → `1:02:03`. */
export function fmtClock(totalSecs) {
  if (typeof totalSecs !== 'number' || !Number.isFinite(totalSecs) || totalSecs < 0) return '—';
  const t = Math.floor(totalSecs);
  const hh = Math.floor(t / 3600);
  const mm = Math.floor((t % 3600) / 60);
  const ss = String(t % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

export function fmtDuration(secs) {
  if (typeof secs !== 'number' || !Number.isFinite(secs)) return '—';
  if (secs < 60) return `${decimal.format(secs)} s`;
  return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
}

export function fmtMoney(amount, currency) {
  if (typeof amount !== 'number' || !Number.isFinite(amount)) return '—';
  try {
    return new Intl.NumberFormat(undefined, {
      style: 'currency',
      currency: currency || 'USD',
      maximumFractionDigits: amount < 1 ? 4 : 2,
    }).format(amount);
  } catch {
    return `${decimal.format(amount)} ${currency || ''}`.trim();
  }
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** `+919876543210` → `+91 ••••• 3210`: the page never needs a full number on screen. */
export function maskPhone(raw) {
  if (!raw) return '—';
  const text = String(raw);
  if (text.includes('*') || text.includes('•')) return text.replace(/\*+/g, (m) => '•'.repeat(m.length));
  const digits = text.replace(/\D/g, '');
  if (digits.length <= 4) return '•'.repeat(digits.length);
  const plus = text.trim().startsWith('+');
  const head = plus ? digits.slice(0, 2) : '';
  return `${plus ? '+' : ''}${head} ${'•'.repeat(digits.length - 4 - head.length)} ${digits.slice(-4)}`.trim();
}

/** `do_not_call` → `Do not call`. */
export function humanize(key) {
  const text = String(key ?? '').replace(/[_-]+/g, ' ').trim();
  return text ? text[0].toUpperCase() + text.slice(1) : '—';
}

/** Nearest-rank percentile of numbers (`p` in 0..100). */
export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}
