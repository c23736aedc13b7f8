"""Trail delivery notifications (spec section 3.4) end to end: a trail with an SNS topic on a
`cairn serve` started with `--notification-webhook`, and a real HTTP receiver on loopback.

After each delivery round the receiver gets, per trail with a topic, one SNS `Notification`
whose `Message` is `{"s3Bucket": ..., "s3ObjectKey": [...]}` listing the log files just
delivered (several at once for a multi-region trail; never digests); GetTrailStatus reports
`LatestNotificationTime`, and `LatestNotificationError` while the receiver fails, without
delivery waiting for it. Delivery runs every second here (`--delivery-interval 1s`)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import re
import time
import uuid
import pytest

from conftest import (_LIVE, ACCOUNT_ID, REGION, Cairn, CairnServer, WebhookReceiver, epoch,
                      stop_checked, wait_for)

SECRET = "notification-webhook-secret-42"
BUCKET = "notify-logs"
QUIET_BUCKET = "quiet-logs"
TRAIL = "notified"
QUIET = "quiet"
TOPIC = "cairn-trail-topic"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{TOPIC}"
LOG_KEY = re.compile(
    r"^AWSLogs/111122223333/CloudTrail/(?P<region>[a-z0-9-]+)/\d{4}/\d{2}/\d{2}/"
    r"111122223333_CloudTrail_(?P=region)_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$")


class Receiver(WebhookReceiver):
    """The webhook receiver, reading SNS notifications."""

    def got(self, since: float = 0.0, ok: bool = True) -> list[dict]:
        """Requests answered 200 (ok) or 500, arrived after `since`, with their parsed body
        and message."""
        out = []
        with self.lock:
            reqs = list(self.requests)
        for r in reqs:
            if r["ok"] == ok and r["at"] > since:
                body = json.loads(r["raw"])
                out.append({**r, "body": body, "message": json.loads(body["Message"])})
        return out


def events(prefix: str, regions: tuple[str, ...] = (REGION,), n: int = 3) -> list[dict]:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{
        "eventVersion": "1.08", "eventID": f"{prefix}-{region}-{i}-{uuid.uuid4().hex[:8]}",
        "eventTime": now, "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
        "awsRegion": region, "sourceIPAddress": "198.51.100.7", "readOnly": False,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT_ID,
        "userIdentity": {"type": "IAMUser", "userName": "alana",
                         "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/alana"},
    } for region in regions for i in range(n)]


def status(c: Cairn, name: str) -> dict:
    return c.client("cloudtrail").get_trail_status(Name=name)


@pytest.fixture(scope="module")
def recv():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def c(tmp_path_factory, recv):
    tmp = tmp_path_factory.mktemp("notifications")
    data = tmp / "data"
    data.mkdir()
    server = CairnServer(data, tmp / "server.log", extra_args=[
        "--delivery-interval", "1s", "--digest-period", "3s",
        "--notification-webhook", recv.url("/sns"), "--alert-webhook-secret", SECRET,
        "--alert-attempts", "2", "--alert-backoff", "100ms", "--no-rules"])
    server.start()
    cairn = Cairn(server, tmp)
    _LIVE.append(cairn)
    try:
        cairn.aws("s3api", "create-bucket", "--bucket", BUCKET)
        cairn.aws("s3api", "create-bucket", "--bucket", QUIET_BUCKET)
        created = cairn.aws("cloudtrail", "create-trail", "--name", TRAIL, "--s3-bucket-name",
                            BUCKET, "--sns-topic-name", TOPIC, "--is-multi-region-trail",
                            "--enable-log-file-validation")
        assert created["SnsTopicARN"] == TOPIC_ARN
        cairn.aws("cloudtrail", "create-trail", "--name", QUIET, "--s3-bucket-name", QUIET_BUCKET)
        cairn.aws("cloudtrail", "start-logging", "--name", TRAIL)
        cairn.aws("cloudtrail", "start-logging", "--name", QUIET)
        yield cairn
    finally:
        _LIVE.remove(cairn)
        stop_checked(server)


def test_each_delivery_is_notified_with_the_sns_message(c, recv):
    sent = events("multi", (REGION, "us-west-2"))
    ids = {e["eventID"] for e in sent}
    began = time.time()
    c.ingest(sent)

    def with_west():
        return [n for n in recv.got(began) if any("/us-west-2/" in k
                                                  for k in n["message"]["s3ObjectKey"])]
    [note] = wait_for(with_west, "the notification of the us-west-2 log file")
    # The SNS envelope, posted as SNS posts to HTTP subscribers.
    h = note["headers"]
    assert h["x-amz-sns-message-type"] == "Notification"
    assert h["x-amz-sns-topic-arn"] == TOPIC_ARN
    assert h["content-type"].startswith("text/plain")
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", h["x-cairn-signature"])
    assert m and m.group(1) == h["x-cairn-timestamp"]
    assert m.group(2) == hmac.new(SECRET.encode(), m.group(1).encode() + b"." + note["raw"],
                                  hashlib.sha256).hexdigest()
    body = note["body"]
    assert body["Type"] == "Notification"
    assert body["TopicArn"] == TOPIC_ARN
    assert uuid.UUID(body["MessageId"])
    assert abs(epoch(body["Timestamp"]) - time.time()) < 60
    assert isinstance(body["Message"], str)
    # The message: the bucket and every log file of that delivery, both regions in one.
    msg = note["message"]
    assert set(msg) == {"s3Bucket", "s3ObjectKey"}
    assert msg["s3Bucket"] == BUCKET
    keys = msg["s3ObjectKey"]
    assert len(keys) == len(set(keys)) >= 2
    regions = set()
    found = set()
    s3 = c.client("s3")
    for key in keys:
        match = LOG_KEY.match(key)
        assert match, key
        regions.add(match["region"])
        obj = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        found |= {r["eventID"] for r in json.loads(gzip.decompress(obj))["Records"]}
    assert regions == {REGION, "us-west-2"}
    assert ids <= found
    # GetTrailStatus reports it.
    st = wait_for(lambda: (s := status(c, TRAIL)).get("LatestNotificationTime") and s,
                  "LatestNotificationTime")
    assert epoch(st["LatestNotificationTime"]) >= began - 1
    assert "LatestNotificationError" not in st
    assert st["LatestNotificationAttemptTime"]


def test_only_log_files_of_trails_with_a_topic_are_notified(c, recv):
    began = time.time()
    c.ingest(events("quiet-check"))
    # A digest of the notified trail and log files of the quiet one are delivered...
    wait_for(lambda: epoch(status(c, TRAIL).get("LatestDigestDeliveryTime", 0)) > began,
             "a digest", 15)
    wait_for(lambda: status(c, QUIET).get("LatestDeliveryTime"), "the quiet trail's delivery")
    s3 = c.client("s3")
    digests = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
               if "/CloudTrail-Digest/" in o["Key"]]
    assert digests
    quiet_logs = [o["Key"] for o in s3.list_objects_v2(Bucket=QUIET_BUCKET).get("Contents", [])]
    assert quiet_logs
    time.sleep(0.5)
    # ... but only the notified trail's log files are in notifications.
    notes = recv.got()
    assert notes
    for n in notes:
        assert n["message"]["s3Bucket"] == BUCKET
        assert n["body"]["TopicArn"] == TOPIC_ARN
        for key in n["message"]["s3ObjectKey"]:
            assert LOG_KEY.match(key), f"not a log file: {key}"
    notified = {k for n in notes for k in n["message"]["s3ObjectKey"]}
    assert not notified & set(digests)
    # Every log file of the trail delivered so far was notified, once.
    logs = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
            if "/CloudTrail/" in o["Key"]}
    listed = [k for n in notes for k in n["message"]["s3ObjectKey"]]
    assert len(listed) == len(set(listed))
    assert set(listed) <= logs
    late = logs - set(listed)
    # (a file uploaded in the last round may still be on its way)
    assert len(late) <= 2, late
    st = status(c, QUIET)
    assert "LatestNotificationTime" not in st and "LatestNotificationError" not in st


def test_a_failing_receiver_sets_the_error_without_holding_delivery(c, recv):
    before = epoch(status(c, TRAIL)["LatestNotificationTime"])
    with recv.lock:
        recv.failing.add("/sns")
    try:
        failed_at = time.time()
        c.ingest(events("while-failing"))
        st = wait_for(lambda: (s := status(c, TRAIL)).get("LatestNotificationError") and s,
                      "LatestNotificationError")
        assert "500" in st["LatestNotificationError"], st
        # Two tries each (--alert-attempts 2), and delivery went on meanwhile.
        assert len(recv.got(failed_at, ok=False)) >= 2
        delivered = epoch(st["LatestDeliveryTime"])
        wait_for(lambda: epoch(status(c, TRAIL)["LatestDeliveryTime"]) > delivered,
                 "the next delivery while notifications fail", 10)
        st = status(c, TRAIL)
        assert "LatestDeliveryError" not in st
        assert epoch(st["LatestNotificationTime"]) <= max(before, failed_at + 0.5)
    finally:
        with recv.lock:
            recv.failing.discard("/sns")
    recovered = time.time()
    c.ingest(events("recovered"))
    st = wait_for(lambda: (s := status(c, TRAIL)).get("LatestNotificationTime")
                  and epoch(s["LatestNotificationTime"]) > recovered and s,
                  "a notification after the receiver recovered")
    assert "LatestNotificationError" not in st
    assert recv.got(recovered)


def test_topic_by_arn_and_no_topic(c, recv):
    other = f"arn:aws:sns:us-west-2:{ACCOUNT_ID}:elsewhere"
    out = c.aws("cloudtrail", "update-trail", "--name", TRAIL, "--sns-topic-name", other)
    assert out["SnsTopicARN"] == other
    changed = time.time()
    c.ingest(events("by-arn"))
    note = wait_for(lambda: [n for n in recv.got(changed) if n["body"]["TopicArn"] == other],
                    "a notification to the topic given by ARN")[0]
    assert note["headers"]["x-amz-sns-topic-arn"] == other
    assert note["message"]["s3Bucket"] == BUCKET

    out = c.aws("cloudtrail", "update-trail", "--name", TRAIL, "--sns-topic-name", "")
    assert "SnsTopicARN" not in out
    removed = time.time()
    c.ingest(events("no-topic"))
    wait_for(lambda: epoch(status(c, TRAIL)["LatestDeliveryTime"]) > removed + 2,
             "two more deliveries", 15)
    assert not recv.got(removed + 1.0), "a trail without a topic is not notified"
