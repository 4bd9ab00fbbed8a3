// One call: what the carrier and the conversation recorded, the recording, the transcript
// (updating while the call is live) and the latency of its turns.

import { api, optional } from './api.js';
import { chartIn, latencyFromTurns } from './chart.js';
import { Transcript, card } from './components.js';
import { fmtDuration, fmtTime, h, humanize, maskPhone, renderIfChanged } from './dom.js';

/** Call statuses that still hold a line (the rest are final). */
const ACTIVE = new Set(['queued', 'dialing', 'ringing', 'in-progress']);
/**
 * Refreshes of an ended call before the page stops asking (about a minute): its summary and
 * recording come last. Counted here, not from `ended_at`, as the browser's clock may differ.
 */
const SETTLE_POLLS = 60;

const CALL_TONE = { completed: 'ok', failed: 'warn', busy: 'warn', 'no-answer': 'warn' };

function isLive(call) {
  return !call.ended_at && ACTIVE.has(call.status);
}

function details(call) {
  const duration = typeof call.conversation_duration === 'number' ? call.conversation_duration : call.answered_at && call.ended_at ? (Date.parse(call.ended_at) - Date.parse(call.answered_at)) / 1000 : null;
  const rows = [
    ['Number', maskPhone(call.phone)],
    ['Direction', humanize(call.direction)],
    ['Attempt', call.attempt ?? '—'],
    ['Dialled', fmtTime(call.dialed_at || call.created_at)],
    ['Answered', call.answered_at ? `${fmtTime(call.answered_at)}${call.answered_by ? ` · ${call.answered_by}` : ''}` : '—'],
    ['Ended', fmtTime(call.ended_at)],
    ['Talk time', fmtDuration(duration)],
    ['Outcome', call.intent ? humanize(call.intent) : '—'],
  ];
  if (call.error) rows.push(['Error', call.error]);
  return h('dl', { class: 'details' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function recording(call) {
  if (!call.recording_url) return h('p', { class: 'muted small', id: 'recording' }, isLive(call) ? 'The recording is available once the call ends.' : 'The carrier reported no recording for this call.');
  // The server keeps only http(s) links; checked here too, as a link's href runs `javascript:`.
  if (!/^https?:\/\//i.test(call.recording_url)) return h('p', { class: 'muted small', id: 'recording' }, 'The recording link is not a web address.');
  return h('a', { class: 'btn btn-secondary', id: 'recording', href: call.recording_url, target: '_blank', rel: 'noopener noreferrer' }, '▶ Listen to the recording');
}

function summary(call) {
  const fields = Object.entries(call.qualification || {});
  if (!call.summary && !fields.length) return h('p', { class: 'muted small' }, 'The summary is written when the call ends.');
  return h(
    'div',
    {},
    call.summary ? h('p', { class: 'summary' }, call.summary) : null,
    fields.length ? h('dl', { class: 'details' }, fields.map(([k, v]) => [h('dt', {}, humanize(k)), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))])) : null,
  );
}

export function callView(id) {
  const transcript = new Transcript({ live: true });
  const head = h('div', { class: 'page-head' });
  const side = h('div', { class: 'stack-col' });
  const latencyBody = h('div', {});
  const chart = chartIn(latencyBody);
  const transcriptNote = h('span', {}, '');
  const el = h(
    'div',
    { class: 'view view-call', 'data-call-id': id },
    head,
    h(
      'div',
      { class: 'grid-2-1' },
      h('div', { class: 'stack-col' }, card('Transcript', { id: 'transcript', subtitle: transcriptNote }, transcript.el), card('Latency of this call', { id: 'latency', subtitle: 'Per turn, from this call’s transcript.' }, latencyBody)),
      side,
    ),
  );
  let done = false;
  let settledPolls = 0;
  const view = {
    el,
    title: `Call ${id}`,
    crumbs: [{ label: `Call #${id}` }],
    async refresh() {
      // A call settled for a while does not change any more: stop asking.
      if (done) return;
      const call = await api(`/calls/${id}`);
      const live = isLive(call);
      view.crumbs = call.campaign_id ? [{ label: `Campaign #${call.campaign_id}`, href: `/ui/campaigns/${call.campaign_id}` }, { label: `Call #${id}` }] : view.crumbs;
      renderIfChanged(head, [call.status, live, call.campaign_id], () => [
        h(
          'div',
          {},
          h('h1', {}, `Call #${id}`, live ? h('span', { class: 'pill pill-live' }, h('span', { class: 'pulse' }), call.status === 'in-progress' ? 'Live' : humanize(call.status)) : h('span', { class: `badge badge-${CALL_TONE[call.status] || 'muted'}` }, h('span', { class: 'badge-dot' }), humanize(call.status))),
          h('p', { class: 'page-sub' }, maskPhone(call.phone), call.campaign_id ? [' · ', h('a', { href: `/ui/campaigns/${call.campaign_id}`, 'data-nav': true }, `Campaign #${call.campaign_id}`)] : null, call.lead_id ? ` · Lead #${call.lead_id}` : null),
        ),
      ]);
      renderIfChanged(side, call, () => [card('Call', {}, details(call)), card('Recording', { id: 'recording-card' }, recording(call)), card('Summary', {}, summary(call))]);
      const t = await optional(`/calls/${id}/transcript`);
      transcript.setLive(live);
      if (t) {
        transcript.update(t.turns || []);
        transcriptNote.textContent = live ? 'Updating while the call is live.' : `${t.turns?.length || 0} turns.`;
        chart.update(latencyFromTurns(t.turns || []));
      } else {
        transcriptNote.textContent = 'No transcript is available for this call.';
        chart.update(null);
      }
      settledPolls = live ? 0 : settledPolls + 1;
      done = settledPolls > SETTLE_POLLS;
    },
  };
  return view;
}
