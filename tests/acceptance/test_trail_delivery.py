"""Trail delivery end to end: log files and signed digests written by `cairn serve` into a
folder bucket (the embedded default) and into a real S3-compatible service (moto_server), the
key layout and content, event selectors, every tampering case caught by `cairn validate` and by
the stock `aws cloudtrail validate-logs`, and `cairn import` from buckets and AWSLogs trees.

Delivery runs every second and digests close every four seconds here (`--delivery-interval`,
`--digest-period`), so the tests need not wait an hour."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (ACCOUNT_ID, REGION, Cairn, CairnServer, _LIVE, cairn_bin, read_jsonl)

FAST = ["--delivery-interval", "1s", "--digest-period", "4s"]
BUCKET = "trail-logs"

LOG_KEY = re.compile(
    r"^AWSLogs/111122223333/CloudTrail/(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"111122223333_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$")
DIGEST_KEY = re.compile(
    r"^AWSLogs/111122223333/CloudTrail-Digest/(?P<region>[a-z0-9-]+)/\d{4}/\d{2}/\d{2}/"
    r"111122223333_CloudTrail-Digest_(?P=region)_(?P<trail>[^_]+)_us-east-1_\d{8}T\d{6}Z\.json\.gz$")


def start_cairn(tmp: Path, name: str, extra: list[str], env: dict | None = None) -> Cairn:
    data = tmp / name
    data.mkdir()
    server = CairnServer(data, tmp / f"{name}.log", extra_args=extra)
    saved = {}
    for k, v in (env or {}).items():
        saved[k] = os.environ.get(k)
        os.environ[k] = v
    try:
        server.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    c = Cairn(server, tmp)
    _LIVE.append(c)
    return c


def stop_cairn(c: Cairn) -> None:
    if c in _LIVE:
        _LIVE.remove(c)
    c.server.stop()


def now_iso(offset_s: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def management_events(n: int, prefix: str, region: str = REGION) -> list[dict]:
    return [{
        "eventVersion": "1.08", "eventID": f"{prefix}-{i:05d}", "eventTime": now_iso(),
        "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "awsRegion": region,
        "sourceIPAddress": "198.51.100.7", "readOnly": False, "eventType": "AwsApiCall",
        "managementEvent": True, "recipientAccountId": ACCOUNT_ID,
        "userIdentity": {"type": "IAMUser", "userName": "alana",
                         "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/alana"},
    } for i in range(n)]


def data_event(event_id: str, bucket: str, key: str) -> dict:
    return {
        "eventVersion": "1.08", "eventID": event_id, "eventTime": now_iso(),
        "eventSource": "s3.amazonaws.com", "eventName": "DeleteObject", "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.5", "readOnly": False, "eventType": "AwsApiCall",
        "managementEvent": False, "eventCategory": "Data", "recipientAccountId": ACCOUNT_ID,
        "userIdentity": {"type": "IAMUser", "userName": "dev-intern"},
        "requestParameters": {"bucketName": bucket, "key": key},
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
    }


def gunzip_one_member(data: bytes) -> bytes:
    """Decompresses a gzip object, failing if it holds more than one member."""
    import zlib
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data) + d.flush()
    assert d.eof and not d.unused_data, "a trail file must be exactly one gzip member"
    return out


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def run_validators(c: Cairn, arn: str, start: str, *, s3_endpoint: str,
                   s3_creds: tuple[str, str] | None = None,
                   cairn_location: list[str] | None = None) -> tuple[subprocess.CompletedProcess,
                                                                      subprocess.CompletedProcess]:
    """Runs the stock `aws cloudtrail validate-logs` and `cairn validate` on a trail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key,
        "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "", "AWS_ENDPOINT_URL_S3": s3_endpoint,
    })
    stock_env = dict(env)
    if s3_creds:
        # moto accepts any credentials: the CloudTrail calls still sign with Cairn's key.
        pass
    stock = subprocess.run(
        [str(c.aws_bin), "cloudtrail", "validate-logs", "--trail-arn", arn, "--start-time", start,
         "--verbose", "--endpoint-url", c.endpoint, "--region", REGION],
        capture_output=True, text=True, env=stock_env, timeout=180)
    cmd = [str(cairn_bin()), "validate", "--trail-arn", arn, "--start-time", start,
           "--endpoint-url", c.endpoint, "--data-dir", str(c.server.data_dir)]
    cmd += cairn_location or []
    mine = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    return stock, mine


def out(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


# --------------------------------------------------------------------------------------------
# The embedded default: a folder bucket served over Cairn's own S3 API
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trail_delivery")
    c = start_cairn(tmp, "data", FAST)
    try:
        c.aws("s3api", "create-bucket", "--bucket", BUCKET)
        c.aws("s3api", "create-bucket", "--bucket", "data-events")
        created = c.aws("cloudtrail", "create-trail", "--name", "main", "--s3-bucket-name", BUCKET,
                        "--is-multi-region-trail", "--enable-log-file-validation")
        arn = created["TrailARN"]
        c.aws("cloudtrail", "create-trail", "--name", "objects", "--s3-bucket-name",
              "data-events")
        c.aws("cloudtrail", "put-event-selectors", "--trail-name", "objects",
              "--advanced-event-selectors", json.dumps([{
                  "Name": "deletes in cat-photos",
                  "FieldSelectors": [
                      {"Field": "eventCategory", "Equals": ["Data"]},
                      {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                      {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::cat-photos/"]},
                      {"Field": "eventName", "NotStartsWith": ["Get"]},
                  ]}]))
        start = now_iso(-120)
        c.aws("cloudtrail", "start-logging", "--name", "main")
        c.aws("cloudtrail", "start-logging", "--name", "objects")
        time.sleep(1.5)  # the chain starts at the next delivery
        sent = management_events(40, "east") + management_events(7, "west", "us-west-2")
        sent += [data_event("data-1", "cat-photos", "2024/whiskers.jpg"),
                 data_event("data-2", "dog-photos", "rex.jpg")]
        c.ingest(sent)
        # Several digest periods, more events in the middle one.
        time.sleep(4.5)
        c.ingest(management_events(5, "later"))
        time.sleep(8.5)
        stopped = time.time()
        c.aws("cloudtrail", "stop-logging", "--name", "main")
        # The final digest comes once the last files are delivered; then nothing more.
        wait_for(lambda: c.aws("cloudtrail", "get-trail-status", "--name", "main").get(
            "LatestDigestDeliveryTime", 0) >= stopped, "the final digest", 20)
        time.sleep(2.5)
        yield {"cairn": c, "arn": arn, "start": start, "tmp": tmp,
               "bucket_dir": c.server.data_dir / "buckets" / BUCKET}
    finally:
        stop_cairn(c)


def test_log_files_have_cloudtrails_layout_and_content(trail):
    c = trail["cairn"]
    s3 = c.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    logs = [k for k in keys if "/CloudTrail/" in k]
    assert logs, keys
    ids = []
    regions = set()
    for key in logs:
        m = LOG_KEY.match(key)
        assert m, f"unexpected log key {key}"
        assert m["stamp"].startswith(m["y"] + m["m"] + m["d"] + "T")
        regions.add(m["region"])
        raw = gunzip_one_member(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        doc = json.loads(raw)
        assert list(doc) == ["Records"]
        for r in doc["Records"]:
            assert r["recipientAccountId"] == ACCOUNT_ID
            assert r["awsRegion"] == m["region"]
            ids.append(r["eventID"])
    assert regions == {"us-east-1", "us-west-2"}
    assert len(ids) == len(set(ids)), "an event is delivered twice"
    expected = {f"east-{i:05d}" for i in range(40)} | {f"west-{i:05d}" for i in range(7)} | {
        f"later-{i:05d}" for i in range(5)}
    assert expected <= set(ids)
    # Default selectors: management events only.
    assert "data-1" not in ids and "data-2" not in ids


def test_advanced_selectors_pick_data_events(trail):
    c = trail["cairn"]
    s3 = c.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="data-events").get("Contents", [])]
    ids = []
    for key in keys:
        assert LOG_KEY.match(key), key
        ids += [r["eventID"] for r in json.loads(gunzip_one_member(
            s3.get_object(Bucket="data-events", Key=key)["Body"].read()))["Records"]]
    assert ids == ["data-1"]


def test_digests_chain_and_are_signed_by_published_keys(trail):
    c = trail["cairn"]
    s3 = c.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
                  if "/CloudTrail-Digest/us-east-1/" in o["Key"])
    assert len(keys) >= 3, keys
    fingerprints = {k["Fingerprint"] for k in
                    c.aws("cloudtrail", "list-public-keys", "--start-time",
                          trail["start"])["PublicKeyList"]}
    previous = None
    for key in keys:
        assert DIGEST_KEY.match(key), key
        obj = s3.get_object(Bucket=BUCKET, Key=key)
        assert obj["Metadata"]["signature-algorithm"] == "SHA256withRSA"
        assert re.fullmatch(r"[0-9a-f]{512}", obj["Metadata"]["signature"])
        raw = gunzip_one_member(obj["Body"].read())
        d = json.loads(raw)
        assert d["digestS3Object"] == key and d["digestS3Bucket"] == BUCKET
        assert d["digestPublicKeyFingerprint"] in fingerprints
        stamp = key.rsplit("_", 1)[1][:16]
        assert d["digestEndTime"].replace("-", "").replace(":", "") == stamp
        if previous is None:
            assert d["previousDigestSignature"] is None
        else:
            import hashlib
            assert d["previousDigestS3Object"] == previous[0]
            assert d["previousDigestHashValue"] == hashlib.sha256(previous[1]).hexdigest()
            assert d["previousDigestSignature"] == previous[2]
            assert d["digestStartTime"] == previous[3]
        if not d["logFiles"]:
            assert d["newestEventTime"] is None and d["oldestEventTime"] is None
        previous = (key, raw, obj["Metadata"]["signature"], d["digestEndTime"])
    assert any(json.loads(gunzip_one_member(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()))[
        "logFiles"] == [] for k in keys), "a quiet period must still get a digest"


def test_both_validators_accept_an_untouched_trail(trail):
    c = trail["cairn"]
    stock, mine = run_validators(c, trail["arn"], trail["start"], s3_endpoint=c.endpoint)
    assert stock.returncode == 0, out(stock)
    assert "INVALID" not in stock.stdout, out(stock)
    assert re.search(r"(\d+)/\1 digest files valid", stock.stdout), out(stock)
    assert re.search(r"(\d+)/\1 log files valid", stock.stdout), out(stock)
    assert mine.returncode == 0, out(mine)


@pytest.fixture
def pristine(trail):
    """Restores the bucket folder after a tampering test."""
    bucket_dir: Path = trail["bucket_dir"]
    meta_dir = bucket_dir.parent / ".meta" / BUCKET
    backup = trail["tmp"] / "pristine"
    if backup.exists():
        shutil.rmtree(backup)
    shutil.copytree(bucket_dir, backup / "bucket")
    shutil.copytree(meta_dir, backup / "meta")
    yield trail
    shutil.rmtree(bucket_dir)
    shutil.copytree(backup / "bucket", bucket_dir)
    shutil.rmtree(meta_dir)
    shutil.copytree(backup / "meta", meta_dir)


def files(trail, kind: str, region: str = "us-east-1") -> list[Path]:
    base = trail["bucket_dir"] / "AWSLogs" / ACCOUNT_ID / kind / region
    return sorted(base.rglob("*.json.gz"))


def digests_listing_logs(trail) -> list[Path]:
    return [p for p in files(trail, "CloudTrail-Digest")
            if json.loads(gzip.decompress(p.read_bytes()))["logFiles"]]


def expect_both_invalid(trail, needle_stock: str | None, needle_mine: str):
    c = trail["cairn"]
    stock, mine = run_validators(c, trail["arn"], trail["start"], s3_endpoint=c.endpoint)
    assert stock.returncode == 1, out(stock)
    if needle_stock:
        assert needle_stock in stock.stdout + stock.stderr, out(stock)
    assert mine.returncode == 1, out(mine)
    assert needle_mine in (mine.stdout + mine.stderr).lower(), out(mine)
    return stock, mine


def first_log(trail) -> Path:
    logs = files(trail, "CloudTrail")
    assert logs
    return logs[0]


def test_edited_log_file_is_caught(pristine):
    path = first_log(pristine)
    doc = json.loads(gzip.decompress(path.read_bytes()))
    doc["Records"][0]["sourceIPAddress"] = "192.0.2.1"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    expect_both_invalid(pristine, "hash value doesn't match", "hash")


def test_deleted_log_file_is_caught(pristine):
    path = first_log(pristine)
    path.unlink()
    expect_both_invalid(pristine, "not found", "not found")


def test_appended_gzip_member_is_caught(pristine):
    path = first_log(pristine)
    path.write_bytes(path.read_bytes() + gzip.compress(b'{"Records":[]}'))
    expect_both_invalid(pristine, "INVALID", "compressed stream")


def test_deleted_digest_is_caught(pristine):
    digests = files(pristine, "CloudTrail-Digest")
    digests[1].unlink()
    expect_both_invalid(pristine, "INVALID: not found", "not found")


def test_two_deleted_consecutive_digests_are_both_caught(pristine):
    digests = files(pristine, "CloudTrail-Digest")
    assert len(digests) >= 4
    gone = [digests[1], digests[2]]
    for p in gone:
        p.unlink()
    stock, mine = expect_both_invalid(pristine, "INVALID: not found", "not found")
    text = mine.stdout + mine.stderr
    # Cairn names the digest the chain points to and reports the whole span no digest covers
    # any more: from the end of the newest digest before the gap, so the second one too.
    assert gone[1].name in text, out(mine)
    before = json.loads(gzip.decompress(digests[0].read_bytes()))["digestEndTime"]
    assert re.search(r"no digest covers[^\n]*" + re.escape(before), text), out(mine)


def test_altered_digest_is_caught(pristine):
    path = digests_listing_logs(pristine)[0]
    doc = json.loads(gzip.decompress(path.read_bytes()))
    doc["logFiles"][0]["hashValue"] = "0" * 64
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    expect_both_invalid(pristine, "signature verification failed", "signature")


def test_tail_truncation_is_caught_by_cairn(pristine):
    # The newest digest period (two digests: the final one can close a second after the last
    # periodic one) and the log files they list, in every region.
    for region in ("us-east-1", "us-west-2"):
        for newest in files(pristine, "CloudTrail-Digest", region)[-2:]:
            doc = json.loads(gzip.decompress(newest.read_bytes()))
            newest.unlink()
            for f in doc["logFiles"]:
                (pristine["bucket_dir"] / f["s3Object"]).unlink(missing_ok=True)
    c = pristine["cairn"]
    _, mine = run_validators(c, pristine["arn"], pristine["start"], s3_endpoint=c.endpoint)
    assert mine.returncode == 1, out(mine)
    assert "trunc" in (mine.stdout + mine.stderr).lower(), out(mine)


def test_import_with_validate_takes_only_vouched_files(trail, tmp_path):
    c = trail["cairn"]
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(c.aws("cloudtrail", "list-public-keys", "--start-time",
                                          trail["start"])))
    # A copy of the folder bucket with its metadata sidecar (where the signatures are).
    shutil.copytree(trail["bucket_dir"].parent, tmp_path / "buckets")
    copy = tmp_path / "buckets" / BUCKET
    # A forged file no digest vouches for.
    forged = copy / "AWSLogs" / ACCOUNT_ID / "CloudTrail" / "us-east-1" / "2020" / "01" / "01" / \
        f"{ACCOUNT_ID}_CloudTrail_us-east-1_20200101T0000Z_AAAAAAAAAAAAAAAA.json.gz"
    forged.parent.mkdir(parents=True)
    forged.write_bytes(gzip.compress(json.dumps({"Records": management_events(3, "forged")}).encode()))
    other = start_cairn(tmp_path, "other", [])
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": other.access_key,
                    "AWS_SECRET_ACCESS_KEY": other.secret_key})
        p = subprocess.run([str(cairn_bin()), "import", "--quiet", "--validate", "--public-keys",
                            str(keys_file), "--endpoint-url", other.endpoint, "--state",
                            str(tmp_path / "state"), str(copy)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, out(p)
        assert "not vouched for" in p.stdout, out(p)
        ids = {e["EventId"] for e in other.lookup_all()}
        assert f"east-{0:05d}" in ids and "later-00004" in ids
        assert not any(i.startswith("forged") for i in ids)
    finally:
        stop_cairn(other)


# --------------------------------------------------------------------------------------------
# A real S3-compatible service
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_trail(tmp_path_factory, moto):
    tmp = tmp_path_factory.mktemp("trail_s3")
    bucket = "moto-trail"
    moto.client("s3").create_bucket(Bucket=bucket)
    env = {"AWS_ACCESS_KEY_ID": moto.access_key, "AWS_SECRET_ACCESS_KEY": moto.secret_key}
    c = start_cairn(tmp, "data", FAST + ["--s3-endpoint", moto.endpoint], env=env)
    try:
        missing = c.aws("cloudtrail", "create-trail", "--name", "nope", "--s3-bucket-name",
                        "no-such-bucket", check=False)
        assert missing.returncode != 0 and "S3BucketDoesNotExistException" in missing.stderr
        arn = c.aws("cloudtrail", "create-trail", "--name", "s3trail", "--s3-bucket-name", bucket,
                    "--s3-key-prefix", "audit", "--enable-log-file-validation")["TrailARN"]
        start = now_iso(-120)
        c.aws("cloudtrail", "start-logging", "--name", "s3trail")
        time.sleep(1.5)
        c.ingest(management_events(30, "s3"))
        time.sleep(9)
        c.aws("cloudtrail", "stop-logging", "--name", "s3trail")
        time.sleep(3)
        yield {"cairn": c, "arn": arn, "start": start, "bucket": bucket, "moto": moto, "tmp": tmp}
    finally:
        stop_cairn(c)


def test_delivery_to_s3_and_both_validators(s3_trail):
    moto = s3_trail["moto"]
    s3 = moto.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_trail["bucket"]).get("Contents", [])]
    logs = [k for k in keys if "/CloudTrail/" in k]
    digests = [k for k in keys if "/CloudTrail-Digest/" in k]
    assert logs and len(digests) >= 2, keys
    assert all(k.startswith("audit/AWSLogs/111122223333/") for k in keys), keys
    meta = s3.head_object(Bucket=s3_trail["bucket"], Key=digests[-1])["Metadata"]
    assert meta["signature-algorithm"] == "SHA256withRSA"
    c = s3_trail["cairn"]
    status = c.aws("cloudtrail", "get-trail-status", "--name", "s3trail")
    assert "LatestDeliveryError" not in status, status
    stock, mine = run_validators(
        c, s3_trail["arn"], s3_trail["start"], s3_endpoint=moto.endpoint,
        cairn_location=[f"s3://{s3_trail['bucket']}/audit", "--s3-endpoint", moto.endpoint])
    assert stock.returncode == 0 and "INVALID" not in stock.stdout, out(stock)
    assert mine.returncode == 0, out(mine)
    # Tamper with one log file in the bucket: both validators see it.
    # (Some files hold only the records of Cairn's own API calls; take one with the events.)
    bodies = {k: gunzip_one_member(s3.get_object(Bucket=s3_trail["bucket"], Key=k)["Body"].read())
              for k in logs}
    target = next(k for k, b in bodies.items() if b"198.51.100.7" in b)
    body = bodies[target]
    s3.put_object(Bucket=s3_trail["bucket"], Key=target,
                  Body=gzip.compress(body.replace(b"198.51.100.7", b"198.51.100.8")))
    stock, mine = run_validators(
        c, s3_trail["arn"], s3_trail["start"], s3_endpoint=moto.endpoint,
        cairn_location=[f"s3://{s3_trail['bucket']}/audit", "--s3-endpoint", moto.endpoint])
    assert stock.returncode == 1, out(stock)
    assert "hash value doesn't match" in stock.stdout + stock.stderr, out(stock)
    assert mine.returncode == 1, out(mine)


# --------------------------------------------------------------------------------------------
# Import from where CloudTrail logs live
# --------------------------------------------------------------------------------------------

def dataset_records() -> list[dict]:
    records = read_jsonl("seed-scenarios.jsonl") + read_jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl")
    records += [row["event"] for row in read_jsonl("panther-labelled-events.jsonl")]
    # Some panther records carry redacted times; a trail would never have written those.
    return [r for r in records if r.get("eventID")
            and re.match(r"\d{4}-\d{2}-\d{2}T\d{2}", str(r.get("eventTime", "")))]


def aws_layout(records: list[dict], org: str | None = None) -> dict[str, bytes]:
    """The records as AWS CloudTrail would lay them out in a bucket: a file per account,
    region and hour, gzip, `{"Records": [...]}`."""
    groups: dict[tuple, list] = {}
    for r in records:
        account = str(r.get("recipientAccountId") or "")
        if not re.fullmatch(r"\d{12}", account):
            account = ACCOUNT_ID
        region = r.get("awsRegion") or "us-east-1"
        hour = r["eventTime"][:13]
        groups.setdefault((account, region, hour), []).append(r)
    objects = {}
    for i, ((account, region, hour), recs) in enumerate(sorted(groups.items())):
        y, m, d = hour[:4], hour[5:7], hour[8:10]
        stamp = f"{y}{m}{d}T{hour[11:13]}05Z"
        root = f"AWSLogs/{org}/{account}" if org else f"AWSLogs/{account}"
        key = (f"{root}/CloudTrail/{region}/{y}/{m}/{d}/"
               f"{account}_CloudTrail_{region}_{stamp}_{i:016d}.json.gz")
        objects[key] = gzip.compress(json.dumps({"Records": recs}).encode())
    return objects


def run_import(c: Cairn, *sources: str, extra: list[str] = (), env_extra: dict | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key})
    env.update(env_extra or {})
    return subprocess.run([str(cairn_bin()), "import", "--quiet", "--endpoint-url", c.endpoint,
                           *extra, *sources], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_import_an_aws_bucket_from_s3_and_resume(tmp_path, moto):
    records = dataset_records()
    objects = aws_layout(records[: len(records) // 2])
    objects.update(aws_layout(records[len(records) // 2:], org="o-a1b2c3d4e5"))
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="aws-trail-copy")
    for key, body in objects.items():
        s3.put_object(Bucket="aws-trail-copy", Key=f"org/{key}", Body=body)
    # A digest among the logs is not an event file: it is skipped.
    s3.put_object(Bucket="aws-trail-copy",
                  Key=f"org/AWSLogs/{ACCOUNT_ID}/CloudTrail-Digest/us-east-1/2020/01/01/x.json.gz",
                  Body=gzip.compress(b'{"logFiles":[]}'))
    c = start_cairn(tmp_path, "importer", [])
    try:
        state = tmp_path / "import-state"
        moto_env = {"AWS_ACCESS_KEY_ID": moto.access_key,
                    "AWS_SECRET_ACCESS_KEY": moto.secret_key}
        # The client signs its Cairn requests with Cairn's key and its S3 requests with
        # moto's credentials given through CAIRN_S3_* variables would be cleaner; moto
        # accepts any key, so Cairn's key serves both here.
        p = run_import(c, "s3://aws-trail-copy/org", extra=["--s3-endpoint", moto.endpoint,
                                                            "--state", str(state)])
        assert p.returncode == 0, out(p)
        ids = {e["EventId"] for e in c.lookup_all()}
        assert {r["eventID"] for r in records} <= ids
        assert f"Imported {len(objects)} files" in p.stdout, out(p)
        # A second run has nothing new; a new file arrives and only it is read.
        again = run_import(c, "s3://aws-trail-copy/org",
                           extra=["--s3-endpoint", moto.endpoint, "--state", str(state)])
        assert again.returncode == 0 and "Nothing new" in again.stdout, out(again)
        new = {"eventVersion": "1.08", "eventID": "arrived-later", "eventTime": now_iso(),
               "eventSource": "iam.amazonaws.com", "eventName": "CreateUser",
               "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT_ID,
               "userIdentity": {"type": "IAMUser", "userName": "john"}}
        s3.put_object(Bucket="aws-trail-copy",
                      Key=f"org/AWSLogs/{ACCOUNT_ID}/CloudTrail/us-east-1/2026/11/21/"
                          f"{ACCOUNT_ID}_CloudTrail_us-east-1_20261121T1200Z_ZZZZZZZZZZZZZZZZ.json.gz",
                      Body=gzip.compress(json.dumps({"Records": [new]}).encode()))
        third = run_import(c, "s3://aws-trail-copy/org",
                           extra=["--s3-endpoint", moto.endpoint, "--state", str(state)])
        assert third.returncode == 0 and "Imported 1 files" in third.stdout, out(third)
        assert any(e["EventId"] == "arrived-later" for e in c.lookup_all(
            LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": "arrived-later"}]))
        del moto_env
    finally:
        stop_cairn(c)


def test_import_an_awslogs_folder_and_follow(tmp_path):
    records = dataset_records()
    root = tmp_path / "bucket-copy"
    for key, body in aws_layout(records).items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    c = start_cairn(tmp_path, "follower", [])
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": c.access_key, "AWS_SECRET_ACCESS_KEY": c.secret_key})
        follow = subprocess.Popen(
            [str(cairn_bin()), "import", "--quiet", "--follow", "--poll", "1s", "--endpoint-url",
             c.endpoint, "--state", str(tmp_path / "state"), str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            want = {r["eventID"] for r in records}
            wait_for(lambda: want <= {e["EventId"] for e in c.lookup_all()},
                     "the folder's events", 60)
            later = root / "AWSLogs" / ACCOUNT_ID / "CloudTrail" / "eu-west-1" / "2026" / "11" / \
                "21" / f"{ACCOUNT_ID}_CloudTrail_eu-west-1_20261121T1300Z_FFFFFFFFFFFFFFFF.json.gz"
            later.parent.mkdir(parents=True, exist_ok=True)
            later.write_bytes(gzip.compress(json.dumps({"Records": [
                management_events(1, "followed", "eu-west-1")[0]]}).encode()))
            wait_for(lambda: c.lookup_all(LookupAttributes=[
                {"AttributeKey": "EventId", "AttributeValue": "followed-00000"}]),
                "the file that arrived later", 30)
        finally:
            follow.terminate()
            follow.wait(timeout=10)
    finally:
        stop_cairn(c)


def test_list_public_keys(trail):
    c = trail["cairn"]
    keys = c.aws("cloudtrail", "list-public-keys")["PublicKeyList"]
    assert keys, "the current key is published"
    import base64
    import hashlib
    for k in keys:
        der = base64.b64decode(k["Value"])
        assert der.startswith(bytes.fromhex("3082010a0282010100")), "PKCS #1 RSAPublicKey, 2048 bits"
        assert k["Fingerprint"] == hashlib.md5(der).hexdigest()
        assert k["ValidityStartTime"] <= k["ValidityEndTime"]
    bad = c.aws("cloudtrail", "list-public-keys", "--start-time", "2026-01-02",
                "--end-time", "2026-01-01", check=False)
    assert bad.returncode != 0 and "InvalidTimeRangeException" in bad.stderr
    assert c.aws("cloudtrail", "list-public-keys", "--start-time", "2001-01-01",
                 "--end-time", "2001-01-02")["PublicKeyList"] == []
