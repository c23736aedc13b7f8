//! Cairn's default pack: the rules on out of the box in every account (each can be disabled
//! per account, or the whole pack with `cairn serve --no-default-rules`). Most are event
//! patterns over the EventBridge envelope, as a CloudTrail user would write them; the one
//! that compares two fields of a record is a Sigma rule (`fieldref`).
//!
//! Event names are CloudTrail's, which are not always the API's (`DeletePublicAccessBlock` is
//! recorded as `DeleteBucketPublicAccessBlock`). A call succeeded when its `errorCode` is
//! missing, `null` or empty: exports from other tools write "no error" those ways.

use crate::rule::{Kind, Origin, RuleSpec, Severity, Threshold};

/// One rule of the pack as written here.
struct Def {
    name: &'static str,
    description: &'static str,
    severity: Severity,
    kind: Kind,
    source: &'static str,
    threshold: Option<(u32, u32, &'static [&'static str])>,
}

const FAILED_SIGN_IN: &str = r#"{
  "detail-type": ["AWS Console Sign In via CloudTrail"],
  "detail": {"eventName": ["ConsoleLogin"], "responseElements": {"ConsoleLogin": ["Failure"]}}
}"#;

const DEFS: &[Def] = &[
    Def {
        name: "cairn-root-account-use",
        description: "The account's root user made a call or signed in (not a service acting for it).",
        severity: Severity::High,
        kind: Kind::Pattern,
        source: r#"{
  "detail": {
    "userIdentity": {"type": ["Root"], "invokedBy": [{"exists": false}]},
    "eventType": [{"anything-but": "AwsServiceEvent"}]
  }
}"#,
        threshold: None,
    },
    Def {
        name: "cairn-console-sign-in-failures-per-user",
        description: "3 or more failed console sign-ins for one user within 5 minutes.",
        severity: Severity::Medium,
        kind: Kind::Pattern,
        source: FAILED_SIGN_IN,
        threshold: Some((
            3,
            300,
            &["detail.userIdentity.type", "detail.userIdentity.userName"],
        )),
    },
    Def {
        name: "cairn-console-sign-in-failures-per-ip",
        description: "5 or more failed console sign-ins from one source IP address within 5 minutes.",
        severity: Severity::Medium,
        kind: Kind::Pattern,
        source: FAILED_SIGN_IN,
        threshold: Some((5, 300, &["detail.sourceIPAddress"])),
    },
    Def {
        name: "cairn-console-sign-in-without-mfa",
        description: "An IAM user or the root user signed in to the console without MFA.",
        severity: Severity::Medium,
        kind: Kind::Pattern,
        source: r#"{
  "detail-type": ["AWS Console Sign In via CloudTrail"],
  "detail": {
    "eventName": ["ConsoleLogin"],
    "responseElements": {"ConsoleLogin": ["Success"]},
    "additionalEventData": {"MFAUsed": ["No"]},
    "userIdentity": {"type": ["IAMUser", "Root"]}
  }
}"#,
        threshold: None,
    },
    Def {
        name: "cairn-trail-logging-changed",
        description: "A trail was stopped, deleted or changed, or its event selectors were replaced (attempts that failed included).",
        severity: Severity::High,
        kind: Kind::Pattern,
        source: r#"{
  "source": ["aws.cloudtrail"],
  "detail": {"eventName": ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"]}
}"#,
        threshold: None,
    },
    Def {
        name: "cairn-bucket-made-public",
        description: "A bucket was made public: a public ACL, a policy allowing everyone, or a public access block removed or weakened.",
        severity: Severity::Critical,
        kind: Kind::Pattern,
        source: r#"{
  "source": ["aws.s3"],
  "detail": {
    "errorCode": [{"exists": false}, null, ""],
    "$or": [
      {"eventName": ["PutBucketAcl", "CreateBucket"],
       "requestParameters": {"x-amz-acl": ["public-read", "public-read-write", "authenticated-read"]}},
      {"eventName": ["PutBucketAcl"],
       "requestParameters": {"AccessControlPolicy": {"AccessControlList": {"Grant": {"Grantee": {"URI": [
         {"wildcard": "*/global/AllUsers"}, {"wildcard": "*/global/AuthenticatedUsers"}]}}}}}},
      {"eventName": ["PutBucketPolicy"],
       "requestParameters": {"bucketPolicy": {"Statement": {"Effect": ["Allow"], "Principal": ["*"]}}}},
      {"eventName": ["PutBucketPolicy"],
       "requestParameters": {"bucketPolicy": {"Statement": {"Effect": ["Allow"], "Principal": {"AWS": ["*"]}}}}},
      {"eventName": ["DeleteBucketPublicAccessBlock", "DeleteAccountPublicAccessBlock", "DeletePublicAccessBlock"]},
      {"eventName": ["PutBucketPublicAccessBlock", "PutAccountPublicAccessBlock", "PutPublicAccessBlock"],
       "requestParameters": {"PublicAccessBlockConfiguration": {"$or": [
         {"BlockPublicAcls": [false]}, {"IgnorePublicAcls": [false]},
         {"BlockPublicPolicy": [false]}, {"RestrictPublicBuckets": [false]}]}}}
    ]
  }
}"#,
        threshold: None,
    },
    Def {
        name: "cairn-access-key-for-another-user",
        description: "An access key was created for a user other than the caller.",
        severity: Severity::High,
        kind: Kind::Sigma,
        source: r#"title: Access key created for another user
id: 0d4f4a34-9c55-4d4e-a5a4-7a0c2b1f7f10
status: stable
description: An IAM access key was created for a different user than the one calling, a common way to keep access (persistence).
author: Cairn
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: iam.amazonaws.com
        eventName: CreateAccessKey
        requestParameters.userName|exists: true
    same_name:
        requestParameters.userName|fieldref: userIdentity.userName
    same_user_arn:
        userIdentity.type: IAMUser
        userIdentity.userName|exists: false
        userIdentity.arn|endswith|fieldref: requestParameters.userName
    failed:
        errorCode: '?*'
    condition: selection and not 1 of same_* and not failed
level: high
"#,
        threshold: None,
    },
    Def {
        name: "cairn-security-group-open-to-world",
        description: "A security group was opened to the whole internet (0.0.0.0/0 or ::/0).",
        severity: Severity::High,
        kind: Kind::Pattern,
        source: r#"{
  "source": ["aws.ec2"],
  "detail": {
    "errorCode": [{"exists": false}, null, ""],
    "$or": [
      {"eventName": ["AuthorizeSecurityGroupIngress"],
       "requestParameters": {"ipPermissions": {"items": {"ipRanges": {"items": {"cidrIp": ["0.0.0.0/0"]}}}}}},
      {"eventName": ["AuthorizeSecurityGroupIngress"],
       "requestParameters": {"ipPermissions": {"items": {"ipv6Ranges": {"items": {"cidrIpv6": ["::/0"]}}}}}},
      {"eventName": ["AuthorizeSecurityGroupIngress"], "requestParameters": {"cidrIp": ["0.0.0.0/0"]}},
      {"eventName": ["ModifySecurityGroupRules"],
       "requestParameters": {"ModifySecurityGroupRulesRequest": {"SecurityGroupRule": {"SecurityGroupRule": {
         "$or": [{"CidrIpv4": ["0.0.0.0/0"]}, {"CidrIpv6": ["::/0"]}]}}}}}
    ]
  }
}"#,
        threshold: None,
    },
    Def {
        name: "cairn-database-deleted",
        description: "A database was deleted (RDS instance or cluster, DynamoDB table, Redshift cluster, DocumentDB or Neptune cluster).",
        severity: Severity::High,
        kind: Kind::Pattern,
        source: r#"{
  "source": ["aws.rds", "aws.dynamodb", "aws.redshift", "aws.docdb-elastic"],
  "detail": {
    "errorCode": [{"exists": false}, null, ""],
    "eventName": ["DeleteDBInstance", "DeleteDBCluster", "DeleteTable", "DeleteCluster", "DeleteGlobalCluster"]
  }
}"#,
        threshold: None,
    },
    Def {
        name: "cairn-bucket-deleted",
        description: "An S3 bucket was deleted.",
        severity: Severity::High,
        kind: Kind::Pattern,
        source: r#"{
  "source": ["aws.s3"],
  "detail": {"errorCode": [{"exists": false}, null, ""], "eventName": ["DeleteBucket"]}
}"#,
        threshold: None,
    },
];

/// The default pack's rules, enabled.
pub fn default_pack() -> Vec<RuleSpec> {
    DEFS.iter()
        .map(|d| RuleSpec {
            name: d.name.to_owned(),
            description: d.description.to_owned(),
            severity: d.severity,
            kind: d.kind,
            source: d.source.to_owned(),
            threshold: d.threshold.map(|(count, window_seconds, paths)| Threshold {
                count,
                window_seconds,
                group_by: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
            enabled: true,
            origin: Origin::Default,
            file: None,
            updated_ms: 0,
        })
        .collect()
}
