//! The server as a user runs it: `cairn serve` as a child process on a free loopback port.
//! Durability under SIGKILL, visibility, paging while events arrive, retention, restarts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientArgs};
use serde_json::{Value, json};

const KEY: &str = "AKIATESTSERVER000001";
const SECRET: &str = "test-secret-for-the-server-tests-000000";

struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--account-id",
                "111122223333",
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("CAIRN_ACCESS_KEY_ID", KEY)
            .env("CAIRN_SECRET_ACCESS_KEY", SECRET)
            .env("CAIRN_MASTER_KEY", "5e".repeat(32))
            .env("CAIRN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cairn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("cairn serve exited before printing its endpoint")
                .expect("read stdout");
            if let Some(rest) = line.trim().strip_prefix("API endpoint:") {
                break rest.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, endpoint }
    }

    fn client(&self) -> Client {
        let args = ClientArgs {
            endpoint_url: Some(self.endpoint.clone()),
            profile: None,
            region: Some("us-east-1".into()),
            ca_bundle: None,
        };
        Client::with_credentials(&args, KEY, SECRET).expect("client")
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cairn serve did not stop within 20 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record(id: &str, time: &str, user: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventID": id,
        "eventTime": time,
        "eventName": "RunInstances",
        "eventSource": "ec2.amazonaws.com",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {"type": "IAMUser", "userName": user, "accessKeyId": "AKIAEXAMPLE"},
    })
}

fn ingest(client: &Client, records: &[Value]) -> anyhow::Result<Value> {
    let mut body = Vec::new();
    for r in records {
        body.extend_from_slice(&serde_json::to_vec(r)?);
        body.push(b'\n');
    }
    let (status, resp) = client.post("/v1/events", "cloudtrail", &[], body)?;
    let v: Value = serde_json::from_slice(&resp)?;
    anyhow::ensure!(status == 200, "ingest answered {status}: {v}");
    Ok(v)
}

/// Every event ID in the account's history, paging with LookupEvents.
/// Every event the account has, except Cairn's records of the test's own calls.
fn all_ids(client: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    let mut input = json!({"MaxResults": 50});
    loop {
        let resp = client.call("LookupEvents", &input).expect("lookup");
        for e in resp["Events"].as_array().expect("Events") {
            if e["AccessKeyId"] == KEY {
                continue;
            }
            ids.push(e["EventId"].as_str().expect("EventId").to_owned());
        }
        match resp["NextToken"].as_str() {
            Some(t) => input["NextToken"] = json!(t),
            None => return ids,
        }
    }
}

fn now_iso() -> String {
    cairn_event::format_event_time(cairn_event::now_ms())
}

/// Writers that ingest batches of unique events until `stop` (or until the server dies under
/// them), recording every acknowledged eventID.
fn spawn_writers(
    server: &Server,
    writers: usize,
    batch_size: usize,
    prefix: &str,
    user: &'static str,
    acked: &Arc<Mutex<Vec<String>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let client = server.client();
            let acked = acked.clone();
            let stop = stop.clone();
            let prefix = prefix.to_owned();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<Value> = (0..batch_size)
                        .map(|i| record(&format!("{prefix}w{w}-b{n}-{i}"), &now_iso(), user))
                        .collect();
                    n += 1;
                    match ingest(&client, &batch) {
                        Ok(resp) => {
                            assert_eq!(resp["stored"], batch_size, "{resp}");
                            acked.lock().unwrap().extend(
                                batch
                                    .iter()
                                    .map(|r| r["eventID"].as_str().unwrap().to_owned()),
                            );
                        }
                        // The server died under us: this batch was never acknowledged.
                        Err(_) => break,
                    }
                }
            })
        })
        .collect()
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&server, 8, 50, "", "crash", &acked, &stop);
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 500,
        "too few events acknowledged before the kill: {}",
        acked.len()
    );

    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let found = all_ids(&client);
    let unique: std::collections::HashSet<&String> = found.iter().collect();
    assert_eq!(
        unique.len(),
        found.len(),
        "an event appears twice after the restart"
    );
    let missing: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // Replaying acknowledged events stores nothing new.
    let replay: Vec<Value> = acked[..100]
        .iter()
        .map(|id| record(id, &now_iso(), "crash"))
        .collect();
    let resp = ingest(&client, &replay).unwrap();
    assert_eq!(resp["stored"], 0);
    assert_eq!(resp["duplicates"], 100);
    server.stop();
}

#[test]
fn events_are_visible_at_once_and_paging_holds_while_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();

    // Visible within a second of the acknowledgement.
    let t = Instant::now();
    ingest(&client, &[record("visible-1", &now_iso(), "vis")]).unwrap();
    let found = loop {
        let resp = client
            .call("LookupEvents", &json!({"LookupAttributes": [{"AttributeKey": "EventId", "AttributeValue": "visible-1"}]}))
            .unwrap();
        if resp["Events"].as_array().is_some_and(|e| e.len() == 1)
            || t.elapsed() > Duration::from_secs(1)
        {
            break resp;
        }
    };
    assert_eq!(
        found["Events"][0]["EventId"], "visible-1",
        "not visible within 1 s"
    );

    // 1000 events over the last hours, then page through them while writers add more,
    // both newer (live) and older (an import) than the ones being paged.
    let base = cairn_event::now_ms() - 3 * 3_600_000;
    let preload: Vec<Value> = (0..1000)
        .map(|i| {
            record(
                &format!("pre-{i}"),
                &cairn_event::format_event_time(base + i * 7_000),
                "pager",
            )
        })
        .collect();
    for chunk in preload.chunks(100) {
        ingest(&client, chunk).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = server.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let old = cairn_event::format_event_time(base + (n % 1000) * 7_000 + 3_500);
                let batch = vec![
                    record(&format!("live-{n}"), &now_iso(), "pager"),
                    record(&format!("old-{n}"), &old, "pager"),
                ];
                ingest(&client, &batch).unwrap();
                n += 1;
            }
        })
    };
    let mut seen = Vec::new();
    let mut input = json!({"MaxResults": 7, "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "pager"}]});
    loop {
        let resp = client.call("LookupEvents", &input).unwrap();
        for e in resp["Events"].as_array().unwrap() {
            seen.push(e["EventId"].as_str().unwrap().to_owned());
        }
        match resp["NextToken"].as_str() {
            Some(t) => input["NextToken"] = json!(t),
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let mut counts = std::collections::HashMap::new();
    for id in &seen {
        *counts.entry(id.as_str()).or_insert(0) += 1;
    }
    assert!(
        counts.values().all(|c| *c == 1),
        "an event came twice while paging"
    );
    for i in 0..1000 {
        assert!(
            counts.contains_key(format!("pre-{i}").as_str()),
            "pre-{i} was skipped while paging"
        );
    }
    server.stop();
}

#[test]
fn retention_drops_old_segments_and_restart_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // (The lake holds the journal until it has written its segment files, and Insights until
    // they have saved their state: short periods let retention work within the test's time.)
    let server = Server::start(
        dir.path(),
        &[
            "--retention-days",
            "3s",
            "--lake-flush",
            "1s",
            "--insights-save-interval",
            "1s",
        ],
    );
    let client = server.client();
    ingest(
        &client,
        &[record("short-lived", "2020-01-01T00:00:00Z", "ret")],
    )
    .unwrap();
    assert_eq!(all_ids(&client), ["short-lived"]);
    // Retention counts from when the event was stored, not its (old) event time.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !all_ids(&client).is_empty() {
        assert!(
            Instant::now() < deadline,
            "retention did not drop the event"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    ingest(&client, &[record("kept", "2020-01-01T00:00:00Z", "ret")]).unwrap();
    server.stop();
    let server = Server::start(dir.path(), &["--retention-days", "forever"]);
    assert_eq!(all_ids(&server.client()), ["kept"]);
    server.stop();
}

/// Every eventID in the trail's log files under a folder bucket, with repeats.
fn ids_in_trail_files(bucket_dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().contains("/CloudTrail/") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(bucket_dir, &mut files);
    let mut ids = Vec::new();
    for f in files {
        let gz = std::fs::read(&f).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        for r in v["Records"].as_array().unwrap() {
            ids.push(r["eventID"].as_str().unwrap().to_owned());
        }
    }
    ids
}

#[test]
fn trail_files_hold_every_acknowledged_event_once_across_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("buckets/crash-logs")).unwrap();
    let fast = ["--delivery-interval", "150ms", "--digest-period", "2s"];
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..4u64 {
        let server = Server::start(dir.path(), &fast);
        let client = server.client();
        if round == 0 {
            client
                .call(
                    "CreateTrail",
                    &json!({"Name": "crash", "S3BucketName": "crash-logs",
                            "IsMultiRegionTrail": true, "EnableLogFileValidation": true}),
                )
                .expect("CreateTrail");
            client
                .call("StartLogging", &json!({"Name": "crash"}))
                .expect("StartLogging");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers = spawn_writers(
            &server,
            4,
            20,
            &format!("r{round}-"),
            "trail",
            &acked,
            &stop,
        );
        // Kill at a different point of the delivery cycle each round.
        std::thread::sleep(Duration::from_millis(400 + 230 * round));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    }
    let server = Server::start(dir.path(), &fast);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 200,
        "too few events acknowledged: {}",
        acked.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let bucket_dir = dir.path().join("buckets/crash-logs");
    loop {
        let found = ids_in_trail_files(&bucket_dir);
        let unique: std::collections::HashSet<&String> = found.iter().collect();
        assert_eq!(
            unique.len(),
            found.len(),
            "an event is in the trail's files twice"
        );
        let missing = acked.iter().filter(|id| !unique.contains(id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged events never reached the trail's files"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop();
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let target = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

#[test]
fn store_segments_are_copied_to_a_bucket_and_restored_from_it() {
    let first = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(first.path().join("buckets/store-copy")).unwrap();
    let flags = [
        "--journal-segment-age",
        "1s",
        "--delivery-interval",
        "200ms",
        "--store-bucket",
        "store-copy",
    ];
    let server = Server::start(first.path(), &flags);
    let client = server.client();
    for name in ["a", "b", "c"] {
        ingest(&client, &[record(name, &now_iso(), "archived")]).unwrap();
        std::thread::sleep(Duration::from_millis(1300));
    }
    server.stop();
    let copied = std::fs::read_dir(first.path().join("buckets/store-copy/cairn-store/journal"))
        .unwrap()
        .count();
    assert!(copied >= 2, "only {copied} sealed segments were copied");

    // A new machine: an empty data directory and the bucket.
    let second = tempfile::tempdir().unwrap();
    copy_tree(
        &first.path().join("buckets"),
        &second.path().join("buckets"),
    );
    let server = Server::start(second.path(), &flags);
    let ids = all_ids(&server.client());
    assert!(
        ids.contains(&"a".to_owned()) && ids.contains(&"b".to_owned()),
        "{ids:?}"
    );
    server.stop();
}

/// Runs `cairn rules ARGS` against the server: (success, stdout, stderr).
fn cairn_rules(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("rules")
        .args(args)
        .args(["--endpoint-url", &server.endpoint, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_PROFILE")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run cairn rules");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rules_json(server: &Server, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = cairn_rules(server, args);
    assert!(ok, "cairn rules {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[test]
fn rules_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let pattern = r#"{"source": ["aws.s3"], "detail": {"eventName": ["DeleteBucket"]}}"#;
    let (ok, out, err) = cairn_rules(
        &server,
        &[
            "add",
            "bucket-gone",
            "--pattern",
            pattern,
            "--severity",
            "critical",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Created rule bucket-gone"), "{out}");
    let (ok, out, _) = cairn_rules(&server, &["add", "bucket-gone", "--pattern", pattern]);
    assert!(ok && out.contains("Replaced rule bucket-gone"), "{out}");
    cairn_rules(
        &server,
        &[
            "add",
            "bucket-gone",
            "--pattern",
            pattern,
            "--severity",
            "critical",
        ],
    );

    // A bad pattern: the server's code and the path at fault, and a failing exit.
    let (ok, _, err) = cairn_rules(
        &server,
        &[
            "add",
            "bad",
            "--pattern",
            r#"{"detail": {"eventName": "DeleteBucket"}}"#,
        ],
    );
    assert!(!ok, "a bad pattern was accepted");
    assert!(
        err.contains("InvalidEventPatternException") && err.contains("detail.eventName"),
        "{err}"
    );

    // The default pack's rule for the same event, turned off: only ours alerts.
    let (ok, _, err) = cairn_rules(&server, &["disable", "cairn-bucket-deleted"]);
    assert!(ok, "{err}");
    let listed = rules_json(&server, &["list", "--json"]);
    let rule = |name: &str| {
        listed["Rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["Name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
            .clone()
    };
    assert_eq!(rule("cairn-bucket-deleted")["Enabled"], false);
    assert_eq!(rule("bucket-gone")["Severity"], "critical");
    let (ok, table, _) = cairn_rules(&server, &["list"]);
    assert!(ok && table.contains("bucket-gone") && table.contains("Last match"));

    let mut ev = record("bucket-gone-1", &now_iso(), "cleaner");
    ev["eventName"] = json!("DeleteBucket");
    ev["eventSource"] = json!("s3.amazonaws.com");
    ev["requestParameters"] = json!({"bucketName": "doomed-bucket"});
    ingest(&server.client(), &[ev]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let alerts = loop {
        let alerts = rules_json(&server, &["alerts", "--json"]);
        if alerts.as_array().is_some_and(|a| !a.is_empty()) {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "no alert within 5 s of the event"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["rule"]["name"], "bucket-gone");
    assert_eq!(alerts[0]["eventId"], "bucket-gone-1");
    let (ok, table, _) = cairn_rules(&server, &["alerts", "--rule", "bucket-gone"]);
    assert!(ok && table.contains("DeleteBucket by") && table.contains("/console/events?"));
    let shown = rules_json(&server, &["show", "bucket-gone", "--json"]);
    assert_eq!(shown["Hits"]["Alerts"], 1, "{shown}");

    // Tests: on stored history (on the server), and on a file (here, with no server at all).
    let tested = rules_json(
        &server,
        &[
            "test",
            "bucket-gone",
            "--start",
            "-1h",
            "--end",
            "now",
            "--json",
        ],
    );
    assert_eq!(tested["Alerts"][0]["eventId"], "bucket-gone-1", "{tested}");
    let local = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rules", "test", "--file"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/datasets/seed-scenarios.jsonl"),
        )
        .arg("--sigma")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/datasets/sigma/aws_cloudtrail_console_login_failed_authentication.yml",
        ))
        .args(["--endpoint-url", "http://127.0.0.1:9"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&local.stdout);
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    assert!(out.contains("7 scanned, 2 matched, 2 alerts"), "{out}");

    let (ok, _, err) = cairn_rules(&server, &["delete", "bucket-gone"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cairn_rules(&server, &["show", "bucket-gone"]);
    assert!(!ok && err.contains("RuleNotFoundException"), "{err}");
    let (ok, out, _) = cairn_rules(&server, &["targets"]);
    assert!(ok && out.contains("No alert targets"), "{out}");
    server.stop();
}
