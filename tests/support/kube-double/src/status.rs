//! Kubernetes `Status` error bodies.

use crate::kinds::Kind;
use serde_json::{json, Value};

/// An API error, answered as a `Status` JSON body with `code` as HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, kind: Kind, name: &str) -> ApiError {
        let mut details = json!({"name": name, "kind": kind.resource()});
        if !kind.group().is_empty() {
            details["group"] = json!(kind.group());
        }
        self.details = Some(details);
        self
    }

    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.group_resource()),
        )
        .with_details(kind, name)
    }

    pub fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.group_resource()),
        )
        .with_details(kind, name)
    }

    pub fn conflict(kind: Kind, name: &str, message: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {message}",
                kind.group_resource()
            ),
        )
        .with_details(kind, name)
    }

    pub fn invalid(kind: Kind, name: &str, cause: &str) -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            match kind.group() {
                "" => format!("{} \"{name}\" is invalid: {cause}", kind.kind()),
                group => format!("{}.{group} \"{name}\" is invalid: {cause}", kind.kind()),
            },
        )
        .with_details(kind, name)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn path_not_found(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub fn expired() -> ApiError {
        ApiError::new(410, "Expired", "too old resource version")
    }

    /// The error `inject_failure` answers with for a status code.
    pub fn injected(code: u16) -> ApiError {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "AlreadyExists",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        ApiError::new(code, reason, format!("injected failure ({code} {reason})"))
    }

    /// The `Status` object.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_the_api_server() {
        assert_eq!(
            ApiError::not_found(Kind::Pod, "p").message,
            "pods \"p\" not found"
        );
        assert_eq!(
            ApiError::not_found(Kind::Job, "j").message,
            "jobs.batch \"j\" not found"
        );
        assert_eq!(
            ApiError::invalid(Kind::ConfigMap, "c", "x").message,
            "ConfigMap \"c\" is invalid: x"
        );
        assert_eq!(
            ApiError::invalid(Kind::Job, "j", "x").message,
            "Job.batch \"j\" is invalid: x"
        );
        let body = ApiError::expired().body();
        assert_eq!(body["code"], 410);
        assert_eq!(body["reason"], "Expired");
    }
}
