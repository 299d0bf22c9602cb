//! The Hikvision ISAPI access-control API as one simulated terminal speaks it
//! (docs/hikvision-intelbras-api.md): people keyed by a unique `employeeNo`, ONE person
//! per `UserInfo/Record` (an array is refused), `Modify` only for people that exist,
//! paged searches (30 a page, `OK` / `MORE` / `NO MATCH`), cards recorded only for an
//! existing person with a unique `cardNo`, and ISAPI error bodies
//! (`statusCode`, `subStatusCode`), `userExceedLimit` once `SimConfig::capacity` people
//! are stored. Authentication (Digest) and transport faults are wrapped around these
//! calls by `lib.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::digest::UserCheck;
use super::face::{FaceStats, SimFaces, StoredFace};
use super::hikvision_faces;
use super::http::Response;

/// The paging cap the capabilities report.
pub(crate) const MAX_RESULTS: usize = 30;

/// `GET /ISAPI/System/deviceInfo`, shortened from a terminal's answer.
const DEVICE_INFO: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<DeviceInfo version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\n\
<deviceName>catraca-sim</deviceName>\n<model>DS-K1T671M</model>\n\
<firmwareVersion>V3.2.30</firmwareVersion>\n<firmwareReleasedDate>build 220101</firmwareReleasedDate>\n\
<deviceType>ACS</deviceType>\n</DeviceInfo>\n";

/// A stored person; `Valid` kept as sent.
#[derive(Debug, Clone)]
pub(crate) struct HikUser {
    pub(crate) employee_no: String,
    pub(crate) name: String,
    pub(crate) user_type: String,
    pub(crate) valid: Value,
}

#[derive(Debug, Default)]
pub(crate) struct HikvisionApi {
    pub(crate) users: BTreeMap<String, HikUser>,
    /// cardNo -> employeeNo.
    pub(crate) cards: BTreeMap<String, String>,
    pub(crate) capacity: Option<usize>,
    /// The firmware's limits and calls (see [`HikFirmware`]).
    pub(crate) firmware: HikFirmware,
    /// Whether the model takes faces, and its variants (see `hikvision_faces.rs`).
    pub(crate) faces: SimFaces,
    /// Faces by FPID (= employeeNo) in FDID 1 / blackFD.
    pub(crate) face_store: BTreeMap<String, StoredFace>,
    /// The picture file number of each face (its `faceURL`); a new one per upload.
    pub(crate) face_pictures: BTreeMap<String, u64>,
    pub(crate) last_picture: u64,
    pub(crate) face_stats: FaceStats,
}

/// What one Hikvision model and firmware take (field-evidence.md, section 3), as its
/// capabilities report them and its answers enforce them.
#[derive(Debug, Clone, Copy)]
pub struct HikFirmware {
    /// `name.@max`, in UTF-8 bytes; a longer name is refused `badJsonContent`.
    /// Default: 128, a recent terminal's (older ones: 32).
    pub name_max: usize,
    /// Only digits in `employeeNo` (`characterType` `number`); others are refused
    /// `badJsonContent` with `errorMsg` `employeeNo`. Default: any character.
    pub employee_digits_only: bool,
    /// No `UserInfoDetail/Delete` (404 `notSupport`): only the legacy `UserInfo/Delete`,
    /// as on a DS-K1T323 V4.23.41. Default: both.
    pub legacy_delete: bool,
    /// No capabilities calls (404 `notSupport`), as on older firmware: clients fall
    /// back to the documented limits, and learn digits-only from a refusal. Default:
    /// they answer.
    pub no_capabilities: bool,
}

impl Default for HikFirmware {
    fn default() -> HikFirmware {
        HikFirmware {
            name_max: 128,
            employee_digits_only: false,
            legacy_delete: false,
            no_capabilities: false,
        }
    }
}

/// The answer and what it did, for the statistics.
pub(crate) struct Served {
    pub(crate) response: Response,
    pub(crate) created: Option<(&'static str, u64)>,
}

fn status(http: u16, code: i64, text: &str, sub: &str, message: &str) -> Served {
    let body = json!({
        "statusCode": code, "statusString": text, "subStatusCode": sub,
        "errorCode": 0x6000_0000_i64 + code, "errorMsg": message,
    });
    Served {
        response: Response::json(http, body.to_string().into_bytes()),
        created: None,
    }
}

fn ok() -> Served {
    status(200, 1, "OK", "ok", "ok")
}

fn invalid(sub: &str, message: &str) -> Served {
    status(400, 6, "Invalid Content", sub, message)
}

fn data(body: Value) -> Served {
    Served {
        response: Response::json(200, body.to_string().into_bytes()),
        created: None,
    }
}

/// The ISAPI `Device Busy` answer (statusCode 2), for the busy fault.
pub(crate) fn busy() -> Response {
    status(503, 2, "Device Busy", "deviceBusy", "the device is busy").response
}

/// The answer to a request without valid Digest credentials: the `userCheck` body a
/// terminal sends (field-evidence.md, 2.4), with the logins left and the lock.
pub(crate) fn unauthorized(check: UserCheck) -> Response {
    let (lock, unlock) = match check.locked_for {
        Some(seconds) => ("lock", seconds),
        None => ("unlock", 0),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <userCheck version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\n\
         <statusValue>401</statusValue>\n<statusString>Unauthorized</statusString>\n\
         <isActivated>true</isActivated>\n<lockStatus>{lock}</lockStatus>\n\
         <unlockTime>{unlock}</unlockTime>\n<retryLoginTime>{}</retryLoginTime>\n\
         </userCheck>\n",
        if check.locked_for.is_some() {
            0
        } else {
            check.retries_left
        }
    );
    Response {
        status: 401,
        content_type: "application/xml",
        body: body.into_bytes(),
        challenges: Vec::new(),
    }
}

/// The statistics name of a request.
pub(crate) fn route_name(path: &str) -> &'static str {
    match path {
        "/ISAPI/System/deviceInfo" => "device_info",
        "/ISAPI/AccessControl/UserInfo/capabilities" => "user_capabilities",
        "/ISAPI/AccessControl/capabilities" => "access_capabilities",
        "/ISAPI/AccessControl/UserInfo/Delete" => "user_delete_legacy",
        "/ISAPI/AccessControl/UserInfo/Record" => "user_record",
        "/ISAPI/AccessControl/UserInfo/Modify" => "user_modify",
        "/ISAPI/AccessControl/UserInfo/Search" => "user_search",
        "/ISAPI/AccessControl/UserInfoDetail/Delete" => "user_delete",
        "/ISAPI/AccessControl/UserInfoDetail/DeleteProcess" => "user_delete_process",
        "/ISAPI/AccessControl/CardInfo/Record" => "card_record",
        "/ISAPI/AccessControl/CardInfo/Search" => "card_search",
        "/ISAPI/AccessControl/CardInfo/Delete" => "card_delete",
        _ => hikvision_faces::route_name(path).unwrap_or("unknown"),
    }
}

fn is_local_time(text: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_ok()
}

fn texts(list: Option<&Value>, key: &str) -> Option<Vec<String>> {
    list.and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(|i| i.get(key).and_then(Value::as_str).map(str::to_owned))
            .collect()
    })
}

impl HikvisionApi {
    /// One request: an FDLib call (multipart uploads included) or a JSON one.
    pub(crate) fn call_request(&mut self, request: &super::http::Request<'_>) -> Served {
        match hikvision_faces::route_name(request.path) {
            Some(name) => self.face_call(name, request),
            None => self.call(request.method, request.path, request.body),
        }
    }

    pub(crate) fn call(&mut self, method: &str, path: &str, body: &[u8]) -> Served {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let needs_body = method != "GET";
        let Some(body) = parsed.or((!needs_body).then_some(Value::Null)) else {
            return status(
                400,
                5,
                "Invalid Format",
                "badJsonFormat",
                "the body is not JSON",
            );
        };
        match (method, route_name(path)) {
            (_, "user_capabilities" | "access_capabilities") if self.firmware.no_capabilities => {
                status(404, 4, "Invalid Operation", "notSupport", "no such URL")
            }
            // XML whatever the format asked, as terminals answer it.
            ("GET", "device_info") => Served {
                response: Response {
                    status: 200,
                    content_type: "application/xml",
                    body: DEVICE_INFO.as_bytes().to_vec(),
                    challenges: Vec::new(),
                },
                created: None,
            },
            ("GET", "user_capabilities") => data(json!({"UserInfo": {
                "supportFunction": {"@opt": "post,delete,put,get"},
                "maxRecordNum": self.capacity.unwrap_or(10_000),
                "UserInfoSearchCond": {"maxResults": {"@min": 1, "@max": MAX_RESULTS},
                    "EmployeeNoList": {"maxSize": MAX_RESULTS, "employeeNo": {"@min": 1, "@max": 32}}},
                "UserInfoDelCond": {"EmployeeNoList": {"maxSize": MAX_RESULTS}},
                "employeeNo": {"@min": 1, "@max": 32},
                "name": {"@min": 0, "@max": self.firmware.name_max},
            }})),
            // XML whatever the format asked, as terminals answer it.
            ("GET", "access_capabilities") => Served {
                response: Response {
                    status: 200,
                    content_type: "application/xml",
                    body: format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControl version=\"2.0\">\n\
                         <EmployeeNoInfo><employeeNo min=\"1\" max=\"32\"/><characterType opt=\"{}\"/></EmployeeNoInfo>\n\
                         <isSupportUserInfoDetailDelete>{}</isSupportUserInfoDetailDelete>\n</AccessControl>\n",
                        if self.firmware.employee_digits_only { "number" } else { "any" },
                        !self.firmware.legacy_delete
                    )
                    .into_bytes(),
                    challenges: Vec::new(),
                },
                created: None,
            },
            ("PUT", "user_delete_legacy") => self.delete_users_legacy(&body),
            ("PUT" | "GET", "user_delete" | "user_delete_process") if self.firmware.legacy_delete => {
                status(404, 4, "Invalid Operation", "notSupport", "no such URL")
            }
            ("POST", "user_record") => self.record(&body),
            ("PUT", "user_modify") => self.modify(&body),
            ("POST", "user_search") => self.search_users(&body),
            ("PUT", "user_delete") => self.delete_users(&body),
            ("GET", "user_delete_process") => {
                data(json!({"UserInfoDetailDeleteProcess": {"status": "success"}}))
            }
            ("POST", "card_record") => self.record_card(&body),
            ("POST", "card_search") => self.search_cards(&body),
            ("PUT", "card_delete") => self.delete_cards(&body),
            (_, "unknown") => status(404, 4, "Invalid Operation", "notSupport", "no such URL"),
            _ => status(
                405,
                4,
                "Invalid Operation",
                "methodNotAllowed",
                "wrong method",
            ),
        }
    }

    fn delete_users_legacy(&mut self, body: &Value) -> Served {
        let cond = body.get("UserInfoDelCond");
        let Some(list) = texts(cond.and_then(|c| c.get("EmployeeNoList")), "employeeNo") else {
            return invalid(
                "messageParametersLack",
                "UserInfoDelCond.EmployeeNoList is missing",
            );
        };
        if list.len() > MAX_RESULTS {
            return invalid("badJsonContent", "EmployeeNoList");
        }
        // The legacy call leaves the cards behind (whether it does on every model is
        // not known): the driver removes them first. The face goes with the person.
        for employee in &list {
            self.users.remove(employee);
            self.face_store.remove(employee);
        }
        ok()
    }

    fn user_of(&self, body: &Value) -> Result<HikUser, Served> {
        let info = match body.get("UserInfo") {
            Some(Value::Object(info)) => info,
            Some(Value::Array(_)) => {
                return Err(invalid(
                    "badJsonContent",
                    "UserInfo must be one object: one person per request",
                ))
            }
            _ => return Err(invalid("messageParametersLack", "UserInfo is missing")),
        };
        let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        let employee_no = text("employeeNo").unwrap_or_default();
        if employee_no.is_empty() || employee_no.len() > 32 {
            return Err(invalid(
                "badEmployeeNo",
                "employeeNo must have 1 to 32 bytes",
            ));
        }
        if self.firmware.employee_digits_only && !employee_no.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("badJsonContent", "employeeNo"));
        }
        if text("name").is_some_and(|n| n.len() > self.firmware.name_max) {
            return Err(invalid("badJsonContent", "name"));
        }
        let valid = info
            .get("Valid")
            .cloned()
            .unwrap_or(json!({"enable": false}));
        for key in ["beginTime", "endTime"] {
            if let Some(t) = valid.get(key) {
                if !t.as_str().is_some_and(is_local_time) {
                    return Err(invalid(
                        "badTimeFormat",
                        &format!("Valid.{key} is not YYYY-MM-DDTHH:MM:SS"),
                    ));
                }
            }
        }
        Ok(HikUser {
            employee_no,
            name: text("name").unwrap_or_default(),
            user_type: text("userType").unwrap_or_else(|| "normal".into()),
            valid,
        })
    }

    fn record(&mut self, body: &Value) -> Served {
        let user = match self.user_of(body) {
            Ok(user) => user,
            Err(refused) => return refused,
        };
        if self.users.contains_key(&user.employee_no) {
            return invalid("employeeNoAlreadyExist", "employeeNo already exists");
        }
        if self.capacity.is_some_and(|c| self.users.len() >= c) {
            return invalid("userExceedLimit", "the number of users reached the limit");
        }
        self.users.insert(user.employee_no.clone(), user);
        Served {
            created: Some(("users", 1)),
            ..ok()
        }
    }

    fn modify(&mut self, body: &Value) -> Served {
        let user = match self.user_of(body) {
            Ok(user) => user,
            Err(refused) => return refused,
        };
        match self.users.get_mut(&user.employee_no) {
            Some(stored) => {
                *stored = user;
                ok()
            }
            None => invalid("employeeNoNotExist", "employeeNo does not exist"),
        }
    }

    /// One page of `rows`, answered under `result` / `list` as ISAPI pages.
    fn page(cond: &Value, rows: Vec<Value>, result: &str, list: &str) -> Served {
        let position = cond
            .get("searchResultPosition")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let max = cond
            .get("maxResults")
            .and_then(Value::as_u64)
            .map_or(MAX_RESULTS, |m| (m as usize).clamp(1, MAX_RESULTS));
        let total = rows.len();
        let page: Vec<Value> = rows.into_iter().skip(position).take(max).collect();
        let state = if total == 0 {
            "NO MATCH"
        } else if position + page.len() < total {
            "MORE"
        } else {
            "OK"
        };
        let mut answer = Map::new();
        answer.insert(
            "searchID".into(),
            cond.get("searchID").cloned().unwrap_or(Value::Null),
        );
        answer.insert("responseStatusStrg".into(), state.into());
        answer.insert("numOfMatches".into(), page.len().into());
        answer.insert("totalMatches".into(), total.into());
        if !page.is_empty() {
            answer.insert(list.into(), page.into());
        }
        data(json!({ result: answer }))
    }

    fn search_users(&self, body: &Value) -> Served {
        let Some(cond) = body.get("UserInfoSearchCond") else {
            return invalid("messageParametersLack", "UserInfoSearchCond is missing");
        };
        let wanted = texts(cond.get("EmployeeNoList"), "employeeNo");
        let rows = self
            .users
            .values()
            .filter(|u| wanted.as_ref().is_none_or(|w| w.contains(&u.employee_no)))
            .map(|u| {
                let mut row = json!({
                    "employeeNo": u.employee_no, "name": u.name, "userType": u.user_type,
                    "Valid": u.valid,
                    "numOfCard": self.cards.values().filter(|e| **e == u.employee_no).count(),
                });
                if self.faces.enabled {
                    row["numOfFace"] =
                        usize::from(self.face_store.contains_key(&u.employee_no)).into();
                }
                row
            })
            .collect();
        Self::page(cond, rows, "UserInfoSearch", "UserInfo")
    }

    fn delete_users(&mut self, body: &Value) -> Served {
        let cond = body.get("UserInfoDetail");
        let Some(list) = texts(cond.and_then(|c| c.get("EmployeeNoList")), "employeeNo") else {
            return invalid(
                "messageParametersLack",
                "UserInfoDetail.EmployeeNoList is missing",
            );
        };
        for employee in &list {
            self.users.remove(employee);
            self.face_store.remove(employee);
        }
        self.cards.retain(|_, e| !list.contains(e));
        ok()
    }

    fn record_card(&mut self, body: &Value) -> Served {
        let Some(Value::Object(card)) = body.get("CardInfo") else {
            return invalid("badJsonContent", "CardInfo must be one object");
        };
        let employee = card.get("employeeNo").and_then(Value::as_str).unwrap_or("");
        let number = card.get("cardNo").and_then(Value::as_str).unwrap_or("");
        if number.is_empty() || number.len() > 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return invalid("badCardNo", "cardNo must be 1 to 20 decimal digits");
        }
        if !self.users.contains_key(employee) {
            return invalid("employeeNoNotExist", "the card's person does not exist");
        }
        if self.cards.contains_key(number) {
            return invalid("cardNoAlreadyExist", "cardNo already exists");
        }
        self.cards.insert(number.to_owned(), employee.to_owned());
        Served {
            created: Some(("cards", 1)),
            ..ok()
        }
    }

    fn search_cards(&self, body: &Value) -> Served {
        let Some(cond) = body.get("CardInfoSearchCond") else {
            return invalid("messageParametersLack", "CardInfoSearchCond is missing");
        };
        let employees = texts(cond.get("EmployeeNoList"), "employeeNo");
        let numbers = texts(cond.get("CardNoList"), "cardNo");
        let rows = self
            .cards
            .iter()
            .filter(|(n, e)| {
                employees.as_ref().is_none_or(|w| w.contains(e))
                    && numbers.as_ref().is_none_or(|w| w.contains(n))
            })
            .map(|(n, e)| json!({"employeeNo": e, "cardNo": n, "cardType": "normalCard"}))
            .collect();
        Self::page(cond, rows, "CardInfoSearch", "CardInfo")
    }

    fn delete_cards(&mut self, body: &Value) -> Served {
        let cond = body.get("CardInfoDelCond");
        let numbers = texts(cond.and_then(|c| c.get("CardNoList")), "cardNo");
        let employees = texts(cond.and_then(|c| c.get("EmployeeNoList")), "employeeNo");
        match (numbers, employees) {
            (Some(numbers), _) => self.cards.retain(|n, _| !numbers.contains(n)),
            (None, Some(employees)) => self.cards.retain(|_, e| !employees.contains(e)),
            (None, None) => {
                return invalid(
                    "messageParametersLack",
                    "CardInfoDelCond needs CardNoList or EmployeeNoList",
                )
            }
        }
        ok()
    }
}
