"""CloudTrail Insights end to end: `cairn serve` watching the events it stores for unusual API
call and error rates, and the Start and End insight events it records, checked with the real
AWS CLI and boto3.

The workloads run in accelerated time: whole timelines in the past (ending hours ago), ingested
in time order through `POST /v1/events`, so later events move each API's clock forward and
settle the minutes behind them. They are the shapes of the engine's own tests
(crates/cairn-insights/tests/insights.rs):

- a steady week of RunInstances at ~0.1 a minute, then a burst of 40 a minute for 6 minutes by
  one user with a distinctive user agent: one Start, one End, the record shape of the spec
  (section 5.2) field by field, the attributions naming the burst's user and the usual one;
- an AccessDenied storm on GetBucketPolicy: an error-rate insight with its errorCode;
- nine days of ordinary noise with daily peaks on several APIs: no insight at all;
- a restart (SIGTERM and SIGKILL) in the middle of an insight: one Start, then the End with the
  same sharedEventID;
- PutInsightSelectors / GetInsightSelectors on trails and event data stores, and when insight
  events are made at all (a logging trail covering the region, or a store with selectors);
- delivery of the Start and End to the trail's bucket under `CloudTrail-Insight/`,
  LookupEvents filters, SQL over an Insights event data store and the default store;
- ListInsightsMetricData, the counts Insights judge;
- a recent burst judged by the wall clock, an old one left open until later calls come, one
  series per error code, a lull inside an insight, an insight closed after StopLogging,
  data-event Insights, two accounts;
- `--insights-sensitivity`, `--insights-min-history`, `--no-insights`.

Each region of an account is a separate history, so one server holds several workloads, one
region each. The insights consumer reads the journal in order: once the insight of the last
workload ingested is there, every workload before it has been judged too."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import signal
import subprocess
import time
import uuid
import zlib

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import (_LIVE, ACCESS_KEY_ID, ACCOUNT_ID, OTHER_ACCESS_KEY_ID, OTHER_ACCOUNT_ID,
                      OTHER_SECRET_ACCESS_KEY, SECRET_ACCESS_KEY, Cairn, CairnServer, cairn_bin,
                      epoch, parse_record, start_server, stop_server)

MINUTE = 60
HOUR = 3600
DAY = 86400
WEEK_MINUTES = 7 * 24 * 60

OPS = f"arn:aws:iam::{ACCOUNT_ID}:user/ops"
OPS_AGENT = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.ubuntu.22"
MINER = f"arn:aws:iam::{ACCOUNT_ID}:user/miner"
MINER_AGENT = "xmrig-deployer/1.0 (cairn acceptance)"
INTRUDER = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/intruder/session-7"
INTRUDER_AGENT = "python-requests/2.31.0"

BOTH = json.dumps([{"InsightType": "ApiCallRateInsight"}, {"InsightType": "ApiErrorRateInsight"}])
CALLS_ONLY = json.dumps([{"InsightType": "ApiCallRateInsight"}])
INSIGHTS_STORE_SELECTORS = json.dumps([
    {"Name": "Insights", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Insight"]}]}])

INSIGHT_KEY = re.compile(
    r"^AWSLogs/(?P<account>\d{12})/CloudTrail-Insight/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P=account)_CloudTrail-Insight_(?P=region)_"
    r"(?P<stamp>\d{8}T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$")

TOP_LEVEL = {"eventVersion", "eventTime", "awsRegion", "eventID", "eventType",
             "recipientAccountId", "sharedEventID", "insightDetails", "eventCategory"}
DONE = ("FINISHED", "FAILED", "CANCELLED", "TIMED_OUT")

# The burst minute of the accelerated workloads: on the hour, three hours ago, so that every
# timeline (burst, then a quarter of an hour of ordinary calls) ends well over an hour before
# now and nothing is judged by the wall clock.
BURST_AT = (int(time.time()) // HOUR - 3) * HOUR


# --------------------------------------------------------------------------------------------
# Timelines of API calls
# --------------------------------------------------------------------------------------------

def iso_z(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Timeline:
    """API calls of one account, each at a whole second of event time, in the order they are
    ingested (by time; calls of the same second keep the order they were added in)."""

    def __init__(self, tag: str, account: str = ACCOUNT_ID):
        self.tag = tag
        self.account = account
        self.calls: list[tuple[int, int, dict]] = []

    def call(self, t: float, region: str, source: str, name: str, *, user: str = OPS,
             agent: str = OPS_AGENT, read_only: bool = False, error: str | None = None,
             data: bool = False) -> dict:
        n = len(self.calls)
        identity = {"type": "AssumedRole" if ":assumed-role/" in user else "IAMUser",
                    "principalId": "AIDACAIRNINSIGHTS0001", "arn": user,
                    "accountId": self.account}
        if identity["type"] == "IAMUser":
            identity["userName"] = user.rsplit("/", 1)[-1]
        record = {
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": iso_z(t),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": "198.51.100.7",
            "userAgent": agent,
            "requestParameters": None,
            "responseElements": None,
            "requestID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"req/{self.tag}/{n}")),
            "eventID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cairn-insights/{self.tag}/{n}")),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": self.account,
            "eventCategory": "Management",
        }
        if data:
            record.update(eventCategory="Data", managementEvent=False, resources=[
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::cat-photos/{n}.jpg"},
                {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::cat-photos"}])
            record["requestParameters"] = {"bucketName": "cat-photos", "key": f"{n}.jpg"}
        if error:
            record["errorCode"] = error
            record["errorMessage"] = "User is not authorized to perform this operation"
        self.calls.append((int(t), n, record))
        return record

    def noise(self, rng: random.Random, start: int, minutes: int, rate: float, region: str,
              source: str, name: str, *, peak: tuple[float, int, int] | None = None,
              weekend: float = 1.0, skip: tuple[int, int] | None = None, **kw) -> None:
        """Poisson calls minute by minute: `rate` a minute, times `peak[0]` in the hours of day
        [peak[1], peak[2]), times `weekend` on days 5 and 6 of each week of the timeline;
        none in the [skip[0], skip[1]) interval."""
        for m in range(minutes):
            t0 = start + m * MINUTE
            if skip and skip[0] <= t0 < skip[1]:
                continue
            mean = rate
            hour = (t0 // HOUR) % 24
            if peak and peak[1] <= hour < peak[2]:
                mean *= peak[0]
            if ((t0 - start) // DAY) % 7 in (5, 6):
                mean *= weekend
            for _ in range(poisson(rng, mean)):
                self.call(t0 + rng.randrange(MINUTE), region, source, name, **kw)

    def burst(self, start: int, minutes: int, per_minute: int, region: str, source: str,
              name: str, **kw) -> None:
        for m in range(minutes):
            for k in range(per_minute):
                self.call(start + m * MINUTE + (k * MINUTE) // per_minute, region, source,
                          name, **kw)

    def records(self) -> list[dict]:
        return [r for _, _, r in sorted(self.calls, key=lambda c: (c[0], c[1]))]

    def __len__(self) -> int:
        return len(self.calls)


def ingest_timeline(c: Cairn, timeline: Timeline, *, batch: int = 500,
                    until: float | None = None, after: float | None = None,
                    keys: tuple[str, str] | None = None) -> int:
    """Ingests the timeline's calls in time order (only those before `until` / at or after
    `after`, when given), a few hundred records a request."""
    records = [r for r in timeline.records()
               if (until is None or epoch(r["eventTime"]) < until)
               and (after is None or epoch(r["eventTime"]) >= after)]
    for i in range(0, len(records), batch):
        chunk = records[i:i + batch]
        creds = {"access_key": keys[0], "secret_key": keys[1]} if keys else {}
        answer = c.ingest(chunk, **creds)
        assert answer.get("stored") == len(chunk), answer
    return len(records)


def steady_week_then_burst(tl: Timeline, region: str, *, seed: int, burst_at: int = BURST_AT,
                           history: int = 8 * DAY, rate: float = 0.1, per_minute: int = 40,
                           minutes: int = 6) -> dict:
    """`history` seconds of RunInstances by `ops` at ~`rate` a minute (and CreateUser beside
    it), then `per_minute` RunInstances a minute by `miner` for `minutes` minutes, then a
    quarter of an hour of the ordinary calls again (with a few calls at fixed times, so the
    minutes after the burst are surely settled)."""
    rng = random.Random(seed)
    start = burst_at - history
    end = burst_at + minutes * MINUTE
    # The account's first event in the region, at a known time.
    tl.call(start, region, "ec2.amazonaws.com", "RunInstances")
    span = (history + (minutes + 15) * MINUTE) // MINUTE
    tl.noise(rng, start + MINUTE, span - 1, rate, region, "ec2.amazonaws.com", "RunInstances",
             skip=(burst_at, end))
    tl.noise(rng, start, span, 0.05, region, "iam.amazonaws.com", "CreateUser")
    tl.burst(burst_at, minutes, per_minute, region, "ec2.amazonaws.com", "RunInstances",
             user=MINER, agent=MINER_AGENT)
    for k in range(1, 6):
        tl.call(end + k * 3 * MINUTE + 10, region, "ec2.amazonaws.com", "RunInstances")
    window = [r for _, _, r in tl.calls
              if r["awsRegion"] == region and r["eventName"] == "RunInstances"
              and burst_at - WEEK_MINUTES * MINUTE <= epoch(r["eventTime"]) < burst_at]
    return {"region": region, "burst_at": burst_at, "end": end, "minutes": minutes,
            "per_minute": per_minute, "history_minutes": history // MINUTE,
            "window_calls": len(window)}


def access_denied_storm(tl: Timeline, region: str, *, seed: int, storm_at: int = BURST_AT,
                        minutes: int = 4, per_minute: int = 60) -> dict:
    """A week and a day of GetBucketPolicy reads (~0.3 a minute, ~0.05 a minute of them
    AccessDenied), then `per_minute` AccessDenied a minute by an assumed role for `minutes`
    minutes."""
    rng = random.Random(seed)
    start = storm_at - 8 * DAY
    end = storm_at + minutes * MINUTE
    span = (8 * DAY + (minutes + 15) * MINUTE) // MINUTE
    tl.call(start, region, "s3.amazonaws.com", "GetBucketPolicy", read_only=True)
    tl.noise(rng, start + MINUTE, span - 1, 0.3, region, "s3.amazonaws.com", "GetBucketPolicy",
             read_only=True, peak=(2.0, 9, 11))
    tl.noise(rng, start + MINUTE, span - 1, 0.05, region, "s3.amazonaws.com", "GetBucketPolicy",
             read_only=True, error="AccessDenied", skip=(storm_at, end))
    tl.burst(storm_at, minutes, per_minute, region, "s3.amazonaws.com", "GetBucketPolicy",
             read_only=True, error="AccessDenied", user=INTRUDER, agent=INTRUDER_AGENT)
    for k in range(1, 6):
        tl.call(end + k * 3 * MINUTE + 20, region, "s3.amazonaws.com", "GetBucketPolicy",
                read_only=True)
    return {"region": region, "storm_at": storm_at, "end": end, "minutes": minutes}


def planted_burst(tl: Timeline, region: str, at: int, source: str, name: str, *,
                  minutes: int = 3, per_minute: int = 30) -> dict:
    """`per_minute` calls a minute for `minutes` minutes by the miner, then a few calls of the
    usual user so that the minutes after it are settled."""
    tl.burst(at, minutes, per_minute, region, source, name, user=MINER, agent=MINER_AGENT)
    end = at + minutes * MINUTE
    for k in range(1, 6):
        tl.call(end + k * 3 * MINUTE + 30, region, source, name)
    return {"region": region, "at": at, "end": end, "source": source, "name": name,
            "minutes": minutes, "per_minute": per_minute}


def small_burst(tl: Timeline, region: str, *, seed: int, burst_at: int = BURST_AT) -> dict:
    """A week and a day of RunInstances at ~0.2 a minute, then exactly 5 a minute for 3
    minutes: unusual for the high sensitivity, not for the medium one."""
    rng = random.Random(seed)
    start = burst_at - 8 * DAY
    end = burst_at + 3 * MINUTE
    tl.call(start, region, "ec2.amazonaws.com", "RunInstances")
    tl.noise(rng, start + MINUTE, (8 * DAY + 15 * MINUTE) // MINUTE - 1, 0.2, region,
             "ec2.amazonaws.com", "RunInstances", skip=(burst_at, end))
    tl.burst(burst_at, 3, 5, region, "ec2.amazonaws.com", "RunInstances", user=MINER,
             agent=MINER_AGENT)
    for k in range(1, 6):
        tl.call(end + k * 3 * MINUTE + 10, region, "ec2.amazonaws.com", "RunInstances")
    return {"region": region, "burst_at": burst_at, "end": end}


def short_history_then_burst(tl: Timeline, region: str, *, seed: int,
                             burst_at: int = BURST_AT, history: int = 2 * HOUR) -> dict:
    """The same burst after only `history` of ordinary calls."""
    return steady_week_then_burst(tl, region, seed=seed, burst_at=burst_at, history=history)


# The quiet account: (source, name, calls a minute, peak (factor, from hour, to hour) or None,
# weekend factor, read-only, error code).
QUIET_APIS = [
    ("ec2.amazonaws.com", "RunInstances", 0.25, (4.0, 9, 11), 1.0, False, None),
    ("ec2.amazonaws.com", "TerminateInstances", 0.1, (3.0, 17, 19), 0.5, False, None),
    ("ec2.amazonaws.com", "CreateTags", 0.4, (2.5, 9, 12), 1.0, False, None),
    ("iam.amazonaws.com", "CreateUser", 0.02, None, 1.0, False, None),
    ("iam.amazonaws.com", "AttachRolePolicy", 0.05, (5.0, 14, 15), 1.0, False, None),
    ("s3.amazonaws.com", "PutBucketPolicy", 0.03, None, 1.0, False, None),
    ("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", 0.3, (3.0, 10, 12), 0.3, False,
     None),
    ("kms.amazonaws.com", "Decrypt", 0.3, (2.0, 8, 18), 1.0, True, None),
    ("kms.amazonaws.com", "Decrypt", 0.04, (2.0, 8, 18), 1.0, True, "ThrottlingException"),
    ("sts.amazonaws.com", "AssumeRole", 0.3, (2.0, 8, 18), 0.5, False, None),
    ("sts.amazonaws.com", "AssumeRole", 0.02, None, 1.0, False, "AccessDenied"),
]
QUIET_DAYS = 9


def quiet_days(tl: Timeline, region: str, *, seed: int) -> dict:
    """Nine days of ordinary activity on several APIs, with daily peaks at fixed hours and
    quieter weekends, ending on the last midnight at least two hours ago (so the same calls
    fall on the same hours of day on every run)."""
    rng = random.Random(seed)
    end = (int(time.time()) - 2 * HOUR) // DAY * DAY
    start = end - QUIET_DAYS * DAY
    minutes = QUIET_DAYS * 24 * 60
    first = len(tl.calls)
    for i, (source, name, rate, peak, weekend, ro, error) in enumerate(QUIET_APIS):
        user = f"arn:aws:iam::{ACCOUNT_ID}:user/user{i % 4}"
        tl.noise(rng, start, minutes, rate, region, source, name, peak=peak, weekend=weekend,
                 read_only=ro, error=error, user=user)
    # Series the detector keeps: write calls per API, and calls per API and error code.
    series: dict[tuple, set[int]] = {}
    for t, _, r in tl.calls[first:]:
        api = (r["eventSource"], r["eventName"])
        if not r["readOnly"]:
            series.setdefault(api + ("calls",), set()).add(t // MINUTE)
        if r.get("errorCode"):
            series.setdefault(api + (r["errorCode"],), set()).add(t // MINUTE)
    # Minutes that can be judged: those with calls, after a day of history, and before the
    # last two minutes of each API (nothing later settles them).
    first_minute = start // MINUTE
    last = {}
    for t, _, r in tl.calls[first:]:
        api = (r["eventSource"], r["eventName"])
        last[api] = max(last.get(api, 0), t // MINUTE)
    judged = sum(len([m for m in minutes_ if m >= first_minute + 1440
                      and m < last[key[:2]] - 2]) for key, minutes_ in series.items())
    return {"region": region, "start": start, "end": end, "calls": len(tl.calls) - first,
            "series": len(series), "judged_minutes": judged,
            "series_days": len(series) * (QUIET_DAYS - 1)}


# --------------------------------------------------------------------------------------------
# Servers and clients
# --------------------------------------------------------------------------------------------

def cli_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, f"expected an error, got: {proc.stdout}"
    m = re.search(r"An error occurred \(([A-Za-z]+)\)", proc.stderr)
    assert m, f"no error code in: {proc.stderr}"
    return m.group(1)


def aws_fails(c: Cairn, code: str, *args: str) -> str:
    proc = c.aws(*args, check=False)
    got = cli_error(proc)
    assert got == code, f"aws {' '.join(args)}: expected {code}, got {got}: {proc.stderr}"
    return proc.stderr


def boto_fails(code: str, fn, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as e:
        fn(**kwargs)
    got = e.value.response["Error"]["Code"]
    assert got == code, f"{fn.__name__}({kwargs}): expected {code}, got {got}: {e.value}"
    return e.value


def insight_events(c: Cairn, keys: tuple[str, str] | None = None, **kwargs) -> list[dict]:
    """LookupEvents with EventCategory=insight (boto3, every page; `keys`: another
    account's)."""
    if keys is None:
        return c.lookup_all(EventCategory="insight", **kwargs)
    ct = c.client("cloudtrail", access_key=keys[0], secret_key=keys[1])
    out, token = [], None
    while True:
        page = ct.lookup_events(EventCategory="insight", **kwargs,
                                **({"NextToken": token} if token else {}))
        out += page["Events"]
        token = page.get("NextToken")
        if not token:
            return out


def insight_records(c: Cairn, region: str | None = None, **kwargs) -> list[dict]:
    out = [parse_record(e["CloudTrailEvent"]) for e in insight_events(c, **kwargs)]
    return [r for r in out if region is None or r["awsRegion"] == region]


def wait_until(what: str, fn, timeout: float = 45, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {timeout:.0f} s (last: {value!r})"[:3000],
                        pytrace=False)
        time.sleep(interval)


def wait_records(c: Cairn, region: str, count: int, timeout: float = 45,
                 keys: tuple[str, str] | None = None) -> list[dict]:
    """The insight records of a region, once there are `count` of them."""
    return wait_until(f"{count} insight events in {region}",
                      lambda: (lambda r: r if len(r) >= count else None)(
                          insight_records(c, region, keys=keys)), timeout)


def pair(records: list[dict]) -> tuple[dict, dict]:
    starts = [r for r in records if r["insightDetails"]["state"] == "Start"]
    ends = [r for r in records if r["insightDetails"]["state"] == "End"]
    assert len(starts) == 1 and len(ends) == 1, json.dumps(records, indent=1)[:4000]
    return starts[0], ends[0]


def store_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def sql(c: Cairn, statement: str, *, cli: bool = False, timeout: float = 60) -> list[tuple]:
    """Runs a query (start-query, describe-query until it ends, get-query-results; with the
    AWS CLI when `cli`, else boto3) and returns its rows as tuples of values."""
    ct = c.client("cloudtrail")
    if cli:
        qid = c.aws("cloudtrail", "start-query", "--query-statement", statement)["QueryId"]
    else:
        qid = ct.start_query(QueryStatement=statement)["QueryId"]
    deadline = time.monotonic() + timeout
    while True:
        d = ct.describe_query(QueryId=qid)
        if d["QueryStatus"] in DONE:
            break
        assert time.monotonic() < deadline, f"query still {d['QueryStatus']}: {statement}"
        time.sleep(0.1)
    assert d["QueryStatus"] == "FINISHED", f"{statement}\n-> {d}"
    rows, token = [], None
    while True:
        if cli:
            args = ["cloudtrail", "get-query-results", "--query-id", qid]
            if token:
                args += ["--next-token", token]
            page = c.aws(*args)
        else:
            page = ct.get_query_results(QueryId=qid, **({"NextToken": token} if token else {}))
        for row in page.get("QueryResultRows", []):
            rows.append(tuple(next(iter(cell.values())) for cell in row))
        token = page.get("NextToken")
        if not token:
            return rows


def gunzip_one_member(data: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data) + d.flush()
    assert d.eof and not d.unused_data, "a trail file must be exactly one gzip member"
    return out


def bucket_files(c: Cairn, bucket: str, folder: str, *, prefix: str = "",
                 account: str = ACCOUNT_ID, s3=None) -> dict[str, list[dict]]:
    """Key -> records of every file under [prefix/]AWSLogs/<account>/<folder>/ in a bucket."""
    s3 = s3 or c.client("s3")
    out = {}
    token = None
    while True:
        kwargs = {"Bucket": bucket, "Prefix": f"{prefix}AWSLogs/{account}/{folder}/"}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            doc = json.loads(gunzip_one_member(body))
            assert list(doc) == ["Records"], o["Key"]
            out[o["Key"]] = doc["Records"]
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def trail_with_bucket(c: Cairn, name: str, *, multi_region: bool = True,
                      selectors: str | None = None, logging: bool = True, prefix: str = "",
                      keys: tuple[str, str] | None = None) -> str:
    """A trail (boto3) with a bucket of its own, `<name>-logs`, with insight selectors when
    given, logging unless told otherwise; returns its ARN. `keys`: another account's."""
    creds = {"access_key": keys[0], "secret_key": keys[1]} if keys else {}
    c.client("s3", **creds).create_bucket(Bucket=f"{name}-logs")
    ct = c.client("cloudtrail", **creds)
    extra = {"S3KeyPrefix": prefix} if prefix else {}
    arn = ct.create_trail(Name=name, S3BucketName=f"{name}-logs",
                          IsMultiRegionTrail=multi_region, **extra)["TrailARN"]
    if selectors is not None:
        ct.put_insight_selectors(TrailName=name, InsightSelectors=json.loads(selectors))
    if logging:
        ct.start_logging(Name=name)
    return arn


# --------------------------------------------------------------------------------------------
# Record checks
# --------------------------------------------------------------------------------------------

def check_values(entries: list, what: str) -> None:
    assert isinstance(entries, list) and len(entries) <= 5, f"{what}: {entries}"
    for e in entries:
        assert set(e) == {"value", "average"}, f"{what}: {e}"
        assert isinstance(e["value"], str), f"{what}: {e}"
        assert isinstance(e["average"], (int, float)) and e["average"] >= 0, f"{what}: {e}"
    averages = [e["average"] for e in entries]
    assert averages == sorted(averages, reverse=True), f"{what} not sorted by average: {entries}"


def check_shape(r: dict, *, state: str, region: str, source: str, name: str, itype: str,
                error: str | None = None, data: bool = False) -> dict:
    """Checks an insight record against the spec's shape (section 5.2), member by member;
    returns its attributions by attribute."""
    assert set(r) == TOP_LEVEL, f"top-level members {sorted(r)}"
    assert r["eventVersion"] == "1.08"
    assert r["eventType"] == "AwsCloudTrailInsight"
    assert r["eventCategory"] == "Insight"
    assert r["awsRegion"] == region
    assert r["recipientAccountId"] == ACCOUNT_ID
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z", r["eventTime"]), r["eventTime"]
    uuid.UUID(r["eventID"])
    uuid.UUID(r["sharedEventID"])
    assert r["eventID"] != r["sharedEventID"]
    d = r["insightDetails"]
    want = {"state", "eventSource", "eventName", "insightType", "insightContext"}
    if error is not None:
        want.add("errorCode")
    if data:
        # Insights on data events say so; management ones are exactly CloudTrail's shape.
        want.add("eventCategory")
        assert d["eventCategory"] == "Data"
    assert set(d) == want, f"insightDetails members {sorted(d)}"
    assert d["state"] == state
    assert d["eventSource"] == source
    assert d["eventName"] == name
    assert d["insightType"] == itype
    if error is not None:
        assert d["errorCode"] == error
    ctx = d["insightContext"]
    assert set(ctx) == {"statistics", "attributions"}, sorted(ctx)
    stats = ctx["statistics"]
    assert set(stats) == {"baseline", "insight", "insightDuration", "baselineDuration"}, stats
    assert set(stats["baseline"]) == {"average"} and set(stats["insight"]) == {"average"}
    for v in (stats["baseline"]["average"], stats["insight"]["average"]):
        assert isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, stats
    for v in (stats["insightDuration"], stats["baselineDuration"]):
        assert isinstance(v, int) and not isinstance(v, bool) and v >= 1, stats
    attrs = ctx["attributions"]
    names = [a["attribute"] for a in attrs]
    if itype == "ApiCallRateInsight":
        assert names == ["userIdentityArn", "userAgent", "errorCode"], names
    else:
        assert names == ["userIdentityArn", "userAgent"], (
            f"an error-rate insight carries no errorCode attribution: {names}")
    for a in attrs:
        assert set(a) == {"attribute", "insight", "baseline"}, a
        check_values(a["insight"], f"{a['attribute']} insight")
        check_values(a["baseline"], f"{a['attribute']} baseline")
    return {a["attribute"]: a for a in attrs}


# --------------------------------------------------------------------------------------------
# The main server: one account, a workload per region
# --------------------------------------------------------------------------------------------

MAIN_REGIONS = {"burst": "eu-west-1", "storm": "eu-central-1", "quiet": "us-west-2",
                "short": "ap-northeast-1", "small": "sa-east-1"}


@pytest.fixture(scope="module")
def main(tmp_path_factory):
    """A server with trails and stores set up, then (in this order) a burst after only two
    hours of history (ap-northeast-1), nine quiet days (us-west-2), late calls for a long
    settled minute of the quiet days, an AccessDenied storm (eu-central-1) and the steady week
    with a burst of RunInstances (eu-west-1)."""
    tmp = tmp_path_factory.mktemp("insights")
    c = start_server(tmp, "main", ["--delivery-interval", "1s", "--lake-flush", "500ms"])
    try:
        log = c.server.log_path.read_text()
        m = re.search(r"SQL \(Lake\):\s+FROM (\S+)", log)
        assert m, log[-3000:]
        default_id = m.group(1)
        # The trail that turns Insights on (all regions, both types; through the AWS CLI),
        # one that wants call-rate insights only, one without Insights; all logging.
        main_arn = trail_with_bucket(c, "main", logging=False)
        out = c.aws("cloudtrail", "put-insight-selectors", "--trail-name", "main",
                    "--insight-selectors", BOTH)
        assert out["TrailARN"] == main_arn
        c.aws("cloudtrail", "start-logging", "--name", "main")
        trail_with_bucket(c, "rates", selectors=CALLS_ONLY, prefix="audit/2026")
        trail_with_bucket(c, "plain")
        # An Insights event data store, before any insight event is made.
        ins = c.aws("cloudtrail", "create-event-data-store", "--name", "insights-kept",
                    "--advanced-event-selectors", INSIGHTS_STORE_SELECTORS)
        facts = {"cairn": c, "main_arn": main_arn, "default_id": default_id,
                 "insights_store_arn": ins["EventDataStoreArn"]}

        t0 = time.monotonic()
        short = Timeline("main-short")
        facts["short"] = short_history_then_burst(short, MAIN_REGIONS["short"], seed=41)
        ingest_timeline(c, short)

        small = Timeline("main-small")
        facts["small"] = small_burst(small, MAIN_REGIONS["small"], seed=17)
        ingest_timeline(c, small)

        quiet = Timeline("main-quiet")
        facts["quiet"] = quiet_days(quiet, MAIN_REGIONS["quiet"], seed=7)
        ingest_timeline(c, quiet, batch=1000)
        # Late calls: 60 RunInstances in one minute three days back, long judged by now.
        late = Timeline("main-late")
        late.burst(facts["quiet"]["end"] - 3 * DAY + 14 * HOUR, 1, 60, MAIN_REGIONS["quiet"],
                   "ec2.amazonaws.com", "RunInstances", user=MINER, agent=MINER_AGENT)
        ingest_timeline(c, late)
        # Then a real burst of one of the quiet APIs: the region is judged all along.
        planted = Timeline("main-planted")
        facts["planted"] = planted_burst(planted, MAIN_REGIONS["quiet"],
                                         facts["quiet"]["end"] + 10 * MINUTE,
                                         "iam.amazonaws.com", "CreateUser")
        ingest_timeline(c, planted)

        storm = Timeline("main-storm")
        facts["storm"] = access_denied_storm(storm, MAIN_REGIONS["storm"], seed=11)
        ingest_timeline(c, storm)

        burst = Timeline("main-burst")
        facts["burst"] = steady_week_then_burst(burst, MAIN_REGIONS["burst"], seed=3)
        ingest_timeline(c, burst)
        facts["ingested"] = {"short": len(short), "small": len(small), "quiet": len(quiet),
                             "late": len(late),
                             "storm": len(storm), "burst": len(burst),
                             "seconds": round(time.monotonic() - t0, 1)}
        # The last workload's Start and End: everything before it has been read too.
        wait_records(c, MAIN_REGIONS["burst"], 2)
        yield facts
    finally:
        stop_server(c)


def test_a_burst_of_run_instances_after_a_steady_week(main):
    c = main["cairn"]
    b = main["burst"]
    region = b["region"]
    # Through the AWS CLI.
    out = c.aws("cloudtrail", "lookup-events", "--event-category", "insight")
    events = [e for e in out["Events"] if parse_record(e["CloudTrailEvent"])["awsRegion"] == region]
    assert len(events) == 2, json.dumps(out, indent=1, default=str)[:4000]
    records = [parse_record(e["CloudTrailEvent"]) for e in events]
    start, end = pair(records)
    for e in events:
        r = parse_record(e["CloudTrailEvent"])
        assert e["EventId"] == r["eventID"]
        assert e["EventName"] == "RunInstances"
        assert e["EventSource"] == "ec2.amazonaws.com"
        assert epoch(e["EventTime"]) == epoch(r["eventTime"])
        assert "AccessKeyId" not in e and "Username" not in e, e
    assert events[0]["EventId"] == end["eventID"], "newest first: the End, then the Start"

    kw = dict(region=region, source="ec2.amazonaws.com", name="RunInstances",
              itype="ApiCallRateInsight")
    s_attrs = check_shape(start, state="Start", **kw)
    e_attrs = check_shape(end, state="End", **kw)
    assert start["sharedEventID"] == end["sharedEventID"]
    assert start["eventID"] != end["eventID"]

    # Times: the Start is the first minute of the burst, the End the end of its last minute.
    assert epoch(start["eventTime"]) == b["burst_at"]
    assert epoch(end["eventTime"]) == b["end"]
    s_stats = start["insightDetails"]["insightContext"]["statistics"]
    e_stats = end["insightDetails"]["insightContext"]["statistics"]
    assert e_stats["insightDuration"] == 6
    assert 1 <= s_stats["insightDuration"] <= 6
    # Baseline: the 7 days before the start.
    assert s_stats["baselineDuration"] >= 10080
    assert s_stats["baselineDuration"] <= b["history_minutes"]
    assert e_stats["baselineDuration"] == s_stats["baselineDuration"]
    expected = b["window_calls"] / WEEK_MINUTES
    assert 0.05 < expected < 0.2
    for stats in (s_stats, e_stats):
        assert math.isclose(stats["baseline"]["average"], expected, rel_tol=1e-6), (
            stats, expected)
    # Insight: the first minute's count in the Start, the mean over the incident in the End.
    assert s_stats["insight"]["average"] == 40
    assert e_stats["insight"]["average"] == 40

    # Attributions: the miner in the insight, the usual user in the baseline.
    for attrs, minutes in ((s_attrs, 1), (e_attrs, 6)):
        users = attrs["userIdentityArn"]
        assert users["insight"][0] == {"value": MINER, "average": 40}, users
        assert users["baseline"][0]["value"] == OPS, users
        assert 0.05 < users["baseline"][0]["average"] < 0.2, users
        assert MINER not in [v["value"] for v in users["baseline"]], users
        agents = attrs["userAgent"]
        assert agents["insight"][0] == {"value": MINER_AGENT, "average": 40}, agents
        assert agents["baseline"][0]["value"] == OPS_AGENT, agents
        errors = attrs["errorCode"]
        assert errors["insight"] == [{"value": "null", "average": 40}], errors
        assert [v["value"] for v in errors["baseline"]] == ["null"], errors


def test_an_access_denied_storm_is_an_error_rate_insight(main):
    c = main["cairn"]
    s = main["storm"]
    records = insight_records(c, s["region"])
    start, end = pair(records)
    kw = dict(region=s["region"], source="s3.amazonaws.com", name="GetBucketPolicy",
              itype="ApiErrorRateInsight", error="AccessDenied")
    for r, state in ((start, "Start"), (end, "End")):
        attrs = check_shape(r, state=state, **kw)
        assert attrs["userIdentityArn"]["insight"][0]["value"] == INTRUDER, attrs
        assert attrs["userAgent"]["insight"][0]["value"] == INTRUDER_AGENT, attrs
        assert attrs["userIdentityArn"]["baseline"][0]["value"] == OPS, attrs
    assert start["sharedEventID"] == end["sharedEventID"]
    assert epoch(start["eventTime"]) == s["storm_at"]
    assert epoch(end["eventTime"]) == s["end"]
    stats = end["insightDetails"]["insightContext"]["statistics"]
    assert stats["insightDuration"] == 4
    assert stats["insight"]["average"] == 60
    assert start["insightDetails"]["insightContext"]["statistics"]["insight"]["average"] == 60
    assert 0.01 < stats["baseline"]["average"] < 0.15, stats
    # The reads themselves are not write calls: no call-rate insight for them.
    assert all(r["insightDetails"]["insightType"] == "ApiErrorRateInsight" for r in records)


def test_quiet_days_with_daily_peaks_raise_no_insight(main, capsys):
    c = main["cairn"]
    q = main["quiet"]
    p = main["planted"]
    found = insight_records(c, q["region"])
    planted = [r for r in found if r["insightDetails"]["eventName"] == p["name"]
               and epoch(r["eventTime"]) >= p["at"]]
    others = [r for r in found if r not in planted]
    with capsys.disabled():
        print(f"\nquiet run: {q['calls']} calls over {QUIET_DAYS} days in {q['series']} series "
              f"(+60 late calls for a settled minute); about {q['judged_minutes']} "
              f"series-minutes judged, {q['series_days']} series-days; {len(others)} insight "
              f"events from them; ingested {main['ingested']}")
    assert others == [], json.dumps(others, indent=1)[:4000]
    # The burst planted after the quiet days is seen: the region was judged all along.
    start, end = pair(planted)
    assert epoch(start["eventTime"]) == p["at"] and epoch(end["eventTime"]) == p["end"]
    assert start["insightDetails"]["insightType"] == "ApiCallRateInsight"
    stats = end["insightDetails"]["insightContext"]["statistics"]
    assert stats["insightDuration"] == p["minutes"] and stats["insight"]["average"] == 30
    assert stats["baselineDuration"] == WEEK_MINUTES, stats


def test_a_short_history_is_not_judged_with_the_default_min_history(main):
    # Two hours of history before the same burst: the account has not been seen in the region
    # for the 24 hours Insights need.
    assert insight_records(main["cairn"], main["short"]["region"]) == []


def test_a_small_burst_is_not_unusual_enough_for_the_medium_sensitivity(main):
    # 5 calls a minute for 3 minutes instead of 0.2 (the high sensitivity reports it: below).
    assert insight_records(main["cairn"], main["small"]["region"]) == []


def test_lookup_events_filters(main):
    c = main["cairn"]
    ct = c.client("cloudtrail")
    burst = insight_records(c, main["burst"]["region"])
    storm = insight_records(c, main["storm"]["region"])
    planted = [r for r in insight_records(c, main["planted"]["region"])]
    everything = insight_events(c)
    assert len(everything) == 6, [e["EventName"] for e in everything]
    assert {e["EventId"] for e in everything} == {
        r["eventID"] for r in burst + storm + planted}
    by_name = insight_events(c, LookupAttributes=[
        {"AttributeKey": "EventName", "AttributeValue": "RunInstances"}])
    assert {e["EventId"] for e in by_name} == {r["eventID"] for r in burst}
    by_source = insight_events(c, LookupAttributes=[
        {"AttributeKey": "EventSource", "AttributeValue": "s3.amazonaws.com"}])
    assert {e["EventId"] for e in by_source} == {r["eventID"] for r in storm}
    start, end = pair(burst)
    by_id = insight_events(c, LookupAttributes=[
        {"AttributeKey": "EventId", "AttributeValue": start["eventID"]}])
    assert [e["EventId"] for e in by_id] == [start["eventID"]]
    # The same through the AWS CLI.
    out = c.aws("cloudtrail", "lookup-events", "--event-category", "insight",
                "--lookup-attributes", f"AttributeKey=EventId,AttributeValue={end['eventID']}")
    assert [e["EventId"] for e in out["Events"]] == [end["eventID"]]
    # A time range on event time: the burst's Start only.
    around = insight_events(c, StartTime=start["eventTime"],
                            EndTime=iso_z(main["burst"]["burst_at"] + 60))
    assert start["eventID"] in {e["EventId"] for e in around}
    assert end["eventID"] not in {e["EventId"] for e in around}
    # Paging: one event a page, all six.
    paged = insight_events(c, MaxResults=1)
    assert sorted(e["EventId"] for e in paged) == sorted(e["EventId"] for e in everything)
    # Other keys do not apply to insight events.
    for key, value in (("Username", "miner"), ("ReadOnly", "false"),
                       ("AccessKeyId", ACCESS_KEY_ID), ("ResourceType", "AWS::EC2::Instance")):
        boto_fails("InvalidLookupAttributesException", ct.lookup_events,
                   EventCategory="insight",
                   LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}])
    aws_fails(c, "InvalidLookupAttributesException", "cloudtrail", "lookup-events",
              "--event-category", "insight", "--lookup-attributes",
              "AttributeKey=Username,AttributeValue=miner")
    # Without EventCategory, insight events are not among the events.
    b = main["burst"]
    plain = c.lookup_all(LookupAttributes=[
        {"AttributeKey": "EventName", "AttributeValue": "RunInstances"}],
        StartTime=iso_z(b["burst_at"]), EndTime=iso_z(b["end"]))
    assert len(plain) >= 2 * 240, len(plain)  # the bursts of eu-west-1 and ap-northeast-1
    assert not {e["EventId"] for e in plain} & {r["eventID"] for r in burst}
    assert all(parse_record(e["CloudTrailEvent"])["eventType"] == "AwsApiCall" for e in plain)


def test_delivery_under_cloudtrail_insight(main):
    c = main["cairn"]
    everything = insight_records(c)
    assert len(everything) == 6
    want_main = {r["eventID"]: r for r in everything}

    def delivered():
        files = bucket_files(c, "main-logs", "CloudTrail-Insight")
        ids = {r["eventID"] for recs in files.values() for r in recs}
        return files if ids >= set(want_main) else None

    files = wait_until("the insight events in the main trail's bucket", delivered, 30)
    seen = []
    for key, records in files.items():
        m = INSIGHT_KEY.match(key)
        assert m, f"unexpected key {key}"
        assert m["account"] == ACCOUNT_ID
        assert m["stamp"].startswith(m["y"] + m["m"] + m["d"] + "T"), key
        for r in records:
            assert r["awsRegion"] == m["region"], key
            assert r["eventType"] == "AwsCloudTrailInsight", r
            seen.append(r["eventID"])
            # Delivered as stored: the same record LookupEvents gives.
            assert r == want_main[r["eventID"]]
    assert sorted(seen) == sorted(want_main), "each Start and End delivered once"
    # The call-rate-only trail gets the call-rate insights but not the AccessDenied one.
    calls = sorted(r["eventID"] for r in everything
                   if r["insightDetails"]["insightType"] == "ApiCallRateInsight")
    assert len(calls) == 4

    def rate_ids():
        files = bucket_files(c, "rates-logs", "CloudTrail-Insight", prefix="audit/2026/")
        return sorted(r["eventID"] for recs in files.values() for r in recs), files

    wait_until("the call-rate insights in the rates trail's bucket",
               lambda: len(rate_ids()[0]) >= 4, 30)
    ids, rates = rate_ids()
    assert ids == calls
    for key in rates:
        assert key.startswith("audit/2026/AWSLogs/"), key
        assert INSIGHT_KEY.match(key.removeprefix("audit/2026/")), key
    # The trail without Insights gets none; no insight event is in the ordinary log files.
    time.sleep(2)
    assert bucket_files(c, "plain-logs", "CloudTrail-Insight") == {}
    for bucket, prefix in (("main-logs", ""), ("rates-logs", "audit/2026/"),
                           ("plain-logs", "")):
        logs = bucket_files(c, bucket, "CloudTrail", prefix=prefix)
        assert logs, f"{bucket} has ordinary log files"
        for key, records in logs.items():
            assert "/CloudTrail/" in key
            assert not any(r.get("eventType") == "AwsCloudTrailInsight"
                           or r.get("eventCategory") == "Insight" for r in records), key


def test_sql_over_the_insights_store_and_the_default_store(main):
    c = main["cairn"]
    records = insight_records(c)
    want = {(r["eventID"], r["insightDetails"]["state"]) for r in records}
    assert len(want) == 6
    ins = store_id(main["insights_store_arn"])
    rows = sql(c, f"SELECT eventid, insightdetails['state'] FROM {ins}", cli=True)
    assert set(rows) == want and len(rows) == 6, rows
    rows = sql(c, f"SELECT eventid, eventtype, eventcategory, awsregion, sharedeventid, "
                  f"insightdetails['eventName'], insightdetails['insightType'] FROM {ins} "
                  f"WHERE insightdetails['state'] = 'End' ORDER BY awsregion")
    by_id = {r["eventID"]: r for r in records}
    assert sorted(r[3] for r in rows) == sorted(
        [main["storm"]["region"], main["burst"]["region"], main["planted"]["region"]])
    for eid, etype, cat, region, shared, name, itype in rows:
        r = by_id[eid]
        assert (etype, cat, region, shared) == ("AwsCloudTrailInsight", "Insight",
                                                r["awsRegion"], r["sharedEventID"])
        assert (name, itype) == (r["insightDetails"]["eventName"],
                                 r["insightDetails"]["insightType"])
    # The default store (the one serve names, cairn-default) keeps them too, beside the calls.
    default = [s for s in c.client("cloudtrail").list_event_data_stores()["EventDataStores"]
               if s["Name"] == "cairn-default"]
    assert [store_id(s["EventDataStoreArn"]) for s in default] == [main["default_id"]]
    rows = sql(c, f"SELECT eventid, insightdetails['state'] FROM {main['default_id']} "
                  f"WHERE eventcategory = 'Insight'")
    assert set(rows) == want and len(rows) == 6, rows
    # The Insights store keeps nothing but insight events.
    rows = sql(c, f"SELECT count(*) FROM {ins} WHERE eventcategory <> 'Insight'")
    assert rows == [("0",)], rows


def regional(c: Cairn, region: str):
    """A boto3 CloudTrail client of the first account signing for `region`."""
    return boto3.session.Session().client(
        "cloudtrail", endpoint_url=c.endpoint, region_name=region,
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
        config=botocore.config.Config(retries={"max_attempts": 2, "mode": "standard"}))


def test_list_insights_metric_data(main):
    """The per-minute counts Insights judges, for one API (and error code) in the caller's
    region."""
    c = main["cairn"]
    b = main["burst"]
    eu = regional(c, b["region"])
    out = eu.list_insights_metric_data(
        EventSource="ec2.amazonaws.com", EventName="RunInstances",
        InsightType="ApiCallRateInsight", Period=60, DataType="FillWithZeros",
        StartTime=iso_z(b["burst_at"]), EndTime=iso_z(b["end"]))
    assert out["EventSource"] == "ec2.amazonaws.com" and out["EventName"] == "RunInstances"
    assert out["InsightType"] == "ApiCallRateInsight" and "ErrorCode" not in out
    assert [epoch(t) for t in out["Timestamps"]] == [b["burst_at"] + m * MINUTE
                                                     for m in range(6)]
    assert out["Values"] == [40.0] * 6
    # The week before, by the hour: the calls of the baseline.
    week = eu.list_insights_metric_data(
        EventSource="ec2.amazonaws.com", EventName="RunInstances",
        InsightType="ApiCallRateInsight", Period=3600,
        StartTime=iso_z(b["burst_at"] - WEEK_MINUTES * MINUTE), EndTime=iso_z(b["burst_at"]))
    assert sum(week["Values"]) == b["window_calls"]
    # Error rates: one error code; from another region, nothing of eu-west-1's.
    s = main["storm"]
    storm = regional(c, s["region"]).list_insights_metric_data(
        EventSource="s3.amazonaws.com", EventName="GetBucketPolicy",
        InsightType="ApiErrorRateInsight", ErrorCode="AccessDenied", Period=60,
        StartTime=iso_z(s["storm_at"]), EndTime=iso_z(s["end"]))
    assert storm["ErrorCode"] == "AccessDenied"
    assert storm["Values"] == [60.0] * 4
    elsewhere = regional(c, s["region"]).list_insights_metric_data(
        EventSource="ec2.amazonaws.com", EventName="RunInstances",
        InsightType="ApiCallRateInsight", Period=60,
        StartTime=iso_z(b["burst_at"]), EndTime=iso_z(b["end"]))
    assert elsewhere["Values"] == []
    # Paging.
    pages, token = [], None
    while True:
        page = eu.list_insights_metric_data(
            EventSource="ec2.amazonaws.com", EventName="RunInstances",
            InsightType="ApiCallRateInsight", Period=60, MaxResults=4,
            StartTime=iso_z(b["burst_at"]), EndTime=iso_z(b["end"]),
            **({"NextToken": token} if token else {}))
        pages.append(page["Values"])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [[40.0] * 4, [40.0] * 2]
    # Errors.
    for kwargs in ({"InsightType": "ApiErrorRateInsight"},
                   {"InsightType": "ApiCallRateInsight", "ErrorCode": "AccessDenied"},
                   {"InsightType": "ApiCallRateInsight", "Period": 120}):
        boto_fails("InvalidParameterException", eu.list_insights_metric_data,
                   EventSource="ec2.amazonaws.com", EventName="RunInstances", **kwargs)


# --------------------------------------------------------------------------------------------
# PutInsightSelectors / GetInsightSelectors
# --------------------------------------------------------------------------------------------

def types(selectors: list[dict]) -> list[str]:
    return [s["InsightType"] for s in selectors]


def test_insight_selectors_on_trails(main):
    c = main["cairn"]
    ct = c.client("cloudtrail")
    lax = c.client("cloudtrail", validate=False)
    arn = ct.create_trail(Name="selectors", S3BucketName="plain-logs")["TrailARN"]
    aws_fails(c, "InsightNotEnabledException", "cloudtrail", "get-insight-selectors",
              "--trail-name", "selectors")
    out = c.aws("cloudtrail", "put-insight-selectors", "--trail-name", "selectors",
                "--insight-selectors", BOTH)
    assert out["TrailARN"] == arn
    assert types(out["InsightSelectors"]) == ["ApiCallRateInsight", "ApiErrorRateInsight"]
    got = c.aws("cloudtrail", "get-insight-selectors", "--trail-name", arn)
    assert got["TrailARN"] == arn
    assert ct.get_trail(Name="selectors")["Trail"]["HasInsightSelectors"] is True
    assert types(got["InsightSelectors"]) == ["ApiCallRateInsight", "ApiErrorRateInsight"]
    assert "EventDataStoreArn" not in got and "InsightsDestination" not in got
    # A list replaces the previous one.
    out = ct.put_insight_selectors(TrailName="selectors",
                                   InsightSelectors=[{"InsightType": "ApiErrorRateInsight"}])
    assert types(out["InsightSelectors"]) == ["ApiErrorRateInsight"]
    got = ct.get_insight_selectors(TrailName="selectors")
    assert types(got["InsightSelectors"]) == ["ApiErrorRateInsight"]

    bad = {
        "an unknown type": [{"InsightType": "ApiLatencyInsight"}],
        "a type twice": [{"InsightType": "ApiCallRateInsight"},
                         {"InsightType": "ApiCallRateInsight"}],
        "an unknown category": [{"InsightType": "ApiCallRateInsight",
                                 "EventCategories": ["Insight"]}],
        "a category twice": [{"InsightType": "ApiErrorRateInsight",
                              "EventCategories": ["Management", "Management"]}],
        "no type": [{"EventCategories": ["Management"]}],
    }
    for what, selectors in bad.items():
        err = boto_fails("InvalidInsightSelectorsException", lax.put_insight_selectors,
                         TrailName="selectors", InsightSelectors=selectors)
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400, what
    aws_fails(c, "InvalidInsightSelectorsException", "cloudtrail", "put-insight-selectors",
              "--trail-name", "selectors", "--insight-selectors",
              '[{"InsightType":"ApiErrorRateInsight"},{"InsightType":"ApiErrorRateInsight"}]')
    # A failed call leaves the selectors as they were.
    got = ct.get_insight_selectors(TrailName="selectors")
    assert types(got["InsightSelectors"]) == ["ApiErrorRateInsight"]

    # ApiCallRateInsight needs write management events logged; error rates need reads or
    # writes.
    ct.put_event_selectors(TrailName="selectors", EventSelectors=[
        {"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}])
    boto_fails("InvalidInsightSelectorsException", ct.put_insight_selectors,
               TrailName="selectors", InsightSelectors=json.loads(CALLS_ONLY))
    ct.put_insight_selectors(TrailName="selectors",
                             InsightSelectors=[{"InsightType": "ApiErrorRateInsight"}])
    ct.put_event_selectors(TrailName="selectors", EventSelectors=[
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
    ct.put_insight_selectors(TrailName="selectors", InsightSelectors=json.loads(CALLS_ONLY))

    # The trail must exist; a trail and a store cannot both be named; one must be.
    boto_fails("TrailNotFoundException", ct.put_insight_selectors, TrailName="no-such-trail",
               InsightSelectors=json.loads(BOTH))
    boto_fails("TrailNotFoundException", ct.get_insight_selectors, TrailName="no-such-trail")
    aws_fails(c, "InvalidParameterCombinationException", "cloudtrail", "put-insight-selectors",
              "--trail-name", "selectors", "--event-data-store", main["default_id"],
              "--insight-selectors", BOTH)
    boto_fails("InvalidParameterCombinationException", ct.get_insight_selectors,
               TrailName="selectors", EventDataStore=main["default_id"])
    boto_fails("InvalidParameterCombinationException", ct.put_insight_selectors,
               InsightSelectors=json.loads(BOTH))
    boto_fails("InvalidParameterCombinationException", ct.get_insight_selectors)

    # An empty list turns Insights off.
    out = c.aws("cloudtrail", "put-insight-selectors", "--trail-name", "selectors",
                "--insight-selectors", "[]")
    assert out["InsightSelectors"] == [] and out["TrailARN"] == arn
    boto_fails("InsightNotEnabledException", ct.get_insight_selectors, TrailName="selectors")
    assert ct.get_trail(Name="selectors")["Trail"]["HasInsightSelectors"] is False
    ct.delete_trail(Name="selectors")


def test_insight_selectors_on_event_data_stores(main):
    c = main["cairn"]
    ct = c.client("cloudtrail")
    dest_arn = main["insights_store_arn"]
    src_arn = ct.create_event_data_store(Name="analysed")["EventDataStoreArn"]
    other_arn = ct.create_event_data_store(Name="not-insights")["EventDataStoreArn"]
    boto_fails("InsightNotEnabledException", ct.get_insight_selectors, EventDataStore=src_arn)
    out = c.aws("cloudtrail", "put-insight-selectors", "--event-data-store", store_id(src_arn),
                "--insights-destination", dest_arn, "--insight-selectors", BOTH)
    assert out["EventDataStoreArn"] == src_arn
    assert out["InsightsDestination"] == dest_arn
    assert types(out["InsightSelectors"]) == ["ApiCallRateInsight", "ApiErrorRateInsight"]
    assert "TrailARN" not in out
    got = c.aws("cloudtrail", "get-insight-selectors", "--event-data-store", src_arn)
    for got in (got, ct.get_insight_selectors(EventDataStore=store_id(src_arn))):
        assert got["EventDataStoreArn"] == src_arn
        assert got["InsightsDestination"] == dest_arn
        assert types(got["InsightSelectors"]) == ["ApiCallRateInsight", "ApiErrorRateInsight"]

    # The destination must be an Insights store.
    aws_fails(c, "InvalidParameterCombinationException", "cloudtrail", "put-insight-selectors",
              "--event-data-store", src_arn, "--insights-destination", other_arn,
              "--insight-selectors", BOTH)
    # The Insights store is not a source.
    boto_fails("InvalidParameterCombinationException", ct.put_insight_selectors,
               EventDataStore=dest_arn, InsightsDestination=dest_arn,
               InsightSelectors=json.loads(BOTH))
    # Data-event Insights are for trails.
    aws_fails(c, "InvalidInsightSelectorsException", "cloudtrail", "put-insight-selectors",
              "--event-data-store", src_arn, "--insights-destination", dest_arn,
              "--insight-selectors",
              '[{"InsightType":"ApiCallRateInsight","EventCategories":["Data"]}]')
    # Selectors without a destination, or a destination without a source.
    boto_fails("InvalidParameterCombinationException", ct.put_insight_selectors,
               EventDataStore=src_arn, InsightSelectors=json.loads(BOTH))
    boto_fails("InvalidParameterCombinationException", ct.put_insight_selectors,
               InsightsDestination=dest_arn, InsightSelectors=json.loads(BOTH))
    boto_fails("InvalidInsightSelectorsException", c.client(
        "cloudtrail", validate=False).put_insight_selectors, EventDataStore=src_arn,
        InsightsDestination=dest_arn, InsightSelectors=[{"InsightType": "Nope"}])
    # Unknown stores.
    missing = src_arn[:-12] + "000000000000"
    boto_fails("EventDataStoreNotFoundException", ct.get_insight_selectors,
               EventDataStore=missing)
    boto_fails("EventDataStoreNotFoundException", ct.put_insight_selectors,
               EventDataStore=src_arn, InsightsDestination=missing,
               InsightSelectors=json.loads(BOTH))
    # Failed calls changed nothing.
    got = ct.get_insight_selectors(EventDataStore=src_arn)
    assert got["InsightsDestination"] == dest_arn and len(got["InsightSelectors"]) == 2

    # An empty list turns them off.
    out = c.aws("cloudtrail", "put-insight-selectors", "--event-data-store", src_arn,
                "--insights-destination", dest_arn, "--insight-selectors", "[]")
    assert out["InsightSelectors"] == [] and out["EventDataStoreArn"] == src_arn
    boto_fails("InsightNotEnabledException", ct.get_insight_selectors, EventDataStore=src_arn)
    # The Insights store shows its selectors as given.
    got = ct.get_event_data_store(EventDataStore=dest_arn)
    assert got["AdvancedEventSelectors"][0]["FieldSelectors"] == [
        {"Field": "eventCategory", "Equals": ["Insight"]}]
    for arn in (src_arn, other_arn):
        ct.update_event_data_store(EventDataStore=arn, TerminationProtectionEnabled=False)
        ct.delete_event_data_store(EventDataStore=arn)


# --------------------------------------------------------------------------------------------
# When insight events are made at all
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """A server whose account has, at first, no logging trail with Insights covering
    eu-west-1: a logging trail without them, a stopped one with them, a logging one whose
    Insights were turned off again, and a single-region (us-east-1) one with them."""
    tmp = tmp_path_factory.mktemp("insights_gated")
    c = start_server(tmp, "gated", ["--delivery-interval", "1s"])
    try:
        ct = c.client("cloudtrail")
        trail_with_bucket(c, "plain")
        trail_with_bucket(c, "paused", selectors=BOTH)
        c.aws("cloudtrail", "stop-logging", "--name", "paused")
        assert ct.get_trail_status(Name="paused")["IsLogging"] is False
        trail_with_bucket(c, "was-on", selectors=BOTH)
        c.aws("cloudtrail", "put-insight-selectors", "--trail-name", "was-on",
              "--insight-selectors", "[]")
        trail_with_bucket(c, "home-only", multi_region=False, selectors=BOTH)
        # The burst nobody watches, then the one the home-region trail watches.
        off = Timeline("gated-off")
        facts = {"cairn": c, "off": steady_week_then_burst(off, "eu-west-1", seed=5)}
        ingest_timeline(c, off)
        home = Timeline("gated-home")
        facts["home"] = steady_week_then_burst(home, "us-east-1", seed=6)
        ingest_timeline(c, home)
        wait_records(c, "us-east-1", 2)
        yield facts
    finally:
        stop_server(c)


def test_no_insight_without_a_logging_trail_covering_the_region(gated):
    c = gated["cairn"]
    assert insight_records(c, "eu-west-1") == []
    # The single-region trail covers its home region: there the same burst is an insight.
    start, end = pair(insight_records(c, "us-east-1"))
    assert epoch(start["eventTime"]) == gated["home"]["burst_at"]
    assert end["insightDetails"]["insightContext"]["statistics"]["insightDuration"] == 6


def test_only_trails_with_insights_get_insight_files(gated):
    c = gated["cairn"]
    home = insight_records(c, "us-east-1")
    files = wait_until("the insight events in home-only's bucket",
                       lambda: bucket_files(c, "home-only-logs", "CloudTrail-Insight") or None,
                       30)
    assert all(INSIGHT_KEY.match(k) and "/us-east-1/" in k for k in files), list(files)
    assert sorted(r["eventID"] for recs in files.values() for r in recs) == sorted(
        r["eventID"] for r in home)
    time.sleep(2)
    for bucket in ("plain-logs", "paused-logs", "was-on-logs"):
        assert bucket_files(c, bucket, "CloudTrail-Insight") == {}, bucket
    # The stopped trail delivers nothing new; the others deliver the calls as usual.
    assert bucket_files(c, "plain-logs", "CloudTrail")


def test_an_event_data_store_with_insight_selectors_turns_insights_on(gated):
    """With no trail covering the region, insight selectors on an event data store (here the
    default store, with an Insights store as the destination) make its insights."""
    c = gated["cairn"]
    ct = c.client("cloudtrail")
    default = next(s for s in ct.list_event_data_stores()["EventDataStores"]
                   if s["Name"] == "cairn-default")
    dest = ct.create_event_data_store(
        Name="gated-insights", AdvancedEventSelectors=json.loads(INSIGHTS_STORE_SELECTORS))[
        "EventDataStoreArn"]
    c.aws("cloudtrail", "put-insight-selectors", "--event-data-store",
          default["EventDataStoreArn"], "--insights-destination", dest,
          "--insight-selectors", BOTH)
    tl = Timeline("gated-eds")
    b = steady_week_then_burst(tl, "ap-south-1", seed=8)
    ingest_timeline(c, tl)
    start, end = pair(wait_records(c, "ap-south-1", 2))
    assert epoch(start["eventTime"]) == b["burst_at"]
    rows = sql(c, f"SELECT eventid FROM {store_id(dest)} WHERE awsregion = 'ap-south-1'")
    assert sorted(r[0] for r in rows) == sorted([start["eventID"], end["eventID"]])
    # The burst in eu-west-1, judged while nothing watched it, stays without an insight.
    assert insight_records(c, "eu-west-1") == []
    # The stores do not make trails deliver insight events.
    time.sleep(2)
    assert bucket_files(c, "plain-logs", "CloudTrail-Insight") == {}


def test_no_insights_flag(tmp_path):
    c = start_server(tmp_path, "no-insights", ["--no-insights"])
    try:
        trail_with_bucket(c, "main", selectors=BOTH)
        # The selectors are still kept and given back.
        got = c.client("cloudtrail").get_insight_selectors(TrailName="main")
        assert len(got["InsightSelectors"]) == 2
        tl = Timeline("no-insights")
        steady_week_then_burst(tl, "eu-west-1", seed=9)
        ingest_timeline(c, tl)
        time.sleep(2.5)
        assert insight_events(c) == []
    finally:
        stop_server(c)


def test_an_insight_that_started_is_closed_after_stop_logging(tmp_path):
    """StopLogging in the middle of an insight turns Insights off, but the insight that started
    is still closed: its End is recorded in the event history; the stopped trail, which got
    the Start, does not deliver the End."""
    c = start_server(tmp_path, "stopped", ["--delivery-interval", "1s"])
    try:
        trail_with_bucket(c, "main", selectors=BOTH)
        trail_with_bucket(c, "home", multi_region=False, selectors=BOTH)
        tl = Timeline("stopped")
        b = steady_week_then_burst(tl, "eu-west-1", seed=13)
        middle = b["burst_at"] + 4 * MINUTE
        ingest_timeline(c, tl, until=middle)
        start = wait_records(c, "eu-west-1", 1)[0]

        def delivered():
            files = bucket_files(c, "main-logs", "CloudTrail-Insight")
            return [r["eventID"] for recs in files.values() for r in recs]

        wait_until("the Start in the trail's bucket", lambda: delivered() == [start["eventID"]],
                   30)
        c.aws("cloudtrail", "stop-logging", "--name", "main")
        ingest_timeline(c, tl, after=middle)
        start2, end = pair(wait_records(c, "eu-west-1", 2))
        assert start2 == start and end["sharedEventID"] == start["sharedEventID"]
        assert epoch(end["eventTime"]) == b["end"]
        # Insights are off for eu-west-1 now: a second burst there is not recorded. Then one in
        # the region the other trail still covers: once its insight is there, the rest has
        # been read.
        again = Timeline("stopped-again")
        for k in range(3):
            again.call(b["end"] + 30 * MINUTE + k, "eu-west-1", "ec2.amazonaws.com",
                       "RunInstances")
        planted_burst(again, "eu-west-1", b["end"] + 2 * HOUR, "ec2.amazonaws.com",
                      "RunInstances", per_minute=60)
        ingest_timeline(c, again)
        home = Timeline("stopped-home")
        steady_week_then_burst(home, "us-east-1", seed=14)
        ingest_timeline(c, home)
        wait_records(c, "us-east-1", 2)
        assert sorted(r["eventID"] for r in insight_records(c, "eu-west-1")) == sorted(
            [start["eventID"], end["eventID"]])
        time.sleep(2)
        assert delivered() == [start["eventID"]]
    finally:
        stop_server(c)


def test_bad_insights_flags_stop_serve(tmp_path):
    for flag, value in (("--insights-sensitivity", "loud"), ("--insights-sensitivity", "0"),
                        ("--insights-min-history", "soon")):
        data = tmp_path / f"bad{flag}{value}"
        data.mkdir()
        env = {"CAIRN_ACCESS_KEY_ID": ACCESS_KEY_ID, "CAIRN_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
               "CAIRN_MASTER_KEY_FILE": str(tmp_path / f"{data.name}.key"), "PATH": "/usr/bin:/bin"}
        p = subprocess.run([str(cairn_bin()), "serve", "--data-dir", str(data), "--listen",
                            "127.0.0.1:0", "--account-id", ACCOUNT_ID, flag, value],
                           capture_output=True, text=True, env=env, timeout=30)
        assert p.returncode != 0, (flag, value, p.stdout, p.stderr)
        assert flag in p.stderr, (flag, value, p.stderr)


# --------------------------------------------------------------------------------------------
# The wall clock, error codes, --insights-sensitivity
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def high(tmp_path_factory):
    """A server with `--insights-sensitivity high` and (in this order) a burst with nothing
    after it (eu-west-2), a storm of two error codes (ap-southeast-2), the small burst
    (sa-east-1), and a burst that ended 7 minutes ago with nothing after it (eu-west-1)."""
    tmp = tmp_path_factory.mktemp("insights_high")
    c = start_server(tmp, "high", ["--insights-sensitivity", "high"])
    try:
        trail_with_bucket(c, "main", selectors=BOTH)
        facts = {"cairn": c}
        untailed = Timeline("high-untailed")
        facts["untailed"] = steady_week_then_burst(untailed, "eu-west-2", seed=21)
        # Only up to the end of the burst: nothing moves that API's clock past it.
        ingest_timeline(c, untailed, until=facts["untailed"]["end"])
        facts["untailed_tl"] = untailed

        mixed = Timeline("high-mixed")
        rng = random.Random(23)
        at = BURST_AT
        start = at - 8 * DAY
        kw = dict(read_only=True)
        mixed.call(start, "ap-southeast-2", "kms.amazonaws.com", "Decrypt", **kw)
        span = (8 * DAY + 15 * MINUTE) // MINUTE
        mixed.noise(rng, start + MINUTE, span - 1, 0.5, "ap-southeast-2", "kms.amazonaws.com",
                    "Decrypt", **kw)
        mixed.noise(rng, start + MINUTE, span - 1, 0.02, "ap-southeast-2",
                    "kms.amazonaws.com", "Decrypt", error="AccessDenied",
                    skip=(at, at + 3 * MINUTE), **kw)
        for code in ("AccessDenied", "ThrottlingException"):
            mixed.burst(at, 3, 30, "ap-southeast-2", "kms.amazonaws.com", "Decrypt",
                        error=code, user=INTRUDER, agent=INTRUDER_AGENT, **kw)
        for k in range(1, 6):
            mixed.call(at + 3 * MINUTE + k * 3 * MINUTE, "ap-southeast-2", "kms.amazonaws.com",
                       "Decrypt", **kw)
        facts["mixed"] = {"region": "ap-southeast-2", "at": at, "end": at + 3 * MINUTE}
        ingest_timeline(c, mixed)

        small = Timeline("high-small")
        facts["small"] = small_burst(small, "sa-east-1", seed=17)
        ingest_timeline(c, small)

        # A burst with a lull: 40, 0, 10, 3 calls, then calm.
        lull = Timeline("high-lull")
        rng = random.Random(27)
        start = BURST_AT - 8 * DAY
        lull.call(start, "us-east-2", "ec2.amazonaws.com", "RunInstances")
        lull.noise(rng, start + MINUTE, (8 * DAY + 20 * MINUTE) // MINUTE - 1, 0.1,
                   "us-east-2", "ec2.amazonaws.com", "RunInstances",
                   skip=(BURST_AT, BURST_AT + 7 * MINUTE))
        for m, n in enumerate((40, 0, 10, 3)):
            lull.burst(BURST_AT + m * MINUTE, 1, n, "us-east-2", "ec2.amazonaws.com",
                       "RunInstances", user=MINER, agent=MINER_AGENT)
        for k in range(1, 6):
            lull.call(BURST_AT + 7 * MINUTE + k * 3 * MINUTE, "us-east-2", "ec2.amazonaws.com",
                      "RunInstances")
        ingest_timeline(c, lull)

        # Ten minutes ago: the API's last calls are at most 15 minutes old, so it is live.
        live_at = (int(time.time()) // MINUTE - 10) * MINUTE
        live = Timeline("high-live")
        facts["live"] = steady_week_then_burst(live, "eu-west-1", seed=29, burst_at=live_at,
                                               minutes=3)
        ingest_timeline(c, live, until=facts["live"]["end"])
        facts["live_ingested"] = time.time()
        wait_records(c, "eu-west-1", 2, timeout=60)
        facts["live_done"] = time.time()
        yield facts
    finally:
        stop_server(c)


def test_a_recent_burst_is_judged_by_the_wall_clock(high):
    """The last calls of the API are minutes old and nothing comes after them: the wall clock
    settles the burst's minutes and the calm ones after it."""
    c = high["cairn"]
    b = high["live"]
    start, end = pair(insight_records(c, "eu-west-1"))
    assert epoch(start["eventTime"]) == b["burst_at"]
    assert epoch(end["eventTime"]) == b["end"]
    stats = end["insightDetails"]["insightContext"]["statistics"]
    assert stats["insightDuration"] == 3 and stats["insight"]["average"] == 40, stats
    assert high["live_done"] - high["live_ingested"] < 15


def test_an_old_burst_with_nothing_after_it_stays_open(high):
    """Hours-old calls are not live: only later calls of the same API settle their minutes."""
    c = high["cairn"]
    b = high["untailed"]
    records = insight_records(c, "eu-west-2")
    assert [r["insightDetails"]["state"] for r in records] == ["Start"], records
    assert epoch(records[0]["eventTime"]) == b["burst_at"]
    # Calls of another API do not settle it.
    other = Timeline("high-untailed-other")
    for k in range(20):
        other.call(b["end"] + k * MINUTE, "eu-west-2", "iam.amazonaws.com", "CreateUser")
    ingest_timeline(c, other)
    time.sleep(1.5)
    assert len(insight_records(c, "eu-west-2")) == 1
    # The rest of the timeline does.
    ingest_timeline(c, high["untailed_tl"], after=b["end"])
    start, end = pair(wait_records(c, "eu-west-2", 2))
    assert start == records[0]
    assert epoch(end["eventTime"]) == b["end"]


def test_each_error_code_is_a_series_of_its_own(high):
    c = high["cairn"]
    m = high["mixed"]
    records = insight_records(c, m["region"])
    by_code: dict[str, list[dict]] = {}
    for r in records:
        by_code.setdefault(r["insightDetails"].get("errorCode"), []).append(r)
    assert sorted(by_code) == ["AccessDenied", "ThrottlingException"], records
    shared = set()
    for code, recs in by_code.items():
        start, end = pair(recs)
        for r, state in ((start, "Start"), (end, "End")):
            check_shape(r, state=state, region=m["region"], source="kms.amazonaws.com",
                        name="Decrypt", itype="ApiErrorRateInsight", error=code)
        assert epoch(start["eventTime"]) == m["at"] and epoch(end["eventTime"]) == m["end"]
        stats = end["insightDetails"]["insightContext"]["statistics"]
        assert stats["insight"]["average"] == 30 and stats["insightDuration"] == 3, stats
        shared.add(start["sharedEventID"])
        if code == "ThrottlingException":
            # Never seen before: a baseline of nothing.
            assert stats["baseline"]["average"] == 0, stats
            attrs = end["insightDetails"]["insightContext"]["attributions"]
            assert all(a["baseline"] == [] for a in attrs), attrs
    assert len(shared) == 2


def test_a_lull_inside_an_insight_does_not_end_it(high):
    """40, 0, 10 and 3 calls in four minutes after a week at 0.1 a minute: one insight; the
    quiet minute alone does not end it, the two after the 3 do; its End is the end of the
    last busy minute and its average is over the whole incident."""
    c = high["cairn"]
    start, end = pair(insight_records(c, "us-east-2"))
    assert epoch(start["eventTime"]) == BURST_AT
    assert epoch(end["eventTime"]) == BURST_AT + 4 * MINUTE
    stats = end["insightDetails"]["insightContext"]["statistics"]
    assert stats["insightDuration"] == 4, stats
    assert math.isclose(stats["insight"]["average"], (40 + 0 + 10 + 3) / 4), stats
    users = end["insightDetails"]["insightContext"]["attributions"][0]
    assert users["insight"][0]["value"] == MINER
    assert math.isclose(users["insight"][0]["average"], 53 / 4), users


def test_the_high_sensitivity_finds_the_small_burst(high):
    c = high["cairn"]
    b = high["small"]
    start, end = pair(insight_records(c, b["region"]))
    assert epoch(start["eventTime"]) == b["burst_at"]
    assert start["insightDetails"]["insightContext"]["statistics"]["insight"]["average"] == 5


# --------------------------------------------------------------------------------------------
# --insights-min-history
# --------------------------------------------------------------------------------------------

def test_a_short_history_suffices_with_a_shorter_min_history(tmp_path):
    c = start_server(tmp_path, "short", ["--insights-min-history", "1h"])
    try:
        trail_with_bucket(c, "main", selectors=BOTH)
        tl = Timeline("short-history")
        b = short_history_then_burst(tl, "eu-west-1", seed=41)
        ingest_timeline(c, tl)
        start, end = pair(wait_records(c, "eu-west-1", 2))
        assert epoch(start["eventTime"]) == b["burst_at"]
        stats = start["insightDetails"]["insightContext"]["statistics"]
        # The baseline is the two hours there are.
        assert stats["baselineDuration"] == 120, stats
        assert end["insightDetails"]["insightContext"]["statistics"]["insightDuration"] == 6
    finally:
        stop_server(c)


# --------------------------------------------------------------------------------------------
# Restarts in the middle of an insight
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restart_in_the_middle_of_an_insight_keeps_it(tmp_path, sig):
    c = start_server(tmp_path, "restart", [])
    try:
        trail_with_bucket(c, "main", selectors=BOTH)
        tl = Timeline(f"restart-{sig.name}")
        b = steady_week_then_burst(tl, "eu-west-1", seed=13)
        middle = b["burst_at"] + 4 * MINUTE
        ingest_timeline(c, tl, until=middle)
        start = wait_records(c, "eu-west-1", 1)[0]
        assert start["insightDetails"]["state"] == "Start"
        time.sleep(0.3)
        assert len(insight_records(c, "eu-west-1")) == 1, "no End before the burst is over"

        status, clean = c.server.stop(sig)
        if sig == signal.SIGTERM:
            assert clean and status == 0, (status, c.server.log_tail())
        c._clients.clear()
        c.server.start()
        # Still open: nothing new without more events.
        time.sleep(1)
        assert [r["eventID"] for r in insight_records(c, "eu-west-1")] == [start["eventID"]]
        ingest_timeline(c, tl, after=middle)
        wait_records(c, "eu-west-1", 2)
        time.sleep(0.5)
        records = insight_records(c, "eu-west-1")
        s, e = pair(records)
        assert s == start, "the Start is the one made before the restart"
        assert e["sharedEventID"] == start["sharedEventID"]
        stats = e["insightDetails"]["insightContext"]["statistics"]
        assert stats["insightDuration"] == 6, stats
        assert stats["insight"]["average"] == 40, stats
        assert epoch(e["eventTime"]) == b["end"]
    finally:
        stop_server(c)


# --------------------------------------------------------------------------------------------
# Accounts and data events
# --------------------------------------------------------------------------------------------

OTHER = (OTHER_ACCESS_KEY_ID, OTHER_SECRET_ACCESS_KEY)
DATA_INSIGHTS = json.dumps([{"InsightType": "ApiCallRateInsight", "EventCategories": ["Data"]}])


def data_burst(tl: Timeline, region: str, *, seed: int, burst_at: int = BURST_AT) -> dict:
    """A week and a day of S3 GetObject data events at ~0.3 a minute, then 60 a minute for 3
    minutes by the miner."""
    rng = random.Random(seed)
    start = burst_at - 8 * DAY
    end = burst_at + 3 * MINUTE
    kw = dict(read_only=True, data=True)
    tl.call(start, region, "s3.amazonaws.com", "GetObject", **kw)
    tl.noise(rng, start + MINUTE, (8 * DAY + 15 * MINUTE) // MINUTE - 1, 0.3, region,
             "s3.amazonaws.com", "GetObject", skip=(burst_at, end), **kw)
    tl.burst(burst_at, 3, 60, region, "s3.amazonaws.com", "GetObject", user=MINER,
             agent=MINER_AGENT, **kw)
    for k in range(1, 6):
        tl.call(end + k * 3 * MINUTE + 10, region, "s3.amazonaws.com", "GetObject", **kw)
    return {"region": region, "burst_at": burst_at, "end": end}


def data_trail(c: Cairn, name: str, keys: tuple[str, str] | None = None) -> None:
    """A logging multi-region trail of management and S3 object data events with call-rate
    Insights on data events only."""
    creds = {"access_key": keys[0], "secret_key": keys[1]} if keys else {}
    ct = c.client("cloudtrail", **creds)
    c.client("s3", **creds).create_bucket(Bucket=f"{name}-logs")
    ct.create_trail(Name=name, S3BucketName=f"{name}-logs", IsMultiRegionTrail=True)
    # Data-event Insights need data events logged.
    boto_fails("InvalidInsightSelectorsException", ct.put_insight_selectors,
               TrailName=name, InsightSelectors=json.loads(DATA_INSIGHTS))
    ct.put_event_selectors(TrailName=name, AdvancedEventSelectors=[
        {"Name": "management", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management"]}]},
        {"Name": "objects", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}]}])
    out = ct.put_insight_selectors(TrailName=name, InsightSelectors=json.loads(DATA_INSIGHTS))
    assert out["InsightSelectors"] == json.loads(DATA_INSIGHTS)
    got = ct.get_insight_selectors(TrailName=name)
    assert got["InsightSelectors"] == json.loads(DATA_INSIGHTS)
    ct.start_logging(Name=name)


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    """A server with two accounts. The first has a trail with data-event call-rate Insights
    only; the second one with management Insights of both types and one with data-event
    call-rate Insights. Workloads, in order: the first account's RunInstances burst and
    GetObject burst in eu-west-1; the second's burst after two hours of history in eu-west-1
    (where the first has a week), then its GetObject burst and its RunInstances burst after a
    week in eu-central-1."""
    tmp = tmp_path_factory.mktemp("insights_accounts")
    data_dir = tmp / "data"
    data_dir.mkdir()
    # Serving once as the second account adds it and its key (see conftest.second_account).
    other = CairnServer(data_dir, tmp / "accounts.log", OTHER_ACCESS_KEY_ID,
                        OTHER_SECRET_ACCESS_KEY, account_id=OTHER_ACCOUNT_ID)
    other.start()
    other.stop()
    server = CairnServer(data_dir, tmp / "accounts.log", extra_args=["--delivery-interval", "1s"])
    server.start()
    c = Cairn(server, tmp)
    _LIVE.append(c)
    try:
        data_trail(c, "data")
        trail_with_bucket(c, "other", selectors=BOTH, keys=OTHER)
        data_trail(c, "other-data", keys=OTHER)

        facts = {"cairn": c}
        mine = Timeline("accounts-mine")
        facts["mine_mgmt"] = steady_week_then_burst(mine, "eu-west-1", seed=31)
        facts["mine_data"] = data_burst(mine, "eu-west-1", seed=32)
        ingest_timeline(c, mine)
        theirs = Timeline("accounts-theirs", account=OTHER_ACCOUNT_ID)
        facts["theirs_short"] = short_history_then_burst(theirs, "eu-west-1", seed=33)
        ingest_timeline(c, theirs, keys=OTHER)
        theirs2 = Timeline("accounts-theirs-2", account=OTHER_ACCOUNT_ID)
        facts["theirs_data"] = data_burst(theirs2, "eu-central-1", seed=34)
        facts["theirs_mgmt"] = steady_week_then_burst(theirs2, "eu-central-1", seed=35)
        ingest_timeline(c, theirs2, keys=OTHER)
        wait_records(c, "eu-central-1", 4, keys=OTHER)
        yield facts
    finally:
        stop_server(c)


def test_data_event_insights_on_a_trail(accounts):
    c = accounts["cairn"]
    b = accounts["mine_data"]
    records = insight_records(c)
    # Management Insights are off for this account: only the GetObject burst (reads count:
    # call-rate Insights on data events take every call).
    start, end = pair(records)
    for r, state in ((start, "Start"), (end, "End")):
        attrs = check_shape(r, state=state, region="eu-west-1", source="s3.amazonaws.com",
                            name="GetObject", itype="ApiCallRateInsight", data=True)
        assert attrs["userIdentityArn"]["insight"][0]["value"] == MINER
    assert epoch(start["eventTime"]) == b["burst_at"] and epoch(end["eventTime"]) == b["end"]
    stats = end["insightDetails"]["insightContext"]["statistics"]
    assert stats["insightDuration"] == 3 and stats["insight"]["average"] == 60, stats
    files = wait_until("the data-event insight in the trail's bucket",
                       lambda: bucket_files(c, "data-logs", "CloudTrail-Insight") or None, 30)
    assert sorted(r["eventID"] for recs in files.values() for r in recs) == sorted(
        [start["eventID"], end["eventID"]])


def theirs_by_name(c: Cairn) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in insight_records(c, keys=OTHER):
        out.setdefault(r["insightDetails"]["eventName"], []).append(r)
    return out


def test_accounts_are_judged_and_shown_apart(accounts):
    c = accounts["cairn"]
    by_name = theirs_by_name(c)
    # The second account's bursts after a week in eu-central-1, not its burst after two hours
    # in eu-west-1 (where the first account has a week of history).
    assert sorted(by_name) == ["GetObject", "RunInstances"], by_name
    start, end = pair(by_name["RunInstances"])
    for r, state in ((start, "Start"), (end, "End")):
        check_shape({**r, "recipientAccountId": ACCOUNT_ID}, state=state, region="eu-central-1",
                    source="ec2.amazonaws.com", name="RunInstances",
                    itype="ApiCallRateInsight")
        assert r["recipientAccountId"] == OTHER_ACCOUNT_ID
    assert epoch(start["eventTime"]) == accounts["theirs_mgmt"]["burst_at"]
    s3_start, _ = pair(by_name["GetObject"])
    assert s3_start["awsRegion"] == "eu-central-1"
    theirs = {r["eventID"] for recs in by_name.values() for r in recs}
    mine = {r["eventID"] for r in insight_records(c)}
    assert len(mine) == 2 and not mine & theirs
    # Each account finds only its own, by any lookup.
    ct_other = c.client("cloudtrail", access_key=OTHER[0], secret_key=OTHER[1])
    for eid in mine:
        got = ct_other.lookup_events(EventCategory="insight", LookupAttributes=[
            {"AttributeKey": "EventId", "AttributeValue": eid}])["Events"]
        assert got == []
    for eid in theirs:
        assert insight_events(c, LookupAttributes=[
            {"AttributeKey": "EventId", "AttributeValue": eid}]) == []


def test_insight_files_follow_each_trails_event_categories(accounts):
    """The second account's trail with management Insights gets the RunInstances insight; its
    trail with data-event Insights the GetObject one."""
    c = accounts["cairn"]
    by_name = theirs_by_name(c)
    s3 = c.client("s3", access_key=OTHER[0], secret_key=OTHER[1])

    def delivered(bucket):
        files = bucket_files(c, bucket, "CloudTrail-Insight", account=OTHER_ACCOUNT_ID, s3=s3)
        for key in files:
            assert key.startswith(f"AWSLogs/{OTHER_ACCOUNT_ID}/CloudTrail-Insight/eu-central-1/")
        return sorted((r["insightDetails"]["eventName"], r["eventID"])
                      for recs in files.values() for r in recs)

    wait_until("the second account's insight files",
               lambda: len(delivered("other-logs")) >= 2 and len(delivered("other-data-logs")) >= 2,
               30)
    time.sleep(1.5)
    assert delivered("other-logs") == sorted(("RunInstances", r["eventID"])
                                             for r in by_name["RunInstances"])
    assert delivered("other-data-logs") == sorted(("GetObject", r["eventID"])
                                                  for r in by_name["GetObject"])
