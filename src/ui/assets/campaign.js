// One campaign: status and actions, progress, outcomes and intents, latency, cost and attempts
// from `GET /campaigns/{id}/analytics` (only lead counts when the server has no analytics), and
// its leads.

import { api, optional } from './api.js';
import { chartIn } from './chart.js';
import { actionButtons, card, countBars, kpi, leadBreakdown, leadGroups, statusBadge } from './components.js';
import { fmtDuration, fmtInt, fmtMoney, fmtPct, fmtTime, h, humanize, maskPhone, renderIfChanged } from './dom.js';

/** Leads listed on the page (the API pages them; the rest are counted above). */
const LEADS_SHOWN = 100;

async function load(id) {
  const [analytics, campaign, leadPage] = await Promise.all([
    optional(`/campaigns/${id}/analytics`),
    api(`/campaigns/${id}`),
    api(`/campaigns/${id}/leads?limit=${LEADS_SHOWN}`),
  ]);
  const byStatus = campaign.lead_counts || {};
  const total = Object.values(byStatus).reduce((a, b) => a + Number(b || 0), 0);
  return { campaign, analytics, leads: analytics?.leads || { total, by_status: byStatus }, leadPage };
}

function costTable(cost) {
  if (!cost) return h('p', { class: 'muted small' }, 'No cost recorded yet.');
  const rows = [
    ['Carrier', cost.carrier],
    ['Speech-to-text', cost.stt],
    ['Language model', cost.llm],
    ['Text-to-speech', cost.tts],
  ];
  return h(
    'table',
    { class: 'table table-compact' },
    h('tbody', {}, rows.map(([label, v]) => h('tr', {}, h('td', {}, label), h('td', { class: 'num' }, fmtMoney(v, cost.currency)))), h('tr', { class: 'total' }, h('td', {}, 'Total'), h('td', { class: 'num' }, fmtMoney(cost.total, cost.currency)))),
  );
}

function latencyBox(latency) {
  const box = h('div', {});
  chartIn(box).update(latency);
  return box;
}

const LEAD_TONE = { completed: 'ok', in_progress: 'info', failed: 'warn', do_not_call: 'muted' };

function leadsTable(page) {
  const leads = page?.leads || [];
  if (!leads.length) return h('p', { class: 'muted small' }, 'No leads: upload a CSV to this campaign.');
  return h(
    'div',
    { class: 'table-scroll table-wrap' },
    h(
      'table',
      { class: 'table' },
      h('thead', {}, h('tr', {}, ['Lead', 'Number', 'Status', 'Attempts', 'Result', 'Next attempt'].map((t, i) => h('th', { class: i === 3 ? 'num' : null }, t)))),
      h(
        'tbody',
        {},
        leads.map((l) =>
          h(
            'tr',
            { 'data-lead-id': l.id },
            h('td', {}, h('div', { class: 'row-title' }, l.name || `Lead #${l.id}`), h('div', { class: 'muted small' }, `#${l.id}`)),
            h('td', { class: 'mono' }, maskPhone(l.phone)),
            h('td', {}, h('span', { class: `badge badge-${LEAD_TONE[l.status] || 'muted'}` }, h('span', { class: 'badge-dot' }), humanize(l.status))),
            h('td', { class: 'num' }, fmtInt(l.attempts)),
            h('td', {}, l.outcome || l.last_result ? humanize(l.outcome || l.last_result) : h('span', { class: 'muted' }, '—')),
            h('td', { class: 'muted' }, l.next_attempt_at && !['completed', 'failed', 'do_not_call'].includes(l.status) ? fmtTime(l.next_attempt_at) : '—'),
          ),
        ),
      ),
    ),
  );
}

function kpisFor(leads, analytics) {
  const groups = leadGroups(leads.by_status);
  const n = (pred) => groups.filter(pred).reduce((a, g) => a + g.n, 0);
  const done = n((g) => g.final);
  const items = [kpi('Leads', fmtInt(leads.total), `${fmtPct(leads.total ? done / leads.total : NaN)} reached an end`)];
  const calls = analytics?.calls;
  if (calls) {
    items.push(kpi('Calls placed', fmtInt(calls.total), `${fmtInt(calls.answered)} answered`));
    items.push(kpi('Connect rate', fmtPct(calls.connect_rate), 'answered / placed'));
  } else {
    items.push(kpi('Completed', fmtInt(n((g) => g.key === 'completed')), 'leads with a conversation outcome'));
    items.push(kpi('In progress', fmtInt(n((g) => g.key === 'in_progress')), 'being dialled or on a call'));
    items.push(kpi('Waiting', fmtInt(n((g) => g.key === 'waiting')), 'pending, retry or callback'));
  }
  const talk = analytics?.talk_time_secs;
  if (talk) items.push(kpi('Average talk time', fmtDuration(talk.average), `${fmtDuration(talk.total)} in total`));
  if (analytics?.cost) items.push(kpi('Cost', fmtMoney(analytics.cost.total, analytics.cost.currency), 'carrier and AI providers'));
  return h('div', { class: 'kpis' }, items);
}

export function campaignView(id) {
  const head = h('div', { class: 'page-head' });
  const body = h('div', { class: 'view' });
  const leadsBody = h('div', {});
  const leadsSub = h('span', {}, '');
  const el = h('div', { class: 'view view-campaign', 'data-campaign-id': id }, head, body, card('Leads', { id: 'campaign-leads', subtitle: leadsSub }, leadsBody));
  let refreshSoon = () => {};
  const view = {
    el,
    title: `Campaign ${id}`,
    crumbs: [{ label: `Campaign #${id}` }],
    setRefresh(fn) {
      refreshSoon = fn;
    },
    async refresh() {
      const { campaign, analytics, leads, leadPage } = await load(id);
      view.title = campaign.name || view.title;
      renderIfChanged(head, [campaign.name, campaign.status, campaign.status_reason], () => [
        h(
          'div',
          {},
          h('h1', {}, campaign.name || `Campaign ${id}`, statusBadge(campaign.status)),
          h('p', { class: 'page-sub' }, campaign.status === 'paused' && campaign.status_reason ? `Paused by the service: ${campaign.status_reason}` : `Campaign #${id} · language ${campaign.language || '—'} · ${campaign.max_attempts ?? '—'} attempts per lead`),
        ),
        actionButtons(campaign, () => refreshSoon()),
      ]);
      renderIfChanged(body, [analytics, leads], () => {
        const groups = leadGroups(leads.by_status);
        const done = groups.filter((g) => g.final).reduce((a, g) => a + g.n, 0);
        const ratio = leads.total ? done / leads.total : 0;
        const progress = card('Progress', { subtitle: 'Leads by where they stand.' }, h('div', { class: 'progress-line big' }, leadBreakdown(leads, { legend: false }), h('span', { class: 'progress-pct' }, fmtPct(ratio))), leadBreakdown(leads, { bar: false }));
        if (!analytics) {
          return [kpisFor(leads, null), progress, h('p', { class: 'notice' }, 'This server does not provide campaign analytics yet: outcomes, latency and cost will appear here once it does.')];
        }
        return [
          kpisFor(leads, analytics),
          h('div', { class: 'grid-2' }, progress, card('Outcomes', { subtitle: 'What the conversations concluded.' }, countBars(analytics.outcomes))),
          h('div', { class: 'grid-2-1' }, card('Latency', { id: 'latency', subtitle: 'Per turn, every answered call of this campaign.' }, latencyBox(analytics.latency_ms)), card('Cost', { subtitle: analytics.cost?.currency || '' }, costTable(analytics.cost))),
          h('div', { class: 'grid-3' }, card('Intents', {}, countBars(analytics.intents)), card('Attempts', { subtitle: 'Leads by number of dial attempts.' }, countBars(analytics.attempts, { label: (k) => (/^\d+$/.test(k) ? `${k} attempt${k === '1' ? '' : 's'}` : humanize(k)) })), card('Calls by status', {}, countBars(analytics.calls?.by_status))),
        ];
      });
      leadsSub.textContent = leadPage.total > (leadPage.leads || []).length ? `The first ${fmtInt(leadPage.leads.length)} of ${fmtInt(leadPage.total)}.` : `${fmtInt(leadPage.total)} lead${leadPage.total === 1 ? '' : 's'}.`;
      renderIfChanged(leadsBody, leadPage.leads, () => leadsTable(leadPage));
    },
  };
  return view;
}
