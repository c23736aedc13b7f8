// Live updates: with a range that ends now, new events appear at the top without a reload.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import {
  suite, signIn, pickPreset, addFilter, rows, eventually, sleep, screenshot, LAPTOP,
} from './harness.js';

const s = suite('live');

const USER = 'live-probe';

function liveEvent(eventName) {
  return {
    eventVersion: '1.08',
    userIdentity: {
      type: 'IAMUser', principalId: 'AIDALIVEPROBE0000001', accountId: '111122223333',
      arn: `arn:aws:iam::111122223333:user/${USER}`, accessKeyId: 'AKIALIVEPROBE0000001', userName: USER,
    },
    eventTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    eventSource: 'ec2.amazonaws.com',
    eventName,
    awsRegion: 'us-east-1',
    sourceIPAddress: '198.51.100.99',
    userAgent: 'aws-cli/2.15.0',
    requestParameters: { instancesSet: { items: [{ instanceId: 'i-0aaaaaaaaaaaaaaaa' }] } },
    responseElements: null,
    requestID: randomUUID(),
    eventID: randomUUID(),
    readOnly: false,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: '111122223333',
    eventCategory: 'Management',
  };
}

/** Imports one event; returns it and how long its row took to show (ms), or null. */
async function ingestAndWatch(page, eventName, waitMs) {
  const ev = liveEvent(eventName);
  s.cairn.importRecords([ev]);
  const t0 = Date.now();
  const row = page.locator(`tr[data-testid=event-row][data-event-id="${ev.eventID}"]`);
  try {
    await row.waitFor({ state: 'attached', timeout: waitMs });
    return { ev, ms: Date.now() - t0 };
  } catch {
    return { ev, ms: null };
  }
}

s.test('new events appear at the top within about a second, and pausing stops them', async (t) => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await pickPreset(page, '15m');
  await addFilter(page, 'Username', USER);
  await page.locator('[data-testid=no-events]').waitFor({ state: 'visible' });
  const status = page.locator('[data-testid=live-status]');
  await eventually(async () => /\bLive\b/.test(await status.innerText()), { message: 'live-status to say Live' });
  // A reload would lose this.
  await page.evaluate(() => { window.__cairnNoReload = 'still here'; });

  const first = await ingestAndWatch(page, 'StopInstances', 2_500);
  assert.ok(first.ms !== null, 'the new event did not appear within 2.5 s');
  t.diagnostic(`first live event shown ${first.ms} ms after its import`);
  assert.equal(await rows(page).count(), 1);
  await page.locator('[data-testid=no-events]').waitFor({ state: 'hidden' });

  await sleep(1_100); // a later eventTime
  const second = await ingestAndWatch(page, 'StartInstances', 2_500);
  assert.ok(second.ms !== null, 'the second new event did not appear within 2.5 s');
  t.diagnostic(`second live event shown ${second.ms} ms after its import`);
  await eventually(async () => (await rows(page).count()) === 2, { message: 'two rows' });
  assert.equal(await rows(page).first().getAttribute('data-event-id'), second.ev.eventID, 'the newest is on top');
  assert.equal(await page.evaluate(() => window.__cairnNoReload), 'still here', 'the page reloaded');
  await screenshot(page, 'events-live');

  // Paused: nothing new comes in.
  await page.click('[data-testid=live-toggle]');
  await eventually(async () => !/^\s*Live\s*$/.test(await status.innerText()), { message: 'live-status to change when paused' });
  t.diagnostic(`paused status reads "${(await status.innerText()).trim()}"`);
  const third = await ingestAndWatch(page, 'RebootInstances', 2_500);
  assert.equal(third.ms, null, 'an event appeared while live updates were paused');
  assert.equal(await rows(page).count(), 2);

  // Resumed: it catches up.
  await page.click('[data-testid=live-toggle]');
  await page.locator(`tr[data-testid=event-row][data-event-id="${third.ev.eventID}"]`).waitFor({ state: 'attached', timeout: 5_000 });
  await eventually(async () => /\bLive\b/.test(await status.innerText()), { message: 'live-status to say Live again' });
  assert.equal(await page.evaluate(() => window.__cairnNoReload), 'still here', 'the page reloaded');
});

s.test('a range that ends in the past is not live', async () => {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await page.click('[data-testid=time-range]');
  await page.fill('input[data-testid=time-start]', '2024-03-14T00:00');
  await page.fill('input[data-testid=time-end]', '2024-03-15T00:00');
  await page.click('[data-testid=time-apply]');
  await eventually(async () => {
    const st = page.locator('[data-testid=live-status]');
    return (await st.count()) === 0 || !(await st.isVisible()) || !/^\s*Live\s*$/.test(await st.innerText());
  }, { message: 'live-status not to say Live for a past range' });
});
