//! Face photos on Hikvision MinMoe terminals (docs/face-api.md, sections 2 and 5): the
//! face library, one multipart upload per person, its refusals, and faces removed.
//!
//! Whether the terminal takes faces, and whether it has `FDSetUp`, is read once from
//! `FDLib/capabilities` (`supportFDFunction`; a card model answers 404 `notSupport`).
//! A person's face goes after the person exists, as a multipart body whose JSON part
//! `FaceDataRecord` (`blackFD`, FDID 1, FPID = employeeNo) comes first and the picture
//! part `img` second. `PUT FDSetUp` adds or replaces; without it, `POST
//! FaceDataRecord` adds, and a person who already has a face (`deviceUserAlreadyExistFace`)
//! has it deleted (`FDSearch/Delete`, else `FDDelete`) and added again. Uploads go one
//! at a time per device (modeling a face takes the terminal seconds, and a second
//! upload meanwhile is refused busy), whatever `max_in_flight` allows other calls. A
//! modeling failure is the person's failure with its reason, never retried with the
//! same photo; a full face library stops photos to that device.
//!
//! The terminal gives no version of the face it holds, so what was sent is known from
//! the cache alone: a pair the cache does not vouch for gets its photo again. Deleting
//! a person deletes its face too, so `--prune` and `remove` need no face call.

use super::{classify, HikvisionDevice, Reply};
use crate::device::DeviceError;
use crate::person::Person;
use crate::vendor::Kind;
use serde_json::{json, Value};

const CAPABILITIES: &str = "/ISAPI/Intelligent/FDLib/capabilities?format=json";
const SETUP: &str = "/ISAPI/Intelligent/FDLib/FDSetUp?format=json";
const RECORD: &str = "/ISAPI/Intelligent/FDLib/FaceDataRecord?format=json";

/// The multipart boundary: no JPEG is likely to hold it, and the body is checked.
const BOUNDARY: &str = "catraca-face-7d1f0c2b9e";

/// What the face library's capabilities say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FaceLibrary {
    /// `setUp` is in `supportFDFunction`: `FDSetUp` adds or replaces.
    pub setup: bool,
    /// `FDRecordDataMaxNum`: faces the library holds at most.
    pub capacity: Option<u64>,
}

/// The string (or list) of a capability, whatever its nesting (`@opt`, case).
fn capability_text(capabilities: &Value, name: &str) -> Option<String> {
    let found = find_key(capabilities, name)?;
    Some(match found {
        Value::Object(map) => map
            .get("@opt")
            .map(|v| v.to_string())
            .unwrap_or_else(|| found.to_string()),
        other => other.to_string(),
    })
}

fn find_key<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .or_else(|| map.values().find_map(|v| find_key(v, name))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, name)),
        _ => None,
    }
}

/// The multipart body of one face upload.
fn multipart(employee: &str, jpeg: &[u8]) -> Vec<u8> {
    let record = json!({"faceLibType": "blackFD", "FDID": "1", "FPID": employee}).to_string();
    let mut body = Vec::with_capacity(jpeg.len() + 512);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"FaceDataRecord\"\r\nContent-Type: application/json\r\n\r\n{record}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"img\"; filename=\"face.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(jpeg);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl HikvisionDevice {
    /// The face library's capabilities; `None` on a terminal without faces.
    pub(super) fn face_library(&self) -> Result<Option<FaceLibrary>, DeviceError> {
        if let Some(known) = self.face_library.get() {
            return Ok(*known);
        }
        let found = match self
            .client
            .send_idempotent("GET", CAPABILITIES, None, classify)?
        {
            Reply::Ok(capabilities) => Some(FaceLibrary {
                setup: capability_text(&capabilities, "supportFDFunction")
                    .is_some_and(|f| f.contains("setUp")),
                capacity: find_key(&capabilities, "FDRecordDataMaxNum").and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.get("@max").and_then(Value::as_u64))
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                }),
            }),
            Reply::Refused { status: 404, .. } => None,
            Reply::Refused { sub, .. } if sub.eq_ignore_ascii_case("notSupport") => None,
            Reply::Refused {
                status, message, ..
            } => return Err(DeviceError::Rejected { status, message }),
        };
        Ok(*self.face_library.get_or_init(|| found))
    }

    /// Uploads `person`'s photo; the reason when it cannot be stored.
    pub(super) fn put_face(&self, person: &Person) -> Result<(), DeviceError> {
        let Some(photo) = &person.photo else {
            return Ok(());
        };
        if let Some(full) = self.faces_full.get() {
            return Err(self.faces.refuse(full.clone()));
        }
        let library = self.face_library()?.ok_or_else(|| {
            DeviceError::Internal("a photo was planned on a terminal without faces".into())
        })?;
        let fitted = self.faces.photo_for(photo, Kind::Hikvision)?;
        let body = multipart(&person.registration, &fitted.jpeg);
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let upload = |method: &str, target: &str| {
            let _one_at_a_time = self.uploading.lock().unwrap_or_else(|e| e.into_inner());
            self.client.send_idempotent(
                method,
                target,
                Some((content_type.as_str(), body.as_slice())),
                classify,
            )
        };
        let mut answer = if library.setup {
            upload("PUT", SETUP)?
        } else {
            upload("POST", RECORD)?
        };
        if let Reply::Refused { sub, .. } = &answer {
            if !library.setup && sub.eq_ignore_ascii_case("deviceUserAlreadyExistFace") {
                // No FDSetUp: the only way to change a face is to delete it first.
                self.delete_face(&person.registration)?;
                answer = upload("POST", RECORD)?;
            }
        }
        match answer {
            Reply::Ok(_) => {
                self.faces.count_sent();
                Ok(())
            }
            Reply::Refused { sub, message, .. } => {
                let lower = sub.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "exceedmaxfacenumber" | "devicememorylimited"
                ) {
                    let full = format!(
                        "the face library is full ({message}){}: remove faces from it",
                        library
                            .capacity
                            .map(|c| format!(", {c} faces"))
                            .unwrap_or_default()
                    );
                    log::warn!(
                        "{}: {full}; no more photos are sent to it",
                        self.endpoint.name
                    );
                    let _ = self.faces_full.set(full.clone());
                    return Err(self.faces.refuse(full));
                }
                if lower == "badjsonformat" && message.contains("faceURL") {
                    // What a photo over 200 KB gets (face-api.md, 2.3).
                    return Err(self.faces.refuse(format!(
                        "photo too large for the terminal (over 200 KB; {message}): let catraca fit it (no --photo-fit none)"
                    )));
                }
                Err(self.faces.refuse(message))
            }
        }
    }

    /// Deletes the face of `employee`: `FDSearch/Delete`, else (refused, as on a
    /// DS-K1T341AMF) `FDDelete`, whose statusCode 4 means there was none.
    pub(super) fn delete_face(&self, employee: &str) -> Result<(), DeviceError> {
        let body = json!({"FPID": [{"value": employee}]}).to_string();
        let target =
            "/ISAPI/Intelligent/FDLib/FDSearch/Delete?format=json&FDID=1&faceLibType=blackFD";
        let first = self.client.send_idempotent(
            "PUT",
            target,
            Some(("application/json", body.as_bytes())),
            classify,
        )?;
        if let Reply::Ok(_) = first {
            return Ok(());
        }
        let body = json!({"faceLibType": "blackFD", "FDID": "1", "FPID": employee}).to_string();
        let raw = self.client.send(
            "PUT",
            "/ISAPI/Intelligent/FDLib/FDDelete?format=json",
            Some(("application/json", body.as_bytes())),
        )?;
        let code = serde_json::from_slice::<Value>(&raw.body)
            .ok()
            .and_then(|v| v.get("statusCode").and_then(Value::as_i64));
        match classify(raw)? {
            Reply::Ok(_) => Ok(()),
            _ if code == Some(4) => Ok(()),
            refused => refused.into_value().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_found_whatever_their_nesting_and_case() {
        let nested = json!({"FDLibCap": {"supportFDFunction": {"@opt": "post,delete,put,get,setUp"}, "FDRecordDataMaxNum": 3000}});
        assert!(capability_text(&nested, "supportfdfunction")
            .unwrap()
            .contains("setUp"));
        assert_eq!(find_key(&nested, "FDRecordDataMaxNum"), Some(&json!(3000)));
    }

    #[test]
    fn the_json_part_comes_first_and_the_picture_second() {
        let body = multipart("A-1", b"\xFF\xD8jpeg\xFF\xD9");
        let text = String::from_utf8_lossy(&body);
        let record = text.find("name=\"FaceDataRecord\"").unwrap();
        let img = text.find("name=\"img\"").unwrap();
        assert!(record < img);
        assert!(text.contains("\"FPID\":\"A-1\""));
        assert!(text.ends_with(&format!("--{BOUNDARY}--\r\n")));
    }
}
