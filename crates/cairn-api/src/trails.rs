//! The trail management operations of the CloudTrail API: CreateTrail, UpdateTrail,
//! DeleteTrail, GetTrail, DescribeTrails, ListTrails, GetTrailStatus, StartLogging,
//! StopLogging, Put/GetEventSelectors, Put/GetInsightSelectors, AddTags, ListTags and
//! RemoveTags.
//!
//! A trail lives in its home region (the region of the request that created it). A
//! multi-region trail also shows in every other region as a shadow trail: DescribeTrails lists
//! it there, and GetTrail / GetTrailStatus / GetEventSelectors / GetInsightSelectors / ListTags
//! find it by ARN. Changes are accepted only in the home region (InvalidHomeRegionException).
//! Cairn has no KMS, CloudWatch Logs or AWS Organizations, and says so when asked for them.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use cairn_trail::config::{Tag, Trail, check_trail_name, ip_shaped};
use cairn_trail::registry::{RegistryError, Trails};
use cairn_trail::selectors::Selectors;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::{Input, paging_token, parse_paging_token};

/// Trails per ListTrails page.
const LIST_PAGE: usize = 20;
/// Tags per resource.
const MAX_TAGS: usize = 50;
/// Resources per ListTags call.
const MAX_LIST_TAGS_IDS: usize = 20;
const MAX_PREFIX: usize = 200;
const MAX_TOPIC: usize = 256;

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

fn not_found(reference: &str, account: &str, hint: &str) -> ApiError {
    ApiError::new(
        "TrailNotFoundException",
        404,
        format!("Unknown trail: {reference} for the user: {account}{hint}"),
    )
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::AlreadyExists { .. } => {
            ApiError::bad("TrailAlreadyExistsException", e.to_string())
        }
        RegistryError::TooMany { .. } => {
            ApiError::new("MaximumNumberOfTrailsExceededException", 403, e.to_string())
        }
        RegistryError::NotFound { .. } => {
            ApiError::new("TrailNotFoundException", 404, e.to_string())
        }
        RegistryError::Io { .. } | RegistryError::Encode(_) => {
            tracing::error!(error = %e, "cannot save trails");
            ApiError::internal(format!("cannot save the trail: {e}"))
        }
    }
}

/// An ApiError as the error type of a registry update.
struct Refusal(ApiError);

impl From<RegistryError> for Refusal {
    fn from(e: RegistryError) -> Refusal {
        Refusal(registry_error(e))
    }
}

/// Runs a registry change (which writes and fsyncs a file) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the trail change did not finish: {e}")))?
}

// ------------------------------------------------------------------------------------------
// Reading members
// ------------------------------------------------------------------------------------------

/// An optional string where the empty string means "none" (how UpdateTrail clears a member).
fn opt_text<'a>(input: &'a Input, name: &str) -> Result<Option<&'a str>, ApiError> {
    Ok(input.opt_str(name)?.filter(|s| !s.is_empty()))
}

// ------------------------------------------------------------------------------------------
// Names and ARNs
// ------------------------------------------------------------------------------------------

/// A trail as a request names it.
enum TrailRef {
    Name(String),
    Arn {
        region: String,
        account: String,
        name: String,
    },
}

fn invalid_arn(reference: &str) -> ApiError {
    ApiError::bad(
        "CloudTrailARNInvalidException",
        format!(
            "{reference} is not a valid trail ARN: use arn:aws:cloudtrail:<region>:<account-id>:trail/<trail-name>"
        ),
    )
}

fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

fn parse_trail_arn(reference: &str) -> Result<TrailRef, ApiError> {
    let parts: Vec<&str> = reference.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1] == "aws"
        && parts[2] == "cloudtrail"
        && valid_region(parts[3])
        && valid_account(parts[4]);
    let name = parts
        .get(5)
        .and_then(|r| r.strip_prefix("trail/"))
        .filter(|n| check_trail_name(n).is_ok());
    match name {
        Some(name) if ok => Ok(TrailRef::Arn {
            region: parts[3].to_owned(),
            account: parts[4].to_owned(),
            name: name.to_owned(),
        }),
        _ => Err(invalid_arn(reference)),
    }
}

fn parse_ref(reference: &str) -> Result<TrailRef, ApiError> {
    if reference.starts_with("arn:") {
        return parse_trail_arn(reference);
    }
    check_trail_name(reference).map_err(|m| ApiError::bad("InvalidTrailNameException", m))?;
    Ok(TrailRef::Name(reference.to_owned()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Reading: the trail must show in the caller's region (shadows by ARN).
    Read,
    /// Changing: the caller must be in the trail's home region.
    Home,
}

fn wrong_region(t: &Trail, caller: &Caller) -> ApiError {
    ApiError::bad(
        "InvalidHomeRegionException",
        format!(
            "Trail {} was created in {} and can be changed only there; this request was made to {} (call with --region {})",
            t.arn(),
            t.home_region,
            caller.region,
            t.home_region
        ),
    )
}

/// The trail a request names (by name or ARN), as the caller may see it.
fn find(trails: &Trails, caller: &Caller, reference: &str, need: Need) -> Result<Trail, ApiError> {
    let account = &caller.account_id;
    match parse_ref(reference)? {
        TrailRef::Arn {
            region,
            account: owner,
            name,
        } => {
            if &owner != account {
                return Err(not_found(reference, account, ""));
            }
            let t = trails
                .get(account, &region, &name)
                .filter(|t| t.visible_in(&caller.region))
                .ok_or_else(|| not_found(reference, account, ""))?;
            if need == Need::Home && t.home_region != caller.region {
                return Err(wrong_region(&t, caller));
            }
            Ok(t)
        }
        TrailRef::Name(name) => {
            if let Some(t) = trails.get(account, &caller.region, &name) {
                return Ok(t);
            }
            let shadow = trails
                .of_account(account)
                .into_iter()
                .find(|t| t.name == name && t.multi_region);
            match shadow {
                Some(t) if need == Need::Home => Err(wrong_region(&t, caller)),
                Some(t) => Err(not_found(
                    reference,
                    account,
                    &format!(
                        ". {name} is a multi-region trail whose home region is {}; in {} name it by its ARN, {}",
                        t.home_region,
                        caller.region,
                        t.arn()
                    ),
                )),
                None => Err(not_found(reference, account, "")),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Member validation
// ------------------------------------------------------------------------------------------

fn check_prefix(prefix: &str) -> Result<(), ApiError> {
    let n = prefix.chars().count();
    if n > MAX_PREFIX {
        return Err(ApiError::bad(
            "InvalidS3PrefixException",
            format!("S3KeyPrefix is {n} characters long; the maximum is {MAX_PREFIX}"),
        ));
    }
    let trimmed = prefix.trim_matches('/');
    let bad_segment = trimmed
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if (!trimmed.is_empty() && bad_segment) || prefix.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad(
            "InvalidS3PrefixException",
            format!(
                "S3KeyPrefix {prefix:?} is not valid: use key segments separated by single slashes, without . or .. segments or control characters"
            ),
        ));
    }
    Ok(())
}

fn valid_topic_name(name: &str) -> bool {
    (1..=MAX_TOPIC).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_topic(topic: &str) -> Result<(), ApiError> {
    let ok = if topic.starts_with("arn:") {
        let parts: Vec<&str> = topic.splitn(6, ':').collect();
        topic.len() <= MAX_TOPIC
            && parts.len() == 6
            && parts[1].starts_with("aws")
            && parts[2] == "sns"
            && valid_region(parts[3])
            && valid_account(parts[4])
            && valid_topic_name(parts[5])
    } else {
        valid_topic_name(topic)
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "InvalidSnsTopicNameException",
            format!(
                "SnsTopicName {topic:?} is not valid: give a topic name of 1 to 256 letters, digits, hyphens and underscores, or a topic ARN arn:aws:sns:<region>:<account-id>:<name>"
            ),
        ))
    }
}

fn check_bucket_name(name: &str) -> Result<(), ApiError> {
    if cairn_bucket::valid_bucket_name(name) && !ip_shaped(name) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "InvalidS3BucketNameException",
            format!(
                "{name:?} is not a valid bucket name: use 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit, not shaped like an IP address"
            ),
        ))
    }
}

/// Checks that the bucket exists where Cairn keeps buckets, and that a folder bucket made
/// through Cairn's S3 API belongs to the caller's account (the bucket policy of Cairn).
async fn check_bucket_exists(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<(), ApiError> {
    check_bucket_name(name)?;
    if let Ok(Some(owner)) = state.buckets.folder_bucket_owner(name)
        && owner != caller.account_id
    {
        return Err(ApiError::bad(
            "InsufficientS3BucketPolicyException",
            format!(
                "bucket {name} belongs to another account: a trail can only write into a bucket of its own account"
            ),
        ));
    }
    let bucket = state
        .buckets
        .bucket(name)
        .map_err(|e| ApiError::bad("InvalidS3BucketNameException", e.to_string()))?;
    match bucket.exists().await {
        Ok(true) => Ok(()),
        Ok(false) => {
            let how = match &state.buckets {
                cairn_bucket::Backend::Folder { root } => format!(
                    "Create it first: aws s3 mb s3://{name} --endpoint-url <your Cairn URL> (or make the folder {})",
                    root.join(name).display()
                ),
                cairn_bucket::Backend::S3(_) => format!(
                    "Create it first on {}: aws s3 mb s3://{name} with that service's endpoint",
                    state.buckets.describe()
                ),
            };
            Err(ApiError::new(
                "S3BucketDoesNotExistException",
                404,
                format!("S3 bucket {name} does not exist. {how}"),
            ))
        }
        Err(e) => Err(ApiError::internal(format!(
            "cannot tell whether bucket {name} exists: {e}"
        ))),
    }
}

/// Refuses what Cairn does not have: KMS keys, CloudWatch Logs, AWS Organizations.
fn refuse_unsupported(input: &Input) -> Result<(), ApiError> {
    if let Some(key) = opt_text(input, "KmsKeyId")? {
        return Err(ApiError::bad(
            "KmsKeyNotFoundException",
            format!(
                "KMS key {key} cannot be used: Cairn has no AWS KMS, so it does not encrypt log files with KMS keys. Leave out KmsKeyId; log file validation (EnableLogFileValidation) makes the files tamper-evident"
            ),
        ));
    }
    for member in ["CloudWatchLogsLogGroupArn", "CloudWatchLogsRoleArn"] {
        if opt_text(input, member)?.is_some() {
            return Err(ApiError::bad(
                "CloudWatchLogsDeliveryUnavailableException",
                format!(
                    "{member}: Cairn does not deliver trail events to CloudWatch Logs; leave out CloudWatchLogsLogGroupArn and CloudWatchLogsRoleArn"
                ),
            ));
        }
    }
    if input.opt_bool("IsOrganizationTrail")? == Some(true) {
        return Err(ApiError::new(
            "OrganizationsNotInUseException",
            404,
            "Cairn has no AWS Organizations, so it has no organization trails; leave out IsOrganizationTrail or set it to false",
        ));
    }
    Ok(())
}

fn combination_error() -> ApiError {
    ApiError::bad(
        "InvalidParameterCombinationException",
        "A multi-region trail must include global service events: IsMultiRegionTrail true needs IncludeGlobalServiceEvents true",
    )
}

fn tag_error(msg: String) -> ApiError {
    ApiError::bad("InvalidTagParameterException", msg)
}

/// Reads a TagsList; `keys_only` for RemoveTags.
fn parse_tags(list: &[Value], keys_only: bool) -> Result<Vec<Tag>, ApiError> {
    let mut tags: Vec<Tag> = Vec::with_capacity(list.len());
    for v in list {
        let Some(o) = v.as_object() else {
            return Err(tag_error(
                "each tag must be an object with Key and Value".into(),
            ));
        };
        let key = match o.get("Key") {
            Some(Value::String(k)) => k.clone(),
            _ => return Err(tag_error("each tag needs a Key".into())),
        };
        let value = match o.get("Value") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(tag_error(format!(
                    "the Value of tag {key} must be a string"
                )));
            }
        };
        let klen = key.chars().count();
        if klen == 0 || klen > 128 {
            return Err(tag_error(format!(
                "tag key {key:?} is {klen} characters long; keys are 1 to 128 characters"
            )));
        }
        if !keys_only
            && let Some(v) = &value
            && v.chars().count() > 256
        {
            return Err(tag_error(format!(
                "the value of tag {key} is longer than 256 characters"
            )));
        }
        if tags.iter().any(|t| t.key == key) {
            return Err(tag_error(format!(
                "tag key {key} appears more than once in the request"
            )));
        }
        tags.push(Tag { key, value });
    }
    Ok(tags)
}

fn too_many_tags(n: usize) -> ApiError {
    ApiError::bad(
        "TagsLimitExceededException",
        format!("a resource can have at most {MAX_TAGS} tags; this request would give it {n}"),
    )
}

fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| {
                let mut m = Map::new();
                m.insert("Key".into(), Value::String(t.key.clone()));
                if let Some(v) = &t.value {
                    m.insert("Value".into(), Value::String(v.clone()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

// ------------------------------------------------------------------------------------------
// Responses
// ------------------------------------------------------------------------------------------

fn put_opt(m: &mut Map<String, Value>, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        m.insert(key.into(), Value::String(v.to_owned()));
    }
}

/// The members CreateTrail and UpdateTrail return.
fn trail_response(t: &Trail) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), json!(t.name));
    m.insert("S3BucketName".into(), json!(t.s3_bucket));
    put_opt(&mut m, "S3KeyPrefix", t.s3_key_prefix.as_deref());
    put_opt(&mut m, "SnsTopicName", t.sns_topic_name.as_deref());
    put_opt(&mut m, "SnsTopicARN", t.sns_topic_arn().as_deref());
    m.insert(
        "IncludeGlobalServiceEvents".into(),
        json!(t.include_global_service_events),
    );
    m.insert("IsMultiRegionTrail".into(), json!(t.multi_region));
    m.insert("TrailARN".into(), json!(t.arn()));
    m.insert(
        "LogFileValidationEnabled".into(),
        json!(t.log_file_validation),
    );
    put_opt(
        &mut m,
        "CloudWatchLogsLogGroupArn",
        t.cloudwatch_logs_log_group_arn.as_deref(),
    );
    put_opt(
        &mut m,
        "CloudWatchLogsRoleArn",
        t.cloudwatch_logs_role_arn.as_deref(),
    );
    put_opt(&mut m, "KmsKeyId", t.kms_key_id.as_deref());
    m.insert("IsOrganizationTrail".into(), json!(false));
    if let Some(r) = t.recursive_logging {
        m.insert("RecursiveLogging".into(), json!(r));
    }
    Value::Object(m)
}

/// The `Trail` structure of GetTrail and DescribeTrails.
fn trail_json(t: &Trail) -> Value {
    let mut v = trail_response(t);
    if let Value::Object(m) = &mut v {
        m.insert("HomeRegion".into(), json!(t.home_region));
        m.insert(
            "HasCustomEventSelectors".into(),
            json!(t.selectors.is_custom()),
        );
        m.insert(
            "HasInsightSelectors".into(),
            json!(!t.insight_selectors.is_empty()),
        );
    }
    v
}

fn secs(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn iso(ms: i64) -> Value {
    Value::String(cairn_event::format_event_time(ms))
}

// ------------------------------------------------------------------------------------------
// The operations
// ------------------------------------------------------------------------------------------

pub async fn create_trail(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let name = input.req_str("Name")?;
    check_trail_name(name).map_err(|m| ApiError::bad("InvalidTrailNameException", m))?;
    let bucket = input.req_str("S3BucketName")?;
    check_bucket_name(bucket)?;
    let prefix = opt_text(input, "S3KeyPrefix")?;
    if let Some(p) = prefix {
        check_prefix(p)?;
    }
    let topic = opt_text(input, "SnsTopicName")?;
    if let Some(t) = topic {
        check_topic(t)?;
    }
    refuse_unsupported(input)?;
    let global = input
        .opt_bool("IncludeGlobalServiceEvents")?
        .unwrap_or(true);
    let multi = input.opt_bool("IsMultiRegionTrail")?.unwrap_or(false);
    let validation = input.opt_bool("EnableLogFileValidation")?.unwrap_or(false);
    let recursive = input.opt_bool("RecursiveLogging")?;
    if multi && !global {
        return Err(combination_error());
    }
    let tags = parse_tags(&input.list("TagsList")?.unwrap_or_default(), false)?;
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags(tags.len()));
    }
    let trail = Trail {
        s3_key_prefix: prefix.map(str::to_owned),
        sns_topic_name: topic.map(str::to_owned),
        include_global_service_events: global,
        multi_region: multi,
        log_file_validation: validation,
        tags,
        created_ms: cairn_event::now_ms(),
        recursive_logging: recursive,
        ..Trail::new(&caller.account_id, &caller.region, name, bucket)
    };
    // Name and quota first (cheap, and what the caller most needs to hear), the bucket next;
    // the registry checks both rules again as it adds the trail.
    state.trails.check_new(&trail).map_err(registry_error)?;
    check_bucket_exists(state, caller, bucket).await?;
    let trails = Arc::clone(&state.trails);
    let created = blocking(move || trails.create(trail).map_err(registry_error)).await?;
    Ok(trail_response(&created))
}

pub async fn update_trail(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let t = find(&state.trails, caller, input.req_str("Name")?, Need::Home)?;
    let bucket = match input.opt_str("S3BucketName")? {
        Some(b) => {
            check_bucket_name(b)?;
            Some(b.to_owned())
        }
        None => None,
    };
    // An empty string clears a member.
    let prefix = input.opt_str("S3KeyPrefix")?.map(str::to_owned);
    if let Some(p) = &prefix {
        check_prefix(p)?;
    }
    let topic = input.opt_str("SnsTopicName")?.map(str::to_owned);
    if let Some(tp) = topic.as_deref().filter(|s| !s.is_empty()) {
        check_topic(tp)?;
    }
    refuse_unsupported(input)?;
    let global = input.opt_bool("IncludeGlobalServiceEvents")?;
    let multi = input.opt_bool("IsMultiRegionTrail")?;
    let validation = input.opt_bool("EnableLogFileValidation")?;
    let recursive = input.opt_bool("RecursiveLogging")?;
    if !global.unwrap_or(t.include_global_service_events) && multi.unwrap_or(t.multi_region) {
        return Err(combination_error());
    }
    if let Some(b) = &bucket {
        check_bucket_exists(state, caller, b).await?;
    }
    let trails = Arc::clone(&state.trails);
    let (account, home, name) = (t.account_id.clone(), t.home_region.clone(), t.name.clone());
    let updated = blocking(move || {
        trails
            .update(&account, &home, &name, |t: &mut Trail| {
                if let Some(b) = bucket {
                    t.s3_bucket = b;
                }
                if let Some(p) = prefix {
                    t.s3_key_prefix = Some(p).filter(|p| !p.is_empty());
                }
                if let Some(tp) = topic {
                    t.sns_topic_name = Some(tp).filter(|s| !s.is_empty());
                }
                if let Some(g) = global {
                    t.include_global_service_events = g;
                }
                if let Some(m) = multi {
                    t.multi_region = m;
                }
                if let Some(v) = validation {
                    t.log_file_validation = v;
                }
                if recursive.is_some() {
                    t.recursive_logging = recursive;
                }
                if t.multi_region && !t.include_global_service_events {
                    return Err(Refusal(combination_error()));
                }
                Ok(())
            })
            .map_err(|r: Refusal| r.0)
    })
    .await?;
    Ok(trail_response(&updated))
}

pub async fn delete_trail(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let t = find(&state.trails, caller, input.req_str("Name")?, Need::Home)?;
    let trails = Arc::clone(&state.trails);
    let removed = blocking(move || {
        trails
            .delete(&t.account_id, &t.home_region, &t.name)
            .map_err(registry_error)
    })
    .await?;
    // A trail created again under this name starts with a clean status.
    state.status.update(&removed.arn(), |s| {
        *s = cairn_trail::status::TrailStatus::default()
    });
    Ok(json!({}))
}

pub fn get_trail(state: &AppState, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
    let t = find(&state.trails, caller, input.req_str("Name")?, Need::Read)?;
    Ok(json!({ "Trail": trail_json(&t) }))
}

pub fn describe_trails(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let shadows = input.opt_bool("includeShadowTrails")?.unwrap_or(true);
    let names = input.list("trailNameList")?.unwrap_or_default();
    let region = &caller.region;
    let mine = state.trails.of_account(&caller.account_id);
    let shows = |t: &Trail| t.home_region == *region || (shadows && t.multi_region);
    let mut out: Vec<&Trail> = Vec::new();
    if names.is_empty() {
        out.extend(mine.iter().filter(|t| t.home_region == *region));
        out.extend(mine.iter().filter(|t| t.home_region != *region && shows(t)));
    } else {
        for n in &names {
            let Some(n) = n.as_str() else {
                return Err(ApiError::bad(
                    "SerializationException",
                    "trailNameList must be a list of strings",
                ));
            };
            let found = match parse_ref(n)? {
                TrailRef::Name(name) => mine
                    .iter()
                    .find(|t| t.home_region == *region && t.name == name),
                TrailRef::Arn {
                    region: home,
                    account,
                    name,
                } => mine.iter().find(|t| {
                    account == caller.account_id
                        && t.home_region == home
                        && t.name == name
                        && shows(t)
                }),
            };
            if let Some(t) = found
                && !out.iter().any(|o| std::ptr::eq(*o, t))
            {
                out.push(t);
            }
        }
    }
    let list: Vec<Value> = out.into_iter().map(trail_json).collect();
    Ok(json!({ "trailList": list }))
}

pub fn list_trails(state: &AppState, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
    let start = match input.opt_str("NextToken")? {
        Some(t) => parse_paging_token(t, "trails")?,
        None => 0,
    };
    let mine = state.trails.of_account(&caller.account_id);
    let page: Vec<Value> = mine
        .iter()
        .skip(start)
        .take(LIST_PAGE)
        .map(|t| json!({"TrailARN": t.arn(), "Name": t.name, "HomeRegion": t.home_region}))
        .collect();
    let mut out = json!({ "Trails": page });
    if start + LIST_PAGE < mine.len() {
        out["NextToken"] = Value::String(paging_token(start + LIST_PAGE, "trails"));
    }
    Ok(out)
}

pub fn get_trail_status(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let t = find(&state.trails, caller, input.req_str("Name")?, Need::Read)?;
    let s = state.status.get(&t.arn());
    let mut m = Map::new();
    m.insert("IsLogging".into(), json!(t.logging));
    if let Some(e) = &s.latest_delivery_error {
        m.insert("LatestDeliveryError".into(), json!(e));
    }
    if let Some(e) = &s.latest_notification_error {
        m.insert("LatestNotificationError".into(), json!(e));
    }
    if let Some(ms) = s.latest_delivery_ms {
        m.insert("LatestDeliveryTime".into(), secs(ms));
        m.insert("LatestDeliveryAttemptSucceeded".into(), iso(ms));
    }
    if let Some(ms) = s.latest_notification_ms {
        m.insert("LatestNotificationTime".into(), secs(ms));
        m.insert("LatestNotificationAttemptSucceeded".into(), iso(ms));
    }
    if let Some(ms) = s
        .latest_notification_attempt_ms
        .or(s.latest_notification_ms)
    {
        m.insert("LatestNotificationAttemptTime".into(), iso(ms));
    }
    if let Some(ms) = t.start_logging_ms {
        m.insert("StartLoggingTime".into(), secs(ms));
        m.insert("TimeLoggingStarted".into(), iso(ms));
    }
    if let Some(ms) = t.stop_logging_ms {
        m.insert("StopLoggingTime".into(), secs(ms));
        m.insert("TimeLoggingStopped".into(), iso(ms));
    }
    if let Some(ms) = s.latest_digest_delivery_ms {
        m.insert("LatestDigestDeliveryTime".into(), secs(ms));
    }
    if let Some(e) = &s.latest_digest_delivery_error {
        m.insert("LatestDigestDeliveryError".into(), json!(e));
    }
    if let Some(ms) = s.latest_delivery_attempt_ms.or(s.latest_delivery_ms) {
        m.insert("LatestDeliveryAttemptTime".into(), iso(ms));
    }
    Ok(Value::Object(m))
}

/// StartLogging (`on`) or StopLogging. Starting a trail that is logging (or stopping one that
/// is stopped) changes nothing, so no event waiting for delivery is skipped.
pub async fn set_logging(
    state: &AppState,
    caller: &Caller,
    input: &Input,
    on: bool,
) -> Result<Value, ApiError> {
    let t = find(&state.trails, caller, input.req_str("Name")?, Need::Home)?;
    let trails = Arc::clone(&state.trails);
    blocking(move || {
        trails
            .update(&t.account_id, &t.home_region, &t.name, |t: &mut Trail| {
                let now = cairn_event::now_ms();
                if on && !t.logging {
                    t.logging = true;
                    t.start_logging_ms = Some(now);
                } else if !on && t.logging {
                    t.logging = false;
                    t.stop_logging_ms = Some(now);
                    if let Some(start) = t.start_logging_ms {
                        t.record_logging_period(start, now);
                    }
                }
                Ok::<(), Refusal>(())
            })
            .map_err(|r| r.0)
    })
    .await?;
    Ok(json!({}))
}

fn selectors_response(t: &Trail) -> Value {
    let mut m = Map::new();
    m.insert("TrailARN".into(), json!(t.arn()));
    let (basic, advanced) = t.selectors.to_wire();
    if let Some(b) = basic {
        m.insert("EventSelectors".into(), b);
    }
    if let Some(a) = advanced {
        m.insert("AdvancedEventSelectors".into(), a);
    }
    Value::Object(m)
}

pub async fn put_event_selectors(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let t = find(
        &state.trails,
        caller,
        input.req_str("TrailName")?,
        Need::Home,
    )?;
    let basic = input.list("EventSelectors")?;
    let advanced = input.list("AdvancedEventSelectors")?;
    let invalid = |e: cairn_trail::selectors::SelectorError| {
        ApiError::bad("InvalidEventSelectorsException", e.0)
    };
    let selectors = match (basic, advanced) {
        (Some(b), Some(a)) if !b.is_empty() && !a.is_empty() => {
            return Err(ApiError::bad(
                "InvalidParameterCombinationException",
                "Give EventSelectors or AdvancedEventSelectors, not both; advanced event selectors can say everything basic ones can",
            ));
        }
        (_, Some(a)) if !a.is_empty() => Selectors::from_advanced_wire(&a).map_err(invalid)?,
        (Some(b), _) => Selectors::from_basic_wire(&b).map_err(invalid)?,
        (None, Some(a)) => Selectors::from_advanced_wire(&a).map_err(invalid)?,
        (None, None) => {
            return Err(ApiError::bad(
                "InvalidEventSelectorsException",
                "Give EventSelectors (1 to 5 basic selectors) or AdvancedEventSelectors",
            ));
        }
    };
    let trails = Arc::clone(&state.trails);
    let updated = blocking(move || {
        trails
            .update(&t.account_id, &t.home_region, &t.name, |t: &mut Trail| {
                t.selectors = selectors;
                Ok::<(), Refusal>(())
            })
            .map_err(|r| r.0)
    })
    .await?;
    Ok(selectors_response(&updated))
}

pub fn get_event_selectors(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let t = find(
        &state.trails,
        caller,
        input.req_str("TrailName")?,
        Need::Read,
    )?;
    Ok(selectors_response(&t))
}

// ---- Insights selectors

const INSIGHT_TYPES: [&str; 2] = ["ApiCallRateInsight", "ApiErrorRateInsight"];

fn insight_error(msg: String) -> ApiError {
    ApiError::bad("InvalidInsightSelectorsException", msg)
}

/// What an Insights call names: a trail, or an event data store (with, for Put, the
/// Insights store its events go to).
enum InsightTarget {
    Trail(Box<Trail>),
    Store {
        source: Box<cairn_lake::stores::EventDataStore>,
        destination: Option<String>,
    },
}

fn insight_target(
    state: &AppState,
    caller: &Caller,
    input: &Input,
    need: Need,
) -> Result<InsightTarget, ApiError> {
    let trail = input.opt_str("TrailName")?;
    let eds = input.opt_str("EventDataStore")?;
    let dest = if need == Need::Home {
        input.opt_str("InsightsDestination")?
    } else {
        None
    };
    for (member, v) in [("EventDataStore", eds), ("InsightsDestination", dest)] {
        if let Some(v) = v
            && (v.len() < 3
                || v.len() > 256
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/-:".contains(c)))
        {
            return Err(ApiError::bad(
                "InvalidParameterException",
                format!("{member} must be 3 to 256 characters of letters, digits and ._/-:"),
            ));
        }
    }
    match (trail, eds, dest) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ApiError::bad(
            "InvalidParameterCombinationException",
            "TrailName cannot be combined with EventDataStore or InsightsDestination",
        )),
        (Some(name), None, None) => Ok(InsightTarget::Trail(Box::new(find(
            &state.trails,
            caller,
            name,
            need,
        )?))),
        (None, Some(eds), dest) => {
            let lake = state.lake.as_ref().ok_or_else(|| {
                ApiError::bad(
                    "UnsupportedOperationException",
                    "this server runs without CloudTrail Lake",
                )
            })?;
            let now = cairn_event::now_ms();
            let source = lake.registry.get(&caller.account_id, eds, now)?;
            let destination = match dest {
                Some(d) => {
                    let d = lake.registry.get(&caller.account_id, d, now)?;
                    if !d.insights_only {
                        return Err(ApiError::bad(
                            "InvalidParameterCombinationException",
                            format!(
                                "InsightsDestination {} does not collect Insights events: create it with AdvancedEventSelectors [{{\"FieldSelectors\":[{{\"Field\":\"eventCategory\",\"Equals\":[\"Insight\"]}}]}}]",
                                d.arn()
                            ),
                        ));
                    }
                    Some(d.arn())
                }
                None => None,
            };
            if source.insights_only {
                return Err(ApiError::bad(
                    "InvalidParameterCombinationException",
                    format!(
                        "{} collects Insights events; put insight selectors on the event data store whose events are analysed",
                        source.arn()
                    ),
                ));
            }
            Ok(InsightTarget::Store {
                source: Box::new(source),
                destination,
            })
        }
        (None, None, Some(_)) => Err(ApiError::bad(
            "InvalidParameterCombinationException",
            "InsightsDestination needs EventDataStore (the source event data store)",
        )),
        (None, None, None) => Err(ApiError::bad(
            "InvalidParameterCombinationException",
            "Give TrailName (the name or ARN of the trail) or EventDataStore",
        )),
    }
}

/// Reads InsightSelectors and checks them against what the trail logs.
fn parse_insights(list: &[Value], selectors: &Selectors) -> Result<Vec<Value>, ApiError> {
    let mut out: Vec<Value> = Vec::with_capacity(list.len());
    let mut seen: Vec<String> = Vec::new();
    let (reads, writes) = selectors.management_coverage();
    for v in list {
        let Some(o) = v.as_object() else {
            return Err(insight_error(
                "each insight selector must be an object with InsightType".into(),
            ));
        };
        let ty = match o.get("InsightType") {
            Some(Value::String(t)) if INSIGHT_TYPES.contains(&t.as_str()) => t.clone(),
            Some(Value::String(t)) => {
                return Err(insight_error(format!(
                    "InsightType {t} is not valid: use ApiCallRateInsight or ApiErrorRateInsight"
                )));
            }
            _ => {
                return Err(insight_error(
                    "each insight selector needs an InsightType: ApiCallRateInsight or ApiErrorRateInsight".into(),
                ));
            }
        };
        if seen.contains(&ty) {
            return Err(insight_error(format!(
                "InsightType {ty} appears more than once; list the event categories in one selector"
            )));
        }
        seen.push(ty.clone());
        let mut entry = Map::new();
        entry.insert("InsightType".into(), json!(ty));
        let categories: Vec<String> = match o.get("EventCategories") {
            None | Some(Value::Null) => vec!["Management".into()],
            Some(Value::Array(a)) => {
                let mut cats: Vec<String> = Vec::new();
                for c in a {
                    match c.as_str() {
                        Some(c @ ("Management" | "Data")) if !cats.iter().any(|x| x == c) => {
                            cats.push(c.to_owned())
                        }
                        Some(c @ ("Management" | "Data")) => {
                            return Err(insight_error(format!(
                                "EventCategories of {ty} lists {c} twice"
                            )));
                        }
                        _ => {
                            return Err(insight_error(format!(
                                "EventCategories of {ty} takes Management and Data; got {c}"
                            )));
                        }
                    }
                }
                if cats.is_empty() {
                    return Err(insight_error(format!(
                        "EventCategories of {ty} is empty: leave it out for management events, or list Management and/or Data"
                    )));
                }
                entry.insert("EventCategories".into(), json!(cats));
                cats
            }
            Some(_) => {
                return Err(insight_error(
                    "EventCategories must be a list of Management and Data".into(),
                ));
            }
        };
        for c in &categories {
            let ok = match (c.as_str(), ty.as_str()) {
                ("Management", "ApiCallRateInsight") => writes,
                ("Management", _) => reads || writes,
                _ => selectors.logs_data_events(),
            };
            if !ok {
                let need = match (c.as_str(), ty.as_str()) {
                    ("Management", "ApiCallRateInsight") => "write management events",
                    ("Management", _) => "management events",
                    _ => "data events",
                };
                return Err(insight_error(format!(
                    "{ty} on {c} events needs the trail to log {need}, and its event selectors do not; change them with PutEventSelectors first"
                )));
            }
        }
        out.push(Value::Object(entry));
    }
    Ok(out)
}

pub async fn put_insight_selectors(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let target = insight_target(state, caller, input, Need::Home)?;
    let list = input.list("InsightSelectors")?.ok_or_else(|| {
        ApiError::bad(
            "InvalidParameterException",
            "InsightSelectors is required (an empty list turns Insights off)",
        )
    })?;
    match target {
        InsightTarget::Trail(t) => {
            let parsed = parse_insights(&list, &t.selectors)?;
            let trails = Arc::clone(&state.trails);
            let updated = blocking(move || {
                trails
                    .update(&t.account_id, &t.home_region, &t.name, |t: &mut Trail| {
                        t.insight_selectors = parsed;
                        Ok::<(), Refusal>(())
                    })
                    .map_err(|r| r.0)
            })
            .await?;
            Ok(json!({
                "TrailARN": updated.arn(),
                "InsightSelectors": updated.insight_selectors,
            }))
        }
        InsightTarget::Store {
            source,
            destination,
        } => {
            let selectors = source.selectors.clone().unwrap_or_default();
            let parsed = parse_insights(&list, &selectors)?;
            if parsed.iter().any(|p| {
                p.get("EventCategories")
                    .is_some_and(|c| c != &json!(["Management"]))
            }) {
                return Err(insight_error(
                    "Insights on data events are available on trails only; event data stores take Management".into(),
                ));
            }
            if !parsed.is_empty() && destination.is_none() {
                return Err(ApiError::bad(
                    "InvalidParameterCombinationException",
                    "InsightsDestination is required with EventDataStore: the event data store (created with eventCategory Equals Insight) that keeps the Insights events",
                ));
            }
            let lake = state.lake.clone().ok_or_else(|| {
                ApiError::bad(
                    "UnsupportedOperationException",
                    "this server runs without CloudTrail Lake",
                )
            })?;
            let account = caller.account_id.clone();
            let updated = blocking(move || {
                lake.registry
                    .set_insights(
                        &account,
                        &source.id,
                        parsed,
                        destination,
                        cairn_event::now_ms(),
                    )
                    .map_err(ApiError::from)
            })
            .await?;
            Ok(store_insights(&updated))
        }
    }
}

fn store_insights(s: &cairn_lake::stores::EventDataStore) -> Value {
    let mut v = json!({
        "EventDataStoreArn": s.arn(),
        "InsightSelectors": s.insight_selectors,
    });
    if let Some(d) = &s.insights_destination {
        v["InsightsDestination"] = json!(d);
    }
    v
}

pub fn get_insight_selectors(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    match insight_target(state, caller, input, Need::Read)? {
        InsightTarget::Trail(t) => {
            if t.insight_selectors.is_empty() {
                return Err(ApiError::bad(
                    "InsightNotEnabledException",
                    format!(
                        "Trail {} does not have Insights enabled. Edit the trail settings to enable Insights, and then try the operation again.",
                        t.arn()
                    ),
                ));
            }
            Ok(json!({
                "TrailARN": t.arn(),
                "InsightSelectors": t.insight_selectors,
            }))
        }
        InsightTarget::Store { source, .. } => {
            if source.insight_selectors.is_empty() {
                return Err(ApiError::bad(
                    "InsightNotEnabledException",
                    format!(
                        "Event data store {} does not have Insights enabled. Turn them on with PutInsightSelectors, and then try the operation again.",
                        source.arn()
                    ),
                ));
            }
            Ok(store_insights(&source))
        }
    }
}

// ---- Tags

/// A resource tags can be put on.
enum Taggable {
    Trail(Box<Trail>),
    Channel(crate::channels::Channel),
    Store(Box<cairn_lake::EventDataStore>),
}

fn resource_not_found(id: &str) -> ApiError {
    ApiError::bad(
        "ResourceNotFoundException",
        format!("Resource {id} not found"),
    )
}

fn taggable(state: &AppState, caller: &Caller, id: &str, need: Need) -> Result<Taggable, ApiError> {
    let parts: Vec<&str> = id.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "cloudtrail" {
        return Err(ApiError::bad(
            "CloudTrailARNInvalidException",
            format!(
                "{id} is not a CloudTrail ARN: tags go on trails (arn:aws:cloudtrail:<region>:<account-id>:trail/<name>) and channels (…:channel/<id>)"
            ),
        ));
    }
    let resource = parts[5];
    if resource.starts_with("trail/") {
        let TrailRef::Arn {
            region,
            account,
            name,
        } = parse_trail_arn(id)?
        else {
            return Err(invalid_arn(id));
        };
        let t = state
            .trails
            .get(&caller.account_id, &region, &name)
            .filter(|t| account == caller.account_id && t.visible_in(&caller.region))
            .ok_or_else(|| resource_not_found(id))?;
        if need == Need::Home && t.home_region != caller.region {
            return Err(wrong_region(&t, caller));
        }
        return Ok(Taggable::Trail(Box::new(t)));
    }
    if resource.starts_with("channel/") {
        return match state.channels.resolve(
            &caller.account_id,
            id,
            "ChannelARNInvalidException",
            "ChannelNotFoundException",
        ) {
            Ok(c) => Ok(Taggable::Channel(c)),
            Err(e) if e.code == "ChannelNotFoundException" => Err(resource_not_found(id)),
            Err(e) => Err(e),
        };
    }
    if resource.starts_with("eventdatastore/")
        && let Some(lake) = state.lake.as_deref()
    {
        return lake
            .registry
            .get(&caller.account_id, id, cairn_event::now_ms())
            .map(|s| Taggable::Store(Box::new(s)))
            .map_err(|_| resource_not_found(id));
    }
    if resource.starts_with("eventdatastore/") || resource.starts_with("dashboard/") {
        return Err(resource_not_found(id));
    }
    Err(ApiError::bad(
        "ResourceTypeNotSupportedException",
        format!("{id}: only trails, channels and event data stores carry tags in Cairn"),
    ))
}

/// AddTags on a resource's tags: new keys are added, existing ones get the new value.
fn merge_tags(current: &mut Vec<Tag>, tags: Vec<Tag>) -> Result<(), ApiError> {
    for tag in tags {
        match current.iter_mut().find(|x| x.key == tag.key) {
            Some(x) => x.value = tag.value,
            None => current.push(tag),
        }
    }
    if current.len() > MAX_TAGS {
        return Err(too_many_tags(current.len()));
    }
    Ok(())
}

/// RemoveTags on a resource's tags (by key).
fn drop_tags(current: &mut Vec<Tag>, tags: &[Tag]) {
    current.retain(|x| !tags.iter().any(|r| r.key == x.key));
}

/// A channel's stored tags as [`Tag`]s.
fn tags_of(values: &[Value]) -> Vec<Tag> {
    values
        .iter()
        .filter_map(|v| {
            Some(Tag {
                key: v.get("Key")?.as_str()?.to_owned(),
                value: v.get("Value").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect()
}

pub async fn add_tags(state: &AppState, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
    edit_tags(state, caller, input, false).await
}

pub async fn remove_tags(
    state: &AppState,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    edit_tags(state, caller, input, true).await
}

/// Applies `TagsList` to a trail's or a channel's tags: merged in (AddTags), or the keys
/// dropped (`removing`, RemoveTags).
async fn edit_tags(
    state: &AppState,
    caller: &Caller,
    input: &Input,
    removing: bool,
) -> Result<Value, ApiError> {
    let id = input.req_str("ResourceId")?;
    let list = input
        .list("TagsList")?
        .ok_or_else(|| ApiError::bad("InvalidParameterException", "TagsList is required"))?;
    let tags = parse_tags(&list, removing)?;
    let apply = move |current: &mut Vec<Tag>| {
        if removing {
            drop_tags(current, &tags);
            Ok(())
        } else {
            merge_tags(current, tags)
        }
    };
    let t = match taggable(state, caller, id, Need::Home)? {
        Taggable::Trail(t) => t,
        Taggable::Store(s) => {
            let lake = state
                .lake
                .as_deref()
                .ok_or_else(|| resource_not_found(id))?;
            let mut current = tags_of(&s.tags);
            apply(&mut current)?;
            let tags = tags_json(&current).as_array().cloned().unwrap_or_default();
            lake.registry
                .set_tags(&caller.account_id, &s.id, tags, cairn_event::now_ms())?;
            return Ok(json!({}));
        }
        Taggable::Channel(c) => {
            return state
                .channels
                .update_tags(&c.arn, |existing| {
                    let mut current = tags_of(existing);
                    apply(&mut current)?;
                    *existing = tags_json(&current).as_array().cloned().unwrap_or_default();
                    Ok(())
                })
                .map(|()| json!({}));
        }
    };
    let trails = Arc::clone(&state.trails);
    blocking(move || {
        trails
            .update(&t.account_id, &t.home_region, &t.name, |t: &mut Trail| {
                apply(&mut t.tags).map_err(Refusal)
            })
            .map_err(|r| r.0)
    })
    .await?;
    Ok(json!({}))
}

pub fn list_tags(state: &AppState, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
    let ids = input
        .list("ResourceIdList")?
        .ok_or_else(|| ApiError::bad("InvalidParameterException", "ResourceIdList is required"))?;
    if ids.len() > MAX_LIST_TAGS_IDS {
        return Err(ApiError::bad(
            "InvalidParameterException",
            format!(
                "ResourceIdList has {} ARNs; ListTags takes at most {MAX_LIST_TAGS_IDS}",
                ids.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(id) = id.as_str() else {
            return Err(ApiError::bad(
                "SerializationException",
                "ResourceIdList must be a list of strings",
            ));
        };
        let tags = match taggable(state, caller, id, Need::Read)? {
            Taggable::Trail(t) => tags_json(&t.tags),
            Taggable::Channel(c) => Value::Array(c.tags.clone()),
            Taggable::Store(s) => Value::Array(s.tags.clone()),
        };
        out.push(json!({"ResourceId": id, "TagsList": tags}));
    }
    Ok(json!({ "ResourceTagList": out }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_arns() {
        let ok = parse_trail_arn("arn:aws:cloudtrail:us-east-1:111122223333:trail/My.Trail");
        assert!(matches!(ok, Ok(TrailRef::Arn { ref name, .. }) if name == "My.Trail"));
        for bad in [
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/",
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/a--b",
            "arn:aws:cloudtrail:us-east-1:1111:trail/abc",
            "arn:aws:cloudtrail::111122223333:trail/abc",
            "arn:aws:s3:us-east-1:111122223333:trail/abc",
            "arn:aws:cloudtrail:us-east-1:111122223333:channel/abc",
            "arn:aws:cloudtrail:us-east-1:111122223333",
            "arn:",
        ] {
            let e = parse_trail_arn(bad).err().map(|e| e.code);
            assert_eq!(e, Some("CloudTrailARNInvalidException"), "{bad}");
        }
        let e = parse_ref("a--b").err().map(|e| e.code);
        assert_eq!(e, Some("InvalidTrailNameException"));
    }

    #[test]
    fn prefixes_topics_buckets() {
        assert!(check_prefix("logs/app").is_ok());
        assert!(check_prefix("/logs/").is_ok());
        assert!(check_prefix(&"p".repeat(200)).is_ok());
        assert!(check_prefix(&"p".repeat(201)).is_err());
        assert!(check_prefix("a//b").is_err());
        assert!(check_prefix("a/../b").is_err());
        assert!(check_topic("my-topic_1").is_ok());
        assert!(check_topic("arn:aws:sns:us-east-1:111122223333:my-topic").is_ok());
        assert!(check_topic("bad topic").is_err());
        assert!(check_topic("arn:aws:sqs:us-east-1:111122223333:q").is_err());
        assert!(check_topic(&"t".repeat(257)).is_err());
        assert!(check_bucket_name("my-bucket").is_ok());
        assert!(check_bucket_name("My_Bucket").is_err());
        assert!(check_bucket_name("192.168.5.4").is_err());
    }

    #[test]
    fn tags() {
        let t = parse_tags(&[json!({"Key":"a","Value":"1"}), json!({"Key":"b"})], false)
            .expect("valid");
        assert_eq!(t[1].value, None);
        assert_eq!(tags_json(&t), json!([{"Key":"a","Value":"1"},{"Key":"b"}]));
        for bad in [
            json!([{"Key":""}]),
            json!([{"Key":"k".repeat(129)}]),
            json!([{"Key":"k","Value":"v".repeat(257)}]),
            json!([{"Key":"k"},{"Key":"k"}]),
            json!([{"Value":"v"}]),
        ] {
            let list = bad.as_array().cloned().unwrap_or_default();
            assert_eq!(
                parse_tags(&list, false).err().map(|e| e.code),
                Some("InvalidTagParameterException"),
                "{bad}"
            );
        }
    }
}
