//! What an operator sees for the files they write: people out, or one precise message.

use chrono::{NaiveDate, TimeZone};

use super::*;
use crate::person::Card;

const FILE: &str = "participants.csv";

fn people(csv: &str) -> Vec<Person> {
    parse(csv.as_bytes(), FILE).unwrap_or_else(|error| panic!("{error}"))
}

fn error(csv: &[u8]) -> String {
    match parse(csv, FILE) {
        Ok(people) => panic!("expected an error, got {people:#?}"),
        Err(error) => error.to_string(),
    }
}

/// Asserts the message starts `participants.csv line <line>, field <field>: ` and returns it.
fn error_at(csv: &str, line: usize, field: &str) -> String {
    let message = error(csv.as_bytes());
    let place = format!("{FILE} line {line}, field {field}: ");
    assert!(
        message.starts_with(&place),
        "expected {place:?} at the start of: {message}"
    );
    message
}

fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    let naive = NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap();
    chrono::Local
        .from_local_datetime(&naive)
        .unwrap()
        .timestamp()
}

#[test]
fn excel_br_file_with_accented_headers_and_unquoted_wiegand_cards() {
    let found = people(
        "Matrícula;Nome;Cartão;Início;Fim;Grupo\n\
         A-1001;Ana Souza;123,45678;01/03/2026 08:00;31/12/2026;Funcionários\n\
         2026000002; João da Conceição ;4012345678;;;\n",
    );
    assert_eq!(
        found,
        vec![
            Person {
                registration: "A-1001".into(),
                name: "Ana Souza".into(),
                card: Some(Card::Wiegand {
                    facility: 123,
                    number: 45678
                }),
                cards_listed: true,
                begin: Some(local(2026, 3, 1, 8, 0, 0)),
                end: Some(local(2026, 12, 31, 23, 59, 59)),
                group: Some("Funcionários".into()),
                line: 2,
                photo: None,
            },
            Person {
                registration: "2026000002".into(),
                name: "João da Conceição".into(),
                card: Some(Card::Number(4_012_345_678)),
                cards_listed: true,
                begin: None,
                end: None,
                group: None,
                line: 3,
                photo: None,
            },
        ]
    );
}

#[test]
fn comma_file_takes_a_quoted_wiegand_card_and_english_headers() {
    let found = people(
        "registration,name,card,begin,end,group\n\
         A-1,Ana,\"123,45678\",2026-03-01T08:00:00Z,2026-03-01 18:00-03:00,Visitantes\n",
    );
    assert_eq!(
        found[0].card,
        Some(Card::Wiegand {
            facility: 123,
            number: 45678
        })
    );
    assert_eq!(found[0].begin, Some(1_772_352_000));
    assert_eq!(found[0].end, Some(1_772_352_000 + 13 * 3600));
}

#[test]
fn comma_file_with_an_unquoted_wiegand_card_says_to_quote_it() {
    let message = error(b"matricula,nome,cartao\nA-1,Ana,123,45678\n");
    assert_eq!(
        message,
        "participants.csv line 2: the row has 4 fields but the header on line 1 has 3: \
         a value with a comma in it must be in quotes, like a card \"123,45678\""
    );
}

#[test]
fn a_row_missing_a_field_is_reported_with_its_line() {
    let message = error(b"matricula;nome;grupo\nA-1;Ana;Alunos\nA-2;Bia\n");
    assert!(
        message.starts_with(
            "participants.csv line 3: the row has 2 fields but the header on line 1 has 3"
        ),
        "{message}"
    );
}

#[test]
fn utf8_bom_is_ignored() {
    let found = people("\u{feff}matricula;nome\nA-1;Ana\n");
    assert_eq!(found[0].registration, "A-1");
}

#[test]
fn windows_1252_bytes_from_excel_are_decoded() {
    let found = parse(
        b"Matr\xedcula;Nome;Grupo\r\n1;Jo\xe3o Gon\xe7alves;Funcion\xe1rios\r\n",
        FILE,
    )
    .unwrap();
    assert_eq!(found[0].name, "João Gonçalves");
    assert_eq!(found[0].group.as_deref(), Some("Funcionários"));
}

#[test]
fn headers_match_in_any_case_with_spaces_and_decomposed_accents() {
    let found = people(" CÓDIGO ;NOME;Carta\u{303}o;INÍCIO;fim;Grupo\nX;Y;7;;;\n");
    assert_eq!(found[0].registration, "X");
    assert_eq!(found[0].card, Some(Card::Number(7)));
}

#[test]
fn unknown_columns_are_ignored() {
    let found = people("observação;matricula;e-mail;nome\nvip;A-1;a@b.com;Ana\n");
    assert_eq!(
        (found[0].registration.as_str(), found[0].name.as_str()),
        ("A-1", "Ana")
    );
}

#[test]
fn blank_lines_and_emptied_rows_are_skipped_but_counted() {
    let found = people("\nmatricula;nome\n\nA-1;Ana\n;\n  ; \r\n\r\nA-2;Bia\n\n");
    let lines: Vec<_> = found
        .iter()
        .map(|p| (p.registration.as_str(), p.line))
        .collect();
    assert_eq!(lines, [("A-1", 4), ("A-2", 8)]);
    error_at("\n\nmatricula;nome\n\n;Ana\n", 5, "matricula");
}

#[test]
fn a_quoted_multi_line_value_keeps_later_line_numbers_right() {
    let csv = "matricula;nome;observacao\n\
               A-1;Ana;\"chega cedo\nusa a portaria 2\n\nligar antes\"\n\
               A-2;Bia;\n";
    let found = people(csv);
    assert_eq!((found[0].line, found[1].line), (2, 6));
    error_at(&format!("{csv}A-3;;\n"), 7, "nome");
}

#[test]
fn crlf_line_endings_count_lines_like_lf() {
    let found = people("matricula;nome\r\nA-1;Ana\r\n\r\nA-2;Bia\r\n");
    assert_eq!((found[0].line, found[1].line), (2, 4));
}

#[test]
fn values_are_trimmed_and_empty_optional_values_are_none() {
    let found = people("matricula,nome,cartao,inicio,fim,grupo\n  A-1 , Ana ,  ,  , , \n");
    assert_eq!(
        found[0],
        Person {
            registration: "A-1".into(),
            name: "Ana".into(),
            card: None,
            cards_listed: true,
            begin: None,
            end: None,
            group: None,
            line: 2,
            photo: None,
        }
    );
}

#[test]
fn a_missing_required_column_names_the_accepted_headers_and_those_found() {
    let message = error(b"matricula;cartao\nA-1;5\n");
    assert_eq!(
        message,
        "participants.csv line 1, field name: the header has no name column: \
         add one named name or nome (the header has \"matricula\", \"cartao\")"
    );
    let message = error_at("Nome;Cartão\nAna;5\n", 1, "registration");
    assert!(
        message.contains("add one named registration, matricula or codigo"),
        "{message}"
    );
}

#[test]
fn the_same_column_twice_is_refused() {
    let message = error_at("matricula;nome;Name\nA-1;Ana;Ana\n", 1, "Name");
    assert!(
        message.contains("\"nome\" and \"Name\" both hold the name"),
        "{message}"
    );
}

#[test]
fn empty_registration_or_name_is_refused() {
    error_at("matricula;nome\nA-1;Ana\n  ;Bia\n", 3, "matricula");
    let message = error_at("Matrícula;Nome\nA-1;Ana\nA-2;\"  \"\n", 3, "Nome");
    assert!(message.ends_with("every person needs a name"), "{message}");
}

#[test]
fn registration_longer_than_32_bytes_is_refused() {
    people(&format!("matricula;nome\n{};Ana\n", "A".repeat(32)));
    let message = error_at(
        &format!("matricula;nome\n{};Ana\n", "A".repeat(33)),
        2,
        "matricula",
    );
    assert!(message.contains("is 33 bytes long"), "{message}");
    // 16 letters of two bytes each fit; the 17th does not.
    people(&format!("matricula;nome\n{};Ana\n", "é".repeat(16)));
    error_at(
        &format!("matricula;nome\n{};Ana\n", "é".repeat(17)),
        2,
        "matricula",
    );
}

#[test]
fn registration_with_a_control_character_is_refused() {
    let message = error_at("matricula;nome\n\"A\t1\";Ana\n", 2, "matricula");
    assert!(message.contains(r#""A\t1""#), "{message}");
    error_at("matricula;nome\n\"A\n1\";Ana\n", 2, "matricula");
}

#[test]
fn a_malformed_card_gets_an_example_of_the_right_form() {
    let message = error_at("matricula;nome;cartao\nA-1;Ana;12a\n", 2, "cartao");
    assert!(
        message.contains("\"12a\" is not a card number"),
        "{message}"
    );
    assert!(message.contains("123,45678"), "{message}");
    error_at("matricula;nome;cartao\nA-1;Ana;1,2,3\n", 2, "cartao");
    error_at("matricula;nome;cartao\nA-1;Ana;4294967296,1\n", 2, "cartao");
    error_at("matricula;nome;cartao\nA-1;Ana;-5\n", 2, "cartao");
    error_at(
        "matricula;nome;cartao\nA-1;Ana;99999999999999999999\n",
        2,
        "cartao",
    );
}

#[test]
fn dates_in_every_accepted_form() {
    let found = people(
        "matricula;nome;inicio;fim\n\
         A-1;Ana;2026-03-01T08:00:00;2026-03-01 18:00\n\
         A-2;Bia;01/03/2026 08:00;01/03/2026 18:00:30\n\
         A-3;Caio;2026-03-01;01/03/2026\n\
         A-4;Davi;2026-03-01T11:00Z;2026-03-01T18:00:00-03:00\n",
    );
    let windows: Vec<_> = found
        .iter()
        .map(|p| (p.begin.unwrap(), p.end.unwrap()))
        .collect();
    assert_eq!(
        windows,
        [
            (local(2026, 3, 1, 8, 0, 0), local(2026, 3, 1, 18, 0, 0)),
            (local(2026, 3, 1, 8, 0, 0), local(2026, 3, 1, 18, 0, 30)),
            (local(2026, 3, 1, 0, 0, 0), local(2026, 3, 1, 23, 59, 59)),
            (1_772_362_800, 1_772_398_800),
        ]
    );
}

#[test]
fn only_one_end_of_the_window_may_be_given() {
    let found = people("matricula;nome;inicio;fim\nA-1;Ana;;31/12/2026\nA-2;Bia;01/01/2026;\n");
    assert_eq!((found[0].begin, found[0].end.is_some()), (None, true));
    assert_eq!((found[1].begin.is_some(), found[1].end), (true, None));
}

#[test]
fn a_bad_date_says_which_forms_work() {
    let message = error_at("matricula;nome;inicio\nA-1;Ana;30/02/2026\n", 2, "inicio");
    assert!(
        message.contains("\"30/02/2026\" names a day that does not exist"),
        "{message}"
    );
    assert!(message.contains("2025-03-01 or 01/03/2025"), "{message}");
    error_at("matricula;nome;Fim\nA-1;Ana;01/03/26\n", 2, "Fim");
    error_at("matricula;nome;fim\nA-1;Ana;amanhã\n", 2, "fim");
    error_at(
        "matricula;nome;inicio\nA-1;Ana;2026-03-01 25:00\n",
        2,
        "inicio",
    );
}

#[test]
fn a_window_that_ends_before_it_begins_names_both_fields() {
    let message = error_at(
        "matricula;nome;Início;Fim\nA-1;Ana;02/03/2026 08:00;01/03/2026\n",
        2,
        "Fim",
    );
    assert!(
        message.contains("\"01/03/2026\" comes before \"02/03/2026 08:00\" in field Início"),
        "{message}"
    );
    // The same day written alone on both ends is that whole day, not an empty window.
    people("matricula;nome;inicio;fim\nA-1;Ana;01/03/2026;01/03/2026\n");
}

#[test]
fn a_repeated_registration_names_both_lines() {
    let csv = "registration;name\nA-0;Ana\nA-1001;Bia\nA-2;Caio\n\n\nA-3;Davi\n\nA-1001;Edu\n";
    assert_eq!(
        error(csv.as_bytes()),
        "participants.csv line 9, field registration: \"A-1001\" is already on line 3: \
         each person must appear once"
    );
}

#[test]
fn a_card_given_to_two_people_names_both_lines() {
    let message = error_at(
        "matricula;nome;cartao\nA-1;Ana;123,45678\nA-2;Bia;\nA-3;Caio;123, 45678\n",
        4,
        "cartao",
    );
    assert!(
        message.contains("card 123,45678 is already on line 2 (registration A-1)"),
        "{message}"
    );
    // Facility 0, number 5 and plain 5 are one card on a Control iD device.
    let message = error_at(
        "matricula;nome;cartao\nA-1;Ana;0,5\nA-2;Bia;5\n",
        3,
        "cartao",
    );
    assert!(
        message.contains("card 5 is already on line 2 (registration A-1, written 0,5"),
        "{message}"
    );
}

#[test]
fn a_file_without_participants_says_so() {
    for empty in [&b""[..], b"\xEF\xBB\xBF", b"\n\r\n\n"] {
        assert_eq!(
            error(empty),
            "participants.csv has no participants: the file is empty: write a header line \
             (matricula;nome;cartao;inicio;fim;grupo) and one line per person"
        );
    }
    for header_only in [
        &b"matricula;nome\n"[..],
        b"matricula;nome",
        b"matricula;nome\n;\n\n",
    ] {
        assert_eq!(
            error(header_only),
            "participants.csv has no participants: nothing follows the header on line 1: \
             add one line per person below it"
        );
    }
}

#[test]
fn the_first_problem_in_the_file_is_the_one_reported() {
    error_at("matricula;nome;cartao\nA-1;Ana;x\nA-2;;\n", 2, "cartao");
}

#[test]
fn sources_are_named_as_the_operator_gave_them() {
    assert_eq!(Source::from_arg("-"), Source::Stdin);
    assert_eq!(Source::from_arg("-").display_name(), "<stdin>");
    let file = Source::from_arg("dados/pessoas.csv");
    assert_eq!(file, Source::File("dados/pessoas.csv".into()));
    assert_eq!(file.display_name(), "dados/pessoas.csv");
}

#[test]
fn read_names_the_file_in_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pessoas.csv");
    let missing = read(&Source::File(path.clone()), Needs::Person)
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with(&format!("cannot read {}: ", path.display())),
        "{missing}"
    );

    std::fs::write(&path, "matricula;nome\nA-1;\n").unwrap();
    let message = read(&Source::File(path.clone()), Needs::Person)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!("{} line 2, field nome: ", path.display())),
        "{message}"
    );

    std::fs::write(&path, "matricula;nome\nA-1;Ana\n").unwrap();
    assert_eq!(
        read(&Source::File(path), Needs::Person).unwrap()[0].name,
        "Ana"
    );
}

#[test]
fn the_demo_file_has_100_valid_participants() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/data/participants.csv");
    let found =
        read(&Source::File(demo.into()), Needs::Person).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(found.len(), 100);
    let with_cards = found.iter().filter(|p| p.card.is_some()).count();
    assert!(
        (50..=70).contains(&with_cards),
        "{with_cards} people have cards"
    );
    assert!(found
        .iter()
        .any(|p| matches!(p.card, Some(Card::Wiegand { .. }))));
    assert!(found.iter().any(|p| p.begin.is_some() && p.end.is_some()));
}

#[test]
fn a_removal_list_needs_registrations_only() {
    let people = parse_for(b"matricula\nA-1\nA-2\n", "saindo.csv", Needs::Registration).unwrap();
    let keys: Vec<(&str, &str)> = people
        .iter()
        .map(|p| (p.registration.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(keys, [("A-1", ""), ("A-2", "")]);
    // A name column is read when there is one, and may be empty.
    let people = parse_for(
        b"matricula;nome\nA-1;\nA-2;Bia\n",
        "saindo.csv",
        Needs::Registration,
    )
    .unwrap();
    assert_eq!(people[1].name, "Bia");
    // The registration is still required, and repeats are still refused.
    let missing = parse_for(b"nome\nAna\n", "saindo.csv", Needs::Registration).unwrap_err();
    assert!(
        missing.to_string().contains("no registration column"),
        "{missing}"
    );
    let repeated =
        parse_for(b"matricula\nA-1\nA-1\n", "saindo.csv", Needs::Registration).unwrap_err();
    assert!(
        repeated.to_string().contains("already on line 2"),
        "{repeated}"
    );
}
