//! The lifecycle rules every store enforces before it changes anything. They live here once so
//! that the SQL and the SageMaker stores refuse the same changes with the same words (the contract
//! tests hold both to one set of expectations); each store only reads the current state in its own
//! way (inside a transaction, or under the model's lock) and applies them to it.

use crate::{ApprovalStatus, RegistryError, Stage};

/// A version now in `stage` with `approval` may move to `to`: not to the stage it is in, never to
/// Staging or Production once rejected, and to Production only once approved.
pub(crate) fn check_stage_change(
    name: &str,
    version: i64,
    stage: Stage,
    approval: ApprovalStatus,
    to: Stage,
) -> Result<(), RegistryError> {
    if stage == to {
        return refuse(format!(
            "`{name}` version {version} is already in stage {}",
            to.as_str()
        ));
    }
    if matches!(to, Stage::Staging | Stage::Production) && approval == ApprovalStatus::Rejected {
        return refuse(format!(
            "`{name}` version {version} was rejected; a rejected version cannot move to {}",
            to.as_str()
        ));
    }
    if to == Stage::Production && approval != ApprovalStatus::Approved {
        return refuse(format!(
            "`{name}` version {version} is {}; approve it (set_model_approval) before moving it to Production",
            approval.as_str()
        ));
    }
    Ok(())
}

/// A version now in `stage` with `approval` may get the status `to`: a different one, and not
/// Rejected while it is in Production (serving would be left on a rejected model).
pub(crate) fn check_approval_change(
    name: &str,
    version: i64,
    stage: Stage,
    approval: ApprovalStatus,
    to: ApprovalStatus,
) -> Result<(), RegistryError> {
    if approval == to {
        return refuse(format!(
            "`{name}` version {version} is already {}",
            to.as_str()
        ));
    }
    if to == ApprovalStatus::Rejected && stage == Stage::Production {
        return refuse(format!(
            "`{name}` version {version} is in Production; roll back (rollback_model) or move it out of Production before rejecting it"
        ));
    }
    Ok(())
}

/// Whether pointing `alias` (now on `current`) at `version` has anything to write: nothing when it
/// points there already, and an alias on another version moves only with `reassign`.
pub(crate) fn alias_moves(
    name: &str,
    alias: &str,
    version: i64,
    current: Option<i64>,
    reassign: bool,
) -> Result<bool, RegistryError> {
    match current {
        Some(v) if v == version => Ok(false),
        Some(v) if !reassign => refuse(format!(
            "alias `{alias}` of `{name}` already points at version {v}; pass reassign: true to move it to version {version}"
        )),
        _ => Ok(true),
    }
}

/// A version in Production is never deleted: serving may be loading it.
pub(crate) fn check_deletable(name: &str, version: i64, stage: Stage) -> Result<(), RegistryError> {
    if stage == Stage::Production {
        return refuse(format!(
            "`{name}` version {version} is in Production; move it to Archived (or roll back) before deleting it"
        ));
    }
    Ok(())
}

/// Nor is a version that `aliases` point at, so no alias is left dangling.
pub(crate) fn check_unaliased(
    name: &str,
    version: i64,
    aliases: &[String],
) -> Result<(), RegistryError> {
    if !aliases.is_empty() {
        return refuse(format!(
            "`{name}` version {version} is the target of alias {}; move or remove it first",
            aliases.join(", ")
        ));
    }
    Ok(())
}

/// Rollback's refusal when there is nothing to roll back from.
pub(crate) fn nothing_in_production(name: &str) -> RegistryError {
    RegistryError::Invalid(format!(
        "`{name}` has no version in Production to roll back from"
    ))
}

/// Rollback's refusal when there is nothing to roll back to.
pub(crate) fn no_approved_before(name: &str, production: i64) -> RegistryError {
    RegistryError::Invalid(format!(
        "`{name}` has no approved version older than Production version {production}; nothing was changed"
    ))
}

fn refuse<T>(message: String) -> Result<T, RegistryError> {
    Err(RegistryError::Invalid(message))
}
