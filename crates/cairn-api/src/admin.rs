//! Cairn's identity operations: an extension API in the AWS JSON 1.1 style
//! (`X-Amz-Target: CairnAdmin_20261121.<Operation>`, SigV4 service `iam`), with IAM's
//! operation names, members and errors: users, access keys, console passwords, inline and
//! ready-made policies, and (from the management account) accounts. `cairn admin` calls them.
//!
//! Each is authorised as the IAM action of the same name (`iam:CreateUser`, ...;
//! `organizations:CreateAccount`, `organizations:ListAccounts`) on the user's ARN, and
//! recorded with `eventSource` `iam.amazonaws.com` (or `organizations.amazonaws.com`).

use serde_json::{Value, json};

use cairn_iam::{AccountInfo, IamError, KeyInfo, KeyStatus, UserInfo};

use crate::AppState;
use crate::auth::{Caller, authorize};
use crate::error::ApiError;
use crate::input::Input;

pub const TARGET_PREFIX: &str = "CairnAdmin_20261121.";

/// The operations, with the service that names their action and event source.
pub const OPERATIONS: [(&str, &str); 22] = [
    ("CreateAccount", "organizations"),
    ("ListAccounts", "organizations"),
    ("CreateUser", "iam"),
    ("GetUser", "iam"),
    ("ListUsers", "iam"),
    ("DeleteUser", "iam"),
    ("CreateAccessKey", "iam"),
    ("ListAccessKeys", "iam"),
    ("UpdateAccessKey", "iam"),
    ("DeleteAccessKey", "iam"),
    ("CreateLoginProfile", "iam"),
    ("UpdateLoginProfile", "iam"),
    ("DeleteLoginProfile", "iam"),
    ("GetLoginProfile", "iam"),
    ("PutUserPolicy", "iam"),
    ("GetUserPolicy", "iam"),
    ("ListUserPolicies", "iam"),
    ("DeleteUserPolicy", "iam"),
    ("AttachUserPolicy", "iam"),
    ("DetachUserPolicy", "iam"),
    ("ListAttachedUserPolicies", "iam"),
    ("ListPolicies", "iam"),
];

/// The service of an operation (`iam` or `organizations`), if it is one.
pub fn service_of(op: &str) -> Option<&'static str> {
    OPERATIONS.iter().find(|(o, _)| *o == op).map(|(_, s)| *s)
}

fn iam_error(e: IamError) -> ApiError {
    ApiError::new(e.code, e.status, e.message)
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({
        "Path": u.path, "UserName": u.name, "UserId": u.id, "Arn": u.arn, "CreateDate": u.created,
    });
    if let Some(p) = &u.password_created {
        v["PasswordCreateDate"] = json!(p);
    }
    v
}

fn key_json(k: &KeyInfo) -> Value {
    json!({
        "UserName": k.user_name, "AccessKeyId": k.access_key_id,
        "Status": k.status.as_str(), "CreateDate": k.created,
    })
}

fn account_json(a: &AccountInfo) -> Value {
    json!({
        "Id": a.id, "Name": a.name, "Arn": format!("arn:aws:organizations::{}:account/{}", a.id, a.id),
        "JoinedTimestamp": a.created, "Management": a.management,
    })
}

/// The user an operation acts on: `UserName`, or the caller itself when absent (as IAM
/// does for keys and GetUser).
fn target_user(caller: &Caller, input: &Input, required: bool) -> Result<String, ApiError> {
    match input.opt_str("UserName")? {
        Some(u) => Ok(u.to_owned()),
        None if !required => Ok(caller.principal.user_name.clone()),
        None => Err(ApiError::bad("ValidationException", "UserName is required")),
    }
}

/// The user's ARN (with its path), or the ARN the name implies when there is no such user.
fn user_resource(state: &AppState, caller: &Caller, user: &str) -> String {
    match state.iam.get_user(&caller.account_id, user) {
        Ok(u) => u.arn,
        Err(_) => format!("arn:aws:iam::{}:user/{user}", caller.account_id),
    }
}

pub async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    let account = caller.account_id.as_str();
    let iam = &state.iam;
    match op {
        "CreateAccount" | "ListAccounts" => {
            authorize(caller, &format!("organizations:{op}"), "*")?;
            if !caller.principal.management_account {
                return Err(ApiError::new(
                    "AccessDeniedException",
                    403,
                    format!(
                        "Only the management account can call {op}; account {account} is not it."
                    ),
                ));
            }
            if op == "ListAccounts" {
                let accounts: Vec<Value> = iam.accounts().iter().map(account_json).collect();
                return Ok(json!({ "Accounts": accounts }));
            }
            let name = input.opt_str("AccountName")?.unwrap_or_default().to_owned();
            let id = input.opt_str("AccountId")?.map(str::to_owned);
            let (info, user, key) = iam
                .create_account(id.as_deref(), &name)
                .map_err(iam_error)?;
            Ok(json!({
                "Account": account_json(&info),
                "User": user_json(&user),
                "AccessKey": {
                    "UserName": key.info.user_name, "AccessKeyId": key.info.access_key_id,
                    "Status": "Active", "SecretAccessKey": key.secret, "CreateDate": key.info.created,
                },
            }))
        }
        "ListUsers" | "ListPolicies" => {
            authorize(caller, &format!("iam:{op}"), "*")?;
            if op == "ListPolicies" {
                let policies: Vec<Value> = cairn_policy::managed()
                    .iter()
                    .map(|m| {
                        json!({
                            "PolicyName": m.name, "Arn": m.arn, "Description": m.description,
                            "PolicyDocument": m.policy.text(),
                        })
                    })
                    .collect();
                return Ok(json!({ "Policies": policies }));
            }
            let users: Vec<Value> = iam
                .list_users(account)
                .map_err(iam_error)?
                .iter()
                .map(user_json)
                .collect();
            Ok(json!({ "Users": users, "IsTruncated": false }))
        }
        _ => {
            let required = !matches!(
                op,
                "GetUser"
                    | "CreateAccessKey"
                    | "ListAccessKeys"
                    | "UpdateAccessKey"
                    | "DeleteAccessKey"
            );
            let user = target_user(caller, input, required)?;
            // CreateUser: the ARN the new user will have.
            let resource = match (op, input.opt_str("Path")?) {
                ("CreateUser", Some(path)) => {
                    format!("arn:aws:iam::{}:user{path}{user}", caller.account_id)
                }
                _ => user_resource(state, caller, &user),
            };
            authorize(caller, &format!("iam:{op}"), &resource)?;
            user_op(state, account, &user, op, input).await
        }
    }
}

async fn user_op(
    state: &AppState,
    account: &str,
    user: &str,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    let iam = &state.iam;
    let e = iam_error;
    match op {
        "CreateUser" => {
            let path = input.opt_str("Path")?.unwrap_or("/");
            let u = iam.create_user(account, user, path).map_err(e)?;
            Ok(json!({ "User": user_json(&u) }))
        }
        "GetUser" => Ok(json!({ "User": user_json(&iam.get_user(account, user).map_err(e)?) })),
        "DeleteUser" => {
            iam.delete_user(account, user).map_err(e)?;
            Ok(json!({}))
        }
        "CreateAccessKey" => {
            let k = iam.create_access_key(account, user).map_err(e)?;
            let mut v = key_json(&k.info);
            v["SecretAccessKey"] = json!(k.secret);
            Ok(json!({ "AccessKey": v }))
        }
        "ListAccessKeys" => {
            let keys: Vec<Value> = iam
                .list_access_keys(account, user)
                .map_err(e)?
                .iter()
                .map(key_json)
                .collect();
            Ok(json!({ "AccessKeyMetadata": keys, "IsTruncated": false }))
        }
        "UpdateAccessKey" => {
            let id = input.req_str("AccessKeyId")?;
            let status = input.req_str("Status")?;
            let status = KeyStatus::parse(status).ok_or_else(|| {
                ApiError::bad(
                    "ValidationException",
                    format!("Status {status:?} must be Active or Inactive"),
                )
            })?;
            iam.update_access_key(account, user, id, status)
                .map_err(e)?;
            Ok(json!({}))
        }
        "DeleteAccessKey" => {
            let id = input.req_str("AccessKeyId")?;
            iam.delete_access_key(account, user, id).map_err(e)?;
            Ok(json!({}))
        }
        "CreateLoginProfile" | "UpdateLoginProfile" => {
            let password = input.req_str("Password")?.to_owned();
            let create = op == "CreateLoginProfile";
            let iam = state.iam.clone();
            let (a, u) = (account.to_owned(), user.to_owned());
            let created =
                tokio::task::spawn_blocking(move || iam.set_password(&a, &u, &password, create))
                    .await
                    .map_err(|err| ApiError::internal(format!("cannot set the password: {err}")))?
                    .map_err(e)?;
            if create {
                Ok(
                    json!({ "LoginProfile": { "UserName": user, "CreateDate": created, "PasswordResetRequired": false } }),
                )
            } else {
                Ok(json!({}))
            }
        }
        "DeleteLoginProfile" => {
            iam.delete_password(account, user).map_err(e)?;
            Ok(json!({}))
        }
        "GetLoginProfile" => {
            let u = iam.get_user(account, user).map_err(e)?;
            match u.password_created {
                Some(created) => Ok(
                    json!({ "LoginProfile": { "UserName": user, "CreateDate": created, "PasswordResetRequired": false } }),
                ),
                None => Err(ApiError::new(
                    "NoSuchEntityException",
                    404,
                    format!("Login Profile for User {user} cannot be found."),
                )),
            }
        }
        "PutUserPolicy" => {
            let name = input.req_str("PolicyName")?;
            let doc = input.req_str("PolicyDocument")?;
            iam.put_user_policy(account, user, name, doc).map_err(e)?;
            Ok(json!({}))
        }
        "GetUserPolicy" => {
            let name = input.req_str("PolicyName")?;
            let doc = iam.get_user_policy(account, user, name).map_err(e)?;
            Ok(json!({ "UserName": user, "PolicyName": name, "PolicyDocument": doc }))
        }
        "ListUserPolicies" => {
            let names = iam.list_user_policies(account, user).map_err(e)?;
            Ok(json!({ "PolicyNames": names, "IsTruncated": false }))
        }
        "DeleteUserPolicy" => {
            let name = input.req_str("PolicyName")?;
            iam.delete_user_policy(account, user, name).map_err(e)?;
            Ok(json!({}))
        }
        "AttachUserPolicy" => {
            let arn = input.req_str("PolicyArn")?;
            iam.attach_policy(account, user, arn).map_err(e)?;
            Ok(json!({}))
        }
        "DetachUserPolicy" => {
            let arn = input.req_str("PolicyArn")?;
            iam.detach_policy(account, user, arn).map_err(e)?;
            Ok(json!({}))
        }
        "ListAttachedUserPolicies" => {
            let list: Vec<Value> = iam
                .list_attached_policies(account, user)
                .map_err(e)?
                .into_iter()
                .map(|(name, arn)| json!({ "PolicyName": name, "PolicyArn": arn }))
                .collect();
            Ok(json!({ "AttachedPolicies": list, "IsTruncated": false }))
        }
        other => Err(ApiError::bad(
            "UnknownOperationException",
            format!("{other} is not an operation of CairnAdmin_20261121"),
        )),
    }
}
