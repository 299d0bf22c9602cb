//! Face photos on the simulated devices, driven as a driver would: real HTTP over
//! loopback, real JPEGs from [`TestPhoto`], one behaviour per test on its own device.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::face::{Photo, Subsampling};
use super::test_photo::TestPhoto;
use super::*;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A portrait photo that every family accepts, of person `seed`.
fn good(seed: u64) -> Vec<u8> {
    TestPhoto::new(480, 640).seed(seed).build()
}

// ---------------------------------------------------------------- the generator

#[test]
fn a_test_photo_is_a_baseline_420_jpeg_of_its_size_with_a_face() {
    let bytes = good(1);
    let photo = Photo::read(&bytes).unwrap();
    assert_eq!((photo.width, photo.height), (480, 640));
    assert_eq!(photo.format, PhotoFormat::Jpeg);
    assert!(!photo.progressive);
    assert_eq!(photo.subsampling, Subsampling::S420);
    assert!(photo.comments.is_empty() && photo.orientation.is_none());
    assert_eq!(photo.face("1001").as_deref(), Some("1001"));
    assert!(bytes.len() < 70 * 1024, "{} bytes", bytes.len());
    assert_ne!(bytes, good(2), "two seeds, two photos");
    assert_eq!(bytes, good(1), "one seed, the same bytes");
}

#[test]
fn comments_and_orientation_are_really_in_the_bytes() {
    let bytes = TestPhoto::new(300, 400)
        .no_face()
        .same_as("77")
        .exif_orientation(6)
        .build();
    // COM right after SOI, with its length.
    let comment = b"catraca-sim: no-face";
    assert_eq!(&bytes[..4], &[0xFF, 0xD8, 0xFF, 0xFE]);
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[4], bytes[5]])),
        comment.len() + 2
    );
    assert_eq!(&bytes[6..6 + comment.len()], comment);
    let exif = bytes
        .windows(6)
        .position(|w| w == b"Exif\0\0")
        .expect("an Exif APP1");
    assert_eq!(&bytes[exif - 4..exif - 2], &[0xFF, 0xE1]);
    let photo = Photo::read(&bytes).unwrap();
    assert_eq!(
        photo.comments,
        ["catraca-sim: no-face", "catraca-sim: same-as 77"]
    );
    assert_eq!(photo.orientation, Some(6));
    assert_eq!(photo.face("1"), None);
    let same = Photo::read(&TestPhoto::new(300, 400).same_as("77").build()).unwrap();
    assert_eq!(same.face("1").as_deref(), Some("77"));
}

#[test]
fn encodings_png_and_flat_grey_are_what_they_say() {
    let progressive = Photo::read(&TestPhoto::new(320, 400).progressive().build()).unwrap();
    assert!(progressive.progressive);
    let full = Photo::read(&TestPhoto::new(320, 400).subsampling_444().build()).unwrap();
    assert_eq!(full.subsampling, Subsampling::S444);
    let half = Photo::read(&TestPhoto::new(320, 400).subsampling_422().build()).unwrap();
    assert_eq!(half.subsampling, Subsampling::S422);
    let png = TestPhoto::new(200, 300).png().build();
    assert!(png.starts_with(b"\x89PNG"));
    let png = Photo::read(&png).unwrap();
    assert_eq!(
        (png.format, png.width, png.height),
        (PhotoFormat::Png, 200, 300)
    );
    let grey = Photo::read(&TestPhoto::flat_grey(480, 640)).unwrap();
    assert!(grey.uniform);
    assert_eq!(grey.face("1"), None, "a flat grey picture has no face");
    assert!(!Photo::read(&good(3)).unwrap().uniform);
}

#[test]
fn a_phone_photo_is_big_rotated_and_faceless_as_sent() {
    let bytes = TestPhoto::phone_photo(5);
    assert!(
        (3_000_000..4_194_304).contains(&bytes.len()),
        "{} bytes",
        bytes.len()
    );
    let photo = Photo::read(&bytes).unwrap();
    assert_eq!(
        (photo.width, photo.height, photo.orientation),
        (4032, 3024, Some(6))
    );
    assert_eq!(photo.face("1"), None, "a sideways face is not modeled");
}

#[test]
fn what_is_not_a_picture_is_unreadable() {
    assert!(Photo::read(b"hello").is_err());
    let mut cut = good(1);
    cut.truncate(40);
    assert!(Photo::read(&cut).is_err());
}

// ---------------------------------------------------------------- Control iD

fn controlid(faces: SimFaces) -> SimDevice {
    let config = SimConfig {
        faces,
        ..SimConfig::default()
    };
    SimDevice::start("face", SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).unwrap()
}

struct Cid {
    agent: ureq::Agent,
    base: String,
    session: String,
}

impl Cid {
    fn login(device: &SimDevice) -> Cid {
        let agent = agent();
        let base = device.url();
        let mut response = agent
            .post(format!("{base}/login.fcgi"))
            .content_type("application/json")
            .send(r#"{"login":"admin","password":"admin"}"#)
            .unwrap();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        let session = body["session"].as_str().unwrap().to_owned();
        Cid {
            agent,
            base,
            session: session.replace('/', "%2F").replace('+', "%2B"),
        }
    }

    fn post(&self, command: &str, query: &str, body: &[u8], content_type: &str) -> (u16, Value) {
        let mut response = self
            .agent
            .post(format!(
                "{}/{command}.fcgi?session={}{query}",
                self.base, self.session
            ))
            .content_type(content_type)
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn json(&self, command: &str, body: Value) -> (u16, Value) {
        self.post(command, "", body.to_string().as_bytes(), "application/json")
    }

    /// Creates users with these registrations; returns their ids.
    fn users(&self, registrations: &[&str]) -> Vec<i64> {
        let values: Vec<Value> = registrations
            .iter()
            .map(|r| json!({"registration": r, "name": format!("Person {r}")}))
            .collect();
        let (status, body) = self.json(
            "create_objects",
            json!({"object": "users", "values": values}),
        );
        assert_eq!(status, 200, "{body}");
        body["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    fn set_image(
        &self,
        user_id: i64,
        timestamp: i64,
        matching: bool,
        photo: &[u8],
    ) -> (u16, Value) {
        let query = format!(
            "&user_id={user_id}&timestamp={timestamp}&match={}",
            u8::from(matching)
        );
        self.post("user_set_image", &query, photo, "application/octet-stream")
    }

    fn set_list(&self, matching: bool, items: &[(i64, i64, &[u8])]) -> Vec<Value> {
        let images: Vec<Value> = items
            .iter()
            .map(|(id, ts, photo)| json!({"user_id": id, "timestamp": ts, "image": b64(photo)}))
            .collect();
        let (status, body) = self.json(
            "user_set_image_list",
            json!({"match": matching, "user_images": images}),
        );
        assert_eq!(status, 200, "{body}");
        body["results"].as_array().unwrap().clone()
    }
}

fn codes(result: &Value) -> Vec<i64> {
    result["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["code"].as_i64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn controlid_a_list_stores_good_photos_and_refuses_bad_ones_item_by_item() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1", "2", "3", "4", "5", "6", "7"]);
    let (p1, p2) = (good(1), good(2));
    let no_face = TestPhoto::new(480, 640).seed(3).no_face().build();
    let grey = TestPhoto::flat_grey(480, 640);
    let rotated = TestPhoto::new(640, 480).seed(4).exif_orientation(6).build();
    let tiny = TestPhoto::new(100, 120).seed(5).build();
    let huge = TestPhoto::new(1900, 2000).seed(6).grain(0).build();
    let blurred = TestPhoto::new(480, 640).seed(7).controlid_error(8).build();
    let results = cid.set_list(
        false,
        &[
            (ids[0], 1_700_000_001, &p1),
            (999, 1_700_000_001, &p2),
            (ids[1], 1_700_000_001, &no_face),
            (ids[2], 1_700_000_001, &grey),
            (ids[3], 1_700_000_001, &rotated),
            (ids[4], 1_700_000_001, &tiny),
            (ids[5], 1_700_000_001, &huge),
            (ids[6], 1_700_000_001, &blurred),
        ],
    );
    let got: Vec<(bool, Vec<i64>)> = results
        .iter()
        .map(|r| (r["success"].as_bool().unwrap(), codes(r)))
        .collect();
    assert_eq!(
        got,
        [
            (true, vec![]),
            (false, vec![1]),
            (false, vec![2]),
            (false, vec![2]),
            (false, vec![2]),
            (false, vec![5]),
            (false, vec![6]),
            (false, vec![8]),
        ]
    );
    assert_eq!(results[1]["errors"][0]["message"], "User does not exist");
    assert_eq!(results[2]["errors"][0]["message"], "Face not detected");
    assert_eq!(results[0]["user_id"], ids[0]);
    assert!(results[0]["scores"]["bounds_width"].as_u64().unwrap() > 60);
    let faces = device.faces();
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0].key, "1");
    assert_eq!(faces[0].user_id, Some(ids[0]));
    assert_eq!(faces[0].sha256, face::sha256_hex(&p1));
    assert_eq!((faces[0].width, faces[0].height), (480, 640));
    assert_eq!(faces[0].timestamp, Some(1_700_000_001));
    let stats = device.face_stats();
    assert_eq!(
        (
            stats.calls,
            stats.photos_received,
            stats.photos_stored,
            stats.photos_refused
        ),
        (1, 8, 1, 7)
    );
}

#[test]
fn controlid_list_items_of_the_wrong_type_or_bad_base64_are_code_1() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    let body = json!({"match": false, "user_images": [
        {"user_id": ids[0], "timestamp": "yesterday", "image": b64(&good(1))},
        {"user_id": ids[0], "timestamp": 5, "image": "not base64!"},
        {"user_id": ids[0], "timestamp": 5, "image": b64(b"GIF89a not a jpeg")},
    ]});
    let (status, answer) = cid.json("user_set_image_list", body);
    assert_eq!(status, 200);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        results[0]["errors"][0]["message"],
        "Failed: Invalid member 'timestamp' (int expected, got string)"
    );
    for result in results {
        assert_eq!(codes(result), [1]);
    }
    assert_eq!(
        results[2]["errors"][0]["message"],
        "Image file not recognized. Image should be either JPG or PNG."
    );
    assert!(device.faces().is_empty());
    let (status, _) = cid.json(
        "user_set_image_list",
        json!({"match": 1, "user_images": []}),
    );
    assert_eq!(status, 400, "match is a boolean on the list");
    let (status, _) = cid.post("user_set_image_list", "", b"{not json", "application/json");
    assert_eq!(status, 400);
}

#[test]
fn controlid_match_refuses_a_face_another_user_holds_and_names_them() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1001", "1002", "1003"]);
    let (status, answer) = cid.set_image(ids[0], 10, true, &good(1));
    assert_eq!(
        (status, answer["success"].clone()),
        (200, json!(true)),
        "{answer}"
    );
    // 1002's photo shows 1001's face.
    let twin = TestPhoto::new(480, 640).seed(9).same_as("1001").build();
    let (status, answer) = cid.set_image(ids[1], 10, true, &twin);
    assert_eq!(status, 200);
    assert_eq!(answer["success"], false);
    assert_eq!(
        answer["errors"],
        json!([{"code": 3, "message": "Face exists", "info": {"match_user_id": ids[0]}}])
    );
    assert_eq!(device.face("1002"), None);
    // The same face again for its own holder is no conflict.
    let again = TestPhoto::new(480, 640).seed(10).same_as("1001").build();
    assert_eq!(cid.set_image(ids[0], 11, true, &again).1["success"], true);
    // Without match, the device does not compare: stored.
    let results = cid.set_list(false, &[(ids[2], 12, &twin)]);
    assert_eq!(results[0]["success"], true);
    assert_eq!(device.face("1003").unwrap().identity, "1001");
    // With match, a face of one's own is stored.
    let results = cid.set_list(true, &[(ids[1], 13, &good(20))]);
    assert_eq!(results[0]["success"], true);
}

#[test]
fn controlid_set_image_needs_its_parameters_and_replaces_the_photo() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    let photo = good(1);
    for query in [
        "&timestamp=1&match=0".to_owned(),
        format!("&user_id={}&match=0", ids[0]),
        format!("&user_id={}&timestamp=1", ids[0]),
    ] {
        let (status, body) = cid.post("user_set_image", &query, &photo, "application/octet-stream");
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], 1);
    }
    assert!(device.faces().is_empty());
    assert_eq!(cid.set_image(ids[0], 100, false, &photo).1["success"], true);
    let newer = good(2);
    assert_eq!(cid.set_image(ids[0], 200, false, &newer).1["success"], true);
    let face = device.face("1").unwrap();
    assert_eq!(
        (face.sha256, face.timestamp),
        (face::sha256_hex(&newer), Some(200))
    );
    // A refused new photo leaves the old one.
    let grey = TestPhoto::flat_grey(480, 640);
    assert_eq!(cid.set_image(ids[0], 300, false, &grey).1["success"], false);
    assert_eq!(device.face("1").unwrap().timestamp, Some(200));
    // PNG is taken by the stock firmware.
    let png = TestPhoto::new(480, 640).seed(4).png().build();
    assert_eq!(cid.set_image(ids[0], 400, false, &png).1["success"], true);
    assert_eq!(device.face("1").unwrap().format, PhotoFormat::Png);
}

#[test]
fn controlid_timestamps_come_back_from_the_list_and_from_load_objects() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1", "2", "3"]);
    cid.set_list(
        false,
        &[
            (ids[0], 1_600_000_000, &good(1)),
            (ids[2], 1_600_000_300, &good(3)),
        ],
    );
    let (status, body) = cid.post(
        "user_list_images",
        "&get_timestamp=1",
        b"",
        "application/json",
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"image_info": [
            {"user_id": ids[0], "timestamp": 1_600_000_000_i64},
            {"user_id": ids[2], "timestamp": 1_600_000_300_i64},
        ]})
    );
    let (_, body) = cid.post("user_list_images", "", b"", "application/json");
    assert_eq!(body, json!({"user_ids": [ids[0], ids[2]]}));
    let (status, body) = cid.json(
        "load_objects",
        json!({"object": "users", "fields": ["registration", "image_timestamp"],
               "where": {"users": {"id": ids}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"users": [
            {"registration": "1", "image_timestamp": 1_600_000_000_i64},
            {"registration": "2", "image_timestamp": 0},
            {"registration": "3", "image_timestamp": 1_600_000_300_i64},
        ]})
    );
    let (_, got) = cid.post(
        "user_get_image",
        &format!("&user_id={}&get_timestamp=1", ids[2]),
        b"",
        "application/json",
    );
    assert_eq!(got["timestamp"], 1_600_000_300_i64);
    assert_eq!(got["image"], b64(&good(3)));
    let (status, _) = cid.post(
        "user_get_image",
        &format!("&user_id={}", ids[1]),
        b"",
        "application/json",
    );
    assert_eq!(status, 404);
}

#[test]
fn controlid_a_photo_outlives_its_user_until_destroyed() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1", "2", "3"]);
    cid.set_list(
        false,
        &[
            (ids[0], 1, &good(1)),
            (ids[1], 1, &good(2)),
            (ids[2], 1, &good(3)),
        ],
    );
    let (status, _) = cid.json(
        "destroy_objects",
        json!({"object": "users", "where": {"users": {"id": [ids[0]]}}}),
    );
    assert_eq!(status, 200);
    let faces = device.faces();
    assert_eq!(faces.len(), 3);
    assert!(faces[0].dangling && faces[0].key.is_empty());
    assert_eq!(device.face("1"), None);
    let (status, body) = cid.json("user_destroy_image", json!({"user_id": ids[1]}));
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(device.faces().len(), 2);
    cid.json("user_destroy_image", json!({"dangling": true}));
    let left: Vec<String> = device.faces().into_iter().map(|f| f.key).collect();
    assert_eq!(left, ["3"]);
    cid.json("user_destroy_image", json!({"user_ids": [ids[2], 12345]}));
    assert!(device.faces().is_empty());
    let (status, _) = cid.json("user_destroy_image", json!({}));
    assert_eq!(status, 400);
}

#[test]
fn controlid_requests_over_2_mb_are_refused_by_the_web_server() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    let phone = TestPhoto::phone_photo(1);
    let (status, _) = cid.set_image(ids[0], 1, false, &phone);
    assert_eq!(status, 413);
    // Under 2 MB a phone photo arrives, and its sideways face is not found.
    let (status, body) = cid.set_image(
        ids[0],
        1,
        false,
        &TestPhoto::new(1200, 900).exif_orientation(6).build(),
    );
    assert_eq!(status, 200);
    assert_eq!(codes(&body), [2]);
    assert!(device.faces().is_empty());
}

#[test]
fn controlid_a_card_model_knows_no_face_command_and_counts_each_call() {
    let device = controlid(SimFaces::default());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    let (status, body) = cid.set_image(ids[0], 1, false, &good(1));
    assert_eq!(status, 404);
    assert_eq!(body["error"], "Unknown command /user_set_image.fcgi");
    let (status, _) = cid.post("user_list_images", "", b"", "application/json");
    assert_eq!(status, 404);
    let (status, _) = cid.json(
        "load_objects",
        json!({"object": "users", "fields": ["id", "image_timestamp"]}),
    );
    assert_eq!(status, 400, "no image_timestamp column on a card model");
    let (_, info) = cid.json("system_information", json!({}));
    assert_eq!(info["model"], "iDBlock");
    assert_eq!(device.face_stats().calls, 2);
    assert_eq!(device.face_stats().photos_received, 0);
    assert!(device.faces().is_empty());

    let facial = controlid(SimFaces::instant());
    let (_, info) = Cid::login(&facial).json("system_information", json!({}));
    assert_eq!(info["model"], "iDFace");
}

#[test]
fn controlid_old_firmware_lists_ids_only_and_has_no_image_timestamp() {
    let device = controlid(SimFaces {
        controlid: ControlIdFaces::Old,
        ..SimFaces::instant()
    });
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    cid.set_list(false, &[(ids[0], 77, &good(1))]);
    let (_, body) = cid.post(
        "user_list_images",
        "&get_timestamp=1",
        b"",
        "application/json",
    );
    assert_eq!(body, json!({"user_ids": [ids[0]]}));
    let (status, _) = cid.json(
        "load_objects",
        json!({"object": "users", "fields": ["id", "image_timestamp"]}),
    );
    assert_eq!(status, 400);
}

#[test]
fn controlid_oem_firmware_refuses_png_with_400() {
    let device = controlid(SimFaces {
        controlid: ControlIdFaces::Oem,
        ..SimFaces::instant()
    });
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    let png = TestPhoto::new(480, 640).png().build();
    let (status, body) = cid.set_image(ids[0], 1, false, &png);
    assert_eq!(status, 400, "{body}");
    let results = cid.set_list(false, &[(ids[0], 1, &png)]);
    assert_eq!(codes(&results[0]), [1]);
    assert_eq!(cid.set_image(ids[0], 1, false, &good(1)).1["success"], true);
}

#[test]
fn controlid_each_photo_takes_the_modeling_time() {
    let device = controlid(SimFaces {
        time_per_photo: Duration::from_millis(100),
        ..SimFaces::on()
    });
    let cid = Cid::login(&device);
    let ids = cid.users(&["1", "2", "3"]);
    let photos: Vec<Vec<u8>> = (0..3).map(good).collect();
    let started = Instant::now();
    cid.set_list(
        false,
        &[
            (ids[0], 1, &photos[0]),
            (ids[1], 1, &photos[1]),
            (ids[2], 1, &photos[2]),
        ],
    );
    // A lower bound only: a busy machine can only make it slower.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn controlid_test_image_judges_without_storing() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let (status, body) = cid.post("user_test_image", "", &good(1), "application/octet-stream");
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let grey = TestPhoto::flat_grey(480, 640);
    let (_, body) = cid.post("user_test_image", "", &grey, "application/octet-stream");
    assert_eq!(codes(&body), [2]);
    assert!(device.faces().is_empty());
    assert_eq!(device.face_stats().tested, 2);
}
