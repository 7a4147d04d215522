//! The one edge between a service's errors and its gRPC callers (style.md §4.7). Each service has
//! one `thiserror` type that says, per variant, what kind of failure it is ([`ServiceError`]);
//! [`status`] turns any of them into a `tonic::Status`: the code of its kind, a clear message,
//! and an error id. Internal and infrastructure detail never reaches the caller: it is logged
//! with the same id, so the operator finds it from what the clerk quotes.

use tonic::metadata::MetadataValue;

/// The metadata key of the error id in an answer (also in its message).
pub const ERROR_ID: &str = "kokuho-error-id";

/// What kind of failure an error is, as a caller must see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed (InvalidArgument).
    Invalid,
    /// The request is well-formed but the state refuses it (FailedPrecondition).
    Refused,
    NotFound,
    /// The caller may not do this (PermissionDenied).
    Denied,
    /// The request is larger than allowed (ResourceExhausted, security.md S9).
    TooLarge,
    /// The log or a store is not reachable, or catching up: try again (Unavailable).
    Unavailable,
    /// A defect or corrupt state: the operator must look (Internal).
    Internal,
}

/// A service's error: its kind decides the code; its `Display` is the caller's message for the
/// kinds a caller can act on.
pub trait ServiceError: std::error::Error {
    fn kind(&self) -> Kind;
}

/// The answer for `error`, with a fresh error id; the error and its causes are logged with it.
pub fn status(error: &(impl ServiceError + ?Sized)) -> tonic::Status {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let kind = error.kind();
    let message = match kind {
        Kind::Unavailable => {
            tracing::warn!(error.id = %id, error = %error, error.cause_chain = ?cause_chain(error), "Request failed for now");
            format!("the service cannot answer now; try again (error id {id})")
        }
        Kind::Internal => {
            tracing::error!(error.id = %id, error = %error, error.cause_chain = ?cause_chain(error), "Internal error");
            format!("internal error; the operator finds it in the service log under error id {id}")
        }
        _ => {
            tracing::info!(error.id = %id, error = %error, "Request refused");
            format!("{error} (error id {id})")
        }
    };
    let mut status = match kind {
        Kind::Invalid => tonic::Status::invalid_argument(message),
        Kind::Refused => tonic::Status::failed_precondition(message),
        Kind::NotFound => tonic::Status::not_found(message),
        Kind::Denied => tonic::Status::permission_denied(message),
        Kind::TooLarge => tonic::Status::resource_exhausted(message),
        Kind::Unavailable => tonic::Status::unavailable(message),
        Kind::Internal => tonic::Status::internal(message),
    };
    if let Ok(v) = MetadataValue::try_from(id.as_str()) {
        status.metadata_mut().insert(ERROR_ID, v);
    }
    status
}

fn cause_chain(error: &(impl std::error::Error + ?Sized)) -> Vec<String> {
    let mut out = Vec::new();
    let mut source = error.source();
    while let Some(e) = source {
        out.push(e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("no receipt 131016-00000009")]
        Missing,
        #[error("store corrupt at key p/13000000000017")]
        Broken,
    }

    impl ServiceError for TestError {
        fn kind(&self) -> Kind {
            match self {
                TestError::Missing => Kind::NotFound,
                TestError::Broken => Kind::Internal,
            }
        }
    }

    #[test]
    fn the_caller_gets_the_code_a_message_and_the_id_never_internal_detail() {
        let s = status(&TestError::Missing);
        assert_eq!(s.code(), tonic::Code::NotFound);
        let id = s.metadata().get(ERROR_ID).unwrap().to_str().unwrap().to_string();
        assert!(s.message().starts_with("no receipt 131016-00000009") && s.message().contains(&id));
        let s = status(&TestError::Broken);
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("p/13000000000017"), "{}", s.message());
        let id = s.metadata().get(ERROR_ID).unwrap().to_str().unwrap().to_string();
        assert!(s.message().contains(&id));
    }
}
