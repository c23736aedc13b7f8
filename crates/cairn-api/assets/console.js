// Cairn console: Event history, Insights, Queries, Rules, Trails and Settings. Plain
// JavaScript, no build step and no framework: this file is embedded in the binary as it is.
// Text from events is only ever set with textContent.
'use strict';

(function () {
  const CT = 'com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.';
  const ADMIN = 'CairnAdmin_20261121.';
  const CAIRN = 'Cairn_20261121.';
  const csrfMeta = document.querySelector('meta[name="cairn-csrf"]');
  const CSRF = csrfMeta ? csrfMeta.content : '';

  // ---------------------------------------------------------------------------------------
  // Small helpers

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  /** Builds an element: attributes (booleans as presence), then children (strings as text). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (v === true) node.setAttribute(k, '');
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  const pad = (n) => String(n).padStart(2, '0');
  /** `2020-06-09 13:37:34 UTC`. */
  function fmtTime(ms) {
    const d = new Date(ms);
    if (isNaN(d)) return '';
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }
  /** The value of a datetime-local input holding a UTC time. */
  function toInput(ms) {
    return new Date(ms).toISOString().slice(0, 19);
  }
  function fromInput(v) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(v || '');
    if (!m) return null;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  }

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  function signInAgain() {
    location.assign('/signin?next=' + encodeURIComponent(location.pathname + location.search));
  }

  /** Calls an operation of the JSON API with the session cookie and CSRF token. */
  async function api(target, body) {
    let resp;
    try {
      resp = await fetch('/', {
        method: 'POST',
        credentials: 'same-origin',
        headers: {
          'Content-Type': 'application/x-amz-json-1.1',
          'X-Amz-Target': target,
          'X-Cairn-CSRF': CSRF,
        },
        body: JSON.stringify(body || {}),
      });
    } catch (e) {
      throw new ApiError('NetworkError', 'Cannot reach the Cairn server (' + e.message + ').', 0);
    }
    const text = await resp.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch (e) { data = {}; }
    if (!resp.ok) {
      const code = String(data.__type || '').split('#').pop() || 'HTTP ' + resp.status;
      const message = data.message || data.Message || text || resp.statusText;
      if (code === 'UnrecognizedClientException' || code === 'MissingAuthenticationTokenException') {
        signInAgain();
      }
      throw new ApiError(code, message, resp.status);
    }
    return data;
  }

  const CAIRN_KEYS = ['AwsRegion', 'ErrorCode', 'SourceIpAddress'];

  /** A title and a detail line for an error met while trying `what`. */
  function describeError(err, what) {
    const code = err && err.code ? err.code : 'Error';
    const msg = err && err.message ? err.message : String(err);
    if (code === 'AccessDeniedException') {
      return { title: `You are not allowed to ${what}.`, detail: sentence(msg) + ' Ask an administrator for a policy that allows it.' };
    }
    if (code === 'InvalidLookupAttributesException' && CAIRN_KEYS.some((k) => msg.includes(k))) {
      return {
        title: 'This server cannot filter by AWS region, error code or source IP address.',
        detail: sentence(msg) + ' Remove that filter, or update Cairn.',
      };
    }
    if (code === 'ThrottlingException') {
      return { title: `Cairn is busy and could not ${what}.`, detail: 'Try again in a moment. ' + sentence(msg) };
    }
    if (code === 'NetworkError') return { title: `Could not ${what}.`, detail: msg };
    return { title: `Could not ${what}.`, detail: `${code}: ${msg}` };
  }

  /** Text ending with a full stop, so that another sentence can follow. */
  function sentence(text) {
    const t = String(text || '').trim();
    return /[.!?]$/.test(t) ? t : t + '.';
  }

  function showError(problem) {
    const box = $('[data-testid="error"]');
    if (!box) return;
    box.textContent = '';
    if (!problem) { box.hidden = true; return; }
    box.append(el('strong', { text: problem.title }));
    if (problem.detail) box.append(el('div', { class: 'detail', text: problem.detail }));
    box.hidden = false;
  }

  function setStatus(text) {
    const s = $('#status');
    if (s) s.textContent = text;
  }

  /** Copies text to the clipboard (with a fallback where the Clipboard API is unavailable). */
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back */ }
    }
    const area = el('textarea', { class: 'sr-only', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  /** Pretty-prints JSON text as it is (numbers and member order untouched). */
  function prettyJson(text) {
    let out = '';
    let indent = 0;
    let inString = false;
    const nl = () => '\n' + '  '.repeat(indent);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        out += c;
        if (c === '\\') { out += text[++i] || ''; } else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') { inString = true; out += c; continue; }
      if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
      if (c === '{' || c === '[') {
        // Keep empty objects and lists on one line.
        let j = i + 1;
        while (j < text.length && /\s/.test(text[j])) j++;
        const close = c === '{' ? '}' : ']';
        if (text[j] === close) { out += c + close; i = j; continue; }
        indent++;
        out += c + nl();
      } else if (c === '}' || c === ']') {
        indent = Math.max(0, indent - 1);
        out += nl() + c;
      } else if (c === ',') {
        out += ',' + nl();
      } else if (c === ':') {
        out += ': ';
      } else {
        out += c;
      }
    }
    return out;
  }

  /** An event pattern laid out for reading: the top level's members one a line, and below
   * it whatever fits in `width` columns (lists of values, small objects) on one line. Strings
   * and numbers are kept as written; text that is not JSON is returned as it is. */
  function prettyPattern(text, width = 72) {
    const tokens = [];
    const re = /\s*("(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+)/y;
    let pos = 0;
    while (pos < text.length) {
      re.lastIndex = pos;
      const m = re.exec(text);
      if (!m) {
        if (/^\s*$/.test(text.slice(pos))) break;
        return text;
      }
      tokens.push(m[1]);
      pos = re.lastIndex;
    }
    let i = 0;
    const fail = () => { throw new Error('not JSON'); };
    function value() {
      const t = tokens[i++];
      if (t === '{' || t === '[') {
        const close = t === '{' ? '}' : ']';
        const items = [];
        if (tokens[i] === close) { i++; return { open: t, close, items }; }
        for (;;) {
          let key = null;
          if (t === '{') {
            key = tokens[i++];
            if (!key || key[0] !== '"' || tokens[i++] !== ':') fail();
          }
          items.push({ key, value: value() });
          const sep = tokens[i++];
          if (sep === close) break;
          if (sep !== ',') fail();
        }
        return { open: t, close, items };
      }
      if (t === undefined || '{}[]:,'.includes(t)) fail();
      return { raw: t };
    }
    const member = (x, v) => (x.key === null ? v : `${x.key}: ${v}`);
    function flat(v) {
      if (v.raw !== undefined) return v.raw;
      return v.open + v.items.map((x) => member(x, flat(x.value))).join(', ') + v.close;
    }
    function render(v, indent, used, expand) {
      const one = flat(v);
      if (v.raw !== undefined || (!expand && indent.length + used + one.length <= width) || !v.items.length) return one;
      const inner = indent + '  ';
      const lines = v.items.map((x) => inner + member(x, render(x.value, inner, x.key === null ? 0 : x.key.length + 2, false)));
      return `${v.open}\n${lines.join(',\n')}\n${indent}${v.close}`;
    }
    try {
      const v = value();
      if (i !== tokens.length) return text;
      return render(v, '', 0, true);
    } catch (e) {
      return text;
    }
  }

  /** A modal dialog; resolves with the form's values on OK, null on cancel. */
  function ask({ title, message, confirm, danger, fields, username }) {
    return new Promise((resolve) => {
      const form = el('form', { method: 'dialog' });
      const dialog = el('dialog', { 'data-testid': 'dialog', 'aria-labelledby': 'dialog-title' }, form);
      form.append(el('h2', { id: 'dialog-title', text: title }));
      if (message) form.append(el('p', { text: message }));
      if (username) {
        // For password managers: whose password this is.
        const who = el('input', { type: 'text', name: 'username', autocomplete: 'username', class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
        who.value = username;
        form.append(who);
      }
      for (const f of fields || []) {
        const id = 'dialog-' + f.name;
        form.append(el('label', { for: id, text: f.label }));
        form.append(el('input', {
          id, name: f.name, type: f.type || 'text', required: !!f.required,
          autocomplete: f.autocomplete || 'off', 'data-testid': 'dialog-' + f.name,
        }));
      }
      const ok = el('button', { type: 'submit', value: 'ok', class: danger ? 'btn danger' : 'btn', 'data-testid': 'confirm-yes' }, confirm || 'OK');
      const cancel = el('button', { type: 'button', class: 'btn subtle', 'data-testid': 'confirm-no' }, 'Cancel');
      form.append(el('div', { class: 'buttons' }, cancel, ok));
      let result = null;
      cancel.addEventListener('click', () => dialog.close());
      form.addEventListener('submit', () => {
        result = {};
        for (const f of fields || []) result[f.name] = form.elements[f.name].value;
      });
      dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
      document.body.append(dialog);
      dialog.showModal();
      const first = $('input', dialog);
      (first || ok).focus();
    });
  }

  // Popovers: one open at a time; Escape or a click outside closes it.
  let openPopover = null;
  function setupPopover(button, pop, onOpen) {
    button.addEventListener('click', (e) => {
      e.stopPropagation();
      if (openPopover && openPopover.pop === pop) { closePopover(true); return; }
      closePopover(false);
      pop.hidden = false;
      button.setAttribute('aria-expanded', 'true');
      openPopover = { button, pop };
      if (onOpen) onOpen();
      const first = $('button, input, select', pop);
      if (first) first.focus();
    });
    pop.addEventListener('click', (e) => e.stopPropagation());
  }
  function closePopover(refocus) {
    if (!openPopover) return false;
    const { button, pop } = openPopover;
    pop.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    openPopover = null;
    if (refocus) button.focus();
    return true;
  }
  document.addEventListener('click', () => closePopover(false));

  // ---------------------------------------------------------------------------------------
  // Event history

  const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
  const PRESETS = {
    'now-15m': 'Last 15 minutes', 'now-1h': 'Last hour', 'now-24h': 'Last 24 hours',
    'now-7d': 'Last 7 days', 'now-30d': 'Last 30 days', 'now-90d': 'Last 90 days', all: 'All time',
  };
  const COLUMNS_KEY = 'cairn.console.columns';
  const PAGE_SIZE = 50;

  /** A time of the URL (epoch seconds, now, now-24h, ISO) in ms; null if not one. */
  function resolveTime(s, now) {
    if (s === 'now') return now;
    let m = /^now-(\d+)([smhdw])$/.exec(s);
    if (m) return now - Number(m[1]) * UNIT_MS[m[2]];
    if (/^\d+$/.test(s)) return Number(s) * 1000;
    m = /^\d{4}-\d{2}-\d{2}$/.test(s) ? s + 'T00:00:00Z' : /(Z|[+-]\d\d:?\d\d)$/i.test(s) ? s : s + 'Z';
    const t = Date.parse(m);
    return isNaN(t) ? null : t;
  }

  function eventsPage() {
    const table = $('#events-table');
    const thead = $('thead tr', table);
    const tbody = $('tbody', table);
    const attrSelect = $('[data-testid="filter-attribute"]');
    const valueInput = $('[data-testid="filter-value"]');
    const chips = $('#chips');
    const rangeButton = $('[data-testid="time-range"]');
    const rangePop = $('#range-pop');
    const startInput = $('[data-testid="time-start"]');
    const endInput = $('[data-testid="time-end"]');
    const columnsButton = $('[data-testid="columns-button"]');
    const columnsPop = $('#columns-pop');
    const loadMore = $('[data-testid="load-more"]');
    const noEvents = $('[data-testid="no-events"]');
    const liveStatus = $('[data-testid="live-status"]');
    const liveToggle = $('[data-testid="live-toggle"]');
    const csvLink = $('[data-testid="download-csv"]');
    const jsonLink = $('[data-testid="download-json"]');
    const histogram = $('#histogram');
    const histogramNote = $('#histogram-note');
    const details = $('#event-details');
    const detailsBody = $('#details-body');
    const detailsTitle = $('#details-title');

    // Labels come from the page: one source for the names.
    const LABELS = {};
    for (const o of attrSelect.options) LABELS[o.value] = o.textContent;
    const COLUMNS = $$('input[data-col]', columnsPop).map((box) => ({
      id: box.dataset.col,
      label: box.parentElement.textContent.trim(),
      box,
      byDefault: box.defaultChecked,
    }));
    const FILTERABLE = new Set(Object.keys(LABELS));

    let shown = loadColumns();
    let view = null; // {start, end, filters: [{key, value}]}
    let startMs = null;
    let endMs = null;
    let nextToken = null;
    let loading = false;
    let failed = false; // the last lookup was refused or failed
    let generation = 0;
    let events = []; // models, newest first
    const byId = new Map();
    let histo = null;
    let source = null; // the live EventSource
    let paused = false;
    let pausedAt = 0;
    let retryTimer = 0;
    let liveRetryMs = 5000; // doubled after each refused attempt
    let selectedId = null;
    let lastFocus = null;

    // -- The view in the URL ----------------------------------------------------------

    function readView() {
      const q = new URLSearchParams(location.search);
      const filters = [];
      for (const f of q.getAll('f')) {
        const i = f.indexOf(':');
        if (i > 0) filters.push({ key: f.slice(0, i), value: f.slice(i + 1) });
      }
      return { start: q.get('start') || 'now-24h', end: q.get('end') || 'now', filters };
    }

    function viewQuery(v) {
      const q = new URLSearchParams();
      q.set('start', v.start);
      q.set('end', v.end);
      for (const f of v.filters) q.append('f', f.key + ':' + f.value);
      return q;
    }

    function go(v) {
      history.pushState(null, '', location.pathname + '?' + viewQuery(v).toString());
      load();
    }

    const isLive = () => view.end === 'now';

    function rangeLabel(v) {
      if (v.end === 'now' && PRESETS[v.start]) return PRESETS[v.start];
      const m = /^now-(\d+)([smhdw])$/.exec(v.start);
      if (v.end === 'now' && m) {
        const unit = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' }[m[2]];
        return `Last ${m[1]} ${unit}${m[1] === '1' ? '' : 's'}`;
      }
      const from = startMs === null ? 'the beginning' : fmtTime(startMs);
      const to = v.end === 'now' ? 'now' : fmtTime(endMs);
      return `${from} \u2192 ${to}`;
    }

    // -- Columns ----------------------------------------------------------------------

    function loadColumns() {
      try {
        const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY) || 'null');
        if (Array.isArray(saved)) {
          const ids = saved.filter((id) => COLUMNS.some((c) => c.id === id));
          if (ids.length) return new Set(ids);
        }
      } catch (e) { /* defaults */ }
      return new Set(COLUMNS.filter((c) => c.byDefault).map((c) => c.id));
    }

    function saveColumns() {
      try { localStorage.setItem(COLUMNS_KEY, JSON.stringify([...shown])); } catch (e) { /* private mode */ }
    }

    function visibleColumns() {
      return COLUMNS.filter((c) => shown.has(c.id));
    }

    function renderHead() {
      thead.textContent = '';
      for (const c of visibleColumns()) thead.append(el('th', { scope: 'col', 'data-col': c.id, text: c.label }));
      for (const c of COLUMNS) c.box.checked = shown.has(c.id);
    }

    setupPopover(columnsButton, columnsPop);

    columnsPop.addEventListener('change', (e) => {
      const box = e.target.closest('input[data-col]');
      if (!box) return;
      if (box.checked) shown.add(box.dataset.col);
      else if (shown.size > 1) shown.delete(box.dataset.col);
      else box.checked = true; // keep one column
      saveColumns();
      renderHead();
      rerenderRows();
    });

    // -- Events -----------------------------------------------------------------------

    function model(e) {
      let rec = {};
      try { rec = JSON.parse(e.CloudTrailEvent || '{}') || {}; } catch (err) { rec = {}; }
      const resources = Array.isArray(e.Resources) ? e.Resources : [];
      const str = (v) => (v === undefined || v === null ? '' : String(v));
      return {
        id: e.EventId,
        timeMs: Math.round(Number(e.EventTime) * 1000),
        raw: e,
        rec,
        values: {
          Username: [str(e.Username)],
          EventName: [str(e.EventName)],
          ResourceType: resources.map((r) => str(r.ResourceType)).filter(Boolean),
          ResourceName: resources.map((r) => str(r.ResourceName)).filter(Boolean),
          EventSource: [str(e.EventSource)],
          AccessKeyId: [str(e.AccessKeyId)],
          AwsRegion: [str(rec.awsRegion)],
          ErrorCode: [str(rec.errorCode)],
          SourceIpAddress: [str(rec.sourceIPAddress)],
          ReadOnly: [str(e.ReadOnly)],
          EventId: [str(e.EventId)],
        },
      };
    }

    function cell(m, col) {
      const td = el('td', { 'data-col': col });
      if (col === 'EventTime') {
        td.append(el('time', { datetime: new Date(m.timeMs).toISOString(), text: fmtTime(m.timeMs) }));
        return td;
      }
      const values = [...new Set((m.values[col] || []).filter((v) => v !== ''))];
      if (!values.length) {
        td.append(el('span', { class: 'none', 'aria-label': 'none', text: '-' }));
        return td;
      }
      const label = LABELS[col] || col;
      const buttons = values.map((v) => el('button', {
        type: 'button', class: 'cell-filter', 'data-testid': 'cell-filter',
        'data-key': col, 'data-value': v, title: `Filter by ${label}: ${v}`, text: v,
      }));
      if (buttons.length === 1) td.append(buttons[0]);
      else td.append(el('div', { class: 'stack' }, buttons));
      return td;
    }

    function row(m) {
      const tr = el('tr', { 'data-testid': 'event-row', 'data-event-id': m.id, tabindex: '0' });
      if (m.values.ErrorCode[0] || m.rec.errorMessage) tr.classList.add('failed');
      if (m.id === selectedId) tr.classList.add('selected');
      for (const c of visibleColumns()) tr.append(cell(m, c.id));
      return tr;
    }

    function rerenderRows() {
      const focusedId = document.activeElement && document.activeElement.closest &&
        document.activeElement.closest('tr[data-event-id]') ? document.activeElement.closest('tr').dataset.eventId : null;
      const frag = document.createDocumentFragment();
      for (const m of events) frag.append(row(m));
      tbody.textContent = '';
      tbody.append(frag);
      if (focusedId) {
        const tr = rowOf(focusedId);
        if (tr) tr.focus();
      }
    }

    function rowOf(id) {
      return $$('tr[data-event-id]', tbody).find((tr) => tr.dataset.eventId === id) || null;
    }

    function append(list) {
      const frag = document.createDocumentFragment();
      for (const e of list) {
        if (!e || !e.EventId || byId.has(e.EventId)) continue;
        const m = model(e);
        byId.set(m.id, m);
        events.push(m);
        frag.append(row(m));
      }
      tbody.append(frag);
    }

    function updateFooter() {
      loadMore.hidden = !nextToken;
      loadMore.disabled = loading;
      noEvents.hidden = loading || failed || events.length > 0 || !!nextToken;
      if (loading) setStatus(events.length ? `${events.length} events shown; loading more...` : 'Loading events...');
      else if (events.length) {
        setStatus(`${events.length} event${events.length === 1 ? '' : 's'} shown${nextToken ? '; more to load' : ''}.`);
      } else setStatus('');
    }

    async function loadPage(gen) {
      if (loading) return;
      loading = true;
      updateFooter();
      const body = { LookupAttributes: lookupAttributes(), MaxResults: PAGE_SIZE };
      if (startMs !== null) body.StartTime = startMs / 1000;
      if (!isLive()) body.EndTime = endMs / 1000;
      if (nextToken) body.NextToken = nextToken;
      try {
        const out = await api(CT + 'LookupEvents', body);
        if (gen !== generation) return;
        append(out.Events || []);
        nextToken = out.NextToken || null;
        failed = false;
      } catch (err) {
        if (gen !== generation) return;
        nextToken = null;
        failed = true;
        showError(describeError(err, 'look up events'));
      } finally {
        if (gen === generation) {
          loading = false;
          updateFooter();
          // Keep filling while the end of the table is in sight.
          if (nextToken && inSight(loadMore)) loadPage(gen);
        }
      }
    }

    function inSight(node) {
      if (node.hidden) return false;
      const r = node.getBoundingClientRect();
      return r.top < window.innerHeight + 200 && r.bottom > 0;
    }

    loadMore.addEventListener('click', () => loadPage(generation));
    if ('IntersectionObserver' in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((x) => x.isIntersecting) && nextToken && !loading) loadPage(generation);
      }, { rootMargin: '200px' }).observe(loadMore);
    }

    function lookupAttributes() {
      return view.filters.map((f) => ({ AttributeKey: f.key, AttributeValue: f.value }));
    }

    // -- Filters ----------------------------------------------------------------------

    function renderChips() {
      chips.textContent = '';
      view.filters.forEach((f, i) => {
        const text = `${LABELS[f.key] || f.key}: ${f.value}`;
        const remove = el('button', {
          type: 'button', class: 'chip-remove', 'data-testid': 'filter-chip-remove',
          'aria-label': `Remove filter ${text}`, title: 'Remove filter', 'data-index': i,
        });
        chips.append(el('li', { class: 'chip', 'data-testid': 'filter-chip' },
          el('span', { class: 'chip-text', text }), remove));
      });
    }

    function addFilter(key, value) {
      value = String(value);
      if (!key || value.trim() === '') return;
      if (!view.filters.some((f) => f.key === key && f.value === value)) {
        go({ ...view, filters: [...view.filters, { key, value }] });
      }
    }

    $('#filter-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = valueInput.value.trim();
      if (!value) { valueInput.focus(); return; }
      valueInput.value = '';
      addFilter(attrSelect.value, value);
      valueInput.focus();
    });

    attrSelect.addEventListener('change', () => {
      valueInput.placeholder = attrSelect.value === 'ReadOnly' ? 'true or false' : 'Enter a value';
    });

    chips.addEventListener('click', (e) => {
      const b = e.target.closest('[data-testid="filter-chip-remove"]');
      if (!b) return;
      const i = Number(b.dataset.index);
      const filters = view.filters.filter((_, j) => j !== i);
      go({ ...view, filters });
      // Keep the keyboard somewhere sensible once the chip is gone.
      setTimeout(() => {
        const next = $$('[data-testid="filter-chip-remove"]', chips)[Math.min(i, filters.length - 1)];
        (next || valueInput).focus();
      }, 0);
    });

    // -- Time range -------------------------------------------------------------------

    setupPopover(rangeButton, rangePop, () => {
      const now = Date.now();
      startInput.value = startMs === null ? '' : toInput(startMs);
      endInput.value = isLive() ? '' : toInput(endMs);
      for (const b of $$('.preset', rangePop)) {
        const start = b.dataset.preset === 'all' ? 'all' : 'now-' + b.dataset.preset;
        b.setAttribute('aria-pressed', String(view.end === 'now' && view.start === start));
      }
      endInput.max = toInput(now + 60000);
    });

    rangePop.addEventListener('click', (e) => {
      const b = e.target.closest('.preset');
      if (!b) return;
      const start = b.dataset.preset === 'all' ? 'all' : 'now-' + b.dataset.preset;
      closePopover(true);
      go({ ...view, start, end: 'now' });
    });

    $('#range-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const s = fromInput(startInput.value);
      const t = endInput.value ? fromInput(endInput.value) : null;
      if (s === null && startInput.value) { startInput.focus(); return; }
      if (s !== null && t !== null && s > t) {
        showError({ title: 'The start of the range is after its end.', detail: 'Pick a start before the end.' });
        return;
      }
      closePopover(true);
      go({
        ...view,
        start: s === null ? 'all' : String(Math.floor(s / 1000)),
        end: t === null ? 'now' : String(Math.floor(t / 1000)),
      });
    });

    // -- Histogram --------------------------------------------------------------------

    const W = 1000;
    const H = 100;

    function histogramUnavailable(why) {
      histo = null;
      histogram.textContent = '';
      histogram.classList.add('unavailable');
      histogram.removeAttribute('tabindex');
      histogram.setAttribute('viewBox', `0 0 ${W} 24`);
      histogram.setAttribute('aria-label', 'Histogram unavailable');
      histogramNote.textContent = '';
      histogramNote.append(el('span', { class: 'mid', text: why ? `Histogram unavailable: ${why}` : 'Histogram unavailable' }));
    }

    async function loadHistogram(gen) {
      histogramNote.textContent = 'Counting events...';
      const attrs = lookupAttributes();
      const end = endMs;
      let start = startMs;
      try {
        if (start === null) {
          // All time: find where the events begin, then count from there.
          const wide = await api(CAIRN + 'CountEvents', { LookupAttributes: attrs, StartTime: 0, EndTime: end / 1000, Buckets: 500 });
          if (gen !== generation) return;
          const first = (wide.Buckets || []).find((b) => b.Count > 0);
          start = first ? first.Start * 1000 : end - 864e5;
        }
        if (end - start < 1000) start = end - 1000;
        const out = await api(CAIRN + 'CountEvents', { LookupAttributes: attrs, StartTime: start / 1000, EndTime: end / 1000, Buckets: 60 });
        if (gen !== generation) return;
        const bucketMs = Math.max(1000, Number(out.BucketSeconds || 0) * 1000);
        const n = Math.max(1, Math.ceil((end - start) / bucketMs));
        const counts = new Array(n).fill(0);
        for (const b of out.Buckets || []) {
          const i = Math.floor((b.Start * 1000 - start) / bucketMs);
          if (i >= 0 && i < n) counts[i] += Number(b.Count) || 0;
        }
        histo = {
          start, end, bucketMs, counts, total: Number(out.Total) || 0,
          partial: !!out.Partial, completeFrom: out.CompleteFrom ? out.CompleteFrom * 1000 : start,
        };
        drawHistogram();
      } catch (err) {
        if (gen !== generation) return;
        if (err.code === 'UnknownOperationException') histogramUnavailable('');
        else if (err.code === 'AccessDeniedException') histogramUnavailable('not allowed');
        else histogramUnavailable(err.message);
      }
    }

    function drawHistogram() {
      histogram.textContent = '';
      histogram.classList.remove('unavailable');
      if (!histo) return;
      const { counts, start, bucketMs } = histo;
      const n = counts.length;
      const max = Math.max(1, ...counts);
      histogram.setAttribute('viewBox', `0 0 ${W} ${H}`);
      histogram.setAttribute('aria-label', `${histo.total} events between ${fmtTime(histo.start)} and ${fmtTime(histo.end)}; drag across the chart, or use the arrow keys and Enter, to narrow the time range`);
      const w = W / n;
      counts.forEach((c, i) => {
        const h = c === 0 ? 0 : Math.max(3, (c / max) * (H - 4));
        const bucketStart = start + i * bucketMs;
        const rect = svgEl('rect', {
          class: histo.partial && bucketStart + bucketMs <= histo.completeFrom ? 'bar partial' : 'bar',
          x: (i * w + w * 0.08).toFixed(2), y: (H - h).toFixed(2),
          width: Math.max(0.5, w * 0.84).toFixed(2), height: h.toFixed(2),
          'data-count': c,
        });
        const title = svgEl('title');
        title.textContent = `${fmtTime(bucketStart)} \u2013 ${fmtTime(Math.min(bucketStart + bucketMs, histo.end))}: ${c} event${c === 1 ? '' : 's'}`;
        rect.append(title);
        histogram.append(rect);
      });
      histogram.append(svgEl('line', { class: 'baseline', x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5 }));
      histogram.setAttribute('tabindex', '0');
      histogramNote.textContent = '';
      const note = `${histo.total.toLocaleString('en')} event${histo.total === 1 ? '' : 's'}` +
        (histo.partial ? ` (counts before ${fmtTime(histo.completeFrom)} are partial)` : '') +
        ` \u00b7 up to ${max.toLocaleString('en')} per ${spanText(bucketMs)}`;
      histogramNote.append(
        el('span', { text: fmtTime(histo.start) }),
        el('span', { class: 'mid', text: note }),
        el('span', { text: isLive() ? 'now' : fmtTime(histo.end) }),
      );
    }

    function spanText(ms) {
      const units = [[6048e5, 'week'], [864e5, 'day'], [36e5, 'hour'], [6e4, 'minute'], [1e3, 'second']];
      for (const [size, name] of units) {
        if (ms >= size && (ms % size === 0 || size >= 864e5 || ms >= 10 * size)) {
          const n = Math.round((ms / size) * 10) / 10;
          return n === 1 ? name : `${n.toLocaleString('en')} ${name}s`;
        }
      }
      return `${ms / 1000} seconds`;
    }

    function bumpHistogram(timeMs) {
      if (!histo) return;
      const i = Math.floor((timeMs - histo.start) / histo.bucketMs);
      if (i < 0) return;
      if (i >= histo.counts.length) {
        // The range ends now, and now has moved on.
        if (!isLive()) return;
        while (histo.counts.length <= i) histo.counts.push(0);
        histo.end = histo.start + histo.counts.length * histo.bucketMs;
      }
      histo.counts[i] += 1;
      histo.total += 1;
      drawHistogram();
    }

    // Drag across the histogram to narrow the range; a click zooms into one bar.
    let drag = null;
    const fraction = (clientX) => {
      const r = histogram.getBoundingClientRect();
      return Math.min(1, Math.max(0, (clientX - r.left) / Math.max(1, r.width)));
    };
    histogram.addEventListener('pointerdown', (e) => {
      if (!histo || e.button !== 0) return;
      e.preventDefault();
      histogram.setPointerCapture(e.pointerId);
      const f = fraction(e.clientX);
      const sel = svgEl('rect', { class: 'selection', x: f * W, y: 0, width: 0, height: H });
      histogram.append(sel);
      drag = { from: f, to: f, x0: e.clientX, sel };
    });
    histogram.addEventListener('pointermove', (e) => {
      if (!drag) return;
      drag.to = fraction(e.clientX);
      const a = Math.min(drag.from, drag.to);
      const b = Math.max(drag.from, drag.to);
      drag.sel.setAttribute('x', a * W);
      drag.sel.setAttribute('width', (b - a) * W);
    });
    function endDrag(e, cancel) {
      if (!drag) return;
      const d = drag;
      drag = null;
      d.sel.remove();
      if (cancel || !histo) return;
      const span = histo.counts.length * histo.bucketMs;
      let a = Math.min(d.from, d.to);
      let b = Math.max(d.from, d.to);
      if (Math.abs(e.clientX - d.x0) < 4) {
        // A click: the bucket under the pointer.
        const i = Math.min(histo.counts.length - 1, Math.floor(d.from * histo.counts.length));
        a = i / histo.counts.length;
        b = (i + 1) / histo.counts.length;
      }
      const s = Math.floor((histo.start + a * span) / 1000);
      const t = Math.ceil((histo.start + b * span) / 1000);
      if (t <= s) return;
      const now = Date.now();
      go({ ...view, start: String(s), end: t * 1000 >= now ? 'now' : String(t) });
    }
    // The keyboard: arrows move between bars, Enter narrows the range to the bar.
    let cursor = -1;
    function showCursor() {
      const old = $('.cursor', histogram);
      if (old) old.remove();
      if (!histo || cursor < 0) return;
      const w = W / histo.counts.length;
      histogram.append(svgEl('rect', { class: 'selection cursor', x: cursor * w, y: 0, width: w, height: H }));
      const from = histo.start + cursor * histo.bucketMs;
      const c = histo.counts[cursor];
      setStatus(`${fmtTime(from)} – ${fmtTime(Math.min(from + histo.bucketMs, histo.end))}: ${c} event${c === 1 ? '' : 's'}. Enter narrows the range to it.`);
    }
    histogram.addEventListener('keydown', (e) => {
      if (!histo) return;
      const n = histo.counts.length;
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft' || e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        if (e.key === 'Home') cursor = 0;
        else if (e.key === 'End') cursor = n - 1;
        else cursor = Math.max(0, Math.min(n - 1, (cursor < 0 ? n : cursor) + (e.key === 'ArrowRight' ? 1 : -1)));
        showCursor();
      } else if (e.key === 'Enter' && cursor >= 0) {
        e.preventDefault();
        const s = Math.floor((histo.start + cursor * histo.bucketMs) / 1000);
        const t = Math.ceil(Math.min(histo.start + (cursor + 1) * histo.bucketMs, histo.end) / 1000);
        cursor = -1;
        if (t > s) go({ ...view, start: String(s), end: t * 1000 >= Date.now() ? 'now' : String(t) });
      }
    });
    histogram.addEventListener('blur', () => { cursor = -1; showCursor(); });
    histogram.addEventListener('pointerup', (e) => endDrag(e, false));
    histogram.addEventListener('pointercancel', (e) => endDrag(e, true));

    // -- Details ----------------------------------------------------------------------

    function openDetails(id) {
      const m = byId.get(id);
      if (!m) return;
      const tr = rowOf(id);
      if (!details.hidden && selectedId === id) { details.focus(); return; }
      for (const r of $$('tr.selected', tbody)) r.classList.remove('selected');
      if (tr) { tr.classList.add('selected'); lastFocus = tr; }
      selectedId = id;
      renderDetails(m);
      details.hidden = false;
      document.body.classList.add('details-open');
      details.focus();
    }

    function closeDetails() {
      if (details.hidden) return false;
      details.hidden = true;
      document.body.classList.remove('details-open');
      for (const r of $$('tr.selected', tbody)) r.classList.remove('selected');
      const back = selectedId ? rowOf(selectedId) : lastFocus;
      selectedId = null;
      if (back) back.focus();
      return true;
    }

    function jsonBlock(testid, value) {
      let text;
      if (value === undefined) text = '(absent)';
      else text = JSON.stringify(value, null, 2);
      return el('pre', { class: 'json', 'data-testid': testid, tabindex: '0', text });
    }

    function renderDetails(m) {
      const r = m.rec || {};
      const who = r.userIdentity || {};
      const e = m.raw;
      detailsTitle.textContent = `${e.EventName || 'Event'} \u00b7 ${fmtTime(m.timeMs)}`;
      detailsBody.textContent = '';
      const failed = !!(r.errorCode || r.errorMessage) ||
        (r.responseElements && r.responseElements.ConsoleLogin === 'Failure');
      const outcome = failed ? 'Failed: ' + [r.errorCode, r.errorMessage].filter(Boolean).join(' \u2014 ') : 'Succeeded';
      const resources = (e.Resources || []).map((x) => [x.ResourceType, x.ResourceName].filter(Boolean).join(': '));
      const items = [
        ['User name', 'username', e.Username || who.userName || ''],
        ['ARN', 'arn', who.arn || '', true],
        ['Identity type', 'identity-type', who.type || ''],
        ['Event time', 'event-time', fmtTime(m.timeMs)],
        ['Event name', 'event-name', e.EventName || r.eventName || ''],
        ['Event source', 'event-source', e.EventSource || r.eventSource || ''],
        ['Source IP address', 'source-ip', r.sourceIPAddress || '', true],
        ['AWS region', 'region', r.awsRegion || ''],
        ['AWS access key', 'access-key', who.accessKeyId || e.AccessKeyId || '', true],
        ['User agent', 'user-agent', r.userAgent || ''],
        ['Resources', 'resources', resources.join('\n')],
        ['Outcome', 'outcome', outcome],
        ['Read-only', 'read-only', r.readOnly === undefined ? (e.ReadOnly || '') : String(r.readOnly)],
        ['Event ID', 'event-id', m.id, true],
        ['Request ID', 'request-id', r.requestID || '', true],
        ['Event type', 'event-type', [r.eventType, r.eventCategory].filter(Boolean).join(' \u00b7 ')],
        ['Recipient account', 'account', r.recipientAccountId || '', true],
      ];
      const dl = el('dl', { class: 'summary' });
      for (const [label, field, value, mono] of items) {
        const dd = el('dd', { 'data-field': field, class: mono ? 'mono' : null, text: value === '' ? '-' : value });
        if (field === 'outcome') dd.classList.add(failed ? 'outcome-bad' : 'outcome-ok');
        if (field === 'resources') dd.classList.add('lines');
        dl.append(el('dt', { text: label }), dd);
      }
      detailsBody.append(dl);
      detailsBody.append(el('h3', { text: 'Request parameters' }), jsonBlock('request-parameters', r.requestParameters));
      detailsBody.append(el('h3', { text: 'Response elements' }), jsonBlock('response-elements', r.responseElements));
      const whole = prettyJson(e.CloudTrailEvent || JSON.stringify(r));
      const copy = el('button', { type: 'button', class: 'btn subtle small', 'data-testid': 'copy-json' }, 'Copy JSON');
      copy.addEventListener('click', async () => {
        const ok = await copyText(whole);
        copy.textContent = ok ? 'Copied' : 'Copy failed: select the text';
        setTimeout(() => { copy.textContent = 'Copy JSON'; }, 2000);
      });
      detailsBody.append(el('h3', {}, 'Event record', copy));
      detailsBody.append(el('pre', { class: 'json', 'data-testid': 'event-json', tabindex: '0', text: whole }));
      detailsBody.scrollTop = 0;
    }

    $('[data-testid="details-close"]').addEventListener('click', closeDetails);

    // -- Table interaction ------------------------------------------------------------

    tbody.addEventListener('click', (e) => {
      const b = e.target.closest('[data-testid="cell-filter"]');
      if (b) {
        e.stopPropagation();
        addFilter(b.dataset.key, b.dataset.value);
        return;
      }
      const tr = e.target.closest('tr[data-event-id]');
      if (!tr) return;
      // Selecting text in a row is not a click on it.
      const sel = window.getSelection && window.getSelection();
      if (sel && sel.type === 'Range' && String(sel).length > 0) return;
      openDetails(tr.dataset.eventId);
    });

    tbody.addEventListener('keydown', (e) => {
      const tr = e.target.closest('tr[data-event-id]');
      if (!tr) return;
      if (e.target === tr && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        openDetails(tr.dataset.eventId);
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        const next = e.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) {
          e.preventDefault();
          next.focus();
          if (!details.hidden) openDetails(next.dataset.eventId);
        }
      }
    });

    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      if (document.querySelector('dialog[open]')) return;
      if (closePopover(true)) { e.preventDefault(); return; }
      if (closeDetails()) e.preventDefault();
    });

    // -- Live -------------------------------------------------------------------------

    function setLive(text, kind) {
      liveStatus.textContent = text;
      liveStatus.classList.toggle('on', kind === 'on');
      liveStatus.classList.toggle('warn', kind === 'warn');
    }

    function updateLiveControls() {
      if (!isLive()) {
        liveToggle.disabled = true;
        liveToggle.textContent = 'Pause';
        liveToggle.setAttribute('aria-pressed', 'false');
        liveToggle.title = 'Live updates need a time range that ends now';
        setLive('Not live', '');
        liveStatus.title = 'Live updates need a time range that ends now';
        return;
      }
      liveToggle.disabled = false;
      liveToggle.title = '';
      liveStatus.title = '';
      liveToggle.textContent = paused ? 'Resume' : 'Pause';
      liveToggle.setAttribute('aria-pressed', String(paused));
      if (paused) setLive('Paused', '');
    }

    function closeLive() {
      clearTimeout(retryTimer);
      if (source) { source.close(); source = null; }
    }

    function openLive(sinceMs, gen) {
      closeLive();
      updateLiveControls();
      if (!isLive() || paused) return;
      const q = viewQuery(view);
      q.set('since', String(Math.floor(sinceMs)));
      q.set('csrf', CSRF);
      setLive('Connecting', 'warn');
      const es = new EventSource('/v1/console/live?' + q.toString());
      source = es;
      es.addEventListener('open', () => {
        if (source !== es) return;
        liveRetryMs = 5000;
        setLive('Live', 'on');
      });
      es.addEventListener('events', (msg) => {
        if (source !== es || gen !== generation) return;
        let data;
        try { data = JSON.parse(msg.data); } catch (err) { return; }
        insertLive(data.Events || []);
      });
      es.addEventListener('ended', () => { es.close(); signInAgain(); });
      es.addEventListener('error', async () => {
        if (source !== es) return;
        if (es.readyState === EventSource.CONNECTING) { setLive('Reconnecting', 'warn'); return; }
        // Closed for good (refused): tell why, and try again later.
        source = null;
        const r = await fetch('/v1/session', { credentials: 'same-origin' }).catch(() => null);
        if (r && r.status === 401) { signInAgain(); return; }
        setLive('Live unavailable', 'warn');
        liveRetryMs = Math.min(liveRetryMs * 2, 5 * 60 * 1000);
        retryTimer = setTimeout(() => { if (gen === generation && !paused) openLive(Date.now() - 60000, gen); }, liveRetryMs);
      });
    }

    function insertLive(list) {
      let added = 0;
      const fresh = [];
      for (const e of list) {
        if (!e || !e.EventId || byId.has(e.EventId)) continue;
        const m = model(e);
        // Older than every event loaded while more are still to load: paging brings it.
        const last = events[events.length - 1];
        if (nextToken && last && m.timeMs < last.timeMs) continue;
        if (startMs !== null && m.timeMs < startMs) continue;
        let i = events.findIndex((x) => x.timeMs < m.timeMs);
        if (i < 0) i = events.length;
        events.splice(i, 0, m);
        byId.set(m.id, m);
        const tr = row(m);
        tr.classList.add('new');
        const before = tbody.children[i] || null;
        tbody.insertBefore(tr, before);
        fresh.push(m);
        added++;
      }
      if (!added) return;
      for (const m of fresh) bumpHistogram(m.timeMs);
      updateFooter();
      setStatus(`${added} new event${added === 1 ? '' : 's'}. ${events.length} shown${nextToken ? '; more to load' : ''}.`);
    }

    liveToggle.addEventListener('click', () => {
      if (!isLive()) return;
      paused = !paused;
      if (paused) {
        pausedAt = Date.now();
        closeLive();
        updateLiveControls();
      } else if (Date.now() - pausedAt > 10 * 60 * 1000) {
        load(); // too long to catch up with: start afresh
      } else {
        openLive(pausedAt - 60000, generation);
      }
    });

    // -- Loading a view ---------------------------------------------------------------

    function exportHref(format) {
      const q = viewQuery(view);
      q.set('format', format);
      q.set('csrf', CSRF);
      return '/v1/console/export?' + q.toString();
    }

    function load() {
      const gen = ++generation;
      closeLive();
      closePopover(false);
      showError(null);
      view = readView();
      const now = Date.now();
      startMs = view.start === 'all' ? null : resolveTime(view.start, now);
      endMs = view.end === 'now' ? now : resolveTime(view.end, now);
      if ((view.start !== 'all' && startMs === null) || endMs === null) {
        showError({ title: 'The time range in this address is not valid.', detail: `start=${view.start} end=${view.end}: showing the last 24 hours instead.` });
        view = { ...view, start: 'now-24h', end: 'now' };
        startMs = now - 864e5;
        endMs = now;
      }
      rangeButton.textContent = rangeLabel(view);
      rangeButton.title = (startMs === null ? 'All time' : fmtTime(startMs)) + ' \u2192 ' + (isLive() ? 'now' : fmtTime(endMs));
      renderChips();
      csvLink.href = exportHref('csv');
      jsonLink.href = exportHref('json');
      events = [];
      byId.clear();
      nextToken = null;
      loading = false;
      failed = false;
      tbody.textContent = '';
      if (!details.hidden) {
        details.hidden = true;
        document.body.classList.remove('details-open');
        selectedId = null;
      }
      updateFooter();
      loadHistogram(gen);
      updateLiveControls();
      loadPage(gen).then(() => {
        if (gen !== generation) return;
        if (failed) {
          // No live updates for a view that cannot be looked up.
          closeLive();
          if (isLive()) {
            setLive('Not live', '');
            liveToggle.disabled = true;
          }
          return;
        }
        // A link to one event (an alert's, say) opens its details.
        const one = view.filters.length === 1 && view.filters[0].key === 'EventId' ? view.filters[0].value : null;
        if (one && byId.has(one) && details.hidden) openDetails(one);
        openLive(now - 60000, gen);
      });
    }

    window.addEventListener('popstate', load);
    renderHead();
    load();
  }

  // ---------------------------------------------------------------------------------------
  // Insights: CloudTrail Insights events, one row per incident, and the rate around one

  const INSIGHT_RANGES = { '24h': 864e5, '7d': 7 * 864e5, '30d': 30 * 864e5, '90d': 90 * 864e5 };
  const DEFAULT_INSIGHT_RANGE = '90d';
  const INSIGHT_TYPES = { ApiCallRateInsight: 'API call rate', ApiErrorRateInsight: 'API error rate' };
  const ATTRIBUTIONS = { userIdentityArn: 'User identity ARN', userAgent: 'User agent', errorCode: 'Error code' };
  /** Insights records read for one view at most (100 pages). */
  const INSIGHT_RECORDS_MAX = 5000;
  /** Minutes of ordinary activity shown on each side of an incident. */
  const CHART_MARGIN_MIN = 60;
  /** Bucket sizes (minutes) the chart may use when 1-minute buckets would be too many. */
  const CHART_STEPS = [2, 3, 5, 10, 15, 20, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080];
  const MIN_MS = 6e4;

  /** A per-minute rate, rounded to what a reader can use: 0.0000882, 0.667, 4.33, 15.3, 1,234. */
  function fmtRate(x) {
    if (x === null || x === undefined || x === '') return '-';
    x = Number(x);
    if (!isFinite(x)) return '-';
    if (x === 0) return '0';
    const a = Math.abs(x);
    if (a >= 100) return Math.round(x).toLocaleString('en');
    if (a >= 10) return String(Math.round(x * 10) / 10);
    const digits = Math.min(15, Math.max(0, 2 - Math.floor(Math.log10(a))));
    const s = x.toFixed(digits);
    return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
  }

  /** Minutes as `45 min`, `2 h 5 min`, `3 days 4 h`. */
  function fmtMinutes(m) {
    if (m === null || m === undefined || m === '' || !isFinite(Number(m))) return '-';
    m = Math.round(Number(m));
    if (m < 60) return `${m} min`;
    if (m < 1440) return `${Math.floor(m / 60)} h` + (m % 60 ? ` ${m % 60} min` : '');
    const d = Math.floor(m / 1440);
    const h = Math.round((m % 1440) / 60);
    return `${d} day${d === 1 ? '' : 's'}` + (h ? ` ${h} h` : '');
  }

  /** `13:37` (UTC), with the date when `withDate`. */
  function fmtClock(ms, withDate) {
    const d = new Date(ms);
    const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    return withDate ? `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${clock}` : clock;
  }

  const fmtDay = (ms) => new Date(ms).toISOString().slice(0, 10);

  /** Text that may wrap after its dots and between the words of a camel-case name only. */
  function breakable(text) {
    const frag = document.createDocumentFragment();
    String(text).split(/(?<=\.)|(?<=[a-z])(?=[A-Z])/).forEach((part, i) => {
      if (i) frag.append(document.createElement('wbr'));
      frag.append(part);
    });
    return frag;
  }

  /** A round number at or above `x` (1, 2, 2.5, 5 times a power of ten). */
  function niceCeil(x) {
    if (!(x > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x - 1e-12) return m * p;
    return 10 * p;
  }

  function insightsPage() {
    const rangeBox = $('[data-testid="insights-range"]');
    const filterInput = $('[data-testid="insights-filter"]');
    const refreshButton = $('[data-testid="insights-refresh"]');
    const table = $('#insights-table');
    const tbody = $('tbody', table);
    const noInsights = $('[data-testid="no-insights"]');
    const noMatches = $('[data-testid="no-matches"]');
    const card = $('#insight-detail');
    const title = $('#insight-title');
    const sub = $('#insight-sub');
    const eventsLink = $('#insight-events-link');
    const chart = $('#insight-chart');
    const summary = $('#chart-summary');
    const readout = $('#chart-readout');
    const statsBox = $('#insight-stats');
    const attributionsBox = $('#insight-attributions');
    const recordsBox = $('#insight-records');

    let state = null; // {range, q, insight}
    let incidents = []; // newest first
    const byId = new Map();
    let loaded = false;
    let failed = false;
    let truncated = false;
    let listGen = 0;
    let detailGen = 0;
    let shown = null; // the incident in the card
    let series = null; // the chart's data: {from, stepMs, per, rates, partial, completeFrom, unit}
    let cursor = -1;

    // -- The view in the URL ----------------------------------------------------------

    function readState() {
      const q = new URLSearchParams(location.search);
      const range = q.get('range');
      return {
        range: INSIGHT_RANGES[range] ? range : DEFAULT_INSIGHT_RANGE,
        q: q.get('q') || '',
        insight: q.get('insight') || '',
      };
    }

    function urlOf(st) {
      const q = new URLSearchParams();
      if (st.insight) q.set('insight', st.insight);
      q.set('range', st.range);
      if (st.q) q.set('q', st.q);
      return location.pathname + '?' + q.toString();
    }

    function setState(next, { replace = false } = {}) {
      state = next;
      const url = urlOf(state);
      if (url === location.pathname + location.search) return;
      if (replace) history.replaceState(null, '', url);
      else history.pushState(null, '', url);
    }

    // -- Records and incidents --------------------------------------------------------

    function parseRecord(e) {
      let rec = {};
      try { rec = JSON.parse(e.CloudTrailEvent || '{}') || {}; } catch (err) { rec = {}; }
      const timeMs = e.EventTime !== undefined ? Math.round(Number(e.EventTime) * 1000) : Date.parse(rec.eventTime);
      return { rec, raw: e.CloudTrailEvent || JSON.stringify(rec), timeMs };
    }

    const detailsOf = (r) => (r && r.rec && r.rec.insightDetails) || {};
    const statsOf = (r) => {
      const ctx = detailsOf(r).insightContext || {};
      return ctx.statistics || {};
    };
    const num = (v) => (v === undefined || v === null || v === '' || !isFinite(Number(v)) ? null : Number(v));

    /** The incidents of a list of Insights records: Start and End paired by sharedEventID. */
    function pair(records) {
      const map = new Map();
      for (const r of records) {
        const id = r.rec.sharedEventID || r.rec.eventID;
        if (!id) continue;
        const slot = map.get(id) || { id, start: null, end: null };
        if (detailsOf(r).state === 'End') slot.end = slot.end || r;
        else slot.start = slot.start || r;
        map.set(id, slot);
      }
      return [...map.values()].map(incident);
    }

    function incident(slot) {
      const main = slot.end || slot.start;
      const d = detailsOf(main);
      const st = statsOf(main);
      const duration = num(st.insightDuration);
      const endMs = slot.end ? slot.end.timeMs : null;
      let startMs = slot.start ? slot.start.timeMs : null;
      // The Start record is older than the range: its time, from the End record's duration.
      const derivedStart = startMs === null;
      if (derivedStart) startMs = endMs - (duration || 0) * MIN_MS;
      const startStats = slot.start ? statsOf(slot.start) : {};
      return {
        id: slot.id,
        start: slot.start,
        end: slot.end,
        startMs,
        endMs,
        derivedStart,
        ongoing: !slot.end,
        source: d.eventSource || '',
        name: d.eventName || '',
        type: d.insightType || '',
        errorCode: d.errorCode || '',
        region: main.rec.awsRegion || '',
        baseline: num((st.baseline || {}).average),
        average: num((st.insight || {}).average),
        startAverage: num((startStats.insight || {}).average),
        duration,
        baselineDuration: num(st.baselineDuration),
      };
    }

    const typeLabel = (inc) => INSIGHT_TYPES[inc.type] || inc.type || 'Insight';
    const isErrorRate = (inc) => inc.type === 'ApiErrorRateInsight';
    const unitOf = (inc) => (isErrorRate(inc) ? 'errors per minute' : 'calls per minute');

    function matches(inc, q) {
      if (!q) return true;
      const needle = q.trim().toLowerCase();
      return !needle || inc.source.toLowerCase().includes(needle) || inc.name.toLowerCase().includes(needle);
    }

    // -- The list ---------------------------------------------------------------------

    function timeCell(col, ms, note) {
      const td = el('td', { 'data-col': col });
      const [date, ...clock] = fmtTime(ms).split(' ');
      td.append(el('time', { datetime: new Date(ms).toISOString() },
        el('span', { class: 'date', text: date }), ' ', el('span', { class: 'clock', text: clock.join(' ') })));
      if (note) td.append(el('span', { class: 'sub', text: note }));
      return td;
    }

    function row(inc) {
      const tr = el('tr', {
        'data-testid': 'insight-row', 'data-insight-id': inc.id, tabindex: '0',
        'aria-label': `${inc.name} (${inc.source}), ${typeLabel(inc)}${inc.errorCode ? ' ' + inc.errorCode : ''}, from ${fmtTime(inc.startMs)}${inc.ongoing ? ', ongoing' : ' to ' + fmtTime(inc.endMs)}`,
      });
      if (state.insight === inc.id) { tr.classList.add('selected'); tr.setAttribute('aria-current', 'true'); }
      tr.append(timeCell('start', inc.startMs, inc.derivedStart ? 'before the range' : ''));
      if (inc.ongoing) {
        tr.append(el('td', { 'data-col': 'end' }, el('span', { class: 'tag warn', 'data-testid': 'ongoing', text: 'Ongoing' })));
      } else {
        tr.append(timeCell('end', inc.endMs));
      }
      tr.append(el('td', { 'data-col': 'source' }, breakable(inc.source)));
      tr.append(el('td', { 'data-col': 'name', class: 'strong' }, breakable(inc.name)));
      const type = el('td', { 'data-col': 'type' }, el('span', { class: isErrorRate(inc) ? 'tag bad' : 'tag info', text: isErrorRate(inc) ? 'Error rate' : 'Call rate' }));
      if (inc.errorCode) type.append(el('span', { class: 'sub', 'data-testid': 'insight-error-code', text: inc.errorCode }));
      tr.append(type);
      tr.append(el('td', { 'data-col': 'baseline', class: 'num', text: fmtRate(inc.baseline) }));
      tr.append(el('td', { 'data-col': 'insight', class: 'num' }, el('strong', { text: fmtRate(inc.average) })));
      tr.append(el('td', { 'data-col': 'duration', class: 'num', text: inc.duration === null ? '-' : fmtMinutes(inc.duration) + (inc.ongoing ? ' so far' : '') }));
      return tr;
    }

    function rowOf(id) {
      return $$('tr[data-insight-id]', tbody).find((tr) => tr.dataset.insightId === id) || null;
    }

    function renderRows() {
      const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('tr[data-insight-id]');
      const focusedId = focused ? focused.dataset.insightId : null;
      const visible = incidents.filter((inc) => matches(inc, state.q));
      tbody.textContent = '';
      const frag = document.createDocumentFragment();
      for (const inc of visible) frag.append(row(inc));
      tbody.append(frag);
      table.parentElement.hidden = loaded && incidents.length === 0;
      noInsights.hidden = !loaded || failed || incidents.length > 0;
      noMatches.hidden = !loaded || incidents.length === 0 || visible.length > 0;
      if (!loaded) setStatus(failed ? '' : 'Loading Insights events...');
      else if (incidents.length) {
        const n = visible.length;
        const of = n === incidents.length ? '' : ` of ${incidents.length}`;
        setStatus(`${n}${of} insight${incidents.length === 1 ? '' : 's'} in the last ${rangeText(state.range)}` +
          (truncated ? ` (the newest ${INSIGHT_RECORDS_MAX.toLocaleString('en')} records only: pick a shorter range for the rest).` : '.'));
      } else setStatus('');
      if (focusedId) {
        const tr = rowOf(focusedId);
        if (tr) tr.focus();
      }
    }

    const rangeText = (r) => ({ '24h': '24 hours', '7d': '7 days', '30d': '30 days', '90d': '90 days' }[r] || r);

    async function lookupAll(body, gen, isCurrent, limit) {
      const out = [];
      let token = null;
      let more = false;
      do {
        const page = await api(CT + 'LookupEvents', token ? { ...body, NextToken: token } : body);
        if (!isCurrent(gen)) return null;
        for (const e of page.Events || []) out.push(parseRecord(e));
        token = page.NextToken || null;
        if (token && out.length >= limit) { more = true; break; }
      } while (token);
      return { records: out, more };
    }

    async function loadList({ keepDetail = false } = {}) {
      const gen = ++listGen;
      showError(null);
      loaded = false;
      failed = false;
      renderRows();
      refreshButton.disabled = true;
      const now = Date.now();
      const body = {
        EventCategory: 'insight', MaxResults: 50,
        StartTime: Math.floor((now - INSIGHT_RANGES[state.range]) / 1000), EndTime: Math.ceil(now / 1000),
      };
      let got;
      try {
        got = await lookupAll(body, gen, (g) => g === listGen, INSIGHT_RECORDS_MAX);
        if (!got) return;
      } catch (err) {
        if (gen !== listGen) return;
        failed = true;
        loaded = true;
        incidents = [];
        byId.clear();
        refreshButton.disabled = false;
        renderRows();
        showError(describeError(err, 'look up Insights events'));
        return;
      }
      truncated = got.more;
      incidents = pair(got.records).sort((a, b) => b.startMs - a.startMs || (a.id < b.id ? -1 : 1));
      byId.clear();
      for (const inc of incidents) byId.set(inc.id, inc);
      loaded = true;
      refreshButton.disabled = false;
      renderRows();
      showSelected({ reload: !keepDetail });
    }

    // -- Selection --------------------------------------------------------------------

    function markSelected() {
      for (const tr of $$('tr[data-insight-id]', tbody)) {
        const on = tr.dataset.insightId === state.insight;
        tr.classList.toggle('selected', on);
        if (on) tr.setAttribute('aria-current', 'true');
        else tr.removeAttribute('aria-current');
      }
    }

    function select(id, { focusCard = true } = {}) {
      if (state.insight === id && !card.hidden && shown && shown.id === id) {
        if (focusCard) card.focus();
        return;
      }
      if (state.insight !== id) setState({ ...state, insight: id });
      markSelected();
      showSelected({ reload: true, focusCard });
    }

    function closeCard() {
      if (card.hidden) return false;
      const id = state.insight;
      setState({ ...state, insight: '' });
      markSelected();
      hideCard();
      const tr = id ? rowOf(id) : null;
      if (tr) tr.focus();
      return true;
    }

    function hideCard() {
      detailGen++;
      shown = null;
      series = null;
      card.hidden = true;
    }

    /** Shows the incident the URL names (if the list has it). */
    function showSelected({ reload = true, focusCard = false } = {}) {
      if (!state.insight) { hideCard(); return; }
      if (!loaded) return;
      const inc = byId.get(state.insight);
      if (!inc) {
        hideCard();
        if (!failed) {
          showError({
            title: 'This insight is not in the chosen time range.',
            detail: `No Insights event with the shared event ID ${state.insight} in the last ${rangeText(state.range)}: pick a longer range, or it is older than Cairn keeps.`,
          });
        }
        return;
      }
      if (!reload && shown && shown.id === inc.id) { renderCard(inc, false); return; }
      // Shown first, so that the chart is drawn at the card's width.
      card.hidden = false;
      renderCard(inc, true);
      if (focusCard) card.focus();
    }

    // -- The card ---------------------------------------------------------------------

    /** The Events page over the events behind the incident. */
    function eventsHref(inc) {
      const q = new URLSearchParams();
      // The End event's time is the end of the incident's last minute: the range stops a
      // second before it (event times are whole seconds; the Events page's end is inclusive).
      const start = Math.floor(inc.startMs / 1000);
      q.set('start', String(start));
      q.set('end', inc.ongoing ? 'now' : String(Math.max(start, Math.ceil(inc.endMs / 1000) - 1)));
      q.append('f', 'EventSource:' + inc.source);
      q.append('f', 'EventName:' + inc.name);
      if (inc.region) q.append('f', 'AwsRegion:' + inc.region);
      if (isErrorRate(inc) && inc.errorCode) q.append('f', 'ErrorCode:' + inc.errorCode);
      return '/console/events?' + q.toString();
    }

    function renderCard(inc, fresh) {
      const gen = fresh ? ++detailGen : detailGen;
      shown = inc;
      title.textContent = `${inc.name} \u00b7 ${typeLabel(inc)}${inc.errorCode ? ` (${inc.errorCode})` : ''}`;
      sub.textContent = `${inc.source}${inc.region ? ' in ' + inc.region : ''} \u00b7 ${fmtTime(inc.startMs)} \u2192 ${inc.ongoing ? 'ongoing' : fmtTime(inc.endMs)}`;
      eventsLink.href = eventsHref(inc);
      eventsLink.title = `Event history: ${inc.source} ${inc.name}${isErrorRate(inc) && inc.errorCode ? ' failing with ' + inc.errorCode : ''}, during the insight`;
      renderStats(inc);
      renderAttributions(inc);
      renderRecords(inc);
      if (fresh) {
        series = null;
        cursor = -1;
        readout.textContent = '';
        drawChart(inc);
        loadSeries(inc, gen);
        if (!inc.start) findStart(inc, gen);
      }
    }

    function renderStats(inc) {
      statsBox.textContent = '';
      const ratio = inc.baseline > 0 && inc.average !== null ? inc.average / inc.baseline : null;
      const unit = unitOf(inc);
      const items = [
        ['Type', 'type', typeLabel(inc) + (inc.errorCode ? ': ' + inc.errorCode : '')],
        ['State', 'state', inc.ongoing ? 'Ongoing (no End event yet)' : 'Ended'],
        ['Start', 'start', fmtTime(inc.startMs) + (inc.derivedStart ? ' (from the End event)' : '')],
        ['End', 'end', inc.ongoing ? '-' : fmtTime(inc.endMs)],
        ['Duration', 'duration', inc.duration === null ? '-' : fmtMinutes(inc.duration)],
        ['Baseline average', 'baseline', inc.baseline === null ? '-' : `${fmtRate(inc.baseline)} ${unit}`],
        ['Insight average', 'insight', inc.average === null ? '-' : `${fmtRate(inc.average)} ${unit}` +
          (ratio !== null ? ` (${ratio >= 10 ? Math.round(ratio).toLocaleString('en') : ratio.toFixed(1)}\u00d7 the baseline)` : '')],
      ];
      if (inc.end && inc.start && inc.startAverage !== null) {
        items.push(['At the start', 'start-average', `${fmtRate(inc.startAverage)} ${unit} in the first minute`]);
      }
      items.push(
        ['Baseline period', 'baseline-duration', inc.baselineDuration === null ? '-' : `${fmtMinutes(inc.baselineDuration)} before the start`],
        ['AWS region', 'region', inc.region || '-'],
        ['Shared event ID', 'shared-event-id', inc.id, true],
      );
      for (const [label, field, value, mono] of items) {
        statsBox.append(el('dt', { text: label }), el('dd', { 'data-field': field, class: mono ? 'mono' : null, text: value }));
      }
    }

    function renderAttributions(inc) {
      attributionsBox.textContent = '';
      const ctx = detailsOf(inc.end || inc.start).insightContext || {};
      const list = Array.isArray(ctx.attributions) ? ctx.attributions : [];
      if (!list.length) {
        attributionsBox.append(el('p', { class: 'none', 'data-testid': 'no-attributions', text: 'These Insights events carry no attributions.' }));
        return;
      }
      const order = Object.keys(ATTRIBUTIONS);
      const sorted = [...list].sort((a, b) => {
        const i = order.indexOf(a.attribute);
        const j = order.indexOf(b.attribute);
        return (i < 0 ? 99 : i) - (j < 0 ? 99 : j);
      });
      for (const a of sorted) {
        const name = String(a.attribute || '');
        const label = ATTRIBUTIONS[name] || name;
        const values = new Map();
        for (const side of ['insight', 'baseline']) {
          for (const v of Array.isArray(a[side]) ? a[side] : []) {
            const key = v && v.value !== undefined && v.value !== null ? String(v.value) : 'null';
            const entry = values.get(key) || { value: key, insight: null, baseline: null };
            entry[side] = num(v.average);
            values.set(key, entry);
          }
        }
        const shownValue = (v) => (v === 'null' || v === '' ? (name === 'errorCode' ? 'None' : '(none)') : v);
        const rows = [...values.values()].map((v) => el('tr', { 'data-testid': 'attribution-row', 'data-value': v.value },
          el('th', { scope: 'row', class: name === 'errorCode' ? '' : 'mono', 'data-col': 'value', text: shownValue(v.value) }),
          el('td', { 'data-col': 'insight', class: 'num', text: fmtRate(v.insight) }),
          el('td', { 'data-col': 'baseline', class: 'num', text: fmtRate(v.baseline) })));
        attributionsBox.append(el('div', { class: 'table-wrap attribution' },
          el('table', { class: 'list', 'data-testid': `attribution-${name}` },
            el('caption', { text: label }),
            el('thead', {}, el('tr', {},
              el('th', { scope: 'col', text: 'Value' }),
              el('th', { scope: 'col', class: 'num', text: 'Insight average' }),
              el('th', { scope: 'col', class: 'num', text: 'Baseline average' }))),
            el('tbody', {}, rows))));
      }
      attributionsBox.append(el('p', { class: 'hint', text: `Averages are ${unitOf(inc)}: during the insight, and over the baseline period before it.` }));
    }

    function recordBlock(label, testid, r, missing) {
      const wrap = el('div', { class: 'record' });
      if (!r) {
        wrap.append(el('h4', { text: label }), el('p', { class: 'none', 'data-testid': testid + '-missing', text: missing }));
        return wrap;
      }
      const text = prettyJson(r.raw);
      const copy = el('button', { type: 'button', class: 'btn subtle small', 'data-testid': testid + '-copy', 'aria-label': `Copy the ${label}` }, 'Copy JSON');
      copy.addEventListener('click', async () => {
        const ok = await copyText(text);
        copy.textContent = ok ? 'Copied' : 'Copy failed: select the text';
        setTimeout(() => { copy.textContent = 'Copy JSON'; }, 2000);
      });
      wrap.append(el('h4', {}, label, copy), el('pre', { class: 'json', 'data-testid': testid, tabindex: '0', 'aria-label': label, text }));
      return wrap;
    }

    function renderRecords(inc) {
      recordsBox.textContent = '';
      recordsBox.append(
        recordBlock('Start record', 'start-json', inc.start, inc.derivedStart ? 'The Start event is older than the time range; looking for it...' : 'No Start event.'),
        recordBlock('End record', 'end-json', inc.end, 'No End event yet: the insight is ongoing.'),
      );
    }

    /** The Start record of an incident whose Start is before the range. */
    async function findStart(inc, gen) {
      const t = inc.startMs;
      const body = {
        EventCategory: 'insight', MaxResults: 50,
        LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: inc.name }],
        StartTime: Math.floor((t - 2 * 36e5) / 1000), EndTime: Math.ceil((t + 2 * 36e5) / 1000),
      };
      let found = null;
      try {
        const got = await lookupAll(body, gen, (g) => g === detailGen, 500);
        if (!got) return;
        found = got.records.find((r) => r.rec.sharedEventID === inc.id && detailsOf(r).state === 'Start') || null;
      } catch (err) {
        found = null;
      }
      if (gen !== detailGen || shown !== inc) return;
      if (found) {
        inc.start = found;
        inc.startMs = found.timeMs;
        inc.derivedStart = false;
        inc.startAverage = num((statsOf(found).insight || {}).average);
        renderCard(inc, false);
        drawChart(inc);
      } else {
        const missing = $('[data-testid="start-json-missing"]', recordsBox);
        if (missing) missing.textContent = 'The Start event is older than Cairn keeps.';
      }
    }

    $('[data-testid="insight-close"]').addEventListener('click', closeCard);

    // -- The chart --------------------------------------------------------------------

    /** The window and buckets of the chart: an hour each side, 1-minute buckets when at most
     * 500 cover it, else the smallest coarser step that fits. */
    function chartWindow(inc) {
      const now = Date.now();
      const end = inc.ongoing ? now : inc.endMs;
      const from = Math.floor((inc.startMs - CHART_MARGIN_MIN * MIN_MS) / MIN_MS) * MIN_MS;
      let to = Math.ceil((end + CHART_MARGIN_MIN * MIN_MS) / MIN_MS) * MIN_MS;
      to = Math.min(to, Math.ceil(now / MIN_MS) * MIN_MS);
      if (to <= from) to = from + MIN_MS;
      const minutes = (to - from) / MIN_MS;
      let per = 1;
      if (minutes > 500) per = CHART_STEPS.find((s) => minutes / s <= 500) || Math.ceil(minutes / 500);
      const buckets = Math.ceil(minutes / per);
      return { from, to: from + buckets * per * MIN_MS, per, buckets };
    }

    /** The filters of the calls an insight counts: an error rate, the API's calls ending in
     * its error code; a call rate, the API's write calls (all its calls for data events). */
    async function countAttributes(inc) {
      const attrs = [
        { AttributeKey: 'EventSource', AttributeValue: inc.source },
        { AttributeKey: 'EventName', AttributeValue: inc.name },
      ];
      if (inc.region) attrs.push({ AttributeKey: 'AwsRegion', AttributeValue: inc.region });
      if (isErrorRate(inc)) {
        if (inc.errorCode) attrs.push({ AttributeKey: 'ErrorCode', AttributeValue: inc.errorCode });
      } else if (!(await isDataApi(inc, attrs))) {
        attrs.push({ AttributeKey: 'ReadOnly', AttributeValue: 'false' });
      }
      return attrs;
    }

    /** Whether the insight's API records data events (whose reads count too): one of its
     * calls during the insight says. */
    async function isDataApi(inc, attrs) {
      const endMs = inc.ongoing ? Date.now() : Math.max(inc.endMs, inc.startMs + MIN_MS);
      try {
        const out = await api(CT + 'LookupEvents', {
          LookupAttributes: attrs, MaxResults: 1,
          StartTime: Math.floor(inc.startMs / 1000), EndTime: Math.ceil(endMs / 1000),
        });
        const e = (out.Events || [])[0];
        if (!e) return false;
        const rec = parseRecord(e).rec;
        return rec.eventCategory === 'Data' || rec.managementEvent === false;
      } catch (err) {
        return false;
      }
    }

    async function loadSeries(inc, gen) {
      const w = chartWindow(inc);
      chart.setAttribute('aria-busy', 'true');
      summary.textContent = 'Counting the calls around the insight...';
      let out;
      try {
        const attrs = await countAttributes(inc);
        if (gen !== detailGen) return;
        out = await api(CAIRN + 'CountEvents', {
          LookupAttributes: attrs, StartTime: w.from / 1000, EndTime: w.to / 1000, Buckets: w.buckets,
        });
      } catch (err) {
        if (gen !== detailGen) return;
        chart.removeAttribute('aria-busy');
        series = null;
        const why = err.code === 'AccessDeniedException' ? 'not allowed' : err.code === 'UnknownOperationException' ? 'this server cannot count events' : err.message;
        summary.textContent = `The rate chart is unavailable: ${why}.`;
        drawChart(inc);
        return;
      }
      if (gen !== detailGen) return;
      const stepMs = Math.max(1000, Number(out.BucketSeconds || 0) * 1000) || w.per * MIN_MS;
      const n = Math.max(1, Math.ceil((w.to - w.from) / stepMs));
      const counts = new Array(n).fill(0);
      for (const b of out.Buckets || []) {
        const i = Math.floor((b.Start * 1000 - w.from) / stepMs);
        if (i >= 0 && i < n) counts[i] += Number(b.Count) || 0;
      }
      // Buckets that begin after now are not drawn.
      const now = Date.now();
      let last = n;
      while (last > 1 && w.from + (last - 1) * stepMs > now) last--;
      const perMin = stepMs / MIN_MS;
      series = {
        from: w.from, stepMs, perMin, counts: counts.slice(0, last),
        rates: counts.slice(0, last).map((c) => c / perMin),
        total: Number(out.Total) || 0,
        partial: !!out.Partial, completeFrom: out.CompleteFrom ? out.CompleteFrom * 1000 : w.from,
      };
      chart.removeAttribute('aria-busy');
      drawChart(inc);
    }

    /** Tick times: a round step giving at most `max` labels. */
    function timeTicks(from, to, max) {
      const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 43200].map((m) => m * MIN_MS);
      const step = steps.find((s) => (to - from) / s <= max) || steps[steps.length - 1];
      const out = [];
      for (let t = Math.ceil(from / step) * step; t <= to; t += step) out.push(t);
      return { ticks: out, step };
    }

    function svgText(x, y, text, cls, anchor) {
      const t = svgEl('text', { x: x.toFixed(1), y: y.toFixed(1), class: cls, 'text-anchor': anchor || 'start' });
      t.textContent = text;
      return t;
    }

    function drawChart(inc) {
      inc = inc || shown;
      chart.textContent = '';
      if (!inc) return;
      const W = Math.max(280, Math.round(chart.getBoundingClientRect().width) || 800);
      const H = Math.max(180, Math.round(chart.getBoundingClientRect().height) || 260);
      chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
      const narrow = W < 520;
      const M = { left: narrow ? 44 : 56, right: narrow ? 10 : 18, top: 22, bottom: 30 };
      const pw = W - M.left - M.right;
      const ph = H - M.top - M.bottom;
      const w = chartWindow(inc);
      const from = series ? series.from : w.from;
      const to = series ? series.from + series.rates.length * series.stepMs : w.to;
      const unit = unitOf(inc);
      const rates = series ? series.rates : [];
      const top = niceCeil(Math.max(inc.baseline || 0, inc.average || 0, ...rates, 0.001) * 1.08);
      const x = (t) => M.left + ((t - from) / Math.max(1, to - from)) * pw;
      const y = (v) => M.top + ph - (Math.min(v, top) / top) * ph;
      chart.dataset.points = String(rates.length);
      chart.dataset.bucketMinutes = series ? String(series.perMin) : '';

      // The grid and the y axis: calls (or errors) per minute.
      const grid = svgEl('g', { class: 'grid' });
      for (let i = 0; i <= 4; i++) {
        const v = (top * i) / 4;
        const yy = y(v);
        grid.append(svgEl('line', { x1: M.left, x2: M.left + pw, y1: yy.toFixed(1), y2: yy.toFixed(1), class: i === 0 ? 'axis' : 'gridline' }));
        grid.append(svgText(M.left - 6, yy + 4, fmtRate(v), 'tick y-tick', 'end'));
      }
      chart.append(grid);
      chart.append(svgText(M.left, 12, unit.charAt(0).toUpperCase() + unit.slice(1), 'axis-title', 'start'));

      // The insight, shaded.
      const endMs = inc.ongoing ? Math.min(Date.now(), to) : inc.endMs;
      const x0 = Math.max(M.left, x(inc.startMs));
      const x1 = Math.min(M.left + pw, Math.max(x0 + 2, x(endMs)));
      chart.append(svgEl('rect', { class: 'insight-period', 'data-testid': 'insight-period', x: x0.toFixed(1), y: M.top, width: (x1 - x0).toFixed(1), height: ph }));
      chart.append(svgText((x0 + x1) / 2, M.top + 12, inc.ongoing ? 'Insight (ongoing)' : 'Insight', 'period-label', 'middle'));

      // The x axis: times (UTC).
      const span = to - from;
      const { ticks } = timeTicks(from, to, Math.max(2, Math.floor(pw / (span > 36 * 36e5 ? 90 : 64))));
      const axis = svgEl('g', { class: 'x-axis' });
      for (const t of ticks) {
        const xx = x(t);
        axis.append(svgEl('line', { x1: xx.toFixed(1), x2: xx.toFixed(1), y1: M.top + ph, y2: M.top + ph + 4, class: 'axis' }));
        axis.append(svgText(xx, H - 10, span > 36 * 36e5 ? fmtClock(t, true) : fmtClock(t, false), 'tick x-tick', 'middle'));
      }
      chart.append(axis);

      // The rate, per bucket.
      if (rates.length) {
        const pts = rates.map((v, i) => [x(from + (i + 0.5) * series.stepMs), y(v)]);
        const line = pts.map((p, i) => `${i ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join('');
        const area = `${line}L${pts[pts.length - 1][0].toFixed(1)},${y(0).toFixed(1)}L${pts[0][0].toFixed(1)},${y(0).toFixed(1)}Z`;
        chart.append(svgEl('path', { class: 'rate-area', d: area }));
        chart.append(svgEl('path', { class: 'rate-line', 'data-testid': 'rate-line', d: line }));
        const dots = svgEl('g', { class: 'rate-points' });
        const bw = pw / rates.length;
        rates.forEach((v, i) => {
          const bucketStart = from + i * series.stepMs;
          const c = svgEl('circle', {
            class: v > 0 ? 'rate-point' : 'rate-point zero', 'data-testid': 'rate-point',
            cx: pts[i][0].toFixed(1), cy: pts[i][1].toFixed(1), r: rates.length > 150 ? 1.5 : 2.5, 'data-rate': v,
          });
          dots.append(c);
          // A target over the whole bucket, for the pointer's tooltip.
          const hit = svgEl('rect', { class: 'hit', x: (M.left + i * bw).toFixed(1), y: M.top, width: Math.max(1, bw).toFixed(1), height: ph });
          const tip = svgEl('title');
          tip.textContent = `${fmtTime(bucketStart)}: ${fmtRate(v)} ${unit}`;
          hit.append(tip);
          dots.append(hit);
        });
        chart.append(dots);
      }

      // The baseline, dashed.
      if (inc.baseline !== null) {
        const yb = y(inc.baseline);
        chart.append(svgEl('line', { class: 'baseline-line', 'data-testid': 'baseline-line', 'data-value': inc.baseline, x1: M.left, x2: M.left + pw, y1: yb.toFixed(1), y2: yb.toFixed(1) }));
        chart.append(svgText(M.left + pw - 4, Math.max(M.top + 10, yb - 5), `Baseline ${fmtRate(inc.baseline)}`, 'baseline-label', 'end'));
      }
      if (cursor >= 0 && series && cursor < rates.length) {
        const bw = pw / rates.length;
        chart.append(svgEl('rect', { class: 'cursor', x: (M.left + cursor * bw).toFixed(1), y: M.top, width: Math.max(2, bw).toFixed(1), height: ph }));
      }

      describeChart(inc, from, to);
    }

    function describeChart(inc, from, to) {
      const what = `${inc.name} ${unitOf(inc)}${isErrorRate(inc) && inc.errorCode ? ` ending in ${inc.errorCode}` : ''}`;
      const sameDay = fmtDay(from) === fmtDay(to - 1);
      const when = sameDay ? `from ${fmtClock(from)} to ${fmtClock(to)} UTC on ${fmtDay(from)}` : `from ${fmtTime(from)} to ${fmtTime(to)}`;
      chart.setAttribute('aria-label', `Chart of ${what} around the insight, against the baseline`);
      if (!series) {
        if (chart.getAttribute('aria-busy') !== 'true' && summary.textContent.startsWith('Counting')) summary.textContent = '';
        return;
      }
      const inside = [];
      const outside = [];
      series.rates.forEach((v, i) => {
        const t = series.from + i * series.stepMs;
        const endMs = inc.ongoing ? Date.now() : inc.endMs;
        if (t + series.stepMs > inc.startMs && t < endMs) inside.push(v);
        else outside.push(v);
      });
      const peak = inside.length ? Math.max(...inside) : 0;
      const around = outside.length ? outside.reduce((a, b) => a + b, 0) / outside.length : 0;
      const step = series.perMin === 1 ? 'minute by minute' : `in steps of ${fmtMinutes(series.perMin)} (averaged per minute)`;
      const text = `${what.charAt(0).toUpperCase() + what.slice(1)} in ${inc.region || 'the region'} ${when}, ${step}. ` +
        `During the insight (shaded) the rate peaked at ${fmtRate(peak)} per minute; around it, it averaged ${fmtRate(around)}. ` +
        `The dashed line is the baseline, ${fmtRate(inc.baseline)} per minute.` +
        (series.partial ? ` Counts before ${fmtTime(series.completeFrom)} are partial.` : '');
      summary.textContent = text;
    }

    function showCursor() {
      drawChart(shown);
      if (!series || cursor < 0) { readout.textContent = ''; return; }
      const t = series.from + cursor * series.stepMs;
      const v = series.rates[cursor];
      const span = series.perMin === 1 ? fmtTime(t) : `${fmtTime(t)} \u2013 ${fmtTime(t + series.stepMs)}`;
      readout.textContent = `${span}: ${fmtRate(v)} ${unitOf(shown)} (${series.counts[cursor]} event${series.counts[cursor] === 1 ? '' : 's'}).`;
    }

    chart.addEventListener('keydown', (e) => {
      if (!series || !series.rates.length) return;
      const n = series.rates.length;
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft' || e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        if (e.key === 'Home') cursor = 0;
        else if (e.key === 'End') cursor = n - 1;
        else if (cursor < 0) {
          // Start at the insight.
          cursor = Math.max(0, Math.min(n - 1, Math.floor((shown.startMs - series.from) / series.stepMs)));
        } else cursor = Math.max(0, Math.min(n - 1, cursor + (e.key === 'ArrowRight' ? 1 : -1)));
        showCursor();
      }
    });
    chart.addEventListener('blur', () => { if (cursor >= 0) { cursor = -1; showCursor(); } });

    let lastWidth = 0;
    if ('ResizeObserver' in window) {
      new ResizeObserver(() => {
        const w = Math.round(chart.getBoundingClientRect().width);
        if (w && w !== lastWidth && shown) { lastWidth = w; drawChart(shown); }
      }).observe(chart);
    }

    // -- Table interaction ------------------------------------------------------------

    tbody.addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-insight-id]');
      if (!tr) return;
      const sel = window.getSelection && window.getSelection();
      if (sel && sel.type === 'Range' && String(sel).length > 0) return;
      select(tr.dataset.insightId);
    });

    tbody.addEventListener('keydown', (e) => {
      const tr = e.target.closest('tr[data-insight-id]');
      if (!tr) return;
      if (e.target === tr && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        select(tr.dataset.insightId);
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        const next = e.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) {
          e.preventDefault();
          next.focus();
          if (!card.hidden) select(next.dataset.insightId, { focusCard: false });
        }
      }
    });

    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || document.querySelector('dialog[open]')) return;
      if (closeCard()) e.preventDefault();
    });

    // -- The toolbar ------------------------------------------------------------------

    function showControls() {
      for (const r of $$('input[name="range"]', rangeBox)) r.checked = r.value === state.range;
      if (filterInput.value !== state.q) filterInput.value = state.q;
    }

    rangeBox.addEventListener('change', (e) => {
      const r = e.target.closest('input[name="range"]');
      if (!r || r.value === state.range) return;
      setState({ ...state, range: r.value });
      loadList({ keepDetail: true });
    });

    let typing = 0;
    filterInput.addEventListener('input', () => {
      clearTimeout(typing);
      const q = filterInput.value;
      state = { ...state, q };
      renderRows();
      // The URL follows the filter once typing pauses.
      typing = setTimeout(() => setState({ ...state, q }, { replace: true }), 300);
    });
    $('#insights-filter-form').addEventListener('submit', (e) => {
      e.preventDefault();
      clearTimeout(typing);
      setState({ ...state, q: filterInput.value }, { replace: true });
    });

    refreshButton.addEventListener('click', () => loadList());

    window.addEventListener('popstate', () => {
      const before = state;
      state = readState();
      showControls();
      if (before.range !== state.range) { loadList({ keepDetail: true }); return; }
      renderRows();
      showSelected({ reload: !shown || shown.id !== state.insight });
    });

    state = readState();
    showControls();
    loadList();
  }

  // ---------------------------------------------------------------------------------------
  // Queries: CloudTrail Lake SQL over an event data store

  const DEFAULT_STORE = 'cairn-default';
  const RESULT_PAGE = 100;
  const RECENT_MAX = 20;
  const QUERY_STATES = {
    STARTING: 'Starting', QUEUED: 'Queued', RUNNING: 'Running', FINISHED: 'Finished',
    FAILED: 'Failed', CANCELLED: 'Cancelled', TIMED_OUT: 'Timed out',
  };
  const isDone = (s) => s === 'FINISHED' || s === 'FAILED' || s === 'CANCELLED' || s === 'TIMED_OUT';

  /** The ID of an event data store: the end of its ARN. */
  const storeIdOf = (arn) => String(arn || '').split('/').pop();

  /** A time of the JSON API (epoch seconds, or text) in ms; null if absent. */
  function apiTimeMs(v) {
    if (v === undefined || v === null || v === '') return null;
    if (typeof v === 'number') return v * 1000;
    const t = Date.parse(v);
    return isNaN(t) ? null : t;
  }

  /** `2024-01-31 00:00:00`: the start of the UTC day `days` ago, as Lake SQL compares times. */
  function sqlDay(days) {
    const d = new Date(Date.now() - days * 864e5);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} 00:00:00`;
  }

  function fmtBytes(n) {
    n = Number(n) || 0;
    const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? `${n} byte${n === 1 ? '' : 's'}` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
  }

  function fmtDuration(ms) {
    ms = Math.max(0, Number(ms) || 0);
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    const m = Math.floor(ms / 60000);
    return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  const fmtCount = (n) => (Number(n) || 0).toLocaleString('en');

  /** One CSV field (RFC 4180), with text a spreadsheet would take for a formula defused. */
  function csvField(v) {
    let s = v === null || v === undefined ? '' : String(v);
    const number = /^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(s);
    if (!number && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function queriesPage() {
    const storeSelect = $('[data-testid="store-select"]');
    const storeIdBox = $('#store-id');
    const storeCopy = $('#store-id-copy');
    const storeStatus = $('#store-status');
    const form = $('#query-form');
    const sqlBox = $('#sql');
    const runButton = $('[data-testid="run"]');
    const cancelButton = $('[data-testid="cancel"]');
    const stateBox = $('[data-testid="query-state"]');
    const elapsedBox = $('[data-testid="query-elapsed"]');
    const recentList = $('#recent-queries');
    const noRecent = $('[data-testid="no-recent"]');
    const results = $('[data-testid="results"]');
    const statsBox = $('#query-stats');
    const csvButton = $('[data-testid="download-csv"]');
    const table = $('#results-table');
    const thead = $('thead tr', table);
    const tbody = $('tbody', table);
    const noResults = $('[data-testid="no-results"]');
    const loadMore = $('[data-testid="load-more"]');
    const user = document.body.dataset.user || '';

    let stores = []; // {arn, id, name, status}
    let store = null;
    let generation = 0;
    let pollTimer = 0;
    let tickTimer = 0;
    // The query shown: {id, statement, status, startedMs, columns, rows, next, shown, total, info}
    let q = null;
    let recentGen = 0;

    // -- The URL ----------------------------------------------------------------------

    function readUrl() {
      const p = new URLSearchParams(location.search);
      return { store: p.get('store') || '', sql: p.get('sql') || '', query: p.get('query') || '' };
    }

    function urlOf(sql, queryId) {
      const p = new URLSearchParams();
      if (store) p.set('store', store.id);
      if (sql) p.set('sql', sql);
      if (queryId) p.set('query', queryId);
      return location.pathname + '?' + p.toString();
    }

    function setUrl(sql, queryId, replace) {
      const url = urlOf(sql, queryId);
      if (url === location.pathname + location.search) return;
      if (replace) history.replaceState(null, '', url);
      else history.pushState(null, '', url);
    }

    // -- Event data stores ------------------------------------------------------------

    function fillTemplate(sql) {
      return sql
        .replace(/\{store\}/g, store ? store.id : '<event data store ID>')
        .replace(/\{since\}/g, sqlDay(7))
        .replace(/\{user\}/g, user.replace(/'/g, "''"));
    }

    function example() {
      const first = $('[data-sql]');
      return first ? fillTemplate(first.dataset.sql) : '';
    }

    async function loadStores() {
      const list = [];
      let token = null;
      do {
        const body = token ? { NextToken: token } : {};
        const out = await api(CT + 'ListEventDataStores', body);
        for (const s of out.EventDataStores || []) {
          list.push({ arn: s.EventDataStoreArn, id: storeIdOf(s.EventDataStoreArn), name: s.Name || storeIdOf(s.EventDataStoreArn), status: s.Status || '' });
        }
        token = out.NextToken || null;
      } while (token);
      stores = list;
      storeSelect.textContent = '';
      for (const s of stores) {
        const label = s.status && s.status !== 'ENABLED' ? `${s.name} (${s.status.toLowerCase().replace(/_/g, ' ')})` : s.name;
        storeSelect.append(el('option', { value: s.id, text: label }));
      }
      storeSelect.disabled = stores.length === 0;
    }

    /** The store a URL names (by ID, ARN or name), else null. */
    function findStore(ref) {
      if (!ref) return null;
      const r = ref.toLowerCase();
      return stores.find((s) => s.id.toLowerCase() === r || (s.arn || '').toLowerCase() === r) ||
        stores.find((s) => s.name === ref) || null;
    }

    function defaultStore() {
      return stores.find((s) => s.name === DEFAULT_STORE) || stores[0] || null;
    }

    function showStore(s) {
      store = s;
      storeSelect.value = s ? s.id : '';
      storeIdBox.textContent = s ? s.id : '';
      storeIdBox.title = s ? s.arn : '';
      storeCopy.disabled = !s;
      const odd = s && s.status && s.status !== 'ENABLED';
      storeStatus.hidden = !odd;
      storeStatus.textContent = odd ? s.status : '';
      storeStatus.title = odd ? 'This event data store is not ingesting new events' : '';
    }

    storeCopy.addEventListener('click', async () => {
      if (!store) return;
      const ok = await copyText(store.id);
      storeCopy.textContent = ok ? 'Copied' : 'Copy failed';
      setTimeout(() => { storeCopy.textContent = 'Copy'; }, 2000);
    });

    storeSelect.addEventListener('change', () => {
      const next = stores.find((s) => s.id === storeSelect.value);
      if (!next || next === store) return;
      const old = store;
      showStore(next);
      // The statement follows the store: its ID in the text is replaced by the new one.
      const text = sqlBox.value;
      if (!text.trim()) sqlBox.value = example();
      else if (old) {
        const esc = old.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        sqlBox.value = text.replace(new RegExp(esc, 'gi'), next.id);
      }
      stopFollowing();
      generation++;
      clearResults();
      setState(null);
      showError(null);
      setUrl('', '', false);
      loadRecent();
    });

    // -- State of the query -----------------------------------------------------------

    function setState(status, startedMs) {
      clearInterval(tickTimer);
      elapsedBox.textContent = '';
      if (!status) {
        stateBox.textContent = '';
        stateBox.removeAttribute('data-state');
        stateBox.className = 'query-state';
        cancelButton.hidden = true;
        return;
      }
      const running = !isDone(status);
      stateBox.dataset.state = status;
      stateBox.className = 'query-state ' + ({ FINISHED: 'good', FAILED: 'bad', TIMED_OUT: 'bad', CANCELLED: 'warn' }[status] || 'busy');
      stateBox.textContent = QUERY_STATES[status] || status;
      cancelButton.hidden = !running || status === 'STARTING';
      if (running && startedMs) {
        const tick = () => { elapsedBox.textContent = fmtDuration(Date.now() - startedMs); };
        tick();
        tickTimer = setInterval(tick, 250);
      }
    }

    function stopFollowing() {
      clearTimeout(pollTimer);
      clearInterval(tickTimer);
    }

    // -- Running ----------------------------------------------------------------------

    async function run(statement, { replace = false, note = '' } = {}) {
      const gen = ++generation;
      stopFollowing();
      showError(null);
      clearResults();
      sqlBox.removeAttribute('aria-invalid');
      const started = Date.now();
      setState('STARTING', started);
      setStatus(note);
      let out;
      try {
        out = await api(CT + 'StartQuery', { QueryStatement: statement });
      } catch (err) {
        if (gen !== generation) return;
        setState(null);
        setUrl(statement, '', replace);
        if (err.code === 'InvalidQueryStatementException') {
          sqlBox.setAttribute('aria-invalid', 'true');
          showError({ title: 'The SQL statement is not valid.', detail: err.message });
        } else if (err.code === 'EventDataStoreNotFoundException' || err.code === 'InactiveEventDataStoreException') {
          showError({ title: 'The statement names an event data store that cannot be queried.', detail: `${err.code}: ${err.message}` });
        } else if (err.code === 'MaxConcurrentQueriesException') {
          showError({ title: 'Too many queries are running.', detail: sentence(err.message) + ' Wait for one to end, or open a running one from Recent queries and cancel it.' });
        } else {
          showError(describeError(err, 'run the query'));
        }
        return;
      }
      if (gen !== generation) return;
      setUrl(statement, out.QueryId, replace);
      q = newShown(out.QueryId, statement, started);
      q.fromRun = true;
      markRecent();
      follow(gen, 'QUEUED');
      loadRecent();
    }

    function newShown(id, statement, startedMs) {
      return {
        id, statement, status: 'QUEUED', startedMs, fromRun: false, ended: false,
        columns: null, rows: [], next: null, fetchedAll: false, shown: 0, total: null, info: null,
      };
    }

    /** Follows the shown query until it ends, then shows its outcome. */
    async function follow(gen, status) {
      q.status = status;
      setState(status, q.startedMs);
      let delay = 200;
      for (;;) {
        let info;
        try {
          info = await api(CT + 'DescribeQuery', { QueryId: q.id });
        } catch (err) {
          if (gen !== generation) return;
          setState(null);
          showError(describeError(err, 'follow the query'));
          return;
        }
        if (gen !== generation) return;
        q.info = info;
        if (info.QueryString) q.statement = info.QueryString;
        const created = apiTimeMs(info.QueryStatistics && info.QueryStatistics.CreationTime);
        if (created && !q.fromRun) q.startedMs = created;
        if (info.QueryStatus !== q.status) {
          q.status = info.QueryStatus;
          if (!isDone(q.status)) setState(q.status, q.startedMs);
        }
        if (isDone(info.QueryStatus)) break;
        await new Promise((r) => { pollTimer = setTimeout(r, delay); });
        if (gen !== generation) return;
        delay = Math.min(2000, Math.round(delay * 1.5));
      }
      finish(gen);
    }

    async function finish(gen) {
      if (q.ended) return;
      q.ended = true;
      const info = q.info || {};
      setState(q.status);
      const time = fmtDuration(info.QueryStatistics ? info.QueryStatistics.ExecutionTimeInMillis : 0);
      if (q.status === 'FINISHED') {
        stateBox.textContent = `Finished in ${time}`;
        await fetchPage(gen);
      } else if (q.status === 'FAILED') {
        showError({ title: 'The query failed.', detail: info.ErrorMessage || 'No reason was given.' });
      } else if (q.status === 'TIMED_OUT') {
        showError({ title: 'The query timed out.', detail: info.ErrorMessage || 'It ran too long: narrow the time range or filter more.' });
      } else if (q.status === 'CANCELLED') {
        setStatus('The query was cancelled.');
      }
      if (gen === generation) {
        renderStats();
        results.hidden = q.status !== 'FINISHED';
        updateRecentItem(q.id, info);
      }
    }

    cancelButton.addEventListener('click', async () => {
      if (!q || isDone(q.status)) return;
      const gen = generation;
      cancelButton.disabled = true;
      try {
        await api(CT + 'CancelQuery', { QueryId: q.id });
        if (gen !== generation || q.ended) return;
        // Follow it afresh: it reads as CANCELLED now.
        stopFollowing();
        const next = ++generation;
        runButton.focus();
        follow(next, 'CANCELLED');
      } catch (err) {
        // Already over (InactiveQueryException): following it shows how it ended.
        if (err.code !== 'InactiveQueryException') showError(describeError(err, 'cancel the query'));
      } finally {
        cancelButton.disabled = false;
      }
    });

    // -- Results ----------------------------------------------------------------------

    function clearResults() {
      q = null;
      results.hidden = true;
      results.removeAttribute('data-query');
      thead.textContent = '';
      tbody.textContent = '';
      statsBox.textContent = '';
      noResults.hidden = true;
      loadMore.hidden = true;
      csvButton.disabled = true;
      markRecent();
    }

    /** Fetches the next page of the shown query's rows; returns false on failure. */
    async function fetchNext(gen) {
      const body = { QueryId: q.id, MaxQueryResults: 1000 };
      if (q.next) body.NextToken = q.next;
      let out;
      try {
        out = await api(CT + 'GetQueryResults', body);
      } catch (err) {
        // A read: worth one more try when the server was busy or failed.
        if (!(err.status >= 500 || err.code === 'ThrottlingException')) throw err;
        await new Promise((r) => setTimeout(r, 500));
        if (gen !== generation) return false;
        out = await api(CT + 'GetQueryResults', body);
      }
      if (gen !== generation) return false;
      const rows = out.QueryResultRows || [];
      if (!q.columns && rows.length) q.columns = rows[0].map((c) => Object.keys(c)[0] || '');
      for (const r of rows) q.rows.push(r.map((c) => { const v = Object.values(c)[0]; return v === undefined ? null : v; }));
      const st = out.QueryStatistics || {};
      if (st.TotalResultsCount !== undefined) q.total = Number(st.TotalResultsCount);
      q.next = out.NextToken || null;
      q.fetchedAll = !q.next;
      return true;
    }

    /** Shows the next RESULT_PAGE rows, fetching them when needed. */
    async function fetchPage(gen) {
      loadMore.disabled = true;
      setStatus('Loading results...');
      try {
        while (q.rows.length < q.shown + RESULT_PAGE && !q.fetchedAll) {
          if (!(await fetchNext(gen))) return;
        }
      } catch (err) {
        if (gen !== generation) return;
        showError(describeError(err, 'get the results'));
        setStatus('');
        loadMore.disabled = false;
        return;
      } finally {
        loadMore.disabled = false;
      }
      if (gen !== generation) return;
      renderRows(q.shown + RESULT_PAGE);
    }

    function renderRows(upTo) {
      if (!thead.children.length && q.columns) {
        for (const [i, c] of q.columns.entries()) thead.append(el('th', { scope: 'col', 'data-col': i, text: c }));
      }
      const frag = document.createDocumentFragment();
      const end = Math.min(upTo, q.rows.length);
      for (let i = q.shown; i < end; i++) {
        const tr = el('tr', { 'data-testid': 'result-row' });
        for (const v of q.rows[i]) {
          if (v === null) tr.append(el('td', { 'data-null': true }, el('span', { class: 'none', text: 'NULL' })));
          else tr.append(el('td', { text: v }));
        }
        frag.append(tr);
      }
      tbody.append(frag);
      q.shown = end;
      results.dataset.query = q.id;
      const more = q.shown < q.rows.length || !q.fetchedAll;
      loadMore.hidden = !more;
      noResults.hidden = q.rows.length > 0;
      csvButton.disabled = q.rows.length === 0;
      results.hidden = false;
      const total = q.total !== null ? q.total : q.rows.length;
      setStatus(q.rows.length === 0 ? 'The query returned no rows.'
        : `${fmtCount(q.shown)} of ${fmtCount(total)} row${total === 1 ? '' : 's'} shown${more ? '; more to load' : ''}.`);
    }

    loadMore.addEventListener('click', () => { if (q) fetchPage(generation); });

    function renderStats() {
      statsBox.textContent = '';
      if (!q || !q.info) return;
      const st = q.info.QueryStatistics || {};
      const created = apiTimeMs(st.CreationTime);
      const items = [
        ['Results', 'results', q.total !== null ? fmtCount(q.total) : (q.status === 'FINISHED' ? fmtCount(q.rows.length) : '-')],
        ['Events scanned', 'events-scanned', fmtCount(st.EventsScanned)],
        ['Events matched', 'events-matched', fmtCount(st.EventsMatched)],
        ['Data scanned', 'bytes-scanned', fmtBytes(st.BytesScanned)],
        ['Run time', 'run-time', fmtDuration(st.ExecutionTimeInMillis)],
        ['Started', 'created', created ? fmtTime(created) : '-'],
        ['Query ID', 'query-id', q.id],
      ];
      for (const [label, key, value] of items) {
        statsBox.append(el('div', { class: 'stat' }, el('dt', { text: label }), el('dd', { 'data-stat': key, text: value })));
      }
    }

    csvButton.addEventListener('click', async () => {
      if (!q || q.status !== 'FINISHED') return;
      const gen = generation;
      const shown = q;
      csvButton.disabled = true;
      try {
        while (!shown.fetchedAll) {
          if (gen !== generation) return;
          setStatus(`Fetching rows for the download: ${fmtCount(shown.rows.length)} of ${fmtCount(shown.total || 0)}...`);
          if (!(await fetchNext(gen))) return;
        }
      } catch (err) {
        showError(describeError(err, 'get the results for the download'));
        return;
      } finally {
        if (gen === generation) csvButton.disabled = false;
      }
      if (gen !== generation) return;
      const lines = [(shown.columns || []).map(csvField).join(',')];
      for (const r of shown.rows) lines.push(r.map(csvField).join(','));
      const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv;charset=utf-8' });
      const url = URL.createObjectURL(blob);
      const a = el('a', { href: url, download: `cairn-query-${shown.id}.csv`, class: 'sr-only' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setStatus(`Downloaded ${fmtCount(shown.rows.length)} row${shown.rows.length === 1 ? '' : 's'} as CSV.`);
    });

    // -- Opening a query --------------------------------------------------------------

    /** Shows a query that ran before (from the list or the URL). */
    async function open(id, { push = true, fallbackSql = '' } = {}) {
      const gen = ++generation;
      stopFollowing();
      showError(null);
      clearResults();
      sqlBox.removeAttribute('aria-invalid');
      let info;
      try {
        info = await api(CT + 'DescribeQuery', { QueryId: id });
      } catch (err) {
        if (gen !== generation) return;
        if (err.code === 'QueryIdNotFoundException' && fallbackSql) {
          // Its results are gone (they are kept 7 days): run the statement again.
          sqlBox.value = fallbackSql;
          run(fallbackSql, { replace: true, note: `The results of query ${id} are no longer kept; the statement ran again.` });
          return;
        }
        setState(null);
        showError(describeError(err, 'open the query'));
        return;
      }
      if (gen !== generation) return;
      const statement = info.QueryString || fallbackSql;
      sqlBox.value = statement;
      setUrl(statement, id, !push);
      q = newShown(id, statement, apiTimeMs(info.QueryStatistics && info.QueryStatistics.CreationTime) || Date.now());
      markRecent();
      follow(gen, info.QueryStatus);
    }

    // -- Recent queries ---------------------------------------------------------------

    async function loadRecent() {
      const gen = ++recentGen;
      if (!store) return;
      let list;
      try {
        const out = await api(CT + 'ListQueries', { EventDataStore: store.id, MaxResults: RECENT_MAX });
        list = out.Queries || [];
      } catch (err) {
        if (gen !== recentGen) return;
        recentList.textContent = '';
        recentList.append(el('li', { class: 'none', text: describeError(err, 'list the queries').title }));
        noRecent.hidden = true;
        return;
      }
      list.sort((a, b) => (apiTimeMs(b.CreationTime) || 0) - (apiTimeMs(a.CreationTime) || 0));
      list = list.slice(0, RECENT_MAX);
      const infos = await Promise.all(list.map((x) => api(CT + 'DescribeQuery', { QueryId: x.QueryId }).catch(() => null)));
      if (gen !== recentGen) return;
      recentList.textContent = '';
      list.forEach((x, i) => recentList.append(recentItem(x, infos[i] || {})));
      noRecent.hidden = list.length > 0;
      markRecent();
    }

    function recentItem(x, info) {
      const status = info.QueryStatus || x.QueryStatus;
      const created = apiTimeMs(x.CreationTime);
      const statement = info.QueryString || '';
      const short = statement.replace(/\s+/g, ' ').trim();
      const tagClass = { FINISHED: 'tag good', FAILED: 'tag bad', TIMED_OUT: 'tag bad' }[status] || 'tag';
      const button = el('button', {
        type: 'button', class: 'recent-open', 'data-testid': 'recent-query', 'data-query-id': x.QueryId,
        'data-state': status, title: statement,
      },
      el('span', { class: 'recent-meta' },
        el('span', { class: tagClass, 'data-testid': 'recent-status', text: QUERY_STATES[status] || status }),
        el('time', { datetime: created ? new Date(created).toISOString() : '', text: created ? fmtTime(created) : '' })),
      el('code', { class: 'recent-sql', text: short.length > 160 ? short.slice(0, 157) + '...' : short || x.QueryId }));
      button.setAttribute('aria-label', `${QUERY_STATES[status] || status} query of ${created ? fmtTime(created) : 'unknown time'}: ${short.slice(0, 120)}`);
      return el('li', {}, button);
    }

    function updateRecentItem(id, info) {
      const b = $$('[data-query-id]', recentList).find((x) => x.dataset.queryId === id);
      if (!b) { loadRecent(); return; }
      const status = info.QueryStatus;
      if (!status || b.dataset.state === status) return;
      loadRecent();
    }

    function markRecent() {
      for (const b of $$('[data-query-id]', recentList)) {
        if (q && b.dataset.queryId === q.id) b.setAttribute('aria-current', 'true');
        else b.removeAttribute('aria-current');
      }
    }

    recentList.addEventListener('click', (e) => {
      const b = e.target.closest('[data-query-id]');
      if (!b) return;
      open(b.dataset.queryId, { push: true });
    });

    $('[data-testid="recent-refresh"]').addEventListener('click', () => loadRecent());

    // -- The editor -------------------------------------------------------------------

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const statement = sqlBox.value.trim();
      if (!statement) {
        sqlBox.focus();
        showError({ title: 'Write a SQL statement first.', detail: `For example: SELECT eventname, count(*) FROM ${store ? store.id : '<event data store ID>'} GROUP BY eventname` });
        return;
      }
      run(statement);
    });

    sqlBox.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit ? form.requestSubmit(runButton) : runButton.click();
      }
    });

    sqlBox.addEventListener('input', () => sqlBox.removeAttribute('aria-invalid'));

    for (const b of $$('[data-sql]')) {
      b.addEventListener('click', () => {
        sqlBox.value = fillTemplate(b.dataset.sql);
        sqlBox.removeAttribute('aria-invalid');
        sqlBox.focus();
        sqlBox.setSelectionRange(0, 0);
        sqlBox.scrollTop = 0;
        setStatus(`"${b.textContent}" is in the editor: press Run query (or Ctrl+Enter).`);
      });
    }

    // -- Start ------------------------------------------------------------------------

    /** Shows what the URL says: a query, a statement to run, or a store. */
    function apply(fromHistory) {
      const u = readUrl();
      const wanted = findStore(u.store);
      if (u.store && !wanted) {
        showStore(store || defaultStore());
        showError({ title: `There is no event data store ${u.store}.`, detail: `Showing ${store ? store.name : 'nothing'} instead; pick one from the list.` });
        if (!sqlBox.value) sqlBox.value = u.sql || example();
        loadRecent();
        return;
      }
      const before = store;
      showStore(wanted || before || defaultStore());
      if (store !== before) loadRecent();
      if (u.query) {
        open(u.query, { push: false, fallbackSql: u.sql });
      } else if (u.sql) {
        sqlBox.value = u.sql;
        run(u.sql, { replace: true });
      } else {
        generation++;
        stopFollowing();
        clearResults();
        setState(null);
        if (!fromHistory || !sqlBox.value.trim()) sqlBox.value = example();
      }
    }

    async function startPage() {
      try {
        await loadStores();
      } catch (err) {
        storeSelect.textContent = '';
        storeSelect.append(el('option', { value: '', text: 'Unavailable' }));
        if (err.code === 'UnsupportedOperationException') {
          showError({ title: 'CloudTrail Lake is not available on this server.', detail: sentence(err.message) });
        } else {
          showError(describeError(err, 'list the event data stores'));
        }
        runButton.disabled = true;
        return;
      }
      if (!stores.length) {
        showError({ title: 'This account has no event data store to query.', detail: 'Create one with the AWS CLI (aws cloudtrail create-event-data-store).' });
        runButton.disabled = true;
        return;
      }
      apply(false);
    }

    window.addEventListener('popstate', () => { if (stores.length) apply(true); });
    startPage();
  }

  // ---------------------------------------------------------------------------------------
  // Rules: the account's rules and their hits, recent alerts, alert targets, custom rules

  const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
  const ORIGINS = { default: 'Default pack', folder: 'Rules folder', custom: 'Custom' };
  const KINDS = { pattern: 'Event pattern', sigma: 'Sigma' };
  /** How often the page asks for new alerts while the tab is visible. */
  const RULES_REFRESH_MS = 5000;
  /** How often the rules' hits and the targets' status are read again without new alerts. */
  const RULES_FULL_REFRESH_MS = 15000;
  const ALERT_PAGE = 50;
  const AUTO_KEY = 'cairn.console.rules.auto';

  /** `just now`, `42 s ago`, `5 min ago`, `3 h ago`, `2 days ago`, `4 months ago`, `in 3 min`. */
  function fmtAgo(ms, now) {
    const d = Math.round((now - ms) / 1000);
    const a = Math.abs(d);
    if (a < 10) return 'just now';
    let text;
    if (a < 60) text = `${a} s`;
    else if (a < 3600) text = `${Math.floor(a / 60)} min`;
    else if (a < 86400) text = `${Math.floor(a / 3600)} h`;
    else if (a < 60 * 86400) {
      const n = Math.floor(a / 86400);
      text = `${n} day${n === 1 ? '' : 's'}`;
    } else if (a < 730 * 86400) text = `${Math.floor(a / (30.44 * 86400))} months`;
    else text = `${Math.floor(a / (365.25 * 86400))} years`;
    return d < 0 ? `in ${text}` : `${text} ago`;
  }

  /** `300` seconds as `5 min`; `90` as `90 s`; `7200` as `2 h`. */
  function fmtSeconds(s) {
    s = Number(s) || 0;
    if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
    if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
    return `${s} s`;
  }

  function sevBadge(severity) {
    const s = SEVERITIES.includes(severity) ? severity : 'info';
    return el('span', { class: `sev sev-${s}`, 'data-testid': 'severity', 'data-severity': s, text: s });
  }

  /** A relative time that the page keeps current. */
  function agoEl(ms, prefix) {
    return el('span', {
      class: 'ago', 'data-ago': ms, 'data-prefix': prefix || '', title: fmtTime(ms),
      text: (prefix || '') + fmtAgo(ms, Date.now()),
    });
  }

  function thresholdText(t) {
    if (!t) return 'None: every matching event is an alert.';
    const per = Array.isArray(t.GroupBy) && t.GroupBy.length ? `, for each ${t.GroupBy.join(' and ')}` : '';
    return `${t.Count} matching event${t.Count === 1 ? '' : 's'} within ${fmtSeconds(t.WindowSeconds)}${per}.`;
  }

  function rulesPage() {
    const root = $('#rules-page');
    const may = {
      put: root.dataset.canPut === 'true',
      toggle: root.dataset.canToggle === 'true',
      remove: root.dataset.canDelete === 'true',
    };
    const refreshButton = $('[data-testid="rules-refresh"]');
    const autoBox = $('#auto-refresh');
    const updated = $('#updated');
    const announceBox = $('#announce');
    const refusedBox = $('#refused');
    const refusedList = $('#refused-list');
    const alertSelect = $('#alert-rule');
    const alertClear = $('[data-testid="alert-rule-clear"]');
    const alertsBody = $('#alerts-table tbody');
    const noAlerts = $('[data-testid="no-alerts"]');
    const moreButton = $('[data-testid="alerts-more"]');
    const hitsChart = $('#hits-chart');
    const noHits = $('[data-testid="no-hits"]');
    const rulesBody = $('#rules-table tbody');
    const rulesCount = $('#rules-count');
    const targetsBody = $('#targets-table tbody');
    const targetsWrap = $('[data-testid="targets-wrap"]');
    const noTargets = $('[data-testid="no-targets"]');
    const deadLetter = $('#dead-letter-file');
    const form = $('#rule-form');

    let rules = []; // as ListRules gives them
    let rulesLoaded = false;
    let shape = ''; // what the rules table was built from, hits aside
    const expanded = new Set(); // rules whose details are open
    let alerts = []; // newest first
    let alertsNext = null;
    let alertsLoaded = false;
    let alertsLoading = false;
    let alertsGen = 0;
    let alertRule = ''; // the rule whose alerts are shown ('' for all)
    let lastFull = 0;
    let hadNew = false;
    let ticking = false;
    let pollFailed = false;
    let rulesOff = false; // the server runs no rules

    // -- The view in the URL ----------------------------------------------------------

    const readRule = () => new URLSearchParams(location.search).get('rule') || '';

    function urlOf(rule) {
      const q = new URLSearchParams(location.search);
      if (rule) q.set('rule', rule);
      else q.delete('rule');
      const s = q.toString();
      return location.pathname + (s ? '?' + s : '');
    }

    /** Shows the alerts of `rule` ('' for all), with the URL following. */
    function showRule(rule, { push = true } = {}) {
      if (rule === alertRule && alertsLoaded) return;
      alertRule = rule;
      if (push) {
        const url = urlOf(rule);
        if (url !== location.pathname + location.search) history.pushState(null, '', url);
      }
      syncFilter();
      renderHits();
      loadAlerts();
    }

    function syncFilter() {
      renderRuleOptions();
      alertSelect.value = alertRule;
      alertClear.hidden = !alertRule;
      for (const b of $$('[data-testid="hit-bar"]', hitsChart)) b.setAttribute('aria-pressed', String(b.dataset.rule === alertRule));
    }

    function renderRuleOptions() {
      const names = rules.map((r) => r.Name).sort();
      if (alertRule && !names.includes(alertRule)) names.unshift(alertRule);
      const want = ['', ...names].join('\n');
      const have = $$('option', alertSelect).map((o) => o.value).join('\n');
      if (want !== have) {
        alertSelect.textContent = '';
        alertSelect.append(el('option', { value: '', text: 'All rules' }));
        for (const n of names) alertSelect.append(el('option', { value: n, text: n }));
      }
      alertSelect.value = alertRule;
    }

    // -- Errors -----------------------------------------------------------------------

    function problemOf(err, what) {
      if (err && err.code === 'RulesNotEnabledException') {
        rulesOff = true;
        return { title: 'Rules are off on this server.', detail: sentence(err.message) + ' Start cairn serve without --no-rules to run them.' };
      }
      return describeError(err, what);
    }

    // -- Rules ------------------------------------------------------------------------

    const hitsOf = (r) => r.Hits || {};

    function shapeOf(list) {
      return JSON.stringify(list.map((r) => [r.Name, r.Enabled, r.Severity, r.Description, r.Kind, r.Origin,
        r.EventPattern, r.SigmaRule, r.Threshold, r.File, r.UpdatedAt]));
    }

    async function loadRules() {
      let out;
      try {
        out = await api(CAIRN + 'ListRules', {});
      } catch (err) {
        if (!rulesLoaded) setStatus('');
        showError(problemOf(err, 'list the rules'));
        return false;
      }
      rules = out.Rules || [];
      rulesLoaded = true;
      renderRefused(out.Refused || []);
      renderRules();
      renderHits();
      renderRuleOptions();
      return true;
    }

    function renderRefused(list) {
      refusedList.textContent = '';
      for (const r of list) {
        refusedList.append(el('li', { 'data-testid': 'refused-file' },
          el('code', { class: 'file', text: r.File || '' }), el('span', { class: 'reason', text: r.Reason || '' })));
      }
      refusedBox.hidden = list.length === 0;
    }

    function toggleButton(r) {
      const b = el('button', {
        type: 'button', class: 'switch', role: 'switch', 'aria-checked': String(!!r.Enabled),
        'data-testid': 'rule-toggle', 'data-focus': 'toggle:' + r.Name, 'aria-label': `${r.Name} enabled`,
      }, el('span', { class: 'knob', 'aria-hidden': 'true' }), el('span', { class: 'switch-text', 'aria-hidden': 'true', text: r.Enabled ? 'On' : 'Off' }));
      if (!may.toggle) {
        b.disabled = true;
        b.title = 'Your policies do not allow enabling or disabling rules (cloudtrail:EnableRule, cloudtrail:DisableRule)';
      }
      return b;
    }

    function alertsButton(r) {
      const n = Number(hitsOf(r).Alerts) || 0;
      return el('button', {
        type: 'button', class: 'count-link', 'data-testid': 'rule-alerts', 'data-rule': r.Name,
        'data-focus': 'alerts:' + r.Name, title: `Show the alerts of ${r.Name}`,
        'aria-label': `${n} alert${n === 1 ? '' : 's'} of ${r.Name}: show them`,
      }, fmtCount(n));
    }

    function lastMatch(r) {
      const t = hitsOf(r).LastMatch;
      return t ? agoEl(t * 1000) : el('span', { class: 'none', text: 'Never' });
    }

    function hitsText(h) {
      const m = Number(h.Matched) || 0;
      const n = Number(h.Alerts) || 0;
      return `${fmtCount(m)} matching event${m === 1 ? '' : 's'}, ${fmtCount(n)} alert${n === 1 ? '' : 's'}` +
        (h.LastMatch ? `; the last matching event's time ${fmtTime(h.LastMatch * 1000)}` : '');
    }

    function sourceOf(r) {
      if (r.Kind === 'sigma') return r.SigmaRule || '';
      return prettyPattern(r.EventPattern || '');
    }

    function detailsOf(r) {
      const h = hitsOf(r);
      const items = [
        ['Description', 'description', r.Description || '-'],
        ['Threshold', 'threshold', thresholdText(r.Threshold)],
        ['Origin', 'origin', ORIGINS[r.Origin] || r.Origin || '-'],
        ['Kind', 'kind', KINDS[r.Kind] || r.Kind || '-'],
        ['Severity', 'severity', r.Severity || '-'],
        ['Hits', 'hits', hitsText(h)],
      ];
      if (r.File) items.push(['File', 'file', r.File, true]);
      if (r.UpdatedAt) items.push(['Updated', 'updated', fmtTime(r.UpdatedAt * 1000)]);
      const dl = el('dl', { class: 'summary' });
      for (const [label, field, value, mono] of items) {
        dl.append(el('dt', { text: label }), el('dd', { 'data-field': field, class: mono ? 'mono' : null, text: value }));
      }
      const text = sourceOf(r);
      const label = r.Kind === 'sigma' ? 'Sigma rule' : 'Event pattern';
      const copy = el('button', { type: 'button', class: 'btn subtle small', 'data-action': 'copy', 'aria-label': `Copy the ${label.toLowerCase()} of ${r.Name}` }, 'Copy');
      copy.addEventListener('click', async () => {
        const ok = await copyText(text);
        copy.textContent = ok ? 'Copied' : 'Copy failed: select the text';
        setTimeout(() => { copy.textContent = 'Copy'; }, 2000);
      });
      const actions = el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'btn subtle small', 'data-action': 'show-alerts', 'data-testid': 'rule-show-alerts' }, 'Show its alerts'));
      if (r.Origin === 'custom' && r.Kind === 'pattern' && may.put) {
        actions.append(el('button', { type: 'button', class: 'btn subtle small', 'data-action': 'edit', 'data-testid': 'rule-edit', 'data-focus': 'edit:' + r.Name }, 'Edit'));
      }
      if (r.Origin === 'custom' && may.remove) {
        actions.append(el('button', { type: 'button', class: 'btn danger small', 'data-action': 'delete', 'data-testid': 'rule-delete', 'data-focus': 'delete:' + r.Name }, 'Delete'));
      }
      return el('div', { class: 'rule-detail' },
        el('div', { class: 'rule-detail-grid' },
          el('div', {}, dl, actions),
          el('div', { class: 'rule-source' },
            el('h3', {}, label, copy),
            el('pre', { class: 'json', 'data-testid': 'rule-source', tabindex: '0', 'aria-label': `${label} of ${r.Name}`, text }))));
    }

    function ruleRows(r, i) {
      const id = `rule-details-${i}`;
      const open = expanded.has(r.Name);
      const h = hitsOf(r);
      const name = el('button', {
        type: 'button', class: 'rule-name', 'data-testid': 'rule-name', 'aria-expanded': String(open), 'aria-controls': id,
        'data-focus': 'name:' + r.Name, title: open ? 'Hide the details' : 'Show the details',
      }, el('span', { class: 'chev', 'aria-hidden': 'true' }), r.Name);
      const row = el('tr', { 'data-testid': 'rule-row', 'data-rule': r.Name, 'data-enabled': String(!!r.Enabled), 'data-origin': r.Origin, class: r.Enabled ? null : 'off' },
        el('td', { 'data-col': 'name' }, name, r.Description ? el('span', { class: 'desc', text: r.Description }) : null),
        el('td', { 'data-col': 'origin' }, el('span', { class: `tag origin-${r.Origin}`, text: ORIGINS[r.Origin] || r.Origin })),
        el('td', { 'data-col': 'kind', text: KINDS[r.Kind] || r.Kind }),
        el('td', { 'data-col': 'severity' }, sevBadge(r.Severity)),
        el('td', { 'data-col': 'enabled' }, toggleButton(r)),
        el('td', { 'data-col': 'matched', class: 'num', text: fmtCount(h.Matched) }),
        el('td', { 'data-col': 'alerts', class: 'num' }, alertsButton(r)),
        el('td', { 'data-col': 'last-match' }, lastMatch(r)));
      const details = el('tr', { class: 'rule-details', id, 'data-testid': 'rule-details', 'data-rule': r.Name, hidden: !open },
        el('td', { colspan: '8' }, detailsOf(r)));
      return [row, details];
    }

    /** Builds the table again when the rules changed (keeping the focus), else updates their
     * hits in place (keeping a selection in the details). */
    function renderRules({ focus } = {}) {
      const active = document.activeElement;
      const focusKey = focus || (active && rulesBody.contains(active) && active.dataset ? active.dataset.focus : null);
      const next = shapeOf(rules);
      if (next === shape) {
        updateHits();
      } else {
        shape = next;
        const frag = document.createDocumentFragment();
        rules.forEach((r, i) => frag.append(...ruleRows(r, i)));
        rulesBody.textContent = '';
        rulesBody.append(frag);
        if (focusKey) {
          const again = $$('[data-focus]', rulesBody).find((x) => x.dataset.focus === focusKey);
          if (again) again.focus();
        }
      }
      const on = rules.filter((r) => r.Enabled).length;
      rulesCount.textContent = `${rules.length} rule${rules.length === 1 ? '' : 's'}, ${on} enabled`;
      if (/^Loading/.test($('#status').textContent)) setStatus('');
    }

    function updateHits() {
      const byName = new Map(rules.map((r) => [r.Name, r]));
      for (const row of $$('tr[data-testid="rule-row"]', rulesBody)) {
        const r = byName.get(row.dataset.rule);
        if (!r) continue;
        const h = hitsOf(r);
        $('td[data-col="matched"]', row).textContent = fmtCount(h.Matched);
        const b = $('[data-testid="rule-alerts"]', row);
        const n = Number(h.Alerts) || 0;
        b.textContent = fmtCount(n);
        b.setAttribute('aria-label', `${n} alert${n === 1 ? '' : 's'} of ${r.Name}: show them`);
        const last = $('td[data-col="last-match"]', row);
        const shown = $('[data-ago]', last);
        if (!shown || Number(shown.dataset.ago) !== (h.LastMatch || 0) * 1000) {
          last.textContent = '';
          last.append(lastMatch(r));
        }
        const mine = row.nextElementSibling && $('dd[data-field="hits"]', row.nextElementSibling);
        if (mine) mine.textContent = hitsText(h);
      }
    }

    function replaceRule(rule) {
      const i = rules.findIndex((r) => r.Name === rule.Name);
      if (i >= 0) rules[i] = rule;
      else rules.push(rule);
    }

    async function setEnabled(button, name) {
      const on = button.getAttribute('aria-checked') === 'true';
      const key = button.dataset.focus;
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      try {
        const out = await api(CAIRN + (on ? 'DisableRule' : 'EnableRule'), { Name: name });
        if (out.Rule) replaceRule(out.Rule);
        setStatus(`${name} is ${on ? 'disabled: it no longer raises alerts' : 'enabled'}.`);
      } catch (err) {
        showError(problemOf(err, `${on ? 'disable' : 'enable'} ${name}`));
      }
      shape = '';
      renderRules({ focus: key });
      renderHits();
    }

    async function deleteRule(button, name) {
      const yes = await ask({
        title: `Delete rule ${name}?`,
        message: 'It stops at once and its hit counts are forgotten; the alerts it raised stay in the list. This cannot be undone.',
        confirm: 'Delete rule', danger: true,
      });
      if (!yes) { button.focus(); return; }
      try {
        await api(CAIRN + 'DeleteRule', { Name: name });
      } catch (err) {
        showError(problemOf(err, `delete ${name}`));
        button.focus();
        return;
      }
      rules = rules.filter((r) => r.Name !== name);
      expanded.delete(name);
      renderRules();
      renderHits();
      renderRuleOptions();
      setStatus(`Rule ${name} deleted.`);
      $('#rules-title').setAttribute('tabindex', '-1');
      $('#rules-title').focus();
    }

    function toggleDetails(button) {
      const row = button.closest('tr');
      const details = row.nextElementSibling;
      const name = row.dataset.rule;
      const open = button.getAttribute('aria-expanded') !== 'true';
      button.setAttribute('aria-expanded', String(open));
      button.title = open ? 'Hide the details' : 'Show the details';
      details.hidden = !open;
      if (open) expanded.add(name);
      else expanded.delete(name);
    }

    rulesBody.addEventListener('click', (e) => {
      const b = e.target.closest('button');
      if (!b || !rulesBody.contains(b)) return;
      const row = b.closest('tr');
      const name = row.dataset.rule;
      if (b.dataset.testid === 'rule-name') toggleDetails(b);
      else if (b.dataset.testid === 'rule-toggle') setEnabled(b, name);
      else if (b.dataset.testid === 'rule-alerts' || b.dataset.action === 'show-alerts') {
        showRule(name);
        focusAlerts();
      } else if (b.dataset.action === 'edit') edit(name);
      else if (b.dataset.action === 'delete') deleteRule(b, name);
    });

    function focusAlerts() {
      const h = $('#alerts-title');
      h.scrollIntoView({ block: 'start' });
      h.focus({ preventScroll: true });
    }

    // -- Alerts per rule --------------------------------------------------------------

    function renderHits() {
      const list = rules
        .map((r) => ({ name: r.Name, n: Number(hitsOf(r).Alerts) || 0, severity: r.Severity }))
        .filter((x) => x.n > 0)
        .sort((a, b) => b.n - a.n || (a.name < b.name ? -1 : 1));
      const max = Math.max(1, ...list.map((x) => x.n));
      const focused = document.activeElement && hitsChart.contains(document.activeElement) ? document.activeElement.dataset.rule : null;
      hitsChart.textContent = '';
      for (const x of list) {
        const svg = svgEl('svg', { class: 'bar', viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false' });
        svg.append(svgEl('rect', { class: 'track', x: 0, y: 0, width: 100, height: 10 }));
        svg.append(svgEl('rect', { class: `fill sev-${x.severity}`, x: 0, y: 0, width: Math.max(1.5, (x.n / max) * 100).toFixed(2), height: 10 }));
        const b = el('button', {
          type: 'button', class: 'hit-bar', 'data-testid': 'hit-bar', 'data-rule': x.name, 'data-count': x.n,
          'aria-pressed': String(alertRule === x.name), title: `Show the alerts of ${x.name}`,
        },
        el('span', { class: 'hit-name', text: x.name }), svg,
        el('span', { class: 'hit-count', text: fmtCount(x.n) }, el('span', { class: 'sr-only', text: ` alert${x.n === 1 ? '' : 's'}` })));
        hitsChart.append(el('li', {}, b));
      }
      noHits.hidden = !rulesLoaded || list.length > 0;
      if (focused) {
        const again = $$('[data-testid="hit-bar"]', hitsChart).find((b) => b.dataset.rule === focused);
        if (again) again.focus();
      }
    }

    hitsChart.addEventListener('click', (e) => {
      const b = e.target.closest('[data-testid="hit-bar"]');
      if (!b) return;
      showRule(alertRule === b.dataset.rule ? '' : b.dataset.rule);
    });

    // -- Alerts -----------------------------------------------------------------------

    /** The Events page showing an alert's event: the path of the alert's console link, so
     * that it opens here whatever public address the server gives. */
    function eventHref(a) {
      try {
        const u = new URL(a.consoleUrl, location.origin);
        if (u.pathname === '/console/events') return u.pathname + u.search;
      } catch (e) { /* built below */ }
      const t = Date.parse(a.eventTime);
      const q = new URLSearchParams();
      if (!isNaN(t)) {
        q.set('start', new Date(t - 36e5).toISOString());
        q.set('end', new Date(t + 36e5).toISOString());
      }
      q.append('f', 'EventId:' + a.eventId);
      return '/console/events?' + q.toString();
    }

    function groupText(g) {
      const key = Object.entries(g.key || {}).map(([k, v]) => `${k.replace(/^detail\./, '')} = ${v}`).join(', ');
      return key ? `For ${key}` : '';
    }

    /** A principal's ARN as its last part (`user/alana`, `assumed-role/Admin/s`) over its
     * account; anything else as it is. */
    function principalCell(p) {
      const td = el('td', { 'data-col': 'principal' });
      const m = /^arn:[^:]*:[^:]*:[^:]*:(\d*):(.+)$/.exec(p || '');
      if (!m) {
        td.append(el('span', { class: 'mono', text: p || '-' }));
        return td;
      }
      td.title = p;
      td.append(el('span', { class: 'mono who', text: m[2] }));
      if (m[1]) td.append(el('span', { class: 'sub', text: m[1] }));
      return td;
    }

    function alertRow(a, fresh) {
      const rule = a.rule || {};
      const t = Date.parse(a.eventTime);
      const detected = Date.parse(a.detectedAt);
      const time = el('td', { 'data-col': 'event-time' });
      if (!isNaN(t)) {
        const [date, ...clock] = fmtTime(t).split(' ');
        time.append(el('time', { datetime: new Date(t).toISOString() },
          el('span', { class: 'date', text: date }), ' ', el('span', { class: 'clock', text: clock.join(' ') })));
      } else time.append(el('span', { class: 'none', text: '-' }));
      if (!isNaN(detected)) time.append(el('span', { class: 'sub plain' }, agoEl(detected, 'detected ')));
      const summary = el('td', { 'data-col': 'summary' }, el('span', { class: 'summary-text', text: a.summary || '' }));
      const group = a.group ? groupText(a.group) : '';
      if (group) summary.append(el('span', { class: 'sub', text: group }));
      const when = isNaN(t) ? '' : `, ${fmtTime(t)}`;
      return el('tr', {
        'data-testid': 'alert-row', 'data-alert-id': a.alertId, 'data-rule': rule.name, 'data-seq': a.seq,
        'data-event-id': a.eventId, class: fresh ? 'new' : null,
      },
      el('td', { 'data-col': 'severity' }, sevBadge(rule.severity)),
      el('td', { 'data-col': 'rule' }, el('button', {
        type: 'button', class: 'cell-filter', 'data-testid': 'alert-rule-filter', 'data-rule': rule.name,
        title: `Show the alerts of ${rule.name} only`, text: rule.name,
      })),
      summary,
      time,
      principalCell(a.principal),
      el('td', { 'data-col': 'source-ip', class: 'mono', text: a.sourceIPAddress || '-' }),
      el('td', { 'data-col': 'event' }, el('a', {
        class: 'btn subtle small', 'data-testid': 'alert-event-link', href: eventHref(a),
        'aria-label': `View the event in Event history: ${a.eventName || 'event'}${when}`,
      }, 'View event')));
    }

    function updateAlertsFooter() {
      moreButton.hidden = !alertsNext;
      moreButton.disabled = alertsLoading;
      noAlerts.textContent = alertRule ? `No alerts of ${alertRule}.` : 'No alerts yet: they show here within a second of a matching event.';
      noAlerts.hidden = !alertsLoaded || alerts.length > 0;
      alertsBody.closest('.table-wrap').hidden = alertsLoaded && alerts.length === 0;
    }

    async function loadAlerts({ more = false } = {}) {
      const gen = more ? alertsGen : ++alertsGen;
      if (more && (!alertsNext || alertsLoading)) return;
      const body = { MaxResults: ALERT_PAGE };
      if (alertRule) body.RuleName = alertRule;
      if (more) body.NextToken = alertsNext;
      if (!more) {
        alerts = [];
        alertsNext = null;
        alertsLoaded = false;
        alertsBody.textContent = '';
      }
      alertsLoading = true;
      updateAlertsFooter();
      let out;
      try {
        out = await api(CAIRN + 'ListAlerts', body);
      } catch (err) {
        if (gen !== alertsGen) return;
        alertsLoading = false;
        alertsLoaded = true;
        updateAlertsFooter();
        showError(problemOf(err, 'list the alerts'));
        return;
      }
      if (gen !== alertsGen) return;
      alertsLoading = false;
      alertsLoaded = true;
      const list = out.Alerts || [];
      alerts.push(...list);
      const frag = document.createDocumentFragment();
      for (const a of list) frag.append(alertRow(a, false));
      alertsBody.append(frag);
      alertsNext = out.NextToken || null;
      updateAlertsFooter();
      if (more) setStatus(`${alerts.length} alerts shown${alertsNext ? '; more to load' : ''}.`);
    }

    /** Asks for the newest alerts; shows those not shown yet. Returns how many. */
    async function pollAlerts() {
      if (!alertsLoaded || alertsLoading) {
        if (!alertsLoading) await loadAlerts();
        return 0;
      }
      const gen = alertsGen;
      const body = { MaxResults: ALERT_PAGE };
      if (alertRule) body.RuleName = alertRule;
      const out = await api(CAIRN + 'ListAlerts', body);
      if (gen !== alertsGen) return 0;
      const list = out.Alerts || [];
      const top = alerts.length ? Number(alerts[0].seq) : -1;
      const fresh = list.filter((a) => Number(a.seq) > top);
      if (!fresh.length) return 0;
      if (!alerts.length || (fresh.length === list.length && out.NextToken)) {
        // Nothing shown yet, or more new alerts than a page: start again from the newest.
        alerts = list.slice();
        alertsNext = out.NextToken || null;
        alertsBody.textContent = '';
        const frag = document.createDocumentFragment();
        for (const a of list) frag.append(alertRow(a, fresh.includes(a)));
        alertsBody.append(frag);
      } else {
        alerts.unshift(...fresh);
        const frag = document.createDocumentFragment();
        for (const a of fresh) frag.append(alertRow(a, true));
        alertsBody.insertBefore(frag, alertsBody.firstChild);
      }
      updateAlertsFooter();
      announceBox.textContent = `${fresh.length} new alert${fresh.length === 1 ? '' : 's'}` +
        (fresh.length === 1 ? `: ${(fresh[0].rule || {}).name}, ${fresh[0].summary}` : '.');
      return fresh.length;
    }

    moreButton.addEventListener('click', () => loadAlerts({ more: true }));

    alertsBody.addEventListener('click', (e) => {
      const b = e.target.closest('[data-testid="alert-rule-filter"]');
      if (!b) return;
      showRule(b.dataset.rule);
      alertSelect.focus();
    });

    alertSelect.addEventListener('change', () => showRule(alertSelect.value));
    $('#alert-filter').addEventListener('submit', (e) => e.preventDefault());
    alertClear.addEventListener('click', () => {
      showRule('');
      alertSelect.focus();
    });

    // -- Alert targets ----------------------------------------------------------------

    async function loadTargets() {
      let out;
      try {
        out = await api(CAIRN + 'GetAlertTargets', {});
      } catch (err) {
        if (!rulesOff) showError(problemOf(err, 'read the alert targets\' status'));
        targetsWrap.hidden = true;
        return false;
      }
      const list = out.Targets || [];
      const rows = list.map((t) => {
        const failed = Number(t.FailedAttempts) || 0;
        const dead = Number(t.DeadLettered) || 0;
        const last = t.LastDeliveryMs ? el('td', { 'data-col': 'last-delivery' }, agoEl(Number(t.LastDeliveryMs)))
          : el('td', { 'data-col': 'last-delivery' }, el('span', { class: 'none', text: 'None yet' }));
        return el('tr', { 'data-testid': 'target-row', 'data-target': t.Target },
          el('td', { 'data-col': 'target', class: 'mono', text: t.Target }),
          el('td', { 'data-col': 'delivered', class: 'num', text: fmtCount(t.Delivered) }),
          el('td', { 'data-col': 'pending', class: 'num', text: fmtCount(t.Pending) }),
          el('td', { 'data-col': 'failed', class: failed ? 'num bad' : 'num', text: fmtCount(failed) }),
          el('td', { 'data-col': 'dead-lettered', class: dead ? 'num bad' : 'num', text: fmtCount(dead) }),
          last,
          el('td', { 'data-col': 'last-error' }, t.LastError ? el('span', { class: 'error-text', text: t.LastError }) : el('span', { class: 'none', text: '-' })));
      });
      targetsBody.textContent = '';
      targetsBody.append(...rows);
      targetsWrap.hidden = list.length === 0;
      noTargets.hidden = list.length > 0;
      deadLetter.textContent = '';
      if (out.DeadLetterFile && list.length) {
        deadLetter.append('Alerts a target gives up on are written to ', el('code', { text: out.DeadLetterFile }), '.');
      }
      deadLetter.hidden = !(out.DeadLetterFile && list.length);
      return true;
    }

    // -- Refreshing -------------------------------------------------------------------

    function refreshAges() {
      const now = Date.now();
      for (const n of $$('[data-ago]')) n.textContent = (n.dataset.prefix || '') + fmtAgo(Number(n.dataset.ago), now);
    }

    function stamp() {
      const now = Date.now();
      const at = fmtTime(now).split(' ')[1];
      updated.textContent = autoBox.checked ? `Updated ${at} UTC; every ${RULES_REFRESH_MS / 1000} s` : `Updated ${at} UTC`;
      updated.dataset.at = String(now);
    }

    async function refreshAll() {
      refreshButton.disabled = true;
      showError(null);
      pollFailed = false;
      try {
        await Promise.all([loadRules(), alertsLoaded ? pollAlerts().catch((err) => showError(problemOf(err, 'list the alerts'))) : loadAlerts(), loadTargets()]);
        lastFull = Date.now();
      } finally {
        refreshButton.disabled = false;
        refreshAges();
        stamp();
      }
    }

    async function tick() {
      if (ticking || !autoBox.checked || document.hidden || rulesOff) return;
      ticking = true;
      try {
        const n = await pollAlerts();
        if (n > 0 || hadNew || Date.now() - lastFull >= RULES_FULL_REFRESH_MS) {
          // Hits change with new alerts; targets deliver them moments later.
          hadNew = n > 0;
          await Promise.all([loadRules(), loadTargets()]);
          lastFull = Date.now();
        }
        if (pollFailed) { pollFailed = false; showError(null); }
        stamp();
      } catch (err) {
        pollFailed = true;
        showError(problemOf(err, 'refresh the alerts'));
      } finally {
        ticking = false;
        refreshAges();
      }
    }

    refreshButton.addEventListener('click', refreshAll);
    try { autoBox.checked = localStorage.getItem(AUTO_KEY) !== 'off'; } catch (e) { /* on */ }
    autoBox.addEventListener('change', () => {
      try { localStorage.setItem(AUTO_KEY, autoBox.checked ? 'on' : 'off'); } catch (e) { /* private mode */ }
      stamp();
      if (autoBox.checked) tick();
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });
    setInterval(() => {
      if (document.hidden) return;
      if (autoBox.checked) tick();
      else refreshAges();
    }, RULES_REFRESH_MS);

    window.addEventListener('popstate', () => showRule(readRule(), { push: false }));

    // -- The form ---------------------------------------------------------------------

    let editing = null; // the name of the rule in the form, when editing one
    const field = (name) => form && form.elements[name];

    function formError(problem, invalid) {
      const box = $('#rule-form-error');
      for (const f of $$('[aria-invalid]', form)) unmark(f);
      box.textContent = '';
      if (!problem) { box.hidden = true; return; }
      box.append(el('strong', { text: problem.title }));
      if (problem.detail) box.append(el('div', { class: 'detail', 'data-testid': 'rule-form-error-detail', text: problem.detail }));
      box.hidden = false;
      for (const f of invalid || []) {
        // The field says it is wrong, and the message says why.
        f.setAttribute('aria-invalid', 'true');
        f.dataset.describedby = f.getAttribute('aria-describedby') || '';
        f.setAttribute('aria-describedby', `${f.dataset.describedby} rule-form-error`.trim());
      }
      if (invalid && invalid[0]) invalid[0].focus();
    }

    function unmark(f) {
      if (!f.hasAttribute('aria-invalid')) return;
      f.removeAttribute('aria-invalid');
      if (f.dataset.describedby) f.setAttribute('aria-describedby', f.dataset.describedby);
      else f.removeAttribute('aria-describedby');
      delete f.dataset.describedby;
    }

    /** The fields the server's message is about. */
    function invalidFields(err) {
      const msg = String(err.message || '');
      if (err.code === 'InvalidEventPatternException') return [field('pattern')];
      if (/Threshold\.Count|Count /.test(msg)) return [field('count')];
      if (/Threshold\.WindowSeconds|[Ww]indow/.test(msg)) return [field('window')];
      if (/GroupBy|group/.test(msg)) return [field('groupBy')];
      if (/\bName\b|name/.test(msg) && !/pattern/i.test(msg)) return [field('name')];
      if (/Severity/.test(msg)) return [field('severity')];
      if (/Description/.test(msg)) return [field('description')];
      return [];
    }

    const intOrText = (s) => (s === '' ? null : /^\d+$/.test(s) ? Number(s) : s);

    /** PutRule's input from the form, or null (with the field to fill in focused). */
    function ruleInput() {
      const name = field('name').value.trim();
      const pattern = field('pattern').value;
      if (!name) {
        formError({ title: 'Give the rule a name.', detail: 'Letters, digits, \'.\', \'_\' and \'-\'.' }, [field('name')]);
        return null;
      }
      if (!pattern.trim()) {
        formError({ title: 'Write the rule\'s event pattern.', detail: 'For example {"source": ["aws.iam"], "detail": {"eventName": ["DeleteUser"]}}' }, [field('pattern')]);
        return null;
      }
      const body = { Name: name, Severity: field('severity').value, EventPattern: pattern };
      const description = field('description').value.trim();
      if (description) body.Description = description;
      const count = field('count').value.trim();
      const windowSeconds = field('window').value.trim();
      const groupBy = field('groupBy').value.trim();
      if (count || windowSeconds || groupBy) {
        body.Threshold = {
          Count: intOrText(count), WindowSeconds: intOrText(windowSeconds),
          GroupBy: groupBy ? groupBy.split(',').map((p) => p.trim()).filter(Boolean) : [],
        };
      }
      return body;
    }

    function setEditing(name) {
      editing = name;
      $('#rule-form-title').textContent = name ? `Edit rule ${name}` : 'Add a rule';
      $('[data-testid="rule-save"]', form).textContent = name ? 'Save rule' : 'Add rule';
      $('[data-testid="rule-edit-cancel"]', form).hidden = !name;
    }

    function edit(name) {
      const r = rules.find((x) => x.Name === name);
      if (!r || !form) return;
      setEditing(name);
      field('name').value = r.Name;
      field('description').value = r.Description || '';
      field('severity').value = r.Severity || 'medium';
      field('pattern').value = sourceOf(r);
      field('count').value = r.Threshold ? String(r.Threshold.Count) : '';
      field('window').value = r.Threshold ? String(r.Threshold.WindowSeconds) : '';
      field('groupBy').value = r.Threshold && r.Threshold.GroupBy ? r.Threshold.GroupBy.join(', ') : '';
      formError(null);
      $('#rule-form-status').textContent = '';
      $('#rule-test-result').hidden = true;
      const card = $('#rule-form-card');
      card.scrollIntoView({ block: 'start' });
      field('pattern').focus({ preventScroll: true });
    }

    async function save() {
      const body = ruleInput();
      if (!body) return;
      formError(null);
      const exists = rules.find((r) => r.Name === body.Name);
      if (exists && exists.Origin === 'custom' && editing !== body.Name) {
        const yes = await ask({
          title: `Replace rule ${body.Name}?`,
          message: 'This account has a rule by that name: saving replaces its pattern, severity and threshold.',
          confirm: 'Replace rule', danger: true,
        });
        if (!yes) { field('name').focus(); return; }
      }
      const button = $('[data-testid="rule-save"]', form);
      const status = $('#rule-form-status');
      button.disabled = true;
      status.textContent = 'Saving...';
      let out;
      try {
        out = await api(CAIRN + 'PutRule', body);
      } catch (err) {
        status.textContent = '';
        formError({ title: 'The rule was not saved.', detail: `${err.code}: ${sentence(err.message)}` }, invalidFields(err));
        return;
      } finally {
        button.disabled = false;
      }
      const name = out.Rule ? out.Rule.Name : body.Name;
      if (out.Rule) replaceRule(out.Rule);
      form.reset();
      setEditing(null);
      $('#rule-test-result').hidden = true;
      status.textContent = `Rule ${name} ${out.Created ? 'added' : 'saved'}: it runs on each event stored from now on.`;
      renderRules();
      renderHits();
      renderRuleOptions();
      const row = $$('tr[data-testid="rule-row"]', rulesBody).find((tr) => tr.dataset.rule === name);
      if (row) row.classList.add('new');
    }

    async function testRule() {
      const body = ruleInput();
      if (!body) return;
      formError(null);
      const box = $('#rule-test-result');
      const button = $('[data-testid="rule-test"]', form);
      const now = Date.now();
      body.StartTime = Math.floor((now - 864e5) / 1000);
      body.EndTime = Math.ceil(now / 1000);
      body.MaxAlerts = 5;
      button.disabled = true;
      box.hidden = false;
      box.textContent = 'Testing on the events of the last 24 hours...';
      let out;
      try {
        out = await api(CAIRN + 'TestRule', body);
      } catch (err) {
        box.hidden = true;
        formError({ title: 'The rule cannot be tested.', detail: `${err.code}: ${sentence(err.message)}` }, invalidFields(err));
        return;
      } finally {
        button.disabled = false;
      }
      const list = out.Alerts || [];
      box.textContent = '';
      box.append(el('p', { 'data-testid': 'rule-test-summary' },
        `In the last 24 hours: ${fmtCount(out.Scanned)} event${out.Scanned === 1 ? '' : 's'} read, ${fmtCount(out.Matched)} matched, ` +
        `${list.length}${out.Truncated ? ' or more' : ''} alert${list.length === 1 && !out.Truncated ? '' : 's'} would have been raised.`));
      if (list.length) {
        box.append(el('ul', { class: 'test-alerts' }, list.map((a) => el('li', {},
          el('span', { text: a.summary || '' }), ' ',
          el('a', { href: eventHref(a), 'aria-label': `View the event: ${a.eventName || 'event'}` }, 'View event')))));
      }
    }

    if (form) {
      form.addEventListener('submit', (e) => { e.preventDefault(); save(); });
      $('[data-testid="rule-test"]', form).addEventListener('click', testRule);
      $('[data-testid="rule-edit-cancel"]', form).addEventListener('click', () => {
        const name = editing;
        form.reset();
        setEditing(null);
        formError(null);
        const back = $$('[data-focus]', rulesBody).find((x) => x.dataset.focus === 'edit:' + name);
        if (back) back.focus();
      });
      field('pattern').addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          save();
        }
      });
      for (const f of $$('input, textarea, select', form)) f.addEventListener('input', () => unmark(f));
    }

    // -- Start ------------------------------------------------------------------------

    alertRule = readRule();
    syncFilter();
    updateAlertsFooter();
    refreshAll();
  }

  // ---------------------------------------------------------------------------------------
  // Trails

  async function trailsPage() {
    const tbody = $('#trails-table tbody');
    const empty = $('[data-testid="no-trails"]');
    let trails;
    try {
      const out = await api(CT + 'DescribeTrails', { includeShadowTrails: true });
      trails = out.trailList || [];
    } catch (err) {
      setStatus('');
      showError(describeError(err, 'list the trails'));
      return;
    }
    setStatus('');
    empty.hidden = trails.length > 0;
    for (const t of trails) {
      const status = el('td', { 'data-col': 'status' }, el('span', { class: 'tag', text: 'Checking...' }));
      const delivery = el('td', { 'data-col': 'delivery', text: '-' });
      const bucket = t.S3BucketName ? t.S3BucketName + (t.S3KeyPrefix ? '/' + t.S3KeyPrefix : '') : '-';
      tbody.append(el('tr', { 'data-testid': 'trail-row', 'data-trail-arn': t.TrailARN || '' },
        el('td', { 'data-col': 'name' }, el('strong', { text: t.Name || '' }), el('span', { class: 'sub', text: t.TrailARN || '' })),
        el('td', { 'data-col': 'home-region', text: t.HomeRegion || '' }),
        el('td', { 'data-col': 'multi-region', text: t.IsMultiRegionTrail ? 'Yes' : 'No' }),
        el('td', { 'data-col': 'bucket', text: bucket }),
        el('td', { 'data-col': 'validation', text: t.LogFileValidationEnabled ? 'Enabled' : 'Disabled' }),
        status,
        delivery,
      ));
      api(CT + 'GetTrailStatus', { Name: t.TrailARN || t.Name }).then((s) => {
        status.textContent = '';
        status.append(el('span', { class: s.IsLogging ? 'tag good' : 'tag', 'data-testid': 'trail-status', text: s.IsLogging ? 'Logging' : 'Not logging' }));
        delivery.textContent = '';
        if (s.LatestDeliveryTime) delivery.append(el('div', { text: fmtTime(s.LatestDeliveryTime * 1000) }));
        else delivery.append(el('div', { class: 'none', text: 'No delivery yet' }));
        if (s.LatestDeliveryError) delivery.append(el('div', { class: 'tag bad', text: s.LatestDeliveryError }));
      }).catch((err) => {
        status.textContent = '';
        status.append(el('span', { class: 'tag bad', text: describeError(err, 'get the status').title }));
      });
    }
  }

  // ---------------------------------------------------------------------------------------
  // Settings: users and access keys

  function settingsPage() {
    const form = $('#create-user');
    if (!form) return; // not allowed: the page says so
    const tbody = $('#users-table tbody');
    const secretBox = $('#secret');
    const policySelect = $('#new-user-policy');
    const me = document.body.dataset.user;

    async function run(what, fn) {
      showError(null);
      try { return await fn(); } catch (err) { showError(describeError(err, what)); return undefined; }
    }

    function showSecret(key) {
      secretBox.textContent = '';
      const id = el('code', { 'data-testid': 'new-access-key-id', text: key.AccessKeyId });
      const secret = el('code', { 'data-testid': 'secret-access-key', text: key.SecretAccessKey });
      const copy = el('button', { type: 'button', class: 'btn subtle small' }, 'Copy secret');
      copy.addEventListener('click', async () => { copy.textContent = (await copyText(key.SecretAccessKey)) ? 'Copied' : 'Copy failed'; });
      const done = el('button', { type: 'button', class: 'btn small', 'data-testid': 'secret-dismiss' }, 'I have saved it');
      done.addEventListener('click', () => { secretBox.hidden = true; secretBox.textContent = ''; });
      secretBox.append(
        el('strong', { text: `New access key for ${key.UserName}. The secret is shown only now: keep it somewhere safe.` }),
        el('div', { class: 'row' }, 'Access key ID:', id),
        el('div', { class: 'row' }, 'Secret access key:', secret, copy),
        el('div', { class: 'row' }, done),
      );
      secretBox.hidden = false;
      secretBox.scrollIntoView({ block: 'nearest' });
      done.focus();
    }

    async function loadPolicies() {
      const out = await run('list the policies', () => api(ADMIN + 'ListPolicies', {}));
      if (!out) return;
      for (const p of out.Policies || []) policySelect.append(el('option', { value: p.Arn, text: p.PolicyName }));
    }

    function keyItem(user, k) {
      const active = k.Status === 'Active';
      const toggle = el('button', {
        type: 'button', class: 'btn subtle small',
        'data-testid': active ? 'key-deactivate' : 'key-activate',
      }, active ? 'Deactivate' : 'Activate');
      toggle.addEventListener('click', async () => {
        await run('change the access key', () => api(ADMIN + 'UpdateAccessKey', {
          UserName: user.UserName, AccessKeyId: k.AccessKeyId, Status: active ? 'Inactive' : 'Active',
        }));
        loadUsers();
      });
      const del = el('button', { type: 'button', class: 'btn danger small', 'data-testid': 'key-delete' }, 'Delete');
      del.addEventListener('click', async () => {
        const yes = await ask({
          title: 'Delete access key?',
          message: `${k.AccessKeyId} of ${user.UserName} stops working at once. This cannot be undone.`,
          confirm: 'Delete key', danger: true,
        });
        if (!yes) { del.focus(); return; }
        await run('delete the access key', () => api(ADMIN + 'DeleteAccessKey', { UserName: user.UserName, AccessKeyId: k.AccessKeyId }));
        loadUsers();
      });
      return el('li', { 'data-testid': 'access-key', 'data-access-key-id': k.AccessKeyId },
        el('code', { text: k.AccessKeyId }),
        el('span', { class: active ? 'tag good' : 'tag', text: k.Status }),
        toggle, del);
    }

    function userRow(u, keys, policies) {
      const keyList = el('ul', { class: 'keys' }, keys.map((k) => keyItem(u, k)));
      const createKey = el('button', { type: 'button', class: 'btn subtle small', 'data-testid': 'create-key' }, 'Create access key');
      createKey.disabled = keys.length >= 2;
      if (keys.length >= 2) createKey.title = 'A user has at most two access keys';
      createKey.addEventListener('click', async () => {
        const out = await run('create an access key', () => api(ADMIN + 'CreateAccessKey', { UserName: u.UserName }));
        if (out && out.AccessKey) { await loadUsers(); showSecret(out.AccessKey); }
      });
      const setPassword = el('button', { type: 'button', class: 'btn subtle small', 'data-testid': 'set-password' }, u.PasswordCreateDate ? 'Change password' : 'Set password');
      setPassword.addEventListener('click', async () => {
        const got = await ask({
          title: `Console password for ${u.UserName}`,
          fields: [{ name: 'password', label: 'New password', type: 'password', required: true, autocomplete: 'new-password' }],
          username: u.UserName,
          confirm: 'Set password',
        });
        if (!got) { setPassword.focus(); return; }
        const op = u.PasswordCreateDate ? 'UpdateLoginProfile' : 'CreateLoginProfile';
        await run('set the password', () => api(ADMIN + op, { UserName: u.UserName, Password: got.password }));
        loadUsers();
      });
      const del = el('button', { type: 'button', class: 'btn danger small', 'data-testid': 'delete-user' }, 'Delete user');
      del.addEventListener('click', async () => {
        const yes = await ask({
          title: `Delete user ${u.UserName}?`,
          message: (u.UserName === me ? 'This is you: you will be signed out. ' : '') +
            'Its access keys, console password and policies are deleted with it, and its console sessions end.',
          confirm: 'Delete user', danger: true,
        });
        if (!yes) { del.focus(); return; }
        const done = await run('delete the user', () => api(ADMIN + 'DeleteUser', { UserName: u.UserName }));
        if (done !== undefined && u.UserName === me) { signInAgain(); return; }
        loadUsers();
      });
      return el('tr', { 'data-testid': 'user-row', 'data-user': u.UserName },
        el('td', {}, el('strong', { text: u.UserName }), el('span', { class: 'sub', text: u.Arn || '' })),
        el('td', { text: u.CreateDate ? fmtTime(Date.parse(u.CreateDate)) : '-' }),
        el('td', {}, el('span', { class: u.PasswordCreateDate ? 'tag good' : 'tag', text: u.PasswordCreateDate ? 'Set' : 'None' })),
        el('td', { text: policies.length ? policies.join(', ') : '-' }),
        el('td', {}, keyList, createKey),
        el('td', {}, el('div', { class: 'actions' }, setPassword, del)),
      );
    }

    let loadingUsers = null;
    async function loadUsers() {
      const mine = {};
      loadingUsers = mine;
      const out = await run('list the users', () => api(ADMIN + 'ListUsers', {}));
      if (!out || loadingUsers !== mine) { setStatus(''); return; }
      const users = out.Users || [];
      const rows = await Promise.all(users.map(async (u) => {
        const [keys, pols] = await Promise.all([
          api(ADMIN + 'ListAccessKeys', { UserName: u.UserName }).then((x) => x.AccessKeyMetadata || []).catch(() => []),
          api(ADMIN + 'ListAttachedUserPolicies', { UserName: u.UserName }).then((x) => (x.AttachedPolicies || []).map((p) => p.PolicyName)).catch(() => []),
        ]);
        return userRow(u, keys, pols);
      }));
      if (loadingUsers !== mine) return;
      tbody.textContent = '';
      tbody.append(...rows);
      setStatus(`${users.length} user${users.length === 1 ? '' : 's'}.`);
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = $('#new-user').value.trim();
      const policy = policySelect.value;
      const password = $('#new-user-password').value;
      if (!name) return;
      const created = await run('create the user', () => api(ADMIN + 'CreateUser', { UserName: name }));
      if (!created) return;
      if (policy) await run('attach the policy', () => api(ADMIN + 'AttachUserPolicy', { UserName: name, PolicyArn: policy }));
      if (password) await run('set the password', () => api(ADMIN + 'CreateLoginProfile', { UserName: name, Password: password }));
      form.reset();
      await loadUsers();
      setStatus(`User ${name} created.`);
    });

    loadPolicies();
    loadUsers();
  }

  // ---------------------------------------------------------------------------------------

  function start() {
    const page = document.body.dataset.page;
    if (page === 'events') eventsPage();
    else if (page === 'insights') insightsPage();
    else if (page === 'queries') queriesPage();
    else if (page === 'rules') rulesPage();
    else if (page === 'trails') trailsPage();
    else if (page === 'settings') settingsPage();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
