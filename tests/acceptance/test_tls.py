"""HTTPS: `cairn serve --tls-cert cert.pem --tls-key key.pem` on the one listener, with a
certificate for 127.0.0.1 and localhost from a private CA made here. The AWS CLI and boto3
trust that CA through `--ca-bundle` / `verify=`; audited calls carry `tlsDetails`; console
cookies get `Secure`; `aws:SecureTransport` tells HTTPS from the plain-HTTP server of this
module (the `cairn` fixture); unusable certificate or key files stop `serve` with a message
naming them.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import (ACCESS_KEY_ID, ACCOUNT_ID, JSON11, REGION, SECRET_ACCESS_KEY,
                      START_TIMEOUT, TARGET_PREFIX, Cairn, CairnServer, cairn_bin, free_port,
                      parse_record)

ADMIN_TARGET = "CairnAdmin_20261121."
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/admin"


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------

def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(folder: Path, stem: str):
    """A private certificate authority: (certificate path, certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Cairn test CA {stem}"))
        .issuer_name(_name(f"Cairn test CA {stem}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{stem}-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_leaf(folder: Path, stem: str, ca_cert, ca_key) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost signed by the CA, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=False, crl_sign=False,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    """A private CA, a server certificate it signed (with key), and another such pair."""
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = make_ca(folder, "test")
    cert, key = make_leaf(folder, "server", ca_cert, ca_key)
    other_cert, other_key = make_leaf(folder, "other", ca_cert, ca_key)
    return {"ca": ca, "cert": cert, "key": key, "other_cert": other_cert,
            "other_key": other_key, "folder": folder}


# --------------------------------------------------------------------------------------------
# The HTTPS server
# --------------------------------------------------------------------------------------------

class TlsServer(CairnServer):
    """`cairn serve` with --tls-cert/--tls-key; its health check speaks HTTPS, trusting `ca`."""

    def __init__(self, data_dir: Path, log_path: Path, cert: Path, key: Path, ca: Path):
        super().__init__(data_dir, log_path,
                         extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
        self.ca = ca

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self) -> None:
        assert self.proc is None, "server already running"
        self.port = free_port()
        env = dict(os.environ)
        env["CAIRN_ACCESS_KEY_ID"] = self.access_key
        env["CAIRN_SECRET_ACCESS_KEY"] = self.secret_key
        env["CAIRN_MASTER_KEY_FILE"] = str(self.data_dir.parent /
                                           f"{self.data_dir.name}.master.key")
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--listen", f"127.0.0.1:{self.port}", "--account-id", self.account_id,
               *self.extra_args]
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start: {' '.join(cmd)} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2,
                                            context=self.context()) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError,
                    http.client.HTTPException):
                pass
            time.sleep(0.1)
        self._kill()
        self.proc = None
        raise RuntimeError(f"could not start cairn over TLS\n--- server log ---\n"
                           f"{self.log_tail()}")


@pytest.fixture(scope="module")
def tls(tmp_path_factory, pki):
    tmp = tmp_path_factory.mktemp("tls")
    data = tmp / "data"
    data.mkdir()
    server = TlsServer(data, tmp / "server.log", pki["cert"], pki["key"], pki["ca"])
    server.start()
    c = Cairn(server, tmp)
    try:
        yield c
    finally:
        crashed = server.proc is not None and server.proc.poll() is not None
        server.stop()
        if crashed:
            pytest.fail(f"cairn serve (TLS) died during the tests\n{server.log_tail()}",
                        pytrace=False)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

def https_client(c, service: str = "cloudtrail", key: tuple[str, str] | None = None):
    ak, sk = key or (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    return boto3.session.Session().client(
        service, endpoint_url=c.endpoint, region_name=REGION, aws_access_key_id=ak,
        aws_secret_access_key=sk, verify=str(c.server.ca),
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      s3={"addressing_style": "path"}))


class Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes,
                 tls_version: str | None, cipher: str | None):
        self.status, self.headers, self.body = status, headers, body
        self.tls_version, self.cipher = tls_version, cipher

    def json(self) -> Any:
        return json.loads(self.body)


def connection(c, context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    if c.endpoint.startswith("https://"):
        return http.client.HTTPSConnection("127.0.0.1", c.server.port, timeout=30,
                                           context=context or c.server.context())
    return http.client.HTTPConnection("127.0.0.1", c.server.port, timeout=30)


def request(c, method: str, path: str, body: bytes | str | None = None,
            headers: dict | None = None, context: ssl.SSLContext | None = None) -> Answer:
    conn = connection(c, context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        sock = conn.sock
        version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
        cipher = sock.cipher()[0] if isinstance(sock, ssl.SSLSocket) else None
        return Answer(r.status, r.msg, data, version, cipher)
    finally:
        conn.close()


def call(c, target: str, body: dict, *, service: str = "cloudtrail",
         key: tuple[str, str] | None = None, context: ssl.SSLContext | None = None) -> Answer:
    """A SigV4-signed JSON 1.1 call over the server's own scheme."""
    ak, sk = key or (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    raw = json.dumps(body).encode()
    req = AWSRequest(method="POST", url=c.endpoint + "/", data=raw,
                     headers={"X-Amz-Target": target, "Content-Type": JSON11})
    SigV4Auth(Credentials(ak, sk), service, REGION).add_auth(req)
    return request(c, "POST", "/", raw, dict(req.headers.items()), context)


def admin_call(c, op: str, body: dict, key: tuple[str, str] | None = None) -> dict:
    answer = call(c, ADMIN_TARGET + op, body, service="iam", key=key)
    assert answer.status == 200, answer.body
    return answer.json()


def make_user(c, name: str, policies: list[str] = (), inline: dict | None = None,
              password: str | None = None) -> tuple[str, str]:
    admin_call(c, "CreateUser", {"UserName": name})
    for p in policies:
        admin_call(c, "AttachUserPolicy", {"UserName": name, "PolicyArn": p})
    if inline is not None:
        admin_call(c, "PutUserPolicy", {"UserName": name, "PolicyName": "inline",
                                        "PolicyDocument": json.dumps(inline)})
    if password is not None:
        admin_call(c, "CreateLoginProfile", {"UserName": name, "Password": password})
    key = admin_call(c, "CreateAccessKey", {"UserName": name})["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def records(c, **attribute: str) -> list[dict]:
    ((k, v),) = attribute.items()
    events = https_client(c).lookup_events(
        LookupAttributes=[{"AttributeKey": k, "AttributeValue": v}], MaxResults=50)["Events"]
    return [parse_record(e["CloudTrailEvent"]) for e in events]


def cookie(answer: Answer, name: str) -> tuple[str, set[str]] | None:
    for c in answer.headers.get_all("Set-Cookie") or []:
        first, *attrs = [p.strip() for p in c.split(";")]
        k, _, v = first.partition("=")
        if k == name:
            return v, set(attrs)
    return None


def new_trail(c) -> str:
    bucket = "tls-" + uuid.uuid4().hex[:10]
    https_client(c, "s3").create_bucket(Bucket=bucket)
    name = "tls-trail-" + uuid.uuid4().hex[:8]
    https_client(c).create_trail(Name=name, S3BucketName=bucket)
    https_client(c).start_logging(Name=name)
    return name


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def test_the_aws_cli_works_over_https(tls, pki):
    ca = str(pki["ca"])
    bucket = "tls-cli-" + uuid.uuid4().hex[:8]
    proc = tls.aws("s3", "mb", f"s3://{bucket}", "--ca-bundle", ca, check=False)
    assert proc.returncode == 0, proc.stderr
    name = "cli-" + uuid.uuid4().hex[:8]
    made = tls.aws("cloudtrail", "create-trail", "--name", name, "--s3-bucket-name", bucket,
                   "--ca-bundle", ca)
    assert made["TrailARN"] == f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{name}"
    tls.aws("cloudtrail", "start-logging", "--name", name, "--ca-bundle", ca)
    status = tls.aws("cloudtrail", "get-trail-status", "--name", name, "--ca-bundle", ca)
    assert status["IsLogging"] is True
    trails = tls.aws("cloudtrail", "describe-trails", "--ca-bundle", ca)["trailList"]
    assert name in [t["Name"] for t in trails]
    found = tls.aws("cloudtrail", "lookup-events", "--ca-bundle", ca, "--lookup-attributes",
                    "AttributeKey=EventName,AttributeValue=CreateTrail")["Events"]
    assert [e for e in found if name in e["CloudTrailEvent"]]

    # Without the CA the CLI refuses the certificate.
    refused = tls.aws("cloudtrail", "describe-trails", check=False)
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "SSL" in refused.stderr, \
        refused.stderr
    # Plain HTTP on the HTTPS listener gets no answer.
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        with urllib.request.urlopen(f"http://127.0.0.1:{tls.server.port}/health",
                                    timeout=5) as r:
            r.read()
    # The server is still fine.
    assert request(tls, "GET", "/health").status == 200


def test_audited_calls_carry_tls_details(tls):
    host = f"127.0.0.1:{tls.server.port}"
    trail = new_trail(tls)
    # TLS 1.3 (the default) and TLS 1.2.
    v12 = tls.server.context()
    v12.maximum_version = ssl.TLSVersion.TLSv1_2
    seen = {}
    for label, ctx in (("default", None), ("1.2", v12)):
        answer = call(tls, TARGET_PREFIX + "StopLogging", {"Name": trail}, context=ctx)
        assert answer.status == 200, answer.body
        seen[label] = (answer.tls_version, answer.cipher)
        https_client(tls).start_logging(Name=trail)
    assert seen["default"][0] == "TLSv1.3"
    assert seen["1.2"][0] == "TLSv1.2"

    stops = [r for r in records(tls, EventName="StopLogging")
             if r["requestParameters"] == {"name": trail}]
    assert len(stops) == 2
    details = sorted((r["tlsDetails"] for r in stops), key=lambda d: d["tlsVersion"])
    assert details == [
        {"tlsVersion": "TLSv1.2", "cipherSuite": seen["1.2"][1], "clientProvidedHostHeader": host},
        {"tlsVersion": "TLSv1.3", "cipherSuite": seen["default"][1],
         "clientProvidedHostHeader": host},
    ]
    for r in stops:
        assert r["userIdentity"]["arn"] == ADMIN_ARN and r["readOnly"] is False

    # boto3's calls (here StartLogging) and the S3 façade's likewise.
    starts = [r for r in records(tls, EventName="StartLogging")
              if r["requestParameters"] == {"name": trail}]
    assert len(starts) == 3
    for r in starts:
        assert r["tlsDetails"]["tlsVersion"] in ("TLSv1.3", "TLSv1.2")
        assert r["tlsDetails"]["cipherSuite"]
        assert r["tlsDetails"]["clientProvidedHostHeader"] == host
    buckets = [r for r in records(tls, EventName="CreateBucket")]
    assert buckets and all(r["tlsDetails"]["clientProvidedHostHeader"] == host
                           for r in buckets)


def test_console_cookies_are_secure_over_https(tls):
    name = "console-" + uuid.uuid4().hex[:8]
    password = "Tls-" + uuid.uuid4().hex
    make_user(tls, name, ["AWSCloudTrail_ReadOnlyAccess"], password=password)
    form = request(tls, "GET", "/signin")
    assert form.status == 200
    csrf_cookie = cookie(form, "cairn_signin_csrf")
    assert csrf_cookie is not None
    token, attrs = csrf_cookie
    assert {"Path=/signin", "HttpOnly", "SameSite=Strict", "Secure"} <= attrs
    body = urllib.parse.urlencode({"csrf": token, "account": "", "username": name,
                                   "password": password})
    signed_in = request(tls, "POST", "/signin", body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"cairn_signin_csrf={token}"})
    assert signed_in.status == 303, signed_in.body
    session = cookie(signed_in, "cairn_session")
    assert session is not None
    value, attrs = session
    assert attrs == {"Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200", "Secure"}

    info = request(tls, "GET", "/v1/session", headers={"Cookie": f"cairn_session={value}"})
    assert info.status == 200 and info.json()["UserName"] == name
    csrf = info.json()["CsrfToken"]
    listed = request(tls, "POST", "/", "{}", {
        "Cookie": f"cairn_session={value}", "X-Cairn-CSRF": csrf,
        "X-Amz-Target": TARGET_PREFIX + "ListTrails", "Content-Type": JSON11})
    assert listed.status == 200

    logins = [r for r in records(tls, EventName="ConsoleLogin")
              if r["userIdentity"].get("userName") == name]
    assert len(logins) == 1
    r = logins[0]
    assert r["responseElements"] == {"ConsoleLogin": "Success"}
    assert r["additionalEventData"]["LoginTo"] == f"https://127.0.0.1:{tls.server.port}/"
    assert r["tlsDetails"]["tlsVersion"] in ("TLSv1.3", "TLSv1.2")
    assert r["tlsDetails"]["clientProvidedHostHeader"] == f"127.0.0.1:{tls.server.port}"


def test_secure_transport_condition(tls, cairn):
    deny_insecure = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    secure_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudtrail:*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}
    for server in (tls, cairn):
        suffix = "https" if server is tls else "http"
        keys = {
            "deny": make_user(server, f"deny-insecure-{suffix}", ["AWSCloudTrail_FullAccess"],
                              inline=deny_insecure),
            "allow": make_user(server, f"secure-only-{suffix}", inline=secure_only),
        }
        for label, key in keys.items():
            answer = call(server, TARGET_PREFIX + "ListTrails", {}, key=key)
            if server is tls:
                assert answer.status == 200, (label, answer.body)
                continue
            user = (f"arn:aws:iam::{ACCOUNT_ID}:user/"
                    f"{'deny-insecure' if label == 'deny' else 'secure-only'}-http")
            why = ("with an explicit deny in an identity-based policy" if label == "deny"
                   else "because no identity-based policy allows the cloudtrail:ListTrails "
                        "action")
            assert answer.status == 403, (label, answer.body)
            assert answer.json()["__type"] == "AccessDeniedException"
            assert answer.json()["message"] == (
                f"User: {user} is not authorized to perform: cloudtrail:ListTrails on "
                f"resource: * {why}")
    # The refusals are on record; over plain HTTP without tlsDetails, over HTTPS with them.
    deadline = time.monotonic() + 5
    while True:
        plain = [parse_record(e["CloudTrailEvent"]) for e in cairn.lookup_all(LookupAttributes=[
            {"AttributeKey": "Username", "AttributeValue": "deny-insecure-http"}])]
        if plain or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(r["eventName"], r["errorCode"]) for r in plain] == [
        ("ListTrails", "AccessDeniedException")]
    assert "tlsDetails" not in plain[0]


def serve_once(tmp: Path, *tls_args: str) -> subprocess.CompletedProcess:
    """`cairn serve` on a fresh data directory with these TLS arguments; it must exit."""
    data = tmp / ("data-" + uuid.uuid4().hex[:6])
    data.mkdir()
    env = dict(os.environ)
    env["CAIRN_MASTER_KEY_FILE"] = str(tmp / f"{data.name}.master.key")
    env["CAIRN_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["CAIRN_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    cmd = [str(cairn_bin()), "serve", "--data-dir", str(data), "--listen",
           f"127.0.0.1:{free_port()}", *tls_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"cairn serve {' '.join(tls_args)} kept running\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_unusable_tls_files_stop_serve(tmp_path, pki):
    cert, key = str(pki["cert"]), str(pki["key"])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM at all\n")
    missing = tmp_path / "missing.pem"
    cases = [
        (["--tls-cert", cert, "--tls-key", str(garbage)],
         f"TLS key file {garbage} contains no private key"),
        (["--tls-cert", cert, "--tls-key", str(missing)],
         f"cannot read TLS key file {missing}: "),
        (["--tls-cert", cert, "--tls-key", str(pki["other_key"])],
         f"TLS key file {pki['other_key']} does not match the certificate in {cert}"),
        (["--tls-cert", str(garbage), "--tls-key", key],
         f"TLS certificate file {garbage} contains no certificate"),
        (["--tls-cert", key, "--tls-key", key],
         f"TLS certificate file {key} contains no certificate"),
    ]
    for args, message in cases:
        proc = serve_once(tmp_path, *args)
        assert proc.returncode != 0, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "is running" not in proc.stdout
    # Both halves are needed.
    proc = serve_once(tmp_path, "--tls-cert", cert)
    assert proc.returncode != 0 and "--tls-key" in proc.stderr, proc.stderr


def test_cairn_admin_over_https_with_a_private_ca(tls, pki):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CAIRN_"))}
    env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "AWS_REGION": REGION, "CAIRN_ENDPOINT_URL": tls.endpoint,
                "AWS_CA_BUNDLE": str(pki["ca"]), "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    proc = subprocess.run([str(tls.server.binary), "admin", "list-users"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "admin" in [u["UserName"] for u in json.loads(proc.stdout)["Users"]]
