// The JSON API client. The page itself is public; the API behind it keeps its API key. On a 401
// the page asks for the key once (every request waiting on the same prompt), keeps it in this
// browser's localStorage and sends it as `Authorization: Bearer <key>`.

const KEY_STORAGE = 'voice-agent.api-key';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The prompt on screen, which every request meeting a 401 waits for. */
let pendingPrompt = null;
/** The key for this page load, also when the browser refuses local storage. */
let sessionKey = null;

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? sessionKey;
  } catch {
    return sessionKey;
  }
}

export function forgetKey() {
  sessionKey = null;
  try {
    localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage disabled: nothing was kept.
  }
}

function keepKey(key) {
  try {
    localStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Storage disabled: the key lasts until the page is closed.
  }
  sessionKey = key;
}

/** Shows the key dialog; resolves once a key was saved. Concurrent callers share one prompt. */
export function askForKey(message) {
  if (pendingPrompt) return pendingPrompt;
  const dialog = document.getElementById('key-dialog');
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const error = document.getElementById('key-error');
  error.textContent = message || '';
  error.hidden = !message;
  input.value = '';
  pendingPrompt = new Promise((resolve) => {
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      keepKey(key);
      form.removeEventListener('submit', onSubmit);
      dialog.close();
      pendingPrompt = null;
      resolve();
    };
    form.addEventListener('submit', onSubmit);
    dialog.showModal();
    input.focus();
  });
  return pendingPrompt;
}

/** Calls the API; a 401 asks for the key and retries. Errors carry the API's error body. */
export async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const key = storedKey();
    const headers = { Accept: 'application/json' };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    if (res.status === 401) {
      await askForKey(key ? 'That key was refused. Check the service’s API_KEY and try again.' : '');
      continue;
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      throw new ApiError(res.status, err.code || 'http_error', err.message || `HTTP ${res.status}`);
    }
    return data;
  }
}

/** Like `api`, but an endpoint this server does not have (404 `not_found`) gives `null`. */
export async function optional(path) {
  try {
    return await api(path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

// Escape would close the dialog with every request still waiting for a key: keep it open.
document.getElementById('key-dialog').addEventListener('cancel', (event) => event.preventDefault());
