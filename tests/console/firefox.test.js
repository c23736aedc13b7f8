// The console in Firefox (Debian's firefox-esr, driven over WebDriver BiDi by puppeteer-core):
// sign in, answer a seed question with combined filters, read the details, download the CSV
// and sign out.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import puppeteer from 'puppeteer-core';

import {
  ANALYST, ANALYST_PASSWORD, ARTIFACTS, LAPTOP, seededCairn,
} from './harness.js';

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const ROW = 'tr[data-testid=event-row]';

let cairn;
let browser;

before(async () => {
  cairn = await seededCairn('firefox');
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (cairn) await cairn.stop();
});

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `firefox-${name}.png`) });
}

async function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));
}

test('the console works in Firefox: sign-in, filters, details, download, sign-out', { timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  await page.setViewport(LAPTOP);
  await page.goto(`${cairn.endpoint}/console/events?start=all`);
  assert.equal(new URL(page.url()).pathname, '/signin', 'signed out, the console sends to sign-in');
  await page.type('#username', ANALYST);
  await page.type('#password', ANALYST_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/console/events');

  // Question 5: failed console sign-ins of dev-intern, two filters typed by hand.
  for (const [attribute, value] of [['Username', 'dev-intern'], ['EventName', 'ConsoleLogin']]) {
    await page.select('select[data-testid=filter-attribute]', attribute);
    await page.type('input[data-testid=filter-value]', value);
    await page.click('[data-testid=filter-add]');
    await page.waitForFunction(
      (v) => [...document.querySelectorAll('[data-testid=filter-chip]')].some((c) => c.textContent.includes(v)),
      {}, value);
  }
  await page.waitForFunction(
    (sel) => document.querySelectorAll(sel).length === 3
      && [...document.querySelectorAll(`${sel} td[data-col=EventName]`)].every((t) => t.textContent.trim() === 'ConsoleLogin'),
    { timeout: 10_000 }, ROW);
  assert.deepEqual(await texts(page, `${ROW} td[data-col=Username]`), ['dev-intern', 'dev-intern', 'dev-intern']);
  assert.match(page.url(), /f=Username(%3A|:)dev-intern/, 'the filters are in the address');
  await shot(page, 'events');

  // The oldest row is the first failure: its details say so and where it came from.
  const rows = await page.$$(ROW);
  const cellOfLast = await rows[2].$('td[data-col=EventTime]');
  await cellOfLast.click();
  await page.waitForSelector('[data-testid=event-details] dd[data-field=outcome]', { visible: true });
  const outcome = await page.$eval('[data-testid=event-details] dd[data-field=outcome]', (e) => e.textContent);
  const ip = await page.$eval('[data-testid=event-details] dd[data-field=source-ip]', (e) => e.textContent);
  assert.match(outcome, /^Failed/);
  assert.equal(ip.trim(), '203.0.113.9');
  const json = await page.$eval('pre[data-testid=event-json]', (e) => e.textContent);
  assert.equal(JSON.parse(json).errorMessage, 'Failed authentication');
  await shot(page, 'details');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=event-details]', { hidden: true });

  // The CSV download of this view, fetched as the link points it (the session cookie goes
  // with it).
  const href = await page.$eval('[data-testid=download-csv]', (a) => a.href);
  const csv = await page.evaluate(async (url) => (await fetch(url)).text(), href);
  const lines = csv.trim().split(/\r?\n/);
  assert.equal(lines.length, 4, csv);
  assert.ok(lines.slice(1).every((l) => l.includes('ConsoleLogin') && l.includes('dev-intern')), csv);

  // Sign out: the console is closed again.
  await Promise.all([page.waitForNavigation(), page.click('[data-testid=signout]')]);
  assert.equal(new URL(page.url()).pathname, '/signin');
  await page.goto(`${cairn.endpoint}/console/events`);
  assert.equal(new URL(page.url()).pathname, '/signin');
  await page.close();
});
