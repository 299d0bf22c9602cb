//! Hikvision ISAPI face library on a simulated MinMoe terminal (docs/face-api.md,
//! section 2): FDID `1` / `blackFD`, a face's FPID = the person's `employeeNo`.
//!
//! `GET FDLib` lists the library (and an `infraredFD` FDID 2 on the DS-K1T342MFWX-E1
//! variant); `GET FDLib/capabilities` reports
//! `supportFDFunction` (with `setUp` unless the firmware lacks `FDSetUp`),
//! `FDRecordDataMaxNum` (the face capacity) and `facePicFormat`. Uploads are
//! multipart, the JSON part named `FaceDataRecord` first (no filename), then the
//! picture part named `img`; anything else is refused `badParameters`.
//! `PUT FDSetUp` adds or replaces (a refused photo keeps the old face); `POST
//! FaceDataRecord` only adds (`deviceUserAlreadyExistFace`). Each photo is judged in
//! this order: the person exists (`employeeNoNotExist`), at most 200 KB (bigger:
//! `badJsonFormat` on `faceURL`, as the field saw it), readable, long side at least
//! 400 px, a JPEG baseline 4:2:0 (progressive or other subsampling cannot be
//! modeled), a face found (`face.rs`); all these modeling failures are
//! `SubpicAnalysisModelingError`; then the library's room (`exceedMaxFaceNumber`).
//! The JSON-only forms are refused: `faceURL` with `urlDownloadFail` (no terminal
//! can reach the test's URLs), base64 `faceData` with `badJsonContent` (H7).
//! `FDSearch` answers by FPID (`totalMatches`, `NO MATCH`); `FDSearch/Delete` removes
//! by a list of FPIDs (statusCode 6 `Invalid Content` on a DS-K1T341AMF-like
//! firmware), `FDDelete` by one FPID (statusCode 4 when there is no such face).
//! `faceURL` names a picture on a loopback host nothing serves (the device's own idea
//! of its address); its path is served here, with Digest, an HTML 404 once gone.
//! Deleting a person removes its face (`hikvision.rs`). One upload at a time is
//! enforced by `lib.rs` (a second one meanwhile is `Device Busy`). A card model
//! answers every FDLib call 404 `notSupport`. NB: the `image` crate's JPEG encoder
//! writes 4:4:4, refused here as on the device: encode with `jpeg-encoder` at 4:2:0.

use serde_json::{json, Map, Value};

use super::face::{Photo, PhotoFormat, StoredFace, Subsampling};
use super::hikvision::{HikvisionApi, Served};
use super::http::{Request, Response};

/// The largest photo a terminal takes (H1, H2).
pub(crate) const MAX_PHOTO: usize = 200 * 1024;
/// The shortest long side a face is modeled on (H2).
pub(crate) const MIN_LONG_SIDE: u32 = 400;

/// The statistics name of an FDLib call, if `path` is one.
pub(crate) fn route_name(path: &str) -> Option<&'static str> {
    if path.starts_with(PICTURES) {
        return Some("face_picture");
    }
    Some(match path {
        "/ISAPI/Intelligent/FDLib" => "fdlib",
        "/ISAPI/Intelligent/FDLib/capabilities" => "fdlib_capabilities",
        "/ISAPI/Intelligent/FDLib/FDSetUp" => "face_setup",
        "/ISAPI/Intelligent/FDLib/FaceDataRecord" => "face_record",
        "/ISAPI/Intelligent/FDLib/FDSearch" => "face_search",
        "/ISAPI/Intelligent/FDLib/FDSearch/Delete" => "face_search_delete",
        "/ISAPI/Intelligent/FDLib/FDDelete" => "face_delete",
        _ => return None,
    })
}

/// Where face pictures are served, as `faceURL` names them.
const PICTURES: &str = "/LOCALS/pic/enrlFace/0/";

/// The path of picture `n`, with the suffix terminals append.
fn picture_path(n: u64) -> String {
    format!("{PICTURES}{n:010}.jpg@WEB{n:012}")
}

/// Whether a route name is an upload (one at a time per device).
pub(crate) fn is_upload(name: &str) -> bool {
    matches!(name, "face_setup" | "face_record")
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

fn not_supported() -> Served {
    status(404, 4, "Invalid Operation", "notSupport", "no such URL")
}

fn modeling_error(message: &str) -> Served {
    invalid("SubpicAnalysisModelingError", message)
}

fn data(body: Value) -> Served {
    Served {
        response: Response::json(200, body.to_string().into_bytes()),
        created: None,
    }
}

/// One part of a multipart body.
struct Part<'a> {
    name: Option<String>,
    filename: Option<String>,
    data: &'a [u8],
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(content_type: Option<&str>) -> Option<String> {
    let content_type = content_type?;
    let (kind, parameters) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parameters.split(';').find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The parts of a multipart body, in order; `None` if it is not well formed.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let mut rest = body.strip_prefix(opening.as_bytes())?;
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Some(out);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let content = &rest[head_end + 4..];
        let end = find(content, delimiter.as_bytes())?;
        let (mut name, mut filename) = (None, None);
        for line in head.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if !header.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for parameter in value.split(';').skip(1) {
                let Some((key, value)) = parameter.split_once('=') else {
                    continue;
                };
                let value = Some(value.trim().trim_matches('"').to_owned());
                match key.trim() {
                    "name" => name = value,
                    "filename" => filename = value,
                    _ => {}
                }
            }
        }
        out.push(Part {
            name,
            filename,
            data: &content[..end],
        });
        rest = &content[end + delimiter.len()..];
    }
}

/// The JSON-only upload forms, refused as a terminal refused them (H7): a `faceURL`
/// it cannot download (`urlDownloadFail`), a base64 `faceData` (`badJsonContent`).
fn json_form(request: &Request<'_>) -> Option<Served> {
    let json = request
        .content_type
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    if !json {
        return None;
    }
    let body: Value = serde_json::from_slice(request.body).ok()?;
    if body.get("faceURL").is_some() {
        return Some(invalid(
            "urlDownloadFail",
            "the picture at faceURL could not be downloaded",
        ));
    }
    if body.get("faceData").is_some() {
        return Some(invalid("badJsonContent", "faceData"));
    }
    None
}

/// `faceLibType` and `FDID` name the access library, or the refusal.
fn check_library(lib_type: Option<&str>, fdid: Option<&str>) -> Result<(), Served> {
    match (lib_type, fdid) {
        (Some("blackFD"), Some("1")) => Ok(()),
        _ => Err(invalid(
            "faceLibNotExist",
            "the face library is faceLibType blackFD, FDID 1",
        )),
    }
}

impl HikvisionApi {
    /// Answers one FDLib call (`name` from [`route_name`]).
    pub(crate) fn face_call(&mut self, name: &'static str, request: &Request<'_>) -> Served {
        self.face_stats.calls += 1;
        if !self.faces.enabled {
            return not_supported();
        }
        let method = request.method;
        match (method, name) {
            ("GET", "fdlib") => {
                let mut libraries = Vec::new();
                if self.faces.hikvision_infrared_library {
                    libraries.push(json!({"FDID": "2", "faceLibType": "infraredFD", "name": "", "customInfo": ""}));
                }
                libraries.push(
                    json!({"FDID": "1", "faceLibType": "blackFD", "name": "", "customInfo": ""}),
                );
                data(json!({
                    "statusCode": 1, "statusString": "OK", "subStatusCode": "ok",
                    "FDLib": libraries,
                }))
            }
            ("GET", "fdlib_capabilities") => {
                let functions = if self.faces.hikvision_setup {
                    "post,delete,put,get,setUp"
                } else {
                    "post,delete,put,get"
                };
                data(json!({
                    "FDRecordDataMaxNum": self.faces.capacity,
                    "supportFDFunction": {"@opt": functions},
                    "facePicFormat": {"@opt": ["jpg", "png"]},
                    "faceURLLen": {"@max": 1024},
                    "FDNameMaxLen": {"@max": 64},
                    "FPIDMaxLen": {"@max": 63},
                }))
            }
            (_, "face_setup") if !self.faces.hikvision_setup => not_supported(),
            ("PUT", "face_setup") => self.upload(request, true),
            ("POST", "face_record") => self.upload(request, false),
            ("POST", "face_search") => self.search_faces(request.body),
            ("PUT", "face_search_delete") => self.search_delete(request),
            ("PUT", "face_delete") => self.delete_face(request.body),
            ("GET", "face_picture") => self.picture(request.path),
            _ => status(
                405,
                4,
                "Invalid Operation",
                "methodNotAllowed",
                "wrong method",
            ),
        }
    }

    /// `FDSetUp` (`replace`) or `FaceDataRecord`: one person's face.
    fn upload(&mut self, request: &Request<'_>, replace: bool) -> Served {
        if let Some(refused) = json_form(request) {
            return refused;
        }
        let Some(boundary) = boundary(request.content_type) else {
            return invalid("badParameters", "the body must be multipart/form-data");
        };
        let parts = match parts(request.body, &boundary) {
            Some(parts) => parts,
            None => return invalid("badParameters", "the multipart body is malformed"),
        };
        let [record, image] = parts.as_slice() else {
            return invalid("badParameters", "two parts: FaceDataRecord, then img");
        };
        if record.name.as_deref() != Some("FaceDataRecord")
            || record.filename.is_some()
            || image.name.as_deref() != Some("img")
        {
            return invalid(
                "badParameters",
                "the JSON part FaceDataRecord (no filename) comes first, then the img part",
            );
        }
        let Ok(record) = serde_json::from_slice::<Value>(record.data) else {
            return status(
                400,
                5,
                "Invalid Format",
                "badJsonFormat",
                "FaceDataRecord is not JSON",
            );
        };
        let text = |key: &str| record.get(key).and_then(Value::as_str);
        if let Err(refused) = check_library(text("faceLibType"), text("FDID")) {
            return refused;
        }
        let Some(fpid) = text("FPID").filter(|f| !f.is_empty()).map(str::to_owned) else {
            return invalid("messageParametersLack", "FPID is missing");
        };
        let verdict = self.judge(&fpid, image.data, replace);
        match verdict {
            Ok(stored) => {
                self.store_face(fpid, stored);
                self.face_stats.stored();
                ok()
            }
            Err(refused) => {
                self.face_stats.refused();
                refused
            }
        }
    }

    /// Stores a face under a new picture file.
    pub(crate) fn store_face(&mut self, fpid: String, face: StoredFace) {
        self.last_picture += 1;
        self.face_pictures.insert(fpid.clone(), self.last_picture);
        self.face_store.insert(fpid, face);
    }

    fn judge(&self, fpid: &str, bytes: &[u8], replace: bool) -> Result<StoredFace, Served> {
        if !self.users.contains_key(fpid) {
            return Err(invalid(
                "employeeNoNotExist",
                "the face's person does not exist",
            ));
        }
        let had_face = self.face_store.contains_key(fpid);
        if had_face && !replace {
            return Err(invalid(
                "deviceUserAlreadyExistFace",
                "the person already has a face",
            ));
        }
        if bytes.len() > MAX_PHOTO {
            return Err(invalid("badJsonFormat", "faceURL"));
        }
        let photo = Photo::read(bytes).map_err(|e| modeling_error(&e.to_string()))?;
        if photo.width.max(photo.height) < MIN_LONG_SIDE {
            return Err(modeling_error("PicFeaturePoints"));
        }
        if photo.format == PhotoFormat::Jpeg
            && (photo.progressive || photo.subsampling != Subsampling::S420)
        {
            return Err(modeling_error("PicFeaturePoints"));
        }
        let identity = photo
            .face(fpid)
            .ok_or_else(|| modeling_error("no face could be modeled"))?;
        if !had_face && self.face_store.len() >= self.faces.capacity {
            return Err(invalid("exceedMaxFaceNumber", "the face library is full"));
        }
        Ok(StoredFace::new(bytes, photo, identity, None))
    }

    fn search_faces(&self, body: &[u8]) -> Served {
        let Ok(cond) = serde_json::from_slice::<Value>(body) else {
            return status(
                400,
                5,
                "Invalid Format",
                "badJsonFormat",
                "the body is not JSON",
            );
        };
        let text = |key: &str| cond.get(key).and_then(Value::as_str);
        if let Err(refused) = check_library(text("faceLibType"), text("FDID")) {
            return refused;
        }
        let wanted = text("FPID");
        let rows: Vec<Value> = self
            .face_store
            .keys()
            .filter(|fpid| wanted.is_none_or(|w| w == fpid.as_str()))
            .map(|fpid| {
                // A loopback host nothing listens on: the device's own idea of its
                // address, which a client must not use (face-api.md 2.5).
                let n = self.face_pictures.get(fpid).copied().unwrap_or_default();
                let url = format!("http://127.0.0.2{}", picture_path(n));
                json!({"FPID": fpid, "faceURL": url})
            })
            .collect();
        let position = cond
            .get("searchResultPosition")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let max = cond
            .get("maxResults")
            .and_then(Value::as_u64)
            .map_or(super::hikvision::MAX_RESULTS, |m| {
                (m as usize).clamp(1, super::hikvision::MAX_RESULTS)
            });
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
        answer.insert("statusCode".into(), 1.into());
        answer.insert("statusString".into(), "OK".into());
        answer.insert("subStatusCode".into(), "ok".into());
        answer.insert("responseStatusStrg".into(), state.into());
        answer.insert("numOfMatches".into(), page.len().into());
        answer.insert("totalMatches".into(), total.into());
        if !page.is_empty() {
            answer.insert("MatchList".into(), page.into());
        }
        data(Value::Object(answer))
    }

    fn search_delete(&mut self, request: &Request<'_>) -> Served {
        if !self.faces.hikvision_search_delete {
            return invalid("badParameters", "Invalid Content");
        }
        let (lib_type, fdid) = (
            request.query_param("faceLibType"),
            request.query_param("FDID"),
        );
        if let Err(refused) = check_library(lib_type.as_deref(), fdid.as_deref()) {
            return refused;
        }
        let Ok(body) = serde_json::from_slice::<Value>(request.body) else {
            return status(
                400,
                5,
                "Invalid Format",
                "badJsonFormat",
                "the body is not JSON",
            );
        };
        let Some(list) = body.get("FPID").and_then(Value::as_array) else {
            return invalid(
                "messageParametersLack",
                "FPID must be a list of {\"value\": FPID}",
            );
        };
        for fpid in list
            .iter()
            .filter_map(|item| item.get("value").and_then(Value::as_str))
        {
            self.face_store.remove(fpid);
        }
        ok()
    }

    /// A face picture by the path of its `faceURL` (the `@WEB` suffix optional); an
    /// HTML 404 when there is none (H10).
    fn picture(&self, path: &str) -> Served {
        let name = path.strip_prefix(PICTURES).unwrap_or_default();
        let number = name
            .split(['.', '@'])
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let face = number.and_then(|n| {
            let fpid = self.face_pictures.iter().find(|(_, p)| **p == n)?.0;
            self.face_store.get(fpid)
        });
        let Some(face) = face else {
            return Served {
                response: super::http::error_response(404),
                created: None,
            };
        };
        Served {
            response: Response {
                status: 200,
                content_type: match face.photo.format {
                    PhotoFormat::Jpeg => "image/jpeg",
                    PhotoFormat::Png => "image/png",
                },
                body: face.bytes.clone(),
                challenges: Vec::new(),
            },
            created: None,
        }
    }

    fn delete_face(&mut self, body: &[u8]) -> Served {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return status(
                400,
                5,
                "Invalid Format",
                "badJsonFormat",
                "the body is not JSON",
            );
        };
        let text = |key: &str| body.get(key).and_then(Value::as_str);
        if let Err(refused) = check_library(text("faceLibType"), text("FDID")) {
            return refused;
        }
        let Some(fpid) = text("FPID") else {
            return invalid("messageParametersLack", "FPID is missing");
        };
        match self.face_store.remove(fpid) {
            Some(_) => ok(),
            None => status(
                400,
                4,
                "Invalid Operation",
                "invalidOperation",
                "no such face",
            ),
        }
    }
}
