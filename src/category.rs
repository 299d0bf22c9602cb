//! The six categories a settled operation counts in: the one list that the report, the
//! reporter, the live status, `/metrics`, the events file and the dashboard read.
//!
//! Each category has one machine key (the JSON report's key, the `outcome` label of
//! `/metrics` and of the events file) and one human label per language. Before this
//! list existed the six were spelled out in ten places with three sets of labels, and
//! the copies had started to disagree: a category is now added or renamed here alone.

use crate::device::{Outcome, Plan};
use crate::i18n::Msg;

/// Where one operation (a person on a device, or a person taken off one) ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Registered,
    Updated,
    Unchanged,
    SkippedCache,
    Failed,
    Removed,
}

impl Category {
    /// Every category, in the order the report lists them.
    pub const ALL: [Category; 6] = [
        Category::Registered,
        Category::Updated,
        Category::Unchanged,
        Category::SkippedCache,
        Category::Failed,
        Category::Removed,
    ];

    /// The machine key: JSON report key, metrics and events-file label.
    pub fn key(self) -> &'static str {
        match self {
            Category::Registered => "registered",
            Category::Updated => "updated",
            Category::Unchanged => "unchanged",
            Category::SkippedCache => "skipped_cache",
            Category::Failed => "failed",
            Category::Removed => "removed",
        }
    }

    /// The key of what `catraca plan` says would happen: `would_register`,
    /// `would_update`, `would_remove`; the others are the same as [`Category::key`].
    pub fn planned_key(self) -> &'static str {
        match self {
            Category::Registered => "would_register",
            Category::Updated => "would_update",
            Category::Removed => "would_remove",
            other => other.key(),
        }
    }

    /// The human label of the summary and of `-v` lines (`planned`: `catraca plan`).
    pub fn label(self, planned: bool) -> Msg {
        match (self, planned) {
            (Category::Registered, false) => Msg::SumRegistered,
            (Category::Registered, true) => Msg::SumWouldRegister,
            (Category::Updated, false) => Msg::SumUpdated,
            (Category::Updated, true) => Msg::SumWouldUpdate,
            (Category::Unchanged, _) => Msg::SumUnchanged,
            (Category::SkippedCache, _) => Msg::SumSkipped,
            (Category::Failed, _) => Msg::SumFailed,
            (Category::Removed, false) => Msg::SumRemoved,
            (Category::Removed, true) => Msg::SumWouldRemove,
        }
    }

    /// The category of a pair's outcome; a plan counts as what it would do, and a
    /// registration found twice (nothing can be written for it) as failed.
    pub fn of(outcome: &Outcome) -> Category {
        match outcome {
            Outcome::Registered | Outcome::Planned(Plan::Create) => Category::Registered,
            Outcome::Updated | Outcome::Planned(Plan::Update { .. }) => Category::Updated,
            Outcome::Unchanged | Outcome::Planned(Plan::Unchanged { .. }) => Category::Unchanged,
            Outcome::SkippedCache => Category::SkippedCache,
            Outcome::Failed(_) | Outcome::Planned(Plan::Ambiguous { .. }) => Category::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceError;
    use crate::i18n::{Lang, Msg};

    #[test]
    fn keys_are_the_report_json_keys_and_unique() {
        let keys: Vec<&str> = Category::ALL.iter().map(|c| c.key()).collect();
        assert_eq!(
            keys,
            [
                "registered",
                "updated",
                "unchanged",
                "skipped_cache",
                "failed",
                "removed"
            ]
        );
        let planned: std::collections::HashSet<&str> =
            Category::ALL.iter().map(|c| c.planned_key()).collect();
        assert_eq!(planned.len(), 6);
    }

    #[test]
    fn a_conflict_found_by_plan_counts_as_failed_and_a_plan_as_what_it_would_do() {
        assert_eq!(
            Category::of(&Outcome::Planned(Plan::Ambiguous { ids: vec![1, 2] })),
            Category::Failed
        );
        assert_eq!(
            Category::of(&Outcome::Planned(Plan::Create)),
            Category::Registered
        );
        assert_eq!(
            Category::of(&Outcome::Failed(DeviceError::Internal("x".into()))),
            Category::Failed
        );
        assert_eq!(
            Category::Registered.label(true).template(Lang::En),
            Msg::SumWouldRegister.template(Lang::En)
        );
    }
}
