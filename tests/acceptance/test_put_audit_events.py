"""cloudtrail-data PutAuditEvents through boto3, and the channel operations of CloudTrail."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT_ID, parse_record

FOREIGN_ACCOUNT = "999988887777"


@pytest.fixture(scope="module")
def data(cairn):
    return cairn.client("cloudtrail-data")


@pytest.fixture(scope="module")
def data_unvalidated(cairn):
    """A cloudtrail-data client that sends what it is given (botocore would refuse some)."""
    return cairn.client("cloudtrail-data", validate=False, retries=1)


@pytest.fixture(scope="module")
def default_channel(ct):
    channels = ct.list_channels()["Channels"]
    named = [c for c in channels if c.get("Name") == "default"]
    assert len(named) == 1, f"no single channel named default in {channels}"
    arn = named[0]["ChannelArn"]
    assert arn.startswith("arn:"), arn
    return arn


def event_data(**overrides) -> dict:
    name = overrides.pop("eventName", "AppEvent" + uuid.uuid4().hex[:12])
    data = {
        "version": "1.0",
        "userIdentity": {"type": "CairnTestUser", "principalId": "tester-1",
                         "details": {"team": "acceptance"}},
        "userAgent": "cairn-acceptance/1.0",
        "eventSource": "acceptance.cairn.example",
        "eventName": name,
        "eventTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "UID": str(uuid.uuid4()),
        "requestParameters": {"widget": "w-1", "count": 3},
        "responseElements": {"ok": True},
        "sourceIPAddress": "198.51.100.7",
        "recipientAccountId": ACCOUNT_ID,
    }
    data.update(overrides)
    return data


def audit_event(data, *, id=None, checksum=True, raw=None) -> dict:
    text = raw if raw is not None else json.dumps(data)
    ev = {"id": id or ("id-" + uuid.uuid4().hex), "eventData": text}
    if checksum is True:
        ev["eventDataChecksum"] = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    elif checksum:
        ev["eventDataChecksum"] = checksum
    return ev


def by_name(cairn, name):
    return cairn.lookup_all(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}])


def code_of(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def test_success_is_visible_in_lookup_events(cairn, data, default_channel):
    d = event_data()
    ev = audit_event(d)
    resp = data.put_audit_events(auditEvents=[ev], channelArn=default_channel)
    assert resp["failed"] == []
    assert len(resp["successful"]) == 1
    assert resp["successful"][0]["id"] == ev["id"]
    event_id = resp["successful"][0]["eventID"]
    assert isinstance(event_id, str) and event_id

    found = by_name(cairn, d["eventName"])
    assert len(found) == 1, found
    got = found[0]
    assert got["EventId"] == event_id
    assert got["EventName"] == d["eventName"]
    assert got["EventSource"] == d["eventSource"]
    rec = parse_record(got["CloudTrailEvent"])
    assert rec["eventID"] == event_id
    # The caller's payload is kept whole inside the stored record (spec 1.13).
    assert rec["eventData"] == d
    assert rec["recipientAccountId"] == ACCOUNT_ID
    # Found by its source and id too.
    by_source = cairn.lookup_all(LookupAttributes=[
        {"AttributeKey": "EventSource", "AttributeValue": d["eventSource"]},
        {"AttributeKey": "EventName", "AttributeValue": d["eventName"]}])
    assert [e["EventId"] for e in by_source] == [event_id]
    by_id = cairn.lookup_all(LookupAttributes=[{"AttributeKey": "EventId",
                                                "AttributeValue": event_id}])
    assert [e["EventId"] for e in by_id] == [event_id]


def test_channel_id_suffix_is_accepted(cairn, data, default_channel):
    d = event_data()
    resp = data.put_audit_events(auditEvents=[audit_event(d)],
                                 channelArn=default_channel.rsplit("/", 1)[-1])
    assert resp["failed"] == [] and len(resp["successful"]) == 1
    assert len(by_name(cairn, d["eventName"])) == 1


def test_several_events_mixed_outcomes(cairn, data, default_channel):
    good = [event_data() for _ in range(3)]
    bad = event_data(recipientAccountId=FOREIGN_ACCOUNT)
    events = [audit_event(good[0]), audit_event(bad), audit_event(good[1]), audit_event(good[2])]
    resp = data.put_audit_events(auditEvents=events, channelArn=default_channel)
    assert sorted(s["id"] for s in resp["successful"]) == sorted(
        events[i]["id"] for i in (0, 2, 3))
    assert [(f["id"], f["errorCode"]) for f in resp["failed"]] == [
        (events[1]["id"], "InvalidRecipient")]
    for d in good:
        assert len(by_name(cairn, d["eventName"])) == 1
    assert by_name(cairn, bad["eventName"]) == []


def failed_one(data, channel, ev, code):
    resp = data.put_audit_events(auditEvents=[ev], channelArn=channel)
    assert resp["successful"] == [], resp
    assert len(resp["failed"]) == 1, resp
    f = resp["failed"][0]
    assert f["id"] == ev["id"]
    assert f["errorCode"] == code, f
    assert isinstance(f.get("errorMessage"), str) and f["errorMessage"], f
    return f


def test_checksum_mismatch(cairn, data, default_channel):
    d = event_data()
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    failed_one(data, default_channel, audit_event(d, checksum=wrong), "InvalidChecksum")
    assert by_name(cairn, d["eventName"]) == []


def test_no_checksum_is_fine(cairn, data, default_channel):
    d = event_data()
    resp = data.put_audit_events(auditEvents=[audit_event(d, checksum=False)],
                                 channelArn=default_channel)
    assert resp["failed"] == [] and len(resp["successful"]) == 1
    assert len(by_name(cairn, d["eventName"])) == 1


def test_bad_recipient(cairn, data, default_channel):
    d = event_data(recipientAccountId=FOREIGN_ACCOUNT)
    failed_one(data, default_channel, audit_event(d), "InvalidRecipient")
    assert by_name(cairn, d["eventName"]) == []


@pytest.mark.parametrize("missing", ["eventName", "eventSource", "version", "eventTime", "UID",
                                     "userIdentity"])
def test_missing_required_field(cairn, data, default_channel, missing):
    d = event_data()
    name = d["eventName"]
    del d[missing]
    failed_one(data, default_channel, audit_event(d), "FieldNotFound")
    if missing != "eventName":
        assert by_name(cairn, name) == []


def test_event_data_not_json(cairn, data, default_channel):
    failed_one(data, default_channel, audit_event(None, raw='{"eventName": "NotJson", oops'),
               "InvalidData")
    failed_one(data, default_channel, audit_event(None, raw="just text"), "InvalidData")
    assert by_name(cairn, "NotJson") == []


def test_replay_same_id_is_stored_once(cairn, data, default_channel):
    d = event_data()
    ev = audit_event(d)
    first = data.put_audit_events(auditEvents=[ev], channelArn=default_channel)
    second = data.put_audit_events(auditEvents=[ev], channelArn=default_channel)
    assert first["failed"] == [] and second["failed"] == []
    assert len(first["successful"]) == 1 and len(second["successful"]) == 1
    assert second["successful"][0]["id"] == ev["id"]
    assert second["successful"][0]["eventID"] == first["successful"][0]["eventID"]
    found = by_name(cairn, d["eventName"])
    assert [e["EventId"] for e in found] == [first["successful"][0]["eventID"]]


def test_same_id_twice_in_one_request(cairn, data, default_channel):
    a, b = event_data(), event_data()
    dup_id = "dup-" + uuid.uuid4().hex
    with pytest.raises(ClientError) as e:
        data.put_audit_events(auditEvents=[audit_event(a, id=dup_id), audit_event(b, id=dup_id)],
                              channelArn=default_channel)
    assert code_of(e.value) == "DuplicatedAuditEventId", e.value.response
    assert by_name(cairn, a["eventName"]) == [] and by_name(cairn, b["eventName"]) == []


def test_more_than_100_events(cairn, data_unvalidated, default_channel):
    events = [event_data() for _ in range(101)]
    with pytest.raises(ClientError) as e:
        data_unvalidated.put_audit_events(auditEvents=[audit_event(d) for d in events],
                                          channelArn=default_channel)
    assert code_of(e.value) == "ValidationException", e.value.response
    assert 400 <= e.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert by_name(cairn, events[0]["eventName"]) == []
    assert by_name(cairn, events[100]["eventName"]) == []


def test_unknown_channel(cairn, data, default_channel):
    missing = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:channel/{uuid.uuid4()}"
    d = event_data()
    with pytest.raises(ClientError) as e:
        data.put_audit_events(auditEvents=[audit_event(d)], channelArn=missing)
    # cloudtrail-data's model names this error ChannelNotFound (no "Exception" suffix), which
    # is what boto3's data.exceptions.ChannelNotFound matches.
    assert code_of(e.value) == "ChannelNotFound", e.value.response
    assert isinstance(e.value, data.exceptions.ChannelNotFound)
    assert by_name(cairn, d["eventName"]) == []


# --------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------

def test_default_channel(ct, default_channel):
    got = ct.get_channel(Channel=default_channel)
    assert got["ChannelArn"] == default_channel
    assert got["Name"] == "default"
    assert f":{ACCOUNT_ID}:" in default_channel


@pytest.fixture(scope="module")
def destinations(ct, default_channel):
    """Destinations known to be valid: the default channel's own."""
    return ct.get_channel(Channel=default_channel).get("Destinations") or [
        {"Type": "EVENT_DATA_STORE",
         "Location": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:eventdatastore/default"}]


def test_channel_round_trip(cairn, ct, data, default_channel, destinations):
    name = "acceptance-" + uuid.uuid4().hex[:8]
    created = ct.create_channel(Name=name, Source="Custom", Destinations=destinations)
    arn = created["ChannelArn"]
    assert created["Name"] == name
    assert created["Source"] == "Custom"
    assert arn.startswith("arn:") and arn != default_channel

    got = ct.get_channel(Channel=arn)
    assert got["ChannelArn"] == arn and got["Name"] == name and got["Source"] == "Custom"
    # By the UUID at the end of the ARN too.
    assert ct.get_channel(Channel=arn.rsplit("/", 1)[-1])["ChannelArn"] == arn

    listed = {c["ChannelArn"]: c["Name"] for c in ct.list_channels()["Channels"]}
    assert listed.get(arn) == name and listed.get(default_channel) == "default"

    # Events sent to the new channel land in the same event history.
    d = event_data()
    resp = data.put_audit_events(auditEvents=[audit_event(d)], channelArn=arn)
    assert resp["failed"] == [] and len(resp["successful"]) == 1
    assert len(by_name(cairn, d["eventName"])) == 1

    # A second channel of the same name is refused.
    with pytest.raises(ClientError) as e:
        ct.create_channel(Name=name, Source="Custom", Destinations=destinations)
    assert 400 <= e.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500

    ct.delete_channel(Channel=arn)
    with pytest.raises(ClientError) as e:
        ct.get_channel(Channel=arn)
    assert code_of(e.value) == "ChannelNotFoundException"
    assert arn not in {c["ChannelArn"] for c in ct.list_channels()["Channels"]}
    with pytest.raises(ClientError) as e:
        ct.delete_channel(Channel=arn)
    assert code_of(e.value) == "ChannelNotFoundException"
    # The events it received stay in the history.
    assert len(by_name(cairn, d["eventName"])) == 1
    # And it takes no more.
    d2 = event_data()
    with pytest.raises(ClientError) as e:
        data.put_audit_events(auditEvents=[audit_event(d2)], channelArn=arn)
    assert by_name(cairn, d2["eventName"]) == []
    assert code_of(e.value) == "ChannelNotFound", e.value.response


@pytest.mark.parametrize("name", ["x", "bad name!", "a" * 129, "with/slash"])
def test_invalid_channel_name(cairn, ct, destinations, name):
    client = cairn.client("cloudtrail", validate=False, retries=1)
    before = {c["ChannelArn"] for c in ct.list_channels()["Channels"]}
    with pytest.raises(ClientError) as e:
        client.create_channel(Name=name, Source="Custom", Destinations=destinations)
    status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, e.value.response
    assert {c["ChannelArn"] for c in ct.list_channels()["Channels"]} == before


def test_get_missing_channel(ct):
    missing = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:channel/{uuid.uuid4()}"
    with pytest.raises(ClientError) as e:
        ct.get_channel(Channel=missing)
    assert code_of(e.value) == "ChannelNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)
