// Widgets shared by the views: cards, badges, progress, breakdown bars, the transcript.

import { api } from './api.js';
import { fmtInt, fmtMs, fmtPct, h, humanize } from './dom.js';

export function card(title, { id, subtitle, actions, wide } = {}, ...body) {
  return h(
    'section',
    { class: `card${wide ? ' card-wide' : ''}`, id },
    h(
      'header',
      { class: 'card-head' },
      h('div', {}, h('h2', {}, title), subtitle ? h('p', { class: 'card-sub' }, subtitle) : null),
      actions || null,
    ),
    h('div', { class: 'card-body' }, body),
  );
}

export function empty(title, text) {
  return h('div', { class: 'empty' }, h('div', { class: 'empty-title' }, title), text ? h('div', { class: 'empty-text' }, text) : null);
}

export function kpi(label, value, hint) {
  return h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value), hint ? h('div', { class: 'kpi-hint' }, hint) : null);
}

const STATUS_CLASS = { running: 'ok', paused: 'warn', draft: 'muted', completed: 'info' };

export function statusBadge(status) {
  return h('span', { class: `badge badge-${STATUS_CLASS[status] || 'muted'}`, 'data-status': status }, h('span', { class: 'badge-dot' }), humanize(status));
}

/** Lead statuses grouped the way an operator reads them, in the order they are drawn. */
export const LEAD_GROUPS = [
  { key: 'completed', label: 'Completed', statuses: ['completed'], final: true },
  { key: 'failed', label: 'Failed', statuses: ['failed'], final: true },
  { key: 'do_not_call', label: 'Do not call', statuses: ['do_not_call'], final: true },
  { key: 'in_progress', label: 'In progress', statuses: ['in_progress'] },
  { key: 'waiting', label: 'Waiting', statuses: ['pending', 'retry', 'callback'] },
];

export function leadGroups(byStatus) {
  return LEAD_GROUPS.map((g) => ({ ...g, n: g.statuses.reduce((sum, st) => sum + (Number(byStatus?.[st]) || 0), 0) }));
}

export function progressBar(ratio) {
  const pct = Math.max(0, Math.min(1, Number(ratio) || 0)) * 100;
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(pct) }, h('div', { class: 'progress-fill', style: { width: `${pct}%` } }));
}

/** One stacked bar of lead groups and its legend (either can be left out). */
export function leadBreakdown(leads, { legend = true, bar: withBar = true } = {}) {
  const total = Number(leads?.total) || 0;
  const groups = leadGroups(leads?.by_status);
  const bar = !withBar ? null : h(
    'div',
    { class: 'stack' },
    groups.filter((g) => g.n > 0).map((g) => h('div', { class: `stack-seg seg-${g.key}`, title: `${g.label}: ${g.n}`, style: { flexGrow: String(g.n) } })),
  );
  if (!legend) return bar;
  return h(
    'div',
    { class: 'breakdown' },
    bar,
    h(
      'ul',
      { class: 'stack-legend' },
      groups.map((g) => h('li', {}, h('span', { class: `swatch seg-${g.key}` }), h('span', { class: 'legend-label' }, g.label), h('span', { class: 'legend-value' }, fmtInt(g.n), total ? h('span', { class: 'legend-pct' }, fmtPct(g.n / total)) : null))),
    ),
  );
}

/** Horizontal bars of counts (`{interested: 4, …}`), largest first. */
export function countBars(counts, { emptyText = 'Nothing recorded yet.', label = humanize } = {}) {
  const entries = Object.entries(counts || {})
    .map(([k, v]) => [k, typeof v === 'object' && v !== null ? Number(v.count ?? v.total ?? 0) : Number(v)])
    .filter(([, v]) => Number.isFinite(v) && v > 0)
    .sort((a, b) => b[1] - a[1]);
  if (!entries.length) return h('p', { class: 'muted small' }, emptyText);
  const max = entries[0][1];
  return h(
    'ul',
    { class: 'bars' },
    entries.map(([k, v]) => h('li', { class: 'bars-row', 'data-key': k }, h('span', { class: 'bars-label' }, label(k)), h('span', { class: 'bars-track' }, h('span', { class: `bars-fill tone-${k}`, style: { width: `${(v / max) * 100}%` } })), h('span', { class: 'bars-value' }, fmtInt(v)))),
  );
}

/** Outcome chips for a table cell: the three most frequent. */
export function outcomeChips(outcomes) {
  const entries = Object.entries(outcomes || {})
    .map(([k, v]) => [k, Number(v)])
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
  if (!entries.length) return h('span', { class: 'muted small' }, 'No outcomes yet');
  return h(
    'div',
    { class: 'chips' },
    entries.slice(0, 3).map(([k, v]) => h('span', { class: `chip tone-${k}` }, humanize(k), h('b', {}, fmtInt(v)))),
    entries.length > 3 ? h('span', { class: 'chip chip-more' }, `+${entries.length - 3}`) : null,
  );
}

const ACTIONS = {
  draft: [{ action: 'start', label: 'Start', kind: 'primary' }],
  running: [{ action: 'pause', label: 'Pause', kind: 'secondary' }],
  paused: [{ action: 'resume', label: 'Resume', kind: 'primary' }],
};

/** Start / Pause / Resume for a campaign's status; `done` gets the updated campaign. */
export function actionButtons(campaign, done) {
  const list = ACTIONS[campaign.status] || [];
  if (!list.length) return h('span', { class: 'muted small' }, campaign.status === 'completed' ? 'Finished' : '');
  return h(
    'div',
    { class: 'actions' },
    list.map(({ action, label, kind }) => {
      const button = h('button', { type: 'button', class: `btn btn-${kind}`, 'data-action': action, 'data-campaign-id': campaign.id }, label);
      button.addEventListener('click', async () => {
        button.disabled = true;
        button.classList.add('busy');
        try {
          const updated = await api(`/campaigns/${campaign.id}/${action}`, { method: 'POST' });
          toast(`${campaign.name || `Campaign ${campaign.id}`}: ${humanize(updated.status)}`, 'ok');
          done(updated);
        } catch (e) {
          toast(e.message, 'error');
          button.disabled = false;
          button.classList.remove('busy');
        }
      });
      return button;
    }),
  );
}

export function toast(message, tone = 'info') {
  const host = document.getElementById('toasts');
  const el = h('div', { class: `toast toast-${tone}`, role: 'status' }, message);
  host.append(el);
  setTimeout(() => el.classList.add('leaving'), 3500);
  setTimeout(() => el.remove(), 4000);
}

function turnOffset(ms) {
  if (typeof ms !== 'number') return '';
  const t = Math.floor(ms / 1000);
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
}

function turnView(turn) {
  const speaker = ['agent', 'caller'].includes(turn.speaker) ? turn.speaker : 'system';
  return h(
    'div',
    { class: `turn turn-${speaker}`, 'data-seq': turn.seq },
    h(
      'div',
      { class: 'turn-meta' },
      h('span', { class: 'who' }, humanize(speaker)),
      h('span', { class: 'at' }, turnOffset(turn.started_ms)),
      turn.interrupted ? h('span', { class: 'tag tag-warn' }, 'Interrupted') : null,
      typeof turn.voice_to_voice_ms === 'number' ? h('span', { class: 'tag tag-lat', title: 'Voice to voice: from the caller’s last word to the agent’s first sound' }, fmtMs(turn.voice_to_voice_ms)) : null,
    ),
    turn.text ? h('div', { class: 'bubble' }, turn.text) : h('div', { class: 'bubble bubble-empty' }, 'Cut off before a word was heard'),
  );
}

/**
 * A transcript that updates in place: new turns are appended, changed turns replaced, and it
 * follows the conversation only while the reader is at the bottom.
 */
export class Transcript {
  constructor({ live = false, compact = false } = {}) {
    this.el = h('div', { class: `transcript${compact ? ' compact' : ''}${live ? ' live' : ''}` });
    this.items = new Map();
    this.placeholder = h('div', { class: 'transcript-empty' }, live ? 'Waiting for the first words…' : 'No transcript.');
    this.el.append(this.placeholder);
  }

  setLive(live) {
    this.el.classList.toggle('live', live);
  }

  update(turns) {
    const follow = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 48;
    const sorted = [...(turns || [])].sort((a, b) => a.seq - b.seq);
    if (sorted.length) this.placeholder.remove();
    for (const turn of sorted) {
      const sig = JSON.stringify([turn.speaker, turn.text, turn.interrupted, turn.voice_to_voice_ms, turn.started_ms]);
      const known = this.items.get(turn.seq);
      if (known && known.sig === sig) continue;
      const el = turnView(turn);
      if (known) {
        known.el.replaceWith(el);
      } else {
        const next = [...this.items.entries()].filter(([seq]) => seq > turn.seq).sort((a, b) => a[0] - b[0])[0];
        this.el.insertBefore(el, next ? next[1].el : null);
      }
      this.items.set(turn.seq, { el, sig });
    }
    if (follow) this.el.scrollTop = this.el.scrollHeight;
  }
}
