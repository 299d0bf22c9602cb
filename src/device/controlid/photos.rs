//! Face photos on Control iD (docs/face-api.md, sections 1 and 5): whether the model
//! takes faces, which photo each user holds, sending photos in lists, and removing them.
//!
//! The device keeps the `timestamp` sent with a photo and returns it as
//! `users.image_timestamp` in the user load the plan already does (older firmware
//! lacks that column: then `user_list_images.fcgi?get_timestamp=1`, once per plan
//! chunk). catraca sends the photo's version as that timestamp
//! ([`crate::photo::PhotoVersion::controlid_timestamp`]), so a user whose timestamp
//! equals it holds this very photo and is not sent it again, with or without the
//! cache. Photos go in `user_set_image_list.fcgi` requests of at most
//! [`MAX_LIST_BASE64`] bytes of base64, after the users and their cards exist; the
//! answer is read item by item, so one refused photo fails only its person, with the
//! device's reason. Setting a photo replaces the one held and stores the same bytes
//! and timestamp when repeated, so a request whose answer was lost is simply repeated.

use super::ControlIdDevice;
use crate::device::{DeviceError, Plan};
use crate::person::Person;
use crate::photo::fit::Fitted;
use crate::vendor::Kind;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Base64 bytes per `user_set_image_list` request at most: 1.4 MB, under the 2 MB the
/// vendor documents for the whole request with room for the JSON around it and for the
/// older firmware's web server; about 20 canonical photos of 70 KB.
pub const MAX_LIST_BASE64: usize = 1_400_000;

/// What a user holds as photo: `Some(timestamp)`, or `None` when the device says it
/// has one but not its timestamp (older firmware). Users without a photo are absent.
pub(super) type HeldPhotos = HashMap<i64, Option<i64>>;

/// Whether a model name is a facial terminal: iDFace, iDFace Max, iDBlock Facial,
/// iDFlex (face-api.md, section 1).
fn facial_model(model: &str) -> bool {
    let model = model.to_lowercase();
    model.contains("face") || model.contains("facial") || model.contains("flex")
}

impl ControlIdDevice {
    /// The devices file's `faces`, else the model from `system_information.fcgi`.
    pub(super) fn faces_taken(&self) -> Result<bool, DeviceError> {
        self.faces.takes(|| match self.call_idempotent("system_information", &json!({})) {
            Ok(answer) => {
                let model = answer.get("model").and_then(Value::as_str).unwrap_or("");
                let facial = facial_model(model);
                log::info!(
                    "{}: model {model:?}: {}",
                    self.endpoint.name,
                    if facial {
                        "takes face photos"
                    } else {
                        "takes no face photos (set faces = true in the devices file if it does)"
                    }
                );
                Ok(facial)
            }
            // A firmware without the call: not a model catraca knows to be facial.
            Err(DeviceError::Rejected { status: 404, .. }) => {
                log::info!(
                    "{}: no system_information: taken as without faces (set faces = true in the devices file if it reads faces)",
                    self.endpoint.name
                );
                Ok(false)
            }
            Err(e) => Err(e),
        })
    }

    /// Whether this chunk needs the photos the device holds: it takes faces and someone
    /// in the chunk has a photo.
    pub(super) fn photos_matter(&self, people: &[&Person]) -> Result<bool, DeviceError> {
        if !people.iter().any(|p| p.photo.is_some()) {
            return Ok(false);
        }
        self.faces_taken()
    }

    /// The photos of `user_ids` when the users load did not carry them (older firmware):
    /// `user_list_images.fcgi?get_timestamp=1`, which such firmware answers with
    /// `user_ids` alone (timestamps unknown).
    pub(super) fn listed_photos(&self) -> Result<HeldPhotos, DeviceError> {
        let answer = self.call_query("user_list_images", "get_timestamp=1", &json!({}))?;
        let mut held = HeldPhotos::new();
        if let Some(info) = answer.get("image_info").and_then(Value::as_array) {
            for item in info {
                if let Some(id) = item.get("user_id").and_then(Value::as_i64) {
                    held.insert(id, item.get("timestamp").and_then(Value::as_i64));
                }
            }
        } else if let Some(ids) = answer.get("user_ids").and_then(Value::as_array) {
            held.extend(ids.iter().filter_map(Value::as_i64).map(|id| (id, None)));
        } else {
            return Err(DeviceError::InvalidAnswer(
                "user_list_images: neither image_info nor user_ids".into(),
            ));
        }
        Ok(held)
    }

    /// `plan` with the photo compared: a user holding another photo (or none, or one
    /// whose timestamp the device does not tell) gets the change `photo`.
    pub(super) fn with_photo(plan: Plan, person: &Person, held: Option<&HeldPhotos>) -> Plan {
        let (Some(photo), Some(held)) = (&person.photo, held) else {
            return plan;
        };
        let wanted = photo.version.map(|v| v.controlid_timestamp());
        let same = |id: &i64| wanted.is_some() && held.get(id).copied().flatten() == wanted;
        match plan {
            Plan::Unchanged { id } if !same(&id) => Plan::Update {
                id,
                changes: vec!["photo"],
            },
            Plan::Update { id, mut changes } if !same(&id) => {
                changes.push("photo");
                Plan::Update { id, changes }
            }
            other => other,
        }
    }

    /// Sends the photos of `work` (index in the job, user id, person); one result per
    /// item, in order. Photos are fitted as the request that carries them fills up, so
    /// a job holds one request's photos at a time, not its whole batch's.
    pub(super) fn put_photos(
        &self,
        work: &[(usize, i64, &Person)],
    ) -> Vec<Result<(), DeviceError>> {
        let mut results: Vec<Option<Result<(), DeviceError>>> = vec![None; work.len()];
        let mut batch: Vec<(usize, i64, i64, Arc<Fitted>)> = Vec::new();
        let mut size = 0;
        let flush = |batch: &mut Vec<(usize, i64, i64, Arc<Fitted>)>,
                     results: &mut Vec<Option<Result<(), DeviceError>>>| {
            for ((k, ..), result) in batch.iter().zip(self.send_photo_list(batch)) {
                results[*k] = Some(result);
            }
            batch.clear();
        };
        for (k, (_, user, person)) in work.iter().enumerate() {
            let photo = person
                .photo
                .as_ref()
                .expect("apply sends only people with a photo here");
            let timestamp = photo.version.map(|v| v.controlid_timestamp()).unwrap_or(0);
            let fitted = match self.faces.photo_for(photo, Kind::Controlid) {
                Ok(fitted) => fitted,
                Err(e) => {
                    results[k] = Some(Err(e));
                    continue;
                }
            };
            let encoded = fitted.jpeg.len().div_ceil(3) * 4;
            if !batch.is_empty() && size + encoded > MAX_LIST_BASE64 {
                flush(&mut batch, &mut results);
                size = 0;
            }
            size += encoded;
            batch.push((k, *user, timestamp, fitted));
        }
        if !batch.is_empty() {
            flush(&mut batch, &mut results);
        }
        results
            .into_iter()
            .map(|r| r.expect("every photo gets a result"))
            .collect()
    }

    /// One `user_set_image_list` request; one result per photo, in order.
    fn send_photo_list(
        &self,
        batch: &[(usize, i64, i64, Arc<Fitted>)],
    ) -> Vec<Result<(), DeviceError>> {
        #[derive(Serialize)]
        struct Item {
            user_id: i64,
            timestamp: i64,
            image: String,
        }
        #[derive(Serialize)]
        struct Body {
            #[serde(rename = "match")]
            match_faces: bool,
            user_images: Vec<Item>,
        }
        let body = Body {
            match_faces: self.faces.run.options.match_faces,
            user_images: batch
                .iter()
                .map(|(_, user, timestamp, fitted)| Item {
                    user_id: *user,
                    timestamp: *timestamp,
                    image: base64::engine::general_purpose::STANDARD.encode(&fitted.jpeg),
                })
                .collect(),
        };
        // Repeating a set stores the same photo and timestamp again: safe to retry.
        let answer = match self.call_idempotent("user_set_image_list", &body) {
            Ok(answer) => answer,
            // A whole list refused (some firmware answers a bad photo with 400 rather
            // than a per-item result): halved until the photo it objects to is alone,
            // as batches of users are, so one photo fails only its person.
            Err(DeviceError::Rejected { .. }) if batch.len() > 1 => {
                drop(body);
                let (left, right) = batch.split_at(batch.len() / 2);
                let mut results = self.send_photo_list(left);
                results.extend(self.send_photo_list(right));
                return results;
            }
            Err(DeviceError::Rejected { status, message }) => {
                return vec![Err(self.faces.refuse(format!(
                    "the device refused the photo ({status}): {message}"
                )))]
            }
            Err(e) => return vec![Err(e); batch.len()],
        };
        drop(body);
        let by_user: HashMap<i64, &Value> = answer
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r.get("user_id")?.as_i64()?, r)))
            .collect();
        batch
            .iter()
            .map(|(_, user, _, _)| match by_user.get(user) {
                Some(result) if result.get("success").and_then(Value::as_bool) == Some(true) => {
                    self.faces.count_sent();
                    Ok(())
                }
                Some(result) => Err(self.faces.refuse(self.photo_refusal(result))),
                None => Err(DeviceError::InvalidAnswer(format!(
                    "user_set_image_list: no result for user {user}"
                ))),
            })
            .collect()
    }

    /// Why the device refused a photo, from its `errors[]` (face-api.md, 1.3).
    fn photo_refusal(&self, result: &Value) -> String {
        let error = result
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first());
        let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        let what = match code {
            Some(2) => "no face found in the photo".to_string(),
            Some(3) => {
                let other = [
                    error.and_then(|e| e.pointer("/info/match_user_id")),
                    error.and_then(|e| e.get("match_user_id")),
                    result.get("match_user_id"),
                ]
                .into_iter()
                .flatten()
                .find_map(Value::as_i64);
                match other {
                    Some(id) => format!(
                        "face already enrolled for registration {}",
                        self.registration_of(id)
                    ),
                    None => "face already enrolled for another person".to_string(),
                }
            }
            Some(4) => "face not centered".into(),
            Some(5) => "face too small in the photo (too distant)".into(),
            Some(6) => "face too close".into(),
            Some(7) => "face pose not centered".into(),
            Some(8) => "image too blurry (low sharpness)".into(),
            Some(9) => "face too close to the image borders".into(),
            _ => return format!("{message} (code {})", code.unwrap_or(0)),
        };
        let fix = match code {
            Some(3) => "check that the photo is of this person, or run without --photo-match",
            _ => "send another photo: head and shoulders, one face, sharp, with a margin",
        };
        format!(
            "{what} (Control iD code {}, \"{message}\"): {fix}",
            code.unwrap_or(0)
        )
    }

    /// The registration of user `id`, for messages; `(id N)` when it cannot be read.
    fn registration_of(&self, id: i64) -> String {
        #[derive(serde::Deserialize)]
        struct Row {
            registration: String,
        }
        self.load::<Row, i64>("users", &["id", "registration"], "id", &[id])
            .ok()
            .and_then(|rows| rows.into_iter().next())
            .map(|r| r.registration)
            .unwrap_or_else(|| format!("(id {id})"))
    }

    /// Takes the photos of `user_ids` off the device (before the users: a photo
    /// outlives its user). Never `{"all":true}`; an empty list sends nothing.
    pub(super) fn destroy_photos(&self, user_ids: &[i64]) -> Result<(), DeviceError> {
        for chunk in user_ids
            .chunks(super::MAX_IN_LIST)
            .filter(|c| !c.is_empty())
        {
            self.call_idempotent("user_destroy_image", &json!({ "user_ids": chunk }))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facial_models_are_told_by_name() {
        assert!(facial_model("iDFace"));
        assert!(facial_model("iDFace Max"));
        assert!(facial_model("iDBlock Facial"));
        assert!(facial_model("iDFlex"));
        assert!(!facial_model("iDBlock"));
        assert!(!facial_model("iDAccess"));
    }
}
