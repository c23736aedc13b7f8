// The Insights page: CloudTrail Insights events (Start and End records paired by
// sharedEventID), the rate of calls around one drawn against its baseline, its attributions
// and records, links that reproduce the view, and the way to the events behind it.
//
// The main tests read insights that the server's Insights engine makes: a multi-region trail
// with Insights selectors, then a day and a half of API activity imported in time order (a
// baseline of calls, a burst of RunInstances calls, a storm of AccessDenied errors). A second
// server holds Insights events imported as records, for what the engine's workload would
// take hours or days to show: an insight still going on, one that began before the chosen
// range, old ones, and one over data events.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import {
  ACCOUNT_ID, suite, signIn, screenshot, eventually, rows, LAPTOP, TABLET,
} from './harness.js';

/** Insights made by the server's engine. */
const s = suite('insights');
/** Insights events imported as records. */
const c = suite('insights-crafted');

const MIN = 60_000;
const T = Math.floor(Date.now() / MIN) * MIN;
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
/** The console's time format. */
const shown = (ms) => iso(ms).replace('T', ' ').replace('Z', ' UTC');
const ARN = (user) => `arn:aws:iam::${ACCOUNT_ID}:user/${user}`;

/** An API call of the account. */
function call({
  timeMs, source, name, region = 'us-east-1', user = 'alana', agent = 'aws-cli/2.15.0', readOnly = false, errorCode,
}) {
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
    userAgent: agent,
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

// ---------------------------------------------------------------------------------------------
// The engine's workload
// ---------------------------------------------------------------------------------------------

const REGION = 'eu-west-1';
const TRAIL = 'insights-trail';
const BUCKET = 'insights-trail-bucket';
/** The region's history begins 32 hours ago: Insights judge a region after 24 hours. */
const HISTORY = T - 32 * 60 * MIN;
/** RunInstances by a miner: 40 calls a minute for 6 minutes, three hours ago. */
const BURST = T - 180 * MIN;
const BURST_MINUTES = 6;
/** DescribeInstances refused: 30 AccessDenied errors a minute for 4 minutes, six hours ago. */
const STORM = T - 360 * MIN;
const STORM_MINUTES = 4;

/** A day and a half of activity in eu-west-1, in time order, ending an hour ago. */
function workload() {
  const out = [];
  const ec2 = { source: 'ec2.amazonaws.com', region: REGION };
  // The baselines: a RunInstances call and a DescribeInstances call every 10 minutes (at
  // minutes that miss the burst and the storm).
  for (let t = HISTORY + 7 * MIN; t <= T - 60 * MIN; t += 10 * MIN) out.push(call({ ...ec2, timeMs: t, name: 'RunInstances' }));
  for (let t = HISTORY + 6 * MIN; t <= T - 60 * MIN; t += 10 * MIN) out.push(call({ ...ec2, timeMs: t, name: 'DescribeInstances', readOnly: true }));
  for (let m = 0; m < BURST_MINUTES; m++) {
    for (let j = 0; j < 40; j++) {
      out.push(call({ ...ec2, timeMs: BURST + m * MIN + j * 1500, name: 'RunInstances', user: 'miner', agent: 'xmrig-deployer/1.0' }));
    }
  }
  for (let m = 0; m < STORM_MINUTES; m++) {
    for (let j = 0; j < 30; j++) {
      out.push(call({ ...ec2, timeMs: STORM + m * MIN + j * 2000, name: 'DescribeInstances', readOnly: true, user: 'intruder', errorCode: 'AccessDenied' }));
    }
  }
  return out.sort((a, b) => Date.parse(a.eventTime) - Date.parse(b.eventTime));
}

/** Calls an operation of the CloudTrail API with a signed-in page's session. */
async function cloudtrail(page, op, body) {
  const out = await page.evaluate(async ({ op, body }) => {
    const r = await fetch('/', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.${op}`,
        'X-Cairn-CSRF': document.querySelector('meta[name="cairn-csrf"]').content,
      },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json().catch(() => ({})) };
  }, { op, body });
  assert.equal(out.status, 200, `${op}: ${JSON.stringify(out.body)}`);
  return out.body;
}

/** The engine's two incidents: {callRate, errorRate}, each {shared, start, end} (records);
 * made once, for the first test that needs them. */
let made = null;
function engineInsights() {
  made = made || makeInsights();
  return made;
}

async function makeInsights() {
  // The administrator turns Insights on for a logging multi-region trail...
  const admin = await s.page(LAPTOP);
  await signIn(admin, s.cairn, { user: 'admin', password: s.cairn.adminPassword });
  fs.mkdirSync(path.join(s.cairn.dataDir, 'buckets', BUCKET), { recursive: true });
  await cloudtrail(admin, 'CreateTrail', { Name: TRAIL, S3BucketName: BUCKET, IsMultiRegionTrail: true });
  await cloudtrail(admin, 'StartLogging', { Name: TRAIL });
  await cloudtrail(admin, 'PutInsightSelectors', {
    TrailName: TRAIL, InsightSelectors: [{ InsightType: 'ApiCallRateInsight' }, { InsightType: 'ApiErrorRateInsight' }],
  });
  // ...and the activity comes in: the engine follows the journal, and stores its Start and
  // End events within moments.
  s.cairn.importRecords(workload());
  let records = [];
  await eventually(async () => {
    const out = await cloudtrail(admin, 'LookupEvents', { EventCategory: 'insight', MaxResults: 50 });
    records = (out.Events || []).map((e) => JSON.parse(e.CloudTrailEvent));
    return records.length >= 4;
  }, { timeout: 60_000, interval: 500, message: `the engine's Start and End events; saw ${JSON.stringify(records.map((r) => r.insightDetails))}` });
  const incident = (type, name) => {
    const mine = records.filter((r) => r.insightDetails.insightType === type && r.insightDetails.eventName === name);
    const start = mine.find((r) => r.insightDetails.state === 'Start');
    const end = mine.find((r) => r.insightDetails.state === 'End');
    assert.ok(start && end, `a Start and an End ${type} of ${name}: ${JSON.stringify(mine)}`);
    assert.equal(start.sharedEventID, end.sharedEventID);
    return { shared: start.sharedEventID, start, end };
  };
  const out = {
    callRate: incident('ApiCallRateInsight', 'RunInstances'),
    errorRate: incident('ApiErrorRateInsight', 'DescribeInstances'),
  };
  assert.equal(records.length, 4, `only the two incidents: ${JSON.stringify(records.map((r) => r.insightDetails))}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Crafted Insights events
// ---------------------------------------------------------------------------------------------

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

// B: DeleteUser failing with AccessDenied for 12 minutes, ten days ago.
const B = incident({
  source: 'iam.amazonaws.com', name: 'DeleteUser', type: 'ApiErrorRateInsight', errorCode: 'AccessDenied',
  startMs: T - 10 * 1440 * MIN, endMs: T - 10 * 1440 * MIN + 12 * MIN, baseline: 0.002, startAverage: 4, average: 3.5,
  attributions: [
    { attribute: 'userIdentityArn', insight: [{ value: ARN('intruder'), average: 3.5 }], baseline: [{ value: ARN('alana'), average: 0.002 }] },
    { attribute: 'userAgent', insight: [{ value: 'curl/8.5.0', average: 3.5 }], baseline: [{ value: 'aws-cli/2.15.0', average: 0.002 }] },
  ],
});
// C: PutBucketPolicy, going on (a Start and no End yet).
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

let imported = false;
function importCrafted() {
  if (imported) return;
  const reads = [];
  for (let m = 0; m < 3; m++) {
    for (let j = 0; j < 20; j++) {
      reads.push({
        ...call({ timeMs: E.startMs + m * MIN + j * 2500, source: 's3.amazonaws.com', name: 'GetObject', region: 'eu-west-1', readOnly: true }),
        managementEvent: false, eventCategory: 'Data',
        resources: [{ type: 'AWS::S3::Object', ARN: 'arn:aws:s3:::reports/q3.csv' }],
      });
    }
  }
  c.cairn.importRecords([...reads, ...B.records, ...C.records, ...D.records, ...E.records]);
  imported = true;
}

// ---------------------------------------------------------------------------------------------
// Page helpers
// ---------------------------------------------------------------------------------------------

const ROW = 'tr[data-testid=insight-row]';
const param = (page, name) => new URL(page.url()).searchParams.get(name);

/** Signs in to suite `x`'s server and opens the Insights page (with `search`, e.g.
 * `?range=7d`); waits for the list. */
async function insightsPage(x, viewport = LAPTOP, search = '') {
  const page = await x.page(viewport);
  await signIn(page, x.cairn, { next: `/console/insights${search}` });
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

const rowOf = (page, id) => page.locator(`${ROW}[data-insight-id="${id}"]`);

async function rowCells(page, id) {
  return rowOf(page, id).evaluate((tr) => {
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
      xs: points.map((p) => Number(p.getAttribute('cx'))),
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
    [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((cell) => cell.textContent.trim())));
}

async function assertNoSidewaysScroll(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client + 1, `${what}: the page is ${scroll}px wide in a ${client}px window`);
}

const pageErrors = (page) => page.consoleErrors.filter((e) => !/status of 4\d\d/.test(e));
const sum = (list) => list.reduce((a, b) => a + b, 0);
/** A number shown with a few significant digits is the record's. */
const near = (text, value) => Math.abs(Number(text) - value) <= Math.abs(value) * 0.01 + 1e-12;

// ---------------------------------------------------------------------------------------------
// Insights made by the engine
// ---------------------------------------------------------------------------------------------

s.test('no insights yet: the page says how to turn Insights on', async () => {
  const page = await insightsPage(s);
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

s.test('the engine\'s insights: one row per incident, newest first', async () => {
  const { callRate, errorRate } = await engineInsights();
  const page = await insightsPage(s);
  await waitForIds(page, [callRate.shared, errorRate.shared]);

  const burst = await rowCells(page, callRate.shared);
  const { baseline } = burst;
  assert.deepEqual({ ...burst, baseline: null }, {
    start: shown(BURST), end: shown(BURST + BURST_MINUTES * MIN), source: 'ec2.amazonaws.com', name: 'RunInstances',
    type: 'Call rate', baseline: null, insight: '40', duration: '6 min',
  });
  // The engine's baseline: at most one call in 10 minutes.
  assert.ok(near(baseline, callRate.end.insightDetails.insightContext.statistics.baseline.average), `baseline ${baseline}`);
  assert.ok(Number(baseline) > 0 && Number(baseline) <= 0.1, `baseline ${baseline}`);
  assert.deepEqual(await rowCells(page, errorRate.shared), {
    start: shown(STORM), end: shown(STORM + STORM_MINUTES * MIN), source: 'ec2.amazonaws.com', name: 'DescribeInstances',
    type: 'Error rate AccessDenied', baseline: '0', insight: '30', duration: '4 min',
  });
  assert.match(await page.locator('#status').innerText(), /^2 insights in the last 90 days\./);
  await screenshot(page, 'insights-list');

  // The range and the filter narrow the list.
  await page.click('label[for=range-24h]');
  await listed(page);
  await waitForIds(page, [callRate.shared, errorRate.shared]);
  assert.equal(param(page, 'range'), '24h');
  const filter = page.getByLabel('Event source or event name contains');
  await filter.fill('describe');
  await waitForIds(page, [errorRate.shared]);
  await eventually(() => param(page, 'q') === 'describe', { message: 'the filter in the URL' });
  assert.match(await page.locator('#status').innerText(), /^1 of 2 insights in the last 24 hours/);
  await filter.fill('');
  await waitForIds(page, [callRate.shared, errorRate.shared]);
  assert.deepEqual(pageErrors(page), []);
});

s.test('a call-rate insight\'s card: the rate against the baseline, statistics, attributions, records', async () => {
  const { callRate, errorRate } = await engineInsights();
  const page = await insightsPage(s);
  await waitForIds(page, [callRate.shared, errorRate.shared]);
  await rowOf(page, callRate.shared).click();
  await cardOf(page, callRate.shared);
  assert.equal(param(page, 'insight'), callRate.shared);
  assert.equal(param(page, 'range'), '90d');
  assert.equal(await rowOf(page, callRate.shared).getAttribute('aria-current'), 'true');
  assert.equal(await card(page).locator('h2').innerText(), 'RunInstances · API call rate');
  assert.match(await page.locator('#insight-sub').innerText(), /^ec2\.amazonaws\.com in eu-west-1 · /);

  // The chart: an hour each side of the insight, minute by minute: 40 calls a minute in the
  // burst, one call now and then around it.
  const f = await chartFacts(page);
  assert.equal(f.points, 60 + BURST_MINUTES + 60);
  assert.equal(f.bucketMinutes, 1);
  assert.deepEqual(f.rates.slice(60, 66), [40, 40, 40, 40, 40, 40]);
  assert.equal(sum(f.rates), 240 + 12);
  assert.ok(Math.max(...f.rates.slice(0, 60), ...f.rates.slice(66)) <= 1);
  assert.ok(f.baseline, 'a baseline line');
  assert.ok(near(f.baseline.value, callRate.end.insightDetails.insightContext.statistics.baseline.average));
  assert.notEqual(f.baseline.dash, 'none', 'the baseline is dashed');
  // Up the chart is up the screen: the burst is above the baseline, which is above zero.
  const zero = f.ys[f.rates.indexOf(0)];
  assert.ok(f.ys[62] < f.baseline.y && f.baseline.y < zero, `burst ${f.ys[62]}, baseline ${f.baseline.y}, zero ${zero}`);
  // The shaded period covers the burst's points and no other.
  assert.ok(f.period && f.period.width > 0, 'the insight period is shaded');
  const inside = (x) => x >= f.period.x && x <= f.period.x + f.period.width;
  assert.deepEqual(f.xs.map((x, i) => (inside(x) ? i : -1)).filter((i) => i >= 0), [60, 61, 62, 63, 64, 65]);
  assert.ok(f.xTicks.length >= 3, `time labels: ${f.xTicks}`);
  for (const t of f.xTicks) assert.match(t, /^\d\d:\d\d$/);
  assert.ok(f.yTicks.includes('0') && f.yTicks.includes('50'), `rate labels: ${f.yTicks}`);
  assert.equal(f.label, 'Chart of RunInstances calls per minute around the insight, against the baseline');
  const summary = await page.locator(`#${f.describedBy}`).innerText();
  // Within one UTC day the summary names the day once; across midnight it gives both dates.
  assert.match(summary, /^RunInstances calls per minute in eu-west-1 from (\d\d:\d\d to \d\d:\d\d UTC on \d{4}-\d\d-\d\d|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC), minute by minute\./);
  assert.match(summary, /peaked at 40 per minute/);
  assert.ok(summary.includes(`The dashed line is the baseline, ${await stat(page, 'baseline').then((t) => t.split(' ')[0])} per minute.`), summary);

  // The chart from the keyboard: the arrows read the rate minute by minute, from the insight's start.
  await page.locator('[data-testid=insight-chart]').focus();
  await page.keyboard.press('ArrowRight');
  const readout = page.locator('[data-testid=chart-readout]');
  await eventually(async () => (await readout.innerText()).startsWith(`${shown(BURST)}: 40 calls per minute (40 events)`),
    { message: 'the readout of the insight\'s first minute' });
  await page.keyboard.press('ArrowLeft');
  await eventually(async () => (await readout.innerText()).startsWith(`${shown(BURST - MIN)}: 0 calls per minute`),
    { message: 'the readout of the minute before' });

  // Statistics.
  const stats = callRate.end.insightDetails.insightContext.statistics;
  assert.equal(await stat(page, 'type'), 'API call rate');
  assert.equal(await stat(page, 'state'), 'Ended');
  assert.equal(await stat(page, 'start'), shown(BURST));
  assert.equal(await stat(page, 'end'), shown(BURST + BURST_MINUTES * MIN));
  assert.equal(await stat(page, 'duration'), '6 min');
  assert.match(await stat(page, 'baseline'), /^0\.\d+ calls per minute$/);
  assert.match(await stat(page, 'insight'), /^40 calls per minute \([\d,]+× the baseline\)$/);
  assert.equal(await stat(page, 'start-average'), '40 calls per minute in the first minute');
  assert.equal(await stat(page, 'region'), 'eu-west-1');
  assert.ok(stats.baselineDuration >= 24 * 60, `baseline period ${stats.baselineDuration} min`);
  assert.match(await stat(page, 'baseline-duration'), /^\d+ days?( \d+ h)? before the start$/);

  // Attributions: who and what made the burst, against who usually calls; no error is "None".
  const arns = await attribution(page, 'userIdentityArn');
  assert.deepEqual(arns[0], [ARN('miner'), '40', '-']);
  assert.ok(arns.some((r) => r[0] === ARN('alana') && Number(r[2]) > 0), JSON.stringify(arns));
  const agents = await attribution(page, 'userAgent');
  assert.deepEqual(agents[0], ['xmrig-deployer/1.0', '40', '-']);
  assert.ok(agents.some((r) => r[0] === 'aws-cli/2.15.0' && Number(r[2]) > 0), JSON.stringify(agents));
  const errors = await attribution(page, 'errorCode');
  assert.equal(errors.length, 1);
  assert.equal(errors[0][0], 'None');
  assert.ok(Math.abs(Number(errors[0][1]) - 40) < 1, JSON.stringify(errors));
  assert.equal(await page.locator('[data-testid=attribution-errorCode] caption').innerText(), 'Error code');

  // The Start and End records as stored.
  const start = JSON.parse(await page.locator('[data-testid=start-json]').innerText());
  const end = JSON.parse(await page.locator('[data-testid=end-json]').innerText());
  assert.deepEqual(start, callRate.start);
  assert.deepEqual(end, callRate.end);
  await screenshot(page, 'insights-detail-laptop', { fullPage: true });

  // The keyboard: Escape closes the card and gives the focus back to the row; Enter opens one.
  await page.keyboard.press('Escape');
  await card(page).waitFor({ state: 'hidden' });
  assert.equal(param(page, 'insight'), null);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.insightId), callRate.shared);
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.insightId), errorRate.shared);
  await page.keyboard.press('Enter');
  await cardOf(page, errorRate.shared);
  assert.equal(param(page, 'insight'), errorRate.shared);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'insight-detail');
  // With the card open, the arrows in the table move the selection.
  await rowOf(page, errorRate.shared).focus();
  await page.keyboard.press('ArrowUp');
  await cardOf(page, callRate.shared);
  assert.equal(param(page, 'insight'), callRate.shared);
  assert.deepEqual(pageErrors(page), []);
});

s.test('an error-rate insight\'s card counts its errors only', async () => {
  const { errorRate } = await engineInsights();
  const page = await insightsPage(s, LAPTOP, `?insight=${errorRate.shared}`);
  await cardOf(page, errorRate.shared);
  assert.equal(await card(page).locator('h2').innerText(), 'DescribeInstances · API error rate (AccessDenied)');
  // The AccessDenied errors, not the API's successful calls around them.
  const f = await chartFacts(page);
  assert.equal(f.points, 60 + STORM_MINUTES + 60);
  assert.deepEqual(f.rates.slice(60, 64), [30, 30, 30, 30]);
  assert.equal(sum(f.rates), 120);
  assert.equal(f.label, 'Chart of DescribeInstances errors per minute ending in AccessDenied around the insight, against the baseline');
  assert.equal(f.baseline.value, 0);
  assert.equal(await stat(page, 'type'), 'API error rate: AccessDenied');
  assert.equal(await stat(page, 'baseline'), '0 errors per minute');
  assert.equal(await stat(page, 'insight'), '30 errors per minute');
  assert.deepEqual((await attribution(page, 'userIdentityArn'))[0], [ARN('intruder'), '30', '-']);
  // An error-rate insight's error code is the insight's own: no attribution by error code.
  assert.equal(await page.locator('[data-testid=attribution-errorCode]').count(), 0);
  assert.deepEqual(JSON.parse(await page.locator('[data-testid=end-json]').innerText()), errorRate.end);
  await screenshot(page, 'insights-error-rate');
  assert.deepEqual(pageErrors(page), []);
});

s.test('"View the events behind it" opens Event history on them', async () => {
  const { callRate, errorRate } = await engineInsights();
  const page = await insightsPage(s, LAPTOP, `?insight=${callRate.shared}`);
  await cardOf(page, callRate.shared);
  await page.getByRole('link', { name: 'View the events behind it' }).click();
  await eventually(() => new URL(page.url()).pathname === '/console/events', { message: 'Event history' });
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('start'), String(BURST / 1000));
  // Up to the End event's time, which is the end of the insight's last minute.
  assert.equal(url.searchParams.get('end'), String((BURST + BURST_MINUTES * MIN) / 1000 - 1));
  assert.deepEqual(url.searchParams.getAll('f'), ['EventSource:ec2.amazonaws.com', 'EventName:RunInstances', 'AwsRegion:eu-west-1']);
  const chips = (await page.locator('[data-testid=filter-chip]').allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(chips, ['Event source: ec2.amazonaws.com', 'Event name: RunInstances', 'AWS region: eu-west-1']);
  // The burst's 240 calls, all the miner's.
  await eventually(async () => /(^|\s)240 events/.test(await page.locator('#histogram-note').innerText()),
    { message: 'the histogram of the 240 calls' });
  await eventually(async () => (await rows(page).count()) >= 50, { message: 'a page of events' });
  const users = await rows(page).locator('td[data-col=Username]').allInnerTexts();
  assert.deepEqual([...new Set(users.map((u) => u.trim()))], ['miner']);
  await screenshot(page, 'insights-events-behind');

  // An error-rate insight's events are its errors.
  await page.goto(`${s.cairn.endpoint}/console/insights?insight=${errorRate.shared}`);
  await cardOf(page, errorRate.shared);
  await page.getByRole('link', { name: 'View the events behind it' }).click();
  await eventually(() => new URL(page.url()).pathname === '/console/events', { message: 'Event history' });
  assert.deepEqual(new URL(page.url()).searchParams.getAll('f'),
    ['EventSource:ec2.amazonaws.com', 'EventName:DescribeInstances', 'AwsRegion:eu-west-1', 'ErrorCode:AccessDenied']);
  await eventually(async () => /(^|\s)120 events/.test(await page.locator('#histogram-note').innerText()),
    { message: 'the histogram of the 120 errors' });
  // Back to the insight.
  await page.goBack();
  await cardOf(page, errorRate.shared);
  assert.deepEqual(pageErrors(page), []);
});

s.test('the URL reproduces the view; back and forward', async () => {
  const { callRate, errorRate } = await engineInsights();
  const page = await insightsPage(s, LAPTOP, `?insight=${errorRate.shared}&range=24h&q=Describe`);
  await cardOf(page, errorRate.shared);
  await waitForIds(page, [errorRate.shared]);
  assert.equal(await page.locator('[data-testid=insights-range-24h]').isChecked(), true);
  const filter = page.getByLabel('Event source or event name contains');
  assert.equal(await filter.inputValue(), 'Describe');
  assert.equal(await rowOf(page, errorRate.shared).getAttribute('aria-current'), 'true');

  // Back and forward between two insights.
  await filter.fill('');
  await waitForIds(page, [callRate.shared, errorRate.shared]);
  await rowOf(page, callRate.shared).click();
  await cardOf(page, callRate.shared);
  await page.goBack();
  await cardOf(page, errorRate.shared);
  assert.equal(param(page, 'insight'), errorRate.shared);
  await page.goForward();
  await cardOf(page, callRate.shared);

  // The link of the view, opened elsewhere (at tablet size), shows the same.
  const other = await s.page(TABLET);
  await signIn(other, s.cairn, { next: new URL(page.url()).pathname + new URL(page.url()).search });
  await cardOf(other, callRate.shared);
  assert.equal(param(other, 'range'), '24h');
  assert.deepEqual((await chartFacts(other)).rates, (await chartFacts(page)).rates);
  assert.deepEqual(await attribution(other, 'userAgent'), await attribution(page, 'userAgent'));
  assert.deepEqual(pageErrors(page), []);
  assert.deepEqual(pageErrors(other), []);
});

for (const [label, viewport] of [['laptop', LAPTOP], ['tablet', TABLET]]) {
  s.test(`the page at ${label} size (${viewport.width}x${viewport.height})`, async () => {
    const { callRate } = await engineInsights();
    const page = await insightsPage(s, viewport, `?insight=${callRate.shared}`);
    await cardOf(page, callRate.shared);
    await assertNoSidewaysScroll(page, `insights at ${label} size`);
    // The chart fills the card's width, its text at its own size.
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

// ---------------------------------------------------------------------------------------------
// Insights events imported as records
// ---------------------------------------------------------------------------------------------

c.test('imported Insights events: going on, begun before the range, old; the range and the filter', async () => {
  importCrafted();
  const page = await insightsPage(c);
  await waitForIds(page, [C.shared, D.shared, B.shared, E.shared]);
  assert.deepEqual(await rowCells(page, B.shared), {
    start: shown(B.startMs), end: shown(B.endMs), source: 'iam.amazonaws.com', name: 'DeleteUser',
    type: 'Error rate AccessDenied', baseline: '0.002', insight: '3.5', duration: '12 min',
  });
  // An insight going on: a Start and no End yet.
  const ongoing = await rowCells(page, C.shared);
  assert.equal(ongoing.end, 'Ongoing');
  assert.equal(ongoing.insight, '6');
  assert.equal(ongoing.duration, '1 min so far');
  assert.equal(await rowOf(page, C.shared).locator('[data-testid=ongoing]').count(), 1);
  assert.match(await page.locator('#status').innerText(), /^4 insights in the last 90 days\./);

  // The last 24 hours: D began before it (its start comes from its End record's duration).
  await page.click('label[for=range-24h]');
  await waitForIds(page, [C.shared, D.shared]);
  assert.equal(param(page, 'range'), '24h');
  const d = await rowCells(page, D.shared);
  assert.equal(d.start, `${shown(D.startMs)} before the range`);
  assert.equal(d.duration, '20 min');
  await page.click('label[for=range-30d]');
  await waitForIds(page, [C.shared, D.shared, B.shared]);
  assert.equal(param(page, 'range'), '30d');

  // The filter matches event sources and names, whatever the case.
  const filter = page.getByLabel('Event source or event name contains');
  await filter.fill('ec2');
  await waitForIds(page, [D.shared]);
  await filter.fill('DELETEUSER');
  await waitForIds(page, [B.shared]);
  await eventually(() => param(page, 'q') === 'DELETEUSER', { message: 'the filter in the URL' });
  await filter.fill('no-such-api');
  await page.locator('[data-testid=no-matches]').waitFor({ state: 'visible' });
  assert.equal(await page.locator('[data-testid=no-insights]').isVisible(), false);
  await filter.fill('');
  await waitForIds(page, [C.shared, D.shared, B.shared]);

  // Refresh reads the list again.
  await page.click('[data-testid=insights-refresh]');
  await listed(page);
  await waitForIds(page, [C.shared, D.shared, B.shared]);
  await screenshot(page, 'insights-list-imported');

  // The card of the insight going on.
  await rowOf(page, C.shared).click();
  await cardOf(page, C.shared);
  assert.equal(await stat(page, 'state'), 'Ongoing (no End event yet)');
  assert.equal(await stat(page, 'end'), '-');
  await page.locator('[data-testid=end-json-missing]').waitFor({ state: 'visible' });
  assert.equal(await page.locator('[data-testid=no-attributions]').isVisible(), true);
  // Its chart runs from an hour before it to now.
  const points = (await chartFacts(page)).points;
  assert.ok(Math.abs(points - (60 + Math.ceil((Date.now() - C.startMs) / MIN))) <= 1, `${points} points: the chart ends now`);
  assert.equal(await page.getByRole('link', { name: 'View the events behind it' }).getAttribute('href'),
    `/console/events?start=${C.startMs / 1000}&end=now&f=EventSource%3As3.amazonaws.com&f=EventName%3APutBucketPolicy&f=AwsRegion%3Aus-east-1`);
  assert.deepEqual(pageErrors(page), []);
});

c.test('an insight outside the range; one whose Start is before it', async () => {
  importCrafted();
  const page = await insightsPage(c, LAPTOP, `?insight=${B.shared}&range=7d`);
  const error = page.locator('[data-testid=error]');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.innerText(), /not in the chosen time range/);
  assert.equal(await card(page).isVisible(), false);
  // A longer range finds it.
  await page.click('label[for=range-90d]');
  await cardOf(page, B.shared);
  assert.equal(await error.isVisible(), false);
  assert.equal(await stat(page, 'insight'), '3.5 errors per minute (1,750× the baseline)');
  assert.deepEqual(await attribution(page, 'userAgent'), [['curl/8.5.0', '3.5', '-'], ['aws-cli/2.15.0', '-', '0.002']]);

  // An insight that began before the range: its Start record is found all the same.
  await page.goto(`${c.cairn.endpoint}/console/insights?insight=${D.shared}&range=24h`);
  await cardOf(page, D.shared);
  const start = page.locator('[data-testid=start-json]');
  await start.waitFor({ state: 'visible' });
  assert.equal(JSON.parse(await start.innerText()).eventID, D.records[0].eventID);
  assert.equal(await stat(page, 'start'), shown(D.startMs));
  assert.equal(await stat(page, 'insight'), '1.25 calls per minute (25× the baseline)');
  assert.deepEqual(pageErrors(page), []);
});

c.test('a data-event insight counts the API\'s reads', async () => {
  importCrafted();
  const page = await insightsPage(c, LAPTOP, `?insight=${E.shared}`);
  await cardOf(page, E.shared);
  const f = await chartFacts(page);
  assert.equal(f.points, 60 + 3 + 60);
  assert.deepEqual(f.rates.slice(60, 63), [20, 20, 20]);
  assert.equal(sum(f.rates), 60);
  assert.match(f.label, /GetObject calls per minute/);
});
