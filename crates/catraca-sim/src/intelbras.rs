//! The Intelbras/Dahua access-control CGI as one simulated controller speaks it
//! (docs/hikvision-intelbras-api.md): `AccessUser.cgi` and `AccessCard.cgi` with
//! `action=insertMulti|updateMulti` (POST, JSON body, at most 10 entries: more is a
//! `Bad Request`), `removeMulti` and `list` (GET, `UserIDList[i]` / `CardNoList[i]`);
//! a unique decimal `UserID`; cards in uppercase hex for an existing user, unique, never
//! modified; answers `OK` and errors in plain text (`Error\r\nBad Request!\r\n`). A
//! refused call stores nothing. With `SimConfig::capacity`, an insert beyond it is a
//! `Bad Request` too (the firmware gives no better reason). Lists answer JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::face::{FaceStats, SimFaces, StoredFace};
use super::hikvision::Served;
use super::http::{Request, Response};
use super::intelbras_faces;
use super::intelbras_firmware::{Finds, IntelbrasFirmware};

/// Entries per call.
pub(crate) const MAX_PER_CALL: usize = 10;

#[derive(Debug, Clone)]
pub(crate) struct IntelUser {
    pub(crate) user_id: String,
    pub(crate) name: String,
    pub(crate) valid_from: String,
    pub(crate) valid_to: String,
}

#[derive(Debug, Default)]
pub(crate) struct IntelbrasApi {
    pub(crate) users: BTreeMap<String, IntelUser>,
    /// CardNo -> UserID.
    pub(crate) cards: BTreeMap<String, String>,
    pub(crate) capacity: Option<usize>,
    pub(crate) firmware: IntelbrasFirmware,
    pub(crate) finds: Finds,
    /// Whether the model takes faces, and its variants (see `intelbras_faces.rs`).
    pub(crate) faces: SimFaces,
    /// Faces by UserID; removing the user leaves them (whether the device does is
    /// unknown, face-api.md 3.5: the strict choice).
    pub(crate) face_store: BTreeMap<String, StoredFace>,
    pub(crate) face_stats: FaceStats,
}

fn text(status: u16, body: &str) -> Served {
    Served {
        response: Response::text(status, body),
        created: None,
    }
}

fn ok() -> Served {
    text(200, "OK\r\n")
}

fn bad_request() -> Served {
    text(400, "Error\r\nBad Request!\r\n")
}

/// The answer to a request without valid Digest credentials.
pub(crate) fn unauthorized() -> Response {
    Response::text(401, "Error\r\nInvalid Authority!\r\n")
}

pub(crate) fn busy() -> Response {
    Response::text(503, "Error\r\nService Unavailable!\r\n")
}

/// The statistics name of a request: `user_insertMulti`, `card_list`, ...
pub(crate) fn route_name(path: &str, action: Option<&str>) -> &'static str {
    if let Some(name) = intelbras_faces::route_name(path, action) {
        return name;
    }
    let table = match path {
        "/cgi-bin/AccessUser.cgi" => "user",
        "/cgi-bin/AccessCard.cgi" => "card",
        "/cgi-bin/magicBox.cgi" => "box",
        _ => return "unknown",
    };
    match (table, action.unwrap_or("")) {
        ("user", "insertMulti") => "user_insertMulti",
        ("user", "updateMulti") => "user_updateMulti",
        ("user", "removeMulti") => "user_removeMulti",
        ("user", "list") => "user_list",
        ("user", "startFind") => "user_startFind",
        ("user", "doFind") => "user_doFind",
        ("user", "stopFind") => "user_stopFind",
        ("card", "updateMulti") => "card_updateMulti",
        ("card", "startFind") => "card_startFind",
        ("card", "doFind") => "card_doFind",
        ("card", "stopFind") => "card_stopFind",
        ("card", "insertMulti") => "card_insertMulti",
        ("card", "removeMulti") => "card_removeMulti",
        ("card", "list") => "card_list",
        ("box", "getSoftwareVersion") => "software_version",
        _ => "not_implemented",
    }
}

/// `name[0]`, `name[1]`, ... until the first missing index.
fn indexed(request: &Request<'_>, name: &str) -> Vec<String> {
    (0..)
        .map_while(|i| request.query_param(&format!("{name}[{i}]")))
        .collect()
}

fn is_time(t: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok()
}

fn is_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

fn is_card_no(card: &str) -> bool {
    !card.is_empty()
        && card.len() <= 16
        && card
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl IntelbrasApi {
    /// A request as the documents describe the API (see `intelbras_firmware.rs` for
    /// the firmware that differ).
    pub(crate) fn call_documented(&mut self, request: &Request<'_>) -> Served {
        let action = request.query_param("action");
        let name = route_name(request.path, action.as_deref());
        let body: Option<Value> = serde_json::from_slice(request.body).ok();
        match (request.method, name) {
            ("GET", "software_version") => {
                text(200, "version=2.800.0000000.1.R,build:2022-01-10\r\n")
            }
            ("POST", "user_insertMulti") => self.write_users(body.as_ref(), false),
            ("POST", "user_updateMulti") => self.write_users(body.as_ref(), true),
            ("GET", "user_removeMulti") => {
                let ids = indexed(request, "UserIDList");
                if ids.is_empty() || ids.len() > MAX_PER_CALL {
                    return bad_request();
                }
                for id in &ids {
                    self.users.remove(id);
                }
                self.cards.retain(|_, u| !ids.contains(u));
                ok()
            }
            ("GET", "user_list") => {
                let ids = indexed(request, "UserIDList");
                if ids.len() > MAX_PER_CALL {
                    return bad_request();
                }
                let list: Vec<Value> = self
                    .users
                    .values()
                    .filter(|u| ids.is_empty() || ids.contains(&u.user_id))
                    .map(|u| {
                        json!({
                            "UserID": u.user_id, "UserName": u.name, "UserType": 0, "Authority": 2,
                            "Doors": [0], "TimeSections": [255],
                            "ValidFrom": u.valid_from, "ValidTo": u.valid_to,
                        })
                    })
                    .collect();
                list_answer("UserList", list)
            }
            ("POST", "card_insertMulti") => self.insert_cards(body.as_ref()),
            ("GET", "card_removeMulti") => {
                let cards = indexed(request, "CardNoList");
                if cards.is_empty() || cards.len() > MAX_PER_CALL {
                    return bad_request();
                }
                self.cards.retain(|c, _| !cards.contains(c));
                ok()
            }
            ("GET", "card_list") => {
                let users = indexed(request, "UserIDList");
                let numbers = indexed(request, "CardNoList");
                if users.len() > MAX_PER_CALL || numbers.len() > MAX_PER_CALL {
                    return bad_request();
                }
                let list: Vec<Value> = self
                    .cards
                    .iter()
                    .filter(|(c, u)| {
                        (users.is_empty() || users.contains(u))
                            && (numbers.is_empty() || numbers.contains(c))
                    })
                    .map(|(c, u)| json!({"UserID": u, "CardNo": c, "CardType": 0, "CardStatus": 0}))
                    .collect();
                list_answer("CardList", list)
            }
            ("GET" | "POST", "not_implemented") => text(501, "Error\r\nNot Implemented!\r\n"),
            (_, "unknown") => text(404, "Error\r\nNot Found!\r\n"),
            _ => bad_request(),
        }
    }

    /// `insertMulti` / `updateMulti` of users: all or nothing.
    fn write_users(&mut self, body: Option<&Value>, update: bool) -> Served {
        let Some(list) = body
            .and_then(|b| b.get("UserList"))
            .and_then(Value::as_array)
        else {
            return bad_request();
        };
        if list.is_empty() || list.len() > MAX_PER_CALL {
            return bad_request();
        }
        let mut parsed = Vec::with_capacity(list.len());
        for entry in list {
            let field = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(user_id), Some(name)) = (field("UserID"), field("UserName")) else {
                return bad_request();
            };
            let valid_from = field("ValidFrom").unwrap_or_else(|| "2000-01-01 00:00:00".into());
            let valid_to = field("ValidTo").unwrap_or_else(|| "2037-12-31 23:59:59".into());
            if !is_user_id(&user_id) || !is_time(&valid_from) || !is_time(&valid_to) {
                return bad_request();
            }
            let exists = self.users.contains_key(&user_id);
            let repeated = parsed.iter().any(|u: &IntelUser| u.user_id == user_id);
            if exists != update || repeated {
                return bad_request();
            }
            parsed.push(IntelUser {
                user_id,
                name,
                valid_from,
                valid_to,
            });
        }
        if !update
            && self
                .capacity
                .is_some_and(|c| self.users.len() + parsed.len() > c)
        {
            return bad_request();
        }
        let count = parsed.len() as u64;
        for user in parsed {
            self.users.insert(user.user_id.clone(), user);
        }
        Served {
            created: (!update).then_some(("users", count)),
            ..ok()
        }
    }

    fn insert_cards(&mut self, body: Option<&Value>) -> Served {
        let Some(list) = body
            .and_then(|b| b.get("CardList"))
            .and_then(Value::as_array)
        else {
            return bad_request();
        };
        if list.is_empty() || list.len() > MAX_PER_CALL {
            return bad_request();
        }
        let mut parsed: Vec<(String, String)> = Vec::with_capacity(list.len());
        for entry in list {
            let field = |k: &str| {
                entry
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let (user, card) = (field("UserID"), field("CardNo"));
            if !is_card_no(&card)
                || !self.users.contains_key(&user)
                || self.cards.contains_key(&card)
                || parsed.iter().any(|(_, c)| *c == card)
            {
                return bad_request();
            }
            parsed.push((user, card));
        }
        let count = parsed.len() as u64;
        for (user, card) in parsed {
            self.cards.insert(card, user);
        }
        Served {
            created: Some(("cards", count)),
            ..ok()
        }
    }
}

fn list_answer(key: &str, list: Vec<Value>) -> Served {
    Served {
        response: Response::json(200, json!({ key: list }).to_string().into_bytes()),
        created: None,
    }
}
