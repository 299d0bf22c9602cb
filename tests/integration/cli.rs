//! The friendly command line: shell completions, colour only on a terminal and never
//! with NO_COLOR, and the catraca.toml settings file with flags > environment > file.

use crate::harness::*;
use catraca_sim::SimConfig;
use std::process::Command;

#[test]
fn completions_for_bash_zsh_and_fish() {
    let sandbox = Sandbox::new();
    let bash = sandbox.catraca(&["completions", "bash"]).run();
    bash.expect_code(0);
    assert!(bash.stdout.contains("_catraca()") && bash.stdout.contains("enroll"));
    let script = sandbox.write("catraca.bash", &bash.stdout);
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success(), "bash -n refuses the script");
    let zsh = sandbox.catraca(&["completions", "zsh"]).run();
    zsh.expect_code(0);
    assert!(zsh.stdout.starts_with("#compdef catraca"), "{}", zsh.shown);
    let fish = sandbox.catraca(&["completions", "fish"]).run();
    fish.expect_code(0);
    assert!(
        fish.stdout.contains("complete -c catraca"),
        "{}",
        fish.shown
    );
    assert!(fish.stdout.contains("dashboard"), "{}", fish.shown);
}

/// Runs `catraca ARGS` on a pseudo-terminal (util-linux `script`), as an operator's
/// shell would; what the terminal showed.
fn on_a_terminal(sandbox: &Sandbox, args: &[&str], no_color: bool) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_catraca"))
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(sandbox.dir.path())
        .env("CATRACA_PASSWORD", PASSWORD)
        .env("TERM", "xterm")
        .env_remove("LANG")
        .env_remove("LC_ALL");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd.output().expect("script(1) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    let url = fleet.urls()[0].clone();
    let shown = on_a_terminal(&sandbox, &["check", "--device", &url], false);
    assert!(shown.contains("\x1b[32mready\x1b[0m"), "{shown:?}");
    let plain = on_a_terminal(&sandbox, &["check", "--device", &url], true);
    assert!(
        plain.contains("ready") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let piped = sandbox.catraca(&["check", "--device", &url]).run();
    piped.expect_code(0);
    assert!(!piped.stdout.contains('\x1b'), "{}", piped.shown);
}

#[test]
fn catraca_toml_gives_defaults_that_environment_and_flags_override() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let devices: String = fleet
        .urls()
        .iter()
        .enumerate()
        .map(|(i, url)| {
            format!(
                "[[device]]\nname = \"portaria-{}\"\nurl = \"{url}\"\n",
                i + 1
            )
        })
        .collect();
    sandbox.write("devices.toml", devices);
    sandbox.write(
        "catraca.toml",
        "devices = \"devices.toml\"\nbatch_size = 1\ncache = \"embedded\"\ncache_path = \"site.redb\"\n",
    );
    sandbox.write("p.csv", csv(&people(6)));

    // The file's devices, batch size and cache; the environment's CATRACA_CACHE wins
    // over the file's cache.
    let ran = sandbox
        .catraca(&["enroll", "--users", "p.csv", "--json"])
        .env("CATRACA_CACHE", "none")
        .run();
    ran.expect_code(0);
    let report = ran.report();
    assert_eq!(
        report["per_device"][0]["name"], "portaria-1",
        "{}",
        ran.shown
    );
    assert_eq!(report["registered"], 12);
    assert_eq!(report["cache"], "none", "{}", ran.shown);
    assert_eq!(
        requests(&fleet.devices[0], "create_objects") - fleet.devices[0].cards().len() as u64,
        6 + fleet.devices[0].user_groups().len() as u64 + fleet.devices[0].groups().len() as u64,
        "one person per create request (batch_size = 1)"
    );

    // Without the environment, the file's cache; a flag beats the file's batch size.
    let before = requests(&fleet.devices[1], "load_objects");
    let ran = sandbox
        .catraca(&[
            "enroll",
            "--users",
            "p.csv",
            "--json",
            "--batch-size",
            "100",
        ])
        .run();
    ran.expect_code(0);
    assert!(
        ran.report()["cache"]
            .as_str()
            .unwrap()
            .contains("site.redb"),
        "{}",
        ran.shown
    );
    assert_eq!(ran.report()["unchanged"], 12);
    assert!(requests(&fleet.devices[1], "load_objects") > before);

    // --config names another file; its paths are relative to it; a typo is refused.
    std::fs::create_dir(sandbox.path("site")).unwrap();
    sandbox.write(
        "site/devices.toml",
        "[[device]]\nname = \"outra\"\nurl = \"http://127.0.0.1:1\"\n",
    );
    sandbox.write("site/other.toml", "devices = \"devices.toml\"\n");
    let ran = sandbox
        .catraca(&[
            "check",
            "--config",
            "site/other.toml",
            "--connect-timeout",
            "1",
        ])
        .run();
    ran.expect_code(1);
    assert!(ran.stdout.contains("outra"), "{}", ran.shown);
    sandbox.write("catraca.toml", "threds = 4\n");
    let ran = sandbox.catraca(&["check"]).run();
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("catraca.toml") && ran.stderr.contains("threds"),
        "{}",
        ran.shown
    );
}
