//! Intelbras/Dahua firmware as it ships (`docs/field-evidence.md`, section 1), wrapped
//! around the documented API of `intelbras.rs`:
//!
//! - [`IntelbrasFirmware::V2`]: lists answer flat `key=value` text (`found=N` and
//!   `records[n].UserID=` for users, `Cards[n].CardNo=` without a `found=` line for
//!   cards, empty fields left out); `startFind` is `501 Not Implemented`.
//! - [`IntelbrasFirmware::V3`]: JSON, `startFind` (with `Condition.UserID`) /
//!   `doFind&Token=&Offset=&Count=` / `stopFind` for users and cards, and no
//!   unfiltered `action=list` (a bare `400`).
//! - [`IntelbrasFirmware::V3Strict`]: 3.x refusing every `action=list`, filtered or
//!   not (field reports say 3.x answers it 400/501 or unusably); only searches work,
//!   with `Condition.UserID` or `Condition.CardNo`.
//!
//! Both answer `Error Bad Request!` without details, and both answer `200 OK` to an
//! update that clears `CardNo` and change nothing, as an SS 5531 does.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::hikvision::Served;
use super::http::{Request, Response};
use super::intelbras::{route_name, IntelbrasApi};

/// Which Intelbras firmware a simulated device plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IntelbrasFirmware {
    /// The API as the integration documents describe it: JSON lists, no searches.
    #[default]
    Documented,
    /// Firmware 2.x: flat text lists, no `startFind`.
    #[value(name = "2")]
    V2,
    /// Firmware 3.x: JSON, `startFind`/`doFind`/`stopFind`, no unfiltered list.
    #[value(name = "3")]
    V3,
    /// Firmware 3.x refusing every `action=list`: only searches.
    #[value(name = "3-strict")]
    V3Strict,
}

/// An open search: what it found, in order.
#[derive(Debug)]
pub(crate) struct OpenFind {
    records: Vec<Value>,
}

/// Searches open on a device, by token (a real device has a few slots).
#[derive(Debug, Default)]
pub(crate) struct Finds {
    open: BTreeMap<u64, OpenFind>,
    next: u64,
}

impl Finds {
    /// Searches started and never stopped.
    pub(crate) fn open(&self) -> usize {
        self.open.len()
    }

    /// Opens a search over `records`: its token.
    pub(crate) fn start(&mut self, records: Vec<Value>) -> u64 {
        self.next += 1;
        self.open.insert(self.next, OpenFind { records });
        self.next
    }

    /// Closes a search; false when no such search is open.
    pub(crate) fn stop(&mut self, token: u64) -> bool {
        self.open.remove(&token).is_some()
    }
}

fn text(status: u16, body: &str) -> Served {
    Served {
        response: Response::text(status, body),
        created: None,
    }
}

fn bad_request() -> Served {
    text(400, "Error\r\nBad Request!\r\n")
}

/// JSON list answers rewritten as 2.x flat text.
fn flat(served: Served, prefix: &str, found_line: bool) -> Served {
    let Ok(parsed) = serde_json::from_slice::<Value>(&served.response.body) else {
        return served;
    };
    let list = parsed
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = String::new();
    if found_line {
        out.push_str(&format!("found={}\r\n", list.len()));
    }
    for (n, record) in list.iter().enumerate() {
        for (key, value) in record.as_object().into_iter().flatten() {
            match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        out.push_str(&format!("{prefix}[{n}].{key}[{i}]={item}\r\n"));
                    }
                }
                Value::String(s) if s.is_empty() => {}
                Value::String(s) => out.push_str(&format!("{prefix}[{n}].{key}={s}\r\n")),
                other => out.push_str(&format!("{prefix}[{n}].{key}={other}\r\n")),
            }
        }
    }
    text(200, &out)
}

/// Whether an `updateMulti` body clears a `CardNo` (an empty one in any entry).
fn clears_card_no(body: &[u8]) -> bool {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    ["UserList", "CardList"].iter().any(|key| {
        parsed
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|list| {
                list.iter()
                    .any(|e| e.get("CardNo").and_then(Value::as_str) == Some(""))
            })
    })
}

impl IntelbrasApi {
    /// One request as this device's firmware answers it.
    pub(crate) fn call(&mut self, request: &Request<'_>) -> Served {
        let action = request.query_param("action");
        if let Some(face) = super::intelbras_faces::route_name(request.path, action.as_deref()) {
            return self.face_call(face, request);
        }
        let name = route_name(request.path, action.as_deref());
        if self.firmware == IntelbrasFirmware::Documented {
            return self.call_documented(request);
        }
        if name == "software_version" {
            return text(
                200,
                match self.firmware {
                    IntelbrasFirmware::V3 => "version=3.002.0000002.1.R,build:2023-05-10\r\n",
                    _ => "version=2.800.0000000.1.R,build:2022-01-10\r\n",
                },
            );
        }
        if matches!(name, "user_updateMulti" | "card_updateMulti") && clears_card_no(request.body) {
            // Answered OK, nothing changed.
            return text(200, "OK\r\n");
        }
        let searching = matches!(
            name,
            "user_startFind"
                | "user_doFind"
                | "user_stopFind"
                | "card_startFind"
                | "card_doFind"
                | "card_stopFind"
        );
        match self.firmware {
            IntelbrasFirmware::V2 if searching => text(501, "Error\r\nNot Implemented!\r\n"),
            IntelbrasFirmware::V2 => match name {
                "user_list" => flat(self.call_documented(request), "records", true),
                "card_list" => flat(self.call_documented(request), "Cards", false),
                _ => self.call_documented(request),
            },
            _ => match name {
                "user_list" | "card_list"
                    if self.firmware == IntelbrasFirmware::V3Strict
                        || !request.has_query_key_containing(list_key(name)) =>
                {
                    bad_request()
                }
                "user_startFind" | "card_startFind" => self.start_find(request, name),
                "user_doFind" | "card_doFind" => self.do_find(request),
                "user_stopFind" | "card_stopFind" => {
                    let token = request.query_param("Token").and_then(|t| t.parse().ok());
                    match token.and_then(|t| self.finds.open.remove(&t)) {
                        Some(_) => text(200, "OK\r\n"),
                        None => bad_request(),
                    }
                }
                _ => self.call_documented(request),
            },
        }
    }

    fn start_find(&mut self, request: &Request<'_>, name: &str) -> Served {
        let user = request.query_param("Condition.UserID");
        let number = request.query_param("Condition.CardNo");
        let records: Vec<Value> = if name == "user_startFind" {
            self.users
                .values()
                .filter(|u| user.as_ref().is_none_or(|id| *id == u.user_id))
                .map(|u| {
                    json!({
                        "UserID": u.user_id, "UserName": u.name, "UserType": 0, "Authority": 2,
                        "Doors": [0], "TimeSections": [255],
                        "ValidFrom": u.valid_from, "ValidTo": u.valid_to,
                    })
                })
                .collect()
        } else {
            self.cards
                .iter()
                .filter(|(c, u)| {
                    user.as_ref().is_none_or(|id| id == *u)
                        && number.as_ref().is_none_or(|n| n == *c)
                })
                .map(|(c, u)| json!({"UserID": u, "CardNo": c, "CardType": 0, "CardStatus": 0}))
                .collect()
        };
        self.finds.next += 1;
        let token = self.finds.next;
        let total = records.len();
        self.finds.open.insert(token, OpenFind { records });
        Served {
            response: Response::json(
                200,
                json!({"Token": token, "Total": total})
                    .to_string()
                    .into_bytes(),
            ),
            created: None,
        }
    }

    pub(crate) fn do_find(&mut self, request: &Request<'_>) -> Served {
        let number = |k: &str| request.query_param(k).and_then(|v| v.parse::<usize>().ok());
        let (Some(token), Some(offset), Some(count)) =
            (number("Token"), number("Offset"), number("Count"))
        else {
            return bad_request();
        };
        let Some(find) = self.finds.open.get(&(token as u64)) else {
            return bad_request();
        };
        let page: Vec<Value> = find
            .records
            .iter()
            .skip(offset)
            .take(count.min(500))
            .cloned()
            .collect();
        Served {
            response: Response::json(
                200,
                json!({"Found": page.len(), "Info": page})
                    .to_string()
                    .into_bytes(),
            ),
            created: None,
        }
    }
}

fn list_key(name: &str) -> &'static str {
    if name == "user_list" {
        "UserIDList["
    } else {
        // Cards are listed by user or by number.
        "List["
    }
}
