//! Cairn's managed policies: ready-made policies an administrator attaches by ARN or name.

use std::sync::LazyLock;

use crate::Policy;

/// A managed policy.
#[derive(Debug, Clone)]
pub struct Managed {
    /// `AdministratorAccess`, ...
    pub name: &'static str,
    /// `arn:aws:iam::aws:policy/<name>`.
    pub arn: &'static str,
    pub description: &'static str,
    pub policy: Policy,
}

macro_rules! arn {
    ($name:literal) => {
        concat!("arn:aws:iam::aws:policy/", $name)
    };
}

const DEFINITIONS: &[(&str, &str, &str, &str)] = &[
    (
        "AdministratorAccess",
        arn!("AdministratorAccess"),
        "Full access to everything Cairn serves, including users, keys and policies.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "*",
      "Resource": "*"
    }
  ]
}"#,
    ),
    (
        "AWSCloudTrail_FullAccess",
        arn!("AWSCloudTrail_FullAccess"),
        "Full access to trails, event history, ingest and trail buckets, but not to identities.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "cloudtrail:*",
        "cloudtrail-data:*",
        "cairn:*",
        "s3:*"
      ],
      "Resource": "*"
    }
  ]
}"#,
    ),
    (
        "AWSCloudTrail_ReadOnlyAccess",
        arn!("AWSCloudTrail_ReadOnlyAccess"),
        "Read-only access to trails, event history and the log files in trail buckets.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadTrails",
      "Effect": "Allow",
      "Action": [
        "cloudtrail:Get*",
        "cloudtrail:Describe*",
        "cloudtrail:List*",
        "cloudtrail:LookupEvents"
      ],
      "Resource": "*"
    },
    {
      "Sid": "ReadTrailBuckets",
      "Effect": "Allow",
      "Action": [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:ListAllMyBuckets"
      ],
      "Resource": "*"
    }
  ]
}"#,
    ),
    (
        "CairnAuditWriter",
        arn!("CairnAuditWriter"),
        "Ingest only: send audit events, nothing else.",
        r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "cloudtrail-data:PutAuditEvents",
        "cairn:PutEvents"
      ],
      "Resource": "*"
    }
  ]
}"#,
    ),
];

static MANAGED: LazyLock<Vec<Managed>> = LazyLock::new(|| {
    DEFINITIONS
        .iter()
        .map(|&(name, arn, description, text)| Managed {
            name,
            arn,
            description,
            policy: Policy::parse(text).expect("built-in managed policies are valid"),
        })
        .collect()
});

/// Every managed policy, parsed on first use.
pub fn managed() -> &'static [Managed] {
    &MANAGED
}

/// The managed policy with this ARN (`arn:aws:iam::aws:policy/AdministratorAccess`) or bare
/// name (`AdministratorAccess`).
pub fn managed_by_arn_or_name(s: &str) -> Option<&'static Managed> {
    managed().iter().find(|m| m.arn == s || m.name == s)
}
