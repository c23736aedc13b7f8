// Every page at laptop and tablet sizes, saved as screenshots under artifacts/ to judge the
// layout; and the Trails and Settings pages.

import assert from 'node:assert/strict';

import {
  suite, signIn, screenshot, pickPreset, waitForRows, rows, openDetails, eventually,
  LAPTOP, TABLET,
} from './harness.js';

const s = suite('pages');

/** Fails if the page scrolls sideways (the layout does not fit the width). */
async function assertNoSidewaysScroll(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client + 1, `${what}: the page is ${scroll}px wide in a ${client}px window`);
}

for (const [label, viewport] of [['laptop', LAPTOP], ['tablet', TABLET]]) {
  s.test(`sign-in, event history and details at ${label} size (${viewport.width}x${viewport.height})`, async () => {
    const page = await s.page(viewport);
    await page.goto(`${s.cairn.endpoint}/signin`);
    await screenshot(page, `signin-${label}`);
    await assertNoSidewaysScroll(page, `sign-in at ${label} size`);
    await signIn(page, s.cairn);
    await pickPreset(page, 'all');
    // The seed scenarios plus Cairn's records of the harness's own calls.
    await eventually(async () => (await rows(page).count()) >= 7, { message: 'the seed events' });
    await page.locator('[data-testid=histogram]').waitFor({ state: 'visible' });
    await screenshot(page, `events-${label}`);
    await screenshot(page, `events-${label}-full`, { fullPage: true });
    await assertNoSidewaysScroll(page, `event history at ${label} size`);

    const kodekloud = rows(page).filter({ has: page.locator('td[data-col=Username]', { hasText: /^kodekloud$/ }) });
    await openDetails(kodekloud.first());
    await screenshot(page, `details-${label}`);
    await assertNoSidewaysScroll(page, `details at ${label} size`);
  });
}

s.test('Trails lists the account\'s trails', async (t) => {
  if (!s.cairn.awsCli()) {
    t.skip('no AWS CLI in .venv to create a trail with (scripts/test makes one)');
    return;
  }
  s.cairn.createTrail('console-trail', 'console-trail-bucket');
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  await page.locator('nav[aria-label=Main]').getByRole('link', { name: 'Trails' }).click();
  await eventually(() => new URL(page.url()).pathname !== '/console/events', { message: 'to leave Event history' });
  await page.getByText('console-trail', { exact: true }).first().waitFor({ state: 'visible' });
  await page.getByText('console-trail-bucket').first().waitFor({ state: 'visible' });
  await screenshot(page, 'trails-laptop');
  await page.setViewportSize(TABLET);
  await screenshot(page, 'trails-tablet');
  await assertNoSidewaysScroll(page, 'trails at tablet size');
  // Back to Event history through the navigation.
  await page.locator('nav[aria-label=Main]').getByRole('link', { name: 'Event history' }).click();
  await eventually(() => new URL(page.url()).pathname === '/console/events', { message: 'back on Event history' });
});

s.test('Settings, for the administrator, shows the account\'s users', async () => {
  assert.ok(s.cairn.adminPassword, 'cairn serve printed no console password for admin');
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn, { user: 'admin', password: s.cairn.adminPassword });
  await page.locator('nav[aria-label=Main]').getByRole('link', { name: 'Settings' }).click();
  await eventually(() => new URL(page.url()).pathname !== '/console/events', { message: 'to leave Event history' });
  await page.getByText('analyst', { exact: true }).first().waitFor({ state: 'visible' });
  await screenshot(page, 'settings-laptop');
  await page.setViewportSize(TABLET);
  await screenshot(page, 'settings-tablet');
  await assertNoSidewaysScroll(page, 'settings at tablet size');
});
