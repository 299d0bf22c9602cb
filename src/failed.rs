//! `--failed FILE`: the people whose pairs failed, as a participants CSV that `--users`
//! reads back, so an operator can retry exactly what went wrong.
//!
//! One row per person (the same registration twice would be refused as a duplicate),
//! with every field as the input had it, plus two columns the reader ignores:
//! `devices` (where it failed) and `reasons` (why, per device, in the same order).
//! Feeding the file back retries these people on every device; the pairs already done
//! are skipped by the cache. Rows come in the order of the participants list.

use crate::person::{Card, Person};
use crate::report::Report;
use chrono::{Local, TimeZone};
use std::collections::HashMap;
use std::path::Path;

/// Writes the failed people of `report` to `path`, one row per person in the order of
/// the participants list, each row written as it is made.
///
/// What is built first is an index of the failures, 8 bytes each (whose they are, and
/// which failure), sorted by person: a run with every device down fails a million
/// pairs, and a map of people to lists of texts cost more than the failures themselves.
pub fn write(path: &Path, people: &[Person], report: &Report) -> anyhow::Result<()> {
    use anyhow::Context;
    let person_of: HashMap<&str, u32> = people
        .iter()
        .enumerate()
        .map(|(n, p)| (p.registration.as_str(), n as u32))
        .collect();
    let mut order: Vec<(u32, u32)> = report
        .failures
        .iter()
        .enumerate()
        .filter_map(|(n, f)| Some((*person_of.get(&*f.registration)?, n as u32)))
        .collect();
    drop(person_of);
    // By person, and within a person in the order the failures came.
    order.sort_unstable();
    let mut out = csv::Writer::from_path(path)
        .with_context(|| format!("writing the failed pairs to {}", path.display()))?;
    out.write_record([
        "registration",
        "name",
        "card",
        "begin",
        "end",
        "group",
        "devices",
        "reasons",
    ])?;
    for rows in order.chunk_by(|a, b| a.0 == b.0) {
        let person = &people[rows[0].0 as usize];
        let failures = || rows.iter().map(|&(_, n)| &report.failures[n as usize]);
        let devices: Vec<&str> = failures().map(|f| &*f.device).collect();
        let reasons: Vec<&str> = failures().map(|f| &*f.error).collect();
        out.write_record([
            person.registration.as_str(),
            person.name.as_str(),
            &person.card.map(card_text).unwrap_or_default(),
            &person.begin.map(time_text).unwrap_or_default(),
            &person.end.map(time_text).unwrap_or_default(),
            person.group.as_deref().unwrap_or(""),
            &devices.join(" | "),
            &reasons.join(" | "),
        ])?;
    }
    out.flush()
        .with_context(|| format!("writing the failed pairs to {}", path.display()))?;
    Ok(())
}

fn card_text(card: Card) -> String {
    match card {
        Card::Wiegand { facility, number } => format!("{facility},{number}"),
        Card::Number(n) => n.to_string(),
    }
}

/// ISO 8601 with this machine's offset, which the reader turns back into the same instant.
fn time_text(unix: i64) -> String {
    Local
        .timestamp_opt(unix, 0)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::participants;
    use crate::report::Failure;

    #[test]
    fn the_failed_file_reads_back_as_the_same_people() {
        let people = participants::parse(
            "registration;name;card;begin;end;group\nA-1;Ana Souza;123,45678;2026-03-01T08:00:00Z;2026-03-02T18:00:00Z;Alunos\nB-2;Bia;;;;\nC-3;Caio;99;;;\n"
                .as_bytes(),
            "in.csv",
        )
        .unwrap();
        let report = Report {
            failures: vec![
                Failure {
                    registration: "A-1".into(),
                    device: "portaria-1".into(),
                    error: "device unreachable".into(),
                },
                Failure {
                    registration: "C-3".into(),
                    device: "portaria-1".into(),
                    error: "x".into(),
                },
                Failure {
                    registration: "A-1".into(),
                    device: "portaria-2".into(),
                    error: "login refused".into(),
                },
            ],
            ..Report::empty()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed.csv");
        write(&path, &people, &report).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("portaria-1 | portaria-2"), "{text}");
        assert!(
            text.contains("device unreachable | login refused"),
            "{text}"
        );
        let back = participants::read(
            &participants::Source::File(path),
            participants::Needs::Person,
        )
        .unwrap();
        let mut expected = vec![people[0].clone(), people[2].clone()];
        for (b, e) in back.iter().zip(expected.iter_mut()) {
            e.line = b.line;
        }
        assert_eq!(back, expected);
    }
}
