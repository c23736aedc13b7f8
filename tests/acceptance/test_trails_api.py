"""The trail management API (CreateTrail ... RemoveTags, event and insight selectors) driven
through the real AWS CLI and boto3 against a running Cairn.

Buckets are made as folders under the server's data directory (a folder bucket), which is what
Cairn's default bucket backend reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT_ID, REGION

OTHER = "us-west-2"
BUCKET = "trail-bucket"
BUCKET2 = "trail-bucket-2"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def make_bucket(cairn, name: str) -> None:
    (cairn.server.data_dir / "buckets" / name).mkdir(parents=True, exist_ok=True)


def arn(name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"


def client(cairn, region: str = REGION):
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.session.Session().client(
        "cloudtrail", endpoint_url=cairn.endpoint, region_name=region,
        aws_access_key_id=cairn.access_key, aws_secret_access_key=cairn.secret_key, config=cfg)


def aws_in(cairn, region: str, *args: str, check: bool = True):
    """The AWS CLI against Cairn with a region of our choosing."""
    cmd = [str(cairn.aws_bin), *args, "--endpoint-url", cairn.endpoint, "--output", "json",
           "--region", region]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": cairn.access_key,
        "AWS_SECRET_ACCESS_KEY": cairn.secret_key,
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
    })
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if not check:
        return proc
    assert proc.returncode == 0, (
        f"aws {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
        f"stderr: {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def cli(cairn, *args: str):
    return aws_in(cairn, REGION, "cloudtrail", *args)


def cli_fails(cairn, code: str, *args: str, region: str = REGION) -> str:
    """Runs a failing CLI call; checks the error code and returns stderr."""
    proc = aws_in(cairn, region, "cloudtrail", *args, check=False)
    assert proc.returncode != 0, f"aws cloudtrail {' '.join(args)} succeeded: {proc.stdout}"
    assert f"({code})" in proc.stderr, f"expected {code}, got: {proc.stderr}"
    return proc.stderr


def fails(code: str, fn, *args, **kwargs) -> str:
    """Calls a boto3 method that must fail with `code`; returns the message."""
    with pytest.raises(ClientError) as e:
        fn(*args, **kwargs)
    err = e.value.response["Error"]
    assert err["Code"] == code, f"expected {code}, got {err}"
    assert err.get("Message"), "errors carry a message"
    return err["Message"]


def delete_everything(cairn) -> None:
    """Deletes every trail of the account, in its home region."""
    pages = client(cairn).get_paginator("list_trails").paginate()
    for t in [t for p in pages for t in p.get("Trails", [])]:
        client(cairn, t["HomeRegion"]).delete_trail(Name=t["TrailARN"])
    assert client(cairn).list_trails()["Trails"] == []


@pytest.fixture(autouse=True)
def clean(cairn):
    make_bucket(cairn, BUCKET)
    make_bucket(cairn, BUCKET2)
    delete_everything(cairn)
    yield


def create(cairn, name: str, region: str = REGION, **kwargs) -> dict:
    kwargs.setdefault("S3BucketName", BUCKET)
    return client(cairn, region).create_trail(Name=name, **kwargs)


# --------------------------------------------------------------------------------------------
# Create, get, describe, list
# --------------------------------------------------------------------------------------------

def test_create_get_describe_with_the_cli(cairn):
    out = cli(cairn, "create-trail", "--name", "Trail1", "--s3-bucket-name", BUCKET)
    assert out == {
        "Name": "Trail1",
        "S3BucketName": BUCKET,
        "IncludeGlobalServiceEvents": True,
        "IsMultiRegionTrail": False,
        "TrailARN": arn("Trail1"),
        "LogFileValidationEnabled": False,
        "IsOrganizationTrail": False,
    }
    got = cli(cairn, "get-trail", "--name", "Trail1")["Trail"]
    assert got == {
        "Name": "Trail1",
        "S3BucketName": BUCKET,
        "IncludeGlobalServiceEvents": True,
        "IsMultiRegionTrail": False,
        "HomeRegion": REGION,
        "TrailARN": arn("Trail1"),
        "LogFileValidationEnabled": False,
        "HasCustomEventSelectors": False,
        "HasInsightSelectors": False,
        "IsOrganizationTrail": False,
    }
    assert cli(cairn, "get-trail", "--name", arn("Trail1"))["Trail"] == got
    assert cli(cairn, "describe-trails")["trailList"] == [got]
    assert cli(cairn, "describe-trails", "--trail-name-list", "Trail1")["trailList"] == [got]
    assert cli(cairn, "describe-trails", "--trail-name-list", arn("Trail1"), "Trail1",
               "nosuchtrail")["trailList"] == [got]

    out = cli(cairn, "create-trail", "--name", "Trail2", "--s3-bucket-name", BUCKET,
              "--s3-key-prefix", "audit/logs", "--sns-topic-name", "trail-topic",
              "--enable-log-file-validation", "--is-multi-region-trail")
    assert out["S3KeyPrefix"] == "audit/logs"
    assert out["SnsTopicName"] == "trail-topic"
    assert out["SnsTopicARN"] == f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:trail-topic"
    assert out["LogFileValidationEnabled"] is True
    assert out["IsMultiRegionTrail"] is True
    assert out["IncludeGlobalServiceEvents"] is True
    names = [t["Name"] for t in cli(cairn, "describe-trails")["trailList"]]
    assert names == ["Trail1", "Trail2"]


def test_raw_shapes_and_statuses(cairn):
    status, headers, body = cairn.json11("CreateTrail", {"Name": "raw", "S3BucketName": BUCKET})
    assert status == 200, body
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert headers.get("x-amzn-requestid")
    assert set(body) == {"Name", "S3BucketName", "IncludeGlobalServiceEvents",
                         "IsMultiRegionTrail", "TrailARN", "LogFileValidationEnabled",
                         "IsOrganizationTrail"}
    status, _, body = cairn.json11("GetTrail", {"Name": "nope"})
    assert status == 404 and body["__type"] == "TrailNotFoundException", body
    assert body["message"] == f"Unknown trail: nope for the user: {ACCOUNT_ID}"
    status, _, body = cairn.json11("DeleteTrail", {"Name": "raw"})
    assert (status, body) == (200, {})
    for op in ("StartLogging", "StopLogging", "AddTags", "RemoveTags"):
        status, _, body = cairn.json11(op, {})
        assert status == 400, (op, body)


def test_list_trails_pages(cairn):
    regions = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"]
    expected = set()
    for r in regions:
        for i in range(4):
            create(cairn, f"t-{r}-{i}", region=r)
            expected.add((arn(f"t-{r}-{i}", r), r))
    create(cairn, "one-more", region="eu-central-1")
    expected.add((arn("one-more", "eu-central-1"), "eu-central-1"))
    assert len(expected) == 21

    ct = client(cairn)
    first = ct.list_trails()
    assert len(first["Trails"]) == 20 and first.get("NextToken")
    second = ct.list_trails(NextToken=first["NextToken"])
    assert len(second["Trails"]) == 1 and "NextToken" not in second
    seen = {(t["TrailARN"], t["HomeRegion"]) for t in first["Trails"] + second["Trails"]}
    assert seen == expected
    for t in first["Trails"]:
        assert t["TrailARN"].endswith(":trail/" + t["Name"])

    pages = list(ct.get_paginator("list_trails").paginate())
    assert sum(len(p["Trails"]) for p in pages) == 21
    out = cli(cairn, "list-trails")  # the CLI follows NextToken itself
    assert {(t["TrailARN"], t["HomeRegion"]) for t in out["Trails"]} == expected
    fails("InvalidNextTokenException", ct.list_trails, NextToken="garbage")
    # DescribeTrails only shows the caller's region.
    assert len(client(cairn, "eu-west-1").describe_trails()["trailList"]) == 4


# --------------------------------------------------------------------------------------------
# Multi-region trails and home regions
# --------------------------------------------------------------------------------------------

def test_shadow_trails_and_home_region(cairn):
    cli(cairn, "create-trail", "--name", "multi", "--s3-bucket-name", BUCKET,
        "--is-multi-region-trail")
    cli(cairn, "create-trail", "--name", "single", "--s3-bucket-name", BUCKET)
    cli(cairn, "start-logging", "--name", "multi")

    shadows = aws_in(cairn, OTHER, "cloudtrail", "describe-trails")["trailList"]
    assert [(t["Name"], t["HomeRegion"], t["TrailARN"]) for t in shadows] == [
        ("multi", REGION, arn("multi"))]
    assert aws_in(cairn, OTHER, "cloudtrail", "describe-trails",
                  "--no-include-shadow-trails")["trailList"] == []
    assert aws_in(cairn, OTHER, "cloudtrail", "describe-trails",
                  "--trail-name-list", "multi")["trailList"] == []
    by_arn = aws_in(cairn, OTHER, "cloudtrail", "describe-trails",
                    "--trail-name-list", arn("multi"), arn("single"))["trailList"]
    assert [t["Name"] for t in by_arn] == ["multi"]

    # Reading a shadow trail in another region takes its ARN.
    msg = cli_fails(cairn, "TrailNotFoundException", "get-trail", "--name", "multi",
                    region=OTHER)
    assert arn("multi") in msg
    got = aws_in(cairn, OTHER, "cloudtrail", "get-trail", "--name", arn("multi"))["Trail"]
    assert got["HomeRegion"] == REGION and got["IsMultiRegionTrail"] is True
    cli_fails(cairn, "TrailNotFoundException", "get-trail-status", "--name", "multi",
              region=OTHER)
    st = aws_in(cairn, OTHER, "cloudtrail", "get-trail-status", "--name", arn("multi"))
    assert st["IsLogging"] is True
    sel = aws_in(cairn, OTHER, "cloudtrail", "get-event-selectors", "--trail-name",
                 arn("multi"))
    assert sel["TrailARN"] == arn("multi")
    cli_fails(cairn, "TrailNotFoundException", "get-trail", "--name", arn("single"),
              region=OTHER)

    # Changes only in the home region, by name or by ARN.
    west = client(cairn, OTHER)
    for ref in ("multi", arn("multi")):
        fails("InvalidHomeRegionException", west.update_trail, Name=ref,
              EnableLogFileValidation=True)
        fails("InvalidHomeRegionException", west.delete_trail, Name=ref)
        fails("InvalidHomeRegionException", west.start_logging, Name=ref)
        fails("InvalidHomeRegionException", west.stop_logging, Name=ref)
        fails("InvalidHomeRegionException", west.put_event_selectors, TrailName=ref,
              EventSelectors=[{"ReadWriteType": "All"}])
        fails("InvalidHomeRegionException", west.put_insight_selectors, TrailName=ref,
              InsightSelectors=[])
    msg = cli_fails(cairn, "InvalidHomeRegionException", "delete-trail", "--name",
                    arn("multi"), region=OTHER)
    assert REGION in msg
    fails("InvalidHomeRegionException", west.add_tags, ResourceId=arn("multi"),
          TagsList=[{"Key": "k", "Value": "v"}])
    fails("InvalidHomeRegionException", west.remove_tags, ResourceId=arn("multi"),
          TagsList=[{"Key": "k"}])
    assert west.list_tags(ResourceIdList=[arn("multi")])["ResourceTagList"] == [
        {"ResourceId": arn("multi"), "TagsList": []}]

    # A trail of the same name can live in another region unless a multi-region one has it.
    fails("TrailAlreadyExistsException", west.create_trail, Name="multi", S3BucketName=BUCKET)
    west.create_trail(Name="single", S3BucketName=BUCKET)
    fails("TrailAlreadyExistsException", client(cairn).update_trail, Name="single",
          IsMultiRegionTrail=True)
    west.delete_trail(Name="single")
    out = client(cairn).update_trail(Name="single", IsMultiRegionTrail=True)
    assert out["IsMultiRegionTrail"] is True
    assert {t["Name"] for t in west.describe_trails()["trailList"]} == {"multi", "single"}
    client(cairn).update_trail(Name="single", IsMultiRegionTrail=False)
    assert {t["Name"] for t in west.describe_trails()["trailList"]} == {"multi"}
    cli(cairn, "delete-trail", "--name", "multi")
    assert west.describe_trails()["trailList"] == []


def test_five_trails_per_region(cairn):
    for i in range(5):
        cli(cairn, "create-trail", "--name", f"five-{i}", "--s3-bucket-name", BUCKET)
    cli_fails(cairn, "MaximumNumberOfTrailsExceededException", "create-trail", "--name",
              "six", "--s3-bucket-name", BUCKET)
    status, _, body = cairn.json11("CreateTrail", {"Name": "six", "S3BucketName": BUCKET})
    assert status == 403 and body["__type"] == "MaximumNumberOfTrailsExceededException"

    west = client(cairn, OTHER)
    # A multi-region trail from us-west-2 would be a sixth trail in us-east-1.
    fails("MaximumNumberOfTrailsExceededException", west.create_trail, Name="west-multi",
          S3BucketName=BUCKET, IsMultiRegionTrail=True)
    for i in range(4):
        west.create_trail(Name=f"w-{i}", S3BucketName=BUCKET)
    fails("MaximumNumberOfTrailsExceededException", west.update_trail, Name="w-0",
          IsMultiRegionTrail=True)
    client(cairn).delete_trail(Name="five-0")
    west.update_trail(Name="w-0", IsMultiRegionTrail=True)
    # us-east-1 now has four of its own and the shadow of w-0: full again.
    fails("MaximumNumberOfTrailsExceededException", create, cairn, "again")
    # us-west-2 holds w-0 (multi-region) and w-1..w-3: room for one more.
    west.create_trail(Name="w-4", S3BucketName=BUCKET)
    fails("MaximumNumberOfTrailsExceededException", west.create_trail, Name="w-5",
          S3BucketName=BUCKET)


# --------------------------------------------------------------------------------------------
# Update and delete
# --------------------------------------------------------------------------------------------

def test_update_trail(cairn):
    cli(cairn, "create-trail", "--name", "upd", "--s3-bucket-name", BUCKET,
        "--s3-key-prefix", "p1", "--sns-topic-name", "topic-1")
    out = cli(cairn, "update-trail", "--name", "upd", "--s3-bucket-name", BUCKET2,
              "--s3-key-prefix", "p2", "--enable-log-file-validation",
              "--is-multi-region-trail",
              "--sns-topic-name", f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:topic-2")
    assert out["S3BucketName"] == BUCKET2
    assert out["S3KeyPrefix"] == "p2"
    assert out["LogFileValidationEnabled"] is True
    assert out["IsMultiRegionTrail"] is True
    assert out["SnsTopicARN"] == f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:topic-2"
    assert out["TrailARN"] == arn("upd")
    got = cli(cairn, "get-trail", "--name", "upd")["Trail"]
    assert got["S3KeyPrefix"] == "p2" and got["S3BucketName"] == BUCKET2

    # Empty strings clear optional members; unnamed members stay as they are.
    ct = client(cairn)
    out = ct.update_trail(Name=arn("upd"), S3KeyPrefix="", SnsTopicName="")
    for gone in ("S3KeyPrefix", "SnsTopicName", "SnsTopicARN"):
        assert gone not in out
    assert out["LogFileValidationEnabled"] is True and out["S3BucketName"] == BUCKET2

    fails("InvalidParameterCombinationException", ct.update_trail, Name="upd",
          IncludeGlobalServiceEvents=False)
    out = ct.update_trail(Name="upd", IsMultiRegionTrail=False,
                          IncludeGlobalServiceEvents=False)
    assert out["IncludeGlobalServiceEvents"] is False and out["IsMultiRegionTrail"] is False
    fails("InvalidParameterCombinationException", ct.update_trail, Name="upd",
          IsMultiRegionTrail=True)

    msg = fails("S3BucketDoesNotExistException", ct.update_trail, Name="upd",
                S3BucketName="no-such-bucket")
    assert "aws s3 mb s3://no-such-bucket" in msg
    fails("InvalidS3BucketNameException", ct.update_trail, Name="upd", S3BucketName="Bad_Name")
    fails("InvalidS3PrefixException", ct.update_trail, Name="upd", S3KeyPrefix="x" * 201)
    fails("InvalidSnsTopicNameException", ct.update_trail, Name="upd", SnsTopicName="bad name")
    fails("KmsKeyNotFoundException", ct.update_trail, Name="upd", KmsKeyId="alias/k")
    fails("CloudWatchLogsDeliveryUnavailableException", ct.update_trail, Name="upd",
          CloudWatchLogsLogGroupArn="arn:aws:logs:us-east-1:111122223333:log-group:g:*")
    fails("OrganizationsNotInUseException", ct.update_trail, Name="upd",
          IsOrganizationTrail=True)
    fails("TrailNotFoundException", ct.update_trail, Name="nope", EnableLogFileValidation=True)
    fails("InvalidTrailNameException", ct.update_trail, Name="a--b")
    fails("CloudTrailARNInvalidException", ct.update_trail, Name="arn:aws:cloudtrail:x")
    # Nothing refused changed the trail.
    got = ct.get_trail(Name="upd")["Trail"]
    assert got["S3BucketName"] == BUCKET2 and "KmsKeyId" not in got


def test_delete_trail(cairn):
    cli(cairn, "create-trail", "--name", "del1", "--s3-bucket-name", BUCKET)
    cli(cairn, "create-trail", "--name", "del2", "--s3-bucket-name", BUCKET)
    assert cli(cairn, "delete-trail", "--name", "del1") == {}
    cli_fails(cairn, "TrailNotFoundException", "get-trail", "--name", "del1")
    cli_fails(cairn, "TrailNotFoundException", "delete-trail", "--name", "del1")
    assert cli(cairn, "delete-trail", "--name", arn("del2")) == {}
    assert cli(cairn, "describe-trails")["trailList"] == []
    # The bucket is left alone.
    assert (cairn.server.data_dir / "buckets" / BUCKET).is_dir()
    # A new trail of the old name starts afresh.
    cli(cairn, "create-trail", "--name", "del1", "--s3-bucket-name", BUCKET)
    assert cli(cairn, "get-trail-status", "--name", "del1") == {"IsLogging": False}


# --------------------------------------------------------------------------------------------
# Logging and status
# --------------------------------------------------------------------------------------------

def test_start_stop_logging_and_status(cairn):
    cli(cairn, "create-trail", "--name", "logs", "--s3-bucket-name", BUCKET)
    assert cli(cairn, "get-trail-status", "--name", "logs") == {"IsLogging": False}

    before = time.time()
    assert cli(cairn, "start-logging", "--name", "logs") == {}
    after = time.time()
    st = cli(cairn, "get-trail-status", "--name", "logs")
    assert st["IsLogging"] is True
    assert isinstance(st["StartLoggingTime"], (int, float))
    assert before - 1 <= st["StartLoggingTime"] <= after + 1
    started = dt.datetime.strptime(st["TimeLoggingStarted"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(started.replace(tzinfo=dt.timezone.utc).timestamp()
               - st["StartLoggingTime"]) < 1.5
    assert "StopLoggingTime" not in st and "TimeLoggingStopped" not in st

    # Starting again keeps the first start time.
    time.sleep(1.1)
    cli(cairn, "start-logging", "--name", arn("logs"))
    assert cli(cairn, "get-trail-status", "--name", "logs")["StartLoggingTime"] == \
        st["StartLoggingTime"]

    assert cli(cairn, "stop-logging", "--name", "logs") == {}
    st2 = cli(cairn, "get-trail-status", "--name", "logs")
    assert st2["IsLogging"] is False
    assert st2["StopLoggingTime"] >= st2["StartLoggingTime"]
    assert st2["TimeLoggingStopped"].endswith("Z")

    # boto3 reads the numbers as datetimes.
    b = client(cairn).get_trail_status(Name="logs")
    assert isinstance(b["StartLoggingTime"], dt.datetime)
    assert isinstance(b["StopLoggingTime"], dt.datetime)
    status, _, raw = cairn.json11("GetTrailStatus", {"Name": "logs"})
    assert status == 200 and isinstance(raw["StartLoggingTime"], (int, float))

    cli_fails(cairn, "TrailNotFoundException", "start-logging", "--name", "nope")
    cli_fails(cairn, "InvalidTrailNameException", "stop-logging", "--name=bad.")
    cli_fails(cairn, "CloudTrailARNInvalidException", "get-trail-status", "--name",
              "arn:aws:cloudtrail:us-east-1:123:trail/x")


# --------------------------------------------------------------------------------------------
# Event selectors
# --------------------------------------------------------------------------------------------

def test_basic_event_selectors(cairn):
    cli(cairn, "create-trail", "--name", "sel", "--s3-bucket-name", BUCKET)
    assert cli(cairn, "get-event-selectors", "--trail-name", "sel") == {
        "TrailARN": arn("sel"),
        "EventSelectors": [
            {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": []}],
    }
    selectors = [
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True, "DataResources": [],
         "ExcludeManagementEventSources": ["kms.amazonaws.com"]},
        {"ReadWriteType": "All", "IncludeManagementEvents": False,
         "DataResources": [
             {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::my-bucket/", "arn:aws:s3"]},
             {"Type": "AWS::Lambda::Function",
              "Values": ["arn:aws:lambda:us-east-1:111122223333:function:hello"]},
             {"Type": "AWS::DynamoDB::Table", "Values": ["arn:aws:dynamodb"]}],
         "ExcludeManagementEventSources": []},
    ]
    out = cli(cairn, "put-event-selectors", "--trail-name", "sel", "--event-selectors",
              json.dumps(selectors))
    assert out == {"TrailARN": arn("sel"), "EventSelectors": selectors}
    assert cli(cairn, "get-event-selectors", "--trail-name", arn("sel")) == out
    assert cli(cairn, "get-trail", "--name", "sel")["Trail"]["HasCustomEventSelectors"] is True

    ct = client(cairn)
    bad = {
        "six selectors": [{"ReadWriteType": "All"}] * 6,
        "no selectors": [],
        "bad ReadWriteType": [{"ReadWriteType": "read-only"}],
        "bad resource type": [{"DataResources": [{"Type": "AWS::EC2::Instance",
                                                  "Values": ["arn:aws:ec2"]}]}],
        "wildcard": [{"DataResources": [{"Type": "AWS::S3::Object",
                                         "Values": ["arn:aws:s3:::*"]}]}],
        "bucket without slash": [{"DataResources": [{"Type": "AWS::S3::Object",
                                                     "Values": ["arn:aws:s3:::bucket"]}]}],
        "no values": [{"DataResources": [{"Type": "AWS::S3::Object", "Values": []}]}],
        "bad lambda": [{"DataResources": [{"Type": "AWS::Lambda::Function",
                                           "Values": ["arn:aws:lambda:*"]}]}],
        "bad exclusion": [{"ExcludeManagementEventSources": ["ec2.amazonaws.com"]}],
        "251 resources": [{"DataResources": [{"Type": "AWS::S3::Object", "Values": [
            f"arn:aws:s3:::b{i}/" for i in range(251)]}]}],
    }
    for what, sels in bad.items():
        msg = fails("InvalidEventSelectorsException", ct.put_event_selectors, TrailName="sel",
                    EventSelectors=sels)
        assert msg, what
    msg = fails("InvalidEventSelectorsException", ct.put_event_selectors, TrailName="sel",
                EventSelectors=[{"ReadWriteType": "read-only"}])
    assert "read-only" in msg
    # 250 are fine, and "every object" values do not count.
    ok = [{"DataResources": [{"Type": "AWS::S3::Object", "Values": [
        f"arn:aws:s3:::b{i}/" for i in range(250)] + ["arn:aws:s3"]}]}]
    ct.put_event_selectors(TrailName="sel", EventSelectors=ok)
    # Refusals left the last good selectors in place.
    assert len(ct.get_event_selectors(TrailName="sel")["EventSelectors"][0]["DataResources"]
               [0]["Values"]) == 251

    cli_fails(cairn, "InvalidParameterCombinationException", "put-event-selectors",
              "--trail-name", "sel", "--event-selectors", '[{"ReadWriteType":"All"}]',
              "--advanced-event-selectors",
              '[{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]')
    fails("InvalidEventSelectorsException", ct.put_event_selectors, TrailName="sel")
    fails("TrailNotFoundException", ct.put_event_selectors, TrailName="nope",
          EventSelectors=[{"ReadWriteType": "All"}])
    fails("InvalidTrailNameException", ct.get_event_selectors, TrailName="no")
    fails("TrailNotFoundException", ct.get_event_selectors,
          TrailName=arn("sel", account="444455556666"))


def test_advanced_event_selectors(cairn):
    cli(cairn, "create-trail", "--name", "adv", "--s3-bucket-name", BUCKET)
    advanced = [
        {"Name": "Management writes",
         "FieldSelectors": [
             {"Field": "eventCategory", "Equals": ["Management"]},
             {"Field": "readOnly", "Equals": ["false"]},
             {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com",
                                                    "rdsdata.amazonaws.com"]}]},
        {"Name": "S3 puts outside the log bucket",
         "FieldSelectors": [
             {"Field": "eventCategory", "Equals": ["Data"]},
             {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
             {"Field": "eventName", "Equals": ["PutObject"], "StartsWith": ["Delete"]},
             {"Field": "resources.ARN", "NotStartsWith": ["arn:aws:s3:::trail-bucket/"],
              "EndsWith": [".json"], "NotEndsWith": [".tmp.json"]},
             {"Field": "userIdentity.arn", "NotEquals": ["arn:aws:iam::111122223333:root"]},
             {"Field": "sessionCredentialFromConsole", "Equals": ["false"]},
             {"Field": "eventType", "Equals": ["AwsApiCall"]},
             {"Field": "eventSource", "Equals": ["s3.amazonaws.com"]}]},
        {"FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["NetworkActivity"]},
            {"Field": "eventSource", "Equals": ["ec2.amazonaws.com"]},
            {"Field": "errorCode", "Equals": ["VpceAccessDenied"]},
            {"Field": "vpcEndpointId", "NotEquals": ["vpce-1"]},
            {"Field": "eventName", "StartsWith": ["Describe"]},
            {"Field": "userIdentity.arn", "StartsWith": ["arn:aws:iam::"]}]},
    ]
    out = cli(cairn, "put-event-selectors", "--trail-name", "adv",
              "--advanced-event-selectors", json.dumps(advanced))
    assert out == {"TrailARN": arn("adv"), "AdvancedEventSelectors": advanced}
    assert cli(cairn, "get-event-selectors", "--trail-name", "adv") == out
    assert cli(cairn, "get-trail", "--name", "adv")["Trail"]["HasCustomEventSelectors"] is True

    # Basic selectors replace advanced ones, and back.
    ct = client(cairn)
    back = ct.put_event_selectors(TrailName="adv", EventSelectors=[{"ReadWriteType": "All"}])
    assert "AdvancedEventSelectors" not in back
    got = ct.get_event_selectors(TrailName="adv")
    assert "AdvancedEventSelectors" not in got and len(got["EventSelectors"]) == 1
    got = ct.put_event_selectors(TrailName="adv", AdvancedEventSelectors=advanced[:1])
    assert "EventSelectors" not in got

    cat = lambda c: {"Field": "eventCategory", "Equals": [c]}  # noqa: E731
    s3 = {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}
    bad = {
        "no eventCategory": [{"FieldSelectors": [{"Field": "readOnly", "Equals": ["true"]}]}],
        "insight category": [{"FieldSelectors": [cat("Insight")]}],
        "two categories": [{"FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management", "Data"]}]}],
        "StartsWith on eventCategory": [{"FieldSelectors": [
            {"Field": "eventCategory", "StartsWith": ["Man"]}]}],
        "NotEquals on readOnly": [{"FieldSelectors": [
            cat("Management"), {"Field": "readOnly", "NotEquals": ["true"]}]}],
        "readOnly yes": [{"FieldSelectors": [
            cat("Management"), {"Field": "readOnly", "Equals": ["yes"]}]}],
        "eventName on management": [{"FieldSelectors": [
            cat("Management"), {"Field": "eventName", "Equals": ["RunInstances"]}]}],
        "management eventSource Equals": [{"FieldSelectors": [
            cat("Management"), {"Field": "eventSource", "Equals": ["kms.amazonaws.com"]}]}],
        "data without resources.type": [{"FieldSelectors": [cat("Data")]}],
        "two resource types": [{"FieldSelectors": [cat("Data"), {
            "Field": "resources.type", "Equals": ["AWS::S3::Object", "AWS::Lambda::Function"]}]}],
        "StartsWith on resources.type": [{"FieldSelectors": [cat("Data"), {
            "Field": "resources.type", "StartsWith": ["AWS::S3"]}]}],
        "unknown field": [{"FieldSelectors": [cat("Data"), s3,
                                              {"Field": "sourceIPAddress", "Equals": ["1"]}]}],
        "no operator": [{"FieldSelectors": [cat("Data"), s3, {"Field": "eventName"}]}],
        "same field twice": [{"FieldSelectors": [cat("Data"), s3,
                                                 {"Field": "eventName", "Equals": ["a"]},
                                                 {"Field": "eventName", "Equals": ["b"]}]}],
        "network without eventSource": [{"FieldSelectors": [cat("NetworkActivity")]}],
        "network errorCode": [{"FieldSelectors": [
            cat("NetworkActivity"), {"Field": "eventSource", "Equals": ["ec2.amazonaws.com"]},
            {"Field": "errorCode", "Equals": ["AccessDenied"]}]}],
        "vpcEndpointId on data": [{"FieldSelectors": [
            cat("Data"), s3, {"Field": "vpcEndpointId", "Equals": ["vpce-1"]}]}],
        "501 values": [{"FieldSelectors": [cat("Data"), s3, {
            "Field": "eventName", "Equals": [f"E{i}" for i in range(499)]}]}],
        "empty list": [],
        "long name": [{"Name": "n" * 1001, "FieldSelectors": [cat("Management")]}],
        "long value": [{"FieldSelectors": [cat("Data"), s3,
                                           {"Field": "eventName", "Equals": ["x" * 2049]}]}],
    }
    for what, sels in bad.items():
        fails("InvalidEventSelectorsException", ct.put_event_selectors, TrailName="adv",
              AdvancedEventSelectors=sels)
    # Empty operator lists and empty values get past botocore only without validation.
    raw = client_without_validation(cairn)
    for sels in ([{"FieldSelectors": []}],
                 [{"FieldSelectors": [cat("Data"), s3, {"Field": "eventName", "Equals": []}]}],
                 [{"FieldSelectors": [cat("Data"), s3, {"Field": "eventName", "Equals": [""]}]}]):
        fails("InvalidEventSelectorsException", raw.put_event_selectors, TrailName="adv",
              AdvancedEventSelectors=sels)
    ok = [{"FieldSelectors": [cat("Data"), s3, {
        "Field": "eventName", "Equals": [f"E{i}" for i in range(498)]}]}]
    ct.put_event_selectors(TrailName="adv", AdvancedEventSelectors=ok)
    msg = cli_fails(cairn, "InvalidEventSelectorsException", "put-event-selectors",
                    "--trail-name", "adv", "--advanced-event-selectors",
                    json.dumps(bad["data without resources.type"]))
    assert "resources.type" in msg


def client_without_validation(cairn):
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                 parameter_validation=False)
    return boto3.session.Session().client(
        "cloudtrail", endpoint_url=cairn.endpoint, region_name=REGION,
        aws_access_key_id=cairn.access_key, aws_secret_access_key=cairn.secret_key, config=cfg)


# --------------------------------------------------------------------------------------------
# Insight selectors
# --------------------------------------------------------------------------------------------

def test_insight_selectors(cairn):
    cli(cairn, "create-trail", "--name", "ins", "--s3-bucket-name", BUCKET)
    msg = cli_fails(cairn, "InsightNotEnabledException", "get-insight-selectors",
                    "--trail-name", "ins")
    assert arn("ins") in msg
    out = cli(cairn, "put-insight-selectors", "--trail-name", "ins", "--insight-selectors",
              '[{"InsightType": "ApiCallRateInsight"}, '
              '{"InsightType": "ApiErrorRateInsight", "EventCategories": ["Management"]}]')
    expected = {"TrailARN": arn("ins"), "InsightSelectors": [
        {"InsightType": "ApiCallRateInsight"},
        {"InsightType": "ApiErrorRateInsight", "EventCategories": ["Management"]}]}
    assert out == expected
    assert cli(cairn, "get-insight-selectors", "--trail-name", "ins") == expected
    assert cli(cairn, "get-trail", "--name", "ins")["Trail"]["HasInsightSelectors"] is True

    ct = client(cairn)
    fails("InvalidInsightSelectorsException", ct.put_insight_selectors, TrailName="ins",
          InsightSelectors=[{"InsightType": "ApiCallRateInsight", "EventCategories": ["Data"]}])
    fails("InvalidInsightSelectorsException", ct.put_insight_selectors, TrailName="ins",
          InsightSelectors=[{"InsightType": "ApiCallRateInsight"},
                            {"InsightType": "ApiCallRateInsight"}])
    raw = client_without_validation(cairn)
    fails("InvalidInsightSelectorsException", raw.put_insight_selectors, TrailName="ins",
          InsightSelectors=[{"InsightType": "CallRate"}])
    fails("InvalidInsightSelectorsException", raw.put_insight_selectors, TrailName="ins",
          InsightSelectors=[{"InsightType": "ApiCallRateInsight",
                             "EventCategories": ["Insight"]}])
    fails("InvalidParameterCombinationException", ct.put_insight_selectors, TrailName="ins",
          EventDataStore="arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/x",
          InsightSelectors=[])
    fails("TrailNotFoundException", ct.get_insight_selectors, TrailName="nope")

    # Data-event Insights need data events logged; API call rate needs write management events.
    ct.put_event_selectors(TrailName="ins", EventSelectors=[{
        "ReadWriteType": "ReadOnly",
        "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}])
    out = ct.put_insight_selectors(TrailName="ins", InsightSelectors=[
        {"InsightType": "ApiErrorRateInsight", "EventCategories": ["Management", "Data"]}])
    assert out["InsightSelectors"] == [
        {"InsightType": "ApiErrorRateInsight", "EventCategories": ["Management", "Data"]}]
    msg = fails("InvalidInsightSelectorsException", ct.put_insight_selectors, TrailName="ins",
                InsightSelectors=[{"InsightType": "ApiCallRateInsight"}])
    assert "write management events" in msg

    # An empty list turns Insights off.
    out = cli(cairn, "put-insight-selectors", "--trail-name", "ins", "--insight-selectors", "[]")
    assert out == {"TrailARN": arn("ins"), "InsightSelectors": []}
    cli_fails(cairn, "InsightNotEnabledException", "get-insight-selectors", "--trail-name",
              arn("ins"))
    assert ct.get_trail(Name="ins")["Trail"]["HasInsightSelectors"] is False


# --------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------

def test_tags(cairn):
    cli(cairn, "create-trail", "--name", "tagged", "--s3-bucket-name", BUCKET,
        "--tags-list", "Key=team,Value=sec", "Key=env,Value=prod")
    t = arn("tagged")
    assert cli(cairn, "list-tags", "--resource-id-list", t) == {"ResourceTagList": [
        {"ResourceId": t, "TagsList": [{"Key": "team", "Value": "sec"},
                                       {"Key": "env", "Value": "prod"}]}]}
    assert cli(cairn, "add-tags", "--resource-id", t, "--tags-list", "Key=env,Value=dev",
               "Key=owner") == {}
    tags = cli(cairn, "list-tags", "--resource-id-list", t)["ResourceTagList"][0]["TagsList"]
    assert tags == [{"Key": "team", "Value": "sec"}, {"Key": "env", "Value": "dev"},
                    {"Key": "owner"}]
    assert cli(cairn, "remove-tags", "--resource-id", t, "--tags-list", "Key=team",
               "Key=absent") == {}
    tags = cli(cairn, "list-tags", "--resource-id-list", t)["ResourceTagList"][0]["TagsList"]
    assert [x["Key"] for x in tags] == ["env", "owner"]

    ct = client(cairn)
    ct.add_tags(ResourceId=t, TagsList=[{"Key": f"k{i}", "Value": "v"} for i in range(48)])
    fails("TagsLimitExceededException", ct.add_tags, ResourceId=t,
          TagsList=[{"Key": "one-too-many", "Value": "v"}])
    assert len(ct.list_tags(ResourceIdList=[t])["ResourceTagList"][0]["TagsList"]) == 50
    ct.add_tags(ResourceId=t, TagsList=[{"Key": "k0", "Value": "overwritten"}])
    fails("TagsLimitExceededException", ct.create_trail, Name="many", S3BucketName=BUCKET,
          TagsList=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    raw = client_without_validation(cairn)
    fails("InvalidTagParameterException", raw.add_tags, ResourceId=t,
          TagsList=[{"Key": "k" * 129, "Value": "v"}])
    fails("InvalidTagParameterException", raw.add_tags, ResourceId=t,
          TagsList=[{"Key": "", "Value": "v"}])
    fails("InvalidTagParameterException", raw.add_tags, ResourceId=t,
          TagsList=[{"Key": "k", "Value": "v" * 257}])
    fails("InvalidTagParameterException", ct.add_tags, ResourceId=t,
          TagsList=[{"Key": "dup", "Value": "1"}, {"Key": "dup", "Value": "2"}])
    fails("InvalidTagParameterException", raw.create_trail, Name="badtag", S3BucketName=BUCKET,
          TagsList=[{"Key": "k", "Value": "v" * 257}])

    fails("ResourceNotFoundException", ct.add_tags, ResourceId=arn("nope"),
          TagsList=[{"Key": "k"}])
    fails("ResourceNotFoundException", ct.list_tags,
          ResourceIdList=[arn("tagged", account="444455556666")])
    fails("ResourceNotFoundException", ct.remove_tags, ResourceId=arn("nope"),
          TagsList=[{"Key": "k"}])
    fails("CloudTrailARNInvalidException", ct.add_tags, ResourceId="tagged",
          TagsList=[{"Key": "k"}])
    fails("CloudTrailARNInvalidException", ct.list_tags,
          ResourceIdList=["arn:aws:cloudtrail:us-east-1:111122223333:trail/a--b"])
    fails("InvalidParameterException", ct.list_tags, ResourceIdList=[t] * 21)
    assert len(ct.list_tags(ResourceIdList=[t] * 20)["ResourceTagList"]) == 20

    # Channels carry tags too.
    channel = cairn.client("cloudtrail").list_channels()["Channels"][0]["ChannelArn"]
    listed = ct.list_tags(ResourceIdList=[channel, t])["ResourceTagList"]
    assert listed[0] == {"ResourceId": channel, "TagsList": []}
    assert listed[1]["ResourceId"] == t
    ct.add_tags(ResourceId=channel, TagsList=[{"Key": "team", "Value": "sec"}, {"Key": "x"}])
    ct.add_tags(ResourceId=channel, TagsList=[{"Key": "team", "Value": "audit"}])
    ct.remove_tags(ResourceId=channel, TagsList=[{"Key": "x"}])
    listed = ct.list_tags(ResourceIdList=[channel])["ResourceTagList"]
    assert listed[0]["TagsList"] == [{"Key": "team", "Value": "audit"}]
    ct.remove_tags(ResourceId=channel, TagsList=[{"Key": "team"}])
    assert ct.list_tags(ResourceIdList=[channel])["ResourceTagList"][0]["TagsList"] == []
    fails("ResourceNotFoundException", ct.list_tags,
          ResourceIdList=["arn:aws:cloudtrail:us-east-1:111122223333:channel/"
                          "00000000-0000-0000-0000-000000000000"])


# --------------------------------------------------------------------------------------------
# Validation of CreateTrail
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "ab", "a" * 129, "-abc", "abc-", "_abc", "abc.", "my--namespace", "my-_namespace",
    "my._x", "has space", "bad/name", "192.168.5.4", "10.0.0.1",
])
def test_invalid_trail_names(cairn, name):
    fails("InvalidTrailNameException", client(cairn).create_trail, Name=name,
          S3BucketName=BUCKET)


def test_create_trail_validation(cairn):
    ct = client(cairn)
    msg = cli_fails(cairn, "InvalidTrailNameException", "create-trail", "--name", "ab",
                    "--s3-bucket-name", BUCKET)
    assert "too short" in msg
    for ok in ("abc", "A.b_c-d9", "a" * 128, "192.168.5"):
        create(cairn, ok)
        ct.delete_trail(Name=ok)

    create(cairn, "dupe")
    msg = cli_fails(cairn, "TrailAlreadyExistsException", "create-trail", "--name", "dupe",
                    "--s3-bucket-name", BUCKET)
    assert f"Trail dupe already exists for customer: {ACCOUNT_ID}" in msg

    msg = cli_fails(cairn, "S3BucketDoesNotExistException", "create-trail", "--name", "nob",
                    "--s3-bucket-name", "no-such-bucket")
    assert "aws s3 mb s3://no-such-bucket" in msg
    status, _, body = cairn.json11("CreateTrail", {"Name": "nob", "S3BucketName": "no-such"})
    assert status == 404 and body["__type"] == "S3BucketDoesNotExistException"
    for bad in ("Bad_Bucket", "ab", "-bucket", "b" * 64, "a..b", "192.168.1.1"):
        fails("InvalidS3BucketNameException", create, cairn, "bad-bucket", S3BucketName=bad)
    fails("InvalidS3PrefixException", create, cairn, "prefixed", S3KeyPrefix="x" * 201)
    create(cairn, "prefixed", S3KeyPrefix="x" * 200)
    for bad in ("bad topic", "t" * 257, "arn:aws:sqs:us-east-1:111122223333:q",
                "topic.fifo!"):
        fails("InvalidSnsTopicNameException", create, cairn, "sns", SnsTopicName=bad)

    msg = cli_fails(cairn, "KmsKeyNotFoundException", "create-trail", "--name", "kms",
                    "--s3-bucket-name", BUCKET, "--kms-key-id", "alias/trail-key")
    assert "KMS" in msg
    msg = cli_fails(cairn, "CloudWatchLogsDeliveryUnavailableException", "create-trail",
                    "--name", "cwl", "--s3-bucket-name", BUCKET,
                    "--cloud-watch-logs-log-group-arn",
                    "arn:aws:logs:us-east-1:111122223333:log-group:g:*",
                    "--cloud-watch-logs-role-arn", "arn:aws:iam::111122223333:role/r")
    assert "CloudWatch Logs" in msg
    fails("CloudWatchLogsDeliveryUnavailableException", create, cairn, "cwl",
          CloudWatchLogsRoleArn="arn:aws:iam::111122223333:role/r")
    status, _, body = cairn.json11("CreateTrail", {"Name": "org", "S3BucketName": BUCKET,
                                                   "IsOrganizationTrail": True})
    assert status == 404 and body["__type"] == "OrganizationsNotInUseException", body
    create(cairn, "notorg", IsOrganizationTrail=False)
    cli_fails(cairn, "InvalidParameterCombinationException", "create-trail", "--name", "multi-no-global",
              "--s3-bucket-name", BUCKET, "--is-multi-region-trail",
              "--no-include-global-service-events")
    out = create(cairn, "nog", IncludeGlobalServiceEvents=False)
    assert out["IncludeGlobalServiceEvents"] is False

    # Nothing refused was created.
    names = {t["Name"] for t in ct.describe_trails()["trailList"]}
    assert names == {"dupe", "prefixed", "notorg", "nog"}

    # Names, ARNs and accounts.
    fails("CloudTrailARNInvalidException", ct.get_trail, Name="arn:aws:cloudtrail:us-east-1")
    fails("CloudTrailARNInvalidException", ct.get_trail,
          Name="arn:aws:cloudtrail:us-east-1:111122223333:channel/dupe")
    fails("CloudTrailARNInvalidException", ct.describe_trails, trailNameList=["arn:aws:x"])
    fails("InvalidTrailNameException", ct.describe_trails, trailNameList=["a--b"])
    fails("TrailNotFoundException", ct.get_trail, Name=arn("dupe", account="444455556666"))
    fails("TrailNotFoundException", ct.get_trail_status, Name=arn("dupe", region="eu-west-1"))
    assert ct.describe_trails(trailNameList=[arn("dupe", account="444455556666")])[
        "trailList"] == []


def test_trails_survive_a_restart(cairn):
    ct = client(cairn)
    create(cairn, "kept", S3KeyPrefix="p", TagsList=[{"Key": "a", "Value": "b"}],
           IsMultiRegionTrail=True)
    ct.start_logging(Name="kept")
    ct.put_event_selectors(TrailName="kept", AdvancedEventSelectors=[{"FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]}]}])
    ct.put_insight_selectors(TrailName="kept",
                             InsightSelectors=[{"InsightType": "ApiCallRateInsight"}])
    before = (ct.get_trail(Name="kept")["Trail"], ct.get_event_selectors(TrailName="kept"),
              ct.get_insight_selectors(TrailName="kept"),
              ct.get_trail_status(Name="kept")["StartLoggingTime"])
    cairn.restart()
    ct = client(cairn)
    after = (ct.get_trail(Name="kept")["Trail"], ct.get_event_selectors(TrailName="kept"),
             ct.get_insight_selectors(TrailName="kept"),
             ct.get_trail_status(Name="kept")["StartLoggingTime"])
    strip = lambda x: {k: v for k, v in x.items() if k != "ResponseMetadata"}  # noqa: E731
    assert [strip(x) if isinstance(x, dict) else x for x in before] == \
        [strip(x) if isinstance(x, dict) else x for x in after]
    assert ct.get_trail_status(Name="kept")["IsLogging"] is True
    assert ct.list_tags(ResourceIdList=[arn("kept")])["ResourceTagList"][0]["TagsList"] == [
        {"Key": "a", "Value": "b"}]
