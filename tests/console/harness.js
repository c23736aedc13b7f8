// Harness of the console tests: a real `cairn serve` on a free loopback port with a
// temporary data directory, the seed scenarios imported with `cairn import`, a console user
// made with `cairn admin`, and headless Chromium driven by playwright-core.
//
// Environment:
//   CAIRN_BIN        the cairn binary (default: $CARGO_TARGET_DIR/debug/cairn, else
//                    ~/.cache/cairn-target/debug/cairn)
//   CAIRN_DATASETS   the shared datasets folder (default: <repo>/../shared/datasets)
//   CHROMIUM         the browser (default: /usr/bin/chromium)
//   CAIRN_KEEP_TMP   keep the temporary data directories (for debugging)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const DATASETS = process.env.CAIRN_DATASETS
  ? path.resolve(process.env.CAIRN_DATASETS)
  : path.resolve(REPO_ROOT, '..', 'shared', 'datasets');

export const ACCOUNT_ID = '111122223333';
export const REGION = 'us-east-1';
export const ACCESS_KEY_ID = 'AKIACAIRNCONSOLE0001';
export const SECRET_ACCESS_KEY = 'cairnConsoleTestSecret/0123456789abcdef';
export const ANALYST = 'analyst';
export const ANALYST_PASSWORD = 'Console-test-pw-7d1f9e';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

export function cairnBin() {
  let bin = process.env.CAIRN_BIN;
  if (!bin) {
    const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache', 'cairn-target');
    bin = path.join(target, 'debug', 'cairn');
  }
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`cairn binary not found at ${bin}: build it (cargo build --bin cairn) or set CAIRN_BIN`);
  }
  return bin;
}

export function dataset(name) {
  const file = path.join(DATASETS, name);
  if (!fs.existsSync(file)) {
    throw new Error(`dataset ${file} is missing (shared/ must sit beside the repository, or set CAIRN_DATASETS)`);
  }
  return file;
}

export function readJsonl(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

export function chromiumPath() {
  return process.env.CHROMIUM || '/usr/bin/chromium';
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

export class Cairn {
  constructor(name) {
    this.name = name;
    this.bin = cairnBin();
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `cairn-console-${name}-`));
    this.dataDir = path.join(this.tmp, 'data');
    this.logPath = path.join(this.tmp, 'server.log');
    this.proc = null;
    this.endpoint = null;
    this.adminPassword = null;
    this.imports = 0;
  }

  /** Starts `cairn serve` and waits for its banner and /health. */
  async start() {
    const env = cleanEnv();
    env.CAIRN_ACCESS_KEY_ID = ACCESS_KEY_ID;
    env.CAIRN_SECRET_ACCESS_KEY = SECRET_ACCESS_KEY;
    env.CAIRN_MASTER_KEY_FILE = path.join(this.tmp, 'master.key');
    env.RUST_BACKTRACE = '1';
    const args = ['serve', '--data-dir', this.dataDir, '--listen', '127.0.0.1:0', '--account-id', ACCOUNT_ID];
    const log = fs.openSync(this.logPath, 'a');
    fs.writeSync(log, `===== ${this.bin} ${args.join(' ')} =====\n`);
    const proc = spawn(this.bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));

    let out = '';
    const banner = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner from cairn serve within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const check = () => {
        const endpoint = /API endpoint:\s+(\S+)/.exec(out);
        // The banner ends with the data directory and trail bucket lines.
        if (endpoint && /Trail buckets:.*\n/.test(out)) {
          clearTimeout(timer);
          const pw = /Console password:\s+(\S+)/.exec(out);
          resolve({ endpoint: endpoint[1], password: pw ? pw[1] : null });
        }
      };
      proc.stdout.on('data', (chunk) => {
        fs.writeSync(log, chunk);
        out += chunk.toString('utf8');
        check();
      });
      proc.stderr.on('data', (chunk) => fs.writeSync(log, chunk));
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`cairn serve exited (${code ?? signal}) before it was ready\n${this.logTail()}`));
      });
    });
    const { endpoint, password } = await banner;
    this.endpoint = endpoint.replace(/\/$/, '');
    this.adminPassword = password;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        const r = await fetch(`${this.endpoint}/health`);
        await r.arrayBuffer();
        if (r.status === 200) break;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`/health did not answer 200\n${this.logTail()}`);
      await sleep(100);
    }
    return this;
  }

  /** SIGTERM, then SIGKILL after 10 s. Removes the temporary directory. */
  async stop() {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS); });
      const how = await Promise.race([this.exited, timeout]);
      clearTimeout(timer);
      if (how === 'timeout') {
        proc.kill('SIGKILL');
        await this.exited;
      }
    }
    if (!process.env.CAIRN_KEEP_TMP) {
      fs.rmSync(this.tmp, { recursive: true, force: true });
    } else {
      console.log(`# kept ${this.tmp}`);
    }
  }

  logTail(lines = 60) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no server log)';
    }
  }

  /** Runs the cairn command against this server with the administrator's key. */
  cli(args, { input, check = true } = {}) {
    const env = cleanEnv();
    Object.assign(env, {
      AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
      AWS_REGION: REGION,
      CAIRN_ENDPOINT_URL: this.endpoint,
      XDG_STATE_HOME: path.join(this.tmp, 'state'),
    });
    const r = spawnSync(this.bin, args, { env, input, encoding: 'utf8', timeout: 120_000 });
    if (check && r.status !== 0) {
      throw new Error(`cairn ${args.join(' ')} failed (${r.status ?? r.signal})\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  }

  /** `cairn import` of a file. */
  importFile(file) {
    this.imports += 1;
    const state = path.join(this.tmp, 'state', `import-${this.imports}.done`);
    return this.cli(['import', '--quiet', '--state', state, file]);
  }

  /** Writes the records as a JSONL file in the temporary directory and imports it. */
  importRecords(records) {
    const file = path.join(this.tmp, `records-${this.imports + 1}.jsonl`);
    fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return this.importFile(file);
  }

  importSeed() {
    return this.importFile(dataset('seed-scenarios.jsonl'));
  }

  /** A console user with a known password. */
  createUser(name, password, policy = 'AWSCloudTrail_ReadOnlyAccess') {
    this.cli(['admin', 'create-user', name, ...(policy ? ['--policy', policy] : [])]);
    this.cli(['admin', 'set-password', name, '--password-stdin'], { input: password });
  }

  /** The AWS CLI of the repository's virtualenv, if there is one. */
  awsCli() {
    const bin = path.join(REPO_ROOT, '.venv', 'bin', 'aws');
    return fs.existsSync(bin) ? bin : null;
  }

  aws(args) {
    const bin = this.awsCli();
    assert.ok(bin, 'no AWS CLI in .venv');
    const env = cleanEnv();
    Object.assign(env, {
      AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
      AWS_DEFAULT_REGION: REGION,
      AWS_CONFIG_FILE: os.devNull,
      AWS_SHARED_CREDENTIALS_FILE: os.devNull,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PAGER: '',
    });
    const r = spawnSync(bin, [...args, '--endpoint-url', this.endpoint, '--region', REGION, '--output', 'json'],
      { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`aws ${args.join(' ')} failed (${r.status})\n${r.stdout}\n${r.stderr}`);
    return r.stdout.trim() ? JSON.parse(r.stdout) : {};
  }

  /** A trail writing to a folder bucket of this server. */
  createTrail(name, bucket) {
    fs.mkdirSync(path.join(this.dataDir, 'buckets', bucket), { recursive: true });
    return this.aws(['cloudtrail', 'create-trail', '--name', name, '--s3-bucket-name', bucket]);
  }
}

/** The environment without any AWS profile, config or endpoint of the machine. */
function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('AWS_') || k.startsWith('CAIRN_ENDPOINT')) delete env[k];
  }
  env.AWS_CONFIG_FILE = os.devNull;
  env.AWS_SHARED_CREDENTIALS_FILE = os.devNull;
  return env;
}

/** A server with the seed scenarios and the analyst user, ready for a test file. */
export async function seededCairn(name) {
  const cairn = new Cairn(name);
  try {
    await cairn.start();
    const r = cairn.importSeed();
    assert.match(r.stdout + r.stderr, /7/, `seed import: ${r.stdout}${r.stderr}`);
    cairn.createUser(ANALYST, ANALYST_PASSWORD);
  } catch (e) {
    await cairn.stop();
    throw e;
  }
  return cairn;
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

export const LAPTOP = { width: 1366, height: 768 };
export const TABLET = { width: 820, height: 1180 };

export async function launch() {
  return chromium.launch({ executablePath: chromiumPath(), headless: true });
}

/** A new browser context and page; console errors and failed requests are collected. */
export async function newPage(browser, viewport = LAPTOP, { downloads = false } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: downloads, timezoneId: 'UTC', locale: 'en-GB' });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => page.consoleErrors.push(`pageerror: ${e.message}`));
  return page;
}

/** Signs in on /signin (optionally with ?next=...) as a person would. */
export async function signIn(page, cairn, { user = ANALYST, password = ANALYST_PASSWORD, next } = {}) {
  const url = `${cairn.endpoint}/signin${next ? `?next=${encodeURIComponent(next)}` : ''}`;
  await page.goto(url);
  await page.fill('#account', ACCOUNT_ID);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
}

export async function screenshot(page, name, { fullPage = false } = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // Let a histogram that is being counted again finish, so the picture shows it drawn.
  await page.getByText(/Counting events/).first().waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => {});
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

// ---------------------------------------------------------------------------------------------
// Event history helpers
// ---------------------------------------------------------------------------------------------

export const ROWS = 'tr[data-testid=event-row]';

export function rows(page) {
  return page.locator(ROWS);
}

/** Opens the time range menu and picks a preset (15m, 1h, 24h, 7d, 30d, 90d, all). */
export async function pickPreset(page, preset) {
  await page.click('[data-testid=time-range]');
  await page.click(`[data-testid=preset-${preset}]`);
}

/** Sets an absolute UTC range; start and end as `YYYY-MM-DDTHH:MM`. */
export async function pickRange(page, start, end) {
  await page.click('[data-testid=time-range]');
  await page.fill('input[data-testid=time-start]', start);
  await page.fill('input[data-testid=time-end]', end);
  await page.click('[data-testid=time-apply]');
}

/** Picks an attribute, types a value and adds the filter (with the button, or Enter). */
export async function addFilter(page, attribute, value, { enter = false } = {}) {
  await page.selectOption('select[data-testid=filter-attribute]', attribute);
  const input = page.locator('input[data-testid=filter-value]');
  await input.fill(value);
  if (enter) await input.press('Enter');
  else await page.click('[data-testid=filter-add]');
}

/** Waits until the table shows exactly `n` rows (and no more loading), returns the rows. */
export async function waitForRows(page, n, { timeout = 10_000, where } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    const loc = where ? rows(page).filter(where) : rows(page);
    last = await loc.count();
    if (last === n) {
      // Stable for a moment: a refresh may still be on its way.
      await sleep(250);
      if ((await loc.count()) === n) return loc;
    }
    if (Date.now() > deadline) {
      const texts = await rows(page).allInnerTexts().catch(() => []);
      const err = await page.locator('[data-testid=error]').allInnerTexts().catch(() => []);
      throw new Error(`expected ${n} event rows, saw ${last}\nrows: ${JSON.stringify(texts.slice(0, 12))}\nerrors: ${JSON.stringify(err)}\nurl: ${page.url()}`);
    }
    await sleep(100);
  }
}

/** The text of a row's cell by column id. */
export async function cell(row, col) {
  return (await row.locator(`td[data-col=${col}]`).innerText()).trim();
}

/** The row's cells as an object by column id (only the columns shown). */
export async function rowValues(row) {
  return row.evaluate((tr) => {
    const out = {};
    for (const td of tr.querySelectorAll('td[data-col]')) out[td.dataset.col] = td.innerText.trim();
    out.eventId = tr.dataset.eventId;
    return out;
  });
}

export async function detailField(page, field) {
  return (await page.locator(`[data-testid=event-details] dd[data-field=${field}]`).innerText()).trim();
}

/** Clicks a row where it shows no value button (those add filters): the left edge of its
 * first cell. */
export async function openDetails(row) {
  const box = await row.boundingBox();
  await row.click({ position: { x: 6, y: box.height / 2 } });
  const details = row.page().locator('[data-testid=event-details]');
  await details.waitFor({ state: 'visible' });
  return details;
}

export async function closeDetails(page, { escape = true } = {}) {
  if (escape) await page.keyboard.press('Escape');
  else await page.click('[data-testid=details-close]');
  await page.locator('[data-testid=event-details]').waitFor({ state: 'hidden' });
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually(fn, { timeout = 10_000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${message}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await sleep(interval);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Parses RFC 4180 CSV. */
export function parseCsv(text) {
  const rowsOut = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rowsOut.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rowsOut.push(row);
  }
  return rowsOut;
}

/**
 * One test file's fixture: a seeded server and a browser, started before the file's tests and
 * stopped after them. `s.test` wraps `node:test`'s test: pages opened with `s.page()` are
 * closed after the test, and on failure a screenshot of each is saved under artifacts/ and
 * the browser's console errors and the server log's tail are added to the error.
 */
export function suite(name, { seed = true } = {}) {
  const s = { name, cairn: null, browser: null, pages: [] };
  before(async () => {
    s.cairn = seed ? await seededCairn(name) : await new Cairn(name).start();
    s.browser = await launch();
  });
  after(async () => {
    if (s.browser) await s.browser.close().catch(() => {});
    if (s.cairn) await s.cairn.stop();
  });
  s.page = async (viewport = LAPTOP, opts = {}) => {
    const p = await newPage(s.browser, viewport, opts);
    s.pages.push(p);
    return p;
  };
  s.test = (title, opts, fn) => {
    if (typeof opts === 'function') {
      fn = opts;
      opts = {};
    }
    return test(title, { timeout: 120_000, ...opts }, async (t) => {
      s.pages = [];
      try {
        await fn(t);
      } catch (e) {
        const slug = title.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
        const notes = [];
        for (let i = 0; i < s.pages.length; i++) {
          const p = s.pages[i];
          if (p.isClosed()) continue;
          await screenshot(p, `FAILED-${name}-${slug}${i ? `-${i}` : ''}`, { fullPage: true }).catch(() => {});
          notes.push(`page ${i} url: ${p.url()}`);
          if (p.consoleErrors?.length) notes.push(`page ${i} console errors: ${p.consoleErrors.slice(0, 10).join(' | ')}`);
        }
        if (s.cairn) notes.push(`--- server log tail ---\n${s.cairn.logTail(20)}`);
        if (e && typeof e === 'object' && typeof e.message === 'string') {
          try {
            e.message += `\n${notes.join('\n')}`;
          } catch {
            // read-only message
          }
        }
        throw e;
      } finally {
        for (const p of s.pages) await p.context().close().catch(() => {});
        s.pages = [];
      }
    });
  };
  return s;
}
