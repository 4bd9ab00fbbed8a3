// The dashboard's entry point: picks the view from the URL (/ui, /ui/campaigns/{id},
// /ui/calls/{id}), refreshes it every second while the tab is visible (less often while the
// server is slow or failing: poll.js), and keeps in-page links from reloading the page.

import { askForKey, forgetKey, storedKey } from './api.js';
import { callView } from './call.js';
import { campaignView } from './campaign.js';
import { dashboardView } from './dashboard.js';
import { h } from './dom.js';
import { nextDelay } from './poll.js';

let current = null;
let generation = 0;
let timer = null;
/** The generation whose refresh is in flight, so a visibility change cannot start a second. */
let inflight = null;
/** Refreshes that failed in a row (the wait before the next one doubles with each). */
let failures = 0;

function viewFor(pathname) {
  const path = pathname.replace(/\/+$/, '');
  let m = path.match(/^\/ui\/campaigns\/(\d+)$/);
  if (m) return campaignView(Number(m[1]));
  m = path.match(/^\/ui\/calls\/(\d+)$/);
  if (m) return callView(Number(m[1]));
  return dashboardView();
}

function setSync(ok, text) {
  const sync = document.getElementById('sync');
  sync.classList.toggle('sync-ok', ok);
  sync.classList.toggle('sync-error', !ok);
  document.getElementById('sync-text').textContent = text;
}

function renderCrumbs(view) {
  const crumbs = document.getElementById('crumbs');
  const items = [{ label: 'Dashboard', href: '/ui' }, ...(view.crumbs || [])];
  crumbs.replaceChildren(
    ...items.map((c, i) => {
      const last = i === items.length - 1;
      const node = c.href && !last ? h('a', { href: c.href, 'data-nav': true }, c.label) : h('span', { 'aria-current': last ? 'page' : null }, c.label);
      return h('span', { class: 'crumb' }, node);
    }),
  );
  document.title = `${view.title} · voice-agent`;
}

function showError(view, error) {
  let banner = view.el.querySelector(':scope > .load-error');
  if (!banner) {
    banner = h('div', { class: 'load-error', role: 'alert' });
    view.el.prepend(banner);
  }
  banner.textContent = error.status === 404 ? 'Not found: it may have been deleted.' : `Could not load this page: ${error.message}`;
}

/** Refreshes the current view, then schedules the next refresh (never two at once). */
async function tick(gen) {
  if (inflight === gen) return;
  inflight = gen;
  clearTimeout(timer);
  const view = current;
  const started = performance.now();
  try {
    await view.refresh();
    if (gen !== generation) return;
    failures = 0;
    view.el.querySelector(':scope > .load-error')?.remove();
    renderCrumbs(view);
    setSync(true, `Live · ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (gen !== generation) return;
    failures += 1;
    setSync(false, 'Connection problem · retrying');
    showError(view, error);
  } finally {
    if (inflight === gen) inflight = null;
  }
  if (gen !== generation) return;
  timer = setTimeout(() => {
    if (document.visibilityState === 'hidden') return;
    tick(gen);
  }, nextDelay(performance.now() - started, failures));
}

function mount() {
  generation += 1;
  clearTimeout(timer);
  current = viewFor(location.pathname);
  current.setRefresh?.(() => tick(generation));
  document.getElementById('app').replaceChildren(current.el);
  renderCrumbs(current);
  tick(generation);
}

function navigate(href) {
  if (href === location.pathname) return;
  history.pushState(null, '', href);
  window.scrollTo(0, 0);
  mount();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-nav]');
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});

window.addEventListener('popstate', mount);

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') tick(generation);
});

document.getElementById('key-button').addEventListener('click', async () => {
  const had = storedKey();
  forgetKey();
  await askForKey(had ? 'Enter a new API key (the old one was forgotten).' : '');
  tick(generation);
});

mount();
