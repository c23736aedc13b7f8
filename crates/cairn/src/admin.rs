//! `cairn admin`: accounts, users, access keys, console passwords and policies, through the
//! server's identity operations; and `reset-admin`, which works on a stopped server's data
//! directory when the administrator's credentials are lost.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use cairn_client::{Client, ClientArgs};

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account with an `admin` user and its first access key (management account only).
    CreateAccount {
        /// A 12-digit id (generated if absent).
        #[arg(long)]
        account_id: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the accounts (management account only).
    ListAccounts,
    /// Create a user, optionally attaching ready-made policies and setting a console password.
    CreateUser {
        name: String,
        /// A ready-made policy to attach (repeatable): AdministratorAccess,
        /// AWSCloudTrail_FullAccess, AWSCloudTrail_ReadOnlyAccess, CairnAuditWriter.
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Also create an access key and print it.
        #[arg(long)]
        access_key: bool,
    },
    /// Show a user (yourself without a name).
    GetUser {
        name: Option<String>,
    },
    ListUsers,
    /// Delete a user with its access keys, password and policies.
    DeleteUser {
        name: String,
    },
    /// Create an access key (for yourself without --user); the secret is shown only now.
    CreateAccessKey {
        #[arg(long)]
        user: Option<String>,
    },
    ListAccessKeys {
        #[arg(long)]
        user: Option<String>,
    },
    DeactivateAccessKey {
        access_key_id: String,
        #[arg(long)]
        user: Option<String>,
    },
    ActivateAccessKey {
        access_key_id: String,
        #[arg(long)]
        user: Option<String>,
    },
    DeleteAccessKey {
        access_key_id: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Set a user's console password: read from standard input with --password-stdin,
    /// else generated and printed.
    SetPassword {
        user: String,
        #[arg(long)]
        password_stdin: bool,
    },
    DeletePassword {
        user: String,
    },
    /// Attach a ready-made policy (name or ARN).
    AttachPolicy {
        user: String,
        policy: String,
    },
    DetachPolicy {
        user: String,
        policy: String,
    },
    /// Put an inline policy document (IAM JSON) from a file ("-": standard input).
    PutPolicy {
        user: String,
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    DeletePolicy {
        user: String,
        name: String,
    },
    /// A user's policies, or the ready-made ones without a user.
    ListPolicies {
        user: Option<String>,
    },
    /// With the server stopped: give the management account's `admin` a new access key and
    /// console password, printed once.
    ResetAdmin {
        #[arg(long, default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[arg(long, env = "CAIRN_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// The master key is lost: use the one at --master-key-file (created if missing)
        /// instead, deleting every access key (users, passwords and policies stay) and
        /// retiring the digest signing keys (their digests still validate).
        #[arg(long)]
        new_master_key: bool,
    },
}

fn print(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn user_input(user: &Option<String>) -> Value {
    match user {
        Some(u) => json!({ "UserName": u }),
        None => json!({}),
    }
}

fn with(mut base: Value, key: &str, value: impl Into<Value>) -> Value {
    base[key] = value.into();
    base
}

pub fn run(args: AdminArgs) -> Result<()> {
    if let AdminCommand::ResetAdmin {
        data_dir,
        master_key_file,
        new_master_key,
    } = &args.command
    {
        return reset_admin(data_dir, master_key_file.as_deref(), *new_master_key);
    }
    let client = Client::new(&args.client)?;
    let call = |op: &str, input: Value| client.call_admin(op, &input);
    let out = match args.command {
        AdminCommand::CreateAccount { account_id, name } => {
            let mut input = json!({ "AccountName": name });
            if let Some(a) = account_id {
                input["AccountId"] = json!(a);
            }
            call("CreateAccount", input)?
        }
        AdminCommand::ListAccounts => call("ListAccounts", json!({}))?,
        AdminCommand::CreateUser {
            name,
            policies,
            access_key,
        } => {
            let mut out = call("CreateUser", json!({ "UserName": name }))?;
            for p in &policies {
                call(
                    "AttachUserPolicy",
                    json!({ "UserName": name, "PolicyArn": p }),
                )?;
            }
            if !policies.is_empty() {
                out["AttachedPolicies"] = json!(policies);
            }
            if access_key {
                let key = call("CreateAccessKey", json!({ "UserName": name }))?;
                out["AccessKey"] = key["AccessKey"].clone();
            }
            out
        }
        AdminCommand::GetUser { name } => call("GetUser", user_input(&name))?,
        AdminCommand::ListUsers => call("ListUsers", json!({}))?,
        AdminCommand::DeleteUser { name } => call("DeleteUser", json!({ "UserName": name }))?,
        AdminCommand::CreateAccessKey { user } => call("CreateAccessKey", user_input(&user))?,
        AdminCommand::ListAccessKeys { user } => call("ListAccessKeys", user_input(&user))?,
        AdminCommand::DeactivateAccessKey {
            access_key_id,
            user,
        } => call(
            "UpdateAccessKey",
            with(
                with(user_input(&user), "AccessKeyId", access_key_id),
                "Status",
                "Inactive",
            ),
        )?,
        AdminCommand::ActivateAccessKey {
            access_key_id,
            user,
        } => call(
            "UpdateAccessKey",
            with(
                with(user_input(&user), "AccessKeyId", access_key_id),
                "Status",
                "Active",
            ),
        )?,
        AdminCommand::DeleteAccessKey {
            access_key_id,
            user,
        } => call(
            "DeleteAccessKey",
            with(user_input(&user), "AccessKeyId", access_key_id),
        )?,
        AdminCommand::SetPassword {
            user,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                (text.trim_end_matches(['\n', '\r']).to_owned(), false)
            } else {
                (cairn_iam::new_password(), true)
            };
            let input = json!({ "UserName": user, "Password": password });
            let has = client.call_admin("GetLoginProfile", &json!({ "UserName": user }));
            let mut out = match has {
                Ok(_) => call("UpdateLoginProfile", input)?,
                Err(_) => call("CreateLoginProfile", input)?,
            };
            if generated {
                out["Password"] = json!(password);
            }
            out
        }
        AdminCommand::DeletePassword { user } => {
            call("DeleteLoginProfile", json!({ "UserName": user }))?
        }
        AdminCommand::AttachPolicy { user, policy } => call(
            "AttachUserPolicy",
            json!({ "UserName": user, "PolicyArn": policy }),
        )?,
        AdminCommand::DetachPolicy { user, policy } => call(
            "DetachUserPolicy",
            json!({ "UserName": user, "PolicyArn": policy }),
        )?,
        AdminCommand::PutPolicy { user, name, file } => {
            let document = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            call(
                "PutUserPolicy",
                json!({ "UserName": user, "PolicyName": name, "PolicyDocument": document }),
            )?
        }
        AdminCommand::DeletePolicy { user, name } => call(
            "DeleteUserPolicy",
            json!({ "UserName": user, "PolicyName": name }),
        )?,
        AdminCommand::ListPolicies { user: None } => call("ListPolicies", json!({}))?,
        AdminCommand::ListPolicies { user: Some(user) } => {
            let attached = call("ListAttachedUserPolicies", json!({ "UserName": user }))?;
            let inline = call("ListUserPolicies", json!({ "UserName": user }))?;
            json!({
                "AttachedPolicies": attached["AttachedPolicies"],
                "PolicyNames": inline["PolicyNames"],
            })
        }
        AdminCommand::ResetAdmin { .. } => unreachable!("handled above"),
    };
    if out.as_object().is_some_and(|m| !m.is_empty()) {
        print(&out)?;
    }
    Ok(())
}

fn reset_admin(
    data_dir: &std::path::Path,
    master_key_file: Option<&std::path::Path>,
    new_master_key: bool,
) -> Result<()> {
    let lock_path = data_dir.join("LOCK");
    if !data_dir.join("identity").join("iam.json").exists() {
        bail!(
            "{} has no identities: `cairn serve --data-dir {}` creates them",
            data_dir.display(),
            data_dir.display()
        );
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "a Cairn server is using {}: stop it first (or, while it runs, use `cairn admin create-access-key` with other administrator credentials)",
            data_dir.display()
        );
    }
    let (master, master_text) = cairn_vault::resolve(master_key_file)?;
    if new_master_key {
        let removed = cairn_iam::Directory::rekey(data_dir, &master)?;
        let retired = cairn_trail::keys::Keyring::retire_all(data_dir, cairn_event::now_ms())?;
        println!(
            "Moved to the master key {master_text}: deleted {removed} access keys, retired {retired} digest signing keys."
        );
    }
    let iam = cairn_iam::Directory::open(data_dir, Arc::new(master))?;
    let account = iam
        .management_account()
        .context("the identity file has no management account")?;
    let user = cairn_iam::ADMIN_USER;
    if iam.get_user(&account, user).is_err() {
        iam.create_user(&account, user, "/")?;
    }
    iam.attach_policy(&account, user, "AdministratorAccess")?;
    let keys = iam.list_access_keys(&account, user)?;
    if keys.len() >= cairn_iam::MAX_KEYS_PER_USER
        && let Some(oldest) = keys.first()
    {
        iam.delete_access_key(&account, user, &oldest.access_key_id)?;
        println!(
            "Deleted the oldest access key of {user}: {}",
            oldest.access_key_id
        );
    }
    let key = iam.create_access_key(&account, user)?;
    let password = cairn_iam::new_password();
    if iam.set_password(&account, user, &password, false).is_err() {
        iam.set_password(&account, user, &password, true)?;
    }
    println!("Account:           {account}");
    println!("User:              {user}");
    println!("Access key id:     {}", key.info.access_key_id);
    println!("Secret access key: {}   (shown once)", key.secret);
    println!("Console password:  {password}   (shown once)");
    drop(lock);
    Ok(())
}
