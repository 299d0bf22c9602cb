//! Intelbras/Dahua face photos on a simulated facial controller (docs/face-api.md,
//! section 3), keyed by `UserID`.
//!
//! `POST AccessFace.cgi?action=insertMulti|updateMulti` takes `{"FaceList":[{"UserID",
//! "PhotoData":[base64]}]}`, at most 10; `POST FaceInfoManager.cgi?action=add|update`
//! one `{"UserID","Info":{"UserName","PhotoData":[base64]}}`. Both answer `OK`
//! (text/plain) or, when a photo is refused, 400 `{"code":268632336,"detail":
//! {"FailCodes":[...],"FailCount":n},"message":"Batch Process Error"}` with one code
//! per refused photo in request order, and then store NONE of the batch (what a
//! device does with the good ones is unknown: the strict choice). A request it cannot
//! read (not JSON, bad base64, over 2 MiB, more than 10 faces, a missing or repeated
//! user) is the bare `Error Bad Request!`. Per photo: `insertMulti`/`add` for a user
//! who has a face is 286064926; over 100 KB (`SimFaces::intelbras_max_photo`), or over 600 x 1200 px, is 286064923 (too
//! large); not a JPEG, under 150 x 300 px, taller than twice its width, or without a
//! face (`face.rs`) is 288686087. `updateMulti`/`update` also create a face (the doc
//! does not say they refuse a user without one).
//!
//! `FaceInfoManager.cgi?action=startFind&Condition.UserID=` opens a search (`Token`,
//! `Total` 0 or 1), `doFind` reads it, `stopFind&Token=` closes it; `remove&UserID=`
//! is `OK` whether or not there was a face. Removing the user leaves the face
//! (unknown on the device: strict). `AccessFace.cgi?action=removeMulti&UserIDList[i]=`
//! also removes. The capability call is our pick, as face-api.md documents none:
//! `GET FaceInfoManager.cgi?action=getCaps`, a Dahua-style `getCaps` on the manager
//! every facial firmware has (with or without `AccessFace.cgi`), answering the limits
//! as JSON. A card model answers every face call `501 Not Implemented`, as does the
//! firmware without `AccessFace.cgi` for that CGI.

use base64::Engine;
use serde_json::{json, Value};

use super::face::{Photo, PhotoFormat, StoredFace};
use super::hikvision::Served;
use super::http::{Request, Response};
use super::intelbras::{IntelbrasApi, MAX_PER_CALL};

/// Beyond this a request is not read at all (a 957 KB photo got a bare Bad Request).
const MAX_BODY: usize = 2 * 1024 * 1024;
const MIN_WIDTH: u32 = 150;
const MIN_HEIGHT: u32 = 300;
const MAX_WIDTH: u32 = 600;
const MAX_HEIGHT: u32 = 1200;

/// The batch failure envelope's code.
const BATCH_PROCESS_ERROR: i64 = 268_632_336;
/// FailCodes.
pub(crate) const ALREADY_HAS_FACE: i64 = 286_064_926;
pub(crate) const NO_USABLE_FACE: i64 = 288_686_087;
pub(crate) const TOO_LARGE: i64 = 286_064_923;

/// The statistics name of a face call, if `path` is a face CGI.
pub(crate) fn route_name(path: &str, action: Option<&str>) -> Option<&'static str> {
    let action = action.unwrap_or("");
    Some(match path {
        "/cgi-bin/AccessFace.cgi" => match action {
            "insertMulti" => "face_insertMulti",
            "updateMulti" => "face_updateMulti",
            "removeMulti" => "face_removeMulti",
            _ => "face_access_other",
        },
        "/cgi-bin/FaceInfoManager.cgi" => match action {
            "add" => "face_add",
            "update" => "face_update",
            "remove" => "face_remove",
            "startFind" => "face_startFind",
            "doFind" => "face_doFind",
            "stopFind" => "face_stopFind",
            "getCaps" => "face_caps",
            _ => "face_manager_other",
        },
        _ => return None,
    })
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

fn not_implemented() -> Served {
    text(501, "Error\r\nNot Implemented!\r\n")
}

fn json_answer(status: u16, body: &Value) -> Served {
    Served {
        response: Response::json(status, body.to_string().into_bytes()),
        created: None,
    }
}

fn batch_error(codes: &[i64]) -> Served {
    json_answer(
        400,
        &json!({"code": BATCH_PROCESS_ERROR,
                "detail": {"FailCodes": codes, "FailCount": codes.len()},
                "message": "Batch Process Error"}),
    )
}

/// One face to write, as read from the request.
struct Entry {
    user_id: String,
    photo: Vec<u8>,
}

/// The single base64 photo of a `PhotoData` array.
fn photo_data(value: Option<&Value>) -> Option<Vec<u8>> {
    let [data] = value?.as_array()?.as_slice() else {
        return None;
    };
    base64::engine::general_purpose::STANDARD
        .decode(data.as_str()?)
        .ok()
}

impl IntelbrasApi {
    /// Answers one face call (`name` from [`route_name`]).
    pub(crate) fn face_call(&mut self, name: &'static str, request: &Request<'_>) -> Served {
        self.face_stats.calls += 1;
        let access_face = matches!(
            name,
            "face_insertMulti" | "face_updateMulti" | "face_removeMulti" | "face_access_other"
        );
        if !self.faces.enabled || (access_face && !self.faces.intelbras_access_face) {
            return not_implemented();
        }
        if request.body.len() > MAX_BODY {
            return bad_request();
        }
        let body: Option<Value> = serde_json::from_slice(request.body).ok();
        match (request.method, name) {
            ("POST", "face_insertMulti") => self.write_faces(Self::face_list(body.as_ref()), false),
            ("POST", "face_updateMulti") => self.write_faces(Self::face_list(body.as_ref()), true),
            ("POST", "face_add") => self.write_faces(Self::one_face(body.as_ref()), false),
            ("POST", "face_update") => self.write_faces(Self::one_face(body.as_ref()), true),
            ("GET", "face_removeMulti") => {
                let ids: Vec<String> = (0..)
                    .map_while(|i| request.query_param(&format!("UserIDList[{i}]")))
                    .collect();
                if ids.is_empty() || ids.len() > MAX_PER_CALL {
                    return bad_request();
                }
                for id in &ids {
                    self.face_store.remove(id);
                }
                ok()
            }
            ("GET", "face_remove") => match request.query_param("UserID") {
                Some(id) if !id.is_empty() => {
                    self.face_store.remove(&id);
                    ok()
                }
                _ => bad_request(),
            },
            ("GET", "face_startFind") => {
                let wanted = request.query_param("Condition.UserID");
                let records: Vec<Value> = self
                    .face_store
                    .keys()
                    .filter(|id| wanted.as_ref().is_none_or(|w| w == *id))
                    .map(|id| json!({"UserID": id, "PhotoCount": 1}))
                    .collect();
                let total = records.len();
                let token = self.finds.start(records);
                json_answer(200, &json!({"Token": token, "Total": total}))
            }
            ("GET", "face_doFind") => self.do_find(request),
            ("GET", "face_stopFind") => {
                let token = request.query_param("Token").and_then(|t| t.parse().ok());
                match token.map(|t| self.finds.stop(t)) {
                    Some(true) => ok(),
                    _ => bad_request(),
                }
            }
            ("GET", "face_caps") => json_answer(
                200,
                &json!({"caps": {
                    "MaxFacesPerCall": MAX_PER_CALL, "MaxPhotoSize": self.faces.intelbras_max_photo,
                    "PhotoFormat": ["jpg"], "MinWidth": MIN_WIDTH, "MinHeight": MIN_HEIGHT,
                    "MaxWidth": MAX_WIDTH, "MaxHeight": MAX_HEIGHT,
                }}),
            ),
            ("GET" | "POST", "face_access_other" | "face_manager_other") => not_implemented(),
            _ => bad_request(),
        }
    }

    /// The entries of a `FaceList`; `None` if the body does not hold one.
    fn face_list(body: Option<&Value>) -> Option<Vec<Entry>> {
        let list = body?.get("FaceList")?.as_array()?;
        list.iter()
            .map(|item| {
                Some(Entry {
                    user_id: item.get("UserID")?.as_str()?.to_owned(),
                    photo: photo_data(item.get("PhotoData"))?,
                })
            })
            .collect()
    }

    /// The one entry of a `FaceInfoManager` add or update.
    fn one_face(body: Option<&Value>) -> Option<Vec<Entry>> {
        let body = body?;
        Some(vec![Entry {
            user_id: body.get("UserID")?.as_str()?.to_owned(),
            photo: photo_data(body.get("Info")?.get("PhotoData"))?,
        }])
    }

    /// Writes a batch: all of it, or none with the codes of the refused photos.
    fn write_faces(&mut self, entries: Option<Vec<Entry>>, update: bool) -> Served {
        let Some(entries) = entries else {
            return bad_request();
        };
        if entries.is_empty() || entries.len() > MAX_PER_CALL {
            return bad_request();
        }
        for (i, entry) in entries.iter().enumerate() {
            let repeated = entries[..i].iter().any(|e| e.user_id == entry.user_id);
            if repeated || !self.users.contains_key(&entry.user_id) {
                return bad_request();
            }
        }
        let mut accepted = Vec::with_capacity(entries.len());
        let mut codes = Vec::new();
        for entry in &entries {
            match self.judge(entry, update) {
                Ok(face) => accepted.push((entry.user_id.clone(), face)),
                Err(code) => codes.push(code),
            }
        }
        if !codes.is_empty() {
            for _ in &entries {
                self.face_stats.refused();
            }
            return batch_error(&codes);
        }
        for (user_id, face) in accepted {
            self.face_store.insert(user_id, face);
            self.face_stats.stored();
        }
        ok()
    }

    fn judge(&self, entry: &Entry, update: bool) -> Result<StoredFace, i64> {
        if !update && self.face_store.contains_key(&entry.user_id) {
            return Err(ALREADY_HAS_FACE);
        }
        if entry.photo.len() > self.faces.intelbras_max_photo {
            return Err(TOO_LARGE);
        }
        let photo = Photo::read(&entry.photo).map_err(|_| NO_USABLE_FACE)?;
        if photo.format != PhotoFormat::Jpeg {
            return Err(NO_USABLE_FACE);
        }
        if photo.width > MAX_WIDTH || photo.height > MAX_HEIGHT {
            return Err(TOO_LARGE);
        }
        if photo.width < MIN_WIDTH || photo.height < MIN_HEIGHT || photo.height > 2 * photo.width {
            return Err(NO_USABLE_FACE);
        }
        let identity = photo.face(&entry.user_id).ok_or(NO_USABLE_FACE)?;
        Ok(StoredFace::new(&entry.photo, photo, identity, None))
    }
}
