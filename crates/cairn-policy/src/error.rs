//! Why a policy document was refused.

/// A refused policy document. [`PolicyError::Invalid`] says where the problem is, as a path
/// into the document (`Statement[1].Action[0]`); the caller answers
/// `MalformedPolicyDocumentException` for every variant except [`PolicyError::TooLarge`], which
/// AWS reports as `LimitExceededException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is longer than [`crate::MAX_POLICY_CHARS`].
    #[error("Cannot exceed quota for PolicySize: {limit} (the document has {length} characters)")]
    TooLarge { length: usize, limit: usize },
    /// Not JSON at all; `line` and `column` are serde_json's (1-based).
    #[error("Syntax errors in policy: {message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// JSON, but not a valid policy. `location` is empty for the document itself.
    #[error("{}", located(.location, .message))]
    Invalid { location: String, message: String },
}

impl PolicyError {
    /// The path to the offending element (`Statement[0].Condition.IpAddress.aws:SourceIp[1]`),
    /// or `line:column` for a JSON syntax error; `None` for a document that is too large.
    pub fn location(&self) -> Option<String> {
        match self {
            PolicyError::TooLarge { .. } => None,
            PolicyError::Syntax { line, column, .. } => Some(format!("{line}:{column}")),
            PolicyError::Invalid { location, .. } => Some(location.clone()),
        }
    }

    /// True for the size limit (AWS: `LimitExceededException`), false for a malformed document
    /// (AWS: `MalformedPolicyDocumentException`).
    pub fn is_limit_exceeded(&self) -> bool {
        matches!(self, PolicyError::TooLarge { .. })
    }

    pub(crate) fn at(location: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            location: location.to_owned(),
            message: message.into(),
        }
    }
}

fn located(location: &str, message: &str) -> String {
    if location.is_empty() {
        message.to_owned()
    } else {
        format!("{location}: {message}")
    }
}
