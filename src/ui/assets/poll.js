// How long the page waits before its next refresh. A refresh every second is right while the
// server answers quickly; when it is slow (a busy database) or failing, asking again at once only
// adds load, so the wait grows with how long the last refresh took and with each failure in a
// row, up to 30 s.

export const POLL_MS = 1000;
export const MAX_WAIT_MS = 30000;

/**
 * The wait after a refresh that took `tookMs` and followed `failures` failed ones (0 when it
 * succeeded): at least a second, twice the time the refresh took, doubled per failure.
 */
export function nextDelay(tookMs, failures) {
  const base = Math.max(POLL_MS, 2 * Math.max(0, tookMs));
  const backoff = base * 2 ** Math.min(Math.max(0, failures), 10);
  return Math.min(MAX_WAIT_MS, Math.round(backoff));
}
