"""The product's acceptance stories: the five questions of shared/datasets/README.md, answered
with the real AWS CLI (`aws cloudtrail lookup-events`) after loading seed-scenarios.jsonl
through the native ingest endpoint."""

from __future__ import annotations

import json

import pytest

from conftest import ACCOUNT_ID, dataset, epoch, is_own, iso, minify, parse_record

OLD = "2019-01-01T00:00:00Z"
# The seed scenarios happened before this; Cairn's records of the tests' own calls after.
SEED_END = "2025-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def seed_lines():
    return [line for line in dataset("seed-scenarios.jsonl").read_text(encoding="utf-8")
            .splitlines() if line.strip()]


@pytest.fixture(scope="module")
def seed(seed_lines):
    return [json.loads(line) for line in seed_lines]


@pytest.fixture(scope="module")
def loaded(cairn, seed):
    body = dataset("seed-scenarios.jsonl").read_bytes()  # NDJSON, as shipped
    return cairn.ingest(body)


def by_id(seed):
    return {r["eventID"]: r for r in seed}


def lookup(aws, *attrs, start=OLD, extra=()):
    """`aws cloudtrail lookup-events` with AttributeKey=K,AttributeValue=V pairs; returns Events."""
    args = ["cloudtrail", "lookup-events", "--start-time", start, "--end-time", SEED_END]
    if attrs:
        args.append("--lookup-attributes")
        args += [f"AttributeKey={k},AttributeValue={v}" for k, v in attrs]
    out = aws(*args, *extra)
    assert "NextToken" not in out, f"the CLI paginates by itself, yet left a NextToken: {out}"
    return out["Events"]


def only(events):
    assert len(events) == 1, f"expected exactly one event, got {len(events)}: " + \
        json.dumps([(e.get("EventName"), e.get("EventId")) for e in events])
    return events[0]


def test_ingest_summary(loaded, seed):
    assert loaded["received"] == 7
    assert loaded["stored"] == 7
    assert loaded["duplicates"] == 0
    assert loaded["rejected"] == []
    assert loaded["eventIds"] == [r["eventID"] for r in seed]


def test_events_are_stored_verbatim(loaded, aws, seed_lines):
    """Every seed record carries all the members Cairn would fill, so each comes back exactly
    as sent, minified."""
    events = lookup(aws)
    assert len(events) == 7
    got = {e["EventId"]: e["CloudTrailEvent"] for e in events}
    for line in seed_lines:
        eid = json.loads(line)["eventID"]
        assert got[eid] == minify(line), f"record {eid} was not stored verbatim"


@pytest.mark.parametrize("attr", [
    ("EventName", "DeleteDBInstance"),
    ("ResourceType", "AWS::RDS::DBInstance"),
    ("ResourceName", "cat-photos-db"),
    ("ResourceName", "arn:aws:rds:us-west-2:111122223333:db:cat-photos-db"),
], ids=lambda a: f"{a[0]}={a[1]}")
def test_q1_who_deleted_the_cat_photo_database(loaded, aws, attr):
    ev = only(lookup(aws, attr))
    assert ev["EventName"] == "DeleteDBInstance"
    assert ev["EventSource"] == "rds.amazonaws.com"
    assert ev["Username"] == "alana"
    assert epoch(ev["EventTime"]) == iso("2020-06-09T13:37:34Z")
    assert ev["AccessKeyId"] == "AKIAIOSFODNN7EXAMPLE"
    assert ev["ReadOnly"] == "false"
    assert {"ResourceType": "AWS::RDS::DBInstance", "ResourceName": "cat-photos-db"} in \
        ev["Resources"]
    rec = parse_record(ev["CloudTrailEvent"])
    assert rec["sourceIPAddress"] == "205.251.233.48"
    assert rec["awsRegion"] == "us-west-2"
    assert rec["eventTime"] == "2020-06-09T13:37:34Z"
    assert rec["userIdentity"]["userName"] == "alana"


@pytest.mark.parametrize("attr", [
    ("EventName", "CreateUser"),
    ("ResourceName", "Mary"),
    ("ResourceType", "AWS::IAM::User"),
], ids=lambda a: f"{a[0]}={a[1]}")
def test_q2_who_created_mary(loaded, aws, attr):
    ev = only(lookup(aws, attr))
    assert ev["EventName"] == "CreateUser"
    assert ev["Username"] == "John"
    assert epoch(ev["EventTime"]) == iso("2020-01-01T09:00:00Z")
    rec = parse_record(ev["CloudTrailEvent"])
    assert rec["requestParameters"] == {"userName": "Mary"}
    assert rec["sessionCredentialFromConsole"] == "true"
    assert rec["userAgent"] == "console.amazonaws.com"
    assert rec["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"


def test_q3_what_kodekloud_launched(loaded, aws, seed):
    ev = only(lookup(aws, ("Username", "kodekloud"), start="2023-10-08T00:00:00Z",
                     extra=["--end-time", "2023-10-08T23:59:59Z"]))
    assert ev["EventName"] == "RunInstances"
    assert ev["Username"] == "kodekloud"
    assert epoch(ev["EventTime"]) == iso("2023-10-08T17:50:24Z")
    assert {"ResourceType": "AWS::EC2::Instance", "ResourceName": "i-0123456789abcdef0"} in \
        ev["Resources"]
    rec = parse_record(ev["CloudTrailEvent"])
    original = by_id(seed)["e2f69382-7637-4deb-83ed-e6ee31cac1c4"]
    # Request parameters and response elements, whole.
    assert rec["requestParameters"] == original["requestParameters"]
    assert rec["responseElements"] == original["responseElements"]
    item = rec["responseElements"]["instancesSet"]["items"][0]
    assert item["instanceId"] == "i-0123456789abcdef0"
    assert rec["requestParameters"]["instancesSet"]["items"][0]["keyName"] == "Ohio-Key"
    assert item["keyName"] == "Ohio-Key"
    assert item["groupSet"]["items"][0]["groupName"] == "Webserver_SG"
    # The same event, found by the instance id, and not found outside 2023-10-08.
    assert only(lookup(aws, ("ResourceName", "i-0123456789abcdef0")))["EventId"] == ev["EventId"]
    assert lookup(aws, ("Username", "kodekloud"), start="2023-10-09T00:00:00Z") == []
    assert lookup(aws, ("Username", "kodekloud"), extra=["--end-time", "2023-10-08T17:50:23Z"]) == []


@pytest.mark.parametrize("attr", [
    ("ResourceName", "2024/whiskers.jpg"),
    ("ResourceName", "cat-photos/2024/whiskers.jpg"),
    ("ResourceName", "arn:aws:s3:::cat-photos/2024/whiskers.jpg"),
    ("ResourceType", "AWS::S3::Object"),
    ("EventName", "DeleteObject"),
], ids=lambda a: f"{a[0]}={a[1]}")
def test_q4_who_deleted_whiskers(loaded, aws, attr):
    ev = only(lookup(aws, attr))
    assert ev["EventName"] == "DeleteObject"
    assert ev["EventSource"] == "s3.amazonaws.com"
    assert ev["Username"] == "dev-intern"
    assert epoch(ev["EventTime"]) == iso("2024-03-14T10:22:05Z")
    assert {"ResourceType": "AWS::S3::Object", "ResourceName": "cat-photos/2024/whiskers.jpg"} \
        in ev["Resources"]
    rec = parse_record(ev["CloudTrailEvent"])
    assert rec["eventCategory"] == "Data"  # a data event, in Cairn's event history
    assert rec["managementEvent"] is False
    assert rec["requestParameters"]["bucketName"] == "cat-photos"
    assert rec["requestParameters"]["key"] == "2024/whiskers.jpg"
    assert rec["awsRegion"] == "eu-west-1"


def check_q5(events):
    assert [e["EventName"] for e in events] == ["ConsoleLogin"] * 3
    assert all(e["Username"] == "dev-intern" for e in events)
    # Newest first: the success from 192.0.2.77, then the two failures from 203.0.113.9.
    assert [epoch(e["EventTime"]) for e in events] == [
        iso("2024-03-14T10:01:02Z"), iso("2024-03-14T09:58:40Z"), iso("2024-03-14T09:58:11Z")]
    recs = [parse_record(e["CloudTrailEvent"]) for e in events]
    assert [(r["responseElements"]["ConsoleLogin"], r["sourceIPAddress"]) for r in recs] == [
        ("Success", "192.0.2.77"), ("Failure", "203.0.113.9"), ("Failure", "203.0.113.9")]
    assert [r.get("errorMessage") for r in recs] == [
        None, "Failed authentication", "Failed authentication"]
    assert [e["EventId"] for e in events] == [
        "c0ffee00-0000-4000-8000-000000000003", "c0ffee00-0000-4000-8000-000000000002",
        "c0ffee00-0000-4000-8000-000000000001"]


def test_q5_failed_console_sign_ins(loaded, aws):
    check_q5(lookup(aws, ("EventName", "ConsoleLogin")))


def test_q5_and_of_two_keys(loaded, aws):
    """Cairn extension: different keys combine with AND."""
    check_q5(lookup(aws, ("Username", "dev-intern"), ("EventName", "ConsoleLogin")))
    assert len(lookup(aws, ("Username", "dev-intern"))) == 4  # + the S3 DeleteObject
    ev = only(lookup(aws, ("Username", "dev-intern"), ("EventSource", "s3.amazonaws.com")))
    assert ev["EventName"] == "DeleteObject"
    assert lookup(aws, ("Username", "alana"), ("EventName", "ConsoleLogin")) == []


def test_same_key_repeated_is_or(loaded, aws):
    events = lookup(aws, ("EventName", "ConsoleLogin"), ("EventName", "CreateUser"))
    assert sorted(e["EventName"] for e in events) == ["ConsoleLogin"] * 3 + ["CreateUser"]
    # OR within a key, AND across keys.
    events = lookup(aws, ("EventName", "ConsoleLogin"), ("EventName", "DeleteObject"),
                    ("Username", "dev-intern"), ("ReadOnly", "false"))
    assert len(events) == 4


@pytest.mark.parametrize("attr,expected", [
    (("EventId", "c0ffee00-0000-4000-8000-000000000002"), ["ConsoleLogin"]),
    (("EventSource", "signin.amazonaws.com"), ["ConsoleLogin"] * 3),
    (("AccessKeyId", "AKIAIOSFODNN7EXAMPLE"), ["DeleteDBInstance"]),
    (("AccessKeyId", "AKIAS3DELETEEXAMPLE1"), ["DeleteObject"]),
    (("ReadOnly", "true"), []),
    (("ReadOnly", "false"), None),  # all seven
    (("Username", "nobody"), []),
    (("EventName", "deletedbinstance"), []),  # values are case-sensitive
    (("ResourceType", "AWS::S3::Bucket"), ["DeleteObject"]),
    (("ResourceName", "cat-photos"), ["DeleteObject"]),
], ids=lambda a: f"{a[0]}={a[1]}" if isinstance(a, tuple) else "")
def test_every_attribute_key(loaded, aws, attr, expected):
    events = lookup(aws, attr)
    names = sorted(e["EventName"] for e in events)
    if expected is None:
        assert len(events) == 7
    else:
        assert names == sorted(expected)


def test_all_events_newest_first(loaded, aws, seed):
    events = lookup(aws)
    times = [epoch(e["EventTime"]) for e in events]
    assert times == sorted(times, reverse=True)
    assert [e["EventId"] for e in events] == [
        r["eventID"] for r in sorted(seed, key=lambda r: iso(r["eventTime"]), reverse=True)]
    # Without --start-time too (no default start bound in Cairn); Cairn's records of the
    # test's own calls come first, being newest.
    out = aws("cloudtrail", "lookup-events")
    assert [e["EventId"] for e in out["Events"] if not is_own(e)] == [
        e["EventId"] for e in events]
    # An end bound excludes what is newer.
    out = aws("cloudtrail", "lookup-events", "--end-time", "2020-12-31T23:59:59Z")
    assert sorted(e["EventName"] for e in out["Events"]) == ["CreateUser", "DeleteDBInstance"]


def test_cli_pagination_max_items(loaded, aws, seed):
    expected = [r["eventID"] for r in sorted(seed, key=lambda r: iso(r["eventTime"]),
                                             reverse=True)]
    for page_size in (None, "2", "3"):
        seen = []
        token = None
        calls = 0
        while True:
            args = ["cloudtrail", "lookup-events", "--start-time", OLD, "--end-time", SEED_END,
                    "--max-items", "2"]
            if page_size:
                args += ["--page-size", page_size]
            if token:
                args += ["--starting-token", token]
            out = aws(*args)
            calls += 1
            assert len(out["Events"]) <= 2
            seen += [e["EventId"] for e in out["Events"]]
            token = out.get("NextToken")
            if not token:
                break
            assert calls < 10
        assert seen == expected, f"page size {page_size}"
        assert calls == 4


def test_manual_paging_max_results_1(loaded, aws, seed):
    expected = [r["eventID"] for r in sorted(seed, key=lambda r: iso(r["eventTime"]),
                                             reverse=True)]
    seen = []
    token = None
    for _ in range(10):
        args = ["cloudtrail", "lookup-events", "--start-time", OLD, "--end-time", SEED_END,
                "--max-results", "1"]
        if token:
            args += ["--next-token", token]
        out = aws(*args)
        assert len(out["Events"]) == 1
        seen.append(out["Events"][0]["EventId"])
        token = out.get("NextToken")
        if not token:
            break
    assert seen == expected


def test_paging_with_a_filter(loaded, aws):
    seen = []
    token = None
    for _ in range(5):
        args = ["cloudtrail", "lookup-events", "--max-results", "1", "--lookup-attributes",
                "AttributeKey=EventName,AttributeValue=ConsoleLogin"]
        if token:
            args += ["--next-token", token]
        out = aws(*args)
        seen += [e["EventId"] for e in out["Events"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == ["c0ffee00-0000-4000-8000-000000000003", "c0ffee00-0000-4000-8000-000000000002",
                    "c0ffee00-0000-4000-8000-000000000001"]


def test_filled_account_is_not_applied_to_complete_records(loaded, aws):
    """kodekloud's record names another recipient account; it is stored verbatim in this
    account's history all the same (records are kept as sent)."""
    ev = only(lookup(aws, ("EventName", "RunInstances")))
    assert parse_record(ev["CloudTrailEvent"])["recipientAccountId"] == "629470242021"
    ev = only(lookup(aws, ("EventName", "DeleteDBInstance")))
    assert parse_record(ev["CloudTrailEvent"])["recipientAccountId"] == ACCOUNT_ID
