// The Event history view: links that reproduce it, the column chooser, the keyboard, the
// histogram, paging and the empty state.

import assert from 'node:assert/strict';

import {
  suite, signIn, pickPreset, pickRange, addFilter, waitForRows, rows, cell, eventually,
  screenshot, sleep, LAPTOP,
} from './harness.js';

const s = suite('view');

const BULK = 260;

function bulkEvents() {
  const base = Date.parse('2022-02-02T02:00:00Z');
  return Array.from({ length: BULK }, (_, i) => ({
    eventVersion: '1.08',
    userIdentity: {
      type: 'IAMUser', principalId: 'AIDABULK000000000001', accountId: '111122223333',
      arn: 'arn:aws:iam::111122223333:user/bulk-user', accessKeyId: 'AKIABULK000000000001', userName: 'bulk-user',
    },
    eventTime: new Date(base + i * 7_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    eventSource: 's3.amazonaws.com',
    eventName: 'ListBuckets',
    awsRegion: 'us-east-1',
    sourceIPAddress: '198.51.100.50',
    userAgent: 'aws-cli/2.15.0',
    requestParameters: null,
    responseElements: null,
    requestID: `bulk-${i}`,
    eventID: `b0b0b0b0-0000-4000-8000-${String(i).padStart(12, '0')}`,
    readOnly: true,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: '111122223333',
    eventCategory: 'Management',
  }));
}

async function chips(page) {
  return (await page.locator('[data-testid=filter-chip]').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
}

async function ids(page) {
  return rows(page).evaluateAll((trs) => trs.map((tr) => tr.dataset.eventId));
}

async function rangeText(page) {
  return (await page.locator('[data-testid=time-range]').innerText()).replace(/\s+/g, ' ').trim();
}

s.test('the URL reproduces the view: reload, a new page, and sign-in with next=', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickRange(page, '2024-03-14T00:00', '2024-03-15T00:00');
  await addFilter(page, 'Username', 'dev-intern');
  await addFilter(page, 'EventName', 'ConsoleLogin');
  await waitForRows(page, 3);
  const url = page.url();
  const want = { chips: await chips(page), ids: await ids(page), range: await rangeText(page) };
  assert.ok(new URL(url).search.length > 1, `the URL holds no view state: ${url}`);

  await page.reload();
  await waitForRows(page, 3);
  assert.deepEqual(await chips(page), want.chips, 'chips after reload');
  assert.deepEqual(await ids(page), want.ids, 'rows after reload');
  assert.equal(await rangeText(page), want.range, 'time range after reload');

  // Another page of the same browser (signed in).
  const other = await page.context().newPage();
  await other.goto(url);
  await waitForRows(other, 3);
  assert.deepEqual(await chips(other), want.chips, 'chips in a new page');
  assert.deepEqual(await ids(other), want.ids, 'rows in a new page');
  assert.equal(await rangeText(other), want.range, 'time range in a new page');
  await other.close();

  // A colleague who is not signed in yet: sign-in with next= comes back to the same view.
  const fresh = await s.page(LAPTOP);
  const u = new URL(url);
  await signIn(fresh, s.cairn, { next: u.pathname + u.search });
  await eventually(() => fresh.url() === url || new URL(fresh.url()).search === u.search,
    { message: `to land on ${url}, at ${fresh.url()}` });
  await waitForRows(fresh, 3);
  assert.deepEqual(await chips(fresh), want.chips, 'chips after sign-in with next=');
  assert.deepEqual(await ids(fresh), want.ids, 'rows after sign-in with next=');
});

s.test('next= only goes to pages of this console', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn, { next: 'https://evil.example/phish' });
  const u = new URL(page.url());
  assert.equal(u.origin, s.cairn.endpoint, `sign-in sent the browser to ${page.url()}`);
  await signIn(page, s.cairn, { next: '//evil.example/phish' });
  assert.equal(new URL(page.url()).origin, s.cairn.endpoint, `sign-in sent the browser to ${page.url()}`);
});

s.test('removing a chip widens the view again; no match shows the empty state', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickPreset(page, 'all');
  await addFilter(page, 'Username', 'dev-intern');
  await waitForRows(page, 4);
  await addFilter(page, 'EventName', 'NoSuchEventName', { enter: true });
  await page.locator('[data-testid=no-events]').waitFor({ state: 'visible' });
  assert.equal(await rows(page).count(), 0);
  await screenshot(page, 'events-no-events');
  // Remove the EventName chip.
  const chip = page.locator('[data-testid=filter-chip]', { hasText: 'NoSuchEventName' });
  await chip.locator('[data-testid=filter-chip-remove]').click();
  await waitForRows(page, 4);
  assert.deepEqual((await chips(page)).length, 1);
});

s.test('the column chooser hides and shows columns and remembers them across reloads', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickPreset(page, 'all');
  await addFilter(page, 'Username', 'alana');
  const row = (await waitForRows(page, 1)).first();
  const has = async (col) => (await page.locator(`[data-testid=events-table] td[data-col=${col}]`).count()) > 0;
  assert.ok(await has('EventName'));

  await page.click('[data-testid=columns-button]');
  const region = page.locator('[data-testid=column-toggle-AwsRegion]');
  const eventId = page.locator('[data-testid=column-toggle-EventId]');
  await region.waitFor({ state: 'visible' });
  const regionWas = await region.isChecked();
  const eventIdWas = await eventId.isChecked();
  assert.equal(await has('AwsRegion'), regionWas, 'the AwsRegion box says what the table shows');
  assert.equal(await has('EventId'), eventIdWas, 'the EventId box says what the table shows');
  await region.click();
  await eventId.click();
  await eventually(async () => (await has('AwsRegion')) === !regionWas && (await has('EventId')) === !eventIdWas,
    { message: 'the columns to follow the boxes' });
  await screenshot(page, 'events-columns-chooser');
  await page.keyboard.press('Escape');

  await page.reload();
  await waitForRows(page, 1);
  assert.equal(await has('AwsRegion'), !regionWas, 'AwsRegion column choice forgotten after reload');
  assert.equal(await has('EventId'), !eventIdWas, 'EventId column choice forgotten after reload');
  if (!regionWas) assert.equal(await cell(row, 'AwsRegion'), 'us-west-2');

});

s.test('keyboard: Tab reaches a row, Enter opens its details, Escape closes them', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickPreset(page, 'all');
  await addFilter(page, 'Username', 'kodekloud');
  await waitForRows(page, 1);
  // Start from the top of the page, as a keyboard user would.
  await page.evaluate(() => { if (document.activeElement) document.activeElement.blur(); });
  let onRow = false;
  const path = [];
  for (let i = 0; i < 80 && !onRow; i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const el = document.activeElement;
      return { testid: el?.dataset?.testid ?? null, tag: el?.tagName ?? null, row: el?.matches?.('tr[data-testid=event-row]') ?? false };
    });
    path.push(f.testid || f.tag);
    onRow = f.row;
  }
  assert.ok(onRow, `Tab never reached an event row; focus went through ${path.join(' > ')}`);
  await page.keyboard.press('Enter');
  const details = page.locator('[data-testid=event-details]');
  await details.waitFor({ state: 'visible' });
  assert.match(await details.locator('dd[data-field=event-name]').innerText(), /RunInstances/);
  await page.keyboard.press('Escape');
  await details.waitFor({ state: 'hidden' });
});

s.test('dragging across the histogram narrows the time range', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickRange(page, '2024-03-14T09:00', '2024-03-14T11:00');
  await addFilter(page, 'Username', 'dev-intern');
  await waitForRows(page, 4);
  const hist = page.locator('[data-testid=histogram]');
  await hist.waitFor({ state: 'visible' });
  assert.ok(await hist.locator('rect, path').count() > 0, 'the histogram draws no bars');
  await screenshot(page, 'events-histogram');
  const before = { url: page.url(), range: await rangeText(page) };
  const box = await hist.boundingBox();
  // From about 10:12 to 10:57: only the DeleteObject at 10:22:05.
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.6, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.75, y, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.95, y, { steps: 5 });
  await page.mouse.up();
  const row = (await waitForRows(page, 1)).first();
  assert.equal(await cell(row, 'EventName'), 'DeleteObject');
  assert.notEqual(page.url(), before.url, 'the URL keeps the narrowed range');
  assert.notEqual(await rangeText(page), before.range, 'the time range control shows the narrowed range');
});

s.test('Load more pages through many results', async () => {
  s.cairn.importRecords(bulkEvents());
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickPreset(page, 'all');
  await addFilter(page, 'Username', 'bulk-user');
  const more = page.locator('[data-testid=load-more]');
  await more.waitFor({ state: 'visible' });
  const first = await rows(page).count();
  assert.ok(first > 0 && first < BULK, `first page has ${first} rows`);
  let n = first;
  for (let i = 0; i < 50 && (await more.isVisible()); i++) {
    await more.click();
    await eventually(async () => (await rows(page).count()) > n || !(await more.isVisible()), { message: 'more rows' });
    n = await rows(page).count();
  }
  await sleep(300);
  assert.equal(await rows(page).count(), BULK);
  assert.equal(await more.isVisible(), false, 'Load more still offered at the end');
  const all = await ids(page);
  assert.equal(new Set(all).size, BULK, 'rows repeated across pages');
  // Newest first.
  assert.equal(all[0], `b0b0b0b0-0000-4000-8000-${String(BULK - 1).padStart(12, '0')}`);
});

s.test('the time range menu offers every preset; a start after the end is an error', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await page.click('[data-testid=time-range]');
  for (const p of ['15m', '1h', '24h', '7d', '30d', '90d', 'all']) {
    await page.locator(`[data-testid=preset-${p}]`).waitFor({ state: 'visible' });
  }
  await page.fill('input[data-testid=time-start]', '2024-03-15T00:00');
  await page.fill('input[data-testid=time-end]', '2024-03-14T00:00');
  await page.click('[data-testid=time-apply]');
  const err = page.locator('[data-testid=error]');
  await err.waitFor({ state: 'visible' });
  assert.equal(await err.getAttribute('role'), 'alert');
  assert.ok((await err.innerText()).trim().length > 0);
});

s.test('a user whose policies do not allow looking up events sees why', async () => {
  s.cairn.createUser('no-rights', 'No-rights-pw-4c2a9b', null);
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn, { user: 'no-rights', password: 'No-rights-pw-4c2a9b' });
  assert.equal(new URL(page.url()).pathname, '/console/events');
  const err = page.locator('[data-testid=error]');
  await err.waitFor({ state: 'visible' });
  assert.equal(await err.getAttribute('role'), 'alert');
  const text = await err.innerText();
  assert.match(text, /not (authori[sz]ed|allowed)|AccessDenied|denied|policies/i, `error text: ${text}`);
  await screenshot(page, 'events-access-denied');
  assert.equal(await rows(page).count(), 0);
  // Not "no events": the lookup failed.
  assert.equal(await page.locator('[data-testid=no-events]').isVisible(), false,
    'the empty-result message shows beside the error');
});
