// /docs: renders /openapi.json (operations grouped by tag, then the schemas). Text from the
// document only ever reaches the page as text nodes.
(function () {
  'use strict';

  const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'options', 'head', 'trace'];
  let doc = null;

  // --- DOM helpers -------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  // One line of text with `code` in backticks; everything else stays plain text.
  function inline(text, tag) {
    const node = el(tag || 'span');
    String(text || '').replace(/\s*\n\s*/g, ' ').split('`').forEach((part, i) => {
      if (part) node.append(i % 2 ? el('code', { text: part }) : document.createTextNode(part));
    });
    return node;
  }

  // Paragraphs on blank lines.
  function md(text, cls) {
    const box = el('div', { class: cls || 'desc' });
    if (!text) return box;
    for (const para of String(text).split(/\n\s*\n/)) box.append(inline(para, 'p'));
    return box;
  }

  // --- schemas -----------------------------------------------------------------------------

  const refName = (ref) => ref.split('/').pop();
  const schemaLink = (name) => el('a', { href: '#schema-' + name, text: name });

  function resolve(schema) {
    if (schema && schema.$ref) return (doc.components.schemas || {})[refName(schema.$ref)] || {};
    return schema || {};
  }

  function isNull(s) {
    return s && (s.type === 'null' || (Array.isArray(s.enum) && s.enum.length === 1 && s.enum[0] === null));
  }

  // An inline object worth a table of its own (rather than a one-word type).
  function hasTable(s) {
    return !!s && !s.$ref && (s.properties || s.allOf || (s.oneOf && s.oneOf.filter((x) => !isNull(x)).length > 1));
  }

  // A short type: `string (date-time)`, `Campaign`, `array of Lead`, `map of string → integer`.
  function typeLabel(s) {
    const span = el('span');
    if (!s || Object.keys(s).length === 0) { span.append('any'); return span; }
    if (s.$ref) { span.append(schemaLink(refName(s.$ref))); return span; }
    const alts = s.oneOf || s.anyOf;
    if (alts) {
      const real = alts.filter((x) => !isNull(x));
      real.forEach((x, i) => { if (i) span.append(' | '); span.append(typeLabel(x)); });
      if (real.length < alts.length) span.append(' | null');
      return span;
    }
    if (s.allOf) {
      s.allOf.forEach((x, i) => { if (i) span.append(' + '); span.append(x.$ref ? typeLabel(x) : 'object'); });
      return span;
    }
    let types = Array.isArray(s.type) ? s.type.slice() : (s.type ? [s.type] : []);
    const nullable = types.includes('null');
    types = types.filter((t) => t !== 'null');
    const base = types[0] || (s.properties ? 'object' : 'any');
    if (base === 'array') {
      span.append('array of ', typeLabel(s.items));
    } else if (base === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') {
      span.append('map of string → ', typeLabel(s.additionalProperties));
    } else if (base === 'string' && s.contentMediaType) {
      span.append('file (' + s.contentMediaType + ')');
    } else {
      span.append(base + (s.format ? ' (' + s.format + ')' : ''));
    }
    if (nullable) span.append(' | null');
    return span;
  }

  // Enum values, bounds, defaults and examples under a description.
  function facts(s) {
    const box = el('div');
    const enumValues = (s.enum || []).filter((v) => v !== null);
    if (enumValues.length) {
      box.append(el('div', {}, 'One of: ', enumValues.map((v) => el('span', { class: 'chip', text: String(v) }))));
    }
    const bounds = [];
    if (s.minimum !== undefined) bounds.push('≥ ' + s.minimum);
    if (s.maximum !== undefined) bounds.push('≤ ' + s.maximum);
    if (s.default !== undefined) bounds.push('default ' + JSON.stringify(s.default));
    if (s.additionalProperties === false) bounds.push('no other fields');
    if (bounds.length) box.append(el('div', { class: 'muted', text: bounds.join(', ') }));
    return box;
  }

  function propertyTable(s) {
    const required = new Set(s.required || []);
    const rows = Object.entries(s.properties || {}).map(([name, prop]) => {
      const described = resolve(prop);
      return el('tr', {},
        el('td', { class: 'name' }, el('code', { text: name }),
          required.has(name) ? el('span', { class: 'required', text: 'required' }) : null),
        el('td', { class: 'type' }, typeLabel(prop)),
        el('td', {},
          md(prop.description || (prop.$ref ? '' : described.description)),
          facts(prop.$ref ? {} : prop),
          hasTable(prop) || (prop.items && hasTable(prop.items))
            ? el('div', { class: 'nested' }, schemaBlock(prop.items && hasTable(prop.items) ? prop.items : prop))
            : null));
    });
    if (!rows.length) return el('p', { class: 'muted', text: 'An object (any fields).' });
    return el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Field' }), el('th', { text: 'Type' }),
      el('th', { text: 'Description' }))), el('tbody', {}, rows));
  }

  // A schema in full: a link, a table of fields, or the alternatives.
  function schemaBlock(s) {
    if (!s) return el('p', { class: 'muted', text: 'No body.' });
    if (s.$ref) return el('p', {}, typeLabel(s));
    const box = el('div');
    if (s.allOf) {
      for (const part of s.allOf) {
        if (part.$ref) box.append(el('p', {}, 'Every field of ', typeLabel(part), ', and:'));
        else box.append(schemaBlock(part));
      }
      return box;
    }
    const alts = (s.oneOf || s.anyOf || []).filter((x) => !isNull(x));
    if (alts.length > 1) {
      box.append(el('p', { text: 'One of:' }));
      const list = el('ol');
      for (const alt of alts) list.append(el('li', {}, md(alt.description), hasTable(alt) ? schemaBlock(alt) : el('p', {}, typeLabel(alt))));
      box.append(list);
      return box;
    }
    if (s.properties) { box.append(propertyTable(s)); return box; }
    box.append(el('p', {}, typeLabel(s)));
    box.append(facts(s));
    return box;
  }

  function example(value) {
    if (value === undefined) return null;
    const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
    return el('pre', { class: 'example', text });
  }

  // --- operations --------------------------------------------------------------------------

  function securityLabel(op) {
    const reqs = op.security || doc.security || [];
    const names = reqs.flatMap((r) => Object.keys(r));
    if (!names.length) return null;
    return el('span', { class: 'lock', title: 'Authentication' }, names.join(' or '));
  }

  function securityBlock(op) {
    const reqs = op.security || doc.security || [];
    if (!reqs.length) return null;
    const schemes = (doc.components && doc.components.securitySchemes) || {};
    const list = el('ul');
    for (const req of reqs) {
      for (const name of Object.keys(req)) {
        const s = schemes[name] || {};
        const how = s.type === 'http' ? `HTTP ${s.scheme}` : s.type === 'apiKey' ? `\`${s.name}\` ${s.in === 'query' ? 'query parameter' : s.in}` : s.type;
        list.append(el('li', {}, el('code', { text: name }), ' — ', inline(how + (s.description ? ': ' + s.description : ''))));
      }
    }
    return [el('h4', { text: reqs.length > 1 ? 'Authentication (any one)' : 'Authentication' }), list];
  }

  function parametersBlock(op) {
    const params = (op.parameters || []).map((p) => (p.$ref ? resolve(p) : p));
    if (!params.length) return null;
    const rows = params.map((p) => el('tr', {},
      el('td', { class: 'name' }, el('code', { text: p.name }), p.required ? el('span', { class: 'required', text: 'required' }) : null),
      el('td', { class: 'type' }, el('span', { class: 'chip', text: p.in }), typeLabel(p.schema)),
      el('td', {}, md(p.description), facts(resolve(p.schema)), example(p.example))));
    return [el('h4', { text: 'Parameters' }), el('table', {}, el('thead', {}, el('tr', {},
      el('th', { text: 'Name' }), el('th', { text: 'In, type' }), el('th', { text: 'Description' }))), el('tbody', {}, rows))];
  }

  // Each content type with its schema: inline objects as a table; a named schema as a link,
  // with its fields one click away when `fields` (bodies, successful responses).
  function mediaList(content, fields) {
    return Object.entries(content || {}).map(([type, media]) => {
      const schema = media.schema;
      let more = null;
      if (schema && hasTable(schema)) {
        more = el('div', { class: 'nested' }, schemaBlock(schema));
      } else if (schema && schema.$ref && fields && hasTable(resolve(schema))) {
        more = el('details', { class: 'fields' }, el('summary', { text: 'Fields' }),
          el('div', { class: 'nested' }, schemaBlock(resolve(schema))));
      }
      return el('div', { class: 'media' },
        el('div', {}, el('span', { class: 'chip', text: type }), schema && !hasTable(schema) ? typeLabel(schema) : null),
        more,
        example(media.example));
    });
  }

  function requestBlock(op) {
    const body = op.requestBody && (op.requestBody.$ref ? resolve(op.requestBody) : op.requestBody);
    if (!body) return null;
    return [el('h4', { text: 'Request body' + (body.required ? ' (required)' : '') }), md(body.description), mediaList(body.content, true)];
  }

  function responsesBlock(op) {
    const rows = Object.entries(op.responses || {}).map(([status, res]) => {
      const r = res.$ref ? resolve(res) : res;
      return el('tr', {},
        el('td', { class: 'name' }, el('span', { class: 'status s' + status[0], text: status })),
        el('td', {}, md(r.description), mediaList(r.content, status < '400')));
    });
    return [el('h4', { text: 'Responses' }), el('table', {}, el('tbody', {}, rows))];
  }

  function operation(path, method, op) {
    const id = 'op-' + (op.operationId || method + path);
    const details = el('details', { class: 'op', id, 'data-search': [method, path, op.summary, op.operationId].join(' ').toLowerCase() },
      el('summary', {},
        el('span', { class: 'method ' + method, text: method.toUpperCase() }),
        el('code', { class: 'path', text: path }),
        el('span', { class: 'summary', text: op.summary || '' }),
        securityLabel(op)),
      el('div', { class: 'op-body' },
        md(op.description),
        securityBlock(op),
        parametersBlock(op),
        requestBlock(op),
        responsesBlock(op)));
    return details;
  }

  // --- page --------------------------------------------------------------------------------

  function tagId(name) { return 'tag-' + name.toLowerCase().replace(/[^a-z0-9]+/g, '-'); }

  function render() {
    const main = document.getElementById('main');
    const nav = document.getElementById('nav-list');
    main.replaceChildren();
    nav.replaceChildren();

    const info = doc.info || {};
    document.getElementById('title').textContent = (info.title || 'API') + ' API';
    document.getElementById('version').textContent = 'v' + (info.version || '?') + ' · OpenAPI ' + doc.openapi;
    document.title = (info.title || 'API') + ' API';
    main.append(el('section', { class: 'intro' }, el('h1', { text: info.title || 'API' }), md(info.description)));

    // Operations by tag, tags in the document's order, then any undeclared ones.
    const groups = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || 'other';
        if (!groups.has(tag)) groups.set(tag, { tag: { name: tag }, ops: [] });
        groups.get(tag).ops.push({ path, method, op });
      }
    }
    for (const { tag, ops } of groups.values()) {
      if (!ops.length) continue;
      const section = el('section', { class: 'tag', id: tagId(tag.name) },
        el('h2', { text: tag.name }), md(tag.description, 'tag-desc'));
      const navGroup = el('div', { class: 'nav-group' }, el('div', { class: 'nav-tag' }, el('a', { href: '#' + tagId(tag.name), text: tag.name })));
      for (const { path, method, op } of ops) {
        const node = operation(path, method, op);
        section.append(node);
        navGroup.append(el('a', { class: 'nav-op', href: '#' + node.id, 'data-search': node.dataset.search },
          el('span', { class: 'method ' + method, text: method.toUpperCase() }),
          el('span', { class: 'mono', text: path })));
      }
      main.append(section);
      nav.append(navGroup);
    }

    const schemas = Object.entries((doc.components && doc.components.schemas) || {});
    if (schemas.length) {
      const section = el('section', { id: 'schemas' }, el('h2', { text: 'Schemas' }));
      for (const [name, schema] of schemas) {
        section.append(el('div', { class: 'schema', id: 'schema-' + name },
          el('h3', { class: 'mono', text: name }), md(schema.description), schemaBlock(schema), example(schema.example)));
      }
      main.append(section);
      nav.append(el('div', { class: 'nav-tag' }, el('a', { href: '#schemas', text: 'Schemas' })));
    }
  }

  function applyFilter() {
    const q = document.getElementById('filter').value.trim().toLowerCase();
    for (const node of document.querySelectorAll('[data-search]')) {
      node.hidden = q !== '' && !node.dataset.search.includes(q);
    }
    for (const group of document.querySelectorAll('section.tag, .nav-group')) {
      group.hidden = q !== '' && !group.querySelector('[data-search]:not([hidden])');
    }
  }

  // Opens the operation a link points at.
  function openTarget() {
    const id = decodeURIComponent(location.hash.slice(1));
    const target = id && document.getElementById(id);
    if (target && target.tagName === 'DETAILS') {
      target.open = true;
      target.scrollIntoView();
    }
  }

  function setAll(open) {
    for (const d of document.querySelectorAll('details.op')) d.open = open;
  }

  document.getElementById('filter').addEventListener('input', applyFilter);
  document.getElementById('expand').addEventListener('click', () => setAll(true));
  document.getElementById('collapse').addEventListener('click', () => setAll(false));
  window.addEventListener('hashchange', openTarget);

  fetch('/openapi.json', { headers: { Accept: 'application/json' } })
    .then((res) => {
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res.json();
    })
    .then((json) => {
      doc = json;
      render();
      openTarget();
      document.body.dataset.ready = 'true';
    })
    .catch((e) => {
      const status = document.getElementById('status');
      status.className = 'notice error';
      status.textContent = 'Could not load /openapi.json: ' + e.message;
    });
})();
