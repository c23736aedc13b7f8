"""Rules and alerts end to end: `cairn serve` running the default pack, a folder of Sigma rules
and rules of the account's own on every event it stores, and sending the alerts to a real HTTP
receiver on loopback (signed webhook, Slack-compatible), an NDJSON file and its standard output.

- the default pack on Cairn's own record of `aws cloudtrail stop-logging`, signed and within
  about a second, and on ingested records: root use, failed sign-ins per user and per source
  address (thresholds), sign-in without MFA, a public bucket policy, an access key made for
  another user, a security group open to the world, a deleted database, a deleted bucket; near
  misses of each raise nothing;
- the seed scenarios against the shared Sigma folder (`--rules-dir`), and a folder with a rule
  Cairn cannot evaluate (listed with the reason at start and by ListRules);
- retries with the same alert ID, the dead-letter file, and GetAlertTargets' counts;
- a receiver that takes 5 s per request never slows ingest down;
- a restart (SIGTERM, SIGKILL) in the middle of a counting window;
- the rules operations on `Cairn_20261121` with their errors, TestRule on records and on stored
  history, ListAlerts paging, and permissions.

The rules worker reads the journal in order and each target sends the alert log in order, so
once the alert of a `DeleteBucket` ingested last has reached a target, every alert of the events
before it has too (`flush`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest

from conftest import (ACCOUNT_ID, DATASETS, JSON11, REGION, Cairn, read_jsonl, start_server,
                      stop_server, wait_for)
from conftest import WebhookReceiver as Receiver

CAIRN_TARGET = "Cairn_20261121."
SECRET = "acceptance-webhook-secret-0123456789"
PUBLIC_URL = "https://cairn.example.test:8443"
SIGMA_DIR = DATASETS / "sigma"
SIGMA_FAILED_LOGIN = "sigma-aws_cloudtrail_console_login_failed_authentication"

DEFAULT_PACK = {
    "cairn-root-account-use", "cairn-console-sign-in-failures-per-user",
    "cairn-console-sign-in-failures-per-ip", "cairn-console-sign-in-without-mfa",
    "cairn-trail-logging-changed", "cairn-bucket-made-public",
    "cairn-access-key-for-another-user", "cairn-security-group-open-to-world",
    "cairn-database-deleted", "cairn-bucket-deleted",
}
PER_USER = "cairn-console-sign-in-failures-per-user"
PER_IP = "cairn-console-sign-in-failures-per-ip"


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

def iso_z(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def record(name: str, source: str, *, user: str = "alice", root: bool = False,
           ip: str = "198.51.100.10", t: float | None = None, event_type: str = "AwsApiCall",
           **members: Any) -> dict:
    if root:
        identity = {"type": "Root", "principalId": ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:root", "accountId": ACCOUNT_ID}
    else:
        identity = {"type": "IAMUser", "principalId": "AIDACAIRNRULES000001",
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/{user}", "accountId": ACCOUNT_ID,
                    "userName": user}
    r = {"eventVersion": "1.08", "eventID": str(uuid.uuid4()),
         "eventTime": iso_z(time.time() if t is None else t), "eventSource": source,
         "eventName": name, "awsRegion": REGION, "sourceIPAddress": ip,
         "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0", "readOnly": False,
         "eventType": event_type, "managementEvent": True, "recipientAccountId": ACCOUNT_ID,
         "userIdentity": identity, "requestParameters": None, "responseElements": None}
    r.update(members)
    return r


def sign_in(user: str, ip: str, *, ok: bool = False, mfa: bool = False,
            t: float | None = None) -> dict:
    extra = {} if ok else {"errorMessage": "Failed authentication"}
    return record("ConsoleLogin", "signin.amazonaws.com", user=user, ip=ip, t=t,
                  event_type="AwsConsoleSignIn",
                  responseElements={"ConsoleLogin": "Success" if ok else "Failure"},
                  additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home",
                                       "MobileVersion": "No", "MFAUsed": "Yes" if mfa else "No"},
                  **extra)


def delete_bucket(bucket: str | None = None, **kw: Any) -> dict:
    return record("DeleteBucket", "s3.amazonaws.com",
                  requestParameters={"bucketName": bucket or unique("gone"), "Host": "s3"}, **kw)


def delete_db(**kw: Any) -> dict:
    return record("DeleteDBInstance", "rds.amazonaws.com",
                  requestParameters={"dBInstanceIdentifier": unique("db"),
                                     "skipFinalSnapshot": True}, **kw)


def bucket_policy(principal: Any) -> dict:
    bucket = unique("policy")
    return record("PutBucketPolicy", "s3.amazonaws.com", requestParameters={
        "bucketName": bucket, "policy": [""],
        "bucketPolicy": {"Version": "2012-10-17", "Statement": [{
            "Sid": "Read", "Effect": "Allow", "Principal": principal, "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}]}})


def create_access_key(caller: str, for_user: str) -> dict:
    return record("CreateAccessKey", "iam.amazonaws.com", user=caller,
                  requestParameters={"userName": for_user},
                  responseElements={"accessKey": {"userName": for_user, "status": "Active",
                                                  "accessKeyId": "AKIACAIRNRULES000009"}})


def ingress(cidr: str) -> dict:
    return record("AuthorizeSecurityGroupIngress", "ec2.amazonaws.com", requestParameters={
        "groupId": "sg-0123456789abcdef0",
        "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                                     "groups": {}, "ipRanges": {"items": [{"cidrIp": cidr}]},
                                     "ipv6Ranges": {}, "prefixListIds": {}}]}})


def alerts_on(bodies: list[dict], event_id: str, rule: str | None = None) -> list[dict]:
    return [b for b in bodies if b["eventId"] == event_id and (rule is None or
                                                                 b["rule"]["name"] == rule)]


# --------------------------------------------------------------------------------------------
# Servers and the rules API
# --------------------------------------------------------------------------------------------

def call(c: Cairn, op: str, body: dict | None = None, key: tuple[str, str] | None = None
         ) -> tuple[int, Any]:
    """One rules operation (`X-Amz-Target: Cairn_20261121.<op>`); (status, parsed body)."""
    kw = {} if key is None else {"access_key": key[0], "secret_key": key[1]}
    status, _, data = c.signed_request(
        "/", json.dumps(body or {}).encode(),
        {"X-Amz-Target": CAIRN_TARGET + op, "Content-Type": JSON11}, **kw)
    return status, (json.loads(data) if data else None)


def ok(c: Cairn, op: str, body: dict | None = None, key: tuple[str, str] | None = None) -> dict:
    status, out = call(c, op, body, key)
    assert status == 200, f"{op} answered {status}: {out}"
    return out


def fails(c: Cairn, code: str, op: str, body: dict | None = None,
          key: tuple[str, str] | None = None) -> str:
    status, out = call(c, op, body, key)
    assert status >= 400 and out and out.get("__type", "").rsplit("#", 1)[-1] == code, (
        f"{op}: expected {code}, got {status} {out}")
    return out.get("message") or out.get("Message") or ""


def flush(c: Cairn, recv: Receiver, path: str = "/hook", timeout: float = 15.0) -> list[dict]:
    """Ingests a DeleteBucket and waits for its alert at the receiver: every alert of an
    event ingested before it has been sent by then. Returns what the receiver got."""
    sentinel = delete_bucket(unique("flush"))
    c.ingest([sentinel])
    wait_for(lambda: alerts_on(recv.delivered(path), sentinel["eventID"], "cairn-bucket-deleted"),
             "the alert of the flushing DeleteBucket", timeout)
    return recv.delivered(path)


def verify_signature(req: dict, secret: str = SECRET) -> None:
    headers = req["headers"]
    ts = headers["x-cairn-timestamp"]
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", headers["x-cairn-signature"])
    assert m, headers["x-cairn-signature"]
    assert m.group(1) == ts
    assert abs(int(ts) - time.time()) < 60
    expected = hmac.new(secret.encode(), ts.encode() + b"." + req["raw"],
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(m.group(2), expected), "the webhook signature does not verify"


# --------------------------------------------------------------------------------------------
# The main server: default pack, every kind of target
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recv():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def main(tmp_path_factory, recv):
    tmp = tmp_path_factory.mktemp("rules")
    c = start_server(tmp, "main", [
        "--alert-target", f"webhook={recv.url('/hook')}",
        "--alert-target", f"slack={recv.url('/slack')}",
        "--alert-target", f"file={tmp / 'alerts.ndjson'}",
        "--alert-target", "stdout",
        "--alert-webhook-secret", SECRET,
        "--alert-backoff", "100ms",
        "--public-url", PUBLIC_URL,
    ])
    c.alerts_file = tmp / "alerts.ndjson"
    try:
        yield c
    finally:
        stop_server(c)


def test_stop_logging_through_the_cli_alerts_within_a_second_or_two(main, recv):
    c = main
    bucket, trail = unique("trail-logs"), unique("watched")
    c.aws("s3api", "create-bucket", "--bucket", bucket)
    c.aws("cloudtrail", "create-trail", "--name", trail, "--s3-bucket-name", bucket)
    c.aws("cloudtrail", "start-logging", "--name", trail)
    c.aws("cloudtrail", "stop-logging", "--name", trail)
    returned = time.time()

    def mine():
        return [r for r in recv.attempts() if r["ok"] and json.loads(r["raw"])["event"].get(
            "requestParameters", {}).get("name") == trail]
    req = wait_for(mine, "the alert on StopLogging", 10)[0]
    assert req["at"] - returned < 2.0, f"the alert came {req['at'] - returned:.2f} s after the call"
    verify_signature(req)
    body = json.loads(req["raw"])
    assert req["headers"]["x-cairn-alert-id"] == body["alertId"]
    assert req["headers"]["content-type"].startswith("application/json")
    assert body["rule"]["name"] == "cairn-trail-logging-changed"
    assert body["rule"]["severity"] == "high"
    assert body["rule"]["origin"] == "default"
    assert body["eventName"] == "StopLogging"
    assert body["eventSource"] == "cloudtrail.amazonaws.com"
    assert body["account"] == ACCOUNT_ID
    assert body["principal"] == f"arn:aws:iam::{ACCOUNT_ID}:user/admin"
    assert body["consoleUrl"].startswith(PUBLIC_URL + "/console/events?")
    assert uuid.UUID(body["alertId"])
    # The event in the alert is the one Cairn stored for the call.
    found = c.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                  "AttributeKey=EventName,AttributeValue=StopLogging")["Events"]
    stored = [e for e in found if json.loads(e["CloudTrailEvent"])["requestParameters"]
              .get("name") == trail]
    assert len(stored) == 1, found
    assert body["event"]["eventID"] == body["eventId"] == stored[0]["EventId"]
    assert body["event"] == json.loads(stored[0]["CloudTrailEvent"])
    assert stored[0]["EventId"].replace("-", "%2D") in body["consoleUrl"]
    # One alert for the one StopLogging (StartLogging and CreateTrail match nothing).
    assert len(mine()) == 1


def test_ingested_records_raise_the_default_rules_and_near_misses_nothing(main, recv):
    c = main
    now = time.time()
    u_three, u_two, u_spread = unique("three"), unique("two"), unique("spread")
    ip_five, ip_four = "203.0.113.22", "203.0.113.23"
    three = [sign_in(u_three, "203.0.113.20", t=now - 120 + 50 * i) for i in range(3)]
    two = [sign_in(u_two, "203.0.113.21", t=now - 100 + 50 * i) for i in range(2)]
    # Three failures, but never three within five minutes of each other.
    spread = [sign_in(u_spread, "203.0.113.24", t=now - 900 + 301 * i) for i in range(3)]
    five = [sign_in(unique("ipuser"), ip_five, t=now - 200 + 40 * i) for i in range(5)]
    four = [sign_in(unique("ipuser"), ip_four, t=now - 200 + 40 * i) for i in range(4)]
    hits = {
        "cairn-root-account-use": record("ListBuckets", "s3.amazonaws.com", root=True,
                                         readOnly=True),
        "cairn-console-sign-in-without-mfa": sign_in(unique("nomfa"), "192.0.2.31", ok=True),
        "cairn-bucket-made-public": bucket_policy("*"),
        "cairn-access-key-for-another-user": create_access_key("alice", "bob"),
        "cairn-security-group-open-to-world": ingress("0.0.0.0/0"),
        "cairn-database-deleted": delete_db(),
        "cairn-bucket-deleted": delete_bucket(),
    }
    misses = {
        # The root user's identity used by a service on its behalf.
        "root by a service": record("ListBuckets", "s3.amazonaws.com", root=True,
                                    readOnly=True, userIdentity={
                                        "type": "Root", "principalId": ACCOUNT_ID,
                                        "arn": f"arn:aws:iam::{ACCOUNT_ID}:root",
                                        "accountId": ACCOUNT_ID,
                                        "invokedBy": "cloudformation.amazonaws.com"}),
        "sign-in with MFA": sign_in(unique("mfa"), "192.0.2.32", ok=True, mfa=True),
        "policy for one account": bucket_policy({"AWS": "arn:aws:iam::444455556666:root"}),
        "own access key": create_access_key("carol", "carol"),
        "failed access key": {**create_access_key("alice", "dave"),
                              "errorCode": "AccessDenied"},
        "private range": ingress("10.0.0.0/8"),
        "failed DeleteDBInstance": {**delete_db(), "errorCode": "InvalidDBInstanceState"},
        "failed DeleteBucket": {**delete_bucket(), "errorCode": "BucketNotEmpty"},
    }
    ingested = three + two + spread + five + four + list(hits.values()) + list(misses.values())
    answer = c.ingest(ingested)
    assert answer, answer
    got = flush(c, recv)
    ids = {r["eventID"] for r in ingested}
    mine = [b for b in got if b["eventId"] in ids]

    for rule, rec in hits.items():
        on = alerts_on(mine, rec["eventID"], rule)
        assert len(on) == 1, f"{rule}: {len(on)} alerts on its event"
        assert on[0]["rule"]["origin"] == "default"
    user_alerts = [b for b in mine if b["rule"]["name"] == PER_USER]
    assert [b["eventId"] for b in user_alerts] == [three[2]["eventID"]], user_alerts
    g = user_alerts[0]["group"]
    assert g["count"] == 3 and g["windowSeconds"] == 300
    assert g["eventIds"] == [r["eventID"] for r in three]
    assert g["key"] == {"detail.userIdentity.type": "IAMUser",
                        "detail.userIdentity.userName": u_three}
    assert user_alerts[0]["summary"].startswith("3 matching events within 300 s")
    ip_alerts = [b for b in mine if b["rule"]["name"] == PER_IP]
    assert [b["eventId"] for b in ip_alerts] == [five[4]["eventID"]], ip_alerts
    assert ip_alerts[0]["group"]["key"] == {"detail.sourceIPAddress": ip_five}
    for what, rec in misses.items():
        assert not alerts_on(mine, rec["eventID"]), f"the near miss {what!r} raised an alert"
    # Nothing else: each rule fired exactly where it should.
    assert len(mine) == len(hits) + 2, [(b["rule"]["name"], b["eventName"]) for b in mine]
    assert len({b["alertId"] for b in mine}) == len(mine)


def test_file_stdout_and_slack_targets(main, recv):
    c = main
    rec = delete_db()
    c.ingest([rec])
    flush(c, recv)
    hook = alerts_on(recv.delivered(), rec["eventID"], "cairn-database-deleted")[0]

    # NDJSON file: one alert a line, the same JSON the webhook gets.
    def in_file():
        if not c.alerts_file.exists():
            return None
        lines = c.alerts_file.read_text().splitlines()
        return [json.loads(line) for line in lines if rec["eventID"] in line]
    lines = wait_for(in_file, "the alert in the file")
    assert lines == [hook]
    for line in c.alerts_file.read_text().splitlines():
        assert json.loads(line)["alertId"]

    # stdout: alert JSON lines in the server's log.
    def in_log():
        out = []
        for line in c.server.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and rec["eventID"] in line:
                out.append(json.loads(line))
        return out
    assert wait_for(in_log, "the alert on standard output") == [hook]

    # Slack: {"text": ...} naming the rule, with the console link.
    slack = wait_for(lambda: [json.loads(r["raw"]) for r in recv.attempts("/slack")
                              if r["ok"] and hook["alertId"].encode() in r["raw"]],
                     "the Slack message")
    assert len(slack) == 1
    assert list(slack[0]) == ["text"]
    text = slack[0]["text"]
    assert "[HIGH]" in text and "cairn-database-deleted" in text
    assert hook["consoleUrl"] in text and hook["alertId"] in text


def test_a_receiver_failing_three_times_gets_the_alert_when_it_recovers(main, recv):
    c = main
    with recv.lock:
        recv.fail_next["/hook"] = 3
    rec = delete_bucket()
    c.ingest([rec])
    wait_for(lambda: alerts_on(recv.delivered(), rec["eventID"]), "the alert after retries")
    tries = [r for r in recv.attempts() if rec["eventID"].encode() in r["raw"]]
    assert [r["ok"] for r in tries] == [False, False, False, True]
    assert len({r["headers"]["x-cairn-alert-id"] for r in tries}) == 1
    # Exponential backoff: 100 ms, 200 ms, 400 ms between the tries.
    gaps = [b["at"] - a["at"] for a, b in zip(tries, tries[1:])]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps
    assert gaps[2] > gaps[0], gaps
    dead = c.server.data_dir / "rules" / "dead-letter.ndjson"
    assert not dead.exists() or rec["eventID"] not in dead.read_text()
    targets = ok(c, "GetAlertTargets")
    by_name = {t["Target"]: t for t in targets["Targets"]}
    port = recv.server.server_address[1]
    hook = by_name[f"webhook http://127.0.0.1:{port}"]
    assert hook["FailedAttempts"] >= 3 and hook["DeadLettered"] == 0
    assert hook["Delivered"] >= 1 and hook["LastError"] and "500" in hook["LastError"]
    assert set(by_name) == {f"webhook http://127.0.0.1:{port}", f"slack http://127.0.0.1:{port}",
                            f"file {c.alerts_file}", "stdout"}
    assert targets["DeadLetterFile"] == str(dead)


def test_every_target_saves_its_cursor(main, recv):
    c = main
    c.ingest([delete_bucket() for _ in range(30)])
    got = flush(c, recv)
    assert got
    wait_for(lambda: all(t["Pending"] == 0 for t in ok(c, "GetAlertTargets")["Targets"]),
             "every target to catch up")
    time.sleep(0.2)
    logged = len((c.server.data_dir / "rules" / "alerts.ndjson").read_text().splitlines())
    cursors = json.loads((c.server.data_dir / "rules" / "targets.json").read_text())
    assert len(cursors) == 4
    assert set(cursors.values()) == {logged}, (cursors, logged)
    assert "cannot save the alert targets' cursors" not in c.server.log_tail(100_000)


# --------------------------------------------------------------------------------------------
# The rules API
# --------------------------------------------------------------------------------------------

def test_put_get_and_run_a_pattern_rule_with_a_threshold(main, recv):
    c = main
    name = unique("object-deletes")
    pattern = {"source": ["aws.s3"], "detail": {"eventName": ["DeleteObjects"]}}
    out = ok(c, "PutRule", {
        "Name": name, "EventPattern": json.dumps(pattern), "Description": "Mass deletes",
        "Severity": "low",
        "Threshold": {"Count": 2, "WindowSeconds": 60, "GroupBy": ["detail.userIdentity.userName"]},
    })
    assert out["Created"] is True
    rule = out["Rule"]
    assert rule["Name"] == name and rule["Kind"] == "pattern" and rule["Origin"] == "custom"
    assert json.loads(rule["EventPattern"]) == pattern
    assert rule["Threshold"] == {"Count": 2, "WindowSeconds": 60,
                                 "GroupBy": ["detail.userIdentity.userName"]}
    assert rule["Enabled"] is True and rule["Severity"] == "low"
    assert abs(rule["UpdatedAt"] - time.time()) < 60
    assert ok(c, "GetRule", {"Name": name})["Rule"]["EventPattern"] == rule["EventPattern"]

    now = time.time()
    u1, u2 = unique("deleter"), unique("deleter")
    recs = [record("DeleteObjects", "s3.amazonaws.com", user=u1, t=now - 10),
            record("DeleteObjects", "s3.amazonaws.com", user=u2, t=now - 5),
            record("DeleteObjects", "s3.amazonaws.com", user=u1, t=now)]
    c.ingest(recs)
    got = [b for b in flush(c, recv) if b["rule"]["name"] == name]
    assert [b["eventId"] for b in got] == [recs[2]["eventID"]]
    assert got[0]["rule"]["severity"] == "low" and got[0]["rule"]["origin"] == "custom"
    assert got[0]["group"]["eventIds"] == [recs[0]["eventID"], recs[2]["eventID"]]
    hits = ok(c, "GetRule", {"Name": name})["Rule"]["Hits"]
    assert hits["Matched"] == 3 and hits["Alerts"] == 1
    assert abs(hits["LastMatch"] - int(now)) <= 1

    # Putting it again replaces it.
    out = ok(c, "PutRule", {"Name": name, "EventPattern": json.dumps(pattern)})
    assert out["Created"] is False and "Threshold" not in out["Rule"]
    assert out["Rule"]["Severity"] == "medium"
    ok(c, "DeleteRule", {"Name": name})
    fails(c, "RuleNotFoundException", "GetRule", {"Name": name})
    fails(c, "RuleNotFoundException", "DeleteRule", {"Name": name})
    assert name not in {r["Name"] for r in ok(c, "ListRules")["Rules"]}


SIGMA_RULE = """title: Snapshot shared with everyone
id: 1c8c1b7e-3f0e-4a8e-9d0f-5a2b7c4d9e11
status: experimental
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: ec2.amazonaws.com
        eventName: ModifySnapshotAttribute
        requestParameters.createVolumePermission.add.items.group: all
    condition: selection
level: critical
"""


def test_put_a_sigma_rule_and_its_alerts(main, recv):
    c = main
    name = unique("snapshot-public")
    out = ok(c, "PutRule", {"Name": name, "SigmaRule": SIGMA_RULE, "Severity": "critical"})
    assert out["Created"] is True and out["Rule"]["Kind"] == "sigma"
    assert out["Rule"]["SigmaRule"] == SIGMA_RULE
    shared = record("ModifySnapshotAttribute", "ec2.amazonaws.com", requestParameters={
        "snapshotId": "snap-1", "createVolumePermission": {"add": {"items": [{"group": "all"}]}}})
    private = record("ModifySnapshotAttribute", "ec2.amazonaws.com", requestParameters={
        "snapshotId": "snap-2",
        "createVolumePermission": {"add": {"items": [{"userId": "444455556666"}]}}})
    c.ingest([shared, private])
    got = [b for b in flush(c, recv) if b["rule"]["name"] == name]
    assert [b["eventId"] for b in got] == [shared["eventID"]]
    assert got[0]["rule"]["kind"] == "sigma" and got[0]["rule"]["severity"] == "critical"
    ok(c, "DeleteRule", {"Name": name})


def test_list_rules_shows_the_default_pack_with_hits(main, recv):
    c = main
    c.ingest([delete_bucket()])
    flush(c, recv)
    rules = ok(c, "ListRules")
    assert rules["Refused"] == []
    by_name = {r["Name"]: r for r in rules["Rules"]}
    defaults = {n for n, r in by_name.items() if r["Origin"] == "default"}
    assert defaults == DEFAULT_PACK
    for n in DEFAULT_PACK:
        r = by_name[n]
        assert r["Enabled"] is True and r["Description"]
        assert r["Kind"] in ("pattern", "sigma")
        assert set(r["Hits"]) == {"Matched", "Alerts", "LastMatch"}
    assert by_name["cairn-access-key-for-another-user"]["Kind"] == "sigma"
    assert by_name[PER_USER]["Threshold"] == {
        "Count": 3, "WindowSeconds": 300,
        "GroupBy": ["detail.userIdentity.type", "detail.userIdentity.userName"]}
    deleted = by_name["cairn-bucket-deleted"]["Hits"]
    assert deleted["Matched"] >= 2 and deleted["Alerts"] >= 2
    assert abs(deleted["LastMatch"] - time.time()) < 120


def test_a_disabled_default_rule_raises_nothing_until_enabled(main, recv):
    c = main
    rule = "cairn-database-deleted"
    out = ok(c, "DisableRule", {"Name": rule})
    assert out["Rule"]["Enabled"] is False
    assert {r["Name"]: r for r in ok(c, "ListRules")["Rules"]}[rule]["Enabled"] is False
    try:
        quiet = delete_db()
        c.ingest([quiet])
        got = flush(c, recv)
        assert not alerts_on(got, quiet["eventID"])
    finally:
        assert ok(c, "EnableRule", {"Name": rule})["Rule"]["Enabled"] is True
    loud = delete_db()
    c.ingest([loud])
    assert alerts_on(flush(c, recv), loud["eventID"], rule)
    # Shared rules are disabled, not deleted.
    msg = fails(c, "InvalidParameterException", "DeleteRule", {"Name": rule})
    assert "disable" in msg
    assert rule in {r["Name"] for r in ok(c, "ListRules")["Rules"]}
    fails(c, "RuleNotFoundException", "DisableRule", {"Name": unique("nothing")})
    fails(c, "RuleNotFoundException", "EnableRule", {"Name": unique("nothing")})


def test_rule_errors(main):
    c = main
    name = unique("bad")
    msg = fails(c, "InvalidEventPatternException", "PutRule", {
        "Name": name, "EventPattern": json.dumps({"detail": {"eventName": "DeleteBucket"}})})
    assert "detail.eventName" in msg, msg
    msg = fails(c, "InvalidEventPatternException", "PutRule", {
        "Name": name, "EventPattern": json.dumps(
            {"detail": {"requestParameters": {"port": [{"numeric": [">", "x"]}]}}})})
    assert "detail.requestParameters.port" in msg, msg
    fails(c, "InvalidEventPatternException", "PutRule", {"Name": name, "EventPattern": "{nope"})
    msg = fails(c, "InvalidSigmaRuleException", "PutRule", {
        "Name": name, "SigmaRule": SIGMA_RULE.replace("condition: selection",
                                                      "condition: selection | count() > 5")})
    assert "aggregation" in msg, msg
    fails(c, "InvalidSigmaRuleException", "PutRule", {"Name": name, "SigmaRule": "title: x\n"})
    fails(c, "InvalidParameterCombinationException", "PutRule", {
        "Name": name, "EventPattern": '{"source": ["aws.s3"]}', "SigmaRule": SIGMA_RULE})
    fails(c, "InvalidParameterCombinationException", "PutRule", {"Name": name})
    for reserved in ("cairn-mine", "sigma-mine"):
        msg = fails(c, "InvalidParameterException", "PutRule", {
            "Name": reserved, "EventPattern": '{"source": ["aws.s3"]}'})
        assert "reserved" in msg, msg
    fails(c, "InvalidParameterException", "PutRule", {
        "Name": "has space", "EventPattern": '{"source": ["aws.s3"]}'})
    fails(c, "InvalidParameterException", "PutRule", {
        "Name": name, "EventPattern": '{"source": ["aws.s3"]}', "Severity": "urgent"})
    fails(c, "InvalidParameterException", "PutRule", {
        "Name": name, "EventPattern": '{"source": ["aws.s3"]}',
        "Threshold": {"Count": 0, "WindowSeconds": 60}})
    fails(c, "RuleNotFoundException", "GetRule", {"Name": name})
    # Nothing was stored by any of these.
    assert name not in {r["Name"] for r in ok(c, "ListRules")["Rules"]}


def test_test_rule_on_records(main):
    c = main
    user = unique("tester")
    fails_ = [sign_in(user, "192.0.2.50", t=1_700_000_000 + 10 * i) for i in range(4)]
    out = ok(c, "TestRule", {"Name": PER_USER, "Events": fails_})
    assert out["Scanned"] == 4 and out["Matched"] == 4 and out["Truncated"] is False
    assert [a["eventId"] for a in out["Alerts"]] == [fails_[2]["eventID"]]
    assert out["Alerts"][0]["rule"]["name"] == PER_USER
    # A rule given inline, not stored.
    out = ok(c, "TestRule", {"EventPattern": json.dumps(
        {"detail": {"sourceIPAddress": [{"cidr": "192.0.2.0/24"}]}}), "Events": fails_,
        "MaxAlerts": 2})
    assert out["Matched"] == 4 and len(out["Alerts"]) == 2 and out["Truncated"] is True
    fails(c, "InvalidParameterCombinationException", "TestRule", {"Name": PER_USER})
    fails(c, "InvalidTimeRangeException", "TestRule",
          {"Name": PER_USER, "StartTime": 1_700_000_100, "EndTime": 1_700_000_000})
    fails(c, "RuleNotFoundException", "TestRule", {"Name": unique("nope"), "Events": fails_})
    # TestRule raises nothing: no alert was logged for these records.
    listed = ok(c, "ListAlerts", {"RuleName": PER_USER, "MaxResults": 200})["Alerts"]
    assert not [a for a in listed if a["eventId"] == fails_[2]["eventID"]]


def test_list_alerts_pages_and_filters(main, recv):
    c = main
    recs = [delete_bucket() for _ in range(5)]
    c.ingest(recs)
    flush(c, recv)
    seen: list[dict] = []
    token = None
    pages = 0
    while True:
        body: dict = {"MaxResults": 2}
        if token:
            body["NextToken"] = token
        page = ok(c, "ListAlerts", body)
        assert len(page["Alerts"]) <= 2
        seen += page["Alerts"]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
        assert pages < 500
    seqs = [a["seq"] for a in seen]
    assert seqs == sorted(seqs, reverse=True), "newest first"
    assert len(set(seqs)) == len(seqs) and len({a["alertId"] for a in seen}) == len(seen)
    assert pages == (len(seen) + 1) // 2
    ids = {a["eventId"] for a in seen}
    assert {r["eventID"] for r in recs} <= ids
    # Everything the webhook got is listed (the same alerts).
    assert {b["alertId"] for b in recv.delivered()} <= {a["alertId"] for a in seen}
    only = ok(c, "ListAlerts", {"RuleName": "cairn-bucket-deleted", "MaxResults": 200})["Alerts"]
    assert only and all(a["rule"]["name"] == "cairn-bucket-deleted" for a in only)
    assert {r["eventID"] for r in recs} <= {a["eventId"] for a in only}
    assert ok(c, "ListAlerts", {"RuleName": unique("none")})["Alerts"] == []
    fails(c, "InvalidParameterException", "ListAlerts", {"MaxResults": 0})


def admin_cli(c: Cairn, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CAIRN_"))}
    env.update({"AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key,
                "AWS_REGION": REGION, "CAIRN_ENDPOINT_URL": c.endpoint,
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    proc = subprocess.run([str(c.server.binary), "admin", *args], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, f"cairn admin {args}: {proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def test_permissions(main):
    c = main
    nobody = admin_cli(c, "create-user", unique("nobody"), "--access-key")["AccessKey"]
    reader = admin_cli(c, "create-user", unique("reader"), "--policy",
                       "AWSCloudTrail_ReadOnlyAccess", "--access-key")["AccessKey"]
    no_key = (nobody["AccessKeyId"], nobody["SecretAccessKey"])
    ro_key = (reader["AccessKeyId"], reader["SecretAccessKey"])
    pattern = '{"source": ["aws.s3"]}'
    for op, body in [("ListRules", {}), ("GetRule", {"Name": PER_USER}),
                     ("PutRule", {"Name": unique("x"), "EventPattern": pattern}),
                     ("DisableRule", {"Name": PER_USER}), ("ListAlerts", {}),
                     ("GetAlertTargets", {}), ("TestRule", {"Name": PER_USER, "Events": []})]:
        msg = fails(c, "AccessDeniedException", op, body, key=no_key)
        assert f"cloudtrail:{op if op != 'TestRule' else 'LookupEvents'}" in msg, msg
    # Read-only access reads rules and alerts but changes nothing.
    assert ok(c, "ListRules", key=ro_key)["Rules"]
    ok(c, "ListAlerts", key=ro_key)
    ok(c, "GetRule", {"Name": PER_USER}, key=ro_key)
    fails(c, "AccessDeniedException", "PutRule", {"Name": unique("x"), "EventPattern": pattern},
          key=ro_key)
    fails(c, "AccessDeniedException", "DisableRule", {"Name": PER_USER}, key=ro_key)
    assert ok(c, "GetRule", {"Name": PER_USER})["Rule"]["Enabled"] is True


# --------------------------------------------------------------------------------------------
# The shared Sigma folder and the seed scenarios
# --------------------------------------------------------------------------------------------

def test_seed_scenarios_against_the_sigma_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sigma")
    recv = Receiver()
    c = start_server(tmp, "sigma", ["--rules-dir", str(SIGMA_DIR),
                                    "--alert-target", f"webhook={recv.url('/hook')}"])
    try:
        rules = ok(c, "ListRules")
        assert rules["Refused"] == []
        folder = {r["Name"]: r for r in rules["Rules"] if r["Origin"] == "folder"}
        stems = sorted(p.stem for p in SIGMA_DIR.glob("*.yml"))
        assert len(stems) == 8
        assert sorted(folder) == [f"sigma-{s}" for s in stems]
        for s in stems:
            r = folder[f"sigma-{s}"]
            assert r["Kind"] == "sigma" and r["Enabled"] is True
            assert r["File"] == str(SIGMA_DIR / f"{s}.yml")
            assert r["SigmaRule"] == (SIGMA_DIR / f"{s}.yml").read_text()
        assert folder[SIGMA_FAILED_LOGIN]["Description"] == "AWS ConsoleLogin Failed Authentication"
        assert folder[SIGMA_FAILED_LOGIN]["Severity"] == "medium"
        assert {r["Name"] for r in rules["Rules"] if r["Origin"] == "default"} == DEFAULT_PACK
        banner = c.server.log_tail(400)
        assert "10 default, 8 from the rules folder" in banner

        seeds = read_jsonl("seed-scenarios.jsonl")
        c.ingest(seeds)
        got = flush(c, recv)
        failed = [b for b in got if b["rule"]["name"] == SIGMA_FAILED_LOGIN]
        assert [b["eventId"] for b in failed] == [
            r["eventID"] for r in seeds
            if r["eventName"] == "ConsoleLogin" and r["responseElements"]["ConsoleLogin"]
            == "Failure"]
        assert all(b["rule"]["kind"] == "sigma" and b["rule"]["origin"] == "folder"
                   for b in failed)
        assert failed[0]["sourceIPAddress"] == "203.0.113.9"
        # Two failures are not three: the default per-user rule stays quiet; the database
        # deletion and the sign-in without MFA raise theirs.
        names = {(b["rule"]["name"], b["eventName"]) for b in got}
        assert (PER_USER, "ConsoleLogin") not in names
        assert ("cairn-database-deleted", "DeleteDBInstance") in names
        assert ("cairn-console-sign-in-without-mfa", "ConsoleLogin") in names
        hits = {r["Name"]: r["Hits"] for r in ok(c, "ListRules")["Rules"]}
        assert hits[SIGMA_FAILED_LOGIN]["Matched"] == 2 and hits[SIGMA_FAILED_LOGIN]["Alerts"] == 2

        # TestRule over stored history: the seed scenarios of 2024-03-14.
        day = {"StartTime": int(dt.datetime(2024, 3, 14, tzinfo=dt.timezone.utc).timestamp()),
               "EndTime": int(dt.datetime(2024, 3, 15, tzinfo=dt.timezone.utc).timestamp())}
        out = ok(c, "TestRule", {"Name": SIGMA_FAILED_LOGIN, **day})
        assert out["Matched"] == 2 and len(out["Alerts"]) == 2 and out["Truncated"] is False
        assert out["Scanned"] >= 3
        assert [a["eventId"] for a in out["Alerts"]] == [b["eventId"] for b in failed]
        out = ok(c, "TestRule", {"Name": PER_USER, **day})
        assert out["Matched"] == 2 and out["Alerts"] == []
        out = ok(c, "TestRule", {
            "Name": "three-is-too-many-two-is-plenty", "EventPattern": json.dumps(
                {"detail-type": ["AWS Console Sign In via CloudTrail"],
                 "detail": {"responseElements": {"ConsoleLogin": ["Failure"]}}}),
            "Threshold": {"Count": 2, "WindowSeconds": 60,
                          "GroupBy": ["detail.userIdentity.userName"]}, **day})
        assert [a["eventId"] for a in out["Alerts"]] == [failed[1]["eventId"]]
        # The whole history: the 2020 deletion too.
        out = ok(c, "TestRule", {"Name": "cairn-database-deleted", "StartTime": 1_500_000_000,
                                 "EndTime": int(time.time()) + 60})
        assert [a["event"]["requestParameters"]["dBInstanceIdentifier"]
                for a in out["Alerts"]] == ["cat-photos-db"]
    finally:
        stop_server(c)
        recv.close()


def test_a_rule_the_folder_cannot_run_is_refused_with_its_reason(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("badfolder")
    folder = tmp / "sigma"
    shutil.copytree(SIGMA_DIR, folder)
    bad = folder / "aws_too_many_logins.yml"
    bad.write_text("""title: Too many console logins
id: 5f0e8a61-1c9b-4b7e-9a57-0d8b3e2f4c10
status: experimental
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: ConsoleLogin
    condition: selection | count() > 5
level: medium
""")
    c = start_server(tmp, "data", ["--rules-dir", str(folder)])
    try:
        banner = c.server.log_tail(400)
        line = [ln for ln in banner.splitlines() if ln.startswith("    not loaded: ")]
        assert len(line) == 1, banner
        assert str(bad) in line[0] and "aggregation" in line[0], line[0]
        assert "10 default, 8 from the rules folder" in banner
        rules = ok(c, "ListRules")
        assert len(rules["Refused"]) == 1
        assert rules["Refused"][0]["File"] == str(bad)
        assert "aggregation" in rules["Refused"][0]["Reason"]
        assert rules["Refused"][0]["Reason"] in line[0]
        folder_rules = [r for r in rules["Rules"] if r["Origin"] == "folder"]
        assert len(folder_rules) == 8
        assert "sigma-aws_too_many_logins" not in {r["Name"] for r in rules["Rules"]}
    finally:
        stop_server(c)


# --------------------------------------------------------------------------------------------
# Targets that fail or are slow
# --------------------------------------------------------------------------------------------

def test_dead_letter_after_the_last_try_and_the_next_alert_still_goes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deadletter")
    recv = Receiver()
    recv.failing.add("/hook")
    c = start_server(tmp, "data", ["--alert-target", f"webhook={recv.url('/hook')}",
                                   "--alert-attempts", "2", "--alert-backoff", "100ms",
                                   "--alert-webhook-secret", SECRET])
    dead = c.server.data_dir / "rules" / "dead-letter.ndjson"
    try:
        lost = delete_bucket()
        c.ingest([lost])
        wait_for(lambda: dead.exists() and lost["eventID"] in dead.read_text(),
                 "the dead-letter entry")
        tries = [r for r in recv.attempts() if lost["eventID"].encode() in r["raw"]]
        assert len(tries) == 2 and not any(r["ok"] for r in tries)
        entries = [json.loads(line) for line in dead.read_text().splitlines()]
        assert len(entries) == 1
        e = entries[0]
        assert e["alertId"] == tries[0]["headers"]["x-cairn-alert-id"]
        assert e["attempts"] == 2 and "500" in e["lastError"]
        assert e["target"] == f"webhook http://127.0.0.1:{recv.server.server_address[1]}"
        assert e["alert"]["eventId"] == lost["eventID"]
        assert e["alert"]["rule"]["name"] == "cairn-bucket-deleted"

        recv.failing.clear()
        after = delete_bucket()
        c.ingest([after])
        wait_for(lambda: alerts_on(recv.delivered(), after["eventID"]), "the next alert")
        verify_signature([r for r in recv.attempts() if r["ok"]][0])
        # The lost one is not sent again; the dead-letter file keeps only it.
        time.sleep(0.3)
        assert not alerts_on(recv.delivered(), lost["eventID"])
        assert len(dead.read_text().splitlines()) == 1
        targets = ok(c, "GetAlertTargets")
        assert targets["DeadLetterFile"] == str(dead)
        [t] = targets["Targets"]
        assert (t["Delivered"], t["FailedAttempts"], t["DeadLettered"], t["Pending"]) == (
            1, 2, 1, 0), t
        assert "500" in t["LastError"] and t["LastDeliveryMs"] > 0
    finally:
        stop_server(c)
        recv.close()


def test_a_slow_receiver_never_slows_ingest(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow")
    recv = Receiver()
    recv.delay = 5.0
    c = start_server(tmp, "data", ["--alert-target", f"webhook={recv.url('/hook')}"])
    try:
        batches = []
        marked = []
        for b in range(20):
            batch = [record("DescribeInstances", "ec2.amazonaws.com", readOnly=True)
                     for _ in range(100)]
            if b in (2, 9, 16):
                batch[50] = delete_bucket()
                marked.append(batch[50]["eventID"])
            batches.append(batch)
        began = time.monotonic()
        slowest = 0.0
        for batch in batches:
            t = time.monotonic()
            c.ingest(batch)
            slowest = max(slowest, time.monotonic() - t)
        took = time.monotonic() - began
        assert took < 5.0, f"ingesting 2000 events took {took:.2f} s"
        assert slowest < 2.5, f"one ingest call took {slowest:.2f} s"
        # The alerts queue behind the slow receiver...
        assert sum(1 for r in recv.attempts() if r["done"]) < 3
        wait_for(lambda: ok(c, "GetAlertTargets")["Targets"][0]["Pending"] >= 1,
                 "alerts waiting for the slow receiver", 5)
        # ... and all arrive, in order.
        wait_for(lambda: len(recv.delivered()) >= 3, "the three alerts", 30, step=0.2)
        assert [b["eventId"] for b in recv.delivered()] == marked
        starts = [r["at"] for r in recv.attempts()]
        assert all(b - a >= 4.9 for a, b in zip(starts, starts[1:])), "sent one at a time"
    finally:
        stop_server(c)
        recv.close()


# --------------------------------------------------------------------------------------------
# A restart in the middle of a counting window
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def restarting(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("restart")
    recv = Receiver()
    c = start_server(tmp, "data", ["--alert-target", f"webhook={recv.url('/hook')}"])
    try:
        yield c, recv
    finally:
        stop_server(c)
        recv.close()


def matched(c: Cairn, rule: str) -> int:
    return ok(c, "GetRule", {"Name": rule})["Rule"]["Hits"]["Matched"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_in_the_middle_of_a_counting_window(restarting, sig):
    c, recv = restarting
    before = delete_bucket()
    c.ingest([before])
    wait_for(lambda: alerts_on(recv.delivered(), before["eventID"]), "the alert before")
    user = unique("restarted")
    now = time.time()
    base = matched(c, PER_USER)
    c.ingest([sign_in(user, "192.0.2.61", t=now - 60), sign_in(user, "192.0.2.62", t=now - 30)])
    wait_for(lambda: matched(c, PER_USER) == base + 2, "the two failures counted", 10)

    status, clean = c.server.stop(sig)
    if sig == signal.SIGTERM:
        assert clean and status == 0, f"exit status {status}"
    c._clients.clear()
    c.server.start()

    third = sign_in(user, "192.0.2.63", t=now)
    c.ingest([third])
    got = flush(c, recv)
    mine = [b for b in got if b["rule"]["name"] == PER_USER
            and b["group"]["key"]["detail.userIdentity.userName"] == user]
    assert len(mine) == 1, mine
    assert mine[0]["eventId"] == third["eventID"]
    assert len(mine[0]["group"]["eventIds"]) == 3
    again = alerts_on(got, before["eventID"])
    if sig == signal.SIGTERM:
        # A clean stop: what was delivered is not delivered again.
        assert len(again) == 1, again
    else:
        # At least once: a repeat carries the same alert ID.
        assert len(again) >= 1 and len({b["alertId"] for b in again}) == 1, again
    assert ok(c, "GetRule", {"Name": PER_USER})["Rule"]["Hits"]["Alerts"] >= 1
