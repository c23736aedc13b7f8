"""What the browser console asks of the API beyond CloudTrail's: the lookup attributes
AwsRegion, ErrorCode and SourceIpAddress (CloudTrail itself refuses them; the SDKs and the
AWS CLI send them on as any other key), and CountEvents (`Cairn_20261121.CountEvents`), the
event-count histogram for a time range and the current filters.

The events ingested here happen in March 2024, so the records Cairn makes of the tests' own
calls (which happen now) stay out of every range looked up or counted."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import ACCOUNT_ID, JSON11, REGION, iso, parse_record

CAIRN_TARGET = "Cairn_20261121."
T0 = iso("2024-03-01T10:00:00Z")
HOUR = 3600
RUN = uuid.uuid4().hex[:8]

# name: (minutes after T0, awsRegion, errorCode, sourceIPAddress, userName, eventName)
EVENTS = {
    "e1": (0, "us-east-1", None, "203.0.113.10", "alana", "DescribeInstances"),
    "e2": (5, "eu-west-1", "AccessDenied", "203.0.113.10", "alana", "DeleteBucket"),
    "e3": (10, "eu-west-1", None, "198.51.100.20", "bob", "DescribeInstances"),
    "e4": (20, "ap-south-1", "ThrottlingException", "198.51.100.20", "bob", "RunInstances"),
    "e5": (30, "us-east-1", "AccessDenied", "2001:db8::7", "alana", "DeleteBucket"),
    "e6": (45, "eu-west-1", "AccessDenied", "198.51.100.20", "carol", "DeleteBucket"),
}
# An Insights event in the same hour: only EventCategory=insight counts it.
INSIGHT_MINUTE = 50


def eid(name: str) -> str:
    return f"console-{RUN}-{name}"


def when(name: str) -> float:
    return T0 + EVENTS[name][0] * 60


def record(name: str) -> dict:
    minute, region, error, ip, user, event_name = EVENTS[name]
    r = {
        "eventVersion": "1.09",
        "eventID": eid(name),
        "eventTime": f"2024-03-01T10:{minute:02d}:00Z",
        "eventName": event_name,
        "eventSource": "ec2.amazonaws.com",
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": "console-test",
        "userIdentity": {"type": "IAMUser", "userName": user,
                         "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/{user}",
                         "accountId": ACCOUNT_ID, "accessKeyId": "AKIAEXAMPLECONSOLE01"},
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT_ID,
    }
    if error:
        r["errorCode"] = error
        r["errorMessage"] = "no"
    return r


def insight_record() -> dict:
    return {
        "eventVersion": "1.08",
        "eventID": eid("insight"),
        "eventTime": f"2024-03-01T10:{INSIGHT_MINUTE}:00Z",
        "eventName": "RunInstances",
        "eventSource": "ec2.amazonaws.com",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "ec2.amazonaws.com",
        "eventType": "AwsCloudTrailInsight",
        "eventCategory": "Insight",
        "recipientAccountId": ACCOUNT_ID,
        "insightDetails": {"state": "Start", "eventSource": "ec2.amazonaws.com",
                           "eventName": "RunInstances", "insightType": "ApiCallRateInsight"},
    }


@pytest.fixture(scope="module")
def events(cairn):
    out = cairn.ingest([record(n) for n in EVENTS] + [insight_record()])
    assert out["stored"] == len(EVENTS) + 1, out
    return cairn


def call(cairn, target: str, body: dict, *, service: str = "cloudtrail",
         key: tuple[str, str] | None = None) -> tuple[int, dict]:
    """A JSON 1.1 call signed with SigV4 (botocore's signer); (status, parsed body)."""
    access, secret = key or (None, None)
    status, _, data = cairn.signed_request(
        "/", json.dumps(body).encode(), {"X-Amz-Target": target, "Content-Type": JSON11},
        service=service, access_key=access, secret_key=secret)
    return status, (json.loads(data) if data else None)


def attrs(*pairs: tuple[str, str]) -> list[dict]:
    return [{"AttributeKey": k, "AttributeValue": v} for k, v in pairs]


def lookup(cairn, *pairs: tuple[str, str], **extra) -> set[str]:
    """The names of this module's events that LookupEvents finds (raw JSON, every page)."""
    body = {"LookupAttributes": attrs(*pairs), "StartTime": T0, "EndTime": T0 + HOUR,
            "MaxResults": 2, **extra}
    found = []
    while True:
        status, out = call(cairn, "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
                           "LookupEvents", body)
        assert status == 200, out
        found += [e["EventId"] for e in out["Events"]]
        if not out.get("NextToken"):
            break
        body["NextToken"] = out["NextToken"]
    assert len(found) == len(set(found)), f"an event came twice: {found}"
    prefix = eid("")
    return {f.removeprefix(prefix) for f in found}


def count(cairn, *pairs: tuple[str, str], start: float = T0, end: float = T0 + HOUR,
          **extra) -> dict:
    body = {"LookupAttributes": attrs(*pairs), "StartTime": start, "EndTime": end, **extra}
    status, out = call(cairn, CAIRN_TARGET + "CountEvents", body)
    assert status == 200, out
    return out


def count_fails(cairn, body: dict) -> tuple[int, str, str]:
    status, out = call(cairn, CAIRN_TARGET + "CountEvents", body)
    return status, out.get("__type"), out.get("message")


def expected(pred) -> set[str]:
    return {n for n, (_, region, error, ip, user, name) in EVENTS.items()
            if pred(region=region, error=error, ip=ip, user=user, name=name)}


# --------------------------------------------------------------------------------------------
# The three extra lookup attributes
# --------------------------------------------------------------------------------------------

def test_each_new_key_filters_alone(events):
    for region in ("us-east-1", "eu-west-1", "ap-south-1"):
        assert lookup(events, ("AwsRegion", region)) == expected(
            lambda region_=region, **e: e["region"] == region_), region
    for code in ("AccessDenied", "ThrottlingException"):
        assert lookup(events, ("ErrorCode", code)) == expected(
            lambda code_=code, **e: e["error"] == code_), code
    for ip in ("203.0.113.10", "198.51.100.20", "2001:db8::7"):
        assert lookup(events, ("SourceIpAddress", ip)) == expected(
            lambda ip_=ip, **e: e["ip"] == ip_), ip
    # Values match exactly, as the other keys' do.
    assert lookup(events, ("AwsRegion", "EU-WEST-1")) == set()
    assert lookup(events, ("AwsRegion", "eu-west")) == set()
    assert lookup(events, ("SourceIpAddress", "198.51.100.2")) == set()


def test_records_without_an_error_code_are_in_no_error_code_list(events):
    with_error = lookup(events, ("ErrorCode", "AccessDenied"), ("ErrorCode", "ThrottlingException"))
    assert with_error == {"e2", "e4", "e5", "e6"}
    assert with_error == expected(lambda **e: e["error"] is not None)


def test_the_same_key_repeated_means_either_value(events):
    assert lookup(events, ("AwsRegion", "us-east-1"), ("AwsRegion", "ap-south-1")) == \
        {"e1", "e4", "e5"}
    assert lookup(events, ("SourceIpAddress", "2001:db8::7"),
                  ("SourceIpAddress", "203.0.113.10")) == {"e1", "e2", "e5"}


def test_different_keys_combine_with_each_other_and_with_cloudtrails(events):
    assert lookup(events, ("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied")) == \
        {"e2", "e6"}
    assert lookup(events, ("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied"),
                  ("SourceIpAddress", "198.51.100.20")) == {"e6"}
    assert lookup(events, ("Username", "alana"), ("ErrorCode", "AccessDenied")) == {"e2", "e5"}
    assert lookup(events, ("EventName", "DeleteBucket"), ("AwsRegion", "us-east-1"),
                  ("AwsRegion", "eu-west-1")) == {"e2", "e5", "e6"}
    assert lookup(events, ("SourceIpAddress", "198.51.100.20"), ("Username", "bob"),
                  ("ErrorCode", "ThrottlingException")) == {"e4"}
    assert lookup(events, ("AwsRegion", "ap-south-1"), ("ErrorCode", "AccessDenied")) == set()
    assert lookup(events, ("EventId", eid("e3")), ("SourceIpAddress", "198.51.100.20")) == {"e3"}
    assert lookup(events, ("EventId", eid("e3")), ("AwsRegion", "us-east-1")) == set()


def test_lookup_results_show_the_record(events):
    status, out = call(events, "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
                       "LookupEvents", {"LookupAttributes": attrs(("ErrorCode", "ThrottlingException")),
                                        "StartTime": T0, "EndTime": T0 + HOUR})
    assert status == 200
    [event] = out["Events"]
    rec = parse_record(event["CloudTrailEvent"])
    assert (rec["eventID"], rec["awsRegion"], rec["errorCode"], rec["sourceIPAddress"]) == \
        (eid("e4"), "ap-south-1", "ThrottlingException", "198.51.100.20")


def test_new_keys_are_validated_as_the_others(events):
    target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
    status, out = call(events, target, {"LookupAttributes": attrs(("Region", "eu-west-1"))})
    assert (status, out["__type"]) == (400, "InvalidLookupAttributesException")
    for key in ("EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName",
                "EventSource", "AccessKeyId", "AwsRegion", "ErrorCode", "SourceIpAddress"):
        assert key in out["message"], out["message"]
    for key in ("AwsRegion", "ErrorCode", "SourceIpAddress"):
        for value in ("", "x" * 2001, "_" * 1001):
            status, out = call(events, target, {"LookupAttributes": attrs((key, value))})
            assert (status, out["__type"]) == (400, "InvalidLookupAttributesException"), \
                (key, len(value))
        status, out = call(events, target, {"LookupAttributes": attrs((key, "x" * 2000))})
        assert status == 200, out
        # Insights lookups take EventId, EventName and EventSource only.
        status, out = call(events, target, {"LookupAttributes": attrs((key, "eu-west-1")),
                                            "EventCategory": "insight"})
        assert (status, out["__type"]) == (400, "InvalidLookupAttributesException"), key
        assert "insight" in out["message"]


def test_stock_clients_can_send_the_new_keys_too(events, ct, aws):
    # The SDKs do not check AttributeKey against CloudTrail's list (enums stay open for
    # values added later), so boto3 and the AWS CLI pass the extra keys through unchanged.
    got = ct.lookup_events(LookupAttributes=attrs(("AwsRegion", "eu-west-1")),
                           StartTime=T0, EndTime=T0 + HOUR)["Events"]
    assert {e["EventId"] for e in got} == {eid(n) for n in ("e2", "e3", "e6")}
    out = aws("cloudtrail", "lookup-events", "--lookup-attributes",
              "AttributeKey=SourceIpAddress,AttributeValue=2001:db8::7",
              "--start-time", str(int(T0)), "--end-time", str(int(T0 + HOUR)))
    assert [e["EventId"] for e in out["Events"]] == [eid("e5")]
    got = ct.lookup_events(LookupAttributes=attrs(("Username", "bob")),
                           StartTime=T0, EndTime=T0 + HOUR)["Events"]
    assert {e["EventId"] for e in got} == {eid("e3"), eid("e4")}


# --------------------------------------------------------------------------------------------
# CountEvents
# --------------------------------------------------------------------------------------------

def test_counts_per_bucket(events):
    out = count(events, Buckets=4)
    assert out == {
        "BucketSeconds": 900,
        "Buckets": [{"Start": T0, "Count": 3}, {"Start": T0 + 900, "Count": 1},
                    {"Start": T0 + 1800, "Count": 1}, {"Start": T0 + 2700, "Count": 1}],
        "Total": 6, "Partial": False, "CompleteFrom": T0,
    }
    # The default is 60 buckets: one a minute here.
    out = count(events)
    assert out["BucketSeconds"] == 60 and len(out["Buckets"]) == 60
    assert [b["Start"] for b in out["Buckets"]] == [T0 + 60 * i for i in range(60)]
    nonzero = {int((b["Start"] - T0) // 60): b["Count"] for b in out["Buckets"] if b["Count"]}
    assert nonzero == {0: 1, 5: 1, 10: 1, 20: 1, 30: 1, 45: 1}
    assert out["Total"] == 6


def test_counts_follow_the_filters(events):
    def per_quarter(*pairs):
        out = count(events, *pairs, Buckets=4)
        return [b["Count"] for b in out["Buckets"]], out["Total"], out["Partial"]

    assert per_quarter(("ErrorCode", "AccessDenied")) == ([1, 0, 1, 1], 3, False)
    assert per_quarter(("AwsRegion", "eu-west-1")) == ([2, 0, 0, 1], 3, False)
    assert per_quarter(("AwsRegion", "eu-west-1"), ("AwsRegion", "ap-south-1")) == \
        ([2, 1, 0, 1], 4, False)
    assert per_quarter(("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied")) == \
        ([1, 0, 0, 1], 2, False)
    assert per_quarter(("SourceIpAddress", "198.51.100.20"), ("Username", "bob")) == \
        ([1, 1, 0, 0], 2, False)
    assert per_quarter(("EventId", eid("e5"))) == ([0, 0, 1, 0], 1, False)
    assert per_quarter(("EventId", eid("e5")), ("AwsRegion", "eu-west-1")) == \
        ([0, 0, 0, 0], 0, False)
    assert per_quarter(("AwsRegion", "nowhere-1")) == ([0, 0, 0, 0], 0, False)
    # The histogram agrees with what LookupEvents finds, filter for filter.
    for pairs in ([("ErrorCode", "AccessDenied"), ("Username", "alana")],
                  [("SourceIpAddress", "203.0.113.10")],
                  [("EventName", "DescribeInstances"), ("AwsRegion", "eu-west-1")],
                  []):
        assert count(events, *pairs)["Total"] == len(lookup(events, *pairs)), pairs


def test_the_range_includes_its_start_and_not_its_end(events):
    out = count(events, start=when("e2"), end=when("e6"), Buckets=2)
    # [10:05, 10:45): e2, e3, e4, e5; buckets of 20 minutes from 10:05.
    assert out["BucketSeconds"] == 1200
    assert out["Buckets"] == [{"Start": when("e2"), "Count": 3},
                              {"Start": when("e2") + 1200, "Count": 1}]
    # A range shorter than the buckets asked: one-second buckets.
    out = count(events, start=when("e4") - 10, end=when("e4") + 20, Buckets=60)
    assert out["BucketSeconds"] == 1 and len(out["Buckets"]) == 30
    assert [b["Count"] for b in out["Buckets"]] == [0] * 10 + [1] + [0] * 19
    # Buckets that do not divide the range: the last one ends at EndTime.
    out = count(events, start=T0, end=T0 + 1000, Buckets=3)
    assert out["BucketSeconds"] == 334 and len(out["Buckets"]) == 3
    # 10:00 and 10:05 in [0 s, 334 s), 10:10 in [334 s, 668 s), the last [668 s, 1000 s).
    assert [b["Count"] for b in out["Buckets"]] == [2, 1, 0]
    # ISO 8601 times are accepted, as LookupEvents accepts them.
    out = count(events, start="2024-03-01T10:00:00Z", end="2024-03-01T11:00:00Z", Buckets=1)
    assert out["Buckets"] == [{"Start": T0, "Count": 6}]


def test_insights_are_counted_apart(events):
    out = count(events, Buckets=1, EventCategory="insight")
    assert out["Buckets"] == [{"Start": T0, "Count": 1}]
    out = count(events, ("EventName", "RunInstances"), Buckets=1, EventCategory="insight")
    assert out["Total"] == 1
    assert count(events, ("EventName", "RunInstances"), Buckets=1)["Total"] == 1  # e4


def test_count_errors(events):
    def fails(body):
        status, code, message = count_fails(events, body)
        assert status == 400, (body, status, code, message)
        return code, message

    span = {"StartTime": T0, "EndTime": T0 + HOUR}
    assert fails({})[0] == "InvalidTimeRangeException"
    assert fails({"StartTime": T0})[0] == "InvalidTimeRangeException"
    assert fails({"EndTime": T0})[0] == "InvalidTimeRangeException"
    assert fails({"StartTime": T0, "EndTime": T0})[0] == "InvalidTimeRangeException"
    assert fails({"StartTime": T0 + 1, "EndTime": T0})[0] == "InvalidTimeRangeException"
    for bad in (0, -1, 501, 100000):
        code, message = fails({**span, "Buckets": bad})
        assert code == "InvalidParameterException" and "Buckets" in message, (bad, message)
    assert count(events, Buckets=500)["BucketSeconds"] == 8  # 3600 s / 500, rounded up
    assert count(events, Buckets=1)["Buckets"] == [{"Start": T0, "Count": 6}]
    code, message = fails({**span, "LookupAttributes": attrs(("SourceIp", "1.2.3.4"))})
    assert code == "InvalidLookupAttributesException" and "SourceIpAddress" in message
    assert fails({**span, "LookupAttributes": attrs(("ErrorCode", ""))})[0] == \
        "InvalidLookupAttributesException"
    assert fails({**span, "EventCategory": "insight",
                  "LookupAttributes": attrs(("AwsRegion", "eu-west-1"))})[0] == \
        "InvalidLookupAttributesException"
    assert fails({**span, "EventCategory": "Insight"})[0] == "InvalidEventCategoryException"
    # CountEvents is Cairn's only operation of its own.
    status, out = call(events, CAIRN_TARGET + "LookupEvents", span)
    assert (status, out["__type"]) == (400, "UnknownOperationException")
    # It is not an operation of CloudTrail's API.
    status, out = call(events, "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
                       "CountEvents", span)
    assert (status, out["__type"]) == (400, "UnknownOperationException")


def test_count_is_signed_for_cloudtrail(events):
    status, out = call(events, CAIRN_TARGET + "CountEvents",
                       {"StartTime": T0, "EndTime": T0 + HOUR}, service="iam")
    assert status in (400, 403) and out["__type"] != "InvalidTimeRangeException", out
    status, _ = call(events, CAIRN_TARGET + "CountEvents",
                     {"StartTime": T0, "EndTime": T0 + HOUR},
                     key=("AKIAEXAMPLEUNKNOWN01", "wrong-secret-wrong-secret-wrong-secret00"))
    assert status == 403


def admin_cli(cairn, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CAIRN_"))}
    env.update({"AWS_ACCESS_KEY_ID": cairn.access_key,
                "AWS_SECRET_ACCESS_KEY": cairn.secret_key, "AWS_REGION": REGION,
                "CAIRN_ENDPOINT_URL": cairn.endpoint, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    proc = subprocess.run([str(cairn.server.binary), "admin", *args], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def test_count_needs_the_right_to_look_events_up(events):
    body = {"StartTime": T0, "EndTime": T0 + HOUR, "Buckets": 1}
    reader = admin_cli(events, "create-user", f"reader-{RUN}", "--policy",
                       "AWSCloudTrail_ReadOnlyAccess", "--access-key")["AccessKey"]
    status, out = call(events, CAIRN_TARGET + "CountEvents", body,
                       key=(reader["AccessKeyId"], reader["SecretAccessKey"]))
    assert (status, out["Total"]) == (200, 6), out
    writer = admin_cli(events, "create-user", f"writer-{RUN}", "--policy", "CairnAuditWriter",
                       "--access-key")
    key = writer["AccessKey"]
    status, out = call(events, CAIRN_TARGET + "CountEvents", body,
                       key=(key["AccessKeyId"], key["SecretAccessKey"]))
    assert (status, out["__type"]) == (403, "AccessDeniedException"), out
    assert "cloudtrail:LookupEvents" in out["message"]
    assert writer["User"]["Arn"] in out["message"]


def test_count_calls_are_audited(events):
    count(events, Buckets=7)
    mine = []
    deadline = time.monotonic() + 5
    while not mine and time.monotonic() < deadline:
        found = events.lookup_all(own=True, LookupAttributes=attrs(("EventName", "CountEvents")))
        records = [parse_record(e["CloudTrailEvent"]) for e in found]
        mine = [r for r in records if (r.get("requestParameters") or {}).get("buckets") == 7]
        time.sleep(0.1)
    assert len(mine) == 1, records
    rec = mine[0]
    assert rec["eventSource"] == "cloudtrail.amazonaws.com"
    assert rec["eventName"] == "CountEvents"
    assert rec["userIdentity"]["accessKeyId"] == events.access_key
    assert rec["requestParameters"]["startTime"] == T0
    assert "errorCode" not in rec


def test_filters_and_counts_survive_a_restart(events):
    before = {key: lookup(events, (key, value)) for key, value in (
        ("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied"),
        ("SourceIpAddress", "198.51.100.20"))}
    counted = count(events, ("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied"), Buckets=4)
    events.restart()
    after = {key: lookup(events, (key, value)) for key, value in (
        ("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied"),
        ("SourceIpAddress", "198.51.100.20"))}
    assert after == before
    assert after["AwsRegion"] == {"e2", "e3", "e6"}
    assert count(events, ("AwsRegion", "eu-west-1"), ("ErrorCode", "AccessDenied"),
                 Buckets=4) == counted
