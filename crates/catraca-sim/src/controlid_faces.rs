//! Control iD face photos (docs/face-api.md, section 1) on a simulated device:
//! `user_set_image.fcgi` (raw body; `user_id`, `timestamp`, `match` in the query),
//! `user_set_image_list.fcgi` (JSON, base64, per-item `results[]`),
//! `user_test_image.fcgi`, `user_list_images.fcgi` (`get_timestamp=1` gives
//! `image_info` with the timestamps sent), `user_get_image.fcgi` and
//! `user_destroy_image.fcgi` (`user_id`, `user_ids`, `all`, `dangling`).
//!
//! Photos are stored per `user_id` and, as on the device (the `dangling` option says
//! so), outlive the user: `destroy_objects` on `users` leaves the photo behind. Each
//! photo is judged in this order: the user must exist (code 1), the picture must be
//! readable (code 1; PNG refused with HTTP 400 by the OEM firmware), a face must be
//! found (code 2, see `face.rs`), its simulated width (45 % of the shorter side) must
//! be 60 to 800 px (codes 5 and 6), a `catraca-sim: controlid-error N` comment gives
//! code N, and with `match` a face held by another user is code 3 `Face exists` with
//! `"info":{"match_user_id":N}` inside the error (the placement face-api.md marks as
//! probable). Verdicts on a photo answer 200 with `success` false (the doc has seen
//! 200 and 400; one fixed choice); a request the device cannot read is a 400
//! `{"error":...,"code":1}`, and a body over 2 MB (1 MB on old firmware) the web
//! server's 413.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::controlid::ControlIdDevice;
use super::face::{ControlIdFaces, Photo, PhotoFormat, StoredFace};
use super::http::{Request, Response};
use super::tables::{col, TableId};

/// The request size the vendor documents for both set calls.
pub(crate) const MAX_REQUEST: usize = 2 * 1024 * 1024;
/// The older documentation page's limit (C2), played by the old firmware.
pub(crate) const OLD_MAX_REQUEST: usize = 1024 * 1024;

/// Simulated face width, as a share of the picture's shorter side, in percent.
const FACE_WIDTH_PERCENT: u32 = 45;

/// The face calls, named by the path `/<name>.fcgi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaceCommand {
    SetImage,
    SetImageList,
    TestImage,
    ListImages,
    GetImage,
    DestroyImage,
}

impl FaceCommand {
    const ALL: [FaceCommand; 6] = [
        FaceCommand::SetImage,
        FaceCommand::SetImageList,
        FaceCommand::TestImage,
        FaceCommand::ListImages,
        FaceCommand::GetImage,
        FaceCommand::DestroyImage,
    ];

    pub(crate) fn from_path(path: &str) -> Option<FaceCommand> {
        let name = path.strip_prefix('/')?.strip_suffix(".fcgi")?;
        FaceCommand::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The name used in the path and in the request statistics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaceCommand::SetImage => "user_set_image",
            FaceCommand::SetImageList => "user_set_image_list",
            FaceCommand::TestImage => "user_test_image",
            FaceCommand::ListImages => "user_list_images",
            FaceCommand::GetImage => "user_get_image",
            FaceCommand::DestroyImage => "user_destroy_image",
        }
    }

    /// The vendor shows GET and POST for the list; every other call is a POST.
    pub(crate) fn takes(self, method: &str) -> bool {
        method == "POST" || (method == "GET" && self == FaceCommand::ListImages)
    }
}

fn error(status: u16, message: &str) -> Response {
    let body = json!({"error": message, "code": 1});
    Response::json(status, body.to_string().into_bytes())
}

fn answer(body: &Value) -> Response {
    Response::json(200, body.to_string().into_bytes())
}

const NOT_RECOGNIZED: &str = "Image file not recognized. Image should be either JPG or PNG.";

/// The message of a quality code, as the device words it.
fn message(code: u8) -> &'static str {
    match code {
        2 => "Face not detected",
        3 => "Face exists",
        4 => "Face not centered",
        5 => "Face too distant",
        6 => "Face too close",
        7 => "Face pose not centered",
        8 => "Low sharpness",
        _ => "Face too close to image borders",
    }
}

/// What the device made of one photo.
enum Verdict {
    Stored(Value),
    Refused(Vec<Value>, Option<Value>),
}

impl Verdict {
    fn code_1(message: &str) -> Verdict {
        Verdict::Refused(vec![json!({"code": 1, "message": message})], None)
    }

    /// The item of `results[]`, or the whole answer of `user_set_image`.
    fn to_json(&self, user_id: Value) -> Value {
        let mut out = Map::new();
        out.insert("user_id".into(), user_id);
        match self {
            Verdict::Stored(scores) => {
                out.insert("scores".into(), scores.clone());
                out.insert("success".into(), true.into());
            }
            Verdict::Refused(errors, scores) => {
                if let Some(scores) = scores {
                    out.insert("scores".into(), scores.clone());
                }
                out.insert("success".into(), false.into());
                out.insert("errors".into(), errors.clone().into());
            }
        }
        Value::Object(out)
    }
}

/// The kind of a JSON value, as the firmware names it in `Invalid member` errors.
fn kind_of(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(_)) => "int",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

impl ControlIdDevice {
    /// Answers one face call: 404 on a card model, 401 without a valid session.
    pub(crate) fn face_call(&mut self, command: FaceCommand, request: &Request<'_>) -> Response {
        self.face_stats.calls += 1;
        if !self.faces.enabled {
            // A model without a camera has no such command.
            let body = json!({"error": format!("Unknown command {}", request.path), "code": 1});
            return Response::json(404, body.to_string().into_bytes());
        }
        if !self.session_valid(request.query_param("session").as_deref()) {
            return error(401, "Invalid session");
        }
        if matches!(
            command,
            FaceCommand::SetImage | FaceCommand::SetImageList | FaceCommand::TestImage
        ) && request.body.len() > self.max_request()
        {
            return super::http::error_response(413);
        }
        match command {
            FaceCommand::SetImage => self.set_image(request),
            FaceCommand::SetImageList => self.set_image_list(request.body),
            FaceCommand::TestImage => {
                self.face_stats.tested += 1;
                let verdict = self.judge(None, request.body, false);
                let mut body = verdict.to_json(Value::Null);
                if let Value::Object(map) = &mut body {
                    map.remove("user_id");
                }
                answer(&body)
            }
            FaceCommand::ListImages => self.list_images(request),
            FaceCommand::GetImage => self.get_image(request),
            FaceCommand::DestroyImage => self.destroy_images(request.body),
        }
    }

    /// The registration of a user, if it exists.
    fn registration_of(&self, user_id: i64) -> Option<String> {
        self.tables
            .rows(TableId::Users)
            .find(|row| i64::try_from(row[col::ID].int()).ok() == Some(user_id))
            .map(|row| row[col::USER_REGISTRATION].text().to_owned())
    }

    /// Judges one photo for `user_id` (`None`: only a test) and stores it if good.
    fn judge(
        &mut self,
        user_id: Option<(i64, Option<i64>)>,
        bytes: &[u8],
        matching: bool,
    ) -> Verdict {
        let own = match user_id {
            Some((id, _)) => match self.registration_of(id) {
                Some(registration) => registration,
                None => return Verdict::code_1("User does not exist"),
            },
            None => String::new(),
        };
        let photo = match Photo::read(bytes) {
            Ok(photo)
                if photo.format == PhotoFormat::Png
                    && self.faces.controlid == ControlIdFaces::Oem =>
            {
                return Verdict::code_1("Image file not recognized. Image should be JPG.")
            }
            Ok(photo) => photo,
            Err(_) => return Verdict::code_1(NOT_RECOGNIZED),
        };
        let Some(identity) = photo.face(&own) else {
            return Verdict::Refused(vec![json!({"code": 2, "message": message(2)})], None);
        };
        let bounds_width = photo.width.min(photo.height) * FACE_WIDTH_PERCENT / 100;
        let scores = json!({
            "bounds_width": bounds_width, "horizontal_center_offset": 0,
            "vertical_center_offset": 0, "center_pose_quality": 100, "sharpness_quality": 900,
        });
        let code = if bounds_width < 60 {
            Some(5)
        } else if bounds_width > 800 {
            Some(6)
        } else {
            photo.controlid_error()
        };
        if let Some(code) = code {
            let errors = vec![json!({"code": code, "message": message(code)})];
            return Verdict::Refused(errors, Some(scores));
        }
        let Some((id, timestamp)) = user_id else {
            return Verdict::Stored(scores);
        };
        if matching {
            let holder = self
                .face_store
                .iter()
                .find(|(other, face)| **other != id && face.identity == identity)
                .map(|(other, _)| *other);
            if let Some(holder) = holder {
                let error =
                    json!({"code": 3, "message": message(3), "info": {"match_user_id": holder}});
                return Verdict::Refused(vec![error], Some(scores));
            }
        }
        self.face_store.insert(
            id,
            StoredFace::new(
                bytes,
                photo,
                identity,
                timestamp.filter(|_| self.faces.controlid != ControlIdFaces::Old),
            ),
        );
        Verdict::Stored(scores)
    }

    /// Counts a photo's verdict.
    fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Stored(_) => self.face_stats.stored(),
            Verdict::Refused(..) => self.face_stats.refused(),
        }
    }

    fn set_image(&mut self, request: &Request<'_>) -> Response {
        let number = |name: &str| {
            request
                .query_param(name)
                .and_then(|v| v.parse::<i64>().ok())
        };
        let Some(user_id) = number("user_id") else {
            return error(400, "Invalid user_id");
        };
        let old = self.faces.controlid == ControlIdFaces::Old;
        let timestamp = match number("timestamp") {
            _ if old => None,
            Some(timestamp) => Some(timestamp),
            None => return error(400, "Invalid or missing parameter: timestamp"),
        };
        let matching = match request.query_param("match").as_deref() {
            _ if old => false,
            Some("0") => false,
            Some("1") => true,
            _ => return error(400, "Invalid or missing parameter: match (0 or 1)"),
        };
        if self.faces.controlid == ControlIdFaces::Oem && request.body.starts_with(b"\x89PNG") {
            self.face_stats.refused();
            return error(400, "Image file not recognized. Image should be JPG.");
        }
        let verdict = self.judge(Some((user_id, timestamp)), request.body, matching);
        self.count(&verdict);
        answer(&verdict.to_json(user_id.into()))
    }

    fn set_image_list(&mut self, body: &[u8]) -> Response {
        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return error(400, "Invalid JSON in the request body");
        };
        let matching = match parsed.get("match") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let got = kind_of(Some(other));
                return error(
                    400,
                    &format!("Failed: Invalid member 'match' (bool expected, got {got})"),
                );
            }
        };
        let Some(items) = parsed.get("user_images").and_then(Value::as_array) else {
            return error(400, "Failed: Invalid member 'user_images' (array expected)");
        };
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let user_id = item.get("user_id").cloned().unwrap_or(Value::Null);
            let invalid = |member: &str, expected: &str| {
                let got = kind_of(item.get(member));
                Verdict::code_1(&format!(
                    "Failed: Invalid member '{member}' ({expected} expected, got {got})"
                ))
            };
            let verdict = match (
                item.get("user_id").and_then(Value::as_i64),
                item.get("timestamp").and_then(Value::as_i64),
                item.get("image").and_then(Value::as_str),
            ) {
                (None, _, _) => invalid("user_id", "int"),
                (_, None, _) => invalid("timestamp", "int"),
                (_, _, None) => invalid("image", "string"),
                (Some(id), Some(timestamp), Some(image)) => {
                    match base64::engine::general_purpose::STANDARD.decode(image) {
                        Ok(bytes) => self.judge(Some((id, Some(timestamp))), &bytes, matching),
                        Err(_) => Verdict::code_1(NOT_RECOGNIZED),
                    }
                }
            };
            self.count(&verdict);
            results.push(verdict.to_json(user_id));
        }
        answer(&json!({"results": results}))
    }

    fn list_images(&self, request: &Request<'_>) -> Response {
        let asked = request.query_param("get_timestamp").as_deref() == Some("1")
            || serde_json::from_slice::<Value>(request.body)
                .ok()
                .and_then(|b| b.get("get_timestamp").cloned())
                .is_some_and(|v| v == json!(1) || v == json!(true));
        if asked && self.faces.controlid != ControlIdFaces::Old {
            let info: Vec<Value> = self
                .face_store
                .iter()
                .map(|(id, face)| json!({"user_id": id, "timestamp": face.timestamp.unwrap_or(0)}))
                .collect();
            return answer(&json!({"image_info": info}));
        }
        let ids: Vec<i64> = self.face_store.keys().copied().collect();
        answer(&json!({"user_ids": ids}))
    }

    fn get_image(&self, request: &Request<'_>) -> Response {
        let Some(user_id) = request
            .query_param("user_id")
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return error(400, "Invalid user_id");
        };
        let Some(face) = self.face_store.get(&user_id) else {
            return error(404, "User image not found");
        };
        if request.query_param("get_timestamp").as_deref() == Some("1") {
            let image = base64::engine::general_purpose::STANDARD.encode(&face.bytes);
            return answer(&json!({"timestamp": face.timestamp.unwrap_or(0), "image": image}));
        }
        Response {
            status: 200,
            content_type: match face.photo.format {
                PhotoFormat::Jpeg => "image/jpeg",
                PhotoFormat::Png => "image/png",
            },
            body: face.bytes.clone(),
            challenges: Vec::new(),
        }
    }

    fn destroy_images(&mut self, body: &[u8]) -> Response {
        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return error(400, "Invalid JSON in the request body");
        };
        if let Some(id) = parsed.get("user_id").and_then(Value::as_i64) {
            self.face_store.remove(&id);
        } else if let Some(ids) = parsed.get("user_ids").and_then(Value::as_array) {
            for id in ids.iter().filter_map(Value::as_i64) {
                self.face_store.remove(&id);
            }
        } else if parsed.get("all") == Some(&Value::Bool(true)) {
            self.face_store.clear();
        } else if parsed.get("dangling") == Some(&Value::Bool(true)) {
            let users: std::collections::BTreeSet<i64> = self
                .tables
                .rows(TableId::Users)
                .filter_map(|row| i64::try_from(row[col::ID].int()).ok())
                .collect();
            self.face_store.retain(|id, _| users.contains(id));
        } else {
            return error(400, "Give user_id, user_ids, all or dangling");
        }
        answer(&json!({}))
    }

    /// The largest request the firmware reads.
    fn max_request(&self) -> usize {
        match self.faces.controlid {
            ControlIdFaces::Old => OLD_MAX_REQUEST,
            _ => MAX_REQUEST,
        }
    }

    /// Whether `load_objects` on `users` knows the `image_timestamp` column.
    pub(crate) fn has_image_timestamps(&self) -> bool {
        self.faces.enabled && self.faces.controlid != ControlIdFaces::Old
    }

    /// The `image_timestamp` of a user: its photo's timestamp, 0 without a photo.
    pub(crate) fn image_timestamp(&self, user_id: i64) -> i64 {
        self.face_store
            .get(&user_id)
            .map_or(0, |face| face.timestamp.unwrap_or(0))
    }

    /// Whether a user id holds a photo whose user is gone.
    pub(crate) fn user_exists(&self, user_id: i64) -> bool {
        self.registration_of(user_id).is_some()
    }

    /// The registration holding this user id, for inspection ("" when gone).
    pub(crate) fn registration_or_empty(&self, user_id: i64) -> String {
        self.registration_of(user_id).unwrap_or_default()
    }
}
