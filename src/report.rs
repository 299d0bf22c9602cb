//! The final report of a run: the numbers an operator checks before the doors open, as
//! a human summary and as JSON under stable keys that scripts rely on.
//!
//! The categories (registered, updated, unchanged, skipped, failed, removed) add up to
//! the number of operations: every pair is counted exactly once, and a failed pair is
//! listed with its reason. Operations are the pairs to enroll (people x devices, less
//! the people that leave with `--expire` or `catraca remove`) plus one per person taken
//! off a device (and one per device that could not be listed for a removal). A pair
//! that `--verify` finds missing moves from registered or updated to failed. Nothing
//! here ever holds a password.

use crate::category::Category;
use crate::i18n::{self, Msg};
use crate::vendor::Kind;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::ops::{AddAssign, Index, IndexMut};
use std::sync::Arc;

/// Counts for one device, or for the whole run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub registered: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped_cache: u64,
    pub failed: u64,
    /// People taken off the device (`--prune`, `--expire`, `catraca remove`); with
    /// `catraca plan`, that would be. Each removal is one operation of its own.
    pub removed: u64,
    /// `catraca plan`: how many people need each field changed (name, validity, card,
    /// group). Empty, and left out of the JSON, for an enrollment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Every category, so that the categories add up to the operations.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, count)| count).sum()
    }

    /// Each category with its count, in [`Category::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Category, u64)> + '_ {
        Category::ALL.into_iter().map(|c| (c, self[c]))
    }
}

impl Index<Category> for Counts {
    type Output = u64;

    fn index(&self, category: Category) -> &u64 {
        match category {
            Category::Registered => &self.registered,
            Category::Updated => &self.updated,
            Category::Unchanged => &self.unchanged,
            Category::SkippedCache => &self.skipped_cache,
            Category::Failed => &self.failed,
            Category::Removed => &self.removed,
        }
    }
}

impl IndexMut<Category> for Counts {
    fn index_mut(&mut self, category: Category) -> &mut u64 {
        match category {
            Category::Registered => &mut self.registered,
            Category::Updated => &mut self.updated,
            Category::Unchanged => &mut self.unchanged,
            Category::SkippedCache => &mut self.skipped_cache,
            Category::Failed => &mut self.failed,
            Category::Removed => &mut self.removed,
        }
    }
}

/// Adds the categories (not the plan's field changes, which are per device).
impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, other: &Counts) {
        for (category, count) in other.iter() {
            self[category] += count;
        }
    }
}

/// One device's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub name: String,
    pub url: String,
    /// The site the device is at, in the report of a run of many sites (`catraca
    /// status`); left out of a one-machine run's JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The vendor family: `controlid`, `hikvision` or `intelbras`.
    pub kind: Kind,
    /// When this device's last pair was settled, from the start of the run: shows which
    /// turnstile held the run up (and that fast ones did not wait for slow ones).
    pub finished_ms: u64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Names this run cut to the device's limit (Hikvision `name.@max`), each person
    /// once; `long_names = "fail"` refuses them instead.
    pub names_truncated: u64,
    /// Face photos the device stored in this run.
    pub photos_sent: u64,
    /// Face photos refused by the device or not fit for its family; each is also a
    /// failed pair with the reason.
    pub photos_refused: u64,
}

/// One pair that did not end on its device.
///
/// Its texts are shared: a person's registration by all their failures, a device's
/// name by all its failures, and a reason by all the failures of one device that give
/// it (see [`FailureTexts`]). A run with every device down lists a million failures
/// that say ten different things; with a `String` each they took 487 MB.
#[derive(Debug, Clone)]
pub struct Failure {
    pub registration: Arc<str>,
    pub device: Arc<str>,
    pub error: Arc<str>,
}

impl Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut failure = serializer.serialize_struct("Failure", 3)?;
        failure.serialize_field("registration", &*self.registration)?;
        failure.serialize_field("device", &*self.device)?;
        failure.serialize_field("error", &*self.error)?;
        failure.end()
    }
}

/// The one copy of each text that failures share: each person's registration, each
/// device's name and, per device, each distinct reason.
pub struct FailureTexts {
    registrations: Vec<Option<Arc<str>>>,
    devices: Vec<Arc<str>>,
    reasons: Vec<HashSet<Arc<str>>>,
}

impl FailureTexts {
    /// For `people` people (by index) on the devices named `devices` (by index).
    pub fn new(people: usize, devices: impl IntoIterator<Item = String>) -> FailureTexts {
        let devices: Vec<Arc<str>> = devices.into_iter().map(Arc::from).collect();
        FailureTexts {
            registrations: vec![None; people],
            reasons: vec![HashSet::new(); devices.len()],
            devices,
        }
    }

    /// The failure of person number `person` (whose registration is `registration`) on
    /// device number `device`, for `error`.
    pub fn failure(
        &mut self,
        person: Option<usize>,
        registration: &str,
        device: usize,
        error: &str,
    ) -> Failure {
        let registration = match person.and_then(|p| self.registrations.get_mut(p)) {
            Some(slot) => Arc::clone(slot.get_or_insert_with(|| Arc::from(registration))),
            None => Arc::from(registration),
        };
        let reasons = &mut self.reasons[device];
        let error = match reasons.get(error) {
            Some(known) => Arc::clone(known),
            None => {
                let fresh: Arc<str> = Arc::from(error);
                reasons.insert(Arc::clone(&fresh));
                fresh
            }
        };
        Failure {
            registration,
            device: Arc::clone(&self.devices[device]),
            error,
        }
    }
}

/// The report of one `catraca enroll`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub participants: u64,
    pub devices: u64,
    pub operations: u64,
    /// The sum of every device's counts, under the same keys (`registered`, ...,
    /// `removed`) at the top of the JSON.
    #[serde(flatten)]
    pub totals: Counts,
    /// Pairs read back by `--verify`.
    pub verified: u64,
    /// Pairs done on the device whose result could not be written to the cache (they
    /// will be checked against the device again next time, never duplicated).
    pub not_cached: u64,
    /// `catraca plan`: nothing was written; registered / updated count what would be.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Whether the run was stopped by Ctrl-C / SIGTERM before the end.
    pub interrupted: bool,
    /// Why the run stopped early on its own (`--max-failures`), if it did.
    pub halted: Option<String>,
    pub duration_ms: u64,
    /// The cache used, e.g. `embedded (/path)` or `redis (redis://host:6379/0)`.
    pub cache: String,
    pub per_device: Vec<DeviceReport>,
    pub failures: Vec<Failure>,
}

impl Report {
    /// A report of nothing, to fill in.
    pub fn empty() -> Report {
        Report {
            participants: 0,
            devices: 0,
            operations: 0,
            totals: Counts::default(),
            verified: 0,
            not_cached: 0,
            dry_run: false,
            interrupted: false,
            halted: None,
            duration_ms: 0,
            cache: String::new(),
            per_device: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The JSON report, pretty-printed and followed by a newline, written to `out` as
    /// it is produced: a million failures never sit in memory as one text.
    pub fn write_json(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The human summary: totals, then one line per device, then the failures.
    pub fn to_text(&self) -> String {
        self.to_text_styled(false)
    }

    /// [`Report::to_text`], with failures in red and registrations in green when `color`.
    pub fn to_text_styled(&self, color: bool) -> String {
        use crate::style::{paint, Color};
        let mut out = String::new();
        // `label:` padded to one column, in the operator's language.
        let mut field = |indent: &str, label: Msg, value: &dyn std::fmt::Display| {
            let label = format!("{indent}{}:", i18n::t(label));
            let _ = writeln!(out, "{label:<19}{value}");
        };
        field("", Msg::SumParticipants, &self.participants);
        field("", Msg::SumDevices, &self.devices);
        field("", Msg::SumOperations, &self.operations);
        for (category, count) in self.totals.iter() {
            // Removals show when there are some, or when a plan could have found some.
            if category == Category::Removed && count == 0 && !self.dry_run {
                continue;
            }
            let count = match category {
                Category::Failed if count > 0 => paint(&count.to_string(), Color::Red, color),
                _ => count.to_string(),
            };
            field("  ", category.label(self.dry_run), &count);
        }
        if self.verified > 0 {
            field(
                "",
                Msg::SumVerified,
                &i18n::tr(Msg::SumVerifiedWhy, &[("count", &self.verified)]),
            );
        }
        if self.not_cached > 0 {
            field(
                "",
                Msg::SumNotCached,
                &i18n::tr(Msg::SumNotCachedWhy, &[("count", &self.not_cached)]),
            );
        }
        let duration = format!(
            "{:.2} s{}",
            self.duration_ms as f64 / 1000.0,
            if self.interrupted {
                i18n::t(Msg::SumInterrupted)
            } else {
                ""
            }
        );
        field("", Msg::SumDuration, &duration);
        field("", Msg::SumCache, &self.cache);
        let name_width = self
            .per_device
            .iter()
            .map(|d| d.name.chars().count())
            .max()
            .unwrap_or(6)
            .max(i18n::t(Msg::ColDevice).chars().count());
        // Each category's column: its heading, at least as wide as the English one.
        let columns: Vec<(&str, usize)> = Category::ALL
            .iter()
            .zip([10, 9, 9, 7, 6, 7])
            .map(|(&category, min)| {
                let heading = match (category, self.dry_run) {
                    (Category::Registered, true) => i18n::t(Msg::ColToAdd),
                    (Category::Updated, true) => i18n::t(Msg::ColToUpdate),
                    (Category::Removed, true) => i18n::t(Msg::ColToRemove),
                    (Category::SkippedCache, _) => i18n::t(Msg::ColSkipped),
                    (category, _) => i18n::t(category.label(false)),
                };
                (heading, min.max(heading.chars().count()))
            })
            .collect();
        let _ = write!(
            out,
            "\n{:<name_width$}  {:<9}",
            i18n::t(Msg::ColDevice),
            i18n::t(Msg::ColKind)
        );
        for (heading, width) in &columns {
            let _ = write!(out, "  {heading:>width$}");
        }
        let _ = writeln!(out, "  url");
        for d in &self.per_device {
            let c = &d.counts;
            let _ = write!(out, "{:<name_width$}  {:<9}", d.name, d.kind.name());
            for ((_, count), (_, width)) in c.iter().zip(&columns) {
                let _ = write!(out, "  {count:>width$}");
            }
            let _ = writeln!(out, "  {}", d.url);
            if d.photos_sent + d.photos_refused > 0 {
                let _ = writeln!(
                    out,
                    "{:<name_width$}  {}",
                    "",
                    i18n::tr(
                        Msg::SumPhotos,
                        &[("sent", &d.photos_sent), ("refused", &d.photos_refused)]
                    )
                );
            }
            if d.names_truncated > 0 {
                let _ = writeln!(
                    out,
                    "{:<name_width$}  {}",
                    "",
                    i18n::tr(Msg::NamesTruncated, &[("count", &d.names_truncated)])
                );
            }
            if !c.changes.is_empty() {
                let fields: Vec<String> =
                    c.changes.iter().map(|(f, n)| format!("{f} {n}")).collect();
                let _ = writeln!(
                    out,
                    "{:<name_width$}  {}: {}",
                    "",
                    i18n::t(Msg::ColChanges),
                    fields.join(", ")
                );
            }
        }
        if self.dry_run {
            let _ = writeln!(out, "\n{}", i18n::t(Msg::SumNothingWritten));
        }
        if !self.failures.is_empty() {
            let _ = writeln!(
                out,
                "\n{}",
                paint(
                    &i18n::tr(Msg::SumFailures, &[("count", &self.failures.len())]),
                    Color::Red,
                    color
                )
            );
            const SHOWN: usize = 20;
            for f in self.failures.iter().take(SHOWN) {
                let _ = writeln!(
                    out,
                    "{}",
                    i18n::tr(
                        Msg::SumFailureLine,
                        &[
                            ("registration", &f.registration),
                            ("device", &f.device),
                            ("error", &f.error)
                        ]
                    )
                );
            }
            if self.failures.len() > SHOWN {
                let _ = writeln!(
                    out,
                    "{}",
                    i18n::tr(
                        Msg::SumMoreFailures,
                        &[("count", &(self.failures.len() - SHOWN))]
                    )
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_share_their_texts_and_keep_their_json_shape() {
        let mut texts = FailureTexts::new(2, ["portaria-1".to_string(), "portaria-2".into()]);
        let a = texts.failure(Some(0), "A-1", 0, "device unreachable");
        let b = texts.failure(Some(0), "A-1", 1, "device unreachable");
        let c = texts.failure(Some(1), "B-2", 0, "device unreachable");
        let d = texts.failure(Some(1), "B-2", 0, "login refused");
        assert!(Arc::ptr_eq(&a.registration, &b.registration));
        assert!(Arc::ptr_eq(&a.device, &c.device));
        assert!(Arc::ptr_eq(&a.error, &c.error), "one reason per device");
        assert!(!Arc::ptr_eq(&a.error, &b.error), "each device its own");
        assert_eq!(&*d.error, "login refused");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"registration": "B-2", "device": "portaria-1", "error": "device unreachable"})
        );
        let mut report = Report::empty();
        report.failures = vec![a, d];
        let mut streamed = Vec::new();
        report.write_json(&mut streamed).unwrap();
        let text = String::from_utf8(streamed).unwrap();
        assert_eq!(text, serde_json::to_string_pretty(&report).unwrap() + "\n");
    }

    #[test]
    fn removals_count_among_the_operations_and_show_in_the_summary() {
        let counts = Counts {
            registered: 3,
            failed: 1,
            removed: 2,
            ..Counts::default()
        };
        assert_eq!(counts.total(), 6);
        let mut report = Report::empty();
        report.totals.removed = 2;
        report.per_device.push(DeviceReport {
            names_truncated: 0,
            photos_sent: 0,
            photos_refused: 0,
            name: "portaria-1".into(),
            url: "http://10.0.0.5".into(),
            site: None,
            kind: Kind::Controlid,
            finished_ms: 0,
            counts,
        });
        let text = report.to_text();
        assert!(text.contains("  removed:         2"), "{text}");
        report.dry_run = true;
        let text = report.to_text();
        assert!(text.contains("  would remove:    2"), "{text}");
        assert!(text.contains("to remove"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["removed"], 2);
        assert_eq!(json["per_device"][0]["removed"], 2);
    }
}
