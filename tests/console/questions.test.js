// The five questions of shared/datasets/README.md ("The questions the seed scenarios must
// answer"), answered in the browser by filtering Event history and reading event details.

import assert from 'node:assert/strict';

import {
  suite, signIn, screenshot, pickPreset, pickRange, addFilter, waitForRows, rows, cell,
  rowValues, openDetails, closeDetails, detailField, eventually, LAPTOP,
} from './harness.js';

const s = suite('questions');

async function eventHistory() {
  const page = await s.page(LAPTOP);
  await signIn(page, s.cairn);
  assert.equal(new URL(page.url()).pathname, '/console/events');
  // The seed scenarios happened in 2020-2024.
  await pickPreset(page, 'all');
  return page;
}

async function chipTexts(page) {
  return (await page.locator('[data-testid=filter-chip]').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
}

const TIME = (d, t) => new RegExp(`${d}[ T]${t}`);

s.test('Q1: who deleted the cat photo database, when, from where, in which region', async () => {
  const page = await eventHistory();
  await addFilter(page, 'ResourceName', 'cat-photos-db');
  const chips = await chipTexts(page);
  assert.equal(chips.length, 1);
  assert.match(chips[0], /^Resource\s*name: cat-photos-db/i, `chip text "${chips[0]}"`);
  const row = (await waitForRows(page, 1)).first();
  assert.equal(await cell(row, 'EventName'), 'DeleteDBInstance');
  assert.equal(await cell(row, 'Username'), 'alana');
  assert.equal(await row.getAttribute('data-event-id'), '0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f');

  await openDetails(row);
  assert.equal(await detailField(page, 'username'), 'alana');
  assert.equal(await detailField(page, 'event-name'), 'DeleteDBInstance');
  assert.equal(await detailField(page, 'source-ip'), '205.251.233.48');
  assert.equal(await detailField(page, 'region'), 'us-west-2');
  assert.match(await detailField(page, 'event-time'), TIME('2020-06-09', '13:37:34'));
  assert.match(await detailField(page, 'event-source'), /rds\.amazonaws\.com/);
  assert.equal(await detailField(page, 'access-key'), 'AKIAIOSFODNN7EXAMPLE');
  assert.match(await detailField(page, 'arn'), /arn:aws:iam::111122223333:user\/alana/);
  assert.match(await detailField(page, 'resources'), /cat-photos-db/);
  assert.match(await detailField(page, 'outcome'), /^Succeeded/);
  const json = JSON.parse(await page.locator('pre[data-testid=event-json]').innerText());
  assert.equal(json.eventID, '0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f');
  assert.equal(json.responseElements.dBInstanceStatus, 'deleting');
  await screenshot(page, 'details-q1-laptop');
  // Copy JSON puts the whole record on the clipboard.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.cairn.endpoint });
  await page.click('[data-testid=copy-json]');
  const copied = await eventually(async () => {
    const text = await page.evaluate(() => navigator.clipboard.readText());
    return text.includes('cat-photos-db') ? text : null;
  }, { message: 'the record on the clipboard' });
  assert.deepEqual(JSON.parse(copied), json);
  await closeDetails(page, { escape: false });

  // The same answer by resource type and by event name.
  await page.click('[data-testid=filter-chip-remove]');
  await eventually(async () => (await page.locator('[data-testid=filter-chip]').count()) === 0, { message: 'the chip to go' });
  await addFilter(page, 'ResourceType', 'AWS::RDS::DBInstance');
  assert.equal(await cell((await waitForRows(page, 1)).first(), 'Username'), 'alana');
  await page.click('[data-testid=filter-chip-remove]');
  await addFilter(page, 'EventName', 'DeleteDBInstance', { enter: true });
  assert.equal(await cell((await waitForRows(page, 1)).first(), 'Username'), 'alana');
});

s.test('Q2: who created the IAM user Mary, when and how', async () => {
  const page = await eventHistory();
  await addFilter(page, 'EventName', 'CreateUser');
  // Cairn's own record of the harness creating the analyst user is a CreateUser too.
  const john = rows(page).filter({ has: page.locator('td[data-col=Username]', { hasText: /^John$/ }) });
  await eventually(async () => (await john.count()) === 1, { message: 'a CreateUser row by John' });
  for (const r of await rows(page).all()) assert.equal(await cell(r, 'EventName'), 'CreateUser');
  await openDetails(john.first());
  assert.equal(await detailField(page, 'username'), 'John');
  assert.match(await detailField(page, 'arn'), /arn:aws:iam::111122223333:user\/John/);
  assert.match(await detailField(page, 'identity-type'), /IAMUser/);
  assert.match(await detailField(page, 'event-time'), TIME('2020-01-01', '09:00:00'));
  assert.equal(await detailField(page, 'user-agent'), 'console.amazonaws.com');
  assert.match(await detailField(page, 'resources'), /Mary/);
  const text = await page.locator('pre[data-testid=event-json]').innerText();
  const json = JSON.parse(text);
  assert.equal(json.sessionCredentialFromConsole, 'true');
  assert.equal(json.userAgent, 'console.amazonaws.com');
  assert.equal(json.requestParameters.userName, 'Mary');
  await closeDetails(page);

  // Narrowed to the day, John's is the only one.
  await pickRange(page, '2020-01-01T00:00', '2020-01-02T00:00');
  assert.equal(await cell((await waitForRows(page, 1)).first(), 'Username'), 'John');
});

s.test('Q3: what kodekloud launched, with which key pair and security group', async () => {
  const page = await eventHistory();
  await addFilter(page, 'Username', 'kodekloud', { enter: true });
  const row = (await waitForRows(page, 1)).first();
  assert.equal(await cell(row, 'EventName'), 'RunInstances');
  await openDetails(row);
  assert.match(await detailField(page, 'event-time'), TIME('2023-10-08', '17:50:24'));
  // The key pair is in the request; the instance and its security group in the response.
  const req = await page.locator('pre[data-testid=request-parameters]').innerText();
  assert.match(req, /Ohio-Key/);
  const resp = await page.locator('pre[data-testid=response-elements]').innerText();
  assert.match(resp, /i-0123456789abcdef0/);
  assert.match(resp, /Webserver_SG/);
  // Shown whole: the blocks are the record's JSON.
  const json = JSON.parse(await page.locator('pre[data-testid=event-json]').innerText());
  assert.deepEqual(JSON.parse(req), json.requestParameters);
  assert.deepEqual(JSON.parse(resp), json.responseElements);
  await screenshot(page, 'details-q3-laptop');
});

s.test('Q4: who deleted 2024/whiskers.jpg from the cat-photos bucket', async () => {
  const page = await eventHistory();
  await addFilter(page, 'ResourceName', '2024/whiskers.jpg');
  let row = (await waitForRows(page, 1)).first();
  assert.equal(await cell(row, 'EventName'), 'DeleteObject');
  assert.equal(await cell(row, 'Username'), 'dev-intern');
  await page.click('[data-testid=filter-chip-remove]');
  await addFilter(page, 'ResourceType', 'AWS::S3::Object');
  row = (await waitForRows(page, 1)).first();
  assert.equal(await cell(row, 'EventName'), 'DeleteObject');
  assert.equal(await cell(row, 'Username'), 'dev-intern');
  await openDetails(row);
  assert.match(await detailField(page, 'resources'), /whiskers\.jpg/);
  assert.match(await detailField(page, 'event-source'), /s3\.amazonaws\.com/);
  const json = JSON.parse(await page.locator('pre[data-testid=event-json]').innerText());
  assert.equal(json.eventCategory, 'Data');
  assert.equal(json.requestParameters.key, '2024/whiskers.jpg');
});

s.test('Q5: failed console sign-ins for dev-intern, and from where', async () => {
  const page = await eventHistory();
  await addFilter(page, 'Username', 'dev-intern');
  // dev-intern: three ConsoleLogin and the DeleteObject.
  await waitForRows(page, 4);
  // Clicking a value in the table adds it as a filter.
  const login = rows(page).filter({ has: page.locator('td[data-col=EventName]', { hasText: 'ConsoleLogin' }) }).first();
  await login.locator('td[data-col=EventName] button[data-testid=cell-filter]').click();
  if (await page.locator('[data-testid=event-details]').isVisible()) await closeDetails(page);
  const chips = await chipTexts(page);
  assert.equal(chips.length, 2, `chips: ${JSON.stringify(chips)}`);
  assert.ok(chips.some((c) => /^Event\s*name: ConsoleLogin/i.test(c)), `chips: ${JSON.stringify(chips)}`);
  assert.ok(chips.some((c) => /^User\s*name: dev-intern/i.test(c)), `chips: ${JSON.stringify(chips)}`);
  const found = await waitForRows(page, 3);
  const seen = [];
  for (const r of await found.all()) {
    const v = await rowValues(r);
    assert.equal(v.EventName, 'ConsoleLogin');
    assert.equal(v.Username, 'dev-intern');
    await openDetails(r);
    seen.push({ ip: await detailField(page, 'source-ip'), outcome: await detailField(page, 'outcome'), id: v.eventId, cellIp: v.SourceIpAddress });
    await closeDetails(page);
  }
  seen.sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(seen.map((x) => x.id), [
    'c0ffee00-0000-4000-8000-000000000001',
    'c0ffee00-0000-4000-8000-000000000002',
    'c0ffee00-0000-4000-8000-000000000003',
  ]);
  for (const x of seen.slice(0, 2)) {
    assert.equal(x.ip, '203.0.113.9');
    assert.match(x.outcome, /^Failed/, `outcome of a failed sign-in: "${x.outcome}"`);
    assert.match(x.outcome, /Failed authentication/);
  }
  assert.equal(seen[2].ip, '192.0.2.77');
  assert.match(seen[2].outcome, /^Succeeded/);
  // Newest first: the success is on top.
  assert.equal(await rows(page).first().getAttribute('data-event-id'), 'c0ffee00-0000-4000-8000-000000000003');
  if (seen.every((x) => x.cellIp !== undefined)) {
    assert.deepEqual(seen.map((x) => x.cellIp), ['203.0.113.9', '203.0.113.9', '192.0.2.77']);
  }
});
