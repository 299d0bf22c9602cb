//! The plan diff: what a device holds for a person against the CSV, decided once for
//! every vendor.
//!
//! Each driver reads its device its own way and turns what it found into [`Held`]
//! values (the name, the validity window as the device writes it, the card strings and,
//! where the vendor keeps them, the group links). [`plan`] then decides the [`Plan`] and
//! [`changes`] lists what differs among `name`, `validity`, `card` and `group`, with
//! each vendor's rules stated in [`DiffRules`] rather than written into three copies of
//! the comparison (which had started to disagree in small ways, issue 11): cards
//! compared canonically through the device's [`CardRule`] and only when the CSV manages
//! them, the name compared as the device would hold it after cutting it to its limit,
//! the window in the device's own encoding, honouring Hikvision's `enable` switch.

use super::{CardRule, Plan, ValidityEncoding};
use crate::person::Person;

/// One copy of a person as a device holds it, in the shape the diff compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The device's own key for this copy (Control iD `users.id`); 0 where the
    /// registration is the only key.
    pub id: i64,
    pub name: String,
    pub window: HeldWindow,
    /// The card strings the device holds for the person, as it reports them. Only read
    /// when the CSV manages cards (the driver may leave it empty otherwise).
    pub cards: Vec<String>,
    /// The names of the groups the person is linked to, among those the CSV asks for;
    /// `None` for a vendor that keeps no groups (Hikvision, Intelbras).
    pub groups: Option<Vec<String>>,
}

/// A validity window as the device holds it, each end in the device's encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeldWindow {
    pub begin: String,
    pub end: String,
    /// Hikvision's `Valid.enable`: when off, the ends mean nothing and are not compared.
    /// `None` for a vendor whose ends always apply (Control iD, Intelbras).
    pub enabled: Option<bool>,
}

impl HeldWindow {
    /// The window catraca writes for `person`, each end in `encoding` (an open end as
    /// the encoding writes it). On a device with an `enable` switch (`switched`), the
    /// window is on exactly when the CSV gives one of its ends.
    pub fn written(person: &Person, encoding: ValidityEncoding, switched: bool) -> HeldWindow {
        HeldWindow {
            begin: encoding.encode(person.begin, false),
            end: encoding.encode(person.end, true),
            enabled: switched.then_some(person.begin.is_some() || person.end.is_some()),
        }
    }
}

/// How one device compares: the vendor rules the diff applies.
#[derive(Debug, Clone, Copy)]
pub struct DiffRules {
    /// How the device writes and compares cards (canonically: `02821060` is `2821060`).
    pub cards: CardRule,
    /// How the device writes the ends of a window ([`super::Profile::validity`]).
    pub validity: ValidityEncoding,
    /// The most bytes of a name the device keeps, when it cuts longer names (Hikvision
    /// with `long_names = "cut"`): a name already held cut is not rewritten on every run.
    /// `None` compares the whole name.
    pub name_max: Option<usize>,
}

/// What the device must do for `person`, given every copy of its registration the device
/// holds: none is a create, one is compared, more than one is ambiguous.
pub fn plan(person: &Person, copies: &[Held], rules: &DiffRules) -> Plan {
    match copies {
        [] => Plan::Create,
        [held] => {
            let changes = changes(person, held, rules);
            if changes.is_empty() {
                Plan::Unchanged { id: held.id }
            } else {
                Plan::Update {
                    id: held.id,
                    changes,
                }
            }
        }
        many => Plan::Ambiguous {
            ids: many.iter().map(|h| h.id).collect(),
        },
    }
}

/// The fields of `person` that `held` does not have as the CSV says, in the order
/// `name`, `validity`, `card`, `group`; empty when the device holds the person as is.
pub fn changes(person: &Person, held: &Held, rules: &DiffRules) -> Vec<&'static str> {
    let mut changes = Vec::new();
    let wanted_name = match rules.name_max {
        Some(max) => cut_name(&person.name, max),
        None => person.name.as_str(),
    };
    if held.name != wanted_name {
        changes.push("name");
    }
    if !window_matches(person, &held.window, rules.validity) {
        changes.push("validity");
    }
    if person.card_is_managed() {
        // A card this device cannot take is a change that fails when applied.
        let wanted: Option<Vec<String>> = match person.card {
            None => Some(Vec::new()),
            Some(card) => rules.cards.write(card).ok().map(|c| vec![c]),
        };
        if !wanted.is_some_and(|w| rules.cards.same_set(&held.cards, &w)) {
            changes.push("card");
        }
    }
    if let (Some(group), Some(linked)) = (person.group.as_deref(), &held.groups) {
        if !linked.iter().any(|g| g == group) {
            changes.push("group");
        }
    }
    changes
}

/// `name` cut to at most `max` UTF-8 bytes, at a character boundary: what a device that
/// cuts long names (Hikvision, `long_names = "cut"`) holds.
pub fn cut_name(name: &str, max: usize) -> &str {
    if name.len() <= max {
        return name;
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn window_matches(person: &Person, held: &HeldWindow, encoding: ValidityEncoding) -> bool {
    let wanted = HeldWindow::written(person, encoding, held.enabled.is_some());
    let ends_match = held.begin == wanted.begin && held.end == wanted.end;
    match (held.enabled, wanted.enabled) {
        // A disabled window's ends mean nothing: only compare them when it is on.
        (Some(enabled), Some(on)) => enabled == on && (!on || ends_match),
        _ => ends_match,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::person::Card;
    use crate::vendor::Kind;

    fn person() -> Person {
        Person {
            registration: "1001".into(),
            name: "Ana Souza".into(),
            card: None,
            cards_listed: false,
            begin: None,
            end: None,
            group: None,
            line: 2,
            photo: None,
        }
    }

    fn rules(kind: Kind) -> DiffRules {
        DiffRules {
            cards: CardRule::vendor_default(kind),
            validity: match kind {
                Kind::Controlid => ValidityEncoding::UnixSeconds,
                Kind::Hikvision => ValidityEncoding::LocalIso,
                Kind::Intelbras => ValidityEncoding::LocalSpaced,
            },
            name_max: None,
        }
    }

    /// What a device of `kind` holds after catraca wrote `p` (no card, no group).
    fn held_as_written(p: &Person, kind: Kind) -> Held {
        Held {
            id: 7,
            name: p.name.clone(),
            window: HeldWindow::written(p, rules(kind).validity, kind == Kind::Hikvision),
            cards: Vec::new(),
            groups: (kind == Kind::Controlid).then(Vec::new),
        }
    }

    #[test]
    fn no_copy_is_a_create_two_copies_are_ambiguous() {
        let p = person();
        let r = rules(Kind::Controlid);
        assert_eq!(plan(&p, &[], &r), Plan::Create);
        let mut other = held_as_written(&p, Kind::Controlid);
        other.id = 9;
        let copies = [held_as_written(&p, Kind::Controlid), other];
        assert_eq!(plan(&p, &copies, &r), Plan::Ambiguous { ids: vec![7, 9] });
    }

    #[test]
    fn a_person_held_as_written_is_unchanged_on_every_vendor() {
        let mut p = person();
        p.begin = Some(1_735_700_000);
        p.end = Some(1_767_200_000);
        for kind in [Kind::Controlid, Kind::Hikvision, Kind::Intelbras] {
            let held = held_as_written(&p, kind);
            assert_eq!(
                plan(&p, &[held], &rules(kind)),
                Plan::Unchanged { id: 7 },
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_different_name_is_a_name_change() {
        let p = person();
        let mut held = held_as_written(&p, Kind::Intelbras);
        held.name = "Ana S.".into();
        assert_eq!(
            plan(&p, &[held], &rules(Kind::Intelbras)),
            Plan::Update {
                id: 7,
                changes: vec!["name"]
            }
        );
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        assert_eq!(cut_name("Conceição", 8), "Conceiç");
        assert_eq!(cut_name("Conceição", 7), "Concei");
        assert_eq!(cut_name("Ana", 32), "Ana");
    }

    #[test]
    fn a_name_held_cut_to_the_device_limit_is_not_rewritten() {
        let mut p = person();
        p.name = "Maria da Conceição".into();
        let mut held = held_as_written(&p, Kind::Hikvision);
        held.name = "Maria da Concei".into();
        let mut r = rules(Kind::Hikvision);
        r.name_max = Some(16);
        assert!(changes(&p, &held, &r).is_empty());
        // Without a limit (long_names = "fail") the whole name is compared.
        r.name_max = None;
        assert_eq!(changes(&p, &held, &r), vec!["name"]);
    }

    #[test]
    fn validity_is_compared_in_the_device_encoding() {
        let mut p = person();
        p.end = Some(1_767_200_000);
        let mut held = held_as_written(&p, Kind::Controlid);
        assert!(changes(&p, &held, &rules(Kind::Controlid)).is_empty());
        held.window.end = "0".into();
        assert_eq!(
            changes(&p, &held, &rules(Kind::Controlid)),
            vec!["validity"]
        );
        // Intelbras holds the open ends as dates: an open end is not "0".
        let held = held_as_written(&person(), Kind::Intelbras);
        assert_eq!(held.window.end, super::super::OPEN_END);
        assert_eq!(
            changes(&p, &held, &rules(Kind::Intelbras)),
            vec!["validity"]
        );
    }

    #[test]
    fn a_disabled_hikvision_window_ignores_its_ends() {
        let p = person();
        let mut held = held_as_written(&p, Kind::Hikvision);
        held.window.begin = "2019-01-01T00:00:00".into();
        assert!(changes(&p, &held, &rules(Kind::Hikvision)).is_empty());
        // Switched on while the CSV has no window: a change.
        held.window.enabled = Some(true);
        assert_eq!(
            changes(&p, &held, &rules(Kind::Hikvision)),
            vec!["validity"]
        );
        // On, as wanted, but with other ends: a change.
        let mut dated = person();
        dated.begin = Some(1_735_700_000);
        let mut held = held_as_written(&dated, Kind::Hikvision);
        held.window.begin = "2019-01-01T00:00:00".into();
        assert_eq!(
            changes(&dated, &held, &rules(Kind::Hikvision)),
            vec!["validity"]
        );
    }

    #[test]
    fn cards_are_compared_canonically_and_only_when_managed() {
        let mut p = person();
        p.card = Some(Card::Wiegand {
            facility: 43,
            number: 2948,
        });
        let r = rules(Kind::Hikvision);
        let written = r.cards.write(p.card.unwrap()).unwrap();
        let mut held = held_as_written(&p, Kind::Hikvision);
        held.cards = vec![format!("00{written}")];
        assert!(
            changes(&p, &held, &r).is_empty(),
            "leading zeros are the same card"
        );
        held.cards = vec!["1".into()];
        assert_eq!(changes(&p, &held, &r), vec!["card"]);
        held.cards = vec![written.clone(), "1".into()];
        assert_eq!(
            changes(&p, &held, &r),
            vec!["card"],
            "an extra card is a change"
        );

        // Intelbras hex: case does not matter.
        let ri = rules(Kind::Intelbras);
        let hex = ri.cards.write(p.card.unwrap()).unwrap();
        let mut held = held_as_written(&p, Kind::Intelbras);
        held.cards = vec![hex.to_ascii_lowercase()];
        assert!(changes(&p, &held, &ri).is_empty());

        // No card column: the device's cards are left alone.
        let unmanaged = person();
        let mut held = held_as_written(&unmanaged, Kind::Hikvision);
        held.cards = vec!["1".into()];
        assert!(changes(&unmanaged, &held, &r).is_empty());
        // A card column with an empty cell: the card is taken away.
        let mut emptied = person();
        emptied.cards_listed = true;
        assert_eq!(changes(&emptied, &held, &r), vec!["card"]);
        held.cards.clear();
        assert!(changes(&emptied, &held, &r).is_empty());
    }

    #[test]
    fn a_card_the_device_cannot_take_is_a_change() {
        let mut p = person();
        // Beyond Hikvision's 20 characters: refused by the rule, so never "unchanged".
        p.card = Some(Card::Number(u64::MAX));
        let mut r = rules(Kind::Hikvision);
        r.cards.pad = 24;
        let held = held_as_written(&p, Kind::Hikvision);
        assert!(r.cards.write(p.card.unwrap()).is_err());
        assert_eq!(changes(&p, &held, &r), vec!["card"]);
    }

    #[test]
    fn groups_are_compared_only_where_the_vendor_keeps_them() {
        let mut p = person();
        p.group = Some("Alunos".into());
        let mut held = held_as_written(&p, Kind::Controlid);
        assert_eq!(changes(&p, &held, &rules(Kind::Controlid)), vec!["group"]);
        held.groups = Some(vec!["Professores".into(), "Alunos".into()]);
        assert!(changes(&p, &held, &rules(Kind::Controlid)).is_empty());
        let held = held_as_written(&p, Kind::Intelbras);
        assert_eq!(held.groups, None);
        assert!(changes(&p, &held, &rules(Kind::Intelbras)).is_empty());
    }

    #[test]
    fn changes_come_in_a_fixed_order() {
        let mut p = person();
        p.card = Some(Card::Number(5));
        p.group = Some("Alunos".into());
        p.end = Some(1_767_200_000);
        let mut held = held_as_written(&person(), Kind::Controlid);
        held.name = "someone else".into();
        assert_eq!(
            changes(&p, &held, &rules(Kind::Controlid)),
            vec!["name", "validity", "card", "group"]
        );
    }
}
