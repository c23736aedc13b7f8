"""CloudTrail Lake on Cairn: event data stores (the account's default store and stores of its
own, with their whole lifecycle and every error), SQL queries over them with the real AWS CLI
(`aws cloudtrail start-query` and its siblings) and boto3, answers checked against the five
seed questions and against DuckDB running the same statements over the lake's Parquet files,
paging, the concurrency limit, cancelling, timing out, stores with selectors, the `cairn query`
command and the isolation of accounts.

The module's server writes the lake's hot set out after 200 ms (`--lake-flush 200ms`), so the
Parquet files appear quickly; a second server with `--query-timeout 1s` checks TIMED_OUT.
DuckDB reads the second account's files (panther and OTRF only) as catalog.json lists them,
with the statement's table replaced by `read_parquet([...], hive_partitioning = false)`.
Cairn records the tests' own API calls as events in the caller's account: the SQL below
leaves them out (by the tests' access keys, or by filtering on the data it asks about)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from conftest import (
    _LIVE,
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    OTHER_ACCESS_KEY_ID,
    REGION,
    Cairn,
    CairnServer,
    cairn_bin,
    dataset,
    epoch,
    minify,
    parse_iso,
    read_jsonl,
)

duckdb = pytest.importorskip("duckdb", reason="pip install -r tests/acceptance/requirements.txt")

LAKE_ARGS = ["--lake-flush", "200ms"]
DONE = ("FINISHED", "FAILED", "CANCELLED", "TIMED_OUT")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Cairn's records of the tests' own calls carry the tests' access keys.
NOT_OWN = (f"coalesce(useridentity.accesskeyid, '') NOT IN "
           f"('{ACCESS_KEY_ID}', '{OTHER_ACCESS_KEY_ID}')")
PAGING_SOURCE = "paging.cairn.example"
PAGING_EVENTS = 3000
SLOW = "SELECT count(*) FROM {id} a, {id} b, {id} c"


# --------------------------------------------------------------------------------------------
# The servers
# --------------------------------------------------------------------------------------------

def start_server(tmp: Path, name: str, extra: list[str]) -> Cairn:
    data_dir = tmp / name
    data_dir.mkdir()
    server = CairnServer(data_dir, tmp / f"{name}.log", extra_args=extra)
    server.start()
    return Cairn(server, tmp)


def stop_server(c: Cairn) -> None:
    server = c.server
    crashed = server.proc is not None and server.proc.poll() is not None
    status = server.proc.returncode if crashed else None
    server.stop()
    if crashed:
        pytest.fail(f"cairn serve died during the tests (exit status {status})\n"
                    f"--- server log ---\n{server.log_tail()}", pytrace=False)


@pytest.fixture(scope="module")
def cairn(tmp_path_factory):
    """This module's server: as conftest's, with the lake flushing every 200 ms."""
    c = start_server(tmp_path_factory.mktemp("test_lake"), "data", LAKE_ARGS)
    _LIVE.append(c)
    try:
        yield c
    finally:
        _LIVE.remove(c)
        stop_server(c)


@pytest.fixture(scope="module", autouse=True)
def accounts(second_account):
    """Both accounts exist before any test runs (adding the second restarts the server)."""
    return second_account


@pytest.fixture
def ct(cairn):
    """boto3 CloudTrail client of the first account (on the server's current endpoint)."""
    return cairn.client("cloudtrail")


@pytest.fixture
def other(cairn, accounts):
    """The second account's boto3 client."""
    return cairn.client("cloudtrail", access_key=accounts.access_key,
                        secret_key=accounts.secret_key)


@pytest.fixture(scope="module")
def other_aws(cairn, accounts):
    """The AWS CLI as the second account."""
    def run(*args, check=True):
        return cli(cairn, accounts.access_key, accounts.secret_key, *args, check=check)
    return run


def cli(c: Cairn, key: str, secret: str, *args: str, check: bool = True, timeout: float = 120):
    cmd = [str(c.aws_bin), *args, "--endpoint-url", c.endpoint, "--output", "json",
           "--region", c.region]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": c.region, "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1",
    })
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if not check:
        return proc
    assert proc.returncode == 0, (f"aws {' '.join(args)} exited {proc.returncode}\n"
                                  f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def cli_error(proc) -> str:
    """The error code of a failed AWS CLI call."""
    assert proc.returncode != 0, f"expected an error, got: {proc.stdout}"
    if "Read timeout on endpoint URL" in proc.stderr:
        pytest.fail(f"aws {' '.join(proc.args[1:4])}...: the server did not answer in time",
                    pytrace=False)
    m = re.search(r"An error occurred \(([A-Za-z]+)\)", proc.stderr)
    assert m, f"no error code in: {proc.stderr}"
    return m.group(1)


def aws_fails(aws, code: str, *args: str) -> str:
    proc = aws(*args, check=False)
    got = cli_error(proc)
    assert got == code, f"aws {' '.join(args)}: expected {code}, got {got}: {proc.stderr}"
    return proc.stderr


def boto_fails(code: str, fn, status: int | None = None, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as e:
        fn(**kwargs)
    got = e.value.response["Error"]["Code"]
    assert got == code, f"{fn.__name__}({kwargs}): expected {code}, got {got}: {e.value}"
    if status is not None:
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return e.value


def cells(row: list[dict]) -> tuple[list[str], tuple]:
    """(column names, values) of one GetQueryResults row: a list of single-entry maps."""
    names, values = [], []
    for cell in row:
        assert isinstance(cell, dict) and len(cell) == 1, f"a cell is not a one-entry map: {row}"
        (k, v), = cell.items()
        assert v is None or isinstance(v, str), f"a value is not a string or null: {row}"
        names.append(k)
        values.append(v)
    return names, tuple(values)


class Answer:
    def __init__(self, query_id, describe, columns, rows, pages):
        self.query_id = query_id
        self.describe = describe
        self.columns = columns
        self.rows = rows
        self.pages = pages

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def collect_rows(pages: list[dict]) -> tuple[list[str], list[tuple]]:
    columns: list[str] | None = None
    rows = []
    for page in pages:
        for raw in page.get("QueryResultRows", []):
            names, values = cells(raw)
            if columns is None:
                columns = names
            assert names == columns, f"rows name their columns differently: {names} {columns}"
            rows.append(values)
    return columns or [], rows


def wait_boto(client, query_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = client.describe_query(QueryId=query_id)
        if d["QueryStatus"] in DONE:
            return d
        assert time.monotonic() < deadline, f"query still {d['QueryStatus']} after {timeout} s"
        time.sleep(0.05)


def sql_boto(client, statement: str, page: int = 1000, expect: str = "FINISHED",
             timeout: float = 60) -> Answer:
    """Runs a query with boto3 and reads every page of its results."""
    qid = client.start_query(QueryStatement=statement)["QueryId"]
    d = wait_boto(client, qid, timeout)
    assert d["QueryStatus"] == expect, f"{statement}\n-> {d}"
    pages = []
    token = None
    while True:
        kwargs = {"QueryId": qid, "MaxQueryResults": page}
        if token:
            kwargs["NextToken"] = token
        p = client.get_query_results(**kwargs)
        pages.append(p)
        token = p.get("NextToken")
        if not token:
            break
        assert len(pages) < 10_000
    columns, rows = collect_rows(pages)
    return Answer(qid, d, columns, rows, pages)


def wait_cli(aws, query_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = aws("cloudtrail", "describe-query", "--query-id", query_id)
        if d["QueryStatus"] in DONE:
            return d
        assert time.monotonic() < deadline, f"query still {d['QueryStatus']} after {timeout} s"
        time.sleep(0.1)


def sql_cli(aws, statement: str, page: int | None = None, expect: str = "FINISHED") -> Answer:
    """Runs a query with the AWS CLI: start-query, describe-query until it ends, then every
    page of get-query-results."""
    out = aws("cloudtrail", "start-query", "--query-statement", statement)
    qid = out["QueryId"]
    assert UUID_RE.match(qid), out
    d = wait_cli(aws, qid)
    assert d["QueryStatus"] == expect, f"{statement}\n-> {d}"
    pages = []
    token = None
    while True:
        args = ["cloudtrail", "get-query-results", "--query-id", qid]
        if page:
            args += ["--max-query-results", str(page)]
        if token:
            args += ["--next-token", token]
        p = aws(*args)
        pages.append(p)
        token = p.get("NextToken")
        if not token:
            break
        assert len(pages) < 1000
    columns, rows = collect_rows(pages)
    return Answer(qid, d, columns, rows, pages)


def default_store_of(list_output: dict) -> dict:
    mine = [s for s in list_output["EventDataStores"] if s["Name"] == "cairn-default"]
    assert len(mine) == 1, list_output
    return mine[0]


def store_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def wait_until(what: str, fn, timeout: float = 30, interval: float = 0.2):
    """Calls fn until it returns something true; fails after `timeout` with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {timeout} s (last: {value!r})")
        time.sleep(interval)


def impatient(c: Cairn, read_timeout: float = 10):
    """A boto3 client that waits at most `read_timeout` for an answer and does not retry."""
    return boto3.session.Session().client(
        "cloudtrail", endpoint_url=c.endpoint, region_name=c.region,
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=5, read_timeout=read_timeout))


def answered(what: str, fn, **kwargs):
    """fn(**kwargs), failing clearly when the server does not answer in time."""
    t0 = time.monotonic()
    try:
        return fn(**kwargs)
    except (ReadTimeoutError, ConnectTimeoutError):
        pytest.fail(f"{what}: the server did not answer within "
                    f"{time.monotonic() - t0:.0f} s", pytrace=False)


def cancel_all(client, ids) -> None:
    for qid in reversed(list(ids)):
        try:
            client.cancel_query(QueryId=qid)
        except ClientError as e:
            if e.response["Error"]["Code"] != "InactiveQueryException":
                raise


def synthetic(n: int, source: str, prefix: str, start: str = "2025-06-01T00:00:00") -> list[dict]:
    """n management events of one source with ids `<prefix>-...-<i>`, a second apart."""
    t0 = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc)
    out = []
    for i in range(n):
        out.append({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAPAGINGEXAMPLE0001",
                             "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/pager",
                             "accountId": ACCOUNT_ID, "accessKeyId": "AKIAPAGINGEXAMPLE001",
                             "userName": "pager"},
            "eventTime": (t0 + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": f"Op{i % 7}",
            "awsRegion": "us-east-1",
            "sourceIPAddress": f"198.51.100.{i % 250}",
            "userAgent": "cairn-tests",
            "requestParameters": {"n": i},
            "responseElements": None,
            "requestID": str(uuid.uuid4()),
            "eventID": f"{prefix}-0000-4000-8000-{i:012d}",
            "readOnly": i % 2 == 0,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT_ID,
            "eventCategory": "Management",
        })
    return out


# --------------------------------------------------------------------------------------------
# Shared data
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_id(cairn, aws):
    """The default event data store's id, as ListEventDataStores gives it."""
    return store_id(default_store_of(aws("cloudtrail", "list-event-data-stores"))
                    ["EventDataStoreArn"])


@pytest.fixture(scope="module")
def seed(cairn):
    answer = cairn.ingest(dataset("seed-scenarios.jsonl").read_bytes())
    assert answer["stored"] == 7, answer
    return {json.loads(line)["eventID"]: line for line in
            dataset("seed-scenarios.jsonl").read_text(encoding="utf-8").splitlines() if line}


def count_where(client, sid: str, where: str) -> int:
    a = sql_boto(client, f"SELECT count(*) FROM {sid} WHERE {where}")
    return int(a.rows[0][0])


@pytest.fixture(scope="module")
def seed_ready(cairn, seed, default_id):
    """The seed events, once a query sees them all."""
    ct = cairn.client("cloudtrail")
    ids = ", ".join(f"'{i}'" for i in seed)
    wait_until("the seed events are queryable",
               lambda: count_where(ct, default_id, f"eventid IN ({ids})") == 7)
    return seed


@pytest.fixture(scope="module")
def paging(cairn, default_id):
    """3,000 synthetic events of one source in the first account."""
    ct = cairn.client("cloudtrail")
    records = synthetic(PAGING_EVENTS, PAGING_SOURCE, "5e000000")
    for i in range(0, len(records), 1000):
        answer = cairn.ingest(records[i:i + 1000], fmt="ndjson")
        assert answer["stored"] == 1000, answer
    wait_until("the synthetic events are queryable",
               lambda: count_where(ct, default_id, f"eventsource = '{PAGING_SOURCE}'")
               == PAGING_EVENTS)
    return records


# --------------------------------------------------------------------------------------------
# 1. Event data stores
# --------------------------------------------------------------------------------------------

def test_default_store(cairn, aws, default_id):
    out = aws("cloudtrail", "list-event-data-stores")
    d = default_store_of(out)
    assert UUID_RE.match(default_id)
    assert d["EventDataStoreArn"] == \
        f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:eventdatastore/{default_id}"
    assert d["Status"] == "ENABLED"
    assert d["TerminationProtectionEnabled"] is True
    assert d["RetentionPeriod"] == 3653
    # `serve` prints the id to use in SQL.
    m = re.findall(r"SQL \(Lake\):\s+FROM ([0-9a-f-]{36})", cairn.server.log_tail(10_000))
    assert m, "serve did not print the default event data store's id"
    assert m[-1] == default_id
    got = aws("cloudtrail", "get-event-data-store", "--event-data-store", default_id)
    assert got["Name"] == "cairn-default" and got["EventDataStoreArn"] == d["EventDataStoreArn"]
    by_arn = aws("cloudtrail", "get-event-data-store", "--event-data-store",
                 d["EventDataStoreArn"])
    assert by_arn["EventDataStoreArn"] == d["EventDataStoreArn"]
    # The default store keeps every event: it cannot be deleted while protected.
    aws_fails(aws, "EventDataStoreTerminationProtectedException",
              "cloudtrail", "delete-event-data-store", "--event-data-store", default_id)


def test_store_lifecycle(cairn, aws, ct, default_id):
    name = "lake-lifecycle"
    created = aws("cloudtrail", "create-event-data-store", "--name", name,
                  "--retention-period", "30", "--no-termination-protection-enabled")
    arn = created["EventDataStoreArn"]
    sid = store_id(arn)
    assert re.fullmatch(rf"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:eventdatastore/[0-9a-f-]{{36}}",
                        arn), arn
    assert sid != default_id
    assert created["Name"] == name
    assert created["Status"] == "ENABLED"
    assert created["RetentionPeriod"] == 30
    assert created["TerminationProtectionEnabled"] is False
    assert created["MultiRegionEnabled"] is True
    # Without selectors a store keeps every management event.
    sel = created["AdvancedEventSelectors"]
    assert [fs for s in sel for fs in s["FieldSelectors"]] == \
        [{"Field": "eventCategory", "Equals": ["Management"]}]
    # Get, by id and by ARN; List shows it.
    for ref in (sid, arn):
        got = aws("cloudtrail", "get-event-data-store", "--event-data-store", ref)
        assert got["EventDataStoreArn"] == arn and got["Name"] == name
        assert got["Status"] == "ENABLED"
    listed = {s["EventDataStoreArn"]: s for s in
              aws("cloudtrail", "list-event-data-stores")["EventDataStores"]}
    assert arn in listed and listed[arn]["Name"] == name

    # The same name again.
    aws_fails(aws, "EventDataStoreAlreadyExistsException",
              "cloudtrail", "create-event-data-store", "--name", name)

    # Update: retention, name; a retention out of range.
    up = aws("cloudtrail", "update-event-data-store", "--event-data-store", sid,
             "--retention-period", "90", "--name", "lake-lifecycle-renamed")
    assert up["RetentionPeriod"] == 90 and up["Name"] == "lake-lifecycle-renamed"
    assert aws("cloudtrail", "get-event-data-store",
               "--event-data-store", sid)["Name"] == "lake-lifecycle-renamed"
    aws_fails(aws, "InvalidParameterException", "cloudtrail", "update-event-data-store",
              "--event-data-store", sid, "--retention-period", "3654")
    # (Below the model's minimum, which the AWS CLI checks itself: sent without that check.)
    boto_fails("InvalidParameterException",
               cairn.client("cloudtrail", validate=False).update_event_data_store,
               EventDataStore=sid, RetentionPeriod=6)

    # Ingestion: stop, stop again, start, start again.
    aws("cloudtrail", "stop-event-data-store-ingestion", "--event-data-store", sid)
    assert aws("cloudtrail", "get-event-data-store",
               "--event-data-store", sid)["Status"] == "STOPPED_INGESTION"
    aws_fails(aws, "InvalidEventDataStoreStatusException",
              "cloudtrail", "stop-event-data-store-ingestion", "--event-data-store", sid)
    aws("cloudtrail", "start-event-data-store-ingestion", "--event-data-store", arn)
    assert aws("cloudtrail", "get-event-data-store",
               "--event-data-store", sid)["Status"] == "ENABLED"
    aws_fails(aws, "InvalidEventDataStoreStatusException",
              "cloudtrail", "start-event-data-store-ingestion", "--event-data-store", sid)
    # Restoring a store that is not pending deletion.
    aws_fails(aws, "InvalidEventDataStoreStatusException",
              "cloudtrail", "restore-event-data-store", "--event-data-store", sid)

    # A query over it works while it is live.
    a = sql_cli(aws, f"SELECT count(*) FROM {sid}")
    assert a.rows and a.rows[0][0].isdigit()

    # Delete: PENDING_DELETION, still listed, not queryable nor updatable, not deletable twice.
    assert aws("cloudtrail", "delete-event-data-store", "--event-data-store", sid) == {}
    got = aws("cloudtrail", "get-event-data-store", "--event-data-store", sid)
    assert got["Status"] == "PENDING_DELETION"
    listed = {s["EventDataStoreArn"]: s for s in
              aws("cloudtrail", "list-event-data-stores")["EventDataStores"]}
    assert listed[arn]["Status"] == "PENDING_DELETION"
    aws_fails(aws, "InvalidEventDataStoreStatusException",
              "cloudtrail", "delete-event-data-store", "--event-data-store", sid)
    aws_fails(aws, "InactiveEventDataStoreException",
              "cloudtrail", "start-query", "--query-statement", f"SELECT eventid FROM {sid}")
    aws_fails(aws, "InactiveEventDataStoreException", "cloudtrail", "update-event-data-store",
              "--event-data-store", sid, "--retention-period", "60")
    # Restore: back as it was.
    restored = aws("cloudtrail", "restore-event-data-store", "--event-data-store", sid)
    assert restored["Status"] == "ENABLED"
    assert restored["EventDataStoreArn"] == arn
    assert restored["RetentionPeriod"] == 90
    aws_fails(aws, "InvalidEventDataStoreStatusException",
              "cloudtrail", "restore-event-data-store", "--event-data-store", sid)
    sql_cli(aws, f"SELECT count(*) FROM {sid}")

    # Termination protection: on by default; on again, deletion is refused.
    protected = aws("cloudtrail", "create-event-data-store", "--name", "lake-protected",
                    "--no-start-ingestion")
    assert protected["TerminationProtectionEnabled"] is True
    assert protected["Status"] == "STOPPED_INGESTION"
    assert protected["RetentionPeriod"] == 366
    pid = store_id(protected["EventDataStoreArn"])
    aws_fails(aws, "EventDataStoreTerminationProtectedException",
              "cloudtrail", "delete-event-data-store", "--event-data-store", pid)
    aws("cloudtrail", "update-event-data-store", "--event-data-store", pid,
        "--no-termination-protection-enabled")
    aws("cloudtrail", "delete-event-data-store", "--event-data-store", pid)
    restored = aws("cloudtrail", "restore-event-data-store", "--event-data-store", pid)
    assert restored["Status"] == "STOPPED_INGESTION"

    # Clean up: both deleted (pending deletion still counts as a store).
    aws("cloudtrail", "delete-event-data-store", "--event-data-store", pid)
    aws("cloudtrail", "delete-event-data-store", "--event-data-store", sid)


def test_list_event_data_stores_paging(aws):
    made = [aws("cloudtrail", "create-event-data-store", "--name", f"lake-page-{i}",
                "--no-termination-protection-enabled")["EventDataStoreArn"] for i in range(2)]
    full = [s["EventDataStoreArn"] for s in
            aws("cloudtrail", "list-event-data-stores")["EventDataStores"]]
    assert len(full) >= 3 and set(made) <= set(full)
    seen, token = [], None
    for _ in range(20):
        args = ["cloudtrail", "list-event-data-stores", "--max-results", "1"]
        if token:
            args += ["--next-token", token]
        out = aws(*args)
        assert len(out["EventDataStores"]) <= 1
        seen += [s["EventDataStoreArn"] for s in out["EventDataStores"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == full
    for arn in made:
        aws("cloudtrail", "delete-event-data-store", "--event-data-store", arn)


@pytest.mark.parametrize("args,code", [
    # A dict: sent by boto3 without the client-side checks the AWS CLI makes (name length,
    # minimum retention), so that the server's own checks answer.
    ({"Name": "ab"}, "InvalidParameterException"),
    (["--name", "has space"], "InvalidParameterException"),
    ({"Name": "bad/name"}, "InvalidParameterException"),
    ({"Name": "x" * 129}, "InvalidParameterException"),
    ({"Name": "lake-r6", "RetentionPeriod": 6}, "InvalidParameterException"),
    (["--name", "lake-r3654", "--retention-period", "3654"], "InvalidParameterException"),
    (["--name", "lake-fixed", "--billing-mode", "FIXED_RETENTION_PRICING",
      "--retention-period", "2558"], "InvalidParameterException"),
    ({"Name": "lake-sel-empty", "AdvancedEventSelectors": []},
     "InvalidEventSelectorsException"),
    (["--name", "lake-sel-bogus", "--advanced-event-selectors",
      '[{"Name":"x","FieldSelectors":[{"Field":"eventCategory","Equals":["Bogus"]}]}]'],
     "InvalidEventSelectorsException"),
    ({"Name": "lake-sel-nofield", "AdvancedEventSelectors": [
        {"Name": "x", "FieldSelectors": [{"Field": "noSuchField", "Equals": ["a"]}]}]},
     "InvalidEventSelectorsException"),
    ({"Name": "lake-sel-data", "AdvancedEventSelectors": [
        {"Name": "x", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}]},
     "InvalidEventSelectorsException"),  # data events need resources.type
    ({"Name": "lake-billing", "BillingMode": "CHEAP"}, "InvalidParameterException"),
], ids=["short", "space", "slash", "long", "retention6", "retention3654", "fixed2558",
        "selectors-empty", "selectors-bogus", "selectors-field", "selectors-data", "billing"])
def test_create_event_data_store_errors(cairn, aws, args, code):
    if isinstance(args, dict):
        boto_fails(code, cairn.client("cloudtrail", validate=False).create_event_data_store,
                   **args)
    else:
        aws_fails(aws, code, "cloudtrail", "create-event-data-store", *args)


def test_store_not_found_and_bad_arn(aws, ct):
    missing = str(uuid.uuid4())
    for op in ("get-event-data-store", "delete-event-data-store"):
        aws_fails(aws, "EventDataStoreNotFoundException", "cloudtrail", op,
                  "--event-data-store", missing)
    for fn in (ct.restore_event_data_store, ct.start_event_data_store_ingestion,
               ct.stop_event_data_store_ingestion):
        boto_fails("EventDataStoreNotFoundException", fn, status=404, EventDataStore=missing)
    boto_fails("EventDataStoreNotFoundException", ct.update_event_data_store, status=404,
               EventDataStore=missing, RetentionPeriod=30)
    boto_fails("EventDataStoreNotFoundException", ct.get_event_data_store, status=404,
               EventDataStore=f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:eventdatastore/{missing}")
    for bad in ("arn:aws:s3:::bucket", "arn:aws:cloudtrail:us-east-1:111122223333:trail/x"):
        aws_fails(aws, "EventDataStoreARNInvalidException", "cloudtrail",
                  "get-event-data-store", "--event-data-store", bad)
    aws_fails(aws, "EventDataStoreNotFoundException", "cloudtrail", "start-query",
              "--query-statement", f"SELECT eventid FROM {missing}")


# --------------------------------------------------------------------------------------------
# 2. The seed questions, in SQL over the default store
# --------------------------------------------------------------------------------------------

def test_q1_who_deleted_the_cat_photo_database(aws, seed_ready, default_id):
    a = sql_cli(aws, "SELECT userIdentity.userName, eventTime, sourceIPAddress, awsRegion, "
                     f"eventSource FROM {default_id} WHERE eventname = 'DeleteDBInstance'")
    assert a.columns == ["userName", "eventTime", "sourceIPAddress", "awsRegion", "eventSource"]
    assert a.rows == [("alana", "2020-06-09 13:37:34.000", "205.251.233.48", "us-west-2",
                       "rds.amazonaws.com")]
    # Found by the resource as well: request parameters are a map of text.
    a = sql_cli(aws, f"SELECT eventname, useridentity.username FROM {default_id} WHERE "
                     "element_at(requestparameters, 'dBInstanceIdentifier') = 'cat-photos-db'")
    assert a.rows == [("DeleteDBInstance", "alana")]
    # Booleans read as true/false; a map value that is a JSON boolean is its JSON text.
    a = sql_cli(aws, "SELECT readonly, managementevent, "
                     "requestparameters['skipFinalSnapshot'], "
                     f"responseelements['dBInstanceStatus'] FROM {default_id} "
                     "WHERE eventid = '0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f'")
    assert a.rows == [("false", "true", "true", "deleting")]


def test_q2_who_created_mary(aws, seed_ready, default_id):
    a = sql_cli(aws, "SELECT useridentity.username, eventtime, useragent, "
                     "sessioncredentialfromconsole, element_at(requestparameters, 'userName') "
                     "AS created, useridentity.sessioncontext.attributes.mfaauthenticated "
                     f"FROM {default_id} WHERE eventname = 'CreateUser'")
    assert a.columns == ["username", "eventtime", "useragent", "sessioncredentialfromconsole",
                         "created", "mfaauthenticated"]
    assert a.rows == [("John", "2020-01-01 09:00:00.000", "console.amazonaws.com", "true",
                       "Mary", "true")]


def test_q3_what_kodekloud_launched(aws, seed_ready, default_id):
    original = json.loads(seed_ready["e2f69382-7637-4deb-83ed-e6ee31cac1c4"])
    a = sql_cli(
        aws,
        "SELECT eventname, "
        "json_extract_scalar(responseelements['instancesSet'], '$.items[0].instanceId'), "
        "json_extract_scalar(requestparameters, '$.instancesSet.items[0].keyName'), "
        "json_extract_scalar(responseelements, "
        "'$.instancesSet.items[0].groupSet.items[0].groupName'), "
        "element_at(requestparameters, 'instancesSet'), responseelements['instancesSet'], "
        "day_of_week(eventtime) "
        f"FROM {default_id} WHERE useridentity.username = 'kodekloud' "
        "AND eventtime >= '2023-10-08 00:00:00' AND eventtime < '2023-10-09 00:00:00'")
    assert a.columns == ["eventname", "_col1", "_col2", "_col3", "_col4", "_col5", "_col6"]
    assert len(a.rows) == 1, a.rows
    name, instance, key, group, request, response, dow = a.rows[0]
    assert (name, instance, key, group) == ("RunInstances", "i-0123456789abcdef0", "Ohio-Key",
                                            "Webserver_SG")
    # Nested values are JSON text: request parameters and response elements, whole.
    assert json.loads(request) == original["requestParameters"]["instancesSet"]
    assert json.loads(response) == original["responseElements"]["instancesSet"]
    assert dow == "7"  # a Sunday (Presto: Monday 1 ... Sunday 7)
    # Nothing for kodekloud on the next day.
    a = sql_cli(aws, f"SELECT eventid FROM {default_id} WHERE useridentity.username = "
                     "'kodekloud' AND eventtime >= '2023-10-09 00:00:00'")
    assert a.rows == []


def test_q4_who_deleted_whiskers(aws, seed_ready, default_id):
    a = sql_cli(aws, "SELECT useridentity.username, eventtime, eventcategory, managementevent, "
                     "element_at(requestparameters, 'bucketName') AS bucket, "
                     "requestparameters['key'] AS objectkey, tlsdetails.tlsversion, "
                     "additionaleventdata['bytesTransferredIn'] "
                     f"FROM {default_id} WHERE eventsource = 's3.amazonaws.com' "
                     "AND eventname = 'DeleteObject' "
                     "AND element_at(requestparameters, 'key') = '2024/whiskers.jpg'")
    assert a.columns == ["username", "eventtime", "eventcategory", "managementevent", "bucket",
                         "objectkey", "tlsversion", "_col7"]
    assert a.rows == [("dev-intern", "2024-03-14 10:22:05.000", "Data", "false", "cat-photos",
                       "2024/whiskers.jpg", "TLSv1.3", "0")]


def test_q5_failed_console_sign_ins(aws, seed_ready, default_id):
    a = sql_cli(aws, "SELECT eventtime, sourceipaddress, errormessage, "
                     "responseelements['ConsoleLogin'] AS outcome "
                     f"FROM {default_id} WHERE eventname = 'ConsoleLogin' "
                     "AND useridentity.username = 'dev-intern' ORDER BY eventtime")
    assert a.columns == ["eventtime", "sourceipaddress", "errormessage", "outcome"]
    assert a.rows == [
        ("2024-03-14 09:58:11.000", "203.0.113.9", "Failed authentication", "Failure"),
        ("2024-03-14 09:58:40.000", "203.0.113.9", "Failed authentication", "Failure"),
        ("2024-03-14 10:01:02.000", "192.0.2.77", None, "Success"),  # null is JSON null
    ]
    a = sql_cli(aws, f"SELECT sourceipaddress, count(*) AS failures FROM {default_id} "
                     "WHERE eventname = 'ConsoleLogin' AND errormessage IS NOT NULL "
                     "GROUP BY sourceipaddress")
    assert a.rows == [("203.0.113.9", "2")]


def test_column_names_functions_and_eventjson(cairn, aws, seed_ready, default_id):
    eid = "0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f"
    a = sql_cli(aws, "SELECT eventID, EVENTNAME, userIdentity.arn, lower(eventSource), "
                     "1 + 1 AS two, eventjson "
                     f"FROM {default_id} WHERE EventID = '{eid}'")
    assert a.columns == ["eventID", "EVENTNAME", "arn", "_col3", "two", "eventjson"]
    assert a.rows[0][:5] == (eid, "DeleteDBInstance", "arn:aws:iam::111122223333:user/alana",
                             "rds.amazonaws.com", "2")
    assert a.rows[0][5] == minify(seed_ready[eid]), "eventjson is not the record as stored"
    # Date functions (Presto's).
    a = sql_cli(aws, "SELECT year(eventtime), month(eventtime), day(eventtime), "
                     "hour(eventtime), minute(eventtime), day_of_week(eventtime), "
                     "date(eventtime), date_trunc('hour', eventtime), "
                     "date_add('day', 1, eventtime), "
                     "date_diff('day', eventtime, date_add('day', 10, eventtime)) "
                     f"FROM {default_id} WHERE eventid = '{eid}'")
    assert a.rows == [("2020", "6", "9", "13", "37", "2", "2020-06-09", "2020-06-09 13:00:00.000",
                       "2020-06-10 13:37:34.000", "10")]
    # The store named by its ARN.
    arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:eventdatastore/{default_id}"
    a = sql_cli(aws, f"SELECT eventname FROM {arn} WHERE eventid = '{eid}'")
    assert a.rows == [("DeleteDBInstance",)]
    # Null values travel as JSON null in the raw answer.
    status, _, body = raw_results(cairn, f"SELECT eventid, errorcode FROM {default_id} "
                                         f"WHERE eventid = '{eid}'")
    assert status == 200
    assert body["QueryResultRows"] == [[{"eventid": eid}, {"errorcode": None}]]


# Spec 7.2: CloudTrail Lake's event schema, all lower case.
SCHEMA = ("eventversion", "useridentity", "eventtime", "eventsource", "eventname", "awsregion",
          "sourceipaddress", "useragent", "errorcode", "errormessage", "requestparameters",
          "responseelements", "additionaleventdata", "requestid", "eventid", "readonly",
          "resources", "eventtype", "apiversion", "managementevent", "recipientaccountid",
          "sharedeventid", "annotation", "vpcendpointid", "serviceeventdetails", "addendum",
          "edgedevicedetails", "insightdetails", "eventcategory", "tlsdetails",
          "sessioncredentialfromconsole", "eventjson", "eventjsonchecksum")


@pytest.mark.parametrize("column", SCHEMA)
def test_every_schema_column_is_selectable(ct, seed_ready, default_id, column):
    a = sql_boto(ct, f"SELECT {column} FROM {default_id} "
                     "WHERE eventid = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d'")
    assert a.columns == [column] and len(a.rows) == 1


def test_select_star(ct, seed_ready, default_id):
    a = sql_boto(ct, f"SELECT * FROM {default_id} "
                     "WHERE eventid = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d'")
    assert len(a.rows) == 1
    assert "cairn_stores" not in a.columns  # Cairn's own bookkeeping is hidden
    missing = [c for c in SCHEMA if c not in a.columns]
    assert not missing, f"SELECT * lacks {missing}; it has {a.columns}"
    row = dict(zip(a.columns, a.rows[0]))
    assert row["eventname"] == "DeleteObject" and row["eventtime"] == "2024-03-14 10:22:05.000"


def raw_results(cairn, statement: str):
    """GetQueryResults of a finished query, as the raw JSON the server sends."""
    ct = cairn.client("cloudtrail")
    qid = ct.start_query(QueryStatement=statement)["QueryId"]
    wait_boto(ct, qid)
    return cairn.json11("GetQueryResults", {"QueryId": qid})


def test_new_events_are_queryable_at_once(cairn, ct, default_id):
    """An event is in query answers as soon as its ingest is answered."""
    misses = []
    for i in range(5):
        records = synthetic(3, "atonce.cairn.example", f"a70{i:05d}")
        assert cairn.ingest(records)["stored"] == 3
        a = sql_boto(ct, f"SELECT eventid FROM {default_id} WHERE eventid LIKE 'a70{i:05d}%'")
        if len(a.rows) != 3:
            misses.append((i, len(a.rows)))
    assert not misses, (f"StartQuery right after an ingest was answered missed events "
                        f"(attempt, rows seen of 3): {misses}")


def test_results_are_readable_once_finished(cairn, default_id, paging):
    """Once DescribeQuery says FINISHED, GetQueryResults gives the rows, at the first try
    (here a few thousand rows: an answer that takes a moment to keep)."""
    strict = impatient(cairn, 30)
    failures = []
    for i in range(10):
        qid = strict.start_query(QueryStatement=f"SELECT eventid, eventjson FROM {default_id} "
                                 f"WHERE eventsource = '{PAGING_SOURCE}' AND {i} = {i}")["QueryId"]
        assert wait_boto(strict, qid)["QueryStatus"] == "FINISHED"
        try:
            page = strict.get_query_results(QueryId=qid, MaxQueryResults=10)
            if len(page["QueryResultRows"]) != 10 or \
                    page["QueryStatistics"]["TotalResultsCount"] != PAGING_EVENTS:
                failures.append((qid, "rows", page["QueryStatistics"]))
        except ClientError as e:
            err = e.response["Error"]
            failures.append((qid, e.response["ResponseMetadata"]["HTTPStatusCode"],
                             err.get("Code"), err.get("Message", "")[:160]))
    assert not failures, (f"{len(failures)} of 10 GetQueryResults right after DescribeQuery "
                          f"said FINISHED failed: {failures[:3]}")


@pytest.mark.parametrize("statement", [
    "SELECT eventid FROM {id} WHERE",
    "SELEKT eventid FROM {id}",
    "DELETE FROM {id}",
    "DROP TABLE {id}",
    "INSERT INTO {id} (eventid) VALUES ('x')",
    "UPDATE {id} SET eventname = 'x'",
    "CREATE TABLE t AS SELECT * FROM {id}",
    "SELECT eventid FROM {id}; SELECT eventname FROM {id}",
    "SELECT nosuchcolumn FROM {id}",
    "SELECT useridentity.nosuchfield FROM {id}",
    "SELECT 1",
    "SELECT eventid FROM some_table",
], ids=["truncated", "misspelt", "delete", "drop", "insert", "update", "create", "two",
        "unknown-column", "unknown-field", "no-store", "not-a-store"])
def test_invalid_statements(ct, default_id, statement):
    """StartQuery itself refuses the statement (no query is made)."""
    err = boto_fails("InvalidQueryStatementException", ct.start_query, status=400,
                     QueryStatement=statement.format(id=default_id))
    assert err.response["Error"]["Message"]


def test_invalid_statements_through_the_cli(aws, default_id):
    for statement in (f"DELETE FROM {default_id}",
                      f"SELECT eventid FROM {default_id}; DROP TABLE {default_id}",
                      f"SELECT nosuchcolumn FROM {default_id}"):
        aws_fails(aws, "InvalidQueryStatementException", "cloudtrail", "start-query",
                  "--query-statement", statement)


# --------------------------------------------------------------------------------------------
# 3. Answers checked against DuckDB over the lake's files (second account: panther + OTRF)
# --------------------------------------------------------------------------------------------

def retention_bound() -> str:
    """A time literal inside the default store's 3653-day retention, with a day to spare."""
    day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3652)).date()
    return f"{day.isoformat()} 00:00:00"


def catalog(cairn) -> dict:
    path = cairn.server.data_dir / "lake" / "catalog.json"
    return json.loads(path.read_text()) if path.exists() else {"files": []}


def lake_files(cairn, account: str) -> list[str]:
    """The account's Parquet files as catalog.json lists them. (A glob of the account's folder
    can also hold files a merge has replaced, kept a while for queries still reading them:
    DuckDB would count their events twice.)"""
    lake = cairn.server.data_dir / "lake"
    return [str(lake / f["path"]) for f in catalog(cairn)["files"]
            if f"/account={account}/" in "/" + f["path"]]


def duck_table(files: list[str]) -> str:
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{listing}], hive_partitioning = false)"


def duck_rows(statement: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        try:
            con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            pass
        return [tuple(norm(v) for v in r) for r in con.execute(statement).fetchall()]
    finally:
        con.close()


def norm(v):
    """A DuckDB value as Cairn writes it in a result row."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


@pytest.fixture(scope="module")
def corpus(cairn, accounts, other_aws):
    """Panther and OTRF in the second account, written out to Parquet, with what is
    expected: the number of stored records inside the retention-safe window."""
    other = cairn.client("cloudtrail", access_key=accounts.access_key,
                         secret_key=accounts.secret_key)
    panther = [line["event"] for line in read_jsonl("panther-labelled-events.jsonl")]
    otrf = read_jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl")
    kw = {"access_key": accounts.access_key, "secret_key": accounts.secret_key}
    answers = [cairn.ingest(panther, fmt="ndjson", **kw), cairn.ingest(otrf, **kw)]
    bound = parse_iso(retention_bound())
    seen: set[str] = set()
    stored = inside = old = 0
    for records, answer in zip((panther, otrf), answers):
        for rec, eid in zip(records, answer["eventIds"]):
            if eid is None or eid in seen:
                continue
            seen.add(eid)
            stored += 1
            t = rec.get("eventTime") if isinstance(rec, dict) else None
            when = parse_iso(t) if isinstance(t, str) else None
            if when is not None and when < bound:
                old += 1
            else:
                inside += 1
    assert stored == sum(a["stored"] for a in answers), answers
    sid = store_id(default_store_of(other_aws("cloudtrail", "list-event-data-stores"))
                  ["EventDataStoreArn"])
    where = f"{NOT_OWN} AND eventtime >= '{retention_bound()}'"

    def duck_count():
        files = lake_files(cairn, accounts.account_id)
        if not files:
            return 0
        return int(duck_rows(f"SELECT count(*) FROM {duck_table(files)} WHERE {where}")[0][0])

    wait_until(f"the server counts the {inside} stored dataset events in the window",
               lambda: count_where(other, sid, where) == inside)
    wait_until(f"the {inside} dataset events are in the lake's files",
               lambda: duck_count() == inside)
    return {"id": sid, "inside": inside, "old": old, "stored": stored, "where": where}


COMPARED = [
    ("by-source-and-name",
     "SELECT eventsource, eventname, count(*) AS n FROM {T} WHERE {W} "
     "GROUP BY eventsource, eventname", False),
    ("distinct-region", "SELECT DISTINCT awsregion FROM {T} WHERE {W}", False),
    ("errorcodes", "SELECT errorcode, count(*) FROM {T} WHERE {W} GROUP BY errorcode", False),
    ("identity-type-arn",
     "SELECT useridentity.type, useridentity.arn, count(*) AS n FROM {T} WHERE {W} "
     "GROUP BY useridentity.type, useridentity.arn", False),
    ("time-window",
     "SELECT eventid, eventtime, eventname, sourceipaddress FROM {T} WHERE {W} "
     "AND eventtime >= '2019-01-01 00:00:00' AND eventtime < '2021-01-01 00:00:00'", False),
    ("order-limit",
     "SELECT eventtime, eventid, eventsource FROM {T} WHERE {W} "
     "ORDER BY eventtime ASC, eventid ASC LIMIT 25", True),
    ("order-desc-limit",
     "SELECT eventid, eventname FROM {T} WHERE {W} AND eventtime < '2026-01-01 00:00:00' "
     "ORDER BY eventtime DESC, eventid DESC LIMIT 10", True),
    ("having",
     "SELECT eventsource, count(*) AS n FROM {T} WHERE {W} GROUP BY eventsource "
     "HAVING count(*) >= 10 ORDER BY n DESC, eventsource", True),
    ("like",
     "SELECT eventname, count(*) FROM {T} WHERE {W} AND eventname LIKE 'Describe%' "
     "GROUP BY eventname", False),
    ("in",
     "SELECT eventid, awsregion, eventname FROM {T} WHERE {W} "
     "AND awsregion IN ('us-west-2', 'us-east-2', 'eu-west-1')", False),
    ("between",
     "SELECT count(*) FROM {T} WHERE {W} "
     "AND eventtime BETWEEN '2019-01-01 00:00:00' AND '2022-12-31 23:59:59'", False),
    ("is-null",
     "SELECT eventsource, count(*) FROM {T} WHERE {W} AND errorcode IS NULL "
     "AND useridentity.username IS NULL GROUP BY eventsource", False),
    ("errors",
     "SELECT eventname, errorcode, errormessage FROM {T} WHERE {W} AND errorcode IS NOT NULL",
     False),
    ("min-max",
     "SELECT eventsource, min(eventtime), max(eventtime), count(DISTINCT eventname) FROM {T} "
     "WHERE {W} AND eventtime < '2026-01-01 00:00:00' GROUP BY eventsource", False),
    ("year-hour",
     "SELECT year(eventtime) AS y, hour(eventtime) AS h, count(*) AS n FROM {T} WHERE {W} "
     "AND eventtime < '2026-01-01 00:00:00' GROUP BY year(eventtime), hour(eventtime)", False),
    ("booleans",
     "SELECT readonly, managementevent, eventcategory, count(*) FROM {T} WHERE {W} "
     "GROUP BY readonly, managementevent, eventcategory", False),
    ("session-issuer",
     "SELECT useridentity.sessioncontext.sessionissuer.arn AS issuer, count(*) AS n "
     "FROM {T} WHERE {W} AND useridentity.type = 'AssumedRole' "
     "GROUP BY useridentity.sessioncontext.sessionissuer.arn", False),
    ("or-not",
     "SELECT eventid FROM {T} WHERE {W} AND (eventsource = 's3.amazonaws.com' "
     "OR eventname <> 'DescribeInstances') AND NOT (awsregion = 'us-east-1')", False),
    ("tls-agent",
     "SELECT tlsdetails.tlsversion, lower(useragent), count(*) FROM {T} WHERE {W} "
     "GROUP BY tlsdetails.tlsversion, lower(useragent)", False),
]


@pytest.mark.parametrize("name,template,ordered", COMPARED, ids=[c[0] for c in COMPARED])
def test_answers_match_duckdb(cairn, accounts, other, corpus, name, template, ordered):
    files = lake_files(cairn, accounts.account_id)
    server = sql_boto(other, template.format(T=corpus["id"], W=corpus["where"]))
    expected = duck_rows(template.format(T=duck_table(files), W=corpus["where"]))
    assert server.rows, f"{name}: the server answered no rows"
    if ordered:
        assert server.rows == expected
    else:
        got, want = Counter(server.rows), Counter(expected)
        assert got == want, (f"{name}: only the server: {list((got - want).elements())[:10]}; "
                             f"only DuckDB: {list((want - got).elements())[:10]}")


def test_answers_match_duckdb_through_the_cli(cairn, accounts, other_aws, corpus):
    template = ("SELECT eventsource, count(*) AS n, count(DISTINCT eventname) AS names "
                "FROM {T} WHERE {W} GROUP BY eventsource")
    a = sql_cli(other_aws, template.format(T=corpus["id"], W=corpus["where"]))
    assert a.columns == ["eventsource", "n", "names"]
    files = lake_files(cairn, accounts.account_id)
    assert Counter(a.rows) == Counter(duck_rows(template.format(T=duck_table(files),
                                                                W=corpus["where"])))
    assert sum(int(r[1]) for r in a.rows) == corpus["inside"]


def test_lake_files_layout(cairn, accounts, corpus):
    lake = cairn.server.data_dir / "lake"
    entries = catalog(cairn)["files"]
    assert entries, "catalog.json lists no files"
    pattern = re.compile(r"events/account=(\d{12})/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/"
                         r"[^/]+\.parquet")
    for f in entries:
        m = pattern.fullmatch(f["path"])
        assert m, f"a file outside the layout: {f['path']}"
        assert (lake / f["path"]).is_file(), f"catalog.json names a missing file: {f['path']}"
    mine = lake_files(cairn, accounts.account_id)
    on_disk = {str(p) for p in (lake / "events" / f"account={accounts.account_id}")
               .glob("**/*.parquet")}
    assert set(mine) <= on_disk
    # The glob of the spec reads the same columns, with Cairn's own two.
    glob = str(lake / "events" / f"account={accounts.account_id}" / "**" / "*.parquet")
    con = duckdb.connect()
    cols = [r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning = false)").fetchall()]
    con.close()
    for c in ("eventversion", "useridentity", "eventtime", "eventsource", "eventname",
              "awsregion", "sourceipaddress", "useragent", "errorcode", "errormessage",
              "requestparameters", "responseelements", "additionaleventdata", "requestid",
              "eventid", "readonly", "resources", "eventtype", "apiversion", "managementevent",
              "recipientaccountid", "sharedeventid", "annotation", "vpcendpointid",
              "serviceeventdetails", "addendum", "edgedevicedetails", "insightdetails",
              "eventcategory", "tlsdetails", "sessioncredentialfromconsole", "eventjson",
              "cairn_stores", "ingestiontime"):
        assert c in cols, f"the lake's files have no column {c}: {cols}"
    # A file partition matches the event times inside it.
    for f in entries:
        if f["account"] != accounts.account_id:
            continue
        m = pattern.fullmatch(f["path"])
        lo = dt.datetime.fromtimestamp(f["min_ms"] / 1000, dt.timezone.utc)
        assert (m.group(2), m.group(3)) == (lo.strftime("%Y-%m-%d"), lo.strftime("%H"))


def test_events_past_retention_are_not_answered(other, corpus):
    """The default store keeps 3653 days: older events (by eventTime) are not answered."""
    assert corpus["old"] > 0, "the datasets have no event older than the retention"
    a = sql_boto(other, f"SELECT count(*) FROM {corpus['id']} "
                        f"WHERE eventtime < '{retention_bound()}'")
    assert a.rows == [("0",)]
    total = sql_boto(other, f"SELECT count(*) FROM {corpus['id']} WHERE {NOT_OWN}")
    assert int(total.rows[0][0]) == corpus["inside"]


def test_statistics(other, corpus):
    a = sql_boto(other, f"SELECT eventname FROM {corpus['id']} WHERE {corpus['where']} "
                        "AND eventsource = 's3.amazonaws.com'")
    d = a.describe
    assert d["QueryId"] == a.query_id
    assert d["QueryString"].startswith("SELECT eventname FROM")
    st = d["QueryStatistics"]
    for k in ("EventsMatched", "EventsScanned", "BytesScanned", "ExecutionTimeInMillis",
              "CreationTime"):
        assert k in st, f"DescribeQuery has no QueryStatistics.{k}: {d}"
    assert st["EventsScanned"] >= st["EventsMatched"] >= len(a.rows) > 0
    assert st["BytesScanned"] > 0  # the events are in files by now
    assert abs(st["CreationTime"].timestamp() - time.time()) < 120
    r = a.pages[0]["QueryStatistics"]
    assert r["ResultsCount"] == len(a.rows)
    assert r["TotalResultsCount"] == len(a.rows)
    assert r["BytesScanned"] == st["BytesScanned"]
    assert a.pages[0]["QueryStatus"] == "FINISHED"


# --------------------------------------------------------------------------------------------
# 4. Paging
# --------------------------------------------------------------------------------------------

def test_paging_boto3(cairn, ct, default_id, paging):
    statement = (f"SELECT eventid, eventname FROM {default_id} "
                 f"WHERE eventsource = '{PAGING_SOURCE}' ORDER BY eventid")
    expected = sorted((r["eventID"], r["eventName"]) for r in paging)
    for size, pages in ((1000, 3), (700, 5)):
        a = sql_boto(ct, statement, page=size)
        assert a.rows == expected, f"page size {size}"
        assert len(a.pages) == pages
        for i, p in enumerate(a.pages):
            n = len(p["QueryResultRows"])
            assert n == min(size, PAGING_EVENTS - i * size)
            assert p["QueryStatistics"]["ResultsCount"] == n
            assert p["QueryStatistics"]["TotalResultsCount"] == PAGING_EVENTS
        assert "NextToken" not in a.pages[-1]
    qid = a.query_id
    boto_fails("InvalidMaxResultsException",
               cairn.client("cloudtrail", validate=False).get_query_results,
               QueryId=qid, MaxQueryResults=1001)
    boto_fails("InvalidNextTokenException", ct.get_query_results, QueryId=qid,
               NextToken="not-a-token-at-all")
    boto_fails("QueryIdNotFoundException", ct.get_query_results, QueryId=str(uuid.uuid4()))


def test_paging_cli(aws, default_id, paging):
    """`aws cloudtrail get-query-results` with --max-query-results and --next-token."""
    statement = (f"SELECT eventid, eventtime FROM {default_id} "
                 f"WHERE eventsource = '{PAGING_SOURCE}' ORDER BY eventtime DESC")
    a = sql_cli(aws, statement, page=1000)
    assert len(a.pages) == 3
    assert [len(p["QueryResultRows"]) for p in a.pages] == [1000, 1000, 1000]
    want = [(r["eventID"], r["eventTime"].replace("T", " ").replace("Z", ".000"))
            for r in reversed(paging)]
    assert a.rows == want
    # Without --max-query-results the CLI gets pages of at most 1000 rows too.
    first = aws("cloudtrail", "get-query-results", "--query-id", a.query_id)
    assert len(first["QueryResultRows"]) <= 1000 and first.get("NextToken")
    # A larger answer from a join: each synthetic event with three event names, 9,000 rows.
    big = sql_cli(aws, f"SELECT a.eventid, b.eventname FROM {default_id} a CROSS JOIN "
                       f"(SELECT DISTINCT eventname FROM {default_id} WHERE eventsource = "
                       f"'{PAGING_SOURCE}' AND eventname IN ('Op0', 'Op1', 'Op2')) b "
                       f"WHERE a.eventsource = '{PAGING_SOURCE}'", page=1000)
    assert len(big.rows) == PAGING_EVENTS * 3 and len(set(big.rows)) == PAGING_EVENTS * 3
    assert len(big.pages) == 9


# --------------------------------------------------------------------------------------------
# ListQueries and DescribeQuery
# --------------------------------------------------------------------------------------------

def test_list_queries(aws, ct, default_id, seed_ready):
    before = time.time() - 1
    ids = [sql_boto(ct, f"SELECT eventname FROM {default_id} WHERE eventname = 'CreateUser' "
                        f"AND {i} = {i}").query_id for i in range(3)]
    out = aws("cloudtrail", "list-queries", "--event-data-store", default_id)
    listed = {q["QueryId"]: q for q in out["Queries"]}
    for qid in ids:
        assert listed[qid]["QueryStatus"] == "FINISHED"
        assert before <= epoch(listed[qid]["CreationTime"]) <= time.time() + 1
    # Newest first.
    times = [epoch(q["CreationTime"]) for q in out["Queries"]]
    assert times == sorted(times, reverse=True)
    # Filters: status, time range.
    out = aws("cloudtrail", "list-queries", "--event-data-store", default_id,
              "--query-status", "FINISHED", "--start-time", str(int(before)))
    assert set(ids) <= {q["QueryId"] for q in out["Queries"]}
    assert all(q["QueryStatus"] == "FINISHED" for q in out["Queries"])
    out = aws("cloudtrail", "list-queries", "--event-data-store", default_id,
              "--query-status", "TIMED_OUT")
    assert not set(ids) & {q["QueryId"] for q in out["Queries"]}
    out = aws("cloudtrail", "list-queries", "--event-data-store", default_id,
              "--start-time", str(int(time.time()) + 3600))
    assert out["Queries"] == []
    # Paging.
    seen, token = [], None
    for _ in range(200):
        args = ["cloudtrail", "list-queries", "--event-data-store", default_id,
                "--start-time", str(int(before)), "--max-results", "1"]
        if token:
            args += ["--next-token", token]
        page = aws(*args)
        assert len(page["Queries"]) <= 1
        seen += [q["QueryId"] for q in page["Queries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    # Errors.
    aws_fails(aws, "InvalidDateRangeException", "cloudtrail", "list-queries",
              "--event-data-store", default_id, "--start-time", "2024-01-02T00:00:00Z",
              "--end-time", "2024-01-01T00:00:00Z")
    aws_fails(aws, "InvalidQueryStatusException", "cloudtrail", "list-queries",
              "--event-data-store", default_id, "--query-status", "DONE")
    aws_fails(aws, "EventDataStoreNotFoundException", "cloudtrail", "list-queries",
              "--event-data-store", str(uuid.uuid4()))
    aws_fails(aws, "QueryIdNotFoundException", "cloudtrail", "describe-query",
              "--query-id", str(uuid.uuid4()))
    # A finished query cannot be cancelled.
    aws_fails(aws, "InactiveQueryException", "cloudtrail", "cancel-query",
              "--query-id", ids[0])


# --------------------------------------------------------------------------------------------
# 5. Concurrency and cancelling
# --------------------------------------------------------------------------------------------

def test_concurrency_limit_and_cancel(cairn, aws, default_id, paging):
    """Ten slow queries queued or running: the eleventh is refused; cancelling one frees a
    place. The API must keep answering (within 10 s) while they run."""
    slow = SLOW.format(id=default_id)
    fast = impatient(cairn)
    started: list[str] = []
    try:
        for n in range(10):
            started.append(answered(
                f"StartQuery #{n + 1} (with {n} slow queries queued or running)",
                fast.start_query, QueryStatement=slow)["QueryId"])
        states = [answered("DescribeQuery while ten slow queries are queued or running",
                           fast.describe_query, QueryId=q)["QueryStatus"] for q in started]
        assert all(s in ("QUEUED", "RUNNING") for s in states), states
        # The eleventh: refused, through the CLI and boto3.
        aws_fails(aws, "MaxConcurrentQueriesException", "cloudtrail", "start-query",
                  "--query-statement", f"SELECT eventid FROM {default_id} LIMIT 1",
                  "--cli-read-timeout", "10")
        err = boto_fails("MaxConcurrentQueriesException", fast.start_query,
                         QueryStatement=slow)
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        # Cancel one that runs, with the CLI.
        running = [q for q in started if answered(
            "DescribeQuery while slow queries run", fast.describe_query,
            QueryId=q)["QueryStatus"] == "RUNNING"]
        assert running, "none of ten slow queries is RUNNING"
        victim = running[0]
        out = aws("cloudtrail", "cancel-query", "--query-id", victim, "--cli-read-timeout", "10")
        assert out["QueryId"] == victim and out["QueryStatus"] == "CANCELLED"
        d = aws("cloudtrail", "describe-query", "--query-id", victim, "--cli-read-timeout", "10")
        assert d["QueryStatus"] == "CANCELLED"
        r = aws("cloudtrail", "get-query-results", "--query-id", victim,
                "--cli-read-timeout", "10")
        assert r["QueryStatus"] == "CANCELLED" and r.get("QueryResultRows", []) == []
        aws_fails(aws, "InactiveQueryException", "cloudtrail", "cancel-query",
                  "--query-id", victim, "--cli-read-timeout", "10")
        # One freed place: one more query starts, then the limit holds again.
        started.append(answered("StartQuery", fast.start_query, QueryStatement=slow)["QueryId"])
        boto_fails("MaxConcurrentQueriesException", fast.start_query, QueryStatement=slow)
        # Cancel a queued one.
        queued = [q for q in started if answered(
            "DescribeQuery", fast.describe_query, QueryId=q)["QueryStatus"] == "QUEUED"]
        assert queued, "no query is QUEUED although ten were started"
        assert answered("CancelQuery", fast.cancel_query,
                        QueryId=queued[-1])["QueryStatus"] == "CANCELLED"
        assert answered("DescribeQuery", fast.describe_query,
                        QueryId=queued[-1])["QueryStatus"] == "CANCELLED"
        answered("CancelQuery", cancel_all, client=fast, ids=started)
        states = {q: fast.describe_query(QueryId=q)["QueryStatus"] for q in started}
        assert set(states.values()) == {"CANCELLED"}, states
        listed = aws("cloudtrail", "list-queries", "--event-data-store", default_id,
                     "--query-status", "CANCELLED")
        assert set(started) <= {q["QueryId"] for q in listed["Queries"]}
        # The server is free again: a small query runs at once.
        t0 = time.monotonic()
        a = sql_boto(cairn.client("cloudtrail"), f"SELECT count(*) FROM {default_id} "
                     f"WHERE eventsource = '{PAGING_SOURCE}'", timeout=30)
        assert a.rows == [(str(PAGING_EVENTS),)]
        assert time.monotonic() - t0 < 30
    finally:
        try:
            cancel_all(fast, started)
        except Exception:  # noqa: BLE001 - the server is not answering: start it afresh
            cairn.restart()


# --------------------------------------------------------------------------------------------
# 6. TIMED_OUT
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def short_timeout(tmp_path_factory):
    """A server whose queries may run 1 s."""
    c = start_server(tmp_path_factory.mktemp("test_lake_timeout"), "data",
                     LAKE_ARGS + ["--query-timeout", "1s"])
    _LIVE.append(c)
    try:
        yield c
    finally:
        _LIVE.remove(c)
        stop_server(c)


def test_query_times_out(short_timeout):
    c = short_timeout
    ct = c.client("cloudtrail")
    for i in range(2):
        assert c.ingest(synthetic(1000, PAGING_SOURCE, f"70000{i:03d}"))["stored"] == 1000
    sid = store_id(default_store_of(c.aws("cloudtrail", "list-event-data-stores"))
                   ["EventDataStoreArn"])
    wait_until("the events are queryable", lambda: count_where(
        ct, sid, f"eventsource = '{PAGING_SOURCE}'") == 2000)
    out = c.aws("cloudtrail", "start-query", "--query-statement", SLOW.format(id=sid))
    qid = out["QueryId"]
    t0 = time.monotonic()
    d = wait_cli(c.aws, qid, timeout=30)
    assert d["QueryStatus"] == "TIMED_OUT", d
    assert time.monotonic() - t0 < 20
    assert d.get("ErrorMessage"), d
    assert d["QueryStatistics"]["ExecutionTimeInMillis"] >= 900
    r = c.aws("cloudtrail", "get-query-results", "--query-id", qid)
    assert r["QueryStatus"] == "TIMED_OUT"
    aws_fails(c.aws, "InactiveQueryException", "cloudtrail", "cancel-query", "--query-id", qid)
    listed = c.aws("cloudtrail", "list-queries", "--event-data-store", sid,
                   "--query-status", "TIMED_OUT")
    assert [q["QueryId"] for q in listed["Queries"]] == [qid]
    # A quick query still finishes.
    a = sql_cli(c.aws, f"SELECT count(*) FROM {sid} WHERE eventsource = '{PAGING_SOURCE}'")
    assert a.rows == [("2000",)]


# --------------------------------------------------------------------------------------------
# 7. Stores with selectors
# --------------------------------------------------------------------------------------------

def selector_events(phase: str) -> tuple[list[dict], dict[str, str]]:
    """Per phase: an S3 object data event, a Lambda data event and a management event of the
    last hour (inside a new store's 366-day retention), with ids `5e1ec70<phase>-...`; returns
    the records and their kinds by id."""
    recent = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).replace(tzinfo=None)
    base = synthetic(3, "ec2.amazonaws.com", f"5e1ec70{phase}",
                     start=recent.isoformat(timespec="seconds"))
    s3, lam, mgmt = base
    for rec, name in ((s3, "GetObject"), (lam, "Invoke")):
        rec.update(eventCategory="Data", managementEvent=False, readOnly=True, eventName=name)
    s3.update(eventSource="s3.amazonaws.com",
              requestParameters={"bucketName": "lake-bucket", "key": f"k{phase}"},
              resources=[{"type": "AWS::S3::Object",
                          "ARN": f"arn:aws:s3:::lake-bucket/k{phase}"},
                         {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::lake-bucket"}])
    lam.update(eventSource="lambda.amazonaws.com",
               resources=[{"type": "AWS::Lambda::Function",
                           "ARN": f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:f"}])
    mgmt.update(eventName="DescribeInstances")
    kinds = {s3["eventID"]: "s3", lam["eventID"]: "lambda", mgmt["eventID"]: "mgmt"}
    return base, kinds


def test_stores_with_selectors(cairn, aws, ct, default_id, seed_ready):
    kinds: dict[str, tuple[str, str]] = {}

    def send(phase):
        records, k = selector_events(phase)
        assert cairn.ingest(records)["stored"] == 3
        kinds.update({i: (phase, kind) for i, kind in k.items()})

    send("0")  # before the stores exist
    time.sleep(0.05)
    data = aws("cloudtrail", "create-event-data-store", "--name", "lake-s3-data",
               "--no-termination-protection-enabled", "--advanced-event-selectors", json.dumps([
                   {"Name": "S3 object data events",
                    "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                                       {"Field": "resources.type",
                                        "Equals": ["AWS::S3::Object"]}]}]))
    mgmt = aws("cloudtrail", "create-event-data-store", "--name", "lake-management",
               "--no-termination-protection-enabled")
    data_id, mgmt_id = store_id(data["EventDataStoreArn"]), store_id(mgmt["EventDataStoreArn"])
    got = aws("cloudtrail", "get-event-data-store", "--event-data-store", data_id)
    fields = {f["Field"]: f["Equals"] for s in got["AdvancedEventSelectors"]
              for f in s["FieldSelectors"]}
    assert fields == {"eventCategory": ["Data"], "resources.type": ["AWS::S3::Object"]}
    time.sleep(0.05)
    send("1")  # both ingest
    aws("cloudtrail", "stop-event-data-store-ingestion", "--event-data-store", data_id)
    time.sleep(0.05)
    send("2")  # the data store has stopped
    aws("cloudtrail", "start-event-data-store-ingestion", "--event-data-store", data_id)
    time.sleep(0.05)
    send("3")  # both again

    ours = "eventid LIKE '5e1ec70%'"
    wait_until("the default store has every phase's events",
               lambda: count_where(ct, default_id, ours) == 12)

    def ids(sid, where=ours):
        return {r[0] for r in sql_cli(aws, f"SELECT eventid FROM {sid} WHERE {where}").rows}

    def expect(pred):
        return {i for i, (phase, kind) in kinds.items() if pred(phase, kind)}

    assert ids(default_id) == set(kinds)
    assert ids(data_id) == expect(lambda p, k: k == "s3" and p in ("1", "3"))
    assert ids(mgmt_id) == expect(lambda p, k: k == "mgmt" and p in ("1", "2", "3"))
    # Everything the data store holds is an S3 data event from while it was ingesting: the
    # seed's whiskers deletion (stored before) and Cairn's own records (management) are not.
    everything = sql_cli(aws, f"SELECT eventid, eventcategory, eventsource FROM {data_id}").rows
    assert {r[0] for r in everything} == expect(lambda p, k: k == "s3" and p in ("1", "3"))
    assert {(r[1], r[2]) for r in everything} == {("Data", "s3.amazonaws.com")}
    # The management store holds Cairn's records of calls made after it was created.
    names = {r[0] for r in sql_cli(aws, f"SELECT eventname FROM {mgmt_id} WHERE eventsource = "
                                        "'cloudtrail.amazonaws.com'").rows}
    assert {"StopEventDataStoreIngestion", "StartEventDataStoreIngestion"} <= names
    seed_in_mgmt = sql_cli(aws, f"SELECT count(*) FROM {mgmt_id} WHERE eventid IN "
                                f"({', '.join(repr(i) for i in seed_ready)})").rows
    assert seed_in_mgmt == [("0",)]
    # Clean up.
    for sid in (data_id, mgmt_id):
        aws("cloudtrail", "delete-event-data-store", "--event-data-store", sid)


# --------------------------------------------------------------------------------------------
# 8. `cairn query`
# --------------------------------------------------------------------------------------------

def cairn_query(c: Cairn, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")
           and not k.startswith("CAIRN_")}
    env.update({"AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key,
                "AWS_DEFAULT_REGION": c.region, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "RUST_BACKTRACE": "0"})
    return subprocess.run([str(cairn_bin()), "query", "--endpoint-url", c.endpoint, *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cairn_query_outputs(cairn, default_id, seed_ready, tmp_path):
    statement = (f"SELECT eventtime, sourceipaddress, errormessage, eventID FROM {default_id} "
                 "WHERE eventname = 'ConsoleLogin' ORDER BY eventtime")
    want = [
        ("2024-03-14 09:58:11.000", "203.0.113.9", "Failed authentication",
         "c0ffee00-0000-4000-8000-000000000001"),
        ("2024-03-14 09:58:40.000", "203.0.113.9", "Failed authentication",
         "c0ffee00-0000-4000-8000-000000000002"),
        ("2024-03-14 10:01:02.000", "192.0.2.77", None, "c0ffee00-0000-4000-8000-000000000003"),
    ]
    columns = ["eventtime", "sourceipaddress", "errormessage", "eventID"]
    # CSV
    p = cairn_query(cairn, statement, "--output", "csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0] == columns
    assert [tuple(r) for r in rows[1:]] == [tuple(v or "" for v in w) for w in want]
    # JSON: an array of objects, null for null.
    p = cairn_query(cairn, statement, "--output", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [dict(zip(columns, w)) for w in want]
    # Table: every value and a row count.
    p = cairn_query(cairn, statement)
    assert p.returncode == 0, p.stderr
    for w in want:
        for v in w:
            if v:
                assert v in p.stdout
    assert "3 rows" in p.stdout
    # Parquet, read back with DuckDB; CSV to a file.
    out = tmp_path / "answer.parquet"
    p = cairn_query(cairn, statement, "--output", "parquet", "--out", str(out))
    assert p.returncode == 0, p.stderr
    con = duckdb.connect()
    got = con.execute(f"SELECT * FROM read_parquet('{out}')").fetchall()
    names = [d[0] for d in con.description]
    con.close()
    assert names == columns
    assert [tuple(r) for r in got] == want
    out = tmp_path / "answer.csv"
    p = cairn_query(cairn, statement, "--output", "csv", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert list(csv.reader(io.StringIO(out.read_text())))[0] == columns
    # Errors: a bad statement; parquet without --out.
    p = cairn_query(cairn, f"DELETE FROM {default_id}")
    assert p.returncode != 0
    assert "InvalidQueryStatement" in p.stderr or "SELECT" in p.stderr, p.stderr
    p = cairn_query(cairn, statement, "--output", "parquet")
    assert p.returncode != 0


# --------------------------------------------------------------------------------------------
# 9. Isolation of accounts
# --------------------------------------------------------------------------------------------

def test_accounts_are_isolated(aws, ct, other, other_aws, default_id, seed_ready, accounts):
    mine = aws("cloudtrail", "create-event-data-store", "--name", "lake-private",
               "--no-termination-protection-enabled")
    arn = mine["EventDataStoreArn"]
    try:
        # The second account has its own default store, and sees none of the first's.
        theirs = other_aws("cloudtrail", "list-event-data-stores")["EventDataStores"]
        their_default = default_store_of({"EventDataStores": theirs})
        assert store_id(their_default["EventDataStoreArn"]) != default_id
        assert f":{accounts.account_id}:" in their_default["EventDataStoreArn"]
        assert all(f":{ACCOUNT_ID}:" not in s["EventDataStoreArn"] for s in theirs)
        for ref in (default_id, arn, store_id(arn)):
            aws_fails(other_aws, "EventDataStoreNotFoundException", "cloudtrail",
                      "get-event-data-store", "--event-data-store", ref)
        for op in ("delete-event-data-store", "stop-event-data-store-ingestion"):
            aws_fails(other_aws, "EventDataStoreNotFoundException", "cloudtrail", op,
                      "--event-data-store", store_id(arn))
        aws_fails(other_aws, "EventDataStoreNotFoundException", "cloudtrail",
                  "update-event-data-store", "--event-data-store", store_id(arn),
                  "--retention-period", "30")
        aws_fails(other_aws, "EventDataStoreNotFoundException", "cloudtrail", "start-query",
                  "--query-statement", f"SELECT eventid FROM {default_id}")
        aws_fails(other_aws, "EventDataStoreNotFoundException", "cloudtrail", "list-queries",
                  "--event-data-store", default_id)
        boto_fails("EventDataStoreNotFoundException", other.start_query, status=404,
                   QueryStatement=f"SELECT eventname FROM {store_id(arn)}")
        # Nor the first account's queries.
        a = sql_cli(aws, f"SELECT eventname FROM {default_id} WHERE eventname = 'CreateUser'")
        for op in ("describe-query", "get-query-results", "cancel-query"):
            aws_fails(other_aws, "QueryIdNotFoundException", "cloudtrail", op,
                      "--query-id", a.query_id)
        boto_fails("QueryIdNotFoundException", other.get_query_results, status=404,
                   QueryId=a.query_id)
        # The second account's own queries over its own store see none of the first's events.
        their_id = store_id(their_default["EventDataStoreArn"])
        b = sql_cli(other_aws, f"SELECT count(*) FROM {their_id} WHERE eventid IN "
                               f"({', '.join(repr(i) for i in seed_ready)})")
        assert b.rows == [("0",)]
        # And the first account cannot see those queries either.
        aws_fails(aws, "QueryIdNotFoundException", "cloudtrail", "describe-query",
                  "--query-id", b.query_id)
        listed = aws("cloudtrail", "list-queries", "--event-data-store", default_id)
        assert b.query_id not in {q["QueryId"] for q in listed["Queries"]}
    finally:
        aws("cloudtrail", "delete-event-data-store", "--event-data-store", arn)


# --------------------------------------------------------------------------------------------
# The store limit (last: it fills the account's ten stores)
# --------------------------------------------------------------------------------------------

def test_ten_stores_per_account(aws, other_aws):
    existing = aws("cloudtrail", "list-event-data-stores")["EventDataStores"]
    assert len(existing) < 10
    created = []
    for i in range(10 - len(existing)):
        created.append(aws("cloudtrail", "create-event-data-store", "--name", f"lake-fill-{i}",
                           "--no-termination-protection-enabled")["EventDataStoreArn"])
    assert len(aws("cloudtrail", "list-event-data-stores")["EventDataStores"]) == 10
    aws_fails(aws, "EventDataStoreMaxLimitExceededException", "cloudtrail",
              "create-event-data-store", "--name", "lake-one-too-many")
    # Another account's limit is its own.
    made = other_aws("cloudtrail", "create-event-data-store", "--name", "lake-fill-0",
                     "--no-termination-protection-enabled")
    other_aws("cloudtrail", "delete-event-data-store", "--event-data-store",
              made["EventDataStoreArn"])
    for arn in created:
        aws("cloudtrail", "delete-event-data-store", "--event-data-store", arn)
