// The Insights page: CloudTrail Insights events (Start and End records paired by
// sharedEventID), the rate of calls around one drawn against its baseline, its attributions
// and records, links that reproduce the view, and the way to the events behind it.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import {
  ACCOUNT_ID, suite, signIn, screenshot, eventually, waitForRows, rows, LAPTOP, TABLET,
} from './harness.js';

const s = suite('insights');

const MIN = 60_000;
const T = Math.floor(Date.now() / MIN) * MIN;
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
/** The console's time format. */
const shown = (ms) => iso(ms).replace('T', ' ').replace('Z', ' UTC');

// ---------------------------------------------------------------------------------------------
// Crafted Insights events and the API calls behind them
// ---------------------------------------------------------------------------------------------

const ARN = (user) => `arn:aws:iam::${ACCOUNT_ID}:user/${user}`;

/** The Start record (and the End record, unless `endMs` is null) of one incident. */
function incident({
  shared = randomUUID(), source, name, type = 'ApiCallRateInsight', errorCode, region = 'us-east-1',
  startMs, endMs, baseline, startAverage, average, attributions = [],
}) {
  const record = (state, timeMs, insightAverage, duration) => ({
    eventVersion: '1.07',
    eventTime: iso(timeMs),
    awsRegion: region,
    eventID: randomUUID(),
    eventType: 'AwsCloudTrailInsight',
    recipientAccountId: ACCOUNT_ID,
    sharedEventID: shared,
    insightDetails: {
      state,
      eventSource: source,
      eventName: name,
      insightType: type,
      ...(errorCode ? { errorCode } : {}),
      insightContext: {
        statistics: {
          baseline: { average: baseline },
          insight: { average: insightAverage },
          insightDuration: duration,
          baselineDuration: 11336,
        },
        attributions,
      },
    },
    eventCategory: 'Insight',
  });
  const records = [record('Start', startMs, startAverage, 1)];
  if (endMs !== null) records.push(record('End', endMs, average, Math.round((endMs - startMs) / MIN)));
  return { shared, startMs, endMs, records };
}

/** An API call of the account. */
function call({ timeMs, source, name, region = 'us-east-1', user = 'ci-deployer', readOnly = false, errorCode }) {
  return {
    eventVersion: '1.08',
    userIdentity: {
      type: 'IAMUser', principalId: `AIDA${user.toUpperCase().replace(/[^A-Z]/g, '')}0001`, accountId: ACCOUNT_ID,
      arn: ARN(user), accessKeyId: 'AKIAINSIGHTS00000001', userName: user,
    },
    eventTime: iso(timeMs),
    eventSource: source,
    eventName: name,
    awsRegion: region,
    sourceIPAddress: '198.51.100.7',
    userAgent: 'aws-cli/2.15.0',
    ...(errorCode ? { errorCode, errorMessage: 'You are not authorized to perform this operation.' } : {}),
    requestParameters: {},
    responseElements: null,
    requestID: randomUUID(),
    eventID: randomUUID(),
    readOnly,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT_ID,
    eventCategory: 'Management',
  };
}

// A: a burst of RunInstances (8 a minute for 5 minutes) three hours ago, against 0.1 a minute.
const A = incident({
  source: 'ec2.amazonaws.com', name: 'RunInstances', startMs: T - 180 * MIN, endMs: T - 175 * MIN,
  baseline: 0.1, startAverage: 8, average: 8,
  attributions: [
    {
      attribute: 'userIdentityArn',
      insight: [{ value: ARN('ci-deployer'), average: 7 }, { value: ARN('alana'), average: 1 }],
      baseline: [{ value: ARN('alana'), average: 0.08 }, { value: ARN('ci-deployer'), average: 0.02 }],
    },
    { attribute: 'userAgent', insight: [{ value: 'aws-cli/2.15.0', average: 8 }], baseline: [{ value: 'aws-cli/2.15.0', average: 0.1 }] },
    { attribute: 'errorCode', insight: [{ value: 'null', average: 8 }], baseline: [{ value: 'null', average: 0.1 }] },
  ],
});
// B: DeleteUser failing with AccessDenied for 12 minutes, ten days ago.
const B = incident({
  source: 'iam.amazonaws.com', name: 'DeleteUser', type: 'ApiErrorRateInsight', errorCode: 'AccessDenied',
  startMs: T - 10 * 1440 * MIN, endMs: T - 10 * 1440 * MIN + 12 * MIN, baseline: 0.002, startAverage: 4, average: 3.5,
  attributions: [
    { attribute: 'userIdentityArn', insight: [{ value: ARN('intruder'), average: 3.5 }], baseline: [{ value: ARN('alana'), average: 0.002 }] },
    { attribute: 'userAgent', insight: [{ value: 'curl/8.5.0', average: 3.5 }], baseline: [{ value: 'aws-cli/2.15.0', average: 0.002 }] },
  ],
});
// C: PutBucketPolicy, ongoing (a Start and no End yet).
const C = incident({
  source: 's3.amazonaws.com', name: 'PutBucketPolicy', startMs: T - 20 * MIN, endMs: null,
  baseline: 0.01, startAverage: 6,
});
// D: CreateSecurityGroup, which began just over a day ago and ended just under.
const D = incident({
  source: 'ec2.amazonaws.com', name: 'CreateSecurityGroup', startMs: T - 1450 * MIN, endMs: T - 1430 * MIN,
  baseline: 0.05, startAverage: 2, average: 1.25,
});

// E: S3 GetObject (data events, reads) at 20 a minute for 3 minutes, two months ago.
const E = incident({
  source: 's3.amazonaws.com', name: 'GetObject', region: 'eu-west-1',
  startMs: T - 60 * 1440 * MIN, endMs: T - 60 * 1440 * MIN + 3 * MIN, baseline: 0.5, startAverage: 20, average: 20,
});

function calls() {
  const out = [];
  // A: 40 calls in the insight; one every 10 minutes in the hour each side; and calls that are
  // not A's: RunInstances in another region, and read-only calls.
  for (let m = 0; m < 5; m++) {
    for (let j = 0; j < 8; j++) {
      out.push(call({ timeMs: A.startMs + m * MIN + j * 7000, source: 'ec2.amazonaws.com', name: 'RunInstances', user: j === 0 ? 'alana' : 'ci-deployer' }));
    }
    out.push(call({ timeMs: A.startMs + m * MIN + 3000, source: 'ec2.amazonaws.com', name: 'RunInstances', region: 'us-west-2' }));
    out.push(call({ timeMs: A.startMs + m * MIN + 4000, source: 'ec2.amazonaws.com', name: 'DescribeInstances', readOnly: true }));
  }
  for (let k = 0; k < 6; k++) {
    out.push(call({ timeMs: A.startMs - (57 - k * 10) * MIN, source: 'ec2.amazonaws.com', name: 'RunInstances', user: 'alana' }));
    out.push(call({ timeMs: A.endMs + (3 + k * 10) * MIN, source: 'ec2.amazonaws.com', name: 'RunInstances', user: 'alana' }));
  }
  // B: 42 failed DeleteUser calls in 12 minutes (4 and 3 a minute), and 5 that succeeded.
  for (let m = 0; m < 12; m++) {
    for (let j = 0; j < (m % 2 === 0 ? 4 : 3); j++) {
      out.push(call({ timeMs: B.startMs + m * MIN + j * 9000, source: 'iam.amazonaws.com', name: 'DeleteUser', user: 'intruder', errorCode: 'AccessDenied' }));
    }
  }
  for (let k = 0; k < 5; k++) out.push(call({ timeMs: B.startMs + k * 2 * MIN + 30_000, source: 'iam.amazonaws.com', name: 'DeleteUser', user: 'alana' }));
  // E: 60 reads of objects.
  for (let m = 0; m < 3; m++) {
    for (let j = 0; j < 20; j++) {
      out.push({
        ...call({ timeMs: E.startMs + m * MIN + j * 2500, source: 's3.amazonaws.com', name: 'GetObject', region: 'eu-west-1', readOnly: true }),
        managementEvent: false, eventCategory: 'Data',
        resources: [{ type: 'AWS::S3::Object', ARN: 'arn:aws:s3:::reports/q3.csv' }],
      });
    }
  }
  return out;
}

let prepared = false;
function prepare() {
  if (prepared) return;
  s.cairn.importRecords([...calls(), ...A.records, ...B.records, ...C.records, ...D.records, ...E.records]);
  prepared = true;
}

// ---------------------------------------------------------------------------------------------
// Page helpers
// ---------------------------------------------------------------------------------------------

const ROW = 'tr[data-testid=insight-row]';
const param = (page, name) => new URL(page.url()).searchParams.get(name);

/** Signs in and opens the Insights page (with `search`, e.g. `?range=7d`); waits for the list. */
async function insightsPage(viewport = LAPTOP, search = '') {
  const page = await s.page(viewport);
  await signIn(page, s.cairn, { next: `/console/insights${search}` });
  assert.equal(new URL(page.url()).pathname, '/console/insights');
  await listed(page);
  return page;
}

/** Waits until the list is loaded (rows, or one of the empty states). */
async function listed(page) {
  await eventually(async () => !/Loading/.test(await page.locator('#status').innerText()) &&
    ((await page.locator(ROW).count()) > 0 || (await page.locator('[data-testid=no-insights]').isVisible()) ||
      (await page.locator('[data-testid=no-matches]').isVisible()) || (await page.locator('[data-testid=error]').isVisible())),
  { message: 'the list of insights' });
}

async function insightIds(page) {
  return page.locator(ROW).evaluateAll((trs) => trs.map((tr) => tr.dataset.insightId));
}

async function waitForIds(page, ids) {
  let last;
  await eventually(async () => {
    last = await insightIds(page);
    return JSON.stringify(last) === JSON.stringify(ids);
  }, { message: `insights ${ids.join(', ')}; saw ${JSON.stringify(last)}` });
}

async function rowCells(page, id) {
  return page.locator(`${ROW}[data-insight-id="${id}"]`).evaluate((tr) => {
    const out = {};
    for (const td of tr.querySelectorAll('td[data-col]')) out[td.dataset.col] = td.innerText.trim().replace(/\s+/g, ' ');
    return out;
  });
}

const card = (page) => page.locator('[data-testid=insight-detail]');

async function stat(page, field) {
  return (await card(page).locator(`dd[data-field=${field}]`).innerText()).trim();
}

/** Waits for the card of incident `id` with its chart drawn from the counts. */
async function cardOf(page, id) {
  await card(page).waitFor({ state: 'visible' });
  await eventually(async () => (await stat(page, 'shared-event-id')) === id, { message: `the card of ${id}` });
  await eventually(async () => Number(await page.locator('[data-testid=insight-chart]').getAttribute('data-points')) > 0,
    { message: 'the chart to be drawn' });
}

/** The chart's numbers: points, their rates, the baseline line, the shaded period. */
async function chartFacts(page) {
  return page.locator('[data-testid=insight-chart]').evaluate((svg) => {
    const points = [...svg.querySelectorAll('[data-testid=rate-point]')];
    const base = svg.querySelector('[data-testid=baseline-line]');
    const period = svg.querySelector('[data-testid=insight-period]');
    return {
      points: Number(svg.dataset.points),
      bucketMinutes: Number(svg.dataset.bucketMinutes),
      rates: points.map((p) => Number(p.dataset.rate)),
      ys: points.map((p) => Number(p.getAttribute('cy'))),
      baseline: base ? { value: Number(base.dataset.value), y: Number(base.getAttribute('y1')), dash: getComputedStyle(base).strokeDasharray } : null,
      period: period ? { x: Number(period.getAttribute('x')), width: Number(period.getAttribute('width')) } : null,
      xTicks: [...svg.querySelectorAll('.x-tick')].map((t) => t.textContent),
      yTicks: [...svg.querySelectorAll('.y-tick')].map((t) => t.textContent),
      label: svg.getAttribute('aria-label'),
      describedBy: svg.getAttribute('aria-describedby'),
    };
  });
}

/** An attribution table: [value, insight average, baseline average] per row. */
async function attribution(page, name) {
  return page.locator(`[data-testid=attribution-${name}]`).evaluate((t) =>
    [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((c) => c.textContent.trim())));
}

async function assertNoSidewaysScroll(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client + 1, `${what}: the page is ${scroll}px wide in a ${client}px window`);
}

const pageErrors = (page) => page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e));

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

s.test('no insights yet: the page says how to turn Insights on', async () => {
  const page = await insightsPage();
  const nav = page.locator('nav[aria-label=Main] a');
  const labels = (await nav.allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(labels.slice(0, 3), ['Event history', 'Insights', 'Queries']);
  assert.equal(await nav.nth(1).getAttribute('aria-current'), 'page');
  assert.equal(await page.title(), 'Insights - Cairn');
  const empty = page.locator('[data-testid=no-insights]');
  await empty.waitFor({ state: 'visible' });
  assert.match(await empty.innerText(), /PutInsightSelectors/);
  assert.match(await empty.innerText(), /trail or event data store/);
  assert.equal(await page.locator(ROW).count(), 0);
  // The default range is the last 90 days.
  assert.equal(await page.locator('[data-testid=insights-range-90d]').isChecked(), true);
  await screenshot(page, 'insights-empty');
  assert.deepEqual(pageErrors(page), []);
});

s.test('the list: one row per incident, newest first; the range and the filter', async () => {
  prepare();
  const page = await insightsPage();
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared, E.shared]);

  assert.deepEqual(await rowCells(page, A.shared), {
    start: shown(A.startMs), end: shown(A.endMs), source: 'ec2.amazonaws.com', name: 'RunInstances',
    type: 'Call rate', baseline: '0.1', insight: '8', duration: '5 min',
  });
  assert.deepEqual(await rowCells(page, B.shared), {
    start: shown(B.startMs), end: shown(B.endMs), source: 'iam.amazonaws.com', name: 'DeleteUser',
    type: 'Error rate AccessDenied', baseline: '0.002', insight: '3.5', duration: '12 min',
  });
  const c = await rowCells(page, C.shared);
  assert.equal(c.end, 'Ongoing');
  assert.equal(c.insight, '6');
  assert.equal(c.duration, '1 min so far');
  assert.equal(await page.locator(`${ROW}[data-insight-id="${C.shared}"] [data-testid=ongoing]`).count(), 1);
  assert.match(await page.locator('#status').innerText(), /^5 insights in the last 90 days\./);
  await screenshot(page, 'insights-list');

  // The last 24 hours: D began before it (its start comes from its End record's duration).
  await page.click('label[for=range-24h]');
  await waitForIds(page, [C.shared, A.shared, D.shared]);
  assert.equal(param(page, 'range'), '24h');
  const d = await rowCells(page, D.shared);
  assert.equal(d.start, `${shown(D.startMs)} before the range`);
  assert.equal(d.duration, '20 min');
  await page.click('label[for=range-30d]');
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared]);
  assert.equal(param(page, 'range'), '30d');

  // The filter matches event sources and names, as typed; the URL follows.
  const filter = page.getByLabel('Event source or event name contains');
  await filter.fill('ec2');
  await waitForIds(page, [A.shared, D.shared]);
  await filter.fill('DELETEUSER');
  await waitForIds(page, [B.shared]);
  await eventually(() => param(page, 'q') === 'DELETEUSER', { message: 'the filter in the URL' });
  assert.match(await page.locator('#status').innerText(), /^1 of 4 insights/);
  await filter.fill('no-such-api');
  await page.locator('[data-testid=no-matches]').waitFor({ state: 'visible' });
  assert.equal(await page.locator('[data-testid=no-insights]').isVisible(), false);
  await filter.fill('');
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared]);

  // Refresh reads the list again.
  await page.click('[data-testid=insights-refresh]');
  await listed(page);
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared]);
  await page.click('label[for=range-90d]');
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared, E.shared]);
  assert.deepEqual(pageErrors(page), []);
});

s.test('an insight\'s card: the rate against the baseline, statistics, attributions, records', async () => {
  prepare();
  const page = await insightsPage();
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared, E.shared]);
  await page.locator(`${ROW}[data-insight-id="${A.shared}"]`).click();
  await cardOf(page, A.shared);
  assert.equal(param(page, 'insight'), A.shared);
  assert.equal(param(page, 'range'), '90d');
  assert.equal(await page.locator(`${ROW}[data-insight-id="${A.shared}"]`).getAttribute('aria-current'), 'true');
  assert.match(await card(page).locator('h2').innerText(), /RunInstances · API call rate/);

  // The chart: an hour each side of the insight, minute by minute; 8 calls a minute in the
  // insight (not the other region's calls, nor the read-only ones), 1 now and then around it.
  const f = await chartFacts(page);
  assert.equal(f.points, 125);
  assert.equal(f.bucketMinutes, 1);
  assert.equal(f.rates.length, 125);
  assert.deepEqual(f.rates.slice(60, 65), [8, 8, 8, 8, 8]);
  assert.equal(f.rates.reduce((a, b) => a + b, 0), 40 + 12);
  assert.equal(Math.max(...f.rates.slice(0, 60)), 1);
  assert.ok(f.baseline, 'a baseline line');
  assert.equal(f.baseline.value, 0.1);
  assert.notEqual(f.baseline.dash, 'none', 'the baseline is dashed');
  // Up the chart is up the screen: the insight's points are above the baseline, which is above zero.
  assert.ok(f.ys[62] < f.baseline.y && f.baseline.y < f.ys[0], `points ${f.ys[62]}, baseline ${f.baseline.y}, zero ${f.ys[0]}`);
  assert.ok(f.period && f.period.width > 0, 'the insight period is shaded');
  assert.ok(f.xTicks.length >= 3, `time labels: ${f.xTicks}`);
  for (const t of f.xTicks) assert.match(t, /^\d\d:\d\d$/);
  assert.ok(f.yTicks.includes('0'), `rate labels: ${f.yTicks}`);
  assert.match(f.label, /RunInstances calls per minute/);
  const summary = await page.locator(`#${f.describedBy}`).innerText();
  assert.match(summary, /peaked at 8 per minute/);
  assert.match(summary, /baseline, 0\.1 per minute/);
  assert.match(summary, /minute by minute/);

  // The chart from the keyboard: the arrows read the rate of each minute.
  await page.locator('[data-testid=insight-chart]').focus();
  await page.keyboard.press('ArrowRight');
  await eventually(async () => (await page.locator('[data-testid=chart-readout]').innerText()).includes('8 calls per minute'),
    { message: 'the readout of the insight\'s first minute' });
  assert.match(await page.locator('[data-testid=chart-readout]').innerText(), new RegExp(shown(A.startMs)));

  // Statistics.
  assert.equal(await stat(page, 'type'), 'API call rate');
  assert.equal(await stat(page, 'state'), 'Ended');
  assert.equal(await stat(page, 'start'), shown(A.startMs));
  assert.equal(await stat(page, 'end'), shown(A.endMs));
  assert.equal(await stat(page, 'duration'), '5 min');
  assert.equal(await stat(page, 'baseline'), '0.1 calls per minute');
  assert.equal(await stat(page, 'insight'), '8 calls per minute (80× the baseline)');
  assert.equal(await stat(page, 'baseline-duration'), '7 days 21 h before the start');
  assert.equal(await stat(page, 'region'), 'us-east-1');

  // Attributions: insight against baseline per value; no error is "None".
  assert.deepEqual(await attribution(page, 'userIdentityArn'), [
    [ARN('ci-deployer'), '7', '0.02'],
    [ARN('alana'), '1', '0.08'],
  ]);
  assert.deepEqual(await attribution(page, 'userAgent'), [['aws-cli/2.15.0', '8', '0.1']]);
  assert.deepEqual(await attribution(page, 'errorCode'), [['None', '8', '0.1']]);
  assert.equal(await page.locator('[data-testid=attribution-errorCode] caption').innerText(), 'Error code');

  // The Start and End records as stored.
  const start = JSON.parse(await page.locator('[data-testid=start-json]').innerText());
  const end = JSON.parse(await page.locator('[data-testid=end-json]').innerText());
  assert.equal(start.eventID, A.records[0].eventID);
  assert.equal(end.eventID, A.records[1].eventID);
  assert.equal(start.insightDetails.state, 'Start');
  assert.equal(end.insightDetails.state, 'End');
  assert.equal(end.sharedEventID, A.shared);
  await screenshot(page, 'insights-detail-laptop', { fullPage: true });

  // The keyboard: Escape closes the card and gives the focus back to the row; Enter opens one.
  await page.keyboard.press('Escape');
  await card(page).waitFor({ state: 'hidden' });
  assert.equal(param(page, 'insight'), null);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.insightId), A.shared);
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.insightId), D.shared);
  await page.keyboard.press('Enter');
  await cardOf(page, D.shared);
  assert.equal(param(page, 'insight'), D.shared);
  // With the card open, the arrows move the selection.
  await page.locator(`${ROW}[data-insight-id="${D.shared}"]`).focus();
  await page.keyboard.press('ArrowDown');
  await cardOf(page, B.shared);
  assert.equal(param(page, 'insight'), B.shared);

  // An error-rate insight: its errors only (not DeleteUser's successes), and no error-code
  // attribution of its own.
  const b = await chartFacts(page);
  assert.equal(b.points, 132);
  assert.deepEqual(b.rates.slice(60, 72), [4, 3, 4, 3, 4, 3, 4, 3, 4, 3, 4, 3]);
  assert.equal(b.rates.reduce((x, y) => x + y, 0), 42);
  assert.match(b.label, /DeleteUser errors per minute ending in AccessDenied/);
  assert.equal(await stat(page, 'type'), 'API error rate: AccessDenied');
  assert.equal(await stat(page, 'insight'), '3.5 errors per minute (1,750× the baseline)');
  assert.equal(await page.locator('[data-testid=attribution-errorCode]').count(), 0);
  assert.deepEqual(await attribution(page, 'userAgent'), [['curl/8.5.0', '3.5', '-'], ['aws-cli/2.15.0', '-', '0.002']]);

  // An ongoing insight: no End record yet.
  await page.locator(`${ROW}[data-insight-id="${C.shared}"]`).click();
  await cardOf(page, C.shared);
  assert.equal(await stat(page, 'state'), 'Ongoing (no End event yet)');
  await page.locator('[data-testid=end-json-missing]').waitFor({ state: 'visible' });
  assert.equal(await page.locator('[data-testid=no-attributions]').isVisible(), true);
  assert.deepEqual(pageErrors(page), []);
});

s.test('a data-event insight counts the API\'s reads', async () => {
  prepare();
  const page = await insightsPage(LAPTOP, `?insight=${E.shared}`);
  await cardOf(page, E.shared);
  const f = await chartFacts(page);
  assert.equal(f.points, 123);
  assert.deepEqual(f.rates.slice(60, 63), [20, 20, 20]);
  assert.equal(f.rates.reduce((a, b) => a + b, 0), 60);
  assert.match(f.label, /GetObject calls per minute/);
});

s.test('the URL reproduces the view; back and forward; an insight outside the range', async () => {
  prepare();
  const page = await insightsPage(LAPTOP, `?insight=${B.shared}&range=30d&q=iam`);
  await cardOf(page, B.shared);
  await waitForIds(page, [B.shared]);
  assert.equal(await page.locator('[data-testid=insights-range-30d]').isChecked(), true);
  assert.equal(await page.getByLabel('Event source or event name contains').inputValue(), 'iam');
  assert.equal(await page.locator(`${ROW}[data-insight-id="${B.shared}"]`).getAttribute('aria-current'), 'true');

  // Back and forward between two insights.
  await page.getByLabel('Event source or event name contains').fill('');
  await waitForIds(page, [C.shared, A.shared, D.shared, B.shared]);
  await page.locator(`${ROW}[data-insight-id="${A.shared}"]`).click();
  await cardOf(page, A.shared);
  await page.goBack();
  await cardOf(page, B.shared);
  assert.equal(param(page, 'insight'), B.shared);
  await page.goForward();
  await cardOf(page, A.shared);

  // The link of the view, opened elsewhere, shows the same.
  const other = await s.page(TABLET);
  await signIn(other, s.cairn, { next: new URL(page.url()).pathname + new URL(page.url()).search });
  await cardOf(other, A.shared);
  assert.equal(param(other, 'range'), '30d');
  assert.deepEqual((await chartFacts(other)).rates, (await chartFacts(page)).rates);

  // An insight older than the range: the page says so.
  await other.goto(`${s.cairn.endpoint}/console/insights?insight=${B.shared}&range=7d`);
  await listed(other);
  const error = other.locator('[data-testid=error]');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.innerText(), /not in the chosen time range/);
  assert.equal(await card(other).isVisible(), false);
  // A longer range finds it.
  await other.click('label[for=range-90d]');
  await cardOf(other, B.shared);
  assert.equal(await error.isVisible(), false);

  // An insight that began before the range: its Start record is found all the same.
  await other.goto(`${s.cairn.endpoint}/console/insights?insight=${D.shared}&range=24h`);
  await cardOf(other, D.shared);
  const start = other.locator('[data-testid=start-json]');
  await start.waitFor({ state: 'visible' });
  assert.equal(JSON.parse(await start.innerText()).eventID, D.records[0].eventID);
  assert.equal(await stat(other, 'start'), shown(D.startMs));
  assert.equal(await stat(other, 'insight'), '1.25 calls per minute (25× the baseline)');
  assert.deepEqual(pageErrors(page), []);
});

s.test('"View the events behind it" opens Event history on them', async () => {
  prepare();
  const page = await insightsPage(LAPTOP, `?insight=${A.shared}`);
  await cardOf(page, A.shared);
  await page.getByRole('link', { name: 'View the events behind it' }).click();
  await eventually(() => new URL(page.url()).pathname === '/console/events', { message: 'Event history' });
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('start'), String(A.startMs / 1000));
  // Up to the End event's time, which is the end of the insight's last minute.
  assert.equal(url.searchParams.get('end'), String(A.endMs / 1000 - 1));
  assert.deepEqual(url.searchParams.getAll('f'), ['EventSource:ec2.amazonaws.com', 'EventName:RunInstances', 'AwsRegion:us-east-1']);
  // The 40 calls of the burst (not the other region's).
  await waitForRows(page, 40);
  const chips = (await page.locator('[data-testid=filter-chip]').allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(chips, ['Event source: ec2.amazonaws.com', 'Event name: RunInstances', 'AWS region: us-east-1']);
  const names = await rows(page).locator('td[data-col=EventName]').allInnerTexts();
  assert.ok(names.every((n) => n.trim() === 'RunInstances'), names.join(','));

  // An error-rate insight's events are its errors.
  await page.goto(`${s.cairn.endpoint}/console/insights?insight=${B.shared}`);
  await cardOf(page, B.shared);
  await page.getByRole('link', { name: 'View the events behind it' }).click();
  await eventually(() => new URL(page.url()).pathname === '/console/events', { message: 'Event history' });
  assert.deepEqual(new URL(page.url()).searchParams.getAll('f'),
    ['EventSource:iam.amazonaws.com', 'EventName:DeleteUser', 'AwsRegion:us-east-1', 'ErrorCode:AccessDenied']);
  await waitForRows(page, 42);
  // Back to the insight.
  await page.goBack();
  await cardOf(page, B.shared);
  assert.deepEqual(pageErrors(page), []);
});

for (const [label, viewport] of [['laptop', LAPTOP], ['tablet', TABLET]]) {
  s.test(`the page at ${label} size (${viewport.width}x${viewport.height})`, async () => {
    prepare();
    const page = await insightsPage(viewport, `?insight=${A.shared}`);
    await cardOf(page, A.shared);
    await assertNoSidewaysScroll(page, `insights at ${label} size`);
    // The chart fills the card's width, with its text at its own size.
    const { svg, viewBox } = await page.locator('[data-testid=insight-chart]').evaluate((el) => ({
      svg: el.getBoundingClientRect().width, viewBox: el.viewBox.baseVal.width,
    }));
    assert.ok(Math.abs(svg - viewBox) <= 2, `chart ${svg}px wide, drawn for ${viewBox}`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, `insights-${label}`);
    await screenshot(page, `insights-${label}-full`, { fullPage: true });
    assert.deepEqual(pageErrors(page), []);
  });
}
