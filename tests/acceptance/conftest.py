"""Fixtures and helpers for Cairn's acceptance tests.

Every test module gets its own `cairn serve` process on a free loopback port with its own
temporary data directory (the `cairn` fixture). The server is driven the way a user drives it:
with the real AWS CLI (`aws(...)`), boto3 clients, and SigV4-signed requests to the native
ingest endpoint `POST /v1/events` (`ingest(...)`).

Environment:
  CAIRN_BIN       the cairn binary (default: $CARGO_TARGET_DIR/debug/cairn, else
                  ~/.cache/cairn-target/debug/cairn)
  CAIRN_DATASETS  the shared datasets folder (default: <repo>/../shared/datasets)
"""

from __future__ import annotations

import datetime as dt
import gzip as gzip_mod
import http.client
import json
import http.server
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

# Keep botocore away from any profile, config file or instance metadata of the machine.
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDTRAIL", "AWS_ENDPOINT_URL_CLOUDTRAIL_DATA"):
    os.environ.pop(_var, None)

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("CAIRN_DATASETS") or (REPO_ROOT.parent / "shared" / "datasets"))

ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIACAIRNTEST0000001"  # AKIA + 16 upper-case alphanumerics
SECRET_ACCESS_KEY = "cairnAcceptanceTestSecretKey/0123456789ab"
TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
JSON11 = "application/x-amz-json-1.1"

# Members Cairn fills in when a record does not carry them.
FILLED_MEMBERS = ("eventID", "eventTime", "recipientAccountId", "eventCategory",
                  "managementEvent", "readOnly")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------

def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_file():
        pytest.fail(f"dataset {path} is missing (shared/ must sit beside the repository)")
    return path


def read_jsonl(name: str) -> list[Any]:
    with dataset(name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def minify(text: str) -> str:
    """Removes white space outside JSON strings, keeping every other character as it is."""
    out = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch in " \n\r\t":
            continue
        else:
            if ch == '"':
                in_string = True
            out.append(ch)
    return "".join(out)


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise AssertionError(f"JSON object has duplicate member names {dupes}")
    return dict(pairs)


def parse_record(text: str) -> dict:
    """Parses a CloudTrailEvent string, failing on duplicate member names."""
    assert isinstance(text, str), f"CloudTrailEvent must be a JSON string, got {type(text)}"
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


def epoch(value: Any) -> float:
    """Epoch seconds of a timestamp as boto3 (datetime), the AWS CLI (number or ISO string)
    or a CloudTrail record (ISO string) gives it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        try:
            return float(s)
        except ValueError:
            pass
        parsed = parse_iso(s)
        if parsed is None:
            raise ValueError(f"not a timestamp: {value!r}")
        return parsed
    raise TypeError(f"not a timestamp: {value!r}")


def parse_iso(s: str) -> float | None:
    """Parses `YYYY-MM-DDTHH:MM:SS[.f][Z|±hh:mm]` or `YYYY-MM-DD HH:MM:SS[.f]` (UTC); None if
    the text is not such a date-time."""
    import re

    m = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
        r"(Z|z|[+-]\d{2}:\d{2})?", s)
    if not m:
        return None
    y, mo, d, h, mi, se, frac, tz = m.groups()
    if " " in s and tz is not None:
        return None
    if "T" in s and tz is None:
        return None
    try:
        base = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(se),
                           tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    offset = 0
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        offset = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    fraction = float("0." + frac) if frac else 0.0
    return base.timestamp() + fraction - offset


def iso(ts: str) -> float:
    value = parse_iso(ts)
    assert value is not None, ts
    return value


def error_code(type_field: str | None) -> str | None:
    """The error code as botocore reads `__type`."""
    if not type_field:
        return None
    code = type_field.split(":")[0]
    return code.rsplit("#", 1)[-1]


OTHER_ACCOUNT_KEY_IDS = {"AKIACAIRNTEST0000002"}


def is_own(event: dict) -> bool:
    """Whether a LookupEvents entry is Cairn's record of a call the tests made (signed with
    one of the tests' keys)."""
    return event.get("AccessKeyId") in {ACCESS_KEY_ID, *OTHER_ACCOUNT_KEY_IDS}


def random_access_key() -> str:
    return "AKIA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=16))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------

def cairn_bin() -> Path:
    explicit = os.environ.get("CAIRN_BIN")
    if explicit:
        path = Path(explicit)
    else:
        target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "cairn-target")
        path = Path(target) / "debug" / "cairn"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"cairn binary not found at {path}: build it (cargo build --bin cairn) "
                    f"or set CAIRN_BIN")
    return path


class CairnServer:
    """One `cairn serve` on a data directory; can be stopped and started again."""

    def __init__(self, data_dir: Path, log_path: Path, access_key: str = ACCESS_KEY_ID,
                 secret_key: str = SECRET_ACCESS_KEY, account_id: str = ACCOUNT_ID,
                 extra_args: Iterable[str] = ()):
        self.binary = cairn_bin()
        self.data_dir = data_dir
        self.log_path = log_path
        self.access_key = access_key
        self.secret_key = secret_key
        self.account_id = account_id
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, "server already running"
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            env = dict(os.environ)
            env["CAIRN_ACCESS_KEY_ID"] = self.access_key
            env["CAIRN_SECRET_ACCESS_KEY"] = self.secret_key
            # The master key lives outside the data directory, as it should.
            env["CAIRN_MASTER_KEY_FILE"] = str(self.data_dir.parent / f"{self.data_dir.name}.master.key")
            env.setdefault("RUST_BACKTRACE", "1")
            cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
                   "--listen", f"127.0.0.1:{self.port}", "--account-id", self.account_id,
                   *self.extra_args]
            log = self.log_path.open("ab")
            log.write(f"\n===== start #{self.starts + 1}: {' '.join(cmd)} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
            log.close()
            self.starts += 1
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = f"cairn serve exited with status {self.proc.returncode}"
                    break
                try:
                    with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
                    pass
                time.sleep(0.1)
            else:
                last_error = f"/health did not answer 200 within {START_TIMEOUT:.0f} s"
                self._kill()
            self.proc = None
            if "Address already in use" not in self.log_tail(20):
                break
        raise RuntimeError(f"could not start cairn: {last_error}\n--- server log ---\n"
                           f"{self.log_tail()}")

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int | None, bool]:
        """Sends `sig`, waits up to 10 s, then kills. Returns (exit status, exited by itself)."""
        if self.proc is None:
            return None, True
        proc = self.proc
        self.proc = None
        if proc.poll() is not None:
            return proc.returncode, True
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=STOP_TIMEOUT), True
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=10), False

    def log_tail(self, lines: int = 150) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


class ApiError(Exception):
    def __init__(self, status: int, body: bytes, headers: dict):
        self.status = status
        self.body = body
        self.headers = headers
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None
        code = None
        if isinstance(self.json, dict):
            code = error_code(self.json.get("__type") or self.json.get("code"))
        self.code = code or error_code(headers.get("x-amzn-errortype"))
        super().__init__(f"HTTP {status} {self.code}: {body[:500]!r}")


class Cairn:
    """A running Cairn for a test module, with the clients and helpers the tests use."""

    def __init__(self, server: CairnServer, tmp: Path):
        self.server = server
        self.tmp = tmp
        self.account_id = ACCOUNT_ID
        self.region = REGION
        self.aws_bin = _find_aws()
        self._clients: dict = {}

    # ---- connection facts
    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    def restart(self) -> tuple[int | None, bool]:
        result = self.server.stop()
        self._clients.clear()
        self.server.start()
        return result

    # ---- boto3
    def client(self, service: str = "cloudtrail", *, access_key: str | None = None,
               secret_key: str | None = None, validate: bool = True, retries: int = 3):
        key = (service, access_key, secret_key, validate, retries, self.endpoint)
        if key not in self._clients:
            cfg = botocore.config.Config(
                retries={"max_attempts": retries, "mode": "standard"},
                parameter_validation=validate,
                connect_timeout=10, read_timeout=60,
            )
            self._clients[key] = boto3.session.Session().client(
                service, endpoint_url=self.endpoint, region_name=self.region,
                aws_access_key_id=access_key or self.access_key,
                aws_secret_access_key=secret_key or self.secret_key,
                config=cfg,
            )
        return self._clients[key]

    def lookup_all(self, max_pages: int = 2000, own: bool = False, **kwargs) -> list[dict]:
        """Every event LookupEvents returns for these parameters, following NextToken.

        Cairn records the API calls it serves, the tests' own among them; those records are
        left out unless `own` is true."""
        ct = self.client("cloudtrail")
        kwargs.setdefault("MaxResults", 50)
        events: list[dict] = []
        token = None
        for _ in range(max_pages):
            call = dict(kwargs)
            if token:
                call["NextToken"] = token
            page = ct.lookup_events(**call)
            batch = page.get("Events", [])
            assert len(batch) <= kwargs["MaxResults"], (
                f"LookupEvents returned {len(batch)} events for MaxResults={kwargs['MaxResults']}")
            events.extend(batch)
            new_token = page.get("NextToken")
            if not new_token:
                return events if own else [e for e in events if not is_own(e)]
            assert new_token != token, "LookupEvents returned the same NextToken again"
            token = new_token
        raise AssertionError(f"LookupEvents still paging after {max_pages} pages")

    # ---- AWS CLI
    def aws(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        """Runs the AWS CLI against Cairn; returns the parsed JSON output ({} when empty)."""
        cmd = [str(self.aws_bin), *args, "--endpoint-url", self.endpoint, "--output", "json",
               "--region", self.region]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "3",
            "AWS_RETRY_MODE": "standard",
        })
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                f"stderr: {proc.stderr}")
        if not check:
            return proc
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    # ---- signed raw HTTP
    def signed_request(self, path: str, body: bytes, headers: dict | None = None, *,
                       service: str = "cloudtrail", method: str = "POST",
                       access_key: str | None = None, secret_key: str | None = None,
                       sign: bool = True, timeout: float = 120) -> tuple[int, dict, bytes]:
        """Sends one (SigV4-signed unless sign=False) request; returns (status, headers, body)."""
        url = self.endpoint + path
        headers = dict(headers or {})
        if sign:
            req = AWSRequest(method=method, url=url, data=body, headers=headers)
            creds = Credentials(access_key or self.access_key, secret_key or self.secret_key)
            SigV4Auth(creds, service, self.region).add_auth(req)
            headers = dict(req.headers.items())
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def json11(self, operation: str, body: bytes | dict, **kwargs) -> tuple[int, dict, Any]:
        """A CloudTrail JSON 1.1 call by hand; returns (status, headers, parsed body)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"X-Amz-Target": TARGET_PREFIX + operation, "Content-Type": JSON11}
        status, hdrs, data = self.signed_request("/", raw, headers, **kwargs)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, hdrs, parsed

    # ---- native ingest
    @staticmethod
    def encode_records(records: Iterable[Any], fmt: str = "array") -> bytes:
        records = list(records)
        if fmt == "array":
            return json.dumps(records).encode()
        if fmt == "ndjson":
            return "".join(json.dumps(r) + "\n" for r in records).encode()
        if fmt == "logfile":
            return json.dumps({"Records": records}).encode()
        if fmt == "single":
            assert len(records) == 1
            return json.dumps(records[0]).encode()
        raise ValueError(fmt)

    def ingest_raw(self, body: bytes, *, gzip: bool = False, headers: dict | None = None,
                   **kwargs) -> tuple[int, dict, Any]:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if gzip:
            body = gzip_mod.compress(body)
            headers["Content-Encoding"] = "gzip"
        status, hdrs, data = self.signed_request("/v1/events", body, headers, **kwargs)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, hdrs, parsed

    def ingest(self, records: Any, gzip: bool = False, fmt: str = "array", **kwargs) -> dict:
        """POSTs records (a list, encoded as `fmt`) or a raw body (bytes/str) to /v1/events and
        returns the JSON summary; fails unless the answer is 200."""
        if isinstance(records, str):
            body = records.encode()
        elif isinstance(records, (bytes, bytearray)):
            body = bytes(records)
        else:
            body = self.encode_records(records, fmt)
        status, _, parsed = self.ingest_raw(body, gzip=gzip, **kwargs)
        assert status == 200, f"POST /v1/events answered {status}: {parsed!r}"[:2000]
        assert isinstance(parsed, dict), f"ingest answer is not a JSON object: {parsed!r}"
        return parsed

    def health(self) -> int:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code


def _find_aws() -> Path:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return candidate
    found = shutil.which("aws")
    if not found:
        pytest.fail("the AWS CLI is not installed (pip install -r tests/acceptance/requirements.txt)")
    return Path(found)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

_LIVE: list[Cairn] = []


@pytest.fixture(scope="module")
def cairn(tmp_path_factory, request):
    """A `cairn serve` of this test module's own, on a fresh data directory."""
    tmp = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    data_dir = tmp / "data"
    data_dir.mkdir()
    server = CairnServer(data_dir, tmp / "server.log")
    server.start()
    c = Cairn(server, tmp)
    _LIVE.append(c)
    try:
        yield c
    finally:
        _LIVE.remove(c)
        stop_checked(server)


def stop_checked(server: CairnServer) -> None:
    """Stops a server, and fails the test if it had died by itself before."""
    crashed = server.proc is not None and server.proc.poll() is not None
    status = server.proc.returncode if crashed else None
    server.stop()
    if crashed:
        pytest.fail(f"cairn serve died during the tests (exit status {status})\n"
                    f"--- server log ---\n{server.log_tail()}", pytrace=False)


@pytest.fixture(scope="module")
def aws(cairn):
    return cairn.aws


@pytest.fixture(scope="module")
def ingest(cairn):
    return cairn.ingest


@pytest.fixture(scope="module")
def lookup_all(cairn):
    return cairn.lookup_all


@pytest.fixture(scope="module")
def ct(cairn):
    """boto3 CloudTrail client."""
    return cairn.client("cloudtrail")


OTHER_ACCOUNT_ID = "444455556666"
OTHER_ACCESS_KEY_ID = "AKIACAIRNTEST0000002"
OTHER_SECRET_ACCESS_KEY = "cairnAcceptanceTestOtherSecret/0123456789"


class Account:
    """An account and one of its access keys."""

    def __init__(self, account_id: str, access_key: str, secret_key: str):
        self.account_id = account_id
        self.access_key = access_key
        self.secret_key = secret_key


@pytest.fixture(scope="module")
def second_account(cairn) -> Account:
    """A second account with its own access key on this module's server.

    `cairn serve` adds the account and key it is started with (`--account-id`,
    CAIRN_ACCESS_KEY_ID) to those it keeps, so the server is stopped, started once as the
    second account, and started again as the first: both keys then work. The endpoint
    changes (a new port); `cairn.endpoint` follows it."""
    cairn.server.stop()
    other = CairnServer(cairn.server.data_dir, cairn.server.log_path, OTHER_ACCESS_KEY_ID,
                        OTHER_SECRET_ACCESS_KEY, account_id=OTHER_ACCOUNT_ID)
    other.start()
    other.stop()
    cairn._clients.clear()
    cairn.server.start()
    return Account(OTHER_ACCOUNT_ID, OTHER_ACCESS_KEY_ID, OTHER_SECRET_ACCESS_KEY)


class MotoServer:
    """A `moto_server` (an in-memory fake of AWS services, S3 among them) on loopback.
    It accepts any credentials."""

    access_key = "testing"
    secret_key = "testing"
    region = REGION

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path):
        self.proc = proc
        self.port = port
        self.log_path = log_path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str = "s3"):
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def reset(self) -> None:
        """Forgets every bucket and object (moto's reset API)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def log_tail(self, lines: int = 50) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no moto log)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """A `moto_server` from the virtualenv (`pip install 'moto[server]'`, which scripts/test
    does) on a free loopback port, for tests against an S3-compatible service; stopped at
    the end of the session."""
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: pip install 'moto[server]' into the test virtualenv")
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        server = MotoServer(proc, port, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(server.endpoint + "/moto-api/data.json",
                                            timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError,
                    http.client.HTTPException):
                pass
            time.sleep(0.1)
        else:
            last_error = (f"moto_server exited with status {proc.returncode}"
                          if proc.poll() is not None
                          else f"moto_server did not answer within {START_TIMEOUT:.0f} s")
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            continue
        try:
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return
    raise RuntimeError(f"could not start moto_server: {last_error}\n--- log ---\n"
                       f"{MotoServer(None, 0, log_path).log_tail()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        c = item.funcargs.get("cairn") if hasattr(item, "funcargs") else None
        servers = [c] if isinstance(c, Cairn) else list(_LIVE)
        for s in servers:
            rep.sections.append((f"cairn server log ({s.server.log_path})", s.server.log_tail()))


# --------------------------------------------------------------------------------------------
# Servers of a test module's own, a webhook receiver, waiting
# --------------------------------------------------------------------------------------------

def start_server(tmp: Path, name: str, extra: list[str]) -> Cairn:
    """A `cairn serve` with extra flags on a fresh data directory `tmp/name`; stopped at the
    end of the session if the test does not stop it."""
    data = tmp / name
    data.mkdir()
    server = CairnServer(data, tmp / f"{name}.log", extra_args=extra)
    server.start()
    c = Cairn(server, tmp)
    _LIVE.append(c)
    return c


def stop_server(c: Cairn) -> None:
    if c in _LIVE:
        _LIVE.remove(c)
    stop_checked(c.server)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0,
             step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 (a ThreadingHTTPServer in a thread) recording every POST.
    Per path it can fail the next N requests, fail all of them, or take its time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.fail_next: dict[str, int] = {}
        self.failing: set[str] = set()
        self.delay = 0.0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    left = receiver.fail_next.get(self.path, 0)
                    fail = self.path in receiver.failing or left > 0
                    if left > 0:
                        receiver.fail_next[self.path] = left - 1
                    delay = receiver.delay
                    entry = {"path": self.path, "headers": {k.lower(): v for k, v in
                                                            self.headers.items()},
                             "raw": body, "ok": not fail, "at": arrived, "done": None}
                    receiver.requests.append(entry)
                if delay:
                    time.sleep(delay)
                status = 500 if fail else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                entry["done"] = time.time()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def attempts(self, path: str = "/hook") -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def delivered(self, path: str = "/hook") -> list[dict]:
        """The parsed bodies answered 200, in the order they arrived."""
        return [json.loads(r["raw"]) for r in self.attempts(path) if r["ok"]]
