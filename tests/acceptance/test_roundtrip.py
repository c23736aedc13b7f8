"""Real-shaped records in, the same records out: the panther corpus (the `event` of each line)
and the OTRF attack recording (whole lines, with their extra `@timestamp`/`@version` members)
go in through /v1/events in batches of 100 in every body shape, some gzip-compressed; then
every stored record must come back through LookupEvents exactly as sent, give or take the
members Cairn fills when a record lacks them."""

from __future__ import annotations

import json
import time

import pytest

from conftest import ACCOUNT_ID, FILLED_MEMBERS, epoch, parse_iso, parse_record, read_jsonl

BATCH = 100
FORMATS = ("array", "ndjson", "logfile")
STRING_MEMBERS = ("eventID", "eventTime", "eventName", "eventSource", "eventType",
                  "eventCategory", "recipientAccountId", "awsRegion", "errorCode",
                  "sourceIPAddress")


def expected_rejection(rec) -> set[str]:
    """The error codes the contract allows for a record; empty when it must be stored.

    - no eventName / eventSource -> FieldNotFound
    - not an object, a member of the wrong type (booleans written as "true"/"True" strings are
      tolerated), or an eventTime that is no date-time at all (e.g. "redacted", "...") ->
      InvalidData. "YYYY-MM-DD HH:MM:SS[.f]" (as UTC) counts as a date-time.
    """
    if not isinstance(rec, dict):
        return {"InvalidData"}
    codes = set()
    for name in ("eventName", "eventSource"):
        if not rec.get(name):
            codes.add("FieldNotFound")
    for name in STRING_MEMBERS:
        if rec.get(name) is not None and not isinstance(rec[name], str):
            codes.add("InvalidData")
    for name in ("readOnly", "managementEvent"):
        v = rec.get(name)
        if v is not None and not isinstance(v, bool) and not (
                isinstance(v, str) and v.lower() in ("true", "false")):
            codes.add("InvalidData")
    if rec.get("userIdentity") is not None and not isinstance(rec["userIdentity"], dict):
        codes.add("InvalidData")
    res = rec.get("resources")
    if res is not None and not (isinstance(res, list) and all(isinstance(r, dict) for r in res)):
        codes.add("InvalidData")
    t = rec.get("eventTime")
    if isinstance(t, str) and parse_iso(t) is None:
        codes.add("InvalidData")
    return codes


def batches(records, size=BATCH):
    return [records[i:i + size] for i in range(0, len(records), size)]


@pytest.fixture(scope="module")
def corpus():
    panther = [line["event"] for line in read_jsonl("panther-labelled-events.jsonl")]
    otrf = read_jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl")
    assert len(panther) == 453 and len(otrf) == 103
    return panther, otrf


@pytest.fixture(scope="module")
def loaded(cairn, corpus):
    """Sends both datasets and works out, by the first-wins eventID rule, what each batch must
    report. Returns the sent batches, the answers, and the expected stored records."""
    panther, otrf = corpus
    plan = [("panther", b) for b in batches(panther)] + [("otrf", b) for b in batches(otrf)]
    seen_ids: set[str] = set()
    seen_actual: set[str] = set()
    sent = []
    for n, (name, batch) in enumerate(plan):
        fmt = FORMATS[n % len(FORMATS)]
        gz = n % 2 == 1
        before = time.time()
        answer = cairn.ingest(batch, gzip=gz, fmt=fmt)
        after = time.time()
        expect = classify(batch, [bool(expected_rejection(r)) for r in batch], seen_ids)
        # The same first-wins bookkeeping, over what the server actually rejected: lets the
        # round trip be checked even where the server's rejections differ from the contract.
        rejected_idx = {r.get("index") for r in answer.get("rejected", [])}
        actual = classify(batch, [i in rejected_idx for i in range(len(batch))], seen_actual)
        for i, rec in enumerate(batch):
            if expect[i][0] == "rejected":
                expect[i] = ("rejected", expected_rejection(rec))
        sent.append(dict(name=name, fmt=fmt, gzip=gz, batch=batch, answer=answer,
                         expect=expect, actual=actual, window=(before, after)))
    return sent


def classify(batch, rejected, seen_ids):
    """("rejected"|"stored"|"duplicate", eventID or None) per record, by first-wins eventID."""
    out = []
    for rec, rej in zip(batch, rejected):
        if rej:
            out.append(("rejected", None))
            continue
        eid = rec.get("eventID")
        if eid is None:
            out.append(("stored", None))
        elif eid in seen_ids:
            out.append(("duplicate", eid))
        else:
            seen_ids.add(eid)
            out.append(("stored", eid))
    return out


def describe(entry):
    return f"{entry['name']} batch as {entry['fmt']}{' gzip' if entry['gzip'] else ''}"


def test_ingest_summaries(loaded):
    for entry in loaded:
        batch, answer, expect = entry["batch"], entry["answer"], entry["expect"]
        where = describe(entry)
        assert answer["received"] == len(batch), where
        want_rejected = [(i, codes) for i, (kind, codes) in enumerate(expect)
                         if kind == "rejected"]
        got_rejected = answer["rejected"]
        want_idx = [i for i, _ in want_rejected]
        unexpected = [f"#{r['index']} {r['errorCode']}: {r['errorMessage'][:110]}"
                      for r in got_rejected if r["index"] not in want_idx]
        missed = [i for i in want_idx if i not in {r["index"] for r in got_rejected}]
        assert not unexpected and not missed, (
            f"{where}: {len(unexpected)} records rejected that must be stored, e.g.\n  "
            + "\n  ".join(unexpected[:8]) + f"\nand {missed} stored that must be rejected")
        for r, (i, codes) in zip(got_rejected, want_rejected):
            assert r["errorCode"] in codes, f"{where}: record {i}: {r}"
            assert isinstance(r["errorMessage"], str) and r["errorMessage"], r
        assert answer["stored"] == sum(1 for k, _ in expect if k == "stored"), where
        assert answer["duplicates"] == sum(1 for k, _ in expect if k == "duplicate"), where
        assert answer["stored"] + answer["duplicates"] + len(got_rejected) == len(batch), where
        ids = answer["eventIds"]
        assert len(ids) == len(batch), where
        for i, ((kind, eid), rec) in enumerate(zip(expect, batch)):
            if kind == "rejected":
                assert ids[i] is None, f"{where}: record {i} was rejected but has id {ids[i]}"
            elif eid is not None:
                assert ids[i] == eid, f"{where}: record {i}"
            else:
                assert isinstance(ids[i], str) and ids[i], f"{where}: record {i} got no id"


def test_summaries_follow_first_wins(loaded):
    """Given the records the server rejected, stored/duplicates/eventIds follow the first-wins
    eventID rule (this holds even where the rejections themselves are disputed)."""
    for entry in loaded:
        answer, actual = entry["answer"], entry["actual"]
        where = describe(entry)
        assert answer["stored"] == sum(1 for k, _ in actual if k == "stored"), where
        assert answer["duplicates"] == sum(1 for k, _ in actual if k == "duplicate"), where
        for i, ((kind, eid), got) in enumerate(zip(actual, answer["eventIds"])):
            if kind == "rejected":
                assert got is None, f"{where}: record {i}"
            elif eid is not None:
                assert got == eid, f"{where}: record {i}"
            else:
                assert isinstance(got, str) and got, f"{where}: record {i}"


def test_rejections_are_exactly_the_invalid_records(loaded, corpus):
    """The corpus has two records without eventSource (FieldNotFound); everything else in it
    that has a parseable eventTime and CloudTrail's member types must be stored."""
    panther, otrf = corpus
    bad = [(i, sorted(expected_rejection(r))) for i, r in enumerate(panther)
           if expected_rejection(r)]
    not_found = [i for i, codes in bad if codes == ["FieldNotFound"]]
    assert len(not_found) == 2
    assert not any(expected_rejection(r) for r in otrf)
    got = {}
    offset = 0
    for entry in loaded:
        if entry["name"] == "panther":
            for r in entry["answer"]["rejected"]:
                got[offset + r["index"]] = f"{r['errorCode']}: {r['errorMessage'][:100]}"
            offset += len(entry["batch"])
        else:
            assert entry["answer"]["rejected"] == [], describe(entry)
    extra = {i: m for i, m in got.items() if i not in dict(bad)}
    missing = [i for i, _ in bad if i not in got]
    assert not extra and not missing, (
        f"{len(extra)} panther records rejected that must be stored, e.g. "
        + "; ".join(f"#{i} {m}" for i, m in list(extra.items())[:5])
        + f" -- and {missing} stored that must be rejected ({bad})")


@pytest.fixture(scope="module")
def history(loaded, cairn):
    events = cairn.lookup_all()  # no StartTime: everything
    return events


@pytest.fixture(scope="module")
def expected_records(loaded):
    """eventId -> (the record as sent, receipt window), for every record that must be stored."""
    out = {}
    for entry in loaded:
        for rec, (kind, _), eid in zip(entry["batch"], entry["actual"], entry["answer"]["eventIds"]):
            if kind == "stored":
                assert eid not in out, f"eventId {eid} given to two stored records"
                out[eid] = (rec, entry["window"])
    return out


def test_count_matches_stored(loaded, history, expected_records):
    stored = sum(e["answer"]["stored"] for e in loaded)
    ids = [e["EventId"] for e in history]
    assert len(ids) == len(set(ids)), "LookupEvents returned an event twice"
    assert len(history) == stored == len(expected_records)
    assert set(ids) == set(expected_records)


def test_newest_first(history):
    times = [epoch(e["EventTime"]) for e in history]
    assert times == sorted(times, reverse=True)


def test_every_record_round_trips(history, expected_records):
    by_id = {e["EventId"]: e for e in history}
    problems = []
    for eid, (orig, (before, after)) in expected_records.items():
        ev = by_id.get(eid)
        if ev is None:
            problems.append(f"{eid}: not returned by LookupEvents")
            continue
        try:
            check_round_trip(orig, ev, before, after)
        except AssertionError as e:
            problems.append(f"{eid} ({orig.get('eventName')}): {e}")
    assert not problems, f"{len(problems)} records differ:\n" + "\n".join(problems[:20])


def check_round_trip(orig: dict, ev: dict, before: float, after: float) -> None:
    got = parse_record(ev["CloudTrailEvent"])
    # Members Cairn fills in only where the record lacks them.
    filled = {k: got.pop(k) for k in FILLED_MEMBERS if k not in orig and k in got}
    assert got == orig, diff(orig, got)

    eid = orig.get("eventID", filled.get("eventID"))
    assert ev["EventId"] == eid, f"EventId {ev['EventId']!r} != eventID {eid!r}"
    assert ev["EventName"] == orig["eventName"]
    assert ev["EventSource"] == orig["eventSource"]
    if "eventID" in filled:
        assert isinstance(filled["eventID"], str) and filled["eventID"]
    if "recipientAccountId" in filled:
        assert filled["recipientAccountId"] == ACCOUNT_ID
    if "eventCategory" in filled:
        assert isinstance(filled["eventCategory"], str) and filled["eventCategory"]
    for k in ("managementEvent", "readOnly"):
        if k in filled:
            assert isinstance(filled[k], bool), f"filled {k} = {filled[k]!r}"
    if "eventTime" in filled:
        t = parse_iso(filled["eventTime"])
        assert t is not None, f"filled eventTime {filled['eventTime']!r}"
        assert before - 2 <= t <= after + 2, (
            f"filled eventTime {filled['eventTime']} is not the time of receipt")
        assert abs(epoch(ev["EventTime"]) - t) < 0.001
    else:
        want = parse_iso(orig["eventTime"])
        assert abs(epoch(ev["EventTime"]) - want) < 0.001, (
            f"EventTime {ev['EventTime']} != eventTime {orig['eventTime']}")

    read_only = orig.get("readOnly", filled.get("readOnly"))
    if isinstance(read_only, (bool, str)) and str(read_only).lower() in ("true", "false"):
        assert ev.get("ReadOnly") == str(read_only).lower()

    ident = orig.get("userIdentity") or {}
    key = ident.get("accessKeyId")
    if key:
        assert ev.get("AccessKeyId") == key
    kind = ident.get("type")
    if kind == "Root":
        assert ev.get("Username") == "root"
    elif kind == "IAMUser" and ident.get("userName"):
        assert ev.get("Username") == ident["userName"]
    elif kind == "AssumedRole" and "assumed-role/" in (ident.get("arn") or ""):
        assert ev.get("Username") == ident["arn"].rsplit("/", 1)[-1]

    for r in orig.get("resources") or []:
        arn = r.get("ARN") or r.get("arn")
        if arn and r.get("type"):
            types = [x.get("ResourceType") for x in ev.get("Resources") or []]
            assert r["type"] in types, f"resource type {r['type']} missing from {ev.get('Resources')}"


def diff(a: dict, b: dict) -> str:
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>") or (k in a) != (k in b):
            lines.append(f"  {k}: sent {json.dumps(a.get(k, '<absent>'))[:200]} "
                         f"got {json.dumps(b.get(k, '<absent>'))[:200]}")
    return "record differs:\n" + "\n".join(lines)


def test_logstash_members_are_kept(history, corpus):
    _, otrf = corpus
    ids = {r["eventID"] for r in otrf}
    found = [parse_record(e["CloudTrailEvent"]) for e in history if e["EventId"] in ids]
    assert len(found) == len(otrf)
    for rec in found:
        assert "@timestamp" in rec and "@version" in rec
