//! Face photos on Intelbras and Dahua (docs/face-api.md, sections 3 and 5): sending
//! them ten at a time, reading a refused batch, and removing them.
//!
//! Users exist first (inserted with their cards by the rest of the driver); photos go
//! in `AccessFace.cgi?action=insertMulti` (new faces) or `updateMulti` (changed ones),
//! at most [`super::MAX_PER_CALL`] base64 JPEGs a request. The device answers `OK`
//! for the whole batch or one `Batch Process Error` whose `FailCodes` cannot be tied
//! to a `UserID`: a refused batch is split in halves, like a refused batch of users,
//! until each refusal is alone and its `FailCode` is that person's reason. A photo
//! the device already holds for the user (286064926 on insert) is sent again as an
//! update, and an update refused for a reason other than the photo's is tried once as
//! an insert. Firmware without `AccessFace.cgi` (`501 Not Implemented`) gets
//! `FaceInfoManager.cgi?action=add|update`, one person a request, from then on.
//!
//! The device gives no version of the face it holds, so what was sent is known from
//! the cache alone: a pair whose fingerprint (photo version included) the cache holds
//! is skipped; a pair planned for any reason (new, changed, `--skip-cache`) gets its
//! photo sent again. Removing a person removes their face first
//! (`FaceInfoManager.cgi?action=remove`, which answers OK when there is none).

use super::{classify, error_text, IntelbrasDevice, Reply, MAX_PER_CALL};
use crate::device::http::Answer;
use crate::device::DeviceError;
use crate::person::Person;
use crate::vendor::Kind;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

const ACCESS_FACE: &str = "/cgi-bin/AccessFace.cgi";
const FACE_INFO: &str = "/cgi-bin/FaceInfoManager.cgi";

/// How a batch of photos ended.
enum Sent {
    Ok,
    /// `Batch Process Error` (or a plain Bad Request): the device's `FailCodes`, if any.
    Refused(Vec<i64>, String),
    /// The firmware lacks the call (501).
    Missing,
}

/// The reason of a refused photo from its `FailCode` (face-api.md, 3.3).
fn fail_code_reason(code: i64) -> String {
    match code {
        288_686_087 => "no usable face found in the photo (Intelbras FailCode 288686087): send a sharp head-and-shoulders photo with one face".into(),
        286_064_923 => "photo too large for the device (Intelbras FailCode 286064923)".into(),
        286_064_922 => "image too blurry (Intelbras FailCode 286064922): send a sharper photo".into(),
        286_064_926 => "the user already has a face (Intelbras FailCode 286064926)".into(),
        other => format!("refused by the device (Intelbras FailCode {other})"),
    }
}

/// Whether `code` is a verdict on the photo itself (retrying another way cannot help).
fn is_photo_verdict(code: i64) -> bool {
    matches!(code, 288_686_087 | 286_064_923 | 286_064_922)
}

impl IntelbrasDevice {
    /// Whether the device takes faces, when the devices file does not say:
    /// `FaceInfoManager.cgi?action=getCaps`, which facial firmware answers (with or
    /// without `AccessFace.cgi`) and card-only firmware refuses `501 Not Implemented`.
    /// face-api.md documents no capability call: this is the Dahua-style one.
    pub(super) fn ask_faces(&self) -> Result<bool, DeviceError> {
        let target = format!("{FACE_INFO}?action=getCaps");
        match self.client.send_idempotent("GET", &target, None, classify) {
            Ok(Reply::Ok(_)) => Ok(true),
            Ok(Reply::BadRequest) => Ok(false),
            Err(DeviceError::Rejected {
                status: 404 | 501, ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends the photos of `work` (person, whether the user may already have a face);
    /// one result per person, in order.
    pub(super) fn put_photos(&self, work: &[(&Person, bool)]) -> Vec<Result<(), DeviceError>> {
        let mut results: Vec<Option<Result<(), DeviceError>>> = vec![None; work.len()];
        let mut ready: Vec<(usize, String, bool)> = Vec::new();
        for (k, (person, update)) in work.iter().enumerate() {
            let Some(photo) = &person.photo else {
                results[k] = Some(Ok(()));
                continue;
            };
            match self.faces.photo_for(photo, Kind::Intelbras) {
                Ok(fitted) => ready.push((
                    k,
                    base64::engine::general_purpose::STANDARD.encode(&fitted.jpeg),
                    *update,
                )),
                Err(e) => results[k] = Some(Err(e)),
            }
        }
        for update in [false, true] {
            let group: Vec<&(usize, String, bool)> =
                ready.iter().filter(|(_, _, u)| *u == update).collect();
            for chunk in group.chunks(MAX_PER_CALL) {
                let items: Vec<(&Person, &str)> = chunk
                    .iter()
                    .map(|(k, data, _)| (work[*k].0, data.as_str()))
                    .collect();
                for ((k, ..), result) in chunk.iter().zip(self.send_faces(&items, update)) {
                    results[*k] = Some(result);
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every photo gets a result"))
            .collect()
    }

    /// One group of photos, split while refused; one result per photo.
    fn send_faces(&self, items: &[(&Person, &str)], update: bool) -> Vec<Result<(), DeviceError>> {
        if self.access_face_missing.load(Ordering::Relaxed) {
            return items
                .iter()
                .map(|item| self.send_face_info(item, update))
                .collect();
        }
        match self.face_batch(items, update) {
            Err(e) => vec![Err(e); items.len()],
            Ok(Sent::Ok) => {
                for _ in items {
                    self.faces.count_sent();
                }
                vec![Ok(()); items.len()]
            }
            Ok(Sent::Missing) => {
                log::info!(
                    "{}: no AccessFace.cgi on this firmware: photos go through FaceInfoManager.cgi, one a request",
                    self.endpoint.name
                );
                self.access_face_missing.store(true, Ordering::Relaxed);
                self.send_faces(items, update)
            }
            Ok(Sent::Refused(..)) if items.len() > 1 => {
                let (left, right) = items.split_at(items.len() / 2);
                let mut out = self.send_faces(left, update);
                out.extend(self.send_faces(right, update));
                out
            }
            Ok(Sent::Refused(codes, text)) => {
                let code = codes.first().copied();
                match code {
                    Some(286_064_926) if !update => self.send_faces(items, true),
                    Some(c) if update && !is_photo_verdict(c) => {
                        // No face to update: add it.
                        match self.face_batch(items, false) {
                            Ok(Sent::Ok) => {
                                self.faces.count_sent();
                                vec![Ok(())]
                            }
                            Ok(Sent::Refused(codes, _)) => vec![Err(self.refusal(&codes, &text))],
                            Ok(Sent::Missing) => vec![self.send_face_info(&items[0], true)],
                            Err(e) => vec![Err(e)],
                        }
                    }
                    _ => vec![Err(self.refusal(&codes, &text))],
                }
            }
        }
    }

    fn refusal(&self, codes: &[i64], text: &str) -> DeviceError {
        self.faces.refuse(match codes.first() {
            Some(&code) => fail_code_reason(code),
            None => format!("refused by the device ({text})"),
        })
    }

    /// `AccessFace.cgi?action=insertMulti|updateMulti` with these photos.
    fn face_batch(&self, items: &[(&Person, &str)], update: bool) -> Result<Sent, DeviceError> {
        let list: Vec<Value> = items
            .iter()
            .map(|(person, data)| json!({"UserID": person.registration, "PhotoData": [data]}))
            .collect();
        let action = if update { "updateMulti" } else { "insertMulti" };
        let body = json!({ "FaceList": list }).to_string();
        self.send_photo_request(&format!("{ACCESS_FACE}?action={action}"), &body)
    }

    /// `FaceInfoManager.cgi?action=add|update` with one photo (older firmware).
    fn send_face_info(
        &self,
        (person, data): &(&Person, &str),
        update: bool,
    ) -> Result<(), DeviceError> {
        let body = |action_update: bool| {
            (
                format!(
                    "{FACE_INFO}?action={}",
                    if action_update { "update" } else { "add" }
                ),
                json!({"UserID": person.registration, "Info": {"UserName": person.name, "PhotoData": [data]}})
                    .to_string(),
            )
        };
        let mut tried_other = false;
        let mut as_update = update;
        loop {
            let (target, text) = body(as_update);
            match self.send_photo_request(&target, &text)? {
                Sent::Ok => {
                    self.faces.count_sent();
                    return Ok(());
                }
                Sent::Refused(codes, _) if !tried_other && !codes.first().is_some_and(|&c| is_photo_verdict(c)) => {
                    tried_other = true;
                    as_update = !as_update;
                }
                Sent::Refused(codes, text) => return Err(self.refusal(&codes, &text)),
                Sent::Missing => {
                    return Err(self.faces.refuse(
                        "this device does not take photos over the network (FaceInfoManager.cgi not implemented): set faces = false in the devices file".into(),
                    ))
                }
            }
        }
    }

    /// POSTs a photo request, retrying what may be retried (a photo sent twice is
    /// stored once: a second insert is refused 286064926 and becomes an update).
    fn send_photo_request(&self, target: &str, body: &str) -> Result<Sent, DeviceError> {
        let mut attempt = 0;
        loop {
            let answer =
                self.client
                    .send("POST", target, Some(("application/json", body.as_bytes())));
            match answer.and_then(read_photo_answer) {
                Err(e) if self.client.may_retry(&e, attempt) => {
                    self.client.pause(attempt, &e);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Takes the faces of `users` off the device (idempotent: OK when there is none).
    pub(super) fn remove_faces(&self, users: &[&str]) -> Result<(), DeviceError> {
        for user in users {
            let target = format!(
                "{FACE_INFO}?action=remove&UserID={}",
                crate::device::http::percent_encode(user)
            );
            match self.get(&target)? {
                Reply::Ok(_) => {}
                Reply::BadRequest => {
                    return Err(DeviceError::Rejected {
                        status: 400,
                        message: format!("Bad Request removing the face of UserID {user}"),
                    })
                }
            }
        }
        Ok(())
    }
}

/// A photo request's answer: `OK`, a refusal with its `FailCodes`, or a missing call.
fn read_photo_answer(answer: Answer) -> Result<Sent, DeviceError> {
    if answer.status == 501 {
        return Ok(Sent::Missing);
    }
    if answer.status == 400 {
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let codes: Vec<i64> = parsed
            .pointer("/detail/FailCodes")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let text = parsed
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error_text(&answer.body));
        return Ok(Sent::Refused(codes, text));
    }
    match classify(answer)? {
        Reply::Ok(body) if error_text(&body) == "OK" => Ok(Sent::Ok),
        Reply::Ok(body) => Err(DeviceError::InvalidAnswer(format!(
            "photo upload: expected OK, got {:?}",
            error_text(&body)
        ))),
        Reply::BadRequest => Ok(Sent::Refused(Vec::new(), "Bad Request".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_codes_say_what_is_wrong_with_the_photo() {
        assert!(fail_code_reason(288_686_087).contains("no usable face"));
        assert!(fail_code_reason(286_064_923).contains("too large"));
        assert!(fail_code_reason(1).contains("FailCode 1"));
        assert!(is_photo_verdict(288_686_087) && !is_photo_verdict(286_064_926));
    }
}
