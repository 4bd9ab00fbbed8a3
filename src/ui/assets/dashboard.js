// The dashboard: totals, campaigns with progress, outcomes and their actions, live calls with
// transcripts that follow the conversation, and the latency chart.

import { api, optional } from './api.js';
import { chartIn, latencyFromTurns } from './chart.js';
import { Transcript, actionButtons, card, countBars, empty, kpi, leadBreakdown, leadGroups, outcomeChips, statusBadge } from './components.js';
import { fmtClock, fmtDuration, fmtInt, fmtMoney, fmtPct, h, maskPhone, renderIfChanged } from './dom.js';

/** How long a call that just ended stays on screen, greyed, before its card goes. */
const ENDED_LINGER_MS = 15000;

/** `GET /dashboard`, or the same shape from older endpoints when this server has none. */
async function loadDashboard() {
  const data = await optional('/dashboard');
  if (data) return data;
  const list = await api('/campaigns');
  const campaigns = await Promise.all(
    (list.campaigns || []).map(async (c) => {
      const full = await api(`/campaigns/${c.id}`);
      const byStatus = full.lead_counts || {};
      const total = Object.values(byStatus).reduce((a, b) => a + Number(b || 0), 0);
      const done = ['completed', 'failed', 'do_not_call'].reduce((a, k) => a + Number(byStatus[k] || 0), 0);
      return { id: c.id, name: c.name, status: c.status, leads: { total, by_status: byStatus }, outcomes: {}, progress: total ? done / total : 0 };
    }),
  );
  const sessions = await optional('/debug/sessions');
  const live = (sessions?.sessions || []).map((s) => ({ call_id: s.call_id, campaign_id: s.campaign_id, state: s.state }));
  return { campaigns, totals: {}, live_calls: live };
}

function totalsRow(data) {
  const t = data.totals || {};
  const campaigns = data.campaigns || [];
  const running = campaigns.filter((c) => c.status === 'running').length;
  const leads = campaigns.reduce((a, c) => a + (Number(c.leads?.total) || 0), 0);
  const groups = leadGroups(
    campaigns.reduce((acc, c) => {
      for (const [k, v] of Object.entries(c.leads?.by_status || {})) acc[k] = (acc[k] || 0) + Number(v || 0);
      return acc;
    }, {}),
  );
  const done = groups.filter((g) => g.final).reduce((a, g) => a + g.n, 0);
  const items = [
    kpi('Running', fmtInt(running), `of ${fmtInt(campaigns.length)} campaign${campaigns.length === 1 ? '' : 's'}`),
    kpi('Live calls', fmtInt((data.live_calls || []).length), 'right now'),
    kpi('Leads', fmtInt(t.leads?.total ?? leads), `${fmtPct(leads ? done / leads : NaN)} done`),
  ];
  if (t.calls) items.push(kpi('Calls placed', fmtInt(t.calls.total), `${fmtInt(t.calls.answered)} answered`));
  if (t.calls && typeof t.calls.connect_rate === 'number') items.push(kpi('Connect rate', fmtPct(t.calls.connect_rate), 'answered / placed'));
  if (t.talk_time_secs) items.push(kpi('Avg talk time', fmtDuration(t.talk_time_secs.average), `${fmtDuration(t.talk_time_secs.total)} in total`));
  if (t.cost && typeof t.cost.total === 'number') items.push(kpi('Cost', fmtMoney(t.cost.total, t.cost.currency), 'carrier and AI'));
  return items;
}

/** `3 of 18 done · 10 in progress · 5 waiting`. */
function progressCaption(leads) {
  const groups = leadGroups(leads?.by_status);
  const n = (pred) => groups.filter(pred).reduce((a, g) => a + g.n, 0);
  const parts = [`${fmtInt(n((g) => g.final))} of ${fmtInt(leads?.total)} done`];
  const active = n((g) => g.key === 'in_progress');
  const waiting = n((g) => g.key === 'waiting');
  if (active) parts.push(`${fmtInt(active)} in progress`);
  if (waiting) parts.push(`${fmtInt(waiting)} waiting`);
  return h('div', { class: 'progress-caption' }, parts.join(' · '));
}

/** A campaign's cells (the row element itself is kept across refreshes). */
function campaignCells(c, onChange) {
  return [
    h('td', {}, h('a', { href: `/ui/campaigns/${c.id}`, 'data-nav': true, class: 'row-title' }, c.name || `Campaign ${c.id}`), h('div', { class: 'muted small' }, `#${c.id}`)),
    h('td', { class: 'status' }, statusBadge(c.status)),
    h('td', { class: 'col-progress' }, h('div', { class: 'progress-line' }, leadBreakdown(c.leads, { legend: false }), h('span', { class: 'progress-pct' }, fmtPct(c.progress))), progressCaption(c.leads)),
    h('td', { class: 'num' }, fmtInt(c.leads?.total)),
    h('td', {}, outcomeChips(c.outcomes)),
    h('td', { class: 'col-actions' }, actionButtons(c, onChange)),
  ];
}

function elapsedSince(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? fmtClock((Date.now() - t) / 1000) : '';
}

export function dashboardView() {
  const kpis = h('div', { class: 'kpis', id: 'totals' });
  const campaignsBody = h('div', {});
  const liveGrid = h('div', { class: 'live-grid', id: 'live-calls' });
  const latencyBody = h('div', {});
  const chart = chartIn(latencyBody);
  const latencySub = h('span', {}, '');
  const liveCount = h('span', { class: 'count' }, '0');
  const leadsBody = h('div', {});
  const outcomesBody = h('div', {});
  const calls = new Map();
  const onScreen = new IntersectionObserver((seen) => {
    for (const e of seen) e.target.entry.visible = e.isIntersecting;
  });
  const campaignRows = new Map();
  const turnsSeen = new Map();
  let data = null;
  let refreshSoon = () => {};

  const el = h(
    'div',
    { class: 'view view-dashboard' },
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Dashboard'), h('p', { class: 'page-sub' }, 'Campaigns, live calls and voice latency, refreshed every second.'))),
    kpis,
    card('Campaigns', { id: 'campaigns', subtitle: 'Progress is the share of leads that reached an end.' }, campaignsBody),
    h(
      'div',
      { class: 'grid-2-1' },
      card(h('span', {}, 'Live calls ', liveCount), { id: 'live', subtitle: 'Transcripts follow the conversation as it happens.' }, liveGrid),
      h(
        'div',
        { class: 'stack-col' },
        card('Latency', { id: 'latency', subtitle: latencySub }, latencyBody),
        card('Leads', { id: 'leads', subtitle: 'Every campaign, by where each lead stands.' }, leadsBody),
        card('Outcomes', { id: 'outcomes', subtitle: 'What the conversations concluded.' }, outcomesBody),
      ),
    ),
  );

  /**
   * One row per campaign, kept by id: only a campaign whose data changed is redrawn, so a
   * button being clicked is not swapped for a new one by an unrelated update.
   */
  function renderCampaigns() {
    const list = data.campaigns || [];
    if (!list.length) {
      campaignRows.clear();
      renderIfChanged(campaignsBody, 'empty', () => empty('No campaigns yet', 'Create one with POST /campaigns and upload its leads.'));
      return;
    }
    renderIfChanged(campaignsBody, 'table', () => {
      campaignRows.clear();
      return h('div', { class: 'table-wrap' }, h('table', { class: 'table' }, h('thead', {}, h('tr', {}, ['Campaign', 'Status', 'Progress', 'Leads', 'Outcomes', ''].map((t, i) => h('th', { class: i === 3 ? 'num' : null }, t)))), h('tbody', {})));
    });
    const tbody = campaignsBody.querySelector('tbody');
    const ids = new Set();
    list.forEach((c, i) => {
      ids.add(c.id);
      let row = campaignRows.get(c.id);
      if (!row) {
        row = h('tr', { 'data-campaign-id': c.id });
        campaignRows.set(c.id, row);
      }
      if (tbody.children[i] !== row) tbody.insertBefore(row, tbody.children[i] || null);
      renderIfChanged(row, c, () =>
        campaignCells(c, (updated) => {
          c.status = updated.status;
          renderCampaigns();
          refreshSoon();
        }),
      );
    });
    for (const [id, row] of campaignRows) {
      if (!ids.has(id)) {
        row.remove();
        campaignRows.delete(id);
      }
    }
  }

  function callCard(live) {
    const transcript = new Transcript({ live: true, compact: true });
    const pill = h('span', { class: 'pill pill-live' }, h('span', { class: 'pulse' }), 'Live');
    const elapsed = h('span', { class: 'elapsed' }, '');
    const campaignLink = h('a', { href: `/ui/campaigns/${live.campaign_id}`, 'data-nav': true, class: 'muted' }, '');
    const cardEl = h(
      'article',
      { class: 'call-card', 'data-call-id': live.call_id },
      h(
        'header',
        { class: 'call-head' },
        h('div', { class: 'call-title' }, h('span', { class: 'phone' }, maskPhone(live.phone) === '—' ? `Call #${live.call_id}` : maskPhone(live.phone)), campaignLink),
        h('div', { class: 'call-state' }, elapsed, pill),
      ),
      transcript.el,
      h('footer', { class: 'call-foot' }, h('span', { class: 'muted small' }, live.lead_id ? `Lead #${live.lead_id} · Call #${live.call_id}` : `Call #${live.call_id}`), h('a', { href: `/ui/calls/${live.call_id}`, 'data-nav': true, class: 'link' }, 'Open call →')),
    );
    const entry = { el: cardEl, transcript, pill, elapsed, campaignLink, live, endedAt: null, visible: true, fetched: false };
    onScreen.observe(cardEl);
    cardEl.entry = entry;
    return entry;
  }

  async function renderLive() {
    const live = data.live_calls || [];
    liveCount.textContent = String(live.length);
    const names = new Map((data.campaigns || []).map((c) => [c.id, c.name]));
    const ids = new Set(live.map((c) => c.call_id));
    for (const call of live) {
      let entry = calls.get(call.call_id);
      if (!entry || entry.endedAt) {
        if (entry) {
          onScreen.unobserve(entry.el);
          entry.el.remove();
        }
        entry = callCard(call);
        calls.set(call.call_id, entry);
        liveGrid.append(entry.el);
      }
      entry.live = call;
      entry.campaignLink.textContent = names.get(call.campaign_id) || `Campaign ${call.campaign_id ?? '—'}`;
      entry.elapsed.textContent = elapsedSince(call.started_at);
      const ending = call.state === 'ending';
      entry.pill.className = `pill ${ending ? 'pill-ending' : 'pill-live'}`;
      entry.pill.lastChild.textContent = ending ? 'Ending' : 'Live';
    }
    for (const [id, entry] of calls) {
      if (ids.has(id)) continue;
      if (!entry.endedAt) {
        entry.endedAt = Date.now();
        entry.el.classList.add('ended');
        entry.pill.className = 'pill pill-ended';
        entry.pill.lastChild.textContent = 'Ended';
        entry.transcript.setLive(false);
      } else if (Date.now() - entry.endedAt > ENDED_LINGER_MS) {
        onScreen.unobserve(entry.el);
        entry.el.remove();
        calls.delete(id);
      }
    }
    if (!calls.size && !liveGrid.querySelector('.empty')) {
      liveGrid.replaceChildren(empty('No calls in progress', 'Calls appear here as soon as they are answered.'));
    } else if (calls.size) {
      liveGrid.querySelector(':scope > .empty')?.remove();
    }
    // Transcripts: live calls on screen every time (with hundreds of calls, the ones scrolled
    // away wait), each call at least once, an ended one once more to catch its last words.
    await Promise.all(
      [...calls.values()]
        .filter((e) => (e.endedAt ? !e.finalFetched : e.visible || !e.fetched))
        .map(async (entry) => {
          entry.fetched = true;
          if (entry.endedAt) entry.finalFetched = true;
          const t = await optional(`/calls/${entry.live.call_id}/transcript`);
          const turns = t?.turns || [];
          turnsSeen.set(entry.live.call_id, turns);
          entry.transcript.update(turns);
        }),
    );
  }

  /** Leads and outcomes summed over every campaign (the server's totals when it has them). */
  function renderSummaries() {
    const list = data.campaigns || [];
    const sum = (pick) =>
      list.reduce((acc, c) => {
        for (const [k, v] of Object.entries(pick(c) || {})) acc[k] = (acc[k] || 0) + Number(v || 0);
        return acc;
      }, {});
    const leads = data.totals?.leads || { total: list.reduce((a, c) => a + (Number(c.leads?.total) || 0), 0), by_status: sum((c) => c.leads?.by_status) };
    renderIfChanged(leadsBody, leads, () => leadBreakdown(leads));
    const outcomes = data.totals?.outcomes || sum((c) => c.outcomes);
    renderIfChanged(outcomesBody, outcomes, () => countBars(outcomes, { emptyText: 'No conversation has concluded yet.' }));
  }

  function renderLatency() {
    const fromApi = data.totals?.latency_ms;
    if (fromApi) {
      latencySub.textContent = 'All answered turns, every campaign.';
      chart.update(fromApi);
      return;
    }
    const turns = [...turnsSeen.values()].flat();
    const agentTurns = turns.filter((t) => typeof t.voice_to_voice_ms === 'number').length;
    latencySub.textContent = agentTurns ? `From ${fmtInt(agentTurns)} agent turn${agentTurns === 1 ? '' : 's'} of the calls shown here.` : 'Per turn, from the calls shown here.';
    chart.update(latencyFromTurns(turns));
  }

  return {
    el,
    title: 'Dashboard',
    crumbs: [],
    setRefresh(fn) {
      refreshSoon = fn;
    },
    async refresh() {
      data = await loadDashboard();
      renderIfChanged(kpis, [data.totals, (data.campaigns || []).map((c) => [c.status, c.leads]), (data.live_calls || []).length], () => totalsRow(data));
      renderCampaigns();
      renderSummaries();
      await renderLive();
      renderLatency();
    },
  };
}
