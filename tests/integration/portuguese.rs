//! Messages in Brazilian Portuguese under a `pt_BR` locale or `--lang pt-BR`; English
//! otherwise. JSON keys never change.

use crate::harness::*;
use catraca_sim::SimConfig;

#[test]
fn a_bad_csv_is_explained_in_portuguese_under_a_pt_br_locale() {
    let sandbox = Sandbox::new();
    let fleet = fleet(1, SimConfig::default());
    // Relative names: the command runs in the sandbox.
    sandbox.write(
        "participantes.csv",
        "matricula;nome\nA-1;Ana\nA-2;Bia\nA-1;Ana de novo\n",
    );
    let ran = sandbox
        .catraca(&["enroll", "--users", "participantes.csv"])
        .env("LANG", "pt_BR.UTF-8")
        .devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(
        ran.stderr.contains(
            "erro: participantes.csv linha 4, campo matricula: \"A-1\" já está na linha 2: cada pessoa deve aparecer uma única vez"
        ),
        "{}",
        ran.shown
    );
    assert_eq!(fleet.devices[0].stats().total, 0, "nothing was sent");

    sandbox.write("cartao.csv", "matricula;nome;cartao\nA-1;Ana;12a,5\n");
    let ran = sandbox
        .catraca(&["enroll", "--users", "cartao.csv"])
        .env("LC_ALL", "pt_BR.UTF-8")
        .devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(
        ran.stderr.contains(
            "linha 2, campo cartao: \"12a,5\" não é um número de cartão: escreva um cartão Wiegand"
        ),
        "{}",
        ran.shown
    );

    // The same file without the locale: English.
    let ran = sandbox
        .catraca(&["enroll", "--users", "participantes.csv"])
        .env("LANG", "en_US.UTF-8")
        .devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(
        ran.stderr
            .contains("error: participantes.csv line 4, field matricula"),
        "{}",
        ran.shown
    );
}

#[test]
fn a_run_reports_progress_and_summary_in_portuguese() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    let rows = people(10);
    let ran = sandbox
        .enroll(&rows)
        .args(&["--cache", "none"])
        .env("LANG", "pt_BR.UTF-8")
        .devices(&fleet)
        .run();
    ran.expect_code(0);
    for expected in [
        "participantes:     10",
        "dispositivos:      2",
        "operações:         20",
        "  cadastrados:     20",
        "  pulados (cache): 0",
        "  falharam:        0",
        "duração:",
        "dispositivo",
    ] {
        assert!(
            ran.stdout.contains(expected),
            "no {expected:?}\n{}",
            ran.shown
        );
    }
    assert!(
        ran.stderr.contains("progresso: 20/20 (100.0%)"),
        "{}",
        ran.shown
    );

    // --lang wins over the locale; JSON keys stay English.
    let ran = sandbox
        .enroll(&rows)
        .args(&["--cache", "none", "--json", "--lang", "pt-BR"])
        .env("LANG", "en_US.UTF-8")
        .devices(&fleet)
        .run();
    ran.expect_code(0);
    assert_eq!(ran.report()["unchanged"], 20);
    assert!(ran.stderr.contains("progresso: "), "{}", ran.shown);
}

#[test]
fn help_and_check_speak_portuguese_too() {
    let sandbox = Sandbox::new();
    let help = sandbox
        .catraca(&["enroll", "--help"])
        .env("LANG", "pt_BR.UTF-8")
        .run();
    help.expect_code(0);
    for expected in [
        "Uso: catraca enroll",
        "Opções:",
        "O CSV de participantes",
        "Status de saída:",
    ] {
        assert!(
            help.stdout.contains(expected),
            "no {expected:?}\n{}",
            help.shown
        );
    }
    let fleet = fleet(1, SimConfig::default());
    let check = sandbox
        .catraca(&["check", "--lang", "pt-BR"])
        .devices(&fleet)
        .run();
    check.expect_code(0);
    assert!(check.stdout.contains("acessível"), "{}", check.shown);
    assert!(check.stdout.contains("pronto"), "{}", check.shown);
    assert!(
        check.stdout.contains("1 de 1 dispositivos prontos"),
        "{}",
        check.shown
    );
    fleet.devices[0].set_down(true);
    let down = sandbox
        .catraca(&["check", "--lang", "pt-BR"])
        .devices(&fleet)
        .run();
    down.expect_code(1);
    assert!(down.stdout.contains("conexão perdida"), "{}", down.shown);
    assert!(down.stdout.contains("NÃO PRONTO"), "{}", down.shown);
    let self_signed = crate::harness::fleet(
        1,
        SimConfig {
            tls: catraca_sim::SimTls::SelfSigned,
            ..SimConfig::default()
        },
    );
    let https = sandbox
        .catraca(&["check", "--lang", "pt-BR"])
        .devices(&self_signed)
        .run();
    https.expect_code(1);
    assert!(
        https.stdout.contains(
            "o certificado do dispositivo não é confiável: ele não é assinado por uma autoridade"
        ) && https.stdout.contains("autoassinado")
            && https.stdout.contains("rode com --insecure-tls"),
        "{}",
        https.shown
    );
    let none = sandbox.catraca(&["check", "--lang", "pt-BR"]).run();
    none.expect_code(2);
    assert!(
        none.stderr
            .contains("erro: nenhum dispositivo: informe --devices ARQUIVO"),
        "{}",
        none.shown
    );
}

#[test]
fn reasons_composed_during_a_run_are_in_portuguese_too() {
    let sandbox = Sandbox::new();
    let fleet = fleet(2, SimConfig::default());
    // A registration the device already holds twice (put there by another tool).
    fleet.devices[0].insert_user("2026000001", "Cópia A");
    fleet.devices[0].insert_user("2026000001", "Cópia B");
    let ran = sandbox
        .enroll(&people(200))
        .args(&["--json", "--threads", "1", "--max-failures", "0"])
        .env("LANG", "pt_BR.UTF-8")
        .embedded_cache()
        .devices(&fleet)
        .run();
    ran.expect_code(1);
    let report = ran.report();
    assert!(
        report["failures"]
            .to_string()
            .contains("está 2 vezes neste dispositivo"),
        "{}",
        ran.shown
    );
    assert!(
        report["halted"]
            .as_str()
            .unwrap()
            .contains("parada antecipada"),
        "{}",
        ran.shown
    );
}

#[test]
fn a_card_no_device_can_take_is_explained_in_portuguese() {
    let sandbox = Sandbox::new();
    let fleet = mixed_fleet(&[(catraca_sim::Kind::Hikvision, 1)], SimConfig::default());
    sandbox.write("cartao.csv", "matricula;nome;cartao\n1001;Ana;300,5\n");
    let ran = sandbox
        .catraca(&["enroll", "--users", "cartao.csv", "--cache", "none"])
        .env("LANG", "pt_BR.UTF-8")
        .kinded_devices(&fleet)
        .run();
    ran.expect_code(2);
    assert!(
        ran.stderr.contains(
            "erro: cartao.csv linha 2, campo cartao: o cartão \"300,5\" não cabe em nenhum dispositivo"
        ) && ran.stderr.contains("cujo código de facilidade vai até 255, e este é 300"),
        "{}",
        ran.shown
    );
    assert_eq!(fleet.devices[0].stats().total, 0, "nothing was sent");
}
