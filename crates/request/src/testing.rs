//! Helpers shared by the unit tests: parse a body expecting a request, or expecting problems.

use crate::{Problem, TrainingRequest, parse_training_request};

/// The request `body` parses to; panics with the problems otherwise.
pub(crate) fn ok(body: &str) -> TrainingRequest {
    match parse_training_request("Train", body) {
        Ok(r) => r,
        Err(p) => panic!("unexpected problems: {p:#?}"),
    }
}

/// The problems `body` has; panics if it parses.
pub(crate) fn problems(body: &str) -> Vec<Problem> {
    match parse_training_request("Train", body) {
        Ok(r) => panic!("expected problems, got {r:#?}"),
        Err(p) => p,
    }
}

/// Whether a problem about `field` says `needle`.
pub(crate) fn has(problems: &[Problem], field: Option<&str>, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.field.as_deref() == field && p.message.contains(needle))
}
