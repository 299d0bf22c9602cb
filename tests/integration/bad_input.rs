//! Bad input aborts with exit status 2, a message naming file, line and field, and not
//! one request sent to any device.

use crate::harness::*;
use catraca_sim::SimConfig;

/// Runs `catraca enroll` on `content` and returns stderr, after checking the exit status
/// and that the simulated device saw nothing at all.
fn refused(name: &str, content: &[u8]) -> String {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let users = sandbox.write(name, content);
    let run = sandbox
        .catraca(&["enroll", "--users", users.to_str().unwrap()])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(2);
    assert_eq!(
        fleet.devices[0].stats().total,
        0,
        "a request was sent:\n{}",
        run.shown
    );
    assert!(run.stdout.is_empty(), "{}", run.shown);
    assert!(
        run.stderr.contains(name),
        "the message must name the file:\n{}",
        run.shown
    );
    run.stderr
}

#[test]
fn a_missing_required_column_is_named() {
    let err = refused("sem-nome.csv", b"matricula;cartao\n1;123\n");
    assert!(err.contains("name") || err.contains("nome"), "{err}");
}

#[test]
fn a_duplicate_registration_names_both_lines() {
    let err = refused(
        "dup.csv",
        "matricula;nome\nA-1;Ana\nA-2;Bia\nA-1;Ana de novo\n".as_bytes(),
    );
    assert!(
        err.contains("line 4") && err.contains("matricula") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn a_bad_card_names_line_and_field() {
    let err = refused(
        "card.csv",
        "matricula;nome;cartao\nA-1;Ana;12a,5\n".as_bytes(),
    );
    assert!(err.contains("line 2") && err.contains("card"), "{err}");
}

#[test]
fn a_bad_date_names_line_and_field() {
    let err = refused(
        "date.csv",
        "matricula;nome;fim\nA-1;Ana;\nA-2;Bia;31/02/2026\n".as_bytes(),
    );
    assert!(err.contains("line 3") && err.contains("fim"), "{err}");
}

#[test]
fn begin_after_end_is_refused() {
    let err = refused(
        "window.csv",
        "matricula;nome;inicio;fim\nA-1;Ana;02/03/2026;01/03/2026\n".as_bytes(),
    );
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn an_empty_name_is_refused() {
    let err = refused("blank.csv", "matricula,nome\nA-1,\n".as_bytes());
    assert!(err.contains("line 2") && err.contains("name"), "{err}");
}

#[test]
fn an_empty_file_and_a_header_alone_are_refused() {
    let err = refused("vazio.csv", b"");
    assert!(
        err.contains("no participants") || err.contains("empty"),
        "{err}"
    );
    let err = refused("so-cabecalho.csv", b"matricula;nome\n");
    assert!(err.contains("no participants"), "{err}");
}

#[test]
fn a_row_with_too_many_fields_is_refused() {
    let err = refused("campos.csv", "matricula,nome\nA-1,Ana,extra\n".as_bytes());
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let run = sandbox
        .catraca(&["enroll", "--users", "nao-existe.csv"])
        .embedded_cache()
        .devices(&fleet)
        .run();
    run.expect_code(2);
    assert!(run.stderr.contains("nao-existe.csv"), "{}", run.shown);
    assert_eq!(fleet.devices[0].stats().total, 0);
}

#[test]
fn a_bad_devices_file_is_refused_before_anything_is_sent() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let devices = sandbox.write(
        "devices.toml",
        format!(
            "[[device]]\nname = \"a\"\nurl = \"{}\"\nmax_inflight = 2\n",
            fleet.urls()[0]
        ),
    );
    let run = sandbox
        .enroll(&people(3))
        .args(&["--devices", devices.to_str().unwrap()])
        .embedded_cache()
        .run();
    run.expect_code(2);
    assert!(
        run.stderr.contains("devices.toml") && run.stderr.contains("max_inflight"),
        "{}",
        run.shown
    );
    assert_eq!(fleet.devices[0].stats().total, 0);
}

#[test]
fn an_unreachable_redis_is_a_clear_error_without_its_password() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let run = sandbox
        .enroll(&people(3))
        .args(&["--cache", "redis://:segredo@127.0.0.1:1/0"])
        .devices(&fleet)
        .run();
    run.expect_code(2);
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.shown);
    assert!(!run.stderr.contains("segredo"), "{}", run.shown);
    assert_eq!(fleet.devices[0].stats().total, 0);
}

#[test]
fn an_output_file_in_a_missing_folder_stops_the_run_before_anything_is_sent() {
    for flag in ["--report", "--failed", "--metrics-file", "--events"] {
        let sandbox = Sandbox::new();
        let fleet = fleet(1, SimConfig::default());
        let missing = sandbox.path("no-such-folder/out.file");
        let run = sandbox
            .enroll(&people(3))
            .args(&[flag, missing.to_str().unwrap()])
            .embedded_cache()
            .devices(&fleet)
            .run();
        run.expect_code(2);
        assert_eq!(fleet.devices[0].stats().total, 0, "{flag}: {}", run.shown);
        assert!(
            run.stderr
                .contains(&format!("{flag} {}", missing.display()))
                && run.stderr.contains("does not exist"),
            "{flag}: {}",
            run.shown
        );
    }
}

#[test]
fn an_output_file_that_fails_after_the_run_is_named_after_the_report_with_status_1() {
    // /dev/full takes the open and refuses every write (ENOSPC): a disk that filled up
    // during the run.
    for flag in ["--report", "--failed"] {
        let sandbox = Sandbox::new();
        let fleet = fleet(1, SimConfig::default());
        let rows = people(4);
        let run = sandbox
            .enroll(&rows)
            .args(&["--json", flag, "/dev/full"])
            .embedded_cache()
            .devices(&fleet)
            .run();
        run.expect_code(1);
        // The devices were written and the report printed, whole.
        assert_eq!(run.report()["registered"], 4, "{flag}: {}", run.shown);
        assert_people(&fleet.devices[0], &rows);
        assert!(
            run.stderr.contains(&format!("{flag} /dev/full")),
            "{flag}: {}",
            run.shown
        );
    }
}
