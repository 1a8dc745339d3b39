// The bulkhost console: one script for two kinds of page.
//
// - `/console/` (body[data-mode=console]): a sign-in, then hash-routed pages over the same APIs
//   the clients use: collections, the change feed, exports, batches, plugins, and the operator's
//   page. It sends `Authorization: Basic` itself, from credentials kept in sessionStorage.
// - A collection's `.api` form (body[data-mode=browsable]): the server renders the JSON response
//   into `#response`, readable without JavaScript; this script turns it into DRF's browsable
//   API. The browser already holds that page's Basic credentials, so requests go same-origin.
//
// The server embeds this file as it is: no framework, no build step, nothing fetched from
// elsewhere.

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Children as `h` and `fill` take them: nested arrays flattened, nothing left out. */
const present = (children) => children.flat(Infinity).filter((child) => child != null && child !== false);

/**
 * Makes an element. Props are attributes (`testid` is `data-testid`; a function is an event
 * listener; `true` is an empty attribute; `null`, `undefined` and `false` leave it out);
 * children are nodes, text, arrays of them, or nothing.
 */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value == null || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, ''), value);
    else el.setAttribute(key === 'testid' ? 'data-testid' : key, value === true ? '' : String(value));
  }
  el.append(...present(children));
  // A select's value can only be chosen once its options are there.
  if (tag === 'select' && props?.value != null) el.value = props.value;
  return el;
}

/** Replaces an element's content with children as `h` takes them (arrays, nothing). */
function fill(el, ...children) {
  el.replaceChildren(...present(children));
}

const numberFormat = new Intl.NumberFormat('en');
const formatCount = (n) => numberFormat.format(n);
const plural = (n, one, many = `${one}s`) => `${formatCount(n)} ${n === 1 ? one : many}`;
const enc = encodeURIComponent;
const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
/** Bytes in the largest binary unit that keeps the number at least 1. */
function formatBytes(n) {
  let unit = 0;
  while (n >= 1024 && unit < BYTE_UNITS.length - 1) { n /= 1024; unit += 1; }
  return `${unit ? n.toFixed(n < 10 ? 1 : 0) : n} ${BYTE_UNITS[unit]}`;
}

/** Server times are ISO-like strings; people read them better without the `T`. */
const formatTime = (value) => (value ? String(value).replace('T', ' ').replace(/\.\d+Z?$|Z$/, '') : '—');

const TONES = {
  OK: 'ok', PENDING: 'info', ERROR: 'error',
  finished: 'ok', processing: 'info', pending: 'muted',
  create: 'ok', update: 'info', delete: 'error',
};

function badge(label, tone = TONES[label] ?? 'muted', testid = null) {
  return h('span', { class: `badge badge-${tone}`, testid }, label);
}

function statusBadge(code) {
  const tone = code >= 500 ? 'error' : code >= 400 ? 'warn' : code >= 200 && code < 300 ? 'ok' : 'muted';
  return badge(String(code), tone);
}

function alertBox(tone, content, testid = null) {
  const role = tone === 'error' ? 'alert' : 'status';
  return h('div', { class: `alert alert-${tone}`, role, testid }, content);
}

/** A titled box; `flush` for one that holds just a table, edge to edge. */
function panel(title, { actions = null, testid = null, className = '', flush = false } = {}, ...body) {
  return h('section', { class: `panel ${className}${flush ? ' panel-flush' : ''}`, testid },
    h('header', { class: 'panel-head' }, h('h2', {}, title), actions && h('div', { class: 'panel-actions' }, actions)),
    h('div', { class: 'panel-body' }, body));
}

function pageHead(title, subtitle = null, actions = null) {
  return h('header', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), subtitle && h('p', { class: 'subtitle' }, subtitle)),
    actions && h('div', { class: 'page-actions' }, actions));
}

function dataTable(columns, rows, { testid = null, empty = 'Nothing here yet.' } = {}) {
  const body = rows.length ? rows : [h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty))];
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data', testid },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, body)));
}

/** A progress bar; without a known total it shows activity, not a made-up fraction. */
function progressBar(done, total, { state = 'PENDING', testid = 'progress' } = {}) {
  const known = total > 0;
  const fraction = state === 'OK' ? 1 : known ? Math.min(1, done / total) : 0;
  return h('div', {
    class: `progress progress-${state.toLowerCase()}${known || state !== 'PENDING' ? '' : ' progress-indeterminate'}`,
    role: 'progressbar', testid, 'data-state': state,
    'aria-valuemin': 0, 'aria-valuemax': known ? total : null, 'aria-valuenow': known ? done : null,
    'aria-valuetext': known ? `${formatCount(done)} of ${formatCount(total)}` : plural(done, 'record'),
  }, h('span', { class: 'progress-fill', style: `width: ${(fraction * 100).toFixed(1)}%` }));
}

/** JSON as DRF shows it: indented, coloured, with URLs as links. Built as nodes, never as HTML. */
function jsonNodes(value, depth = 0) {
  const pad = '  '.repeat(depth + 1);
  const close = '  '.repeat(depth);
  if (Array.isArray(value)) {
    if (!value.length) return ['[]'];
    return ['[\n', value.map((item, i) => [pad, jsonNodes(item, depth + 1), i < value.length - 1 ? ',\n' : '\n']), close, ']'];
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    if (!entries.length) return ['{}'];
    return ['{\n', entries.map(([key, item], i) => [
      pad, h('span', { class: 'j-key' }, JSON.stringify(key)), ': ', jsonNodes(item, depth + 1),
      i < entries.length - 1 ? ',\n' : '\n',
    ]), close, '}'];
  }
  if (typeof value === 'string') {
    const text = JSON.stringify(value);
    return [/^https?:\/\//.test(value) ? h('a', { class: 'j-str', href: value }, text) : h('span', { class: 'j-str' }, text)];
  }
  return [h('span', { class: typeof value === 'number' ? 'j-num' : 'j-lit' }, String(value))];
}

const jsonBlock = (value, testid = null) => h('pre', { class: 'json', testid }, jsonNodes(value));

/** A value in a table cell: nested data compactly, the whole of it as a tooltip. */
function cellValue(value) {
  if (value == null) return h('span', { class: 'null' }, 'null');
  if (Array.isArray(value)) return h('span', { class: 'nested', title: JSON.stringify(value, null, 2) }, plural(value.length, 'item'));
  if (typeof value === 'object') return h('span', { class: 'nested', title: JSON.stringify(value, null, 2) }, '{…}');
  return String(value);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Calls `step` until the page goes away; `step` answers how long to wait before the next call
 * (null: stop). A failing step is reported and tried again, so a restarting server does not end
 * a live view. Answers a function that cuts the current wait short (something changed).
 */
function keepPolling(signal, step, onError) {
  // A wake-up during a step (its answer may predate the change) skips the next wait.
  let woken = false;
  let wake = () => { woken = true; };
  (async () => {
    while (!signal?.aborted) {
      let wait = 5000;
      try {
        wait = await step();
      } catch (error) {
        if (signal?.aborted) return;
        onError?.(error);
      }
      if (wait == null) return;
      if (!woken) {
        await new Promise((resolve) => {
          wake = resolve;
          sleep(wait, signal).then(resolve);
        });
      }
      woken = false;
      wake = () => { woken = true; };
    }
  })();
  return () => wake();
}

// ---------------------------------------------------------------------------------------------
// Storage: everything lives in sessionStorage, so closing the tab signs out.

const store = {
  get(key, fallback) {
    try {
      return JSON.parse(sessionStorage.getItem(`bulkhost.${key}`)) ?? fallback;
    } catch {
      return fallback;
    }
  },
  set: (key, value) => sessionStorage.setItem(`bulkhost.${key}`, JSON.stringify(value)),
  remove: (key) => sessionStorage.removeItem(`bulkhost.${key}`),
};

// ---------------------------------------------------------------------------------------------
// HTTP

/** A refused request, in words a person can act on. */
class HttpError extends Error {
  constructor(status, data) {
    super(errorText(data) || `The server answered ${status}.`);
  }
}

/** Each dialect says what went wrong in its own shape; this makes one sentence of any of them. */
function errorText(data) {
  if (data == null || data === '') return '';
  if (typeof data === 'string') return data.slice(0, 500);
  if (typeof data.error === 'string') return data.error; // Winfra XXL, plugins, operator
  if (data.error?.message) return `${data.error.code}: ${data.error.message}`; // LogiCommerce
  if (typeof data.detail === 'string') return data.detail; // DRF
  if (data.winstrom?.message) return data.winstrom.message; // ABRA Flexi
  return flattenErrors(data).join(' ');
}

/** DRF's nested field errors as lines: `products[0].stock_qty: A valid number is required.` */
function flattenErrors(value, path = '') {
  const at = (message) => (path ? `${path}: ${message}` : message);
  if (value == null) return [];
  if (typeof value !== 'object') return [at(String(value))];
  if (Array.isArray(value)) {
    return value.every((item) => typeof item !== 'object')
      ? value.map((item) => at(String(item)))
      : value.flatMap((item, i) => flattenErrors(item, `${path}[${i}]`));
  }
  return Object.entries(value).flatMap(([key, item]) => flattenErrors(item, path ? `${path}.${key}` : key));
}

async function readBody(response) {
  const type = response.headers.get('content-type') ?? '';
  const text = await response.text();
  if (!type.includes('json')) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The way a page talks to the server. With `authorization` (the console) it sends the header
 * itself and leaves the browser's credential store alone (`omit`), so a 401 never pops up the
 * browser's own sign-in dialog; without it (a `.api` page) it lets the browser send the page's
 * credentials. Requests end with the page (`signal`).
 */
function makeClient({ authorization = null, signal = null, onUnauthorized = null } = {}) {
  async function send(method, url, { json, body, headers = {} } = {}) {
    const init = { method, headers: { ...headers }, signal, credentials: authorization ? 'omit' : 'same-origin' };
    if (authorization) init.headers.Authorization = authorization;
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers['Content-Type'] = 'application/json';
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(url, init);
    if (response.status === 401) onUnauthorized?.();
    return response;
  }
  async function call(method, url, options) {
    const response = await send(method, url, options);
    return { ok: response.ok, status: response.status, headers: response.headers, data: await readBody(response) };
  }
  async function get(url) {
    const answer = await call('GET', url);
    if (!answer.ok) throw new HttpError(answer.status, answer.data);
    return answer.data;
  }
  return { send, call, get };
}

function basicAuthorization(user, password) {
  // btoa takes bytes as Latin-1 characters; UTF-8 first, so any password works.
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/** Saves what the console fetched with its credentials; a plain link could not send them. */
async function download(client, url, filename) {
  const response = await client.send('GET', url);
  if (!response.ok) throw new HttpError(response.status, await readBody(response));
  const href = URL.createObjectURL(await response.blob());
  const link = h('a', { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The browser reads the blob after the click returns; free it a while later.
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

/** A link that downloads through `download` but is still a real link (copy, hover). */
function downloadLink(client, url, filename, label, testid) {
  const link = h('a', { class: 'button button-small', href: url, download: filename, testid }, label);
  link.addEventListener('click', async (event) => {
    event.preventDefault();
    link.setAttribute('aria-busy', 'true');
    try {
      await download(client, url, filename);
      link.removeAttribute('title');
    } catch (error) {
      link.title = error.message;
      link.classList.add('button-failed');
    } finally {
      link.removeAttribute('aria-busy');
    }
  });
  return link;
}

// ---------------------------------------------------------------------------------------------
// Server-sent events over fetch: EventSource cannot send an Authorization header.

/** The events of a `text/event-stream` body, as `{event, id, data}`. */
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    // The whole buffer is normalised each time, so a CRLF split between chunks is still caught.
    buffer = (buffer + value).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) yield event;
    }
  }
}

function parseEvent(block) {
  let event = 'message';
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue; // comments keep idle connections open
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  }
  return data.length || event !== 'message' ? { event, id, data: data.join('\n') } : null;
}

// ---------------------------------------------------------------------------------------------
// Forms built from metadata: a collection's OPTIONS fields and a data set's parameters share
// one field component, so both show types, hints and errors the same way.

const SCALAR_TYPES = new Set(['string', 'integer', 'decimal', 'float', 'boolean', 'datetime', 'date', 'choice']);

const isNested = (meta) => Boolean(meta.child || meta.children) || /nested|list|json/.test(meta.type);

/** A skeleton of a nested value, for the JSON textarea's placeholder. */
function templateOf(meta) {
  if (meta.child) return [templateOf(meta.child)];
  if (meta.children) {
    return Object.fromEntries(Object.entries(meta.children)
      .filter(([, child]) => !child.read_only)
      .map(([name, child]) => [name, templateOf(child)]));
  }
  return { integer: 0, decimal: '0.00', boolean: false, datetime: '2025-01-01T00:00:00' }[meta.type] ?? '';
}

function hintOf(meta) {
  const parts = [];
  if (meta.help_text) parts.push(meta.help_text);
  if (meta.max_length) parts.push(`at most ${meta.max_length} characters`);
  if (meta.decimal_places != null) parts.push(`${meta.decimal_places} decimal places`);
  if (isNested(meta)) parts.push('JSON');
  return parts.join(' · ');
}

function controlFor(meta, attrs) {
  if (isNested(meta)) {
    return h('textarea', { ...attrs, rows: 4, class: 'mono', spellcheck: 'false', placeholder: JSON.stringify(templateOf(meta)) });
  }
  const blank = h('option', { value: '' }, meta.default != null ? `default (${meta.default})` : '—');
  if (meta.type === 'boolean') {
    return h('select', attrs, blank, h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
  }
  if (meta.choices?.length) {
    return h('select', attrs, blank, meta.choices.map((c) => h('option', { value: c.value }, c.display_name ?? c.value)));
  }
  const type = { integer: 'number', datetime: 'datetime-local', date: 'date' }[meta.type] ?? 'text';
  return h('input', {
    ...attrs, type,
    // Seconds matter to the APIs' datetimes; whole numbers only for integers.
    step: meta.type === 'integer' || meta.type === 'datetime' ? '1' : null,
    inputmode: meta.type === 'decimal' ? 'decimal' : null,
    placeholder: meta.default != null ? `default ${meta.default}` : null,
  });
}

/** The value a control holds, undefined when left blank (the server then applies its rules). */
function readValue(meta, control) {
  const raw = control.value;
  if (raw.trim() === '') return undefined;
  if (isNested(meta)) {
    try {
      return JSON.parse(raw);
    } catch (error) {
      throw new Error(`Not valid JSON: ${error.message}`);
    }
  }
  if (meta.type === 'boolean') return raw === 'true';
  if (meta.type === 'integer') {
    const n = Number(raw);
    if (!Number.isSafeInteger(n)) throw new Error('A valid integer is required.');
    return n;
  }
  // Decimals stay text, as DRF takes them, so no digit is lost to floating point.
  return raw;
}

/**
 * One labelled field: `field-<name>` is its control and `error-<name>` its messages (another
 * `prefix` for other forms), right beside it.
 */
function formField(name, meta, prefix = 'field') {
  const id = `${prefix}-${name}`;
  const errorId = `${id}-errors`;
  const control = controlFor(meta, { id, name, testid: id, 'aria-describedby': errorId, required: meta.required || null });
  const errors = h('ul', { class: 'field-errors', id: errorId, testid: prefix === 'field' ? `error-${name}` : `${prefix}-error-${name}`, hidden: true });
  const hint = hintOf(meta);
  const row = h('div', { class: 'form-row' },
    h('label', { for: id }, meta.label ?? name, meta.required && h('span', { class: 'required', title: 'required' }, ' *')),
    h('div', { class: 'form-control' }, control, hint && h('small', { class: 'hint' }, hint), errors));
  return {
    name,
    row,
    read: () => readValue(meta, control),
    showErrors(messages) {
      fill(errors, ...messages.map((m) => h('li', {}, m)));
      errors.hidden = !messages.length;
      row.classList.toggle('has-error', messages.length > 0);
      control.setAttribute('aria-invalid', String(messages.length > 0));
    },
  };
}

/** Reads every field into an object; fields that cannot be read show why and stop the post. */
function readFields(fields) {
  const body = {};
  let valid = true;
  for (const field of fields) {
    try {
      const value = field.read();
      if (value !== undefined) body[field.name] = value;
      field.showErrors([]);
    } catch (error) {
      field.showErrors([error.message]);
      valid = false;
    }
  }
  return valid ? body : null;
}

/** Puts DRF field errors beside their fields; answers the messages no field takes. */
function placeErrors(data, fields) {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return flattenErrors(data);
  const byName = new Map(fields.map((field) => [field.name, field]));
  const rest = [];
  for (const [key, value] of Object.entries(data)) {
    const field = byName.get(key);
    if (field) field.showErrors(flattenErrors(value));
    else if (key === 'non_field_errors' || key === 'detail') rest.push(...flattenErrors(value));
    else rest.push(...flattenErrors(value, key));
  }
  return rest;
}

function tabs(items) {
  const buttons = items.map((item, i) => h('button', {
    type: 'button', role: 'tab', class: 'tab', 'aria-selected': String(i === 0), testid: `tab-${item.id}`,
    onclick: () => select(i),
  }, item.label));
  const panels = items.map((item, i) => h('div', { role: 'tabpanel', hidden: i !== 0 }, item.content));
  function select(index) {
    buttons.forEach((b, i) => b.setAttribute('aria-selected', String(i === index)));
    panels.forEach((p, i) => { p.hidden = i !== index; });
  }
  return [h('div', { class: 'tabs', role: 'tablist' }, buttons), panels];
}

// ---------------------------------------------------------------------------------------------
// A collection in DRF's browsable manner. Both kinds of page use it: `hrefFor(params)` is the
// page's link to another page of the list (a `.api` URL or a console route), `docHref(url)` its
// link to one document, `client` its way of authenticating.

const collectionUrl = (slug) => `/api/v1/${enc(slug)}/`;
const PAGE_SIZES = [10, 25, 50, 100, 500];
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/** The list query the JSON API takes: the page's own query less `format`. */
function apiQuery(params) {
  const query = new URLSearchParams(params);
  query.delete('format');
  const text = query.toString();
  return text ? `?${text}` : '';
}

const fetchPage = (client, slug, params) => client.call('GET', collectionUrl(slug) + apiQuery(params));

async function loadOptions(client, url) {
  try {
    const answer = await client.call('OPTIONS', url);
    return answer.ok && typeof answer.data === 'object' ? answer.data : null;
  } catch {
    return null; // the list still works without its metadata
  }
}

/** Page size and number as the server computes them (bad sizes fall back, large ones cap). */
function pageInfo(params, data) {
  const asked = Number.parseInt(params.get('page_size'), 10);
  const size = asked > 0 ? Math.min(asked, MAX_PAGE_SIZE) : DEFAULT_PAGE_SIZE;
  const pages = Math.max(1, Math.ceil(data.count / size));
  const raw = params.get('page');
  const page = raw === 'last' ? pages : Math.max(1, Number.parseInt(raw, 10) || 1);
  return { pages, page };
}

/** Fields to order by: the scalar fields of OPTIONS, else those of the first result. */
function orderingFields(options, results) {
  const post = options?.actions?.POST;
  if (post) {
    return Object.entries(post)
      .filter(([, meta]) => SCALAR_TYPES.has(meta.type))
      .map(([name, meta]) => ({ name, label: meta.label ?? name }));
  }
  const first = results?.[0] ?? {};
  return Object.keys(first)
    .filter((key) => key !== 'url' && (first[key] === null || typeof first[key] !== 'object'))
    .map((name) => ({ name, label: name }));
}

/** DRF's page links: 1 … 4 5 [6] 7 8 … 20. */
function pageWindow(page, pages) {
  const wanted = [1, pages];
  for (let n = page - 2; n <= page + 2; n += 1) if (n >= 1 && n <= pages) wanted.push(n);
  const sorted = [...new Set(wanted)].sort((a, b) => a - b);
  return sorted.flatMap((n, i) => (i && n - sorted[i - 1] > 1 ? ['…', n] : [n]));
}

function pagination(view, data, { page, pages }) {
  if (pages <= 1) return null;
  const at = (n) => {
    const params = new URLSearchParams(view.params);
    if (n === 1) params.delete('page');
    else params.set('page', String(n));
    return params;
  };
  // Previous and next are the server's own links, kept in this page's form.
  const fromLink = (url) => (url ? new URL(url, location.href).searchParams : null);
  const link = (params, label, testid, extra = {}) => (params
    ? h('a', { href: view.hrefFor(params), testid, ...extra }, label)
    : h('span', { class: 'disabled', 'aria-disabled': 'true', testid }, label));
  return h('nav', { class: 'pagination', 'aria-label': 'Pages', testid: 'pagination' },
    link(page > 1 ? at(1) : null, '« First', 'page-first'),
    link(fromLink(data.previous), '‹ Previous', 'page-prev', { rel: 'prev' }),
    pageWindow(page, pages).map((n) => (n === '…'
      ? h('span', { class: 'gap' }, '…')
      : link(at(n), String(n), `page-${n}`, { 'aria-current': n === page ? 'page' : null, 'aria-label': `Page ${n}` }))),
    link(fromLink(data.next), 'Next ›', 'page-next', { rel: 'next' }),
    link(page < pages ? at(pages) : null, 'Last »', 'page-last'));
}

function searchToolbar(view, fields) {
  const { params } = view;
  const current = params.get('ordering') ?? '';
  const size = params.get('page_size') ?? '';
  const known = fields.flatMap((f) => [f.name, `-${f.name}`]);
  const search = h('input', {
    type: 'search', id: 'search', name: 'search', value: params.get('search') ?? '',
    placeholder: 'Search…', testid: 'search', 'aria-label': 'Search',
  });
  const ordering = h('select', { id: 'ordering', name: 'ordering', testid: 'ordering', 'aria-label': 'Ordering', value: current },
    h('option', { value: '' }, 'Default order'),
    // An ordering typed into the URL (several fields) stays selectable.
    current && !known.includes(current) ? h('option', { value: current }, current) : null,
    fields.map((f) => [h('option', { value: f.name }, `${f.label} ↑`), h('option', { value: `-${f.name}` }, `${f.label} ↓`)]));
  const pageSize = h('select', { id: 'page-size', name: 'page_size', testid: 'page-size', 'aria-label': 'Page size', value: size },
    h('option', { value: '' }, `${DEFAULT_PAGE_SIZE} per page`),
    [...new Set([...PAGE_SIZES, ...(size ? [Number(size)] : [])])]
      .filter((n) => n !== DEFAULT_PAGE_SIZE).sort((a, b) => a - b)
      .map((n) => h('option', { value: String(n) }, `${n} per page`)));

  function submit(event) {
    event.preventDefault();
    const next = new URLSearchParams(params);
    for (const [key, control] of [['search', search], ['ordering', ordering], ['page_size', pageSize]]) {
      if (control.value.trim()) next.set(key, control.value.trim());
      else next.delete(key);
    }
    next.delete('page'); // a new query starts at its first page
    location.assign(view.hrefFor(next));
  }
  ordering.addEventListener('change', submit);
  pageSize.addEventListener('change', submit);

  const cleared = new URLSearchParams(params);
  ['search', 'ordering', 'page'].forEach((key) => cleared.delete(key));
  return h('form', { class: 'toolbar', role: 'search', onsubmit: submit },
    h('div', { class: 'search-box' }, search, h('button', { type: 'submit', class: 'button', testid: 'search-submit' }, 'Search')),
    ordering, pageSize,
    params.get('search') || current ? h('a', { href: view.hrefFor(cleared), class: 'clear', testid: 'search-clear' }, 'Clear') : null);
}

function resultsTable(view, results, fields) {
  const columns = [...new Set(results.flatMap((doc) => Object.keys(doc)))];
  const orderable = new Set(fields.map((f) => f.name));
  const current = view.params.get('ordering') ?? '';
  const header = (key) => {
    if (key === 'url') return h('th', { scope: 'col', class: 'col-url' }, 'id');
    if (!orderable.has(key)) return h('th', { scope: 'col' }, key);
    // A click orders by the column, a second click reverses it, as in admin lists.
    const next = new URLSearchParams(view.params);
    next.set('ordering', current === key ? `-${key}` : key);
    next.delete('page');
    const sort = current === key ? 'ascending' : current === `-${key}` ? 'descending' : null;
    return h('th', { scope: 'col', 'aria-sort': sort },
      h('a', { href: view.hrefFor(next), class: 'sort' }, key, sort && h('span', { class: 'arrow' }, sort === 'ascending' ? ' ▲' : ' ▼')));
  };
  const cell = (doc, key) => (key === 'url' && typeof doc.url === 'string'
    ? h('td', { class: 'col-url' }, h('a', { href: view.docHref(doc.url), title: doc.url }, lastSegment(doc.url)))
    : h('td', {}, cellValue(doc[key])));
  if (!results.length) {
    const searched = view.params.get('search');
    return h('div', { class: 'empty-state', testid: 'no-results' }, searched ? `No results match “${searched}”.` : 'This collection is empty.');
  }
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data results', testid: 'results' },
      h('thead', {}, h('tr', {}, columns.map(header))),
      h('tbody', {}, results.map((doc) => h('tr', { testid: 'result-row' }, columns.map((key) => cell(doc, key)))))));
}

function lastSegment(url) {
  const path = new URL(url, location.href).pathname.replace(/\/$/, '');
  return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
}

function resultsSection(view, answer, fields) {
  if (!answer.ok) {
    const first = new URLSearchParams(view.params);
    first.delete('page');
    return [
      alertBox('error', `${answer.status}: ${errorText(answer.data) || 'the list could not be read.'}`, 'results-error'),
      answer.status === 404 ? h('p', {}, h('a', { href: view.hrefFor(first) }, 'Go to the first page')) : null,
    ];
  }
  const { data } = answer;
  const info = pageInfo(view.params, data);
  return [
    h('div', { class: 'results-meta' },
      h('strong', { testid: 'result-count' }, plural(data.count, 'result')),
      h('span', { class: 'muted', testid: 'page-indicator' }, `Page ${info.page} of ${info.pages}`)),
    resultsTable(view, data.results, fields),
    pagination(view, data, info),
    h('details', { class: 'raw' }, h('summary', {}, 'Response JSON'), jsonBlock(data, 'response-json')),
  ];
}

function optionsPanel(options) {
  return h('details', { class: 'panel options', testid: 'options-panel' },
    h('summary', {}, h('span', { class: 'method' }, 'OPTIONS'), ' Metadata of the collection'),
    options ? jsonBlock(options, 'options-json') : h('p', { class: 'muted' }, 'The server gave no metadata.'));
}

/** A raw-data template of the writable fields, as DRF prefills its raw form. */
function rawTemplate(post) {
  return JSON.stringify(templateOf({ children: post }), null, 2);
}

/**
 * The POST form built from OPTIONS `actions.POST`, with DRF's "Raw data" beside it. A 400
 * puts each field's messages beside that field (non-field ones on top); a 201 shows what was
 * written and reloads the list.
 */
function documentForm(post, { client, url, onWritten }) {
  const fields = Object.entries(post).filter(([, meta]) => !meta.read_only).map(([name, meta]) => formField(name, meta));
  const messages = h('div', { class: 'form-messages', 'aria-live': 'polite' });
  const raw = h('textarea', { class: 'mono', rows: 12, spellcheck: 'false', id: 'raw-content', testid: 'raw-content', 'aria-label': 'Raw JSON content' }, rawTemplate(post));

  async function send(body, inline, button) {
    fields.forEach((field) => field.showErrors([]));
    button.disabled = true;
    try {
      show(await client.call('POST', url, { json: body }), inline);
    } catch (error) {
      fill(messages, alertBox('error', error.message, 'form-errors'));
    } finally {
      button.disabled = false;
    }
  }

  function show(answer, inline) {
    if (answer.ok) {
      const { inserted = 0, updated = 0 } = answer.data ?? {};
      fill(messages, alertBox('ok', [
        h('strong', {}, `${answer.status} Saved: `), `${plural(inserted, 'document')} inserted, ${formatCount(updated)} updated.`,
        jsonBlock(answer.data),
      ], 'post-result'));
      onWritten();
      return;
    }
    const rest = answer.status === 400 && inline ? placeErrors(answer.data, fields) : flattenErrors(answer.data);
    const summary = rest.length ? h('ul', {}, rest.map((m) => h('li', {}, m))) : ' See the messages beside the fields.';
    fill(messages, alertBox('error', [h('strong', {}, `${answer.status}: `), summary], 'form-errors'));
  }

  const formButton = h('button', { type: 'submit', class: 'button button-primary', testid: 'post-submit' }, 'POST');
  const form = h('form', {
    class: 'doc-form', novalidate: true, testid: 'post-form',
    onsubmit: (event) => {
      event.preventDefault();
      const body = readFields(fields);
      if (body) send(body, true, formButton);
    },
  }, fields.map((field) => field.row), h('div', { class: 'form-actions' }, formButton));

  const rawButton = h('button', { type: 'submit', class: 'button button-primary', testid: 'raw-submit' }, 'POST');
  const rawForm = h('form', {
    class: 'raw-form',
    onsubmit: (event) => {
      event.preventDefault();
      let body;
      try {
        body = JSON.parse(raw.value);
      } catch (error) {
        fill(messages, alertBox('error', `Not valid JSON: ${error.message}`, 'form-errors'));
        return;
      }
      send(body, false, rawButton);
    },
  }, raw, h('small', { class: 'hint' }, 'One document, or a list of documents written together.'), h('div', { class: 'form-actions' }, rawButton));

  return panel([h('span', { class: 'method method-post' }, 'POST'), ' Add or replace a document'], { testid: 'post-panel', className: 'post-panel' },
    messages, tabs([{ id: 'form', label: 'HTML form', content: form }, { id: 'raw', label: 'Raw data', content: rawForm }]));
}

function requestLine(method, url) {
  return h('div', { class: 'request-line', testid: 'request-line' }, h('span', { class: `method method-${method.toLowerCase()}` }, method), h('code', {}, url));
}

/** Renders a collection's list view into `root`; `initial` is a response already in hand. */
async function collectionView(root, { slug, params, client, hrefFor, docHref, initial = null, title = null }) {
  const view = { params, hrefFor, docHref };
  fill(root, h('p', { class: 'loading' }, 'Loading…'));
  const [options, first] = await Promise.all([
    loadOptions(client, collectionUrl(slug)),
    initial ?? fetchPage(client, slug, params),
  ]);
  const fields = orderingFields(options, first.data?.results);
  const results = h('div', { class: 'results-area', 'aria-live': 'polite' }, resultsSection(view, first, fields));
  const reload = async () => fill(results, ...resultsSection(view, await fetchPage(client, slug, params), fields));
  const post = options?.actions?.POST;
  fill(root,
    pageHead(options?.name ?? title ?? slug, options?.description || null),
    requestLine('GET', collectionUrl(slug) + apiQuery(params)),
    searchToolbar(view, fields),
    results,
    optionsPanel(options),
    post ? documentForm(post, { client, url: collectionUrl(slug), onWritten: reload }) : null,
  );
}

function fieldsTable(doc) {
  return h('table', { class: 'data fields', testid: 'document' },
    h('tbody', {}, Object.entries(doc).map(([key, value]) => h('tr', {},
      h('th', { scope: 'row' }, key),
      h('td', {}, value !== null && typeof value === 'object' ? jsonBlock(value) : cellValue(value))))));
}

/** One document, as DRF's detail view: its fields, its JSON, and DELETE. */
async function documentView(root, { slug, id, client, listHref, initial = null }) {
  const url = `${collectionUrl(slug)}${enc(id)}/`;
  const answer = initial ?? await client.call('GET', url);
  const status = h('div', { 'aria-live': 'polite' });
  const remove = h('button', {
    type: 'button', class: 'button button-danger', testid: 'delete-document',
    onclick: async () => {
      if (!window.confirm(`Delete ${slug} ${id}?`)) return;
      const gone = await client.call('DELETE', url);
      if (gone.ok) location.assign(listHref);
      else fill(status, alertBox('error', `${gone.status}: ${errorText(gone.data)}`));
    },
  }, 'DELETE');
  fill(root,
    pageHead(`${slug} · ${id}`, null, [h('a', { class: 'button', href: listHref }, '← Back to the list'), answer.ok ? remove : null]),
    requestLine('GET', url),
    status,
    answer.ok
      ? [fieldsTable(answer.data), h('details', { class: 'raw' }, h('summary', {}, 'Response JSON'), jsonBlock(answer.data))]
      : alertBox('error', `${answer.status}: ${errorText(answer.data)}`, 'results-error'),
  );
}

// ---------------------------------------------------------------------------------------------
// Browsable mode: a `.api` page of the collections dialect.

/** `/api/v1/products/`, `/api/v1/products.api`, `/api/v1/products/1/.api/` → [slug, id?]. */
function collectionPath(pathname) {
  const trimmed = pathname.replace(/\/?\.api\/?$/, '').replace(/^\/api\/v1\//, '').replace(/\/$/, '');
  return trimmed.split('/').filter(Boolean).map(decodeURIComponent);
}

function bootBrowsable() {
  const source = document.getElementById('response');
  const heading = document.querySelector('h1')?.textContent ?? '';
  let data;
  try {
    data = JSON.parse(source.textContent);
  } catch {
    return; // leave the server's readable page as it is
  }
  const [slug, id] = collectionPath(location.pathname);
  const params = new URLSearchParams(location.search);
  const client = makeClient();
  const root = h('main', { class: 'content browsable', id: 'main' });
  const listHref = `${collectionUrl(slug)}?format=api`;
  fill(document.body,
    h('header', { class: 'topbar' },
      brand(),
      h('span', { class: 'topbar-label' }, 'Browsable API'),
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' },
        h('a', { href: listHref }, slug), id ? [' / ', h('span', {}, id)] : null),
      h('a', { class: 'topbar-link', href: '/console/' }, 'Console'),
      h('a', { class: 'topbar-link', href: '/docs' }, 'API reference')),
    root);
  // A list without `results` is no list: the view then shows what the answer says.
  const initial = { ok: Boolean(id) || Array.isArray(data?.results), status: 200, data };
  const done = id
    ? documentView(root, { slug, id, client, listHref, initial })
    : collectionView(root, {
      slug, params, client, initial, title: heading,
      hrefFor: (next) => `${location.pathname}?${next}`,
      docHref: (url) => `${new URL(url, location.href).pathname}?format=api`,
    });
  done.catch((error) => root.append(alertBox('error', error.message)));
}

function brand() {
  return h('a', { class: 'brand', href: '/console/', 'aria-label': 'bulkhost console' },
    logo(), h('span', {}, 'bulkhost'));
}

function logo() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'logo');
  // Three stacked slabs: bulk data, one layer over another.
  for (const [y, opacity] of [[4, 1], [10, 0.75], [16, 0.5]]) {
    const rect = document.createElementNS(ns, 'rect');
    Object.entries({ x: 3, y, width: 18, height: 4.5, rx: 1.5, fill: 'currentColor', opacity }).forEach(([k, v]) => rect.setAttribute(k, v));
    svg.append(rect);
  }
  return svg;
}

// ---------------------------------------------------------------------------------------------
// Console mode: session and sign-in

/** The tenant's collections, from the OpenAPI document's collection paths. */
function collectionsOf(doc) {
  return Object.keys(doc.paths ?? {})
    .map((path) => /^\/api\/v1\/([^/{}]+)\/$/.exec(path))
    .filter((match) => match && doc.paths[match[0]].post)
    .map(([, slug]) => ({ slug, description: doc.components?.schemas?.[`${slug}.document`]?.description ?? '' }))
    .sort((a, b) => a.slug.localeCompare(b.slug));
}

/** With credentials, the document names the caller's own tenant as the only `firma`. */
function tenantOf(doc) {
  const firma = doc.paths?.['/c/{firma}/changes.json']?.get?.parameters?.find((p) => p.name === 'firma');
  const tenants = firma?.schema?.enum ?? [];
  return tenants.length === 1 ? tenants[0] : null;
}

async function signIn({ user, password, tenant }) {
  const authorization = basicAuthorization(user, password);
  const client = makeClient({ authorization });
  // The OpenAPI document answers anyone, so a small authenticated listing checks the password.
  const check = await client.call('GET', '/api_v1/plugins');
  if (check.status === 401) throw new Error('Wrong user name or password.');
  if (check.status === 429) throw new Error(`Too many sign-ins; try again in ${check.headers.get('retry-after') ?? 'a few'} seconds.`);
  if (!check.ok) throw new HttpError(check.status, check.data);
  const doc = await client.get('/openapi.json');
  const found = tenant || tenantOf(doc);
  if (!found) {
    const error = new Error('The server did not say which tenant you belong to; enter it.');
    error.needsTenant = true;
    throw error;
  }
  const session = { user, authorization, tenant: found, collections: collectionsOf(doc) };
  store.set('session', session);
  return session;
}

function signOut(message = null) {
  store.remove('session');
  store.remove('batches');
  store.remove('exports');
  notice = message;
  if (location.hash && location.hash !== '#/') location.hash = '#/';
  else showRoute();
}

/** A message for the next sign-in screen (why the session ended). */
let notice = null;

function signInScreen() {
  const tenantField = h('div', { class: 'form-row', hidden: true },
    h('label', { for: 'login-tenant' }, 'Tenant'),
    h('input', { id: 'login-tenant', name: 'tenant', value: 'demo', testid: 'login-tenant' }));
  const message = h('div', { 'aria-live': 'polite' }, notice && alertBox('info', notice));
  notice = null;
  const button = h('button', { type: 'submit', class: 'button button-primary button-wide', testid: 'login-submit' }, 'Sign in');
  const form = h('form', {
    class: 'signin-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      button.disabled = true;
      fill(message);
      try {
        await signIn({ user: values.user.trim(), password: values.password, tenant: tenantField.hidden ? '' : values.tenant.trim() });
        showRoute();
      } catch (error) {
        if (error.needsTenant) tenantField.hidden = false;
        fill(message, alertBox('error', error.message, 'login-error'));
        button.disabled = false;
      }
    },
  },
  h('div', { class: 'form-row' }, h('label', { for: 'login-user' }, 'User'),
    h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true, autofocus: true, testid: 'login-user' })),
  h('div', { class: 'form-row' }, h('label', { for: 'login-password' }, 'Password'),
    h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, testid: 'login-password' })),
  tenantField, message, button);
  return h('main', { class: 'signin', id: 'main' },
    h('div', { class: 'signin-card' },
      h('div', { class: 'signin-brand' }, logo(), h('span', {}, 'bulkhost')),
      h('h1', {}, 'Sign in to the console'),
      h('p', { class: 'muted' }, 'Use the credentials of your tenant’s API user.'),
      form,
      h('p', { class: 'signin-links' },
        h('a', { href: '#/operator', testid: 'operator-link' }, 'Operator? Use a token'), ' · ',
        h('a', { href: '/docs' }, 'API reference'))));
}

// ---------------------------------------------------------------------------------------------
// Console mode: shell and routing

const NAV = [
  { id: 'overview', href: '#/', label: 'Overview' },
  { id: 'collections', href: '#/collections', label: 'Collections' },
  { id: 'changes', href: '#/changes', label: 'Change feed' },
  { id: 'exports', href: '#/exports', label: 'Exports' },
  { id: 'batches', href: '#/batches', label: 'Batches' },
  { id: 'plugins', href: '#/plugins', label: 'Plugins' },
];

const ROUTES = [
  { pattern: /^$/, nav: 'overview', title: 'Overview', page: overviewPage },
  { pattern: /^collections$/, nav: 'collections', title: 'Collections', page: collectionsPage },
  { pattern: /^collections\/([^/]+)$/, nav: 'collections', title: 'Collection', page: collectionPage },
  { pattern: /^collections\/([^/]+)\/(.+)$/, nav: 'collections', title: 'Document', page: documentPage },
  { pattern: /^changes$/, nav: 'changes', title: 'Change feed', page: changesPage },
  { pattern: /^exports$/, nav: 'exports', title: 'Exports', page: exportsPage },
  { pattern: /^batches$/, nav: 'batches', title: 'Batches', page: batchesPage },
  { pattern: /^plugins$/, nav: 'plugins', title: 'Plugins', page: pluginsPage },
  // The operator is not a tenant's user: the page takes its own token, signed in or not.
  { pattern: /^operator$/, nav: 'operator', title: 'Operator', page: operatorPage, public: true },
];

function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const cut = hash.indexOf('?');
  const path = cut < 0 ? hash : hash.slice(0, cut);
  const params = new URLSearchParams(cut < 0 ? '' : hash.slice(cut + 1));
  for (const route of ROUTES) {
    const match = route.pattern.exec(path);
    if (match) return { ...route, match: match.slice(1).map(decodeURIComponent), params };
  }
  return { ...ROUTES[0], match: [], params };
}

function shell(session, active) {
  const navLink = (item) => h('a', {
    href: item.href, class: 'nav-link', testid: `nav-${item.id}`, 'aria-current': item.id === active ? 'page' : null,
  }, item.label);
  return h('div', { class: 'app' },
    h('header', { class: 'topbar' },
      brand(),
      h('span', { class: 'topbar-label' }, 'Console'),
      h('div', { class: 'topbar-spacer' }),
      session
        ? [h('span', { class: 'tenant-chip', testid: 'tenant', title: 'Tenant' }, session.tenant),
          h('span', { class: 'topbar-user', testid: 'user' }, session.user),
          h('button', { type: 'button', class: 'topbar-button', testid: 'sign-out', onclick: () => signOut() }, 'Sign out')]
        : h('a', { class: 'topbar-link', href: '#/' }, 'Sign in')),
    h('nav', { class: 'sidebar', 'aria-label': 'Console' },
      session && [h('div', { class: 'nav-group' }, `Tenant ${session.tenant}`), NAV.map(navLink)],
      h('div', { class: 'nav-group' }, 'Operator'),
      navLink({ id: 'operator', href: '#/operator', label: 'Operator' }),
      h('div', { class: 'nav-group' }, 'Reference'),
      h('a', { class: 'nav-link', href: '/docs', target: '_blank' }, 'API reference ↗'),
      h('a', { class: 'nav-link', href: '/openapi.json', target: '_blank' }, 'OpenAPI document ↗')),
    h('main', { class: 'content', id: 'main', tabindex: '-1' }));
}

/** The page on screen: its AbortController ends its requests, polls and streams. */
let shownPage = null;

async function showRoute() {
  shownPage?.abort();
  const controller = new AbortController();
  shownPage = controller;
  const route = currentRoute();
  const session = store.get('session', null);
  if (!session && !route.public) {
    document.title = 'Sign in · bulkhost';
    fill(document.body, signInScreen());
    return;
  }
  const app = shell(session, route.nav);
  fill(document.body, app);
  document.title = `${route.title} · bulkhost`;
  const main = app.querySelector('main');
  const client = session && makeClient({
    authorization: session.authorization,
    signal: controller.signal,
    onUnauthorized: () => signOut('The server no longer accepts your credentials; sign in again.'),
  });
  const ctx = { session, client, signal: controller.signal, params: route.params, match: route.match };
  try {
    await route.page(main, ctx);
  } catch (error) {
    if (!controller.signal.aborted) main.append(alertBox('error', error.message, 'page-error'));
  }
}

// ---------------------------------------------------------------------------------------------
// Console pages: overview

function statCard(label, value, detail, href, testid) {
  return h(href ? 'a' : 'div', { class: 'stat', href, testid },
    h('span', { class: 'stat-label' }, label),
    h('span', { class: 'stat-value' }, value),
    h('span', { class: 'stat-detail' }, detail));
}

/** Settles a request into its data or its error, so one failing card does not blank the page. */
const settle = (promise) => promise.then((data) => ({ data }), (error) => ({ error }));

async function overviewPage(main, { session, client }) {
  const feed = `/c/${enc(session.tenant)}/changes.json`;
  const [head, exports, datasets, plugins] = await Promise.all([
    // The feed's head carries the oldest kept version in a header, so it is read whole.
    client.call('GET', `${feed}?limit=0`).catch((error) => ({ ok: false, data: error.message, headers: new Headers() })),
    settle(client.get('/api_v1/estado_xxl')),
    settle(client.get('/api_v1/datasets')),
    settle(client.get('/api_v1/plugins')),
  ]);
  const version = head.ok ? Number(head.data.winstrom['@globalVersion']) : 0;
  const oldest = Number(head.headers.get('x-oldest-version') ?? 1);
  const latest = version
    ? await settle(client.get(`${feed}?start=${Math.max(oldest, version - 7)}&limit=8`))
    : { data: null };
  const requests = sortRequests(exports.data ?? []);
  const pending = requests.filter((r) => r.estado === 'PENDING').length;
  const records = requests.flatMap((r) => r.datasets).filter((d) => d.estado === 'OK').reduce((sum, d) => sum + d.numero_registros, 0);
  fill(main,
    pageHead('Overview', `Tenant ${session.tenant}, signed in as ${session.user}.`),
    h('div', { class: 'stats' },
      statCard('Change feed', head.ok ? `v${formatCount(version)}` : '—', head.ok ? 'global version of your data' : errorText(head.data), '#/changes', 'stat-version'),
      statCard('Collections', formatCount(session.collections.length), 'browse, search, post', '#/collections', 'stat-collections'),
      statCard('Exports', exports.error ? '—' : formatCount(requests.length), exports.error ? exports.error.message : `${pending} pending · ${formatCount(records)} records`, '#/exports', 'stat-exports'),
      statCard('Data sets', datasets.error ? '—' : formatCount(datasets.data.length), plugins.error ? plugins.error.message : `${plural(plugins.data.length, 'plugin')} of your own`, '#/plugins', 'stat-datasets')),
    h('div', { class: 'columns' },
      panel('Latest changes', { actions: h('a', { href: '#/changes' }, 'Live feed →'), testid: 'overview-changes', flush: true },
        latest.error ? alertBox('error', latest.error.message)
          : changesTable((latest.data?.winstrom?.changes ?? []).slice().reverse(), { empty: 'No changes yet.', compact: true })),
      panel('Latest exports', { actions: h('a', { href: '#/exports' }, 'Queue an export →'), testid: 'overview-exports', flush: true },
        exports.error ? alertBox('error', exports.error.message) : exportsSummary(requests.slice(0, 6)))),
    panel('Collections', { actions: h('a', { href: '#/collections' }, 'All collections →'), testid: 'overview-collections' },
      h('div', { class: 'chips' }, session.collections.map(({ slug, description }) =>
        h('a', { class: 'chip', href: `#/collections/${enc(slug)}`, title: description }, slug)))),
  );
}

function exportsSummary(requests) {
  const totals = store.get('exports', {});
  const rows = requests.flatMap((request) => request.datasets.map((d) => h('tr', {},
    h('td', {}, h('code', { title: request.peticion_id }, request.peticion_id.slice(0, 8))),
    h('td', {}, d.dataset),
    h('td', {}, badge(d.estado)),
    h('td', { class: 'col-progress' }, progressBar(d.numero_registros, totals[request.peticion_id]?.[d.dataset], { state: d.estado })),
    h('td', { class: 'num' }, formatCount(d.numero_registros)))));
  return dataTable(['Request', 'Data set', 'State', 'Progress', 'Records'], rows, { empty: 'No exports in the last hours.' });
}

// ---------------------------------------------------------------------------------------------
// Console pages: collections

async function collectionsPage(main, { session, client }) {
  const filter = h('input', { type: 'search', placeholder: 'Filter collections…', 'aria-label': 'Filter collections', testid: 'collections-filter' });
  const rows = session.collections.map(({ slug, description }) => {
    const count = h('td', { class: 'num', testid: `count-${slug}` }, '…');
    // One small page per collection gives its count; the list shows before they answer.
    client.get(`${collectionUrl(slug)}?page_size=1`)
      .then((page) => { count.textContent = formatCount(page.count); })
      .catch(() => { count.textContent = '—'; });
    return h('tr', { 'data-slug': slug },
      h('td', {}, h('a', { href: `#/collections/${enc(slug)}`, testid: `collection-link-${slug}`, class: 'strong' }, slug)),
      h('td', { class: 'muted' }, description),
      count,
      h('td', { class: 'links' },
        h('a', { href: `${collectionUrl(slug)}?format=api`, target: '_blank', title: 'DRF’s browsable API (asks the browser for your credentials)' }, 'Browsable ↗')));
  });
  filter.addEventListener('input', () => {
    const term = filter.value.trim().toLowerCase();
    rows.forEach((row) => { row.hidden = term && !row.textContent.toLowerCase().includes(term); });
  });
  fill(main,
    pageHead('Collections', 'Business documents in Datawiz’s collections API: page, search, order, and post documents.', filter),
    dataTable(['Collection', 'Description', 'Documents', 'API'], rows, { testid: 'collections' }));
}

function collectionPage(main, { client, params, match: [slug] }) {
  const route = `#/collections/${enc(slug)}`;
  return collectionView(main, {
    slug, params, client,
    hrefFor: (next) => `${route}${apiQuery(next)}`,
    docHref: (url) => `${route}/${enc(lastSegment(url))}`,
  });
}

function documentPage(main, { client, match: [slug, id] }) {
  return documentView(main, { slug, id, client, listHref: `#/collections/${enc(slug)}` });
}

// ---------------------------------------------------------------------------------------------
// Console pages: change feed

/** One change; `compact` (the overview) leaves out the date and the external ids. */
function changeRow(change, { fresh = false, compact = false } = {}) {
  const evidence = change['@evidence'];
  const time = change['@timestamp'] ?? '';
  return h('tr', { testid: 'change-row', class: fresh ? 'fresh' : null, 'data-version': change['@in-version'] },
    h('td', { class: 'num' }, change['@in-version']),
    h('td', { class: 'nowrap muted', title: time }, compact ? time.slice(11, 19) : time),
    h('td', {}, badge(change['@operation'])),
    h('td', { class: 'nowrap' }, evidence),
    h('td', { class: 'nowrap' }, change['@operation'] === 'delete'
      ? change.id
      : h('a', { href: `#/collections/${enc(evidence)}/${enc(change.id)}` }, change.id)),
    compact ? null : h('td', { class: 'mono small' }, (change['external-ids'] ?? []).join(', ')));
}

const CHANGE_COLUMNS = ['Version', 'Time', 'Operation', 'Collection', 'Id', 'External ids'];

function changesTable(changes, { empty, testid = null, compact = false } = {}) {
  const columns = compact ? CHANGE_COLUMNS.slice(0, -1) : CHANGE_COLUMNS;
  return dataTable(columns, changes.map((c) => changeRow(c, { compact })), { empty, testid });
}

/**
 * Follows the change stream from version `start` (null: from the next change), reconnecting
 * after errors where it left off; a `gone` event (the kept log no longer reaches back) goes on
 * from now.
 */
async function followChanges({ client, path, records, start, signal, onChange, onState }) {
  let next = start;
  let healthy = true;
  while (!signal.aborted) {
    try {
      const query = new URLSearchParams();
      if (records) query.set('records', records);
      if (next != null) query.set('start', String(next));
      const request = client.send('GET', `${path}?${query}`, { headers: { Accept: 'text/event-stream' } });
      // The server sends the response head with the first event or heartbeat (up to 15 s).
      // `start` pins where the stream begins, so nothing is missed meanwhile: the feed counts
      // as live at once unless the last attempt failed.
      onState(healthy ? 'live' : 'connecting');
      const response = await request;
      if (!response.ok) throw new HttpError(response.status, await readBody(response));
      healthy = true;
      onState('live');
      for await (const event of serverSentEvents(response.body)) {
        if (event.event === 'change') {
          onChange(JSON.parse(event.data));
          next = Number(event.id) + 1;
        } else if (event.event === 'gone') {
          next = null;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      healthy = false;
      onState('error', error.message);
    }
    await sleep(2000, signal);
  }
}

/** Where a listing goes on: its `next`, or past its global version when it says `none`. */
function nextVersion(listing) {
  const next = Number(listing.next);
  return Number.isSafeInteger(next) ? next : Number(listing['@globalVersion']) + 1;
}

const FEED_STATES = { connecting: 'Connecting…', live: 'Live', error: 'Reconnecting…' };

async function changesPage(main, { session, client, signal, params }) {
  const records = params.get('records') ?? '';
  const base = `/c/${enc(session.tenant)}`;
  const filterQuery = records ? `&records=${enc(records)}` : '';
  const filter = h('select', { id: 'records-filter', testid: 'changes-records', value: records },
    h('option', { value: '' }, 'All collections'),
    session.collections.map(({ slug }) => h('option', { value: slug }, slug)));
  filter.addEventListener('change', () => location.assign(`#/changes${filter.value ? `?records=${enc(filter.value)}` : ''}`));
  const state = h('span', { class: 'live-state', testid: 'feed-status', 'data-state': 'connecting' }, FEED_STATES.connecting);
  const counter = h('span', { class: 'muted', testid: 'feed-count' }, '');
  const table = changesTable([], { empty: 'No changes yet. Write a document and it appears here at once.', testid: 'changes' });
  const tbody = table.querySelector('tbody');
  const hooks = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  fill(main,
    pageHead('Change feed', 'Every write of the tenant, in version order, as it commits (ABRA Flexi’s changes API).',
      [h('label', { class: 'inline-label', for: 'records-filter' }, 'Records'), filter]),
    panel(['Changes ', state], { actions: counter, testid: 'feed-panel', flush: true }, table),
    panel('Change hooks', { testid: 'hooks-panel' }, hooks),
  );

  let arrived = 0;
  const add = (change, fresh) => {
    tbody.querySelector('tr.empty')?.remove();
    tbody.prepend(changeRow(change, { fresh }));
    // The page stays light however long it is left open.
    while (tbody.rows.length > 500) tbody.lastElementChild.remove();
    if (fresh) counter.textContent = `${plural((arrived += 1), 'change')} since you opened this page`;
  };

  loadHooks(client, base).then((content) => fill(hooks, content), (error) => fill(hooks, alertBox('error', error.message)));

  // The last 50 versions for context, then the stream from right after them.
  const head = await client.call('GET', `${base}/changes.json?limit=0`);
  if (!head.ok) {
    state.dataset.state = 'error';
    state.textContent = 'Off';
    fill(tbody, h('tr', { class: 'empty' }, h('td', { colspan: CHANGE_COLUMNS.length }, errorText(head.data))));
    return;
  }
  const version = Number(head.data.winstrom['@globalVersion']);
  const oldest = Number(head.headers.get('x-oldest-version') ?? 1);
  const recent = await client.get(`${base}/changes.json?start=${Math.max(1, oldest, version - 49)}&limit=50${filterQuery}`);
  recent.winstrom.changes.forEach((change) => add(change, false));
  followChanges({
    client, signal, records,
    path: `${base}/changes/stream`,
    start: nextVersion(recent.winstrom),
    onChange: (change) => add(change, true),
    onState: (name, why) => {
      state.dataset.state = name;
      state.textContent = FEED_STATES[name];
      state.title = why ?? '';
    },
  });
}

async function loadHooks(client, base) {
  const answer = await client.get(`${base}/hooks.json`);
  const hooks = answer.winstrom?.hooks ?? [];
  const rows = hooks.map((hook) => h('tr', {},
    h('td', { class: 'num' }, hook.id),
    h('td', { class: 'mono small' }, hook.url),
    h('td', {}, hook.dataFormat),
    h('td', { class: 'num' }, hook.lastVersion),
    h('td', { class: 'num' }, hook.penalty),
    h('td', {}, hook.paused === 'true' ? badge('paused', 'error') : badge('active', 'ok')),
    h('td', { class: 'small' }, hook.failure || '—')));
  return [
    dataTable(['Id', 'URL', 'Format', 'Last version', 'Failures in a row', 'State', 'Last failure'], rows,
      { testid: 'hooks', empty: 'No hooks. A web hook is posted the changes after each commit.' }),
    h('p', { class: 'hint' }, 'Add one with ', h('code', {}, `PUT ${base}/hooks.json?url=…&format=JSON`), '.'),
  ];
}

// ---------------------------------------------------------------------------------------------
// Console pages: exports

const sortRequests = (requests) => requests.slice().sort((a, b) => String(b.fecha_peticion).localeCompare(String(a.fecha_peticion)));

/** A data set's parameter as the shared field component takes it. */
function paramMeta(param) {
  return {
    type: param.kind, required: param.required, label: param.name, help_text: param.description,
    default: param.default, choices: param.allowed_values.map((value) => ({ value })),
  };
}

/**
 * Progress needs a total, which the API does not give; a data set that takes a `count` says
 * it, so the console remembers what it asked for (sessionStorage) to draw real bars.
 */
function rememberTotal(request, dataset, params) {
  const total = Number(params.count ?? dataset.params.find((p) => p.name === 'count')?.default);
  if (!(total > 0)) return;
  const totals = store.get('exports', {});
  totals[request.peticion_id] = { [dataset.dataset]: total };
  store.set('exports', totals);
}

function exportForm(datasets, { client, initial, onQueued }) {
  const select = h('select', { id: 'export-dataset', name: 'dataset', testid: 'export-dataset', value: initial },
    datasets.map((d) => h('option', { value: d.dataset }, d.dataset)));
  const description = h('p', { class: 'muted', testid: 'export-description' });
  const paramsBox = h('div', { class: 'params' });
  const messages = h('div', { 'aria-live': 'polite' });
  let fields = [];
  const chosen = () => datasets.find((d) => d.dataset === select.value);
  function showParams() {
    const dataset = chosen();
    description.textContent = dataset?.description ?? '';
    fields = (dataset?.params ?? []).map((p) => formField(p.name, paramMeta(p), 'param'));
    fill(paramsBox, ...(fields.length ? fields.map((f) => f.row) : [h('p', { class: 'muted' }, 'This data set takes no parameters.')]));
  }
  select.addEventListener('change', showParams);
  showParams();

  const button = h('button', { type: 'submit', class: 'button button-primary', testid: 'export-queue' }, 'Queue export');
  async function submit(event) {
    event.preventDefault();
    const params = readFields(fields);
    if (!params) return;
    button.disabled = true;
    fill(messages);
    try {
      const answer = await client.call('POST', '/api_v1/generar_xxl', { json: [{ dataset: select.value, ...params }] });
      if (!answer.ok) {
        fill(messages, alertBox('error', errorText(answer.data) || `The server answered ${answer.status}.`, 'export-error'));
        return;
      }
      rememberTotal(answer.data, chosen(), params);
      const queued = alertBox('ok', ['Queued request ', h('code', {}, answer.data.peticion_id), '.'], 'export-queued');
      queued.dataset.request = answer.data.peticion_id;
      fill(messages, queued);
      onQueued(answer.data.peticion_id);
    } finally {
      button.disabled = false;
    }
  }
  return h('form', { class: 'export-form', onsubmit: submit, novalidate: true },
    h('div', { class: 'form-row' }, h('label', { for: 'export-dataset' }, 'Data set'), h('div', { class: 'form-control' }, select, description)),
    paramsBox, messages, h('div', { class: 'form-actions' }, button));
}

function exportRows(request, { client, totals, highlight, onCancel }) {
  return request.datasets.map((d, i) => {
    const state = d.estado;
    const total = totals[request.peticion_id]?.[d.dataset];
    const actions = [];
    if (state === 'OK') {
      actions.push(downloadLink(client, `/api_v1/datos_xxl/${enc(request.peticion_id)}/${enc(d.dataset)}`,
        `${d.dataset}-${request.peticion_id}.json`, 'Download', 'export-download'));
    }
    if (request.estado === 'PENDING' && i === 0) {
      actions.push(h('button', { type: 'button', class: 'button button-small', testid: 'export-cancel', onclick: () => onCancel(request.peticion_id) }, 'Cancel'));
    }
    return h('tr', {
      testid: 'export-row', 'data-request': request.peticion_id, 'data-dataset': d.dataset, 'data-state': state,
      class: request.peticion_id === highlight ? 'highlight' : null,
    },
    h('td', { class: 'nowrap' }, h('code', { title: request.peticion_id }, request.peticion_id.slice(0, 8)), h('div', { class: 'small muted' }, formatTime(request.fecha_peticion))),
    h('td', {}, d.dataset),
    h('td', { title: d.fecha_generacion_fin ? `finished ${formatTime(d.fecha_generacion_fin)}` : null }, badge(state, undefined, 'export-state')),
    h('td', { class: 'col-progress' },
      progressBar(d.numero_registros, total, { state, testid: 'export-progress' }),
      h('div', { class: 'small muted', testid: 'export-records' },
        total && state === 'PENDING' ? `${formatCount(d.numero_registros)} of ${formatCount(total)} records` : plural(d.numero_registros, 'record'),
        d.version_global != null ? ` · version ${d.version_global}` : ''),
      d.error_message ? h('div', { class: 'small error-text', testid: 'export-error-message' }, d.error_message) : null),
    h('td', { class: 'actions' }, actions));
  });
}

async function exportsPage(main, { client, signal, params }) {
  const datasets = (await client.get('/api_v1/datasets')).slice().sort((a, b) => a.dataset.localeCompare(b.dataset));
  const initial = params.get('dataset') ?? (datasets.some((d) => d.dataset === 'synthetic') ? 'synthetic' : datasets[0]?.dataset);
  const queueBody = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const queueState = h('span', { class: 'muted small', 'aria-live': 'polite' });
  let highlight = null;
  let shown = '';
  let refreshNow = () => {};

  async function refresh() {
    const requests = sortRequests(await client.get('/api_v1/estado_xxl'));
    const text = JSON.stringify(requests);
    if (text !== shown) {
      // Only a changed queue is redrawn, so a link under the pointer stays put.
      shown = text;
      const totals = store.get('exports', {});
      const rows = requests.flatMap((r) => exportRows(r, { client, totals, highlight, onCancel: cancel }));
      fill(queueBody, dataTable(['Request', 'Data set', 'State', 'Progress', ''], rows,
        { testid: 'export-queue-table', empty: 'No exports in the last hours. Queue one on the left.' }));
    }
    const pending = requests.some((r) => r.estado === 'PENDING');
    queueState.textContent = pending ? 'Updating every second' : 'Up to date';
    return pending ? 1000 : 4000;
  }
  async function cancel(id) {
    await client.call('DELETE', `/api_v1/estado_xxl/${enc(id)}`);
    refreshNow();
  }
  const form = exportForm(datasets, {
    client, initial,
    onQueued: (id) => {
      highlight = id;
      shown = '';
      refreshNow();
    },
  });
  fill(main,
    pageHead('Exports', 'Data sets generated by plugins in the background, then downloaded whole (Winfra XXL).'),
    h('div', { class: 'columns columns-form' },
      panel('New export', { testid: 'export-panel' }, form),
      panel('Queue', { actions: queueState, testid: 'export-queue-panel', flush: true }, queueBody)));

  refreshNow = keepPolling(signal, refresh, (error) => { queueState.textContent = `Cannot update: ${error.message}`; });
}

// ---------------------------------------------------------------------------------------------
// Console pages: batches

const BATCH_EXAMPLE = [
  { operationId: 'put-product', method: 'PUT', endpoint: '/v1/products/P9001', body: { name: 'Espresso', barcode: '4006381333931', price: 7.5 } },
  { operationId: 'list-shops', method: 'GET', endpoint: '/api/v1/shops/?page_size=2' },
].map((op) => JSON.stringify(op)).join('\n');

/**
 * Operations from the textarea: a JSON array, a whole `{"batch": …}` body, or JSON lines. An
 * object body is sent as the JSON text LogiCommerce expects, and missing ids are numbered.
 */
function parseOperations(text) {
  const trimmed = text.trim();
  if (!trimmed) throw new Error('Write at least one operation.');
  let items;
  try {
    const whole = JSON.parse(trimmed);
    items = Array.isArray(whole) ? whole : whole?.batch?.operations ?? [whole];
  } catch {
    items = trimmed.split('\n').map((line, i) => [line.trim(), i]).filter(([line]) => line).map(([line, i]) => {
      try {
        return JSON.parse(line);
      } catch (error) {
        throw new Error(`Line ${i + 1} is not JSON: ${error.message}`);
      }
    });
  }
  return items.map((op, i) => {
    if (!op || typeof op !== 'object' || Array.isArray(op)) throw new Error(`Operation ${i + 1} is not an object.`);
    const body = op.body != null && typeof op.body === 'object' ? JSON.stringify(op.body) : op.body;
    return { ...op, operationId: op.operationId ?? `op${i + 1}`, method: String(op.method ?? 'GET').toUpperCase(), ...(body === undefined ? {} : { body }) };
  });
}

const rememberBatch = (uuid) => store.set('batches', [uuid, ...store.get('batches', []).filter((u) => u !== uuid)].slice(0, 20));
const forgetBatch = (uuid) => store.set('batches', store.get('batches', []).filter((u) => u !== uuid));

function responseRow(response, index) {
  const body = response.body ?? '';
  return h('tr', { testid: 'batch-response-row', 'data-operation': response.operationId },
    h('td', { class: 'num' }, index + 1),
    h('td', {}, response.operationId),
    h('td', { class: 'nowrap' }, h('span', { class: `method method-${response.method.toLowerCase()}` }, response.method), ' ', h('code', {}, response.endpoint)),
    h('td', {}, statusBadge(response.statusCode), ' ', h('span', { class: 'small muted' }, response.statusText)),
    h('td', { class: 'body-cell' }, body.length > 120
      ? h('details', {}, h('summary', { class: 'mono small' }, `${body.slice(0, 120)}…`), h('pre', { class: 'json' }, body))
      : h('code', { class: 'small' }, body)));
}

/** One batch: its progress while it runs, then its responses, retry and download. */
function batchCard(uuid, { client, signal, onRetried }) {
  const card = h('section', { class: 'panel batch', testid: 'batch', 'data-uuid': uuid }, h('p', { class: 'loading' }, 'Loading…'));
  function render(batch) {
    const done = batch.responses.length;
    const failed = batch.responses.filter((r) => r.statusCode >= 400).length;
    const finished = batch.status === 'finished';
    const retry = h('button', {
      type: 'button', class: 'button button-small', testid: 'batch-retry',
      onclick: async () => {
        retry.disabled = true;
        const answer = await client.call('POST', `/v1/batch/${enc(uuid)}/retry`);
        if (answer.ok) onRetried(answer.data.uuid);
        else card.append(alertBox('error', errorText(answer.data), 'batch-error'));
      },
    }, `Retry ${plural(failed, 'failed operation')}`);
    fill(card,
      h('header', { class: 'panel-head' },
        h('h2', {}, 'Batch ', h('code', { class: 'small' }, uuid)),
        h('div', { class: 'panel-actions' },
          badge(batch.status, undefined, 'batch-status'),
          finished && failed ? retry : null,
          finished ? downloadLink(client, `/v1/batch/${enc(uuid)}/jsonl`, `batch-${uuid}.jsonl`, 'Responses (JSONL)', 'batch-download') : null)),
      h('div', { class: 'panel-body' },
        h('div', { class: 'batch-progress' },
          progressBar(done, batch.operations, { state: finished ? 'OK' : 'PENDING', testid: 'batch-progress' }),
          h('span', { class: 'small muted' }, `${done} of ${plural(batch.operations, 'operation')} done`,
            failed ? ` · ${failed} failed` : '', ` · created ${formatTime(batch.createdAt)}`,
            batch.completedAt ? ` · finished ${formatTime(batch.completedAt)}` : '')),
        batch.error ? alertBox('error', batch.error) : null,
        dataTable(['#', 'Operation', 'Request', 'Status', 'Body'], batch.responses.map(responseRow), { testid: 'batch-responses', empty: 'No operation has run yet.' })));
  }
  keepPolling(signal, async () => {
    const answer = await client.call('GET', `/v1/batch/${enc(uuid)}`);
    if (answer.status === 404) {
      // Its status is kept an hour after it finished; then it is gone.
      forgetBatch(uuid);
      fill(card, alertBox('info', `Batch ${uuid} has expired.`));
      return null;
    }
    if (!answer.ok) throw new HttpError(answer.status, answer.data);
    render(answer.data);
    return answer.data.status === 'finished' ? null : 1000;
  }, (error) => fill(card, alertBox('error', error.message)));
  return card;
}

async function batchesPage(main, { client, signal }) {
  const list = h('div', { class: 'batches', testid: 'batch-list' });
  const messages = h('div', { 'aria-live': 'polite' });
  const textarea = h('textarea', {
    id: 'batch-operations', class: 'mono', rows: 8, spellcheck: 'false', testid: 'batch-operations',
    placeholder: BATCH_EXAMPLE,
  });
  const show = (uuid) => {
    rememberBatch(uuid);
    list.prepend(batchCard(uuid, { client, signal, onRetried: show }));
  };
  const button = h('button', { type: 'submit', class: 'button button-primary', testid: 'batch-submit' }, 'Submit batch');
  const form = h('form', {
    class: 'batch-form',
    onsubmit: async (event) => {
      event.preventDefault();
      fill(messages);
      let operations;
      try {
        operations = parseOperations(textarea.value);
      } catch (error) {
        fill(messages, alertBox('error', error.message, 'batch-error'));
        return;
      }
      button.disabled = true;
      try {
        const answer = await client.call('POST', '/v1/batch', { json: { batch: { operations } } });
        if (answer.ok) show(answer.data.uuid);
        else fill(messages, alertBox('error', errorText(answer.data), 'batch-error'));
      } finally {
        button.disabled = false;
      }
    },
  },
  h('label', { for: 'batch-operations' }, 'Operations: JSON lines, a JSON array, or a whole ', h('code', {}, '{"batch": …}'), ' body'),
  textarea, messages,
  h('div', { class: 'form-actions' },
    button,
    h('button', { type: 'button', class: 'button', testid: 'batch-example', onclick: () => { textarea.value = BATCH_EXAMPLE; } }, 'Insert example')));
  const limits = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  fill(main,
    pageHead('Batches', 'Many operations in one asynchronous request, run in order; one batch per tenant at a time (LogiCommerce).'),
    h('div', { class: 'columns columns-form' },
      panel('New batch', { testid: 'batch-panel' }, form),
      panel('What a batch may call', { testid: 'batch-limits' }, limits)),
    list);
  store.get('batches', []).slice().reverse().forEach(show);
  client.get('/v1/batch/limits').then(({ limits: l }) => fill(limits,
    h('p', { class: 'muted' }, `The operations of one batch weigh at most ${l.maxLoadScore} together.`),
    h('div', { class: 'scroll-box' }, dataTable(['Method', 'Endpoint', 'Weight'],
      l.endpoints.map((e) => h('tr', {}, h('td', {}, h('span', { class: `method method-${e.method}` }, e.method.toUpperCase())), h('td', { class: 'mono small' }, e.endpoint), h('td', { class: 'num' }, e.loadScore)))))),
  (error) => fill(limits, alertBox('error', error.message)));
}

// ---------------------------------------------------------------------------------------------
// Console pages: plugins (the tenant's own; the operator's page reuses it with its token)

const PLUGIN_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A name the server takes, from a file name: `My Datasets.wasm` → `My-Datasets`. */
const pluginNameOf = (fileName) => fileName.replace(/\.wasm$/i, '').replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 64);

function pluginsPanel({ client, base, title, empty }) {
  const listBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const messages = h('div', { 'aria-live': 'polite' });
  const name = h('input', { id: 'plugin-name', name: 'name', testid: 'plugin-name', required: true, placeholder: 'my-datasets', pattern: PLUGIN_NAME.source });
  const file = h('input', { id: 'plugin-file', name: 'file', type: 'file', accept: '.wasm,application/wasm', testid: 'plugin-file', required: true });
  file.addEventListener('change', () => {
    if (file.files[0] && !name.value) name.value = pluginNameOf(file.files[0].name);
  });

  async function reload() {
    const plugins = await client.get(base);
    const rows = plugins.map((p) => h('tr', { testid: 'plugin-row', 'data-name': p.name },
      h('td', { class: 'strong' }, p.name),
      h('td', {}, p.datasets.length ? p.datasets.map((d) => h('span', { class: 'chip' }, d)) : h('span', { class: 'muted' }, 'endpoints only')),
      h('td', { class: 'mono small', title: p.sha256 }, `${p.sha256.slice(0, 12)}…`),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'button button-small button-danger', testid: `plugin-remove-${p.name}`,
        onclick: () => remove(p.name),
      }, 'Remove'))));
    fill(listBox, dataTable(['Name', 'Data sets', 'SHA-256', ''], rows, { testid: 'plugin-list', empty }));
  }

  async function remove(pluginName) {
    if (!window.confirm(`Remove the plugin ${pluginName}?`)) return;
    const answer = await client.call('DELETE', `${base}/${enc(pluginName)}`);
    fill(messages, answer.ok
      ? alertBox('ok', `Removed ${pluginName}.`, 'plugin-message')
      : alertBox('error', errorText(answer.data), 'plugin-error'));
    await reload();
  }

  const button = h('button', { type: 'submit', class: 'button button-primary', testid: 'plugin-upload' }, 'Upload');
  async function upload(event) {
    event.preventDefault();
    fill(messages);
    if (!file.files[0]) {
      fill(messages, alertBox('error', 'Choose a .wasm component first.', 'plugin-error'));
      return;
    }
    button.disabled = true;
    try {
      // The component goes up as raw bytes, as `curl -T` sends it; the server checks it whole.
      const answer = await client.call('PUT', `${base}/${enc(name.value.trim())}`, {
        body: file.files[0], headers: { 'Content-Type': 'application/wasm' },
      });
      if (answer.ok) {
        const provided = (answer.data.datasets ?? []).map((d) => d.dataset ?? d);
        fill(messages, alertBox('ok', `Installed ${answer.data.name}${provided.length ? `, providing ${provided.join(', ')}` : ''}.`, 'plugin-message'));
        await reload();
      } else {
        fill(messages, alertBox('error', [h('strong', {}, `${answer.status}: `), errorText(answer.data)], 'plugin-error'));
      }
    } finally {
      button.disabled = false;
    }
  }

  reload().catch((error) => fill(listBox, alertBox('error', error.message)));
  return [
    panel('Upload a component', { testid: 'plugin-upload-panel' },
      h('form', { class: 'upload-form', onsubmit: upload, novalidate: true },
        h('div', { class: 'form-row' }, h('label', { for: 'plugin-name' }, 'Name'), h('div', { class: 'form-control' }, name, h('small', { class: 'hint' }, '1 to 64 letters, digits, - and _; the same name replaces a plugin'))),
        h('div', { class: 'form-row' }, h('label', { for: 'plugin-file' }, 'Component'), h('div', { class: 'form-control' }, file, h('small', { class: 'hint' }, 'a WebAssembly component built for bulkhost:plugin (see plugins/README.md)'))),
        messages,
        h('div', { class: 'form-actions' }, button))),
    panel(title, { testid: 'plugins-panel', flush: true }, listBox),
  ];
}

async function pluginsPage(main, { client }) {
  const offered = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  fill(main,
    pageHead('Plugins', 'Your own WebAssembly components: data sets for exports and endpoints for batches.'),
    h('div', { class: 'columns columns-form' },
      pluginsPanel({ client, base: '/api_v1/plugins', title: 'Your plugins', empty: 'No plugins of your own yet; the operator’s serve you meanwhile.' })),
    panel('Data sets on offer', { testid: 'datasets-panel' }, offered));
  const datasets = await client.get('/api_v1/datasets');
  fill(offered, h('div', { class: 'chips' }, datasets.map((d) => h('a', { class: 'chip', href: `#/exports?dataset=${enc(d.dataset)}`, title: d.description }, d.dataset))));
}

// ---------------------------------------------------------------------------------------------
// Console pages: operator

/** Prometheus/OpenMetrics text as `{name, labels, value}` samples. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match || line.startsWith('#')) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => [k, v]));
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of a metric's samples whose labels match `where` (absent counters are 0). */
const sumOf = (samples, name, where = {}) => samples
  .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => (typeof v === 'function' ? v(s.labels[k]) : s.labels[k] === v)))
  .reduce((sum, s) => sum + s.value, 0);

const PLUGIN_FAILURES = ['failed', 'trap', 'deadline', 'memory', 'output', 'resources', 'host'];

function metricsView(samples) {
  const m = (name, where) => sumOf(samples, `bulkhost_${name}`, where);
  const failures = [
    ['Export runs failed', m('export_runs_total', { outcome: 'failed' })],
    ...PLUGIN_FAILURES.map((outcome) => [`Plugin invocations: ${outcome}`, m('plugin_invocations_total', { outcome })]),
    ['Deliveries retried', m('deliveries_total', { outcome: 'retried' })],
    ['Deliveries given up', m('deliveries_total', { outcome: 'given_up' })],
    ['Server errors (HTTP 5xx)', m('http_requests_total', { status: (s) => /^5/.test(s ?? '') })],
  ];
  const deliveries = samples.filter((s) => s.name === 'bulkhost_deliveries_total');
  return [
    h('div', { class: 'stats' },
      statCard('Export queue', formatCount(m('export_queue_depth')), 'runs waiting for a worker', null, 'metric-queue-depth'),
      statCard('Outbox lag', `${m('outbox_lag_seconds').toFixed(1)} s`, 'oldest unclaimed delivery', null, 'metric-outbox-lag'),
      statCard('Export runs', formatCount(m('export_runs_total')), `${formatCount(m('export_runs_total', { outcome: 'ok' }))} ok · ${formatCount(m('export_records_total'))} records`, null, 'metric-export-runs'),
      statCard('Batches finished', formatCount(m('batches_finished_total')), `${formatCount(m('batch_operations_total'))} operations run`, null, 'metric-batches')),
    h('div', { class: 'columns' },
      // Only the counters that moved: a wall of zeros hides the one that matters.
      panel('Failures since the server started', { testid: 'metric-failures', flush: true },
        dataTable(['Counter', 'Count'], failures.filter(([, value]) => value > 0).map(([label, value]) => h('tr', { class: 'attention' },
          h('td', {}, label), h('td', { class: 'num' }, formatCount(value)))),
        { empty: 'No failures: no failed export run, plugin invocation or delivery, and no server error.' })),
      panel('Deliveries (webhooks and mail)', { testid: 'metric-deliveries', flush: true },
        dataTable(['Kind', 'Outcome', 'Count'], deliveries.map((s) => h('tr', {},
          h('td', {}, s.labels.kind), h('td', {}, badge(s.labels.outcome, s.labels.outcome === 'delivered' ? 'ok' : s.labels.outcome === 'given_up' ? 'error' : 'warn')), h('td', { class: 'num' }, formatCount(s.value)))),
        { empty: 'No delivery attempted yet.' }))),
  ];
}

/** A usage counter beside its quota: bytes, except the count of unfinished exports. */
function usageCell(line) {
  const show = line.counter === 'unfinished-exports' ? formatCount : formatBytes;
  const share = line.limit ? line.used / line.limit : 1;
  return h('td', { class: share >= 0.9 ? 'num attention' : 'num', title: `${(share * 100).toFixed(1)}% of the quota` },
    `${show(line.used)} / ${show(line.limit)}`);
}

const USAGE_COLUMNS = [['documents', 'Documents'], ['attachments', 'Attachments'], ['results', 'Results'], ['unfinished-exports', 'Open exports']];

/** The operator's table of tenants and, below it, every tenant's newest failures. */
function tenantsView(tenants) {
  const runs = (r) => `${formatCount(r.queued)} queued · ${formatCount(r.running)} running · ${formatCount(r.failed)} failed`;
  // Newest first across tenants; a hook's failures are not timed and come last.
  const failures = tenants.flatMap((t) => t.failures.map((f) => ({ tenant: t.name, ...f })))
    .sort((a, b) => (b.at ?? '').localeCompare(a.at ?? ''));
  return [
    dataTable(['Tenant', 'Version', ...USAGE_COLUMNS.map(([, label]) => label), 'Export runs', 'Batches', 'Hooks', 'Plugins'],
      tenants.map((t) => h('tr', { testid: 'tenant-row', 'data-name': t.name },
        h('td', {}, h('strong', {}, t.name), h('div', { class: 'muted small' }, plural(t.users, 'user'), t.changes_enabled ? '' : ' · feed off')),
        h('td', { class: 'num' }, formatCount(t.version)),
        USAGE_COLUMNS.map(([counter]) => usageCell(t.usage.find((u) => u.counter === counter) ?? { counter, used: 0, limit: 0 })),
        h('td', {}, runs(t.export_runs)),
        h('td', {}, `${formatCount(t.batches.pending + t.batches.processing)} open · ${formatCount(t.batches.failed)} failed`),
        h('td', { class: t.hooks.failing ? 'attention' : '' }, `${plural(t.hooks.total, 'hook')} · ${formatCount(t.hooks.paused)} paused`),
        h('td', {}, t.plugins.length ? t.plugins.join(', ') : '—'))),
      { testid: 'tenant-list', empty: 'No tenant is declared.' }),
    h('h3', {}, 'Recent failures'),
    dataTable(['Tenant', 'What', 'Id', 'Subject', 'Error', 'When'],
      failures.map((f) => h('tr', { testid: 'failure-row', class: 'attention' },
        h('td', {}, f.tenant), h('td', {}, badge(f.kind, 'error')), h('td', {}, h('code', {}, f.id)),
        h('td', {}, f.subject), h('td', {}, f.error), h('td', {}, formatTime(f.at)))),
      { testid: 'failure-list', empty: 'No tenant has a failed export, batch or change hook.' }),
  ];
}

function operatorTokenForm(onSignedIn) {
  const token = h('input', { id: 'operator-token', type: 'password', name: 'token', autocomplete: 'off', required: true, testid: 'operator-token' });
  const messages = h('div', { 'aria-live': 'polite' });
  return h('form', {
    class: 'inline-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const authorization = `Bearer ${token.value.trim()}`;
      const answer = await makeClient({ authorization }).call('GET', '/admin/plugins');
      if (answer.ok) {
        store.set('operator', authorization);
        onSignedIn();
      } else {
        fill(messages, alertBox('error', `${answer.status}: ${errorText(answer.data)}`, 'operator-error'));
      }
    },
  },
  h('label', { for: 'operator-token' }, 'Operator token'), token,
  h('button', { type: 'submit', class: 'button button-primary', testid: 'operator-signin' }, 'Sign in'),
  messages);
}

async function operatorPage(main, { signal }) {
  const authorization = store.get('operator', null);
  const metrics = h('div', { testid: 'metrics' }, h('p', { class: 'loading' }, 'Loading…'));
  const updated = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const tenants = authorization
    ? h('div', {}, h('p', { class: 'loading' }, 'Loading…'))
    : h('p', { class: 'muted' }, 'Sign in with the operator token to see each tenant’s usage, work and failures.');
  const client = authorization && makeClient({
    authorization, signal,
    onUnauthorized: () => { store.remove('operator'); showRoute(); },
  });
  fill(main,
    pageHead('Operator', 'The whole server: queue depths, failures and the plugins that serve every tenant.',
      authorization ? h('button', { type: 'button', class: 'button', testid: 'operator-signout', onclick: () => { store.remove('operator'); showRoute(); } }, 'Forget token') : null),
    panel('Health', { actions: updated, testid: 'health-panel' }, metrics),
    panel('Tenants', { testid: 'tenants-panel', flush: Boolean(authorization) }, tenants),
    authorization
      ? h('div', { class: 'columns columns-form' },
        pluginsPanel({ client, base: '/admin/plugins', title: 'Operator plugins', empty: 'No operator plugins.' }))
      : panel('Operator plugins', { testid: 'operator-signin-panel' },
        h('p', { class: 'muted' }, 'The operator’s API takes a token made by ', h('code', {}, 'bulkhost admin-token'), ' whose SHA-256 is in ', h('code', {}, '[admin] token_sha256'), '.'),
        operatorTokenForm(showRoute)));
  // /metrics needs no credentials; it is read every five seconds while the page is open.
  keepPolling(signal, async () => {
    const response = await fetch('/metrics', { signal, credentials: 'omit' });
    if (!response.ok) throw new HttpError(response.status, await readBody(response));
    fill(metrics, ...metricsView(parseMetrics(await response.text())));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    return 5000;
  }, (error) => { updated.textContent = `Cannot read /metrics: ${error.message}`; });
  if (client) {
    // Every tenant's records are read for this: a slower beat than the counters'.
    keepPolling(signal, async () => {
      fill(tenants, ...tenantsView(await client.get('/admin/tenants')));
      return 15000;
    }, (error) => fill(tenants, alertBox('error', `Cannot read the tenants: ${error.message}`)));
  }
}

// ---------------------------------------------------------------------------------------------

if (document.body.dataset.mode === 'browsable') {
  bootBrowsable();
} else {
  window.addEventListener('hashchange', showRoute);
  showRoute();
}
