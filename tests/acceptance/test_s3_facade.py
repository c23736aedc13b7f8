"""The read-only S3 façade: folder buckets served over the S3 REST API on Cairn's listener,
driven with the stock AWS CLI (`aws s3`, `aws s3api`, `aws cloudtrail validate-logs`) and
boto3, path style, SigV4 for service `s3` with Cairn's access keys.

Also: the `moto` fixture (an S3-compatible service for trail delivery tests) and Cairn
configured with an S3 endpoint, whose façade then points tools at that service."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import http.server
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import CairnServer

BUCKET = "facade-trail"
REGION = "us-east-1"
SIGNATURE = "ab" * 256


def bucket_root(cairn) -> Path:
    return cairn.server.data_dir / "buckets"


def place(cairn, bucket: str, key: str, data: bytes, metadata: dict | None = None) -> None:
    """Puts an object into a folder bucket the way trail delivery does: the file, and its user
    metadata in the sidecar tree `buckets/.meta/<bucket>/<key>`."""
    path = bucket_root(cairn) / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if metadata is not None:
        meta = bucket_root(cairn) / ".meta" / bucket / key
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(metadata))


def digest_key(account: str, end: dt.datetime, trail: str = "facade") -> str:
    return (f"AWSLogs/{account}/CloudTrail-Digest/{REGION}/{end:%Y/%m/%d}/{account}_"
            f"CloudTrail-Digest_{REGION}_{trail}_{REGION}_{end:%Y%m%dT%H%M%SZ}.json.gz")


def log_key(account: str, end: dt.datetime, tag: str) -> str:
    return (f"AWSLogs/{account}/CloudTrail/{REGION}/{end:%Y/%m/%d}/{account}_CloudTrail_"
            f"{REGION}_{end:%Y%m%dT%H%MZ}_{tag}.json.gz")


def s3(cairn, **kwargs):
    return cairn.client("s3", **kwargs)


def cli(cairn, *args: str) -> subprocess.CompletedProcess:
    """The AWS CLI against Cairn, returning the finished process (S3 commands print text)."""
    return cairn.aws(*args, check=False)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def trail_keys(cairn) -> list[str]:
    """`aws s3 mb` makes the bucket; then a digest (with signature metadata), six log files
    and a key with a space and a plus are placed in its folder. Returns the keys, sorted."""
    proc = cli(cairn, "s3", "mb", f"s3://{BUCKET}")
    assert proc.returncode == 0, proc.stderr
    assert f"make_bucket: {BUCKET}" in proc.stdout
    acct = cairn.account_id
    day = dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone.utc)
    keys = []
    key = digest_key(acct, day)
    place(cairn, BUCKET, key, gzip.compress(b'{"digest": true}'),
          {"signature": SIGNATURE, "signature-algorithm": "SHA256withRSA"})
    keys.append(key)
    for minute in range(0, 60, 10):
        key = log_key(acct, day.replace(hour=0, minute=minute), f"f{minute}")
        place(cairn, BUCKET, key, gzip.compress(b'{"Records": []}' + b" " * minute))
        keys.append(key)
    key = "odd/a b+c.txt"
    place(cairn, BUCKET, key, b"0123456789")
    keys.append(key)
    return sorted(keys)


# --------------------------------------------------------------------------------------------
# Buckets
# --------------------------------------------------------------------------------------------

def test_mb_ls_and_create_bucket_errors(cairn, trail_keys):
    proc = cli(cairn, "s3", "ls")
    assert proc.returncode == 0, proc.stderr
    assert BUCKET in proc.stdout.split()
    assert (bucket_root(cairn) / BUCKET).is_dir()

    again = cli(cairn, "s3", "mb", f"s3://{BUCKET}")
    assert again.returncode != 0
    assert "BucketAlreadyOwnedByYou" in again.stderr

    bad = cli(cairn, "s3", "mb", "s3://Not_A_Bucket")
    assert bad.returncode != 0
    assert "InvalidBucketName" in bad.stderr

    listed = s3(cairn).list_buckets()
    assert BUCKET in [b["Name"] for b in listed["Buckets"]]
    assert listed["Owner"]["ID"] == cairn.account_id


def test_get_bucket_location_and_head_bucket(cairn, trail_keys):
    client = s3(cairn)
    assert client.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] is None
    head = client.head_bucket(Bucket=BUCKET)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION
    with pytest.raises(ClientError) as e:
        client.head_bucket(Bucket="no-such-facade-bucket")
    assert error_code(e) == "404"
    with pytest.raises(ClientError) as e:
        client.get_bucket_location(Bucket="no-such-facade-bucket")
    assert error_code(e) == "NoSuchBucket"


# --------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------

def test_aws_s3_ls(cairn, trail_keys):
    top = cli(cairn, "s3", "ls", f"s3://{BUCKET}/")
    assert top.returncode == 0, top.stderr
    assert "PRE AWSLogs/" in top.stdout and "PRE odd/" in top.stdout

    deep = cli(cairn, "s3", "ls", f"s3://{BUCKET}/odd/")
    assert deep.returncode == 0, deep.stderr
    assert deep.stdout.strip().split(None, 3)[2:] == ["10", "a b+c.txt"]

    recursive = cli(cairn, "s3", "ls", "--recursive", f"s3://{BUCKET}")
    assert recursive.returncode == 0, recursive.stderr
    lines = recursive.stdout.splitlines()
    assert len(lines) == len(trail_keys)
    assert [line.split(None, 3)[3] for line in lines] == trail_keys


def test_list_objects_v1_pages_with_marker(cairn, trail_keys):
    got: list[str] = []
    marker = None
    for _ in range(10):
        args = ["s3api", "list-objects", "--bucket", BUCKET, "--max-keys", "3",
                "--no-paginate"]
        if marker:
            args += ["--marker", marker]
        page = cairn.aws(*args)
        keys = [o["Key"] for o in page.get("Contents", [])]
        assert len(keys) <= 3
        assert page["MaxKeys"] == 3
        assert "NextMarker" not in page, "S3 sends NextMarker only with a delimiter"
        got += keys
        if not page["IsTruncated"]:
            break
        marker = keys[-1]
    assert got == trail_keys

    # The CLI's own pagination (botocore's paginator: NextMarker || Contents[-1].Key).
    whole = cairn.aws("s3api", "list-objects", "--bucket", BUCKET, "--page-size", "2")
    assert [o["Key"] for o in whole["Contents"]] == trail_keys
    assert all(o["Size"] > 0 and o["ETag"].startswith('"') for o in whole["Contents"])
    assert all(o["Owner"]["ID"] == cairn.account_id for o in whole["Contents"])

    # Prefix and marker, as `validate-logs` asks for digests.
    prefix = f"AWSLogs/{cairn.account_id}/CloudTrail/{REGION}"
    after = cairn.aws("s3api", "list-objects", "--bucket", BUCKET, "--prefix", prefix,
                      "--marker", trail_keys[2])
    assert [o["Key"] for o in after["Contents"]] == [k for k in trail_keys[3:]
                                                     if k.startswith(prefix)]

    # With a delimiter: common prefixes, and NextMarker when truncated.
    page = cairn.aws("s3api", "list-objects", "--bucket", BUCKET, "--delimiter", "/",
                     "--max-keys", "1", "--no-paginate")
    assert page["IsTruncated"] is True
    assert page["CommonPrefixes"] == [{"Prefix": "AWSLogs/"}]
    assert page["NextMarker"] == "AWSLogs/"
    page = cairn.aws("s3api", "list-objects", "--bucket", BUCKET, "--delimiter", "/",
                     "--marker", "AWSLogs/", "--no-paginate")
    assert page["CommonPrefixes"] == [{"Prefix": "odd/"}]
    assert page["IsTruncated"] is False


def test_list_objects_v2_continuation_and_delimiter(cairn, trail_keys):
    got: list[str] = []
    token = None
    for _ in range(10):
        args = ["s3api", "list-objects-v2", "--bucket", BUCKET, "--max-keys", "3",
                "--no-paginate"]
        if token:
            args += ["--continuation-token", token]
        page = cairn.aws(*args)
        keys = [o["Key"] for o in page.get("Contents", [])]
        assert page["KeyCount"] == len(keys) <= 3
        got += keys
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
    assert got == trail_keys

    whole = cairn.aws("s3api", "list-objects-v2", "--bucket", BUCKET, "--page-size", "2")
    assert [o["Key"] for o in whole["Contents"]] == trail_keys

    # (--no-paginate: the CLI's merged pages keep only Prefix of the non-list members.)
    after = cairn.aws("s3api", "list-objects-v2", "--bucket", BUCKET,
                      "--start-after", trail_keys[-2], "--no-paginate")
    assert [o["Key"] for o in after["Contents"]] == trail_keys[-1:]
    assert after["StartAfter"] == trail_keys[-2]

    dirs = cairn.aws("s3api", "list-objects-v2", "--bucket", BUCKET, "--delimiter", "/",
                     "--prefix", f"AWSLogs/{cairn.account_id}/")
    assert [p["Prefix"] for p in dirs["CommonPrefixes"]] == [
        f"AWSLogs/{cairn.account_id}/CloudTrail-Digest/",
        f"AWSLogs/{cairn.account_id}/CloudTrail/",
    ]
    assert "Contents" not in dirs

    empty = cairn.aws("s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "nothing/",
                      "--no-paginate")
    assert empty.get("KeyCount") == 0 and "Contents" not in empty


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

def test_get_object_returns_user_metadata(cairn, trail_keys, tmp_path):
    key = trail_keys[0]
    assert "CloudTrail-Digest" in key
    out = tmp_path / "digest.json.gz"
    answer = cairn.aws("s3api", "get-object", "--bucket", BUCKET, "--key", key, str(out))
    assert answer["Metadata"] == {"signature": SIGNATURE, "signature-algorithm": "SHA256withRSA"}
    assert gzip.decompress(out.read_bytes()) == b'{"digest": true}'
    assert answer["ContentLength"] == out.stat().st_size

    body = s3(cairn).get_object(Bucket=BUCKET, Key="odd/a b+c.txt")
    assert body["Body"].read() == b"0123456789"
    assert body["Metadata"] == {}

    ranged = s3(cairn).get_object(Bucket=BUCKET, Key="odd/a b+c.txt", Range="bytes=3-5")
    assert ranged["Body"].read() == b"345"
    assert ranged["ContentRange"] == "bytes 3-5/10"

    proc = cli(cairn, "s3", "cp", f"s3://{BUCKET}/odd/a b+c.txt", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0123456789"


def test_head_object(cairn, trail_keys):
    head = cairn.aws("s3api", "head-object", "--bucket", BUCKET, "--key", trail_keys[0])
    assert head["Metadata"]["signature"] == SIGNATURE
    size = (bucket_root(cairn) / BUCKET / trail_keys[0]).stat().st_size
    assert head["ContentLength"] == size
    listed = s3(cairn).list_objects_v2(Bucket=BUCKET, Prefix=trail_keys[0])["Contents"][0]
    assert listed["ETag"] == head["ETag"]
    with pytest.raises(ClientError) as e:
        s3(cairn).head_object(Bucket=BUCKET, Key="missing")
    assert error_code(e) == "404"


def test_missing_keys_and_buckets(cairn, trail_keys, tmp_path):
    proc = cli(cairn, "s3api", "get-object", "--bucket", BUCKET, "--key", "AWSLogs/none.json.gz",
               str(tmp_path / "x"))
    assert proc.returncode != 0
    assert "NoSuchKey" in proc.stderr

    proc = cli(cairn, "s3api", "get-object", "--bucket", "no-such-facade-bucket", "--key", "k",
               str(tmp_path / "x"))
    assert proc.returncode != 0
    assert "NoSuchBucket" in proc.stderr

    client = s3(cairn)
    with pytest.raises(ClientError) as e:
        client.get_object(Bucket=BUCKET, Key="AWSLogs/")
    assert error_code(e) == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        client.list_objects(Bucket="no-such-facade-bucket")
    assert error_code(e) == "NoSuchBucket"


def test_writes_are_refused(cairn, trail_keys, tmp_path):
    src = tmp_path / "new.txt"
    src.write_text("hello")
    proc = cli(cairn, "s3", "cp", str(src), f"s3://{BUCKET}/new.txt")
    assert proc.returncode != 0
    assert "AccessDenied" in proc.stderr and "read-only" in proc.stderr
    assert not (bucket_root(cairn) / BUCKET / "new.txt").exists()

    client = s3(cairn)
    for call in (lambda: client.put_object(Bucket=BUCKET, Key="x", Body=b"x"),
                 lambda: client.delete_object(Bucket=BUCKET, Key=trail_keys[0]),
                 lambda: client.delete_bucket(Bucket=BUCKET),
                 lambda: client.copy_object(Bucket=BUCKET, Key="copy",
                                            CopySource={"Bucket": BUCKET, "Key": trail_keys[0]}),
                 lambda: client.put_bucket_versioning(
                     Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDenied"
        assert "read-only" in e.value.response["Error"]["Message"]
    assert (bucket_root(cairn) / BUCKET / trail_keys[0]).is_file()

    with pytest.raises(ClientError) as e:
        client.get_bucket_acl(Bucket=BUCKET)
    assert error_code(e) == "NotImplemented"


def test_presigned_get(cairn, trail_keys):
    v4 = boto3.session.Session().client(
        "s3", endpoint_url=cairn.endpoint, region_name=REGION,
        aws_access_key_id=cairn.access_key, aws_secret_access_key=cairn.secret_key,
        config=botocore.config.Config(signature_version="s3v4"))
    url = v4.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "odd/a b+c.txt"}, ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"0123456789"

    # botocore presigns with Signature Version 2 unless told otherwise: refused, saying so.
    v2_url = s3(cairn).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "odd/a b+c.txt"}, ExpiresIn=60)
    assert "AWSAccessKeyId=" in v2_url
    try:
        urllib.request.urlopen(v2_url, timeout=10)
        pytest.fail("a SigV2 presigned URL was served")
    except urllib.error.HTTPError as err:
        assert err.code == 400
        body = err.read().decode()
        assert "<Code>InvalidRequest</Code>" in body and "AWS4-HMAC-SHA256" in body


# --------------------------------------------------------------------------------------------
# Authentication, accounts, the other routes on the same listener
# --------------------------------------------------------------------------------------------

def test_bad_credentials(cairn, trail_keys):
    # An unknown key is answered as a wrong secret is: nothing tells whether a key exists.
    unknown = s3(cairn, access_key="AKIAUNKNOWNKEY000000", secret_key="x" * 40)
    with pytest.raises(ClientError) as e:
        unknown.list_objects(Bucket=BUCKET)
    assert error_code(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    wrong = s3(cairn, access_key=cairn.access_key, secret_key="y" * 40)
    with pytest.raises(ClientError) as e:
        wrong.get_object(Bucket=BUCKET, Key=trail_keys[0])
    assert error_code(e) == "SignatureDoesNotMatch"

    try:
        urllib.request.urlopen(f"{cairn.endpoint}/{BUCKET}/{trail_keys[0]}", timeout=10)
        pytest.fail("an unsigned request was served")
    except urllib.error.HTTPError as err:
        assert err.code == 403
        body = err.read().decode()
        assert "<Code>AccessDenied</Code>" in body and "<RequestId>" in body


def test_home_page_health_and_cloudtrail_api_share_the_listener(cairn, trail_keys):
    # A browser on `/` is sent to the console's sign-in page.
    with urllib.request.urlopen(cairn.endpoint + "/", timeout=10) as r:
        assert r.url.endswith("/signin")
        assert r.headers["content-type"].startswith("text/html")
        assert b"Sign in to Cairn" in r.read()
    assert cairn.health() == 200
    events = cairn.client("cloudtrail").lookup_events(MaxResults=1)
    assert "Events" in events


def test_another_account_cannot_read(cairn, trail_keys, second_account):
    other = s3(cairn, access_key=second_account.access_key, secret_key=second_account.secret_key)
    for call in (lambda: other.get_object(Bucket=BUCKET, Key=trail_keys[0]),
                 lambda: other.list_objects(Bucket=BUCKET),
                 lambda: other.list_objects_v2(Bucket=BUCKET),
                 lambda: other.get_bucket_location(Bucket=BUCKET)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        other.head_bucket(Bucket=BUCKET)
    assert error_code(e) == "403"
    assert BUCKET not in [b["Name"] for b in other.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        other.create_bucket(Bucket=BUCKET)
    assert error_code(e) == "BucketAlreadyExists"

    # Its own bucket is its alone.
    other.create_bucket(Bucket="facade-other")
    assert other.list_objects_v2(Bucket="facade-other")["KeyCount"] == 0
    with pytest.raises(ClientError) as e:
        s3(cairn).list_objects(Bucket="facade-other")
    assert error_code(e) == "AccessDenied"

    # A bucket folder made by hand has no owner: every account may read it.
    place(cairn, "facade-by-hand", "AWSLogs/x.txt", b"by hand")
    for client in (other, s3(cairn)):
        assert client.get_object(Bucket="facade-by-hand", Key="AWSLogs/x.txt")["Body"].read() \
            == b"by hand"
        assert "facade-by-hand" in [b["Name"] for b in client.list_buckets()["Buckets"]]

    # A trail of the other account cannot write into the first account's bucket.
    other_ct = cairn.client("cloudtrail", access_key=second_account.access_key,
                            secret_key=second_account.secret_key)
    with pytest.raises(ClientError) as e:
        other_ct.create_trail(Name="intruder", S3BucketName=BUCKET)
    assert e.value.response["Error"]["Code"] == "InsufficientS3BucketPolicyException"
    other_ct.create_trail(Name="own", S3BucketName="facade-other")


# --------------------------------------------------------------------------------------------
# aws cloudtrail validate-logs, end to end
# --------------------------------------------------------------------------------------------

class _PublicKeys(http.server.BaseHTTPRequestHandler):
    """A stand-in CloudTrail endpoint that answers ListPublicKeys with one key, so that the
    test controls the signing key (Cairn signs its own digests with keys it keeps)."""

    keys: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        target = self.headers.get("x-amz-target", "")
        if target.endswith(".ListPublicKeys"):
            status, body = 200, {"PublicKeyList": self.keys}
        else:
            status, body = 400, {"__type": "UnknownOperationException", "message": target}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.1")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_validate_logs_reads_through_the_facade(cairn, trail_keys):
    import rsa  # a dependency of the AWS CLI v1, which verifies digests with it

    bucket = "facade-validate"
    s3(cairn).create_bucket(Bucket=bucket)
    pub, priv = rsa.newkeys(1024)
    der = pub.save_pkcs1("DER")
    fingerprint = hashlib.md5(der).hexdigest()
    acct = cairn.account_id
    top = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    previous = None  # (key, signature, sha256 of the raw digest)
    logs = []
    for hours_ago in (3, 2, 1):
        end = top - dt.timedelta(hours=hours_ago)
        start = end - dt.timedelta(hours=1)
        raw_log = json.dumps({"Records": [{"eventID": str(uuid.uuid4()),
                                           "eventTime": _iso(start)}]}).encode()
        lkey = log_key(acct, end, uuid.uuid4().hex[:16])
        place(cairn, bucket, lkey, gzip.compress(raw_log))
        logs.append(lkey)
        dkey = digest_key(acct, end, trail="validated")
        digest = {
            "awsAccountId": acct,
            "digestStartTime": _iso(start),
            "digestEndTime": _iso(end),
            "digestS3Bucket": bucket,
            "digestS3Object": dkey,
            "digestPublicKeyFingerprint": fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": _iso(start),
            "oldestEventTime": _iso(start),
            "previousDigestS3Bucket": bucket if previous else None,
            "previousDigestS3Object": previous[0] if previous else None,
            "previousDigestHashValue": previous[2] if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[1] if previous else None,
            "logFiles": [{"s3Bucket": bucket, "s3Object": lkey,
                          "hashValue": hashlib.sha256(raw_log).hexdigest(),
                          "hashAlgorithm": "SHA-256",
                          "newestEventTime": _iso(start), "oldestEventTime": _iso(start)}],
        }
        raw = json.dumps(digest).encode()
        to_sign = (f"{_iso(end)}\n{bucket}/{dkey}\n{hashlib.sha256(raw).hexdigest()}\n"
                   f"{previous[1] if previous else 'null'}")
        signature = rsa.sign(to_sign.encode(), priv, "SHA-256").hex()
        place(cairn, bucket, dkey, gzip.compress(raw),
              {"signature": signature, "signature-algorithm": "SHA256withRSA"})
        previous = (dkey, signature, hashlib.sha256(raw).hexdigest())

    _PublicKeys.keys = [{
        "Value": base64.b64encode(der).decode(),
        "ValidityStartTime": (top - dt.timedelta(days=1)).timestamp(),
        "ValidityEndTime": (top + dt.timedelta(days=1)).timestamp(),
        "Fingerprint": fingerprint,
    }]
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PublicKeys)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        def validate() -> subprocess.CompletedProcess:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({
                "AWS_ACCESS_KEY_ID": cairn.access_key,
                "AWS_SECRET_ACCESS_KEY": cairn.secret_key,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_MAX_ATTEMPTS": "1",
                # The S3 clients of validate-logs ignore --endpoint-url: only this reaches them.
                "AWS_ENDPOINT_URL_S3": cairn.endpoint,
            })
            cmd = [str(cairn.aws_bin), "cloudtrail", "validate-logs",
                   "--trail-arn", f"arn:aws:cloudtrail:{REGION}:{acct}:trail/validated",
                   "--start-time", _iso(top - dt.timedelta(hours=4)),
                   "--s3-bucket", bucket, "--verbose", "--region", REGION,
                   "--endpoint-url", f"http://127.0.0.1:{stub.server_address[1]}"]
            return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

        ok = validate()
        assert ok.returncode == 0, f"{ok.stdout}\n{ok.stderr}"
        assert "3/3 digest files valid" in ok.stdout, ok.stdout
        assert "3/3 log files valid" in ok.stdout, ok.stdout
        for lkey in logs:
            assert f"Log file\ts3://{bucket}/{lkey}\tvalid" in ok.stdout

        # A changed log file, and a digest gone from the chain (NoSuchKey).
        place(cairn, bucket, logs[2], gzip.compress(b'{"Records": ["changed"]}'))
        (bucket_root(cairn) / bucket
         / digest_key(acct, top - dt.timedelta(hours=2), trail="validated")).unlink()
        bad = validate()
        assert bad.returncode == 1, f"{bad.stdout}\n{bad.stderr}"
        report = bad.stdout + bad.stderr  # the CLI prints INVALID lines to stderr
        assert f"Log file\ts3://{bucket}/{logs[2]}\tINVALID: hash value doesn't match" \
            in report, report
        missing = digest_key(acct, top - dt.timedelta(hours=2), trail="validated")
        assert f"Digest file\ts3://{bucket}/{missing}\tINVALID: not found" in report, report
        assert "2/3 digest files valid, 1/3 digest files INVALID" in report, report
    finally:
        stub.shutdown()
        stub.server_close()


# --------------------------------------------------------------------------------------------
# moto, and Cairn with its buckets on an S3 service
# --------------------------------------------------------------------------------------------

def test_moto_fixture_serves_s3_with_user_metadata(moto):
    client = moto.client("s3")
    client.create_bucket(Bucket="moto-smoke")
    client.put_object(Bucket="moto-smoke", Key="AWSLogs/1/d.json.gz", Body=b"digest",
                      Metadata={"signature": "ab12", "signature-algorithm": "SHA256withRSA"})
    got = client.get_object(Bucket="moto-smoke", Key="AWSLogs/1/d.json.gz")
    assert got["Body"].read() == b"digest"
    assert got["Metadata"] == {"signature": "ab12", "signature-algorithm": "SHA256withRSA"}
    listed = client.list_objects(Bucket="moto-smoke", Prefix="AWSLogs/")
    assert [o["Key"] for o in listed["Contents"]] == ["AWSLogs/1/d.json.gz"]


def test_facade_points_at_the_s3_service_when_buckets_live_there(moto, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = CairnServer(data, tmp_path / "server.log", extra_args=[
        "--s3-endpoint", moto.endpoint, "--s3-region", REGION,
        "--s3-access-key-id", moto.access_key, "--s3-secret-access-key", moto.secret_key])
    server.start()
    try:
        client = boto3.session.Session().client(
            "s3", endpoint_url=server.endpoint, region_name=REGION,
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
        for call in (lambda: client.list_buckets(),
                     lambda: client.list_objects(Bucket="any-bucket"),
                     lambda: client.get_object(Bucket="any-bucket", Key="k"),
                     lambda: client.create_bucket(Bucket="any-bucket")):
            with pytest.raises(ClientError) as e:
                call()
            assert error_code(e) == "NotImplemented"
            assert moto.endpoint in e.value.response["Error"]["Message"]
        with urllib.request.urlopen(server.endpoint + "/", timeout=10) as r:
            assert b"Cairn" in r.read()
    finally:
        server.stop()
