"""LookupEvents semantics beyond the seed stories: Insights only with EventCategory=insight,
inclusive time bounds, the default page size, data events and every region in one history,
and the Username of each identity type (spec 2.5)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from conftest import epoch, iso, parse_record

UTC = dt.timezone.utc


def rec(name, time, **extra):
    r = {
        "eventVersion": "1.09", "eventTime": time, "eventSource": "semantics.cairn.example",
        "eventName": name, "awsRegion": "us-east-1", "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall", "managementEvent": True, "eventCategory": "Management",
        "readOnly": False, "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "userName": "sem-user",
                         "arn": "arn:aws:iam::111122223333:user/sem-user"},
    }
    r.update(extra)
    return r


def names(events):
    return [e["EventName"] for e in events]


def attr(key, value):
    return {"AttributeKey": key, "AttributeValue": value}


@pytest.fixture(scope="module")
def loaded(cairn):
    records = [
        rec("BoundEarly", "2021-03-01T11:59:59Z"),
        rec("BoundExact", "2021-03-01T12:00:00Z"),
        rec("BoundLate", "2021-03-01T12:00:01Z"),
        # Data events and other regions belong to the history too.
        rec("PutObject", "2021-04-01T00:00:00Z", eventSource="s3.amazonaws.com",
            awsRegion="ap-southeast-2", managementEvent=False, eventCategory="Data",
            resources=[{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::sem-bucket/a/b.txt"}]),
        rec("RunInstances", "2021-04-01T00:00:01Z", eventSource="ec2.amazonaws.com",
            awsRegion="sa-east-1"),
        # Identities.
        rec("RootCall", "2021-05-01T00:00:00Z", userIdentity={
            "type": "Root", "principalId": "111122223333",
            "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}),
        rec("RoleCall", "2021-05-01T00:00:01Z", userIdentity={
            "type": "AssumedRole", "principalId": "AROAEXAMPLE:my-session-name",
            "arn": "arn:aws:sts::111122223333:assumed-role/my-role/my-session-name",
            "accessKeyId": "ASIAEXAMPLESEMANTICS",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "my-role",
                                                 "arn": "arn:aws:iam::111122223333:role/my-role"}}}),
        # An Insights event (with the subject API's name and source at the top level too).
        rec("InsightProbe", "2021-06-01T00:00:00Z", eventType="AwsCloudTrailInsight",
            eventCategory="Insight", managementEvent=None, readOnly=None, userIdentity=None,
            sharedEventID=str(uuid.uuid4()),
            insightDetails={"state": "Start", "eventSource": "semantics.cairn.example",
                            "eventName": "InsightProbe", "insightType": "ApiCallRateInsight",
                            "insightContext": {"statistics": {"baseline": {"average": 0.1},
                                                              "insight": {"average": 5.0}}}}),
        rec("InsightNeighbour", "2021-06-01T00:00:01Z"),
    ]
    for r in records:
        for k in [k for k, v in r.items() if v is None]:
            del r[k]
    answer = cairn.ingest(records)
    assert answer["stored"] == len(records), answer
    # 55 more, for the default page size.
    many = [rec(f"Bulk{i:02d}", f"2021-07-01T00:00:{i:02d}Z", eventSource="bulk.cairn.example")
            for i in range(55)]
    assert cairn.ingest(many, gzip=True)["stored"] == 55
    return {r["eventName"]: r for r in records}


def test_insight_events_only_with_event_category(ct, loaded, lookup_all):
    assert lookup_all(LookupAttributes=[attr("EventName", "InsightProbe")]) == []
    assert "InsightProbe" not in names(lookup_all())
    found = lookup_all(EventCategory="insight")
    assert names(found) == ["InsightProbe"]
    assert parse_record(found[0]["CloudTrailEvent"])["insightDetails"]["state"] == "Start"
    assert names(lookup_all(EventCategory="insight", LookupAttributes=[
        attr("EventId", loaded["InsightProbe"]["eventID"])])) == ["InsightProbe"]
    assert names(lookup_all(EventCategory="insight", LookupAttributes=[
        attr("EventSource", "semantics.cairn.example")])) == ["InsightProbe"]
    assert lookup_all(EventCategory="insight", LookupAttributes=[
        attr("EventName", "InsightNeighbour")]) == []


def test_time_bounds_are_inclusive(loaded, lookup_all):
    t = dt.datetime(2021, 3, 1, 12, 0, 0, tzinfo=UTC)
    src = [attr("EventName", n) for n in ("BoundEarly", "BoundExact", "BoundLate")]
    assert names(lookup_all(LookupAttributes=src, StartTime=t)) == ["BoundLate", "BoundExact"]
    assert names(lookup_all(LookupAttributes=src, EndTime=t)) == ["BoundExact", "BoundEarly"]
    assert names(lookup_all(LookupAttributes=src, StartTime=t, EndTime=t)) == ["BoundExact"]
    assert lookup_all(LookupAttributes=src, StartTime=t + dt.timedelta(seconds=2)) == []
    # A window over the whole day, and the attribute as the only filter.
    day = dict(StartTime=dt.datetime(2021, 3, 1, tzinfo=UTC),
               EndTime=dt.datetime(2021, 3, 2, tzinfo=UTC))
    assert names(lookup_all(**day)) == ["BoundLate", "BoundExact", "BoundEarly"]


def test_default_max_results_is_50(ct, loaded):
    src = [attr("EventSource", "bulk.cairn.example")]
    first = ct.lookup_events(LookupAttributes=src)
    assert len(first["Events"]) == 50
    assert first.get("NextToken")
    second = ct.lookup_events(LookupAttributes=src, NextToken=first["NextToken"])
    assert len(second["Events"]) == 5
    assert not second.get("NextToken")
    got = names(first["Events"] + second["Events"])
    assert got == [f"Bulk{i:02d}" for i in reversed(range(55))]


def test_every_page_size_gives_the_same_sequence(loaded, lookup_all):
    src = [attr("EventSource", "bulk.cairn.example")]
    full = [e["EventId"] for e in lookup_all(LookupAttributes=src)]
    assert len(full) == 55
    for size in (1, 7, 49):
        assert [e["EventId"] for e in lookup_all(LookupAttributes=src, MaxResults=size)] == full


def test_data_events_and_all_regions(loaded, lookup_all):
    ev = lookup_all(LookupAttributes=[attr("EventName", "PutObject")])
    assert len(ev) == 1
    assert parse_record(ev[0]["CloudTrailEvent"])["awsRegion"] == "ap-southeast-2"
    assert names(lookup_all(LookupAttributes=[attr("ResourceName", "a/b.txt")])) == ["PutObject"]
    ev = lookup_all(LookupAttributes=[attr("EventName", "RunInstances")])
    assert len(ev) == 1
    assert parse_record(ev[0]["CloudTrailEvent"])["awsRegion"] == "sa-east-1"
    window = dict(StartTime=dt.datetime(2021, 4, 1, tzinfo=UTC),
                  EndTime=dt.datetime(2021, 4, 2, tzinfo=UTC))
    assert names(lookup_all(**window)) == ["RunInstances", "PutObject"]


def test_usernames(loaded, lookup_all):
    ev = lookup_all(LookupAttributes=[attr("EventName", "RootCall")])
    assert ev[0]["Username"] == "root"
    assert names(lookup_all(LookupAttributes=[attr("Username", "root")])) == ["RootCall"]
    ev = lookup_all(LookupAttributes=[attr("EventName", "RoleCall")])
    assert ev[0]["Username"] == "my-session-name"
    assert ev[0]["AccessKeyId"] == "ASIAEXAMPLESEMANTICS"
    assert names(lookup_all(LookupAttributes=[attr("Username", "my-session-name")])) == [
        "RoleCall"]
    assert names(lookup_all(LookupAttributes=[attr("AccessKeyId", "ASIAEXAMPLESEMANTICS")])) == [
        "RoleCall"]
    ev = lookup_all(LookupAttributes=[attr("EventName", "BoundExact")])
    assert ev[0]["Username"] == "sem-user"
    assert epoch(ev[0]["EventTime"]) == iso("2021-03-01T12:00:00Z")
    assert ev[0]["ReadOnly"] == "false"
