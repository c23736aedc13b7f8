//! A small SigV4-signing client for the Cairn API, used by the `cairn` command and the tests.
//! It finds its endpoint and credentials the way AWS tools do: flags, then `CAIRN_ENDPOINT_URL`
//! or the AWS endpoint variables, then the AWS environment variables and profile files.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::Value;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8517";

#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The Cairn endpoint (also CAIRN_ENDPOINT_URL, AWS_ENDPOINT_URL_CLOUDTRAIL, AWS_ENDPOINT_URL).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// The named profile in ~/.aws/credentials and ~/.aws/config (also AWS_PROFILE).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// The region to sign for (also AWS_REGION, AWS_DEFAULT_REGION, the profile's region).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// PEM certificates to trust for an HTTPS endpoint with a private CA (also AWS_CA_BUNDLE).
    #[arg(long, global = true)]
    pub ca_bundle: Option<PathBuf>,
}

pub struct Client {
    http: reqwest::blocking::Client,
    endpoint: String,
    region: String,
    creds: Credentials,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// Reads `key` of `section` from an INI file, if both exist.
fn ini_value(path: &PathBuf, section: &str, key: &str) -> Option<String> {
    let ini = ini::Ini::load_from_file(path).ok()?;
    ini.section(Some(section))?.get(key).map(str::to_owned)
}

fn credentials_file() -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/credentials")))
}

fn config_file() -> Option<PathBuf> {
    env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/config")))
}

fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".into()
    } else {
        format!("profile {profile}")
    }
}

fn find_credentials(profile: Option<&str>) -> Result<Credentials> {
    let explicit_profile = profile.map(str::to_owned).or_else(|| env("AWS_PROFILE"));
    if explicit_profile.is_none()
        && let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials::new(
            id,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    let profile = explicit_profile.unwrap_or_else(|| "default".into());
    let from = |file: Option<PathBuf>, section: &str| -> Option<Credentials> {
        let file = file?;
        let id = ini_value(&file, section, "aws_access_key_id")?;
        let secret = ini_value(&file, section, "aws_secret_access_key")?;
        let token = ini_value(&file, section, "aws_session_token");
        Some(Credentials::new(id, secret, token, None, "profile"))
    };
    if let Some(c) = from(credentials_file(), &profile)
        .or_else(|| from(config_file(), &config_section(&profile)))
    {
        return Ok(c);
    }
    bail!(
        "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (printed by `cairn serve`), or configure profile {profile:?} in ~/.aws/credentials"
    )
}

/// The HTTP client, trusting the certificates of `--ca-bundle` or `AWS_CA_BUNDLE` besides
/// the usual roots.
fn http_client(args: &ClientArgs) -> Result<reqwest::blocking::Client> {
    let mut builder =
        reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300));
    if let Some(path) = args
        .ca_bundle
        .clone()
        .or_else(|| env("AWS_CA_BUNDLE").map(PathBuf::from))
    {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

impl Client {
    pub fn new(args: &ClientArgs) -> Result<Client> {
        let endpoint = args
            .endpoint_url
            .clone()
            .or_else(|| env("CAIRN_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT_URL_CLOUDTRAIL"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let profile = args.profile.clone().or_else(|| env("AWS_PROFILE"));
        let region = args
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| {
                let p = profile.clone().unwrap_or_else(|| "default".into());
                config_file().and_then(|f| ini_value(&f, &config_section(&p), "region"))
            })
            .unwrap_or_else(|| "us-east-1".to_owned());
        let creds = find_credentials(args.profile.as_deref())?;
        Ok(Client {
            http: http_client(args)?,
            endpoint,
            region,
            creds,
        })
    }

    /// A client with the given key instead of discovered credentials.
    pub fn with_credentials(args: &ClientArgs, key_id: &str, secret: &str) -> Result<Client> {
        let endpoint = args
            .endpoint_url
            .clone()
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Ok(Client {
            http: http_client(args)?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: args.region.clone().unwrap_or_else(|| "us-east-1".into()),
            creds: Credentials::new(key_id, secret, None, None, "given"),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends a signed POST and returns the status and body.
    pub fn post(
        &self,
        path_and_query: &str,
        service: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>)> {
        let url = format!("{}{}", self.endpoint, path_and_query);
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .ok_or_else(|| anyhow!("bad endpoint URL {url}"))?
            .to_owned();
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("host".into(), host));
        let identity = self.creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &url,
            all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut req = self.http.post(&url);
        for (k, v) in &all {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let resp = req
            .body(body)
            .send()
            .with_context(|| format!("cannot reach Cairn at {}", self.endpoint))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes()?.to_vec();
        Ok((status, bytes))
    }

    /// Calls a CloudTrail operation; an AWS error becomes an `Err` naming its code.
    pub fn call(&self, op: &str, input: &Value) -> Result<Value> {
        self.call_target(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
            op,
            input,
        )
    }

    /// Calls one of Cairn's own operations (`Cairn_20261121.<op>`), signed for `cloudtrail`.
    pub fn call_cairn(&self, op: &str, input: &Value) -> Result<Value> {
        self.call_target("Cairn_20261121.", op, input)
    }

    /// Calls the JSON 1.1 operation `<prefix><op>` signed for `cloudtrail`.
    fn call_target(&self, prefix: &str, op: &str, input: &Value) -> Result<Value> {
        let target = format!("{prefix}{op}");
        let (status, body) = self.post(
            "/",
            "cloudtrail",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
            ],
            serde_json::to_vec(input)?,
        )?;
        parse_response(status, &body)
    }
}

impl Client {
    /// Calls one of Cairn's identity operations (`cairn admin`).
    pub fn call_admin(&self, op: &str, input: &Value) -> Result<Value> {
        let target = format!("CairnAdmin_20261121.{op}");
        let (status, body) = self.post(
            "/",
            "iam",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
            ],
            serde_json::to_vec(input)?,
        )?;
        parse_response(status, &body)
    }
}

pub fn parse_response(status: u16, body: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    if status == 200 {
        return Ok(v);
    }
    let code = v["__type"].as_str().unwrap_or("Error");
    let msg = v["message"].as_str().unwrap_or_default();
    Err(anyhow!("{code} (HTTP {status}): {msg}"))
}
