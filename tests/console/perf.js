// How long the Event history takes, in a real headless Chromium, from a filter change (a click
// on Add filter, on a chip's remove button, on a time range preset or on a value in the table)
// to the first page of the new result being shown, and to the histogram being redrawn.
//
// Not one of the tests (`npm test` runs *.test.js only): it measures a server that holds many
// events, normally one filled by `cairn bench`, whose generated user names, event names,
// regions and addresses the filter values below are taken from:
//
//   target/release/cairn bench --events 10000000 --lookups 100 --data-dir /tmp/cairn10m
//   node tests/console/perf.js --data-dir /tmp/cairn10m
//
// With --data-dir the script starts `cairn serve` on that directory itself (with the bench's
// account, access key and master key), gives the admin user a console password, measures, and
// stops the server. With --endpoint it measures a server that is already running and signs in
// with --account, --user and --password.
//
// Options: --repeats N (each change, undone with the browser's Back in between; default 5),
// --out FILE (the figures as JSON; default artifacts/perf.json), --target MS (default 300),
// --bin PATH (default $CAIRN_BIN, else target/release/cairn). CHROMIUM picks the browser.
//
// Columns: "rows" is the time from the click (the click event's timestamp) to the first rows
// of the new result (or its "No events match" line) being in the table, and the frame that
// shows them; "histo" the same for the redrawn histogram. "Lookup" and "Count" are the server's
// LookupEvents and CountEvents as the browser saw them: from the request sent to the first
// byte of the answer (Count adds up both calls where the histogram takes two, for all time).
// "answered" is when, after the click, the LookupEvents answer had arrived: the rest of "rows"
// is the page building the rows and drawing them. The JSON file has every run.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { ARTIFACTS, LAPTOP, REPO_ROOT, ROWS, chromiumPath, sleep } from './harness.js';

// What `cairn bench` uses (crates/cairn/src/bench.rs).
const BENCH_ACCOUNT = '111122223333';
const BENCH_KEY = 'AKIABENCHMARK0000001';
const BENCH_SECRET = 'bench-secret-bench-secret-bench-secret00';
const BENCH_MASTER_KEY = 'be'.repeat(32);

const { values: opts } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    endpoint: { type: 'string' },
    account: { type: 'string', default: BENCH_ACCOUNT },
    user: { type: 'string', default: 'admin' },
    password: { type: 'string', default: 'perf-password-123' },
    repeats: { type: 'string', default: '5' },
    out: { type: 'string', default: path.join(ARTIFACTS, 'perf.json') },
    target: { type: 'string', default: '300' },
    bin: { type: 'string', default: process.env.CAIRN_BIN || path.join(REPO_ROOT, 'target', 'release', 'cairn') },
  },
});
const REPEATS = Math.max(1, Number(opts.repeats));
const TARGET_MS = Number(opts.target);
const RESULT_TIMEOUT_MS = 60_000;

// The view every change starts from (unless it says otherwise): the last 30 days, no filter.
const BASE = { start: 'now-30d', end: 'now', filters: [] };

// Values of the bench's generator: users are Zipf-distributed (user-0000 is in about 8 % of
// the events, user-1999 in about 0.02 %), regions uniform over eight, ConsoleLogin about 5 % of
// the event shapes, CreateUser about 1 %; 1.0.0.1 is one of user-0000's four addresses (and
// 187.221.230.247 one of user-0001's).
const COMMON_USER = 'user-0000';
const RARE_USER = 'user-1999';
const COMMON_EVENT = 'ConsoleLogin';
const RARE_EVENT = 'CreateUser';
const REGION = 'eu-west-1';
const ADDRESS = '1.0.0.1';
const OTHER_ADDRESS = '187.221.230.247'; // user-0001's

const add = (key, value) => ({ kind: 'add', key, value });
const f = (key, value) => ({ key, value });

// Each change: the view it starts from, and what the user does.
const CHANGES = [
  { name: `Username ${COMMON_USER} (common)`, before: BASE, action: add('Username', COMMON_USER) },
  { name: `Username ${RARE_USER} (rare)`, before: BASE, action: add('Username', RARE_USER) },
  { name: `EventName ${COMMON_EVENT}`, before: BASE, action: add('EventName', COMMON_EVENT) },
  { name: `AwsRegion ${REGION}`, before: BASE, action: add('AwsRegion', REGION) },
  { name: `SourceIpAddress ${ADDRESS}`, before: BASE, action: add('SourceIpAddress', ADDRESS) },
  {
    name: `+ EventName ${COMMON_EVENT} to Username ${COMMON_USER}`,
    before: { ...BASE, filters: [f('Username', COMMON_USER)] },
    action: add('EventName', COMMON_EVENT),
  },
  {
    name: `+ AwsRegion ${REGION} to EventName ${RARE_EVENT}`,
    before: { ...BASE, filters: [f('EventName', RARE_EVENT)] },
    action: add('AwsRegion', REGION),
  },
  {
    name: `+ ReadOnly false to AwsRegion ${REGION}`,
    before: { ...BASE, filters: [f('AwsRegion', REGION)] },
    action: add('ReadOnly', 'false'),
  },
  {
    name: `+ EventSource ec2 to EventName ${COMMON_EVENT} (matches nothing)`,
    before: { ...BASE, filters: [f('EventName', COMMON_EVENT)] },
    action: add('EventSource', 'ec2.amazonaws.com'),
  },
  {
    name: `+ SourceIpAddress of user-0001 to Username ${COMMON_USER} (nothing)`,
    before: { ...BASE, filters: [f('Username', COMMON_USER)] },
    action: add('SourceIpAddress', OTHER_ADDRESS),
  },
  {
    name: 'remove Username of Username + AwsRegion',
    before: { ...BASE, filters: [f('Username', COMMON_USER), f('AwsRegion', REGION)] },
    action: { kind: 'remove', index: 0 },
  },
  {
    name: `remove the only filter (Username ${COMMON_USER})`,
    before: { ...BASE, filters: [f('Username', COMMON_USER)] },
    action: { kind: 'remove', index: 0 },
  },
  { name: 'preset 30d -> 7d', before: BASE, action: { kind: 'preset', preset: '7d' } },
  {
    name: `preset 30d -> 7d with Username ${COMMON_USER}`,
    before: { ...BASE, filters: [f('Username', COMMON_USER)] },
    action: { kind: 'preset', preset: '7d' },
  },
  { name: 'preset 30d -> all time', before: BASE, action: { kind: 'preset', preset: 'all' } },
  {
    name: `preset 30d -> all time with Username + EventName`,
    before: { ...BASE, filters: [f('Username', COMMON_USER), f('EventName', COMMON_EVENT)] },
    action: { kind: 'preset', preset: 'all' },
  },
  { name: 'Username matching nothing', before: BASE, action: add('Username', 'nobody-at-all') },
  { name: 'click the first row\'s EventName', before: BASE, action: { kind: 'cell', key: 'EventName' } },
];

// ---------------------------------------------------------------------------------------------
// The server (with --data-dir)
// ---------------------------------------------------------------------------------------------

async function startServer(dataDir) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_') || k.startsWith('CAIRN_')) delete env[k];
  Object.assign(env, {
    CAIRN_MASTER_KEY: BENCH_MASTER_KEY,
    CAIRN_ACCESS_KEY_ID: BENCH_KEY,
    CAIRN_SECRET_ACCESS_KEY: BENCH_SECRET,
    CAIRN_LOG: 'warn',
    AWS_CONFIG_FILE: os.devNull,
    AWS_SHARED_CREDENTIALS_FILE: os.devNull,
  });
  const args = ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--account-id', BENCH_ACCOUNT,
    '--retention-days', 'forever'];
  const t = Date.now();
  const proc = spawn(opts.bin, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal)));
  let out = '';
  const endpoint = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('cairn serve was not ready within 15 minutes')), 15 * 60_000);
    exited.then(() => clearTimeout(timer));
    proc.stdout.on('data', (chunk) => {
      out += chunk.toString('utf8');
      const m = /API endpoint:\s+(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
    exited.then((how) => reject(new Error(`cairn serve exited (${how}) before it was ready\n${out}`)));
  });
  proc.stdout.resume();
  // The server rebuilds its index from the journal before it answers: a minute or more at
  // 10 M events.
  for (;;) {
    const ok = await fetch(`${endpoint}/health`).then((r) => r.status === 200).catch(() => false);
    if (ok) break;
    if (Date.now() - t > 15 * 60_000) throw new Error('/health did not answer 200 within 15 minutes');
    await sleep(250);
  }
  console.log(`# cairn serve on ${endpoint}, ready ${((Date.now() - t) / 1000).toFixed(1)} s after it was started`);
  const cliEnv = { ...env, AWS_ACCESS_KEY_ID: BENCH_KEY, AWS_SECRET_ACCESS_KEY: BENCH_SECRET,
    AWS_REGION: 'us-east-1', CAIRN_ENDPOINT_URL: endpoint };
  const r = spawnSync(opts.bin, ['admin', 'set-password', opts.user, '--password-stdin'],
    { env: cliEnv, input: opts.password, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cairn admin set-password failed\n${r.stdout}${r.stderr}`);
  return {
    endpoint,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The probe in the page
// ---------------------------------------------------------------------------------------------

// Installed in every document. `arm()` starts watching: the next click's timestamp is time
// zero; console.js empties the table as it starts loading a view (in the click's own task), so
// the first rows after that emptying are the new result's. The histogram note says "Counting
// events..." while the histogram is being counted and is replaced when it is drawn.
function probe() {
  window.__perf = {
    cur: null,
    arm() {
      const tbody = document.querySelector('#events-table tbody');
      const noEvents = document.querySelector('[data-testid=no-events]');
      const error = document.querySelector('[data-testid=error]');
      const note = document.querySelector('#histogram-note');
      const histogram = document.querySelector('#histogram');
      const r = {
        t0: null, cleared: false, rows: null, rowsShown: null, rowCount: 0, firstId: null,
        empty: false, error: null, counting: false, hist: null, histShown: null, histNote: null,
        bars: 0, previousFirstId: tbody.firstElementChild ? tbody.firstElementChild.dataset.eventId : null,
      };
      this.cur = r;
      performance.clearResourceTimings();
      // The first paint after now: the frame's rAF callback, then a task after that frame.
      const afterFrame = (key) => requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => { r[key] = performance.now(); };
        ch.port2.postMessage(0);
      });
      const onClick = (e) => { if (r.t0 === null) r.t0 = e.timeStamp; };
      document.addEventListener('click', onClick, true);
      const check = () => {
        if (r.t0 === null) return;
        if (!r.cleared && tbody.children.length === 0) r.cleared = true;
        if (r.cleared && r.rows === null) {
          if (tbody.children.length > 0) {
            r.rows = performance.now();
            r.rowCount = tbody.children.length;
            r.firstId = tbody.firstElementChild.dataset.eventId;
          } else if (!noEvents.hidden) {
            r.rows = performance.now();
            r.empty = true;
          } else if (!error.hidden) {
            r.rows = performance.now();
            r.error = error.textContent;
          }
          if (r.rows !== null) afterFrame('rowsShown');
        }
        const text = note.textContent;
        if (!r.counting && /Counting events/.test(text)) r.counting = true;
        if (r.counting && r.hist === null && !/Counting events/.test(text)) {
          r.hist = performance.now();
          r.histNote = text;
          r.bars = histogram.querySelectorAll('rect.bar').length;
          afterFrame('histShown');
        }
      };
      const mo = new MutationObserver(check);
      mo.observe(tbody, { childList: true });
      mo.observe(noEvents, { attributes: true });
      mo.observe(error, { attributes: true, childList: true });
      mo.observe(note, { childList: true, characterData: true, subtree: true });
      r.stop = () => { mo.disconnect(); document.removeEventListener('click', onClick, true); };
    },
    /** The figures once rows and histogram are both shown, else null. */
    result() {
      const r = this.cur;
      if (!r || r.rowsShown === null || r.histShown === null) return null;
      r.stop();
      this.cur = null;
      const { stop, ...plain } = r;
      plain.origin = performance.timeOrigin;
      // The API calls since the click, on the page's own clock, from the click.
      plain.fetches = performance.getEntriesByType('resource')
        .filter((e) => e.initiatorType === 'fetch' && e.startTime >= r.t0)
        .map((e) => ({ start: e.startTime - r.t0, sent: e.requestStart - r.t0, firstByte: e.responseStart - r.t0, end: e.responseEnd - r.t0 }))
        .sort((a, b) => a.start - b.start);
      return plain;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Driving the page
// ---------------------------------------------------------------------------------------------

function viewUrl(endpoint, v) {
  const q = new URLSearchParams();
  q.set('start', v.start);
  q.set('end', v.end);
  for (const x of v.filters) q.append('f', `${x.key}:${x.value}`);
  return `${endpoint}/console/events?${q}`;
}

/** Waits until the view has loaded: rows or the empty line, the histogram drawn, no API call
 * under way; then a moment more. */
async function settled(page, net) {
  const deadline = Date.now() + RESULT_TIMEOUT_MS;
  for (;;) {
    const ready = await page.evaluate(() => {
      const tbody = document.querySelector('#events-table tbody');
      const noEvents = document.querySelector('[data-testid=no-events]');
      const note = document.querySelector('#histogram-note').textContent;
      return (tbody.children.length > 0 || !noEvents.hidden) && note !== '' && !/Counting events/.test(note);
    });
    if (ready && net.pending === 0) break;
    if (Date.now() > deadline) throw new Error(`the view did not settle: ${page.url()}`);
    await sleep(50);
  }
  await sleep(300);
}

async function prepare(page, action) {
  if (action.kind === 'add') {
    await page.selectOption('select[data-testid=filter-attribute]', action.key);
    await page.fill('input[data-testid=filter-value]', action.value);
  } else if (action.kind === 'preset') {
    await page.click('[data-testid=time-range]');
    await page.locator(`[data-testid=preset-${action.preset}]`).waitFor({ state: 'visible' });
  }
}

async function act(page, action) {
  if (action.kind === 'add') await page.click('[data-testid=filter-add]');
  else if (action.kind === 'remove') await page.locator('[data-testid=filter-chip-remove]').nth(action.index).click();
  else if (action.kind === 'preset') await page.click(`[data-testid=preset-${action.preset}]`);
  else if (action.kind === 'cell') {
    await page.locator(`${ROWS}`).first().locator(`[data-testid=cell-filter][data-key=${action.key}]`).first().click();
  } else throw new Error(`unknown action ${action.kind}`);
}

/** The API calls the page makes, with the browser's timing of each. */
function watchNetwork(page) {
  const net = { pending: 0, log: [] };
  const target = (req) => (req.method() === 'POST' ? req.headers()['x-amz-target'] || '' : '');
  page.on('request', (req) => { if (target(req)) net.pending += 1; });
  const done = (req, failed) => {
    const t = target(req);
    if (!t) return;
    net.pending -= 1;
    const timing = req.timing();
    net.log.push({
      op: t.split('.').pop(),
      failed,
      // Wall-clock ms: when the request was sent and when its answer had arrived.
      sentAt: timing.requestStart >= 0 ? timing.startTime + timing.requestStart : null,
      doneAt: timing.responseEnd >= 0 ? timing.startTime + timing.responseEnd : null,
      // Request sent -> first byte of the answer: the server's time plus loopback.
      ttfb: timing.responseStart >= 0 && timing.requestStart >= 0 ? timing.responseStart - timing.requestStart : null,
      // Fetch start -> last byte.
      total: timing.responseEnd >= 0 ? timing.responseEnd : null,
    });
  };
  page.on('requestfinished', (req) => done(req, false));
  page.on('requestfailed', (req) => done(req, true));
  return net;
}

async function measure(page, net, change) {
  await prepare(page, change.action);
  await page.evaluate(() => window.__perf.arm());
  net.log = [];
  await act(page, change.action);
  const deadline = Date.now() + RESULT_TIMEOUT_MS;
  let r;
  for (;;) {
    r = await page.evaluate(() => window.__perf.result());
    if (r) break;
    if (Date.now() > deadline) throw new Error(`${change.name}: no new result within ${RESULT_TIMEOUT_MS} ms`);
    await sleep(10);
  }
  await settled(page, net);
  const calls = net.log.filter((c) => c.op === 'LookupEvents' || c.op === 'CountEvents');
  // The browser's wall clock of the click, to place the requests after it.
  const clickAt = r.origin + r.t0;
  const firstLookup = calls.find((c) => c.op === 'LookupEvents');
  const lastCount = calls.filter((c) => c.op === 'CountEvents').pop();
  return {
    rows: r.rowsShown - r.t0,
    rowsInDom: r.rows - r.t0,
    hist: r.histShown - r.t0,
    histInDom: r.hist - r.t0,
    fetches: r.fetches,
    rowCount: r.rowCount,
    empty: r.empty,
    error: r.error,
    histNote: r.histNote,
    bars: r.bars,
    // The first page only: more pages may follow while the table's end is in sight.
    lookup: calls.filter((c) => c.op === 'LookupEvents').map((c) => c.ttfb)[0] ?? null,
    lookups: calls.filter((c) => c.op === 'LookupEvents').length,
    // From the click: the first LookupEvents sent and answered, the last CountEvents answered.
    lookupSent: firstLookup && firstLookup.sentAt !== null ? firstLookup.sentAt - clickAt : null,
    lookupDone: firstLookup && firstLookup.doneAt !== null ? firstLookup.doneAt - clickAt : null,
    countDone: lastCount && lastCount.doneAt !== null ? lastCount.doneAt - clickAt : null,
    count: calls.filter((c) => c.op === 'CountEvents').map((c) => c.ttfb),
  };
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

function median(xs) {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const max = (xs) => (xs.filter((x) => x !== null).length ? Math.max(...xs.filter((x) => x !== null)) : null);
const ms = (x) => (x === null || x === undefined ? '-' : String(Math.round(x)));

function table(results) {
  const head = ['change', 'rows med', 'rows max', 'histo med', 'histo max', 'Lookup med', 'Lookup max',
    'Count med', 'Count max', 'answered med', 'result'];
  const lines = results.map((c) => {
    const s = c.samples;
    // CountEvents: the sum when the histogram takes two calls (all time).
    const counts = s.map((x) => (x.count.length ? x.count.reduce((a, b) => a + b, 0) : null));
    const first = s[0];
    const what = first.error ? `error: ${first.error}` : first.empty ? 'no events' : `${first.rowCount} rows`;
    const partial = s.some((x) => /partial/.test(x.histNote || '')) ? ', histogram partial' : '';
    const histo = (first.histNote || '').replace(/\s+/g, ' ').match(/[\d,]+ events?/);
    return [c.name, ms(median(s.map((x) => x.rows))), ms(max(s.map((x) => x.rows))),
      ms(median(s.map((x) => x.hist))), ms(max(s.map((x) => x.hist))),
      ms(median(s.map((x) => x.lookup))), ms(max(s.map((x) => x.lookup))),
      ms(median(counts)), ms(max(counts)), ms(median(s.map((x) => x.lookupDone))), `${what}${histo ? `; ${histo[0]}` : ''}${partial}`];
  });
  const all = results.flatMap((c) => c.samples);
  lines.push(['all changes', ms(median(all.map((x) => x.rows))), ms(max(all.map((x) => x.rows))),
    ms(median(all.map((x) => x.hist))), ms(max(all.map((x) => x.hist))),
    ms(median(all.map((x) => x.lookup))), ms(max(all.map((x) => x.lookup))),
    ms(median(all.map((x) => (x.count.length ? x.count.reduce((a, b) => a + b, 0) : null)))),
    ms(max(all.map((x) => (x.count.length ? x.count.reduce((a, b) => a + b, 0) : null)))),
    ms(median(all.map((x) => x.lookupDone))), '']);
  const cells = [head, ...lines];
  const widths = head.map((_, i) => Math.max(...cells.map((l) => String(l[i]).length)));
  const fmt = (l) => `| ${l.map((x, i) => (i === 0 || i === l.length - 1 ? String(x).padEnd(widths[i]) : String(x).padStart(widths[i]))).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w, i) => (i === 0 || i === head.length - 1 ? ':' : '-') + '-'.repeat(w) + (i === 0 || i === head.length - 1 ? '-' : ':')).join('|')}|`,
    ...lines.map(fmt)].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!opts.endpoint && !opts['data-dir']) {
    console.error('usage: node tests/console/perf.js (--data-dir DIR | --endpoint URL [--account ID --user NAME --password PW]) [--repeats N]');
    process.exit(2);
  }
  const server = opts.endpoint ? { endpoint: opts.endpoint.replace(/\/$/, ''), stop: async () => {} } : await startServer(opts['data-dir']);
  let browser = null;
  const results = [];
  try {
    browser = await chromium.launch({ executablePath: chromiumPath(), headless: true });
    const context = await browser.newContext({ viewport: LAPTOP, timezoneId: 'UTC', locale: 'en-GB' });
    await context.addInitScript(probe);
    const page = await context.newPage();
    page.setDefaultTimeout(RESULT_TIMEOUT_MS);
    page.on('pageerror', (e) => console.error(`# page error: ${e.message}`));
    const net = watchNetwork(page);

    await page.goto(`${server.endpoint}/signin`);
    await page.fill('#account', opts.account);
    await page.fill('#username', opts.user);
    await page.fill('#password', opts.password);
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Sign in' }).click()]);
    if (new URL(page.url()).pathname.startsWith('/signin')) throw new Error('sign-in failed');

    const browserVersion = browser.version();
    console.log(`# Chromium ${browserVersion}, ${REPEATS} runs of each change, target ${TARGET_MS} ms`);
    // A first view, so that the first change measured is not the one that warms things up.
    await page.goto(viewUrl(server.endpoint, BASE));
    await settled(page, net);

    for (const change of CHANGES) {
      const samples = [];
      const before = viewUrl(server.endpoint, change.before);
      await page.goto(before);
      await settled(page, net);
      for (let i = 0; i < REPEATS; i++) {
        const s = await measure(page, net, change);
        samples.push(s);
        // Undo: the browser's Back, which loads the view before the change again.
        await page.evaluate(() => history.back());
        await page.waitForURL(before);
        await settled(page, net);
      }
      results.push({ name: change.name, before: change.before, action: change.action, samples });
      const rows = samples.map((s) => ms(s.rows)).join(' ');
      const hist = samples.map((s) => ms(s.hist)).join(' ');
      console.log(`# ${change.name}: rows ${rows} ms; histogram ${hist} ms`);
    }

    console.log();
    console.log(table(results));
    const all = results.flatMap((c) => c.samples);
    const within = results.filter((c) => median(c.samples.map((s) => s.rows)) <= TARGET_MS).length;
    console.log();
    console.log(`first rows within ${TARGET_MS} ms at the median: ${within} of ${results.length} changes; ` +
      `every run within it: ${all.filter((s) => s.rows <= TARGET_MS).length} of ${all.length}`);
    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    fs.writeFileSync(opts.out, JSON.stringify({ chromium: browserVersion, endpoint: server.endpoint, targetMs: TARGET_MS, results }, null, 2));
    console.log(`figures: ${opts.out}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await server.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
