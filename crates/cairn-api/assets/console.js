// Cairn console: Event history, Queries, Trails and Settings. Plain JavaScript, no build step and no
// framework: this file is embedded in the binary as it is. Text from events is only ever set
// with textContent.
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
        openLive(now - 60000, gen);
      });
    }

    window.addEventListener('popstate', load);
    renderHead();
    load();
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
    else if (page === 'queries') queriesPage();
    else if (page === 'trails') trailsPage();
    else if (page === 'settings') settingsPage();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
