// The Queries page: CloudTrail Lake SQL over an event data store, run from the browser.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import {
  ARTIFACTS, ACCOUNT_ID, suite, signIn, screenshot, eventually, parseCsv, LAPTOP, TABLET,
} from './harness.js';

const s = suite('queries');

// Running queries needs more than read-only access (cloudtrail:StartQuery, CancelQuery).
const QUERIER = 'querier';
const QUERIER_PASSWORD = 'Console-query-pw-4b2a91';

// 150 recent events of a made-up service: 90 DescribeWidgets, 40 CreateWidget and 20
// DeleteWidget calls that failed, from three source addresses.
const SOURCE = 'widgets.cairn-test.example';
const NOW = Date.now();
const EVENTS = Array.from({ length: 150 }, (_, i) => {
  const name = i < 90 ? 'DescribeWidgets' : i < 130 ? 'CreateWidget' : 'DeleteWidget';
  const failed = name === 'DeleteWidget';
  return {
    eventVersion: '1.08',
    userIdentity: {
      type: 'IAMUser', principalId: 'AIDAWIDGETS000000001', accountId: ACCOUNT_ID,
      arn: `arn:aws:iam::${ACCOUNT_ID}:user/widget-bot`, accessKeyId: 'AKIAWIDGETS000000001', userName: 'widget-bot',
    },
    eventTime: new Date(NOW - (i + 1) * 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    eventSource: SOURCE,
    eventName: name,
    awsRegion: 'eu-west-1',
    sourceIPAddress: `198.51.100.${10 + (i % 3)}`,
    userAgent: 'widget-cli/1.0',
    ...(failed ? { errorCode: 'AccessDenied', errorMessage: 'Not allowed to delete widgets' } : {}),
    requestParameters: { widget: `w-${i}` },
    responseElements: null,
    requestID: randomUUID(),
    eventID: randomUUID(),
    readOnly: name === 'DescribeWidgets',
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT_ID,
    eventCategory: 'Management',
  };
});

const DONE = ['FINISHED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

/** The querier and the events, made once, for the first test that needs them. */
let prepared = false;
function prepare() {
  if (prepared) return;
  s.cairn.createUser(QUERIER, QUERIER_PASSWORD, 'AWSCloudTrail_FullAccess');
  s.cairn.importRecords(EVENTS);
  prepared = true;
}

/** Signs in as the querier and opens the Queries page (with `search`, e.g. `?store=...`). */
async function queriesPage(viewport = LAPTOP, search = '') {
  prepare();
  const page = await s.page(viewport, { downloads: true });
  await signIn(page, s.cairn, { user: QUERIER, password: QUERIER_PASSWORD, next: `/console/queries${search}` });
  assert.equal(new URL(page.url()).pathname, '/console/queries');
  await page.locator('[data-testid=store-id]').filter({ hasText: /\S/ }).waitFor();
  return page;
}

const param = (page, name) => new URL(page.url()).searchParams.get(name);

async function storeId(page) {
  return (await page.locator('[data-testid=store-id]').innerText()).trim();
}

async function queryState(page) {
  return page.locator('[data-testid=query-state]').getAttribute('data-state');
}

async function errorText(page) {
  const box = page.locator('[data-testid=error]');
  return (await box.isVisible()) ? (await box.innerText()).trim() : '';
}

/** Waits until the query `id` (default: the one in the URL) is over; for one that finished,
 * until its first rows are shown. Returns its final state. */
async function settled(page, id) {
  return eventually(() => over(page, id || param(page, 'query')), { timeout: 30_000, message: 'the query to end' });
}

/** The final state of query `id` once the page shows it as over, else null. */
async function over(page, id) {
  const state = await queryState(page);
  if (!id || param(page, 'query') !== id || !DONE.includes(state)) return null;
  if (state !== 'FINISHED') return state;
  const shown = await page.locator(`[data-testid=results][data-query="${id}"]`).count();
  return shown ? state : null;
}

/** Writes `sql` and runs it (with the button, or Ctrl+Enter); returns the final state, or
 * 'ERROR' when the statement was refused. */
async function runSql(page, sql, { keyboard = false } = {}) {
  const before = param(page, 'query');
  const sqlBox = page.getByLabel('SQL statement');
  await sqlBox.fill(sql);
  if (keyboard) {
    await sqlBox.focus();
    await page.keyboard.press('Control+Enter');
  } else {
    await page.click('[data-testid=run]');
  }
  return eventually(async () => {
    const now = param(page, 'query');
    if (now && now !== before) {
      const state = await over(page, now);
      if (state) return state;
      // Finished, but its results could not be had.
      if ((await queryState(page)) === 'FINISHED' && (await errorText(page))) return 'NO RESULTS';
      return null;
    }
    return (await errorText(page)) ? 'ERROR' : null;
  }, { timeout: 30_000, message: `the statement to run: ${sql}` });
}

/** The results table: its header and its rows (text of each cell; NULL cells as null). */
async function resultTable(page) {
  return page.locator('[data-testid=results-table]').evaluate((t) => ({
    columns: [...t.querySelectorAll('thead th')].map((th) => th.textContent),
    rows: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => (td.hasAttribute('data-null') ? null : td.textContent))),
  }));
}

async function stat(page, key) {
  return (await page.locator(`[data-testid=query-stats] dd[data-stat=${key}]`).innerText()).trim();
}

/** Runs `sql` until the lake has the test's events (it takes them in within moments). */
async function runUntil(page, sql, ok, what) {
  let last;
  await eventually(async () => {
    const state = await runSql(page, sql);
    assert.equal(state, 'FINISHED', `state ${state}: ${await errorText(page)}`);
    last = await resultTable(page);
    return ok(last);
  }, { timeout: 40_000, interval: 500, message: `${what}; last table: ${JSON.stringify(last)}` });
  return last;
}

const counts = (id) => `SELECT eventname, count(*) AS calls, min(sourceipaddress) AS first_ip
FROM ${id}
WHERE eventsource = '${SOURCE}'
GROUP BY eventname
ORDER BY calls DESC`;

s.test('a query on the default event data store: results in column order, statistics, CSV', async () => {
  const page = await queriesPage();
  // The navigation has the page, and marks it current.
  const link = page.locator('nav[aria-label=Main]').getByRole('link', { name: 'Queries' });
  assert.equal(await link.getAttribute('aria-current'), 'page');
  // The default store is picked, its ID is shown, and the editor holds an example over it.
  const select = page.getByLabel('Event data store', { exact: true });
  assert.equal((await select.locator('option:checked').innerText()).trim(), 'cairn-default');
  const id = await storeId(page);
  assert.match(id, /^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$/i);
  const example = await page.getByLabel('SQL statement').inputValue();
  assert.match(example, new RegExp(`FROM ${id}\\b`));
  assert.match(example, /^SELECT /);
  assert.equal(param(page, 'query'), null);

  const table = await runUntil(page, counts(id), (t) => t.rows.length === 3 && t.rows[0][1] === '90', 'the three event names');
  assert.deepEqual(table.columns, ['eventname', 'calls', 'first_ip']);
  assert.deepEqual(table.rows, [
    ['DescribeWidgets', '90', '198.51.100.10'],
    ['CreateWidget', '40', '198.51.100.10'],
    ['DeleteWidget', '20', '198.51.100.10'],
  ]);
  assert.match(await page.locator('[data-testid=query-state]').innerText(), /^Finished in /);
  assert.equal(await page.locator('[data-testid=cancel]').isVisible(), false);
  // Statistics of the run.
  assert.equal(await stat(page, 'results'), '3');
  const num = async (key) => Number((await stat(page, key)).replace(/,/g, ''));
  const [scanned, matched] = [await num('events-scanned'), await num('events-matched')];
  assert.ok(Number.isInteger(scanned) && Number.isInteger(matched), `events scanned ${scanned}, matched ${matched}`);
  assert.ok(Math.max(scanned, matched) >= 150, `events scanned ${scanned}, matched ${matched}`);
  assert.match(await stat(page, 'bytes-scanned'), /\d/);
  assert.match(await stat(page, 'run-time'), /\d+(\.\d+)? (ms|s)$/);
  assert.equal(await stat(page, 'query-id'), param(page, 'query'));
  // The URL holds the store, the statement and the query.
  assert.equal(param(page, 'store'), id);
  assert.equal(param(page, 'sql'), counts(id));

  // The same statement with Ctrl+Enter: a new query with the same answer.
  const first = param(page, 'query');
  assert.equal(await runSql(page, counts(id), { keyboard: true }), 'FINISHED');
  assert.notEqual(param(page, 'query'), first);
  assert.deepEqual((await resultTable(page)).rows, table.rows);
  await screenshot(page, 'queries-laptop');

  // CSV of the rows, built in the browser.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-csv]')]);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, 'query-counts.csv');
  await dl.saveAs(file);
  assert.match(dl.suggestedFilename(), /^cairn-query-[0-9a-f-]+\.csv$/);
  const csv = parseCsv(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(csv, [['eventname', 'calls', 'first_ip'], ...table.rows]);
});

s.test('an invalid statement shows why; a failing query shows its error', async () => {
  const page = await queriesPage();
  const id = await storeId(page);
  assert.equal(await runSql(page, `SELECT eventname FROM ${id} WHERE`), 'ERROR');
  const text = await errorText(page);
  assert.match(text, /The SQL statement is not valid\./);
  assert.match(text, /not valid SQL/i, text);
  assert.equal(await page.getByLabel('SQL statement').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('[data-testid=results]').isVisible(), false);
  // The refused statement is in the URL too, without a query.
  assert.equal(param(page, 'sql'), `SELECT eventname FROM ${id} WHERE`);
  assert.equal(param(page, 'query'), null);

  // Only SELECT; and a statement must name a store.
  assert.equal(await runSql(page, `DELETE FROM ${id}`), 'ERROR');
  assert.match(await errorText(page), /Only SELECT/);
  assert.equal(await runSql(page, 'SELECT 1'), 'ERROR');
  assert.match(await errorText(page), /event data store/);

  // A statement that starts but fails as it runs: FAILED, with the reason.
  assert.equal(await runSql(page, `SELECT CAST(eventname AS INTEGER) AS n FROM ${id} WHERE eventsource = '${SOURCE}'`), 'FAILED');
  assert.equal(await page.locator('[data-testid=query-state]').innerText(), 'Failed');
  const failed = await errorText(page);
  assert.match(failed, /The query failed\./);
  assert.match(failed, /cast/i);
  assert.ok(param(page, 'query'), 'a query that ran is in the URL');
  assert.equal(await page.locator('[data-testid=results]').isVisible(), false);
  await screenshot(page, 'queries-failed');

  // Editing the statement clears the mark; a good statement clears the error.
  await page.getByLabel('SQL statement').type(' ');
  assert.equal(await page.getByLabel('SQL statement').getAttribute('aria-invalid'), null);
  assert.equal(await runSql(page, `SELECT count(*) AS n FROM ${id} WHERE eventsource = '${SOURCE}'`), 'FINISHED');
  assert.equal(await errorText(page), '');
  await screenshot(page, 'queries-error-cleared');
});

s.test('a running query shows its state and can be cancelled', async () => {
  const page = await queriesPage();
  const id = await storeId(page);
  // Five copies of the store joined: some 10^11 combinations to count, far too many to wait for.
  const slow = `SELECT count(*) AS n FROM ${id} a CROSS JOIN ${id} b CROSS JOIN ${id} c CROSS JOIN ${id} d CROSS JOIN ${id} e`;
  await page.getByLabel('SQL statement').fill(slow);
  await page.click('[data-testid=run]');
  const state = page.locator('[data-testid=query-state]');
  await eventually(async () => ['QUEUED', 'RUNNING'].includes(await queryState(page)), { message: 'the query to run' });
  assert.match(await state.innerText(), /^(Queued|Running)$/);
  const cancel = page.locator('[data-testid=cancel]');
  await cancel.waitFor({ state: 'visible' });
  await eventually(async () => /\d/.test(await page.locator('[data-testid=query-elapsed]').innerText()), { message: 'the elapsed time' });
  await screenshot(page, 'queries-running');
  await cancel.click();
  await eventually(async () => (await queryState(page)) === 'CANCELLED', { message: 'the query to be cancelled' });
  assert.equal(await state.innerText(), 'Cancelled');
  assert.equal(await cancel.isVisible(), false);
  assert.equal(await page.locator('[data-testid=results]').isVisible(), false);
  assert.equal(await errorText(page), '');
  // The store's recent queries say so too.
  const qid = param(page, 'query');
  const item = page.locator(`[data-testid=recent-query][data-query-id="${qid}"]`);
  await eventually(async () => (await item.getAttribute('data-state')) === 'CANCELLED', { message: 'the recent query to read Cancelled' });
});

s.test('results come a page at a time; the CSV has them all', async () => {
  const page = await queriesPage();
  const id = await storeId(page);
  const sql = `SELECT eventid, eventtime, eventname, errorcode FROM ${id} WHERE eventsource = '${SOURCE}' ORDER BY eventtime DESC`;
  await runUntil(page, sql, () => true, 'the query');
  assert.equal(await stat(page, 'results'), '150');
  let table = await resultTable(page);
  assert.deepEqual(table.columns, ['eventid', 'eventtime', 'eventname', 'errorcode']);
  assert.equal(table.rows.length, 100);
  // Newest first, as ordered; a missing error code is NULL.
  assert.equal(table.rows[0][0], EVENTS[0].eventID);
  assert.match(table.rows[0][1], new RegExp(EVENTS[0].eventTime.slice(0, 19).replace('T', ' ')));
  assert.equal(table.rows[0][3], null);
  assert.match(await page.locator('#status').innerText(), /100 of 150 rows shown; more to load/);
  await page.click('[data-testid=load-more]');
  await eventually(async () => (await page.locator('tr[data-testid=result-row]').count()) === 150, { message: '150 rows' });
  assert.equal(await page.locator('[data-testid=load-more]').isVisible(), false);
  table = await resultTable(page);
  assert.deepEqual(table.rows.map((r) => r[0]), EVENTS.map((e) => e.eventID));
  assert.deepEqual(table.rows.slice(130).map((r) => r[3]), Array(20).fill('AccessDenied'));

  // A new run shows its first page again; the CSV fetches the rest itself.
  assert.equal(await runSql(page, sql), 'FINISHED');
  assert.equal(await page.locator('tr[data-testid=result-row]').count(), 100);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-csv]')]);
  const file = path.join(ARTIFACTS, 'query-paging.csv');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await dl.saveAs(file);
  const csv = parseCsv(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(csv[0], ['eventid', 'eventtime', 'eventname', 'errorcode']);
  assert.equal(csv.length, 151);
  assert.deepEqual(csv.slice(1).map((r) => r[0]), EVENTS.map((e) => e.eventID));
  assert.equal(csv[1][3], '');
});

s.test('the URL reproduces a query; recent queries reopen; back and forward', async () => {
  const page = await queriesPage();
  const id = await storeId(page);
  const sql = counts(id);
  await runUntil(page, sql, (t) => t.rows.length === 3 && t.rows[0][1] === '90', 'the three event names');
  const url = page.url();
  const qid = param(page, 'query');
  const table = await resultTable(page);

  // A link to it, opened elsewhere: the same statement and results, from the same query.
  const other = await s.page(LAPTOP);
  await signIn(other, s.cairn, { user: QUERIER, password: QUERIER_PASSWORD, next: new URL(url).pathname + new URL(url).search });
  assert.equal(await settled(other, qid), 'FINISHED');
  assert.equal(param(other, 'query'), qid);
  assert.equal(await other.getByLabel('SQL statement').inputValue(), sql);
  assert.equal(await storeId(other), id);
  assert.deepEqual(await resultTable(other), table);

  // A link with the statement only runs it, and the URL then names the new query.
  const sql2 = `SELECT eventname FROM ${id} WHERE eventsource = '${SOURCE}' AND errorcode = 'AccessDenied' LIMIT 1`;
  await other.goto(`${s.cairn.endpoint}/console/queries?store=${id}&sql=${encodeURIComponent(sql2)}`);
  const qid2 = await eventually(() => param(other, 'query'), { message: 'a query in the URL' });
  assert.notEqual(qid2, qid);
  assert.equal(await settled(other, qid2), 'FINISHED');
  assert.deepEqual(await resultTable(other), { columns: ['eventname'], rows: [['DeleteWidget']] });
  assert.equal(param(other, 'sql'), sql2);

  // A query the server does not know (its results are gone): the statement runs again.
  const gone = randomUUID();
  await other.goto(`${s.cairn.endpoint}/console/queries?store=${id}&sql=${encodeURIComponent(sql2)}&query=${gone}`);
  const qid3 = await eventually(() => {
    const q = param(other, 'query');
    return q && q !== gone && q !== qid2 ? q : null;
  }, { message: 'a new query' });
  assert.equal(await settled(other, qid3), 'FINISHED');
  assert.deepEqual((await resultTable(other)).rows, [['DeleteWidget']]);
  assert.equal(await errorText(other), '');

  // Recent queries list this store's queries with their statements; one reopens.
  await page.click('[data-testid=recent-refresh]');
  const item = page.locator(`[data-testid=recent-query][data-query-id="${qid2}"]`);
  await item.waitFor({ state: 'visible' });
  assert.match(await item.innerText(), /errorcode = 'AccessDenied'/);
  assert.equal(await item.getAttribute('data-state'), 'FINISHED');
  await item.click();
  assert.equal(await settled(page, qid2), 'FINISHED');
  assert.equal(param(page, 'query'), qid2);
  assert.equal(await page.getByLabel('SQL statement').inputValue(), sql2);
  assert.equal(await item.getAttribute('aria-current'), 'true');
  assert.deepEqual((await resultTable(page)).rows, [['DeleteWidget']]);
  // Reached with the keyboard too.
  const firstItem = page.locator(`[data-testid=recent-query][data-query-id="${qid}"]`);
  await firstItem.focus();
  await page.keyboard.press('Enter');
  assert.equal(await settled(page, qid), 'FINISHED');
  assert.deepEqual(await resultTable(page), table);

  // Back: the previous query again, without running anything.
  await page.goBack();
  assert.equal(await settled(page, qid2), 'FINISHED');
  assert.equal(await page.getByLabel('SQL statement').inputValue(), sql2);
  await page.goForward();
  assert.equal(await settled(page, qid), 'FINISHED');
  assert.equal(await page.getByLabel('SQL statement').inputValue(), sql);
});

s.test('sample queries, another event data store, and the page at tablet size', async () => {
  const page = await queriesPage();
  const id = await storeId(page);
  // A sample fills the editor with a statement over the store; it runs.
  await page.click('[data-testid=sample-failed-by-ip]');
  const sample = await page.getByLabel('SQL statement').inputValue();
  assert.match(sample, new RegExp(`FROM ${id}\\b`));
  assert.match(sample, /errorcode IS NOT NULL/);
  assert.ok(await page.getByLabel('SQL statement').evaluate((t) => t === document.activeElement), 'the editor has the focus');
  await runUntil(page, sample, (t) => t.rows.some((r) => r[1] === 'AccessDenied'), 'failed calls');
  const table = await resultTable(page);
  assert.deepEqual(table.columns, ['sourceipaddress', 'errorcode', 'calls']);
  const widgetFailures = table.rows.filter((r) => r[1] === 'AccessDenied' && r[0].startsWith('198.51.100.'));
  assert.equal(widgetFailures.reduce((n, r) => n + Number(r[2]), 0), 20);
  for (const name of ['top-events', 'console-signins', 'user-activity']) {
    await page.click(`[data-testid=sample-${name}]`);
    const sql = await page.getByLabel('SQL statement').inputValue();
    assert.match(sql, new RegExp(`FROM ${id}\\b`));
    assert.equal(await runSql(page, sql), 'FINISHED', `sample ${name}: ${await errorText(page)}`);
  }
  // The user's activity is the querier's own: signing in and these queries are on record.
  assert.match(await page.getByLabel('SQL statement').inputValue(), new RegExp(`'${QUERIER}'`));

  // A second store (made through the API with the page's own session).
  const created = await page.evaluate(async () => {
    const r = await fetch('/', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': 'com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateEventDataStore',
        'X-Cairn-CSRF': document.querySelector('meta[name="cairn-csrf"]').content,
      },
      body: JSON.stringify({ Name: 'widgets-only', RetentionPeriod: 30 }),
    });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id2 = created.body.EventDataStoreArn.split('/').pop();
  await page.reload();
  await page.locator('[data-testid=store-id]').filter({ hasText: /\S/ }).waitFor();
  await page.getByLabel('SQL statement').fill(counts(id));
  await page.getByLabel('Event data store', { exact: true }).selectOption({ label: 'widgets-only' });
  await eventually(async () => (await storeId(page)) === id2, { message: 'the new store ID' });
  assert.equal(param(page, 'store'), id2);
  assert.equal(param(page, 'query'), null);
  // The statement follows the store.
  const moved = await page.getByLabel('SQL statement').inputValue();
  assert.ok(moved.includes(`FROM ${id2}`) && !moved.includes(id), moved);
  await page.locator('[data-testid=no-recent]').waitFor({ state: 'visible' });
  // A new store holds only the events that came after it: none of the test's.
  assert.equal(await runSql(page, moved), 'FINISHED');
  assert.equal(await page.locator('[data-testid=no-results]').isVisible(), true);
  assert.equal(await page.locator('[data-testid=download-csv]').isDisabled(), true);
  await page.locator(`[data-testid=recent-query][data-query-id="${param(page, 'query')}"]`).waitFor();
  // A link to the other store by name works too.
  await page.goto(`${s.cairn.endpoint}/console/queries?store=cairn-default`);
  await eventually(async () => (await storeId(page)) === id, { message: 'the default store by name' });

  await page.setViewportSize(TABLET);
  await runSql(page, counts(id));
  await screenshot(page, 'queries-tablet', { fullPage: true });
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client + 1, `the page is ${scroll}px wide in a ${client}px window`);
  assert.deepEqual(page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), []);
});
