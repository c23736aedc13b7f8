"""Durability across a restart: everything ingested before a SIGTERM is found again by a new
server on the same data directory, and sending it again only counts duplicates."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid

import pytest

from conftest import ACCOUNT_ID, dataset, read_jsonl


def snapshot(cairn) -> dict:
    """EventId -> what LookupEvents shows of it."""
    out = {}
    for e in cairn.lookup_all():
        assert e["EventId"] not in out, f"event {e['EventId']} listed twice"
        out[e["EventId"]] = {k: e.get(k) for k in ("EventName", "EventSource", "EventTime",
                                                   "Username", "ReadOnly", "AccessKeyId",
                                                   "Resources", "CloudTrailEvent")}
    return out


def audit(name: str) -> dict:
    data = json.dumps({
        "version": "1.0", "userIdentity": {"type": "CairnTestUser", "principalId": "p-1"},
        "eventSource": "restart.cairn.example", "eventName": name,
        "eventTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "UID": str(uuid.uuid4()), "recipientAccountId": ACCOUNT_ID})
    return {"id": "restart-" + uuid.uuid4().hex, "eventData": data,
            "eventDataChecksum": base64.b64encode(hashlib.sha256(data.encode()).digest()).decode()}


@pytest.fixture(scope="module")
def before_restart(cairn):
    """Loads the seed, OTRF and the panther records that carry an eventID; adds a channel and
    an audit event; takes a snapshot; then restarts the server with SIGTERM."""
    seed_body = dataset("seed-scenarios.jsonl").read_bytes()
    otrf = read_jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl")
    panther = [line["event"] for line in read_jsonl("panther-labelled-events.jsonl")]
    panther = [e for e in panther if e.get("eventID")][:150]

    answers = [cairn.ingest(seed_body),
               cairn.ingest(otrf[:60], gzip=True),
               cairn.ingest(panther, fmt="ndjson")]
    ct = cairn.client("cloudtrail")
    data = cairn.client("cloudtrail-data")
    default = next(c["ChannelArn"] for c in ct.list_channels()["Channels"]
                   if c["Name"] == "default")
    destinations = ct.get_channel(Channel=default).get("Destinations") or [
        {"Type": "EVENT_DATA_STORE",
         "Location": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:eventdatastore/default"}]
    channel = ct.create_channel(Name="restart-" + uuid.uuid4().hex[:6], Source="Custom",
                                Destinations=destinations)
    audit_event = audit("RestartAudit" + uuid.uuid4().hex[:8])
    put = data.put_audit_events(auditEvents=[audit_event], channelArn=channel["ChannelArn"])
    assert put["failed"] == []
    # The last batch goes in right before the SIGTERM.
    answers.append(cairn.ingest(otrf[60:], fmt="logfile"))
    snap = snapshot(cairn)
    stopped = cairn.restart()
    return dict(answers=answers, snapshot=snap, stopped=stopped, channel=channel,
                audit_event=audit_event, put=put, seed_body=seed_body, otrf=otrf,
                panther=panther, default=default)


def test_sigterm_stops_the_server(before_restart):
    status, by_itself = before_restart["stopped"]
    assert by_itself, "cairn serve did not exit within 10 s of SIGTERM"


def test_everything_was_stored_before(before_restart):
    answers = before_restart["answers"]
    assert answers[0]["stored"] == 7
    assert answers[1]["stored"] == 60
    assert answers[3]["stored"] == len(before_restart["otrf"]) - 60
    assert all(a["rejected"] == [] or a is answers[2] for a in answers)
    total = sum(a["stored"] for a in answers) + 1  # + the audit event
    assert len(before_restart["snapshot"]) == total


def test_every_event_is_found_again(cairn, before_restart):
    after = snapshot(cairn)
    before = before_restart["snapshot"]
    missing = sorted(set(before) - set(after))
    extra = sorted(set(after) - set(before))
    assert not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}"
    changed = [eid for eid in before if before[eid] != after[eid]]
    assert not changed, f"changed after restart: {changed[:5]}: " + \
        json.dumps([before[changed[0]], after[changed[0]]], default=str)[:2000]


def test_lookups_work_after_restart(cairn, before_restart):
    out = cairn.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                    "AttributeKey=ResourceName,AttributeValue=cat-photos-db")
    assert [e["Username"] for e in out["Events"]] == ["alana"]
    out = cairn.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                    "AttributeKey=Username,AttributeValue=dev-intern",
                    "AttributeKey=EventName,AttributeValue=ConsoleLogin")
    assert len(out["Events"]) == 3


def test_reingest_counts_only_duplicates(cairn, before_restart):
    b = before_restart
    for body, kwargs, n in ((b["seed_body"], {}, 7),
                            (b["otrf"], {"gzip": True}, len(b["otrf"])),
                            (b["panther"], {"fmt": "ndjson"}, len(b["panther"]))):
        answer = cairn.ingest(body, **kwargs)
        rejected = len(answer["rejected"])
        assert answer["received"] == n
        assert answer["stored"] == 0, answer
        assert answer["duplicates"] == n - rejected
    assert len(snapshot(cairn)) == len(b["snapshot"])


def test_channels_and_audit_ids_survive(cairn, before_restart):
    b = before_restart
    ct = cairn.client("cloudtrail")
    arn = b["channel"]["ChannelArn"]
    assert ct.get_channel(Channel=arn)["Name"] == b["channel"]["Name"]
    listed = {c["ChannelArn"] for c in ct.list_channels()["Channels"]}
    assert {arn, b["default"]} <= listed
    # The same audit event id again: the same eventID, still stored once.
    data = cairn.client("cloudtrail-data")
    again = data.put_audit_events(auditEvents=[b["audit_event"]], channelArn=arn)
    assert again["failed"] == []
    assert again["successful"][0]["eventID"] == b["put"]["successful"][0]["eventID"]
    name = json.loads(b["audit_event"]["eventData"])["eventName"]
    found = cairn.lookup_all(LookupAttributes=[{"AttributeKey": "EventName",
                                                "AttributeValue": name}])
    assert len(found) == 1


def test_second_restart_is_still_complete(cairn, before_restart):
    first = snapshot(cairn)
    status, by_itself = cairn.restart()
    assert by_itself
    assert snapshot(cairn) == first
