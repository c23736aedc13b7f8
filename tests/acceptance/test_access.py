"""Who may use Cairn, and what they may do: users, access keys, console passwords and policies
managed with `cairn admin` and the identity API (`CairnAdmin_20261121.*`, SigV4 service
`iam`); authorisation of every CloudTrail, ingest, identity and S3 call; authentication
failures that all look alike; account isolation; Cairn's records of its own API calls; console
sign-in; and a data directory that lets nobody in on its own.

The server is the module's own `cairn serve` (conftest's `cairn` fixture), whose
CAIRN_ACCESS_KEY_ID is a key of user `admin` (AdministratorAccess) in the management account
111122223333. Console sign-ins all come from 127.0.0.1, and failures are counted per source
address, so this module's server sees at most three failed sign-ins; throttling is tried on a
server of its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import http.client
import json
import os
import re
import stat
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Callable
from unittest import mock

import boto3
import botocore.config
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (ACCESS_KEY_ID, ACCOUNT_ID, JSON11, REGION, SECRET_ACCESS_KEY,
                      TARGET_PREFIX, Cairn, CairnServer, parse_record)

ADMIN_TARGET = "CairnAdmin_20261121."
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/admin"
READY_MADE = ("AdministratorAccess", "AWSCloudTrail_FullAccess", "AWSCloudTrail_ReadOnlyAccess",
              "CairnAuditWriter")
BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                 "provided. Check your AWS Secret Access Key and signing method. Consult the "
                 "service documentation for details.")
EVENT_DATA_STORE = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:eventdatastore/default"

# Every secret access key and password this module learns; none may be stored anywhere.
SECRETS: list[str] = [SECRET_ACCESS_KEY]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Key:
    access_key: str
    secret_key: str


@dataclasses.dataclass
class User:
    name: str
    arn: str
    key: Key | None
    account_id: str = ACCOUNT_ID


ADMIN = Key(ACCESS_KEY_ID, SECRET_ACCESS_KEY)


def iam(cairn, op: str, body: dict | None = None, key: Key | None = None) -> tuple[int, Any]:
    """One identity operation over the raw API; returns (status, parsed body)."""
    key = key or ADMIN
    raw = json.dumps(body or {}).encode()
    status, _, data = cairn.signed_request(
        "/", raw, {"X-Amz-Target": ADMIN_TARGET + op, "Content-Type": JSON11}, service="iam",
        access_key=key.access_key, secret_key=key.secret_key)
    return status, (json.loads(data) if data else None)


def iam_ok(cairn, op: str, body: dict | None = None, key: Key | None = None) -> dict:
    status, out = iam(cairn, op, body, key)
    assert status == 200, f"{op} answered {status}: {out}"
    return out


def iam_fails(cairn, status: int, code: str, op: str, body: dict | None = None,
              key: Key | None = None) -> str:
    got, out = iam(cairn, op, body, key)
    assert (got, out.get("__type")) == (status, code), f"{op}: {got} {out}"
    return out["message"]


def ct_call(cairn, op: str, body: dict, key: Key | None = None) -> tuple[int, Any]:
    key = key or ADMIN
    status, _, out = cairn.json11(op, body, access_key=key.access_key, secret_key=key.secret_key)
    return status, out


def admin_cli(cairn, *args: str, key: Key | None = None, stdin: str | None = None,
              check: bool = True):
    """`cairn admin ...` against the module's server; the parsed JSON output (or the finished
    process with check=False)."""
    key = key or ADMIN
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CAIRN_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": key.access_key,
        "AWS_SECRET_ACCESS_KEY": key.secret_key,
        "AWS_REGION": REGION,
        "CAIRN_ENDPOINT_URL": cairn.endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    proc = subprocess.run([str(cairn.server.binary), "admin", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)
    if not check:
        return proc
    assert proc.returncode == 0, (f"cairn admin {' '.join(args)} exited {proc.returncode}\n"
                                  f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def policy_doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def make_user(cairn, *policies: str, inline: dict[str, str] | None = None,
              name: str | None = None, key: bool = True, caller: Key | None = None) -> User:
    """A user made with `cairn admin create-user` (ready-made policies attached, an access key
    unless key=False) and inline policies put with `cairn admin put-policy`."""
    name = name or unique("user")
    args = ["create-user", name]
    for p in policies:
        args += ["--policy", p]
    if key:
        args.append("--access-key")
    out = admin_cli(cairn, *args, key=caller)
    the_key = None
    if key:
        ak = out["AccessKey"]
        SECRETS.append(ak["SecretAccessKey"])
        the_key = Key(ak["AccessKeyId"], ak["SecretAccessKey"])
    for pname, doc in (inline or {}).items():
        path = cairn.tmp / f"{name}-{pname}.json"
        path.write_text(doc)
        admin_cli(cairn, "put-policy", name, pname, "--file", str(path), key=caller)
    return User(name, out["User"]["Arn"], the_key, out["User"]["Arn"].split(":")[4])


def denial(arn: str, action: str, resource: str, explicit: bool = False) -> str:
    why = ("with an explicit deny in an identity-based policy" if explicit
           else f"because no identity-based policy allows the {action} action")
    return f"User: {arn} is not authorized to perform: {action} on resource: {resource} {why}"


# --------------------------------------------------------------------------------------------
# CloudTrail helpers
# --------------------------------------------------------------------------------------------

_CLIENTS: dict = {}


def client(cairn, key: Key | None = None, service: str = "cloudtrail", region: str = REGION):
    """A boto3 client signing with `key` (the admin's by default), without retries."""
    key = key or ADMIN
    cache = (service, key.access_key, key.secret_key, region, cairn.endpoint)
    if cache not in _CLIENTS:
        cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                     s3={"addressing_style": "path"},
                                     connect_timeout=10, read_timeout=60)
        _CLIENTS[cache] = boto3.session.Session().client(
            service, endpoint_url=cairn.endpoint, region_name=region,
            aws_access_key_id=key.access_key, aws_secret_access_key=key.secret_key, config=cfg)
    return _CLIENTS[cache]


def fails(code: str, fn: Callable, *args, **kwargs) -> tuple[str, int]:
    """Calls a boto3 method that must fail with `code`; returns (message, HTTP status)."""
    with pytest.raises(ClientError) as e:
        fn(*args, **kwargs)
    err = e.value.response["Error"]
    assert err["Code"] == code, f"expected {code}, got {err}"
    return err.get("Message", ""), e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def trail_arn(name: str, account: str = ACCOUNT_ID, region: str = REGION) -> str:
    return f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"


# Trails to delete when the test ends (an account has at most five per region).
_SCRATCH_TRAILS: list[str] = []


def new_trail(cairn, bucket: str, keep: bool = False) -> str:
    """A logging trail of the management account, deleted after the test unless `keep`."""
    name = unique("trail")
    client(cairn).create_trail(Name=name, S3BucketName=bucket)
    if not keep:
        _SCRATCH_TRAILS.append(name)
    client(cairn).start_logging(Name=name)
    return name


def is_logging(cairn, name: str) -> bool:
    return client(cairn).get_trail_status(Name=name)["IsLogging"]


def new_channel(cairn) -> str:
    return client(cairn).create_channel(
        Name=unique("chan"), Source="Custom",
        Destinations=[{"Type": "EVENT_DATA_STORE", "Location": EVENT_DATA_STORE}])["ChannelArn"]


def audit_event(name: str, account: str = ACCOUNT_ID) -> dict:
    data = {
        "version": "1.0",
        "userIdentity": {"type": "CairnTestUser", "principalId": "tester-1"},
        "eventSource": "access.cairn.example",
        "eventName": name,
        "eventTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "UID": str(uuid.uuid4()),
        "recipientAccountId": account,
    }
    return {"id": "id-" + uuid.uuid4().hex, "eventData": json.dumps(data)}


def native_record(name: str) -> dict:
    return {
        "eventVersion": "1.08",
        "eventTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "access.cairn.example",
        "eventName": name,
        "awsRegion": REGION,
        "userIdentity": {"type": "IAMUser", "userName": "ingest-tester"},
        "eventID": str(uuid.uuid4()),
    }


def lookup(cairn, key: Key | None = None, **attribute: str) -> list[dict]:
    """The records LookupEvents returns (as `key`) for one attribute, e.g. EventName="X", or
    every record without one."""
    ct = client(cairn, key)
    kwargs: dict = {"MaxResults": 50}
    if attribute:
        ((k, v),) = attribute.items()
        kwargs["LookupAttributes"] = [{"AttributeKey": k, "AttributeValue": v}]
    out, token = [], None
    for _ in range(1000):
        page = ct.lookup_events(**kwargs, **({"NextToken": token} if token else {}))
        out += [parse_record(e["CloudTrailEvent"]) for e in page["Events"]]
        token = page.get("NextToken")
        if not token:
            return out
    raise AssertionError("LookupEvents kept paging")


def wait_for(fn: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Calls fn until it returns something true or `timeout` passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def walk(value: Any):
    """Every (member name, value) pair in a JSON value, recursively."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


# --------------------------------------------------------------------------------------------
# Raw SigV4 requests
# --------------------------------------------------------------------------------------------

def sign(cairn, key: Key, path: str, body: bytes, headers: dict, *, service: str = "cloudtrail",
         region: str = REGION, when: dt.datetime | None = None) -> dict:
    """The headers of a request signed with `key` for service/region, at `when` (UTC; now by
    default)."""
    req = AWSRequest(method="POST", url=cairn.endpoint + path, data=body, headers=dict(headers))
    auth = SigV4Auth(Credentials(key.access_key, key.secret_key), service, region)
    if when is None:
        auth.add_auth(req)
    else:
        naive = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
            auth.add_auth(req)
    return dict(req.headers.items())


def send(cairn, path: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(cairn.endpoint + path, data=body, method="POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def ct_request(op: str, body: dict) -> tuple[bytes, dict]:
    return json.dumps(body).encode(), {"X-Amz-Target": TARGET_PREFIX + op, "Content-Type": JSON11}


def json_error(status: int, data: bytes) -> tuple[int, str, str]:
    parsed = json.loads(data)
    return status, parsed["__type"], parsed["message"]


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def scratch_trails(cairn):
    yield
    while _SCRATCH_TRAILS:
        name = _SCRATCH_TRAILS.pop()
        try:
            client(cairn).delete_trail(Name=name)
        except ClientError as e:
            if e.response["Error"]["Code"] != "TrailNotFoundException":
                raise


@pytest.fixture(scope="module")
def bucket(cairn) -> str:
    """A bucket of the management account, made through the S3 façade (so it has an owner)."""
    name = "access-" + uuid.uuid4().hex[:10]
    client(cairn, service="s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def account_b(cairn) -> User:
    """A second account, made with `cairn admin create-account`; its admin and key."""
    out = admin_cli(cairn, "create-account", "--name", "acceptance-b")
    assert out["Account"]["Management"] is False
    account = out["Account"]["Id"]
    assert re.fullmatch(r"\d{12}", account) and account != ACCOUNT_ID, out
    ak = out["AccessKey"]
    assert ak["UserName"] == "admin" and ak["Status"] == "Active"
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", ak["AccessKeyId"]), ak
    SECRETS.append(ak["SecretAccessKey"])
    assert out["User"]["Arn"] == f"arn:aws:iam::{account}:user/admin"
    return User("admin", out["User"]["Arn"], Key(ak["AccessKeyId"], ak["SecretAccessKey"]),
                account)


# ============================================================================================
# 1. Users, keys and policies
# ============================================================================================

def test_users_with_each_ready_made_policy_through_the_cli(cairn):
    listed = admin_cli(cairn, "list-policies")
    assert sorted(p["PolicyName"] for p in listed["Policies"]) == sorted(READY_MADE)
    for p in listed["Policies"]:
        assert p["Arn"] == f"arn:aws:iam::aws:policy/{p['PolicyName']}"
        json.loads(p["PolicyDocument"])

    for policy in READY_MADE:
        name = unique("ready")
        out = admin_cli(cairn, "create-user", name, "--policy", policy, "--access-key")
        user, key = out["User"], out["AccessKey"]
        SECRETS.append(key["SecretAccessKey"])
        assert user["UserName"] == name and user["Path"] == "/"
        assert user["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
        assert re.fullmatch(r"AIDA[A-Z0-9]{17}", user["UserId"]), user
        assert out["AttachedPolicies"] == [policy]
        assert key["UserName"] == name and key["Status"] == "Active"
        assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key["AccessKeyId"]), key
        assert len(key["SecretAccessKey"]) == 40

        mine = admin_cli(cairn, "list-policies", name)
        assert mine == {"AttachedPolicies": [{"PolicyName": policy,
                                              "PolicyArn": f"arn:aws:iam::aws:policy/{policy}"}],
                        "PolicyNames": []}
        got = admin_cli(cairn, "get-user", name)["User"]
        assert got["UserId"] == user["UserId"] and got["Arn"] == user["Arn"]

    names = [u["UserName"] for u in admin_cli(cairn, "list-users")["Users"]]
    assert "admin" in names and len(names) >= 5
    # Who am I: get-user without a name is the caller.
    me = admin_cli(cairn, "get-user")["User"]
    assert me["UserName"] == "admin" and me["Arn"] == ADMIN_ARN


def test_the_secret_is_returned_only_at_creation(cairn):
    user = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    second = admin_cli(cairn, "create-access-key", "--user", user.name)["AccessKey"]
    SECRETS.append(second["SecretAccessKey"])
    assert second["UserName"] == user.name and second["Status"] == "Active"
    assert len(second["SecretAccessKey"]) == 40
    # Two keys at most.
    message = iam_fails(cairn, 409, "LimitExceededException", "CreateAccessKey",
                        {"UserName": user.name})
    assert "AccessKeysPerUser" in message

    secrets = [user.key.secret_key, second["SecretAccessKey"]]
    listed = admin_cli(cairn, "list-access-keys", "--user", user.name)
    assert sorted(k["AccessKeyId"] for k in listed["AccessKeyMetadata"]) == sorted(
        [user.key.access_key, second["AccessKeyId"]])
    status, raw = iam(cairn, "ListAccessKeys", {"UserName": user.name})
    assert status == 200
    for answer in (listed, raw, iam_ok(cairn, "GetUser", {"UserName": user.name})):
        assert not [k for k, _ in walk(answer) if k == "SecretAccessKey"], answer
        for s in secrets:
            assert s not in json.dumps(answer)
    # The user itself may list its own keys only with a policy that allows it.
    message = iam_fails(cairn, 403, "AccessDeniedException", "ListAccessKeys", {}, key=user.key)
    assert message == denial(user.arn, "iam:ListAccessKeys", user.arn)
    # Both keys work.
    for k in (user.key, Key(second["AccessKeyId"], second["SecretAccessKey"])):
        assert ct_call(cairn, "ListTrails", {}, k)[0] == 200


def test_read_only_user(cairn, bucket):
    trail = new_trail(cairn, bucket)
    ro = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    ct = client(cairn, ro.key)
    ct.lookup_events(MaxResults=5)
    assert ct.get_trail(Name=trail)["Trail"]["Name"] == trail
    assert trail in [t["Name"] for t in ct.describe_trails()["trailList"]]
    assert ct.get_trail_status(Name=trail)["IsLogging"] is True
    assert trail in [t["Name"] for t in ct.list_trails()["Trails"]]

    other = unique("trail")
    message, status = fails("AccessDeniedException", ct.create_trail, Name=other,
                            S3BucketName=bucket)
    assert status == 403
    assert message == denial(ro.arn, "cloudtrail:CreateTrail", trail_arn(other))
    message, status = fails("AccessDeniedException", ct.stop_logging, Name=trail)
    assert (status, message) == (403, denial(ro.arn, "cloudtrail:StopLogging", trail_arn(trail)))
    # With the AWS CLI as well.
    proc = aws_as(cairn, ro.key, "cloudtrail", "delete-trail", "--name", trail)
    assert proc.returncode != 0 and "(AccessDeniedException)" in proc.stderr, proc.stderr
    assert denial(ro.arn, "cloudtrail:DeleteTrail", trail_arn(trail)) in proc.stderr
    # Nothing was done.
    assert is_logging(cairn, trail)
    assert client(cairn).get_trail(Name=trail)["Trail"]["Name"] == trail
    assert other not in [t["Name"] for t in client(cairn).list_trails()["Trails"]]
    # Identities are out of reach.
    message = iam_fails(cairn, 403, "AccessDeniedException", "ListUsers", {}, key=ro.key)
    assert message == denial(ro.arn, "iam:ListUsers", "*")


def aws_as(cairn, key: Key, *args: str) -> subprocess.CompletedProcess:
    """The AWS CLI against Cairn with another key (finished process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": key.access_key, "AWS_SECRET_ACCESS_KEY": key.secret_key,
                "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"})
    return subprocess.run([str(cairn.aws_bin), *args, "--endpoint-url", cairn.endpoint,
                           "--output", "json", "--region", REGION],
                          capture_output=True, text=True, env=env, timeout=120)


def test_full_access_user_cannot_manage_identities(cairn, bucket):
    full = make_user(cairn, "AWSCloudTrail_FullAccess")
    ct = client(cairn, full.key)
    name = unique("trail")
    ct.create_trail(Name=name, S3BucketName=bucket)
    _SCRATCH_TRAILS.append(name)
    ct.start_logging(Name=name)
    ct.stop_logging(Name=name)
    assert not is_logging(cairn, name)

    victim = unique("victim")
    proc = admin_cli(cairn, "create-user", victim, key=full.key, check=False)
    assert proc.returncode != 0
    assert "AccessDeniedException (HTTP 403)" in proc.stderr, proc.stderr
    assert denial(full.arn, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT_ID}:user/{victim}") \
        in proc.stderr
    iam_fails(cairn, 404, "NoSuchEntityException", "GetUser", {"UserName": victim})
    message = iam_fails(cairn, 403, "AccessDeniedException", "AttachUserPolicy",
                        {"UserName": full.name, "PolicyArn": "AdministratorAccess"},
                        key=full.key)
    assert message == denial(full.arn, "iam:AttachUserPolicy", full.arn)
    assert admin_cli(cairn, "list-policies", full.name)["AttachedPolicies"] == [
        {"PolicyName": "AWSCloudTrail_FullAccess",
         "PolicyArn": "arn:aws:iam::aws:policy/AWSCloudTrail_FullAccess"}]
    message = iam_fails(cairn, 403, "AccessDeniedException", "CreateAccount", {},
                        key=full.key)
    assert message == denial(full.arn, "organizations:CreateAccount", "*")

    # An administrator may.
    boss = make_user(cairn, "AdministratorAccess")
    made = make_user(cairn, "CairnAuditWriter", caller=boss.key)
    assert iam_ok(cairn, "GetUser", {"UserName": made.name})["User"]["Arn"] == made.arn
    admin_cli(cairn, "delete-user", made.name, key=boss.key)
    iam_fails(cairn, 404, "NoSuchEntityException", "GetUser", {"UserName": made.name})


def test_audit_writer_ingests_but_cannot_read(cairn, bucket):
    channel = new_channel(cairn)
    writer = make_user(cairn, "CairnAuditWriter")
    data = client(cairn, writer.key, "cloudtrail-data")
    via_channel, via_native = unique("WriterChannel"), unique("WriterNative")
    resp = data.put_audit_events(channelArn=channel, auditEvents=[audit_event(via_channel)])
    assert resp["failed"] == [] and len(resp["successful"]) == 1
    answer = cairn.ingest([native_record(via_native)], access_key=writer.key.access_key,
                          secret_key=writer.key.secret_key)
    assert answer["stored"] == 1, answer

    ct = client(cairn, writer.key)
    message, status = fails("AccessDeniedException", ct.lookup_events, MaxResults=5)
    assert (status, message) == (403, denial(writer.arn, "cloudtrail:LookupEvents", "*"))
    trail = new_trail(cairn, bucket)
    message, _ = fails("AccessDeniedException", ct.get_trail, Name=trail)
    assert message == denial(writer.arn, "cloudtrail:GetTrail", trail_arn(trail))
    iam_fails(cairn, 403, "AccessDeniedException", "GetUser", {}, key=writer.key)

    assert len(lookup(cairn, EventName=via_channel)) == 1
    assert len(lookup(cairn, EventName=via_native)) == 1


def test_writer_limited_to_one_channel(cairn):
    allowed, other = new_channel(cairn), new_channel(cairn)
    writer = make_user(cairn, inline={"one-channel": policy_doc(
        {"Effect": "Allow", "Action": "cloudtrail-data:PutAuditEvents", "Resource": allowed})})
    data = client(cairn, writer.key, "cloudtrail-data")
    ok, refused = unique("OneChannelOk"), unique("OneChannelRefused")
    resp = data.put_audit_events(channelArn=allowed, auditEvents=[audit_event(ok)])
    assert len(resp["successful"]) == 1
    message, status = fails("AccessDeniedException", data.put_audit_events, channelArn=other,
                            auditEvents=[audit_event(refused)])
    assert (status, message) == (403, denial(writer.arn, "cloudtrail-data:PutAuditEvents",
                                             other))
    # The native ingest needs cairn:PutEvents.
    status, _, answer = cairn.ingest_raw(json.dumps([native_record(refused)]).encode(),
                                         access_key=writer.key.access_key,
                                         secret_key=writer.key.secret_key)
    assert (status, answer["__type"], answer["message"]) == (
        403, "AccessDeniedException", denial(writer.arn, "cairn:PutEvents", "*"))
    assert len(lookup(cairn, EventName=ok)) == 1
    assert lookup(cairn, EventName=refused) == []


def test_explicit_deny_beats_attached_allow(cairn, bucket):
    trail = new_trail(cairn, bucket)
    user = make_user(cairn, "AWSCloudTrail_FullAccess", inline={"no-stopping": policy_doc(
        {"Effect": "Deny", "Action": ["cloudtrail:StopLogging", "cloudtrail:deletetrail"],
         "Resource": trail_arn(trail)})})
    ct = client(cairn, user.key)
    message, status = fails("AccessDeniedException", ct.stop_logging, Name=trail)
    assert (status, message) == (403, denial(user.arn, "cloudtrail:StopLogging",
                                             trail_arn(trail), explicit=True))
    # Action names match whatever their case.
    message, _ = fails("AccessDeniedException", ct.delete_trail, Name=trail_arn(trail))
    assert message == denial(user.arn, "cloudtrail:DeleteTrail", trail_arn(trail),
                             explicit=True)
    assert is_logging(cairn, trail)
    # The rest of the full access still holds.
    ct.update_trail(Name=trail, S3BucketName=bucket)
    assert ct.get_trail_status(Name=trail)["IsLogging"] is True
    # Without the inline policy, the attached one decides.
    admin_cli(cairn, "delete-policy", user.name, "no-stopping")
    assert admin_cli(cairn, "list-policies", user.name)["PolicyNames"] == []
    ct.stop_logging(Name=trail)
    assert not is_logging(cairn, trail)


def test_policy_for_one_trail(cairn, bucket):
    mine, theirs = new_trail(cairn, bucket), new_trail(cairn, bucket)
    user = make_user(cairn, inline={"one-trail": policy_doc(
        {"Effect": "Allow", "Action": "cloudtrail:*", "Resource": trail_arn(mine)})})
    ct = client(cairn, user.key)
    assert ct.get_trail(Name=mine)["Trail"]["Name"] == mine
    ct.stop_logging(Name=mine)
    assert not is_logging(cairn, mine)
    for reference in (theirs, trail_arn(theirs)):
        message, _ = fails("AccessDeniedException", ct.get_trail, Name=reference)
        assert message == denial(user.arn, "cloudtrail:GetTrail", trail_arn(theirs))
        message, _ = fails("AccessDeniedException", ct.stop_logging, Name=reference)
        assert message == denial(user.arn, "cloudtrail:StopLogging", trail_arn(theirs))
    assert is_logging(cairn, theirs)
    # Operations on no particular trail need the action on "*".
    message, _ = fails("AccessDeniedException", ct.describe_trails)
    assert message == denial(user.arn, "cloudtrail:DescribeTrails", "*")


def test_malformed_policy_documents_are_refused(cairn):
    user = make_user(cairn, key=False)
    bad = [
        "{not json",
        policy_doc({"Effect": "Allow", "Action": "cloudtrail:*"}),  # no Resource
        policy_doc({"Effect": "Maybe", "Action": "cloudtrail:*", "Resource": "*"}),
        json.dumps({"Version": "2012-10-17"}),  # no Statement
        policy_doc({"Effect": "Allow", "Action": "cloudtrail:*", "Resource": "*",
                    "Condition": {"NoSuchOperator": {"aws:username": "x"}}}),
    ]
    for doc in bad:
        iam_fails(cairn, 400, "MalformedPolicyDocumentException", "PutUserPolicy",
                  {"UserName": user.name, "PolicyName": "bad", "PolicyDocument": doc})
    path = cairn.tmp / "bad-policy.json"
    path.write_text("[1, 2")
    proc = admin_cli(cairn, "put-policy", user.name, "bad", "--file", str(path), check=False)
    assert proc.returncode != 0 and "MalformedPolicyDocumentException" in proc.stderr
    assert iam_ok(cairn, "ListUserPolicies", {"UserName": user.name})["PolicyNames"] == []
    iam_fails(cairn, 404, "NoSuchEntityException", "AttachUserPolicy",
              {"UserName": user.name, "PolicyArn": "arn:aws:iam::aws:policy/NoSuchPolicy"})
    assert iam_ok(cairn, "ListAttachedUserPolicies",
                  {"UserName": user.name})["AttachedPolicies"] == []


def test_policy_variables_let_users_manage_their_own_keys(cairn):
    self_service = policy_doc({
        "Effect": "Allow",
        "Action": ["iam:GetUser", "iam:ListAccessKeys", "iam:CreateAccessKey",
                   "iam:UpdateAccessKey", "iam:DeleteAccessKey"],
        "Resource": "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"})
    user = make_user(cairn, inline={"self": self_service})
    neighbour = make_user(cairn, inline={"self": self_service})
    assert iam_ok(cairn, "GetUser", {}, key=user.key)["User"]["Arn"] == user.arn
    made = iam_ok(cairn, "CreateAccessKey", {}, key=user.key)["AccessKey"]
    SECRETS.append(made["SecretAccessKey"])
    assert made["UserName"] == user.name
    keys = iam_ok(cairn, "ListAccessKeys", {}, key=user.key)["AccessKeyMetadata"]
    assert len(keys) == 2
    iam_ok(cairn, "DeleteAccessKey", {"AccessKeyId": made["AccessKeyId"]}, key=user.key)
    for op, body in (("ListAccessKeys", {"UserName": neighbour.name}),
                     ("UpdateAccessKey", {"UserName": neighbour.name, "Status": "Inactive",
                                          "AccessKeyId": neighbour.key.access_key}),
                     ("CreateAccessKey", {"UserName": neighbour.name})):
        message = iam_fails(cairn, 403, "AccessDeniedException", op, body, key=user.key)
        assert message == denial(user.arn, f"iam:{op}", neighbour.arn)
    # The neighbour's key is still active: it is refused by policy, not by its signature.
    assert ct_call(cairn, "ListTrails", {}, neighbour.key)[1]["__type"] == "AccessDeniedException"
    assert len(iam_ok(cairn, "ListAccessKeys", {"UserName": neighbour.name})[
        "AccessKeyMetadata"]) == 1


def test_source_ip_and_time_conditions(cairn):
    inside = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess", inline={"ip": policy_doc(
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}})})
    outside = make_user(cairn, inline={"ip": policy_doc(
        {"Effect": "Allow", "Action": "cloudtrail:*", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}})})
    blocked = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess", inline={"ip": policy_doc(
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}})})
    expired = make_user(cairn, inline={"time": policy_doc(
        {"Effect": "Allow", "Action": "cloudtrail:*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}}})})
    assert ct_call(cairn, "ListTrails", {}, inside.key)[0] == 200
    status, out = ct_call(cairn, "ListTrails", {}, expired.key)
    assert (status, out["message"]) == (403, denial(expired.arn, "cloudtrail:ListTrails", "*"))
    status, out = ct_call(cairn, "ListTrails", {}, outside.key)
    assert (status, out["message"]) == (403, denial(outside.arn, "cloudtrail:ListTrails", "*"))
    status, out = ct_call(cairn, "ListTrails", {}, blocked.key)
    assert (status, out["message"]) == (403, denial(blocked.arn, "cloudtrail:ListTrails", "*",
                                                    explicit=True))


def test_a_denied_channel_stays_denied_when_named_by_arn(cairn):
    channel = new_channel(cairn)
    user = make_user(cairn, "AWSCloudTrail_FullAccess", inline={"not-this-channel": policy_doc(
        {"Effect": "Deny", "Resource": channel,
         "Action": ["cloudtrail-data:PutAuditEvents", "cloudtrail:GetChannel",
                    "cloudtrail:DeleteChannel"]})})
    channel_id = channel.rsplit("/", 1)[1]
    ct, data = client(cairn, user.key), client(cairn, user.key, "cloudtrail-data")
    for reference in (channel, channel_id):
        message, _ = fails("AccessDeniedException", data.put_audit_events, channelArn=reference,
                           auditEvents=[audit_event(unique("Denied"))])
        assert message == denial(user.arn, "cloudtrail-data:PutAuditEvents", channel,
                                 explicit=True)
        for call in (ct.get_channel, ct.delete_channel):
            message, _ = fails("AccessDeniedException", call, Channel=reference)
            assert "with an explicit deny in an identity-based policy" in message
    assert client(cairn).get_channel(Channel=channel)["ChannelArn"] == channel


def test_a_denied_channel_stays_denied_from_another_region(cairn):
    channel = new_channel(cairn)
    assert channel.startswith(f"arn:aws:cloudtrail:{REGION}:")
    user = make_user(cairn, "AWSCloudTrail_FullAccess", inline={"not-this-channel": policy_doc(
        {"Effect": "Deny", "Resource": channel,
         "Action": ["cloudtrail-data:PutAuditEvents", "cloudtrail:GetChannel",
                    "cloudtrail:DeleteChannel"]})})
    channel_id = channel.rsplit("/", 1)[1]
    ct = client(cairn, user.key, region="us-west-2")
    data = client(cairn, user.key, "cloudtrail-data", region="us-west-2")
    name = unique("SmuggledIn")
    got_through = []
    for label, call in (
            ("PutAuditEvents", lambda: data.put_audit_events(
                channelArn=channel_id, auditEvents=[audit_event(name)])),
            ("GetChannel", lambda: ct.get_channel(Channel=channel_id)),
            ("DeleteChannel", lambda: ct.delete_channel(Channel=channel_id))):
        try:
            call()
            got_through.append(label)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
    stored = lookup(cairn, EventName=name)
    assert got_through == [], (f"allowed despite the Deny on {channel}: {got_through}; "
                               f"{len(stored)} event(s) stored")


def test_user_paths_are_part_of_the_resource(cairn):
    name = unique("pathy")
    made = iam_ok(cairn, "CreateUser", {"UserName": name, "Path": "/team/"})["User"]
    assert made["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/team/{name}"
    reader = make_user(cairn, inline={"team": policy_doc(
        {"Effect": "Allow", "Action": "iam:GetUser",
         "Resource": f"arn:aws:iam::{ACCOUNT_ID}:user/team/*"})})
    assert iam_ok(cairn, "GetUser", {"UserName": name}, key=reader.key)["User"]["Arn"] == \
        made["Arn"]


# ============================================================================================
# 2. Getting in
# ============================================================================================

def test_unsigned_and_badly_signed_requests_do_nothing(cairn, bucket):
    trail = new_trail(cairn, bucket)
    body, headers = ct_request("StopLogging", {"Name": trail})

    # Unsigned.
    status, _, data = send(cairn, "/", body, headers)
    assert json_error(status, data) == (403, "MissingAuthenticationTokenException",
                                        "Missing Authentication Token")
    # A wrong secret for a real key.
    signed = sign(cairn, Key(ACCESS_KEY_ID, "wrong" + SECRET_ACCESS_KEY[5:]), "/", body, headers)
    status, _, data = send(cairn, "/", body, signed)
    assert json_error(status, data) == (403, "InvalidSignatureException", BAD_SIGNATURE)
    # The body changed after signing.
    signed = sign(cairn, ADMIN, "/", json.dumps({"Name": "x" + trail}).encode(), headers)
    status, _, data = send(cairn, "/", body, signed)
    assert json_error(status, data) == (403, "InvalidSignatureException", BAD_SIGNATURE)
    # A signed header (the operation) changed after signing.
    read_body, read_headers = ct_request("GetTrailStatus", {"Name": trail})
    signed = sign(cairn, ADMIN, "/", read_body, read_headers)
    assert "x-amz-target" in signed["Authorization"]
    signed["X-Amz-Target"] = TARGET_PREFIX + "StopLogging"
    status, _, data = send(cairn, "/", read_body, signed)
    assert json_error(status, data) == (403, "InvalidSignatureException", BAD_SIGNATURE)
    # The credential scope's region changed after signing.
    signed = sign(cairn, ADMIN, "/", body, headers)
    signed["Authorization"] = signed["Authorization"].replace(f"/{REGION}/", "/us-west-2/")
    status, _, data = send(cairn, "/", body, signed)
    assert json_error(status, data) == (403, "InvalidSignatureException", BAD_SIGNATURE)
    # A region that is no region.
    signed = sign(cairn, ADMIN, "/", body, headers, region="nowhere")
    status, _, data = send(cairn, "/", body, signed)
    assert json_error(status, data) == (
        403, "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'nowhere'.")
    # Signed for another service (for s3 too: the X-Amz-Target makes it a CloudTrail call).
    for service in ("iam", "cloudtrail-data", "s3"):
        signed = sign(cairn, ADMIN, "/", body, headers, service=service)
        status, _, data = send(cairn, "/", body, signed)
        assert json_error(status, data) == (
            403, "InvalidSignatureException",
            f"Credential should be scoped to correct service: 'cloudtrail', not '{service}'.")
    # An identity operation signed for cloudtrail.
    ib, ih = json.dumps({"UserName": "nobody-" + uuid.uuid4().hex[:6]}).encode(), {
        "X-Amz-Target": ADMIN_TARGET + "CreateUser", "Content-Type": JSON11}
    status, _, data = send(cairn, "/", ib, sign(cairn, ADMIN, "/", ib, ih))
    assert json_error(status, data) == (
        403, "InvalidSignatureException",
        "Credential should be scoped to correct service: 'iam', not 'cloudtrail'.")
    assert iam(cairn, "GetUser", json.loads(ib))[0] == 404

    assert is_logging(cairn, trail)
    assert [r for r in lookup(cairn, EventName="StopLogging")
            if r["requestParameters"] == {"name": trail}] == []


def test_signatures_expire_after_fifteen_minutes(cairn, bucket):
    trail = new_trail(cairn, bucket)
    body, headers = ct_request("StopLogging", {"Name": trail})
    now = dt.datetime.now(dt.timezone.utc)
    old = sign(cairn, ADMIN, "/", body, headers, when=now - dt.timedelta(minutes=16))
    assert old["X-Amz-Date"] == (now - dt.timedelta(minutes=16)).strftime("%Y%m%dT%H%M%SZ")
    status, _, data = send(cairn, "/", body, old)
    status, code, message = json_error(status, data)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Signature expired: "), message
    ahead = sign(cairn, ADMIN, "/", body, headers, when=now + dt.timedelta(minutes=16))
    status, code, message = json_error(*send(cairn, "/", body, ahead)[::2])
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Signature not yet current: "), message
    assert is_logging(cairn, trail)
    # Within the fifteen minutes, the same request is taken.
    recent = sign(cairn, ADMIN, "/", body, headers, when=now - dt.timedelta(minutes=13))
    status, _, data = send(cairn, "/", body, recent)
    assert status == 200, data
    assert not is_logging(cairn, trail)


def test_inactive_deleted_and_orphaned_keys(cairn):
    user = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    key_id = user.key.access_key
    refused = (403, "InvalidSignatureException", BAD_SIGNATURE)

    def attempt() -> tuple:
        status, out = ct_call(cairn, "ListTrails", {}, user.key)
        return (status, out["__type"], out["message"]) if status != 200 else (200,)

    assert attempt() == (200,)
    admin_cli(cairn, "deactivate-access-key", key_id, "--user", user.name)
    listed = admin_cli(cairn, "list-access-keys", "--user", user.name)["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key_id, "Inactive")]
    assert attempt() == refused
    admin_cli(cairn, "activate-access-key", key_id, "--user", user.name)
    assert attempt() == (200,)

    admin_cli(cairn, "delete-access-key", key_id, "--user", user.name)
    assert admin_cli(cairn, "list-access-keys", "--user", user.name)["AccessKeyMetadata"] == []
    assert attempt() == refused

    doomed = make_user(cairn, "AdministratorAccess")
    assert ct_call(cairn, "ListTrails", {}, doomed.key)[0] == 200
    admin_cli(cairn, "delete-user", doomed.name)
    status, out = ct_call(cairn, "ListTrails", {}, doomed.key)
    assert (status, out["__type"], out["message"]) == refused
    status, out = iam(cairn, "CreateUser", {"UserName": unique("ghost")}, key=doomed.key)
    assert (status, out["__type"], out["message"]) == refused
    iam_fails(cairn, 404, "NoSuchEntityException", "GetUser", {"UserName": doomed.name})
    iam_fails(cairn, 404, "NoSuchEntityException", "ListAccessKeys", {"UserName": doomed.name})


def test_failed_signatures_all_look_alike(cairn, account_b):
    """An unknown key, another account's key with a wrong secret, an inactive key and a deleted
    key get byte-for-byte the same answer, on every signed route."""
    inactive = make_user(cairn)
    admin_cli(cairn, "deactivate-access-key", inactive.key.access_key, "--user", inactive.name)
    deleted = make_user(cairn)
    admin_cli(cairn, "delete-access-key", deleted.key.access_key, "--user", deleted.name)
    channel = new_channel(cairn)
    wrong = "x" * 40
    keys = {
        "unknown": Key("AKIA" + uuid.uuid4().hex[:16].upper(), wrong),
        "other account, wrong secret": Key(account_b.key.access_key, wrong),
        "same account, wrong secret": Key(ACCESS_KEY_ID, wrong),
        "inactive": inactive.key,
        "deleted": deleted.key,
    }
    routes = [
        ("/", "cloudtrail", *ct_request("ListTrails", {})),
        ("/", "iam", json.dumps({}).encode(),
         {"X-Amz-Target": ADMIN_TARGET + "ListUsers", "Content-Type": JSON11}),
        ("/v1/events", "cloudtrail-data", b"[]", {"Content-Type": "application/json"}),
        ("/PutAuditEvents?channelArn=" + urllib.parse.quote(channel, safe=""),
         "cloudtrail-data", json.dumps({"auditEvents": [audit_event("Nope")]}).encode(),
         {"Content-Type": "application/json"}),
    ]
    for path, service, body, headers in routes:
        answers = {}
        for label, key in keys.items():
            status, hdrs, data = send(cairn, path, body,
                                      sign(cairn, key, path, body, headers, service=service))
            answers[label] = (status, hdrs.get("x-amzn-errortype"), data)
        first = answers["unknown"]
        assert json_error(first[0], first[2]) == (403, "InvalidSignatureException",
                                                  BAD_SIGNATURE), (path, first)
        assert first[1] == "InvalidSignatureException"
        for label, answer in answers.items():
            assert answer == first, f"{path}: {label} answered {answer}, unknown {first}"

    # The S3 façade, in its own dialect, likewise.
    s3_answers = {}
    for label, key in keys.items():
        with pytest.raises(ClientError) as e:
            client(cairn, key, "s3").list_buckets()
        err = e.value.response["Error"]
        s3_answers[label] = (e.value.response["ResponseMetadata"]["HTTPStatusCode"],
                             err["Code"], err["Message"])
    assert set(s3_answers.values()) == {(403, "SignatureDoesNotMatch", BAD_SIGNATURE)}, \
        s3_answers


# ============================================================================================
# 3. Accounts are isolated
# ============================================================================================

@pytest.fixture(scope="module")
def a_side(cairn, bucket):
    """The management account's things: a logging trail with event selectors and tags, a
    channel, an ingested marker event, a user with a key, and an object in its bucket."""
    trail = new_trail(cairn, bucket, keep=True)
    ct = client(cairn)
    ct.put_event_selectors(TrailName=trail, EventSelectors=[
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
    ct.add_tags(ResourceId=trail_arn(trail), TagsList=[{"Key": "team", "Value": "a"}])
    channel = new_channel(cairn)
    marker = unique("MarkerA")
    assert cairn.ingest([native_record(marker)])["stored"] == 1
    user = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    key = "AWSLogs/secret-of-a.json"
    path = cairn.server.data_dir / "buckets" / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"Records": []}')
    return {"trail": trail, "arn": trail_arn(trail), "channel": channel, "marker": marker,
            "user": user, "bucket": bucket, "object": key}


def trail_state(cairn, trail: str) -> dict:
    ct = client(cairn)
    state = {
        "trail": ct.get_trail(Name=trail)["Trail"],
        "status": ct.get_trail_status(Name=trail)["IsLogging"],
        "selectors": ct.get_event_selectors(TrailName=trail)["EventSelectors"],
        "tags": ct.list_tags(ResourceIdList=[trail_arn(trail)])["ResourceTagList"],
    }
    return state


def test_account_b_cannot_touch_account_a_trails(cairn, account_b, a_side):
    before = trail_state(cairn, a_side["trail"])
    arn = a_side["arn"]
    b = account_b.key
    not_found = [
        ("GetTrail", {"Name": arn}),
        ("GetTrailStatus", {"Name": arn}),
        ("StopLogging", {"Name": arn}),
        ("StartLogging", {"Name": arn}),
        ("DeleteTrail", {"Name": arn}),
        ("UpdateTrail", {"Name": arn, "S3BucketName": a_side["bucket"]}),
        ("PutEventSelectors", {"TrailName": arn, "EventSelectors": [
            {"ReadWriteType": "All", "IncludeManagementEvents": False}]}),
        ("GetEventSelectors", {"TrailName": arn}),
        ("PutInsightSelectors", {"TrailName": arn, "InsightSelectors": []}),
    ]
    for op, body in not_found:
        status, out = ct_call(cairn, op, body, b)
        assert (status, out["__type"]) == (404, "TrailNotFoundException"), (op, out)
        assert out["message"] == f"Unknown trail: {arn} for the user: {account_b.account_id}"
    for op, body in (("AddTags", {"ResourceId": arn, "TagsList": [{"Key": "k", "Value": "b"}]}),
                     ("RemoveTags", {"ResourceId": arn, "TagsList": [{"Key": "team"}]}),
                     ("ListTags", {"ResourceIdList": [arn]})):
        status, out = ct_call(cairn, op, body, b)
        assert (status, out["__type"], out["message"]) == (
            400, "ResourceNotFoundException", f"Resource {arn} not found"), (op, out)
    # The bare name means B's own (absent) trail.
    status, out = ct_call(cairn, "StopLogging", {"Name": a_side["trail"]}, b)
    assert (status, out["__type"]) == (404, "TrailNotFoundException")
    # Listings show nothing of A.
    assert ct_call(cairn, "ListTrails", {}, b) == (200, {"Trails": []})
    assert ct_call(cairn, "DescribeTrails", {}, b) == (200, {"trailList": []})
    assert ct_call(cairn, "DescribeTrails", {"trailNameList": [arn]}, b) == (
        200, {"trailList": []})
    # A trail of B's own into A's bucket is refused; into B's bucket it is B's.
    status, out = ct_call(cairn, "CreateTrail", {"Name": a_side["trail"],
                                                 "S3BucketName": a_side["bucket"]}, b)
    assert (status, out["__type"]) == (400, "InsufficientS3BucketPolicyException"), out
    b_bucket = "access-b-" + uuid.uuid4().hex[:8]
    client(cairn, b, "s3").create_bucket(Bucket=b_bucket)
    status, out = ct_call(cairn, "CreateTrail", {"Name": a_side["trail"],
                                                 "S3BucketName": b_bucket}, b)
    assert status == 200 and out["TrailARN"] == trail_arn(a_side["trail"],
                                                           account_b.account_id), out
    assert ct_call(cairn, "DeleteTrail", {"Name": a_side["trail"]}, b)[0] == 200

    assert trail_state(cairn, a_side["trail"]) == before


def test_account_b_cannot_touch_account_a_channels(cairn, account_b, a_side):
    b = account_b.key
    channel = a_side["channel"]
    for op in ("GetChannel", "DeleteChannel"):
        status, out = ct_call(cairn, op, {"Channel": channel}, b)
        assert (status, out["__type"], out["message"]) == (
            404, "ChannelNotFoundException",
            f"Channel {channel} not found for account {account_b.account_id}"), (op, out)
    status, out = ct_call(cairn, "ListChannels", {}, b)
    assert status == 200 and ACCOUNT_ID not in json.dumps(out), out
    marker = unique("IntoA")
    message, status = fails("ChannelNotFound", client(cairn, b, "cloudtrail-data").put_audit_events,
                            channelArn=channel, auditEvents=[audit_event(marker)])
    assert (status, message) == (404, f"Channel {channel} not found for account "
                                      f"{account_b.account_id}")
    assert client(cairn).get_channel(Channel=channel)["ChannelArn"] == channel
    assert lookup(cairn, EventName=marker) == []
    # B's own ingest stays in B.
    mine = unique("MarkerB")
    assert cairn.ingest([native_record(mine)], access_key=b.access_key,
                        secret_key=b.secret_key)["stored"] == 1
    assert lookup(cairn, EventName=mine) == []
    assert [r["eventName"] for r in lookup(cairn, b, EventName=mine)] == [mine]


def test_account_b_sees_no_events_of_account_a(cairn, account_b, a_side):
    b = account_b.key
    assert len(lookup(cairn, EventName=a_side["marker"])) == 1
    assert lookup(cairn, b, EventName=a_side["marker"]) == []
    assert lookup(cairn, b, AccessKeyId=ACCESS_KEY_ID) == []
    assert lookup(cairn, b, Username=a_side["user"].name) == []
    everything = wait_for(lambda: lookup(cairn, b))
    assert everything, "B's own calls are on B's record"
    for r in everything:
        assert r["recipientAccountId"] == account_b.account_id, r
        assert r["eventName"] != a_side["marker"]
        assert r["userIdentity"].get("accountId") in (None, account_b.account_id), r


def test_account_b_cannot_touch_account_a_identities(cairn, account_b, a_side):
    b = account_b.key
    victim = a_side["user"]
    for op, body in (
            ("GetUser", {"UserName": victim.name}),
            ("DeleteUser", {"UserName": victim.name}),
            ("ListAccessKeys", {"UserName": victim.name}),
            ("CreateAccessKey", {"UserName": victim.name}),
            ("UpdateAccessKey", {"UserName": victim.name, "Status": "Inactive",
                                 "AccessKeyId": victim.key.access_key}),
            ("UpdateAccessKey", {"Status": "Inactive", "AccessKeyId": victim.key.access_key}),
            ("DeleteAccessKey", {"AccessKeyId": victim.key.access_key}),
            ("AttachUserPolicy", {"UserName": victim.name, "PolicyArn": "AdministratorAccess"}),
            ("PutUserPolicy", {"UserName": victim.name, "PolicyName": "p",
                               "PolicyDocument": policy_doc(
                                   {"Effect": "Deny", "Action": "*", "Resource": "*"})}),
            ("CreateLoginProfile", {"UserName": victim.name, "Password": "Takeover-123456"}),
            ("ListAttachedUserPolicies", {"UserName": victim.name})):
        status, out = iam(cairn, op, body, b)
        assert (status, out["__type"]) == (404, "NoSuchEntityException"), (op, out)
    SECRETS.append("Takeover-123456")
    users = admin_cli(cairn, "list-users", key=b)["Users"]
    assert [(u["UserName"], u["Arn"]) for u in users] == [("admin", account_b.arn)]
    for op in ("CreateAccount", "ListAccounts"):
        message = iam_fails(cairn, 403, "AccessDeniedException", op, {}, key=b)
        assert message == (f"Only the management account can call {op}; account "
                           f"{account_b.account_id} is not it.")
    proc = admin_cli(cairn, "list-accounts", key=b, check=False)
    assert proc.returncode != 0 and "AccessDeniedException" in proc.stderr
    # The same user name in B is another user.
    twin = iam_ok(cairn, "CreateUser", {"UserName": victim.name}, key=b)["User"]
    assert twin["Arn"] == f"arn:aws:iam::{account_b.account_id}:user/{victim.name}"
    iam_ok(cairn, "DeleteUser", {"UserName": victim.name}, key=b)
    # A's user is as it was.
    assert iam_ok(cairn, "GetUser", {"UserName": victim.name})["User"]["Arn"] == victim.arn
    keys = iam_ok(cairn, "ListAccessKeys", {"UserName": victim.name})["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(victim.key.access_key,
                                                                "Active")]
    assert iam_ok(cairn, "ListUserPolicies", {"UserName": victim.name})["PolicyNames"] == []
    iam_fails(cairn, 404, "NoSuchEntityException", "GetLoginProfile", {"UserName": victim.name})
    assert ct_call(cairn, "ListTrails", {}, victim.key)[0] == 200
    accounts = admin_cli(cairn, "list-accounts")["Accounts"]
    assert sorted((a["Id"], a["Management"]) for a in accounts) == sorted(
        [(ACCOUNT_ID, True), (account_b.account_id, False)])
    # Account ids are unique and well formed.
    iam_fails(cairn, 409, "EntityAlreadyExistsException", "CreateAccount",
              {"AccountId": account_b.account_id})
    iam_fails(cairn, 400, "InvalidInputException", "CreateAccount", {"AccountId": "12345"})
    assert len(admin_cli(cairn, "list-accounts")["Accounts"]) == 2


def test_account_b_cannot_read_account_a_buckets(cairn, account_b, a_side):
    s3a, s3b = client(cairn, service="s3"), client(cairn, account_b.key, "s3")
    bucket, key = a_side["bucket"], a_side["object"]
    assert s3a.get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"Records": []}'
    assert bucket in [x["Name"] for x in s3a.list_buckets()["Buckets"]]
    assert bucket not in [x["Name"] for x in s3b.list_buckets()["Buckets"]]
    expected = "Access Denied: bucket %s belongs to another account." % bucket
    for call in (lambda: s3b.list_objects_v2(Bucket=bucket),
                 lambda: s3b.list_objects(Bucket=bucket),
                 lambda: s3b.get_object(Bucket=bucket, Key=key),
                 lambda: s3b.get_bucket_location(Bucket=bucket)):
        assert fails("AccessDenied", call) == (expected, 403)
    with pytest.raises(ClientError) as e:
        s3b.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    message, status = fails("BucketAlreadyExists", s3b.create_bucket, Bucket=bucket)
    assert status == 409


def test_each_call_is_recorded_in_its_callers_account(cairn, account_b, a_side):
    b = account_b.key
    status, _ = ct_call(cairn, "GetTrail", {"Name": a_side["arn"]}, b)
    assert status == 404

    def b_get_trail():
        return [r for r in lookup(cairn, b, AccessKeyId=b.access_key)
                if r["eventName"] == "GetTrail"
                and r["requestParameters"] == {"name": a_side["arn"]}]
    found = wait_for(b_get_trail)
    assert found, "B's GetTrail is on B's record"
    r = found[0]
    assert r["errorCode"] == "TrailNotFoundException"
    assert r["recipientAccountId"] == account_b.account_id
    assert r["userIdentity"]["accountId"] == account_b.account_id
    assert r["userIdentity"]["arn"] == account_b.arn
    assert lookup(cairn, AccessKeyId=b.access_key) == []
    for rec in lookup(cairn):
        assert rec["recipientAccountId"] == ACCOUNT_ID, rec
        assert rec.get("userIdentity", {}).get("accountId") in (None, ACCOUNT_ID), rec
    # The account was made in A's record, as an Organizations call, without its secret.
    made = [r for r in lookup(cairn, EventName="CreateAccount")
            if (r["responseElements"] or {}).get("account", {}).get("id")
            == account_b.account_id]
    assert len(made) == 1
    assert made[0]["eventSource"] == "organizations.amazonaws.com"
    assert made[0]["responseElements"]["accessKey"]["accessKeyId"] == b.access_key
    assert b.secret_key not in json.dumps(made[0])


# ============================================================================================
# 4. Cairn records its own API calls
# ============================================================================================

def test_stop_logging_is_on_record_at_once(cairn, bucket):
    trail = new_trail(cairn, bucket)
    client(cairn).stop_logging(Name=trail)
    found = [r for r in lookup(cairn, EventName="StopLogging")
             if r["requestParameters"] == {"name": trail}]
    assert len(found) == 1, found
    r = found[0]
    ident = r["userIdentity"]
    assert ident["type"] == "IAMUser"
    assert re.fullmatch(r"AIDA[A-Z0-9]{17}", ident["principalId"]), ident
    assert (ident["arn"], ident["accountId"], ident["accessKeyId"], ident["userName"]) == (
        ADMIN_ARN, ACCOUNT_ID, ACCESS_KEY_ID, "admin")
    assert "sessionContext" not in ident
    assert r["eventSource"] == "cloudtrail.amazonaws.com"
    assert r["eventName"] == "StopLogging"
    assert r["awsRegion"] == REGION
    assert r["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in r["userAgent"] or "botocore" in r["userAgent"], r["userAgent"]
    assert r["readOnly"] is False
    assert r["eventType"] == "AwsApiCall"
    assert r["eventCategory"] == "Management" and r["managementEvent"] is True
    assert r["recipientAccountId"] == ACCOUNT_ID
    assert r["responseElements"] is None
    assert "errorCode" not in r and "errorMessage" not in r
    assert "tlsDetails" not in r
    assert re.fullmatch(r"[0-9a-f-]{36}", r["requestID"]) and r["eventID"]
    # LookupEvents' own summary agrees.
    summary = client(cairn).lookup_events(LookupAttributes=[
        {"AttributeKey": "EventId", "AttributeValue": r["eventID"]}])["Events"]
    assert [(e["EventName"], e["ReadOnly"], e["Username"], e["AccessKeyId"]) for e in summary] \
        == [("StopLogging", "false", "admin", ACCESS_KEY_ID)]


def test_refused_calls_are_recorded(cairn, bucket):
    trail = new_trail(cairn, bucket)
    ro = make_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    fails("AccessDeniedException", client(cairn, ro.key).stop_logging, Name=trail)
    found = [r for r in lookup(cairn, AccessKeyId=ro.key.access_key)
             if r["eventName"] == "StopLogging"]
    assert len(found) == 1, found
    r = found[0]
    assert r["errorCode"] == "AccessDeniedException"
    assert r["errorMessage"] == denial(ro.arn, "cloudtrail:StopLogging", trail_arn(trail))
    assert r["userIdentity"]["arn"] == ro.arn and r["userIdentity"]["userName"] == ro.name
    assert r["requestParameters"] == {"name": trail}
    assert r["responseElements"] is None and r["readOnly"] is False
    # An identity call refused, likewise, from iam.amazonaws.com.
    iam_fails(cairn, 403, "AccessDeniedException", "DeleteUser", {"UserName": "admin"},
              key=ro.key)
    found = [r for r in lookup(cairn, AccessKeyId=ro.key.access_key)
             if r["eventName"] == "DeleteUser"]
    assert len(found) == 1
    assert found[0]["eventSource"] == "iam.amazonaws.com"
    assert found[0]["errorCode"] == "AccessDeniedException"
    assert found[0]["requestParameters"] == {"userName": "admin"}


def test_identity_calls_keep_no_secrets_on_record(cairn):
    user = make_user(cairn, key=False)
    made = iam_ok(cairn, "CreateAccessKey", {"UserName": user.name})["AccessKey"]
    SECRETS.append(made["SecretAccessKey"])
    password = "Pw-" + uuid.uuid4().hex
    SECRETS.append(password)
    iam_ok(cairn, "CreateLoginProfile", {"UserName": user.name, "Password": password})
    new_password = "Pw2-" + uuid.uuid4().hex
    SECRETS.append(new_password)
    iam_ok(cairn, "UpdateLoginProfile", {"UserName": user.name, "Password": new_password})
    short = "Sh0rt" + uuid.uuid4().hex[:2]
    SECRETS.append(short)
    iam_fails(cairn, 400, "PasswordPolicyViolationException", "UpdateLoginProfile",
              {"UserName": user.name, "Password": short})

    created = [r for r in lookup(cairn, EventName="CreateAccessKey")
               if r["requestParameters"] == {"userName": user.name}]
    assert len(created) == 1
    r = created[0]
    assert r["eventSource"] == "iam.amazonaws.com" and r["readOnly"] is False
    assert r["responseElements"] == {"accessKey": {
        "accessKeyId": made["AccessKeyId"], "createDate": made["CreateDate"],
        "status": "Active", "userName": user.name}}
    profile = [r for r in lookup(cairn, EventName="CreateLoginProfile")
               if r["requestParameters"] == {"userName": user.name}]
    assert len(profile) == 1, "CreateLoginProfile is recorded, without the password"
    assert profile[0]["responseElements"]["loginProfile"]["userName"] == user.name
    refused = [r for r in lookup(cairn, EventName="UpdateLoginProfile")
               if r["requestParameters"] == {"userName": user.name}]
    assert sorted(r.get("errorCode", "") for r in refused) == [
        "", "PasswordPolicyViolationException"]

    # No stored record holds any secret or password this module has seen.
    everything = lookup(cairn)
    text = "\n".join(json.dumps(r) for r in everything)
    for secret in SECRETS:
        assert secret not in text, f"a secret ({secret[:4]}...) is in the event history"
    for r in everything:
        names = {k.lower() for k, _ in walk(r)}
        assert not names & {"secretaccesskey", "password", "newpassword"}, r


def test_read_calls_are_recorded_as_read_only(cairn):
    marker = unique("NeverHappened")
    assert client(cairn).lookup_events(LookupAttributes=[
        {"AttributeKey": "EventName", "AttributeValue": marker}])["Events"] == []

    def mine():
        return [r for r in lookup(cairn, EventName="LookupEvents")
                if marker in json.dumps(r["requestParameters"])]
    found = wait_for(mine)
    assert len(found) == 1, "LookupEvents is recorded within 5 s"
    r = found[0]
    assert r["readOnly"] is True and r["responseElements"] is None
    assert r["requestParameters"]["lookupAttributes"] == [
        {"attributeKey": "EventName", "attributeValue": marker}]
    assert r["eventSource"] == "cloudtrail.amazonaws.com"
    # Identity reads too.
    name = unique("reader")
    iam_fails(cairn, 404, "NoSuchEntityException", "GetUser", {"UserName": name})
    got = wait_for(lambda: [r for r in lookup(cairn, EventName="GetUser")
                            if r["requestParameters"] == {"userName": name}])
    assert len(got) == 1 and got[0]["readOnly"] is True
    assert got[0]["errorCode"] == "NoSuchEntityException"


def test_ingest_and_s3_calls_are_recorded(cairn, bucket):
    channel = new_channel(cairn)
    writer = make_user(cairn, "CairnAuditWriter")
    name = unique("Recorded")
    client(cairn, writer.key, "cloudtrail-data").put_audit_events(
        channelArn=channel, auditEvents=[audit_event(name)])
    cairn.ingest([native_record(name + "-native")], access_key=writer.key.access_key,
                 secret_key=writer.key.secret_key)

    def calls():
        recs = lookup(cairn, AccessKeyId=writer.key.access_key)
        return recs if len(recs) >= 2 else []
    recs = wait_for(calls)
    assert sorted(r["eventName"] for r in recs) == ["PutAuditEvents", "PutEvents"]
    for r in recs:
        assert r["eventSource"] == "cloudtrail-data.amazonaws.com"
        assert r["userIdentity"]["arn"] == writer.arn
        assert r["readOnly"] is False and "errorCode" not in r
    put = [r for r in recs if r["eventName"] == "PutAuditEvents"][0]
    assert put["requestParameters"]["channelArn"] == channel
    assert put["additionalEventData"] == {"successfulCount": 1, "failedCount": 0}
    native = [r for r in recs if r["eventName"] == "PutEvents"][0]
    assert native["additionalEventData"]["stored"] == 1

    s3 = client(cairn, service="s3")
    key = f"AWSLogs/recorded-{uuid.uuid4().hex[:6]}.json"
    path = cairn.server.data_dir / "buckets" / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    s3.get_object(Bucket=bucket, Key=key)

    def get_object():
        return [r for r in lookup(cairn, EventName="GetObject")
                if r["requestParameters"].get("key") == key]
    got = wait_for(get_object)
    assert len(got) == 1
    r = got[0]
    assert r["eventSource"] == "s3.amazonaws.com"
    assert r["eventCategory"] == "Data" and r["managementEvent"] is False
    assert r["requestParameters"]["bucketName"] == bucket
    assert r["userIdentity"]["arn"] == ADMIN_ARN


# ============================================================================================
# 5. Console sign-in
# ============================================================================================

@dataclasses.dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    cookies: list[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def cookie(self, name: str) -> tuple[str, set[str]] | None:
        """The value and attributes a Set-Cookie gives `name`."""
        for c in self.cookies:
            first, *attrs = [p.strip() for p in c.split(";")]
            k, _, v = first.partition("=")
            if k == name:
                return v, set(attrs)
        return None


class Browser:
    """A browser for the console: keeps cookies as Set-Cookie gives them."""

    def __init__(self, cairn):
        self.cairn = cairn
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.cairn.server.port, timeout=30)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        set_cookies = r.msg.get_all("Set-Cookie") or []
        resp = Response(r.status, r.msg, set_cookies, data)
        for c in set_cookies:
            k, _, v = c.split(";")[0].strip().partition("=")
            if v == "" or "max-age=0" in c.lower().replace(" ", ""):
                self.cookies.pop(k, None)
            else:
                self.cookies[k] = v
        return resp

    def form(self) -> str:
        page = self.request("GET", "/signin")
        assert page.status == 200
        m = re.search(r'<input type="hidden" name="csrf" value="([^"]+)">', page.text)
        assert m, page.text
        return m.group(1)

    def post_form(self, path: str, fields: dict) -> Response:
        return self.request("POST", path, urllib.parse.urlencode(fields),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def sign_in(self, user: str, password: str, account: str = "") -> Response:
        csrf = self.form()
        return self.post_form("/signin", {"csrf": csrf, "account": account, "username": user,
                                          "password": password})

    def session(self) -> Response:
        return self.request("GET", "/v1/session")

    def api(self, op: str, body: dict, csrf: str | None = None,
            prefix: str = TARGET_PREFIX) -> Response:
        headers = {"X-Amz-Target": prefix + op, "Content-Type": JSON11}
        if csrf is not None:
            headers["X-Cairn-CSRF"] = csrf
        return self.request("POST", "/", json.dumps(body), headers)


def console_user(cairn, *policies: str) -> tuple[User, str]:
    """A user with a console password set by `cairn admin set-password --password-stdin`."""
    user = make_user(cairn, *policies, key=False)
    password = "Console-" + uuid.uuid4().hex
    SECRETS.append(password)
    out = admin_cli(cairn, "set-password", user.name, "--password-stdin", stdin=password + "\n")
    assert password not in json.dumps(out)
    assert "Password" not in out
    return user, password


def logins(cairn, user_name: str) -> list[dict]:
    return [r for r in lookup(cairn, EventName="ConsoleLogin")
            if r["userIdentity"].get("userName") == user_name]


def test_console_sign_in(cairn):
    user, password = console_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    browser = Browser(cairn)
    page = browser.request("GET", "/signin")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<form method="post" action="/signin">' in page.text
    csrf_cookie = page.cookie("cairn_signin_csrf")
    assert csrf_cookie is not None
    value, attrs = csrf_cookie
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert {"Path=/signin", "HttpOnly", "SameSite=Strict"} <= attrs and "Secure" not in attrs
    assert f'name="csrf" value="{value}"' in page.text

    resp = browser.post_form("/signin", {"csrf": value, "account": "", "username": user.name,
                                         "password": password})
    assert resp.status == 303 and resp.headers["Location"] == "/"
    session = resp.cookie("cairn_session")
    assert session is not None, resp.cookies
    token, attrs = session
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert attrs == {"Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"}
    assert token not in resp.text

    info = browser.session()
    assert info.status == 200
    got = info.json()
    assert (got["AccountId"], got["UserName"], got["Arn"]) == (ACCOUNT_ID, user.name, user.arn)
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", got["AccessKeyId"]), got
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["SignedInAt"])
    assert len(got["CsrfToken"]) >= 32
    home = browser.request("GET", "/")
    assert home.status == 303 and home.headers["Location"] == "/console/events"
    page = browser.request("GET", "/console/events")
    assert page.status == 200 and user.arn in page.text

    events = logins(cairn, user.name)
    assert len(events) == 1
    r = events[0]
    assert r["eventSource"] == "signin.amazonaws.com"
    assert r["eventType"] == "AwsConsoleSignIn"
    assert r["responseElements"] == {"ConsoleLogin": "Success"}
    assert r["additionalEventData"]["MFAUsed"] == "No"
    assert r["userIdentity"]["arn"] == user.arn
    assert r["recipientAccountId"] == ACCOUNT_ID
    assert "errorMessage" not in r
    assert password not in json.dumps(r)

    # The account may be given explicitly; a generated password (printed once) works too.
    generated = admin_cli(cairn, "set-password", user.name)["Password"]
    SECRETS.append(generated)
    again = Browser(cairn).sign_in(user.name, generated, account=ACCOUNT_ID)
    assert again.status == 303 and again.cookie("cairn_session")


def test_console_sign_in_failures(cairn):
    """Three failed sign-ins (this module's server sees no more)."""
    user, password = console_user(cairn)
    browser = Browser(cairn)
    bad = browser.sign_in(user.name, password + "x")
    assert bad.status == 401
    assert bad.cookie("cairn_session") is None and "cairn_session" not in browser.cookies
    assert "Your account ID, user name or password is wrong." in bad.text
    assert browser.session().status == 401
    failed = logins(cairn, user.name)
    assert len(failed) == 1
    r = failed[0]
    assert r["responseElements"] == {"ConsoleLogin": "Failure"}
    assert r["errorMessage"] == "Failed authentication"
    assert r["userIdentity"]["arn"] == user.arn
    assert r["additionalEventData"]["MFAUsed"] == "No"
    assert password not in json.dumps(r) and password + "x" not in json.dumps(r)

    # An unknown user name is not recorded as typed.
    hidden_before = len(logins(cairn, "HIDDEN_DUE_TO_SECURITY_REASONS"))
    typo = unique("nosuchuser")
    unknown = Browser(cairn).sign_in(typo, password)
    assert unknown.status == 401 and unknown.cookie("cairn_session") is None
    hidden = logins(cairn, "HIDDEN_DUE_TO_SECURITY_REASONS")
    assert len(hidden) == hidden_before + 1
    assert not [r for r in lookup(cairn, EventName="ConsoleLogin") if typo in json.dumps(r)]
    assert hidden[0]["responseElements"] == {"ConsoleLogin": "Failure"}

    # A deleted password no longer signs in.
    admin_cli(cairn, "delete-password", user.name)
    gone = Browser(cairn).sign_in(user.name, password)
    assert gone.status == 401 and gone.cookie("cairn_session") is None


def test_sign_in_form_needs_its_csrf_token(cairn):
    user, password = console_user(cairn)
    fields = {"account": "", "username": user.name, "password": password}
    # No token at all.
    browser = Browser(cairn)
    resp = browser.post_form("/signin", {**fields, "csrf": ""})
    assert resp.status == 403 and resp.cookie("cairn_session") is None
    # A token in the form but not in a cookie (a forged cross-site post).
    token = Browser(cairn).form()
    resp = Browser(cairn).post_form("/signin", {**fields, "csrf": token})
    assert resp.status == 403 and resp.cookie("cairn_session") is None
    # A cookie but another token in the form.
    browser = Browser(cairn)
    browser.form()
    resp = browser.post_form("/signin", {**fields, "csrf": token})
    assert resp.status == 403 and resp.cookie("cairn_session") is None
    assert "cairn_session" not in browser.cookies
    assert browser.session().status == 401
    assert logins(cairn, user.name) == []
    # The right pair works.
    assert browser.sign_in(user.name, password).status == 303


def test_console_api_calls_need_the_csrf_header(cairn, bucket):
    trail = new_trail(cairn, bucket)
    user, password = console_user(cairn, "AWSCloudTrail_FullAccess")
    browser = Browser(cairn)
    assert browser.sign_in(user.name, password).status == 303
    info = browser.session().json()

    for csrf in (None, "0" * len(info["CsrfToken"])):
        resp = browser.api("StopLogging", {"Name": trail}, csrf=csrf)
        assert resp.status == 403
        assert resp.json()["__type"] == "AccessDeniedException"
        assert "X-Cairn-CSRF" in resp.json()["message"]
    assert is_logging(cairn, trail)

    resp = browser.api("StopLogging", {"Name": trail}, csrf=info["CsrfToken"])
    assert resp.status == 200, resp.text
    assert not is_logging(cairn, trail)
    found = [r for r in lookup(cairn, AccessKeyId=info["AccessKeyId"])
             if r["eventName"] == "StopLogging"]
    assert len(found) == 1
    r = found[0]
    assert r["sessionCredentialFromConsole"] == "true"
    ident = r["userIdentity"]
    assert (ident["arn"], ident["userName"], ident["accessKeyId"]) == (
        user.arn, user.name, info["AccessKeyId"])
    assert ident["sessionContext"]["attributes"] == {"creationDate": info["SignedInAt"],
                                                     "mfaAuthenticated": "false"}
    assert r["requestParameters"] == {"name": trail}
    # The user's policies still apply.
    resp = browser.api("CreateUser", {"UserName": unique("x")}, csrf=info["CsrfToken"],
                       prefix=ADMIN_TARGET)
    assert resp.status == 403 and resp.json()["__type"] == "AccessDeniedException"
    assert resp.json()["message"].startswith(f"User: {user.arn} is not authorized to perform: "
                                             f"iam:CreateUser")


def test_sign_out_ends_the_session(cairn):
    user, password = console_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    browser = Browser(cairn)
    assert browser.sign_in(user.name, password).status == 303
    token = browser.cookies["cairn_session"]
    csrf = browser.session().json()["CsrfToken"]
    assert browser.api("ListTrails", {}, csrf=csrf).status == 200

    # Sign-out needs the session's token.
    refused = browser.post_form("/signout", {"csrf": "nope"})
    assert refused.status == 403
    assert browser.session().status == 200

    out = browser.post_form("/signout", {"csrf": csrf})
    assert out.status == 303 and out.headers["Location"] == "/signin"
    cleared = out.cookie("cairn_session")
    assert cleared is not None and cleared[0] == "" and "Max-Age=0" in cleared[1]

    old = Browser(cairn)
    old.cookies["cairn_session"] = token
    assert old.session().status == 401
    resp = old.api("ListTrails", {}, csrf=csrf)
    assert resp.status == 403 and resp.json()["__type"] == "UnrecognizedClientException"
    home = old.request("GET", "/")
    assert home.status == 303 and home.headers["Location"] == "/signin"


def test_home_without_a_session_goes_to_sign_in(cairn):
    resp = Browser(cairn).request("GET", "/")
    assert resp.status == 303 and resp.headers["Location"] == "/signin"
    assert Browser(cairn).session().status == 401
    forged = Browser(cairn)
    forged.cookies["cairn_session"] = "0" * 64
    assert forged.session().status == 401
    assert forged.api("ListTrails", {}, csrf="x").json()["__type"] == \
        "UnrecognizedClientException"


def test_deleting_a_user_ends_its_sessions(cairn):
    user, password = console_user(cairn, "AWSCloudTrail_ReadOnlyAccess")
    browser = Browser(cairn)
    assert browser.sign_in(user.name, password).status == 303
    csrf = browser.session().json()["CsrfToken"]
    admin_cli(cairn, "delete-user", user.name)
    assert browser.session().status == 401
    resp = browser.api("ListTrails", {}, csrf=csrf)
    assert resp.status == 403 and resp.json()["__type"] == "UnrecognizedClientException"


def test_a_new_user_of_the_same_name_does_not_inherit_old_sessions(cairn):
    user, password = console_user(cairn, "AdministratorAccess")
    browser = Browser(cairn)
    assert browser.sign_in(user.name, password).status == 303
    admin_cli(cairn, "delete-user", user.name)
    assert browser.session().status == 401
    # Someone else gets the name.
    admin_cli(cairn, "create-user", user.name, "--policy", "AdministratorAccess")
    resp = browser.session()
    assert resp.status == 401, f"the old session is live again: {resp.text}"


@pytest.fixture
def lonely_cairn(tmp_path):
    """A server of its own, whose sign-in throttling no other test disturbs."""
    data = tmp_path / "data"
    data.mkdir()
    server = CairnServer(data, tmp_path / "server.log")
    server.start()
    try:
        yield Cairn(server, tmp_path)
    finally:
        server.stop()


def test_sign_in_is_throttled_after_five_failures(lonely_cairn):
    c = lonely_cairn
    password = "Throttle-" + uuid.uuid4().hex
    SECRETS.append(password)
    for name in ("victim", "bystander"):
        iam_ok(c, "CreateUser", {"UserName": name})
        iam_ok(c, "CreateLoginProfile", {"UserName": name, "Password": password})
    for _ in range(5):
        assert Browser(c).sign_in("victim", "wrong-password").status == 401
    resp = Browser(c).sign_in("victim", password)
    assert resp.status == 429, resp.text
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 30
    assert resp.cookie("cairn_session") is None
    assert "Too many failed sign-in attempts" in resp.text
    # The same source address is held back for other users too.
    other = Browser(c).sign_in("bystander", password)
    assert other.status == 429 and other.cookie("cairn_session") is None
    # On record.
    recs = lookup(c, EventName="ConsoleLogin")
    throttled = [r for r in recs if r.get("errorMessage") == "Too many failed sign-in attempts"]
    assert {r["userIdentity"]["userName"] for r in throttled} == {"victim", "bystander"}
    assert len([r for r in recs if r.get("errorMessage") == "Failed authentication"]) == 5
    assert not [r for r in recs if r["responseElements"] == {"ConsoleLogin": "Success"}]


# ============================================================================================
# 6. The data directory lets nobody in
# ============================================================================================

def test_the_data_directory_holds_no_secrets(cairn):
    user, password = console_user(cairn, "AdministratorAccess")
    made = iam_ok(cairn, "CreateAccessKey", {"UserName": user.name})["AccessKey"]
    SECRETS.append(made["SecretAccessKey"])
    # A sign-in, so that the password has been through every path that sees it.
    assert Browser(cairn).sign_in(user.name, password).status == 303

    data_dir = cairn.server.data_dir
    identity = data_dir / "identity" / "iam.json"
    assert identity.is_file()
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert stat.S_IMODE(identity.parent.stat().st_mode) == 0o700
    text = identity.read_text()
    # The identity file names the keys (so the scan below reads what matters) ...
    assert made["AccessKeyId"] in text and ACCESS_KEY_ID in text and user.name in text
    assert "$argon2id$" in text
    # ... and the master key is elsewhere.
    master = data_dir.parent / f"{data_dir.name}.master.key"
    assert master.is_file()
    master_bytes = master.read_bytes().strip()
    assert len(master_bytes) >= 32

    secrets = [s.encode() for s in set(SECRETS)]
    assert len(secrets) >= 3
    scanned = 0
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        blobs = [blob]
        if path.suffix == ".gz":
            try:
                blobs.append(gzip.decompress(blob))
            except OSError:
                pass
        for b in blobs:
            for s in secrets:
                assert s not in b, f"{path} holds a secret ({s[:4].decode()}...)"
            assert master_bytes not in b, f"{path} holds the master key"
        scanned += 1
    assert scanned >= 3
