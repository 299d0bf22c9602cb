//! Face photos on the simulated devices, driven as a driver would: real HTTP over
//! loopback, real JPEGs from [`TestPhoto`], one behaviour per test on its own device.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::face::Photo;
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
fn inspect_photo_tells_what_the_devices_read() {
    let bytes = TestPhoto::new(300, 400)
        .progressive()
        .exif_orientation(3)
        .comment("hi")
        .build();
    let facts = inspect_photo(&bytes).unwrap();
    assert_eq!(
        (facts.format, facts.width, facts.height),
        (PhotoFormat::Jpeg, 300, 400)
    );
    assert!(facts.progressive && !facts.uniform);
    assert_eq!(facts.subsampling, Subsampling::S420);
    assert_eq!(
        (facts.comments, facts.exif_orientation),
        (vec!["hi".to_owned()], Some(3))
    );
    assert_eq!(
        (facts.bytes, facts.sha256),
        (bytes.len(), face::sha256_hex(&bytes))
    );
    assert!(
        inspect_photo(&TestPhoto::flat_grey(200, 200))
            .unwrap()
            .uniform
    );
    assert_eq!(inspect_photo(b"GIF89a"), None);
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
    let (_, all) = cid.json("load_objects", json!({"object": "users"}));
    assert_eq!(all["users"][2]["image_timestamp"], 1_600_000_300_i64);
    assert_eq!(all["users"][2]["registration"], "3");
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
fn controlid_old_firmware_lists_ids_only_has_no_image_timestamp_and_reads_1_mb() {
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
    // The older page: no timestamp or match on the single call, and at most 1 MB.
    let query = format!("&user_id={}", ids[0]);
    let newer = good(2);
    let (status, body) = cid.post("user_set_image", &query, &newer, "application/octet-stream");
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(device.face("1").unwrap().sha256, face::sha256_hex(&newer));
    assert_eq!(
        device.face("1").unwrap().timestamp,
        None,
        "no timestamp kept"
    );
    let heavy = TestPhoto::new(1400, 1800).quality(97).grain(16).build();
    assert!(
        (1024 * 1024..2 * 1024 * 1024).contains(&heavy.len()),
        "{}",
        heavy.len()
    );
    let (status, _) = cid.post("user_set_image", &query, &heavy, "application/octet-stream");
    assert_eq!(status, 413);
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
fn controlid_a_lost_answer_leaves_the_photos_stored() {
    let device = controlid(SimFaces::instant());
    let cid = Cid::login(&device);
    let ids = cid.users(&["1"]);
    device.lose_next_answer("user_set_image_list");
    let images = json!({"match": false, "user_images": [
        {"user_id": ids[0], "timestamp": 5, "image": b64(&good(1))}]});
    let lost = cid
        .agent
        .post(format!(
            "{}/user_set_image_list.fcgi?session={}",
            cid.base, cid.session
        ))
        .content_type("application/json")
        .send(images.to_string());
    assert!(lost.is_err(), "the connection is reset");
    assert_eq!(device.face("1").unwrap().timestamp, Some(5));
    assert_eq!(device.stats().count("user_set_image_list"), 1);
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

// ---------------------------------------------------------------- Hikvision and Intelbras

fn digest_device(kind: Kind, faces: SimFaces) -> SimDevice {
    let config = SimConfig {
        faces,
        ..SimConfig::default()
    };
    SimDevice::start_kind(
        "face",
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        kind,
        config,
    )
    .unwrap()
}

/// A Digest client: asks for a challenge, then signs each request.
struct Digest {
    agent: ureq::Agent,
    base: String,
}

impl Digest {
    fn new(device: &SimDevice) -> Digest {
        Digest {
            agent: agent(),
            base: device.url(),
        }
    }

    fn send(&self, method: &str, target: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let (status, bytes) = self.send_raw(method, target, content_type, body);
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A signed request; the answer's status and bytes.
    fn send_raw(
        &self,
        method: &str,
        target: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let url = format!("{}{target}", self.base);
        let attempt = |authorization: Option<String>| {
            let request = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Content-Type", content_type);
            let request = match authorization {
                Some(a) => request.header("Authorization", a),
                None => request,
            };
            let mut response = self
                .agent
                .run(request.body(body.to_vec()).unwrap())
                .unwrap();
            let challenge = response
                .headers()
                .get("WWW-Authenticate")
                .map(|h| h.to_str().unwrap().to_owned());
            let status = response.status().as_u16();
            (
                status,
                challenge,
                response.body_mut().read_to_vec().unwrap(),
            )
        };
        let (status, challenge, bytes) = attempt(None);
        if status != 401 {
            return (status, bytes);
        }
        let mut prompt = digest_auth::WwwAuthenticateHeader::parse(&challenge.unwrap()).unwrap();
        let context = digest_auth::AuthContext::new_with_method(
            "admin",
            "admin",
            target,
            Option::<&[u8]>::None,
            digest_auth::HttpMethod(method.to_owned().into()),
        );
        let header = prompt.respond(&context).unwrap().to_string();
        let (status, _, bytes) = attempt(Some(header));
        (status, bytes)
    }

    fn json(&self, method: &str, target: &str, body: &Value) -> (u16, Value) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, text) = self.send(method, target, "application/json", &body);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

const BOUNDARY: &str = "catraca-boundary-7d1";

/// A multipart body of (name, filename, content type, data) parts.
fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content_type, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let filename = filename
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"{filename}\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn hik_person(client: &Digest, employee: &str) {
    let body = json!({"UserInfo": {"employeeNo": employee, "name": format!("P {employee}"),
        "userType": "normal", "Valid": {"enable": false}}});
    let (status, answer) = client.json(
        "POST",
        "/ISAPI/AccessControl/UserInfo/Record?format=json",
        &body,
    );
    assert_eq!(status, 200, "{answer}");
}

fn record_json(fpid: &str) -> Vec<u8> {
    json!({"faceLibType": "blackFD", "FDID": "1", "FPID": fpid})
        .to_string()
        .into_bytes()
}

/// Uploads a face the documented way: `FDSetUp` (`setup`) or `FaceDataRecord`.
fn hik_upload(client: &Digest, setup: bool, fpid: &str, photo: &[u8]) -> (u16, Value) {
    let body = multipart(&[
        (
            "FaceDataRecord",
            None,
            "application/json",
            &record_json(fpid),
        ),
        ("img", Some("face.jpg"), "image/jpeg", photo),
    ]);
    let (method, path) = if setup {
        ("PUT", "/ISAPI/Intelligent/FDLib/FDSetUp?format=json")
    } else {
        (
            "POST",
            "/ISAPI/Intelligent/FDLib/FaceDataRecord?format=json",
        )
    };
    let (status, text) = client.send(
        method,
        path,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        &body,
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn sub_status(answer: &(u16, Value)) -> (u16, String) {
    (
        answer.0,
        answer.1["subStatusCode"].as_str().unwrap_or("").to_owned(),
    )
}

fn hik_search(client: &Digest, fpid: &str) -> Value {
    let body = json!({"searchResultPosition": 0, "maxResults": 1, "faceLibType": "blackFD",
        "FDID": "1", "FPID": fpid});
    let (status, answer) = client.json(
        "POST",
        "/ISAPI/Intelligent/FDLib/FDSearch?format=json",
        &body,
    );
    assert_eq!(status, 200, "{answer}");
    answer
}

#[test]
fn hikvision_reports_its_library_and_capabilities() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    let (status, lib) = client.json("GET", "/ISAPI/Intelligent/FDLib?format=json", &Value::Null);
    assert_eq!(status, 200);
    assert_eq!(lib["FDLib"][0]["FDID"], "1");
    assert_eq!(lib["FDLib"][0]["faceLibType"], "blackFD");
    let (status, caps) = client.json(
        "GET",
        "/ISAPI/Intelligent/FDLib/capabilities?format=json",
        &Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(
        caps["supportFDFunction"]["@opt"],
        "post,delete,put,get,setUp"
    );
    assert_eq!(caps["FDRecordDataMaxNum"], 3000);
    assert_eq!(caps["facePicFormat"]["@opt"], json!(["jpg", "png"]));
    assert_eq!(device.face_stats().calls, 2);
}

#[test]
fn hikvision_setup_adds_replaces_and_keeps_the_old_face_on_a_refusal() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    hik_person(&client, "A-1");
    assert_eq!(hik_search(&client, "A-1")["responseStatusStrg"], "NO MATCH");
    let first = good(1);
    assert_eq!(
        sub_status(&hik_upload(&client, true, "A-1", &first)),
        (200, "ok".into())
    );
    let found = hik_search(&client, "A-1");
    assert_eq!(
        (
            found["totalMatches"].clone(),
            found["MatchList"][0]["FPID"].clone()
        ),
        (json!(1), json!("A-1"))
    );
    assert!(found["MatchList"][0]["faceURL"]
        .as_str()
        .unwrap()
        .contains("/LOCALS/pic/enrlFace/"));
    let url = found["MatchList"][0]["faceURL"].as_str().unwrap();
    let path = &url[url.find("/LOCALS").unwrap()..];
    assert_eq!(client.send("GET", path, "", b"").0, 200);
    let second = good(2);
    assert_eq!(hik_upload(&client, true, "A-1", &second).0, 200);
    assert_eq!(
        client.send("GET", path, "", b"").0,
        404,
        "the old picture is gone"
    );
    let found = hik_search(&client, "A-1");
    let url = found["MatchList"][0]["faceURL"].as_str().unwrap();
    let path = url[url.find("/LOCALS").unwrap()..].to_owned();
    let (status, picture) = client.send_raw("GET", &path, "", b"");
    assert_eq!((status, picture), (200, second.clone()));
    assert_eq!(
        device.face("A-1").unwrap().sha256,
        face::sha256_hex(&second)
    );
    let grey = TestPhoto::flat_grey(480, 640);
    assert_eq!(
        sub_status(&hik_upload(&client, true, "A-1", &grey)),
        (400, "SubpicAnalysisModelingError".into())
    );
    assert_eq!(
        device.face("A-1").unwrap().sha256,
        face::sha256_hex(&second)
    );
    let body = json!({"UserInfoSearchCond": {"searchID": "1", "searchResultPosition": 0, "maxResults": 30}});
    let (_, users) = client.json(
        "POST",
        "/ISAPI/AccessControl/UserInfo/Search?format=json",
        &body,
    );
    assert_eq!(users["UserInfoSearch"]["UserInfo"][0]["numOfFace"], 1);
    let stats = device.face_stats();
    assert_eq!((stats.photos_stored, stats.photos_refused), (2, 1));
    // The simulator's own window shows the same.
    let state: Value = agent()
        .get(format!("{}/_sim/state", device.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(state["faces"][0]["key"], "A-1");
    assert_eq!(state["faces"][0]["sha256"], face::sha256_hex(&second));
    assert_eq!(state["face_stats"]["photos_stored"], 2);
}

#[test]
fn hikvision_face_data_record_only_adds_and_needs_the_person() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    assert_eq!(
        sub_status(&hik_upload(&client, false, "9", &good(1))),
        (400, "employeeNoNotExist".into())
    );
    hik_person(&client, "9");
    assert_eq!(hik_upload(&client, false, "9", &good(1)).0, 200);
    assert_eq!(
        sub_status(&hik_upload(&client, false, "9", &good(2))),
        (400, "deviceUserAlreadyExistFace".into())
    );
    assert_eq!(device.face("9").unwrap().sha256, face::sha256_hex(&good(1)));
}

#[test]
fn hikvision_refuses_photos_beyond_its_limits() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    hik_person(&client, "1");
    let big = TestPhoto::new(1200, 1600).quality(98).grain(40).build();
    assert!(big.len() > 200 * 1024, "{}", big.len());
    let answer = hik_upload(&client, true, "1", &big);
    assert_eq!(sub_status(&answer), (400, "badJsonFormat".into()));
    assert_eq!(answer.1["errorMsg"], "faceURL");
    let modeling = (400, "SubpicAnalysisModelingError".to_owned());
    for photo in [
        TestPhoto::new(280, 380).build(),
        TestPhoto::new(480, 640).progressive().build(),
        TestPhoto::new(480, 640).subsampling_444().build(),
        TestPhoto::new(480, 640).no_face().build(),
        TestPhoto::new(640, 480).exif_orientation(8).build(),
        b"not a picture".to_vec(),
    ] {
        assert_eq!(
            sub_status(&hik_upload(&client, true, "1", &photo)),
            modeling
        );
    }
    assert!(device.faces().is_empty());
    // A PNG of a face is taken (capabilities list png).
    let png = TestPhoto::new(480, 640).grain(0).png().build();
    assert_eq!(
        hik_upload(&client, true, "1", &png).0,
        200,
        "{} bytes",
        png.len()
    );
}

/// What a product re-encoding with the `image` crate sends: its JPEG encoder writes
/// every component at full resolution (4:4:4), which a MinMoe cannot model (H3).
/// Encode the canonical photo with `jpeg-encoder` at `SamplingFactor::R_4_2_0`.
#[test]
fn hikvision_refuses_a_jpeg_from_the_image_crates_encoder() {
    let pixels = image::load_from_memory(&good(1)).unwrap().to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&pixels)
        .unwrap();
    assert_eq!(Photo::read(&jpeg).unwrap().subsampling, Subsampling::S444);
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    hik_person(&client, "1");
    assert_eq!(
        sub_status(&hik_upload(&client, true, "1", &jpeg)),
        (400, "SubpicAnalysisModelingError".into())
    );
}

#[test]
fn hikvision_takes_the_multipart_parts_in_one_order_under_one_name() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    hik_person(&client, "1");
    let photo = good(1);
    let record = record_json("1");
    let bodies = [
        // Image first.
        multipart(&[
            ("img", Some("f.jpg"), "image/jpeg", &photo),
            ("FaceDataRecord", None, "application/json", &record),
        ]),
        // The image part under another name.
        multipart(&[
            ("FaceDataRecord", None, "application/json", &record),
            ("FaceImage", Some("f.jpg"), "image/jpeg", &photo),
        ]),
        // The JSON part with a filename.
        multipart(&[
            (
                "FaceDataRecord",
                Some("r.json"),
                "application/json",
                &record,
            ),
            ("img", Some("f.jpg"), "image/jpeg", &photo),
        ]),
    ];
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    for body in bodies {
        let (status, text) = client.send(
            "PUT",
            "/ISAPI/Intelligent/FDLib/FDSetUp?format=json",
            &content_type,
            &body,
        );
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("badParameters"), "{text}");
    }
    let wrong_library = json!({"faceLibType": "blackFD", "FDID": "2", "FPID": "1"}).to_string();
    let body = multipart(&[
        (
            "FaceDataRecord",
            None,
            "application/json",
            wrong_library.as_bytes(),
        ),
        ("img", Some("f.jpg"), "image/jpeg", &photo),
    ]);
    let (_, text) = client.send(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDSetUp?format=json",
        &content_type,
        &body,
    );
    assert!(text.contains("faceLibNotExist"), "{text}");
    let (status, _) = client.send(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDSetUp?format=json",
        "image/jpeg",
        &photo,
    );
    assert_eq!(status, 400);
    assert!(device.faces().is_empty());
}

#[test]
fn hikvision_refuses_the_json_only_upload_forms() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    hik_person(&client, "1");
    let record = |extra: (&str, String)| {
        let mut body = json!({"faceLibType": "blackFD", "FDID": "1", "FPID": "1"});
        body[extra.0] = Value::String(extra.1);
        body
    };
    let by_url = record(("faceURL", "http://127.0.0.1:1/face.jpg".into()));
    let (status, answer) = client.json(
        "POST",
        "/ISAPI/Intelligent/FDLib/FaceDataRecord?format=json",
        &by_url,
    );
    assert_eq!(
        (status, answer["subStatusCode"].clone()),
        (400, json!("urlDownloadFail"))
    );
    let inline = record(("faceData", b64(&good(1))));
    let (status, answer) = client.json(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDSetUp?format=json",
        &inline,
    );
    assert_eq!(
        (status, answer["subStatusCode"].clone()),
        (400, json!("badJsonContent"))
    );
    assert!(device.faces().is_empty());
}

#[test]
fn hikvision_a_full_library_refuses_new_faces_but_replaces() {
    let device = digest_device(
        Kind::Hikvision,
        SimFaces {
            capacity: 1,
            ..SimFaces::instant()
        },
    );
    let client = Digest::new(&device);
    hik_person(&client, "1");
    hik_person(&client, "2");
    assert_eq!(hik_upload(&client, true, "1", &good(1)).0, 200);
    assert_eq!(
        sub_status(&hik_upload(&client, true, "2", &good(2))),
        (400, "exceedMaxFaceNumber".into())
    );
    assert_eq!(hik_upload(&client, true, "1", &good(3)).0, 200);
}

#[test]
fn hikvision_faces_go_by_search_delete_fd_delete_or_with_their_person() {
    let device = digest_device(Kind::Hikvision, SimFaces::instant());
    let client = Digest::new(&device);
    for person in ["1", "2", "3"] {
        hik_person(&client, person);
        assert_eq!(
            hik_upload(&client, true, person, &good(person.parse().unwrap())).0,
            200
        );
    }
    let (status, answer) = client.json(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDSearch/Delete?format=json&FDID=1&faceLibType=blackFD",
        &json!({"FPID": [{"value": "1"}]}),
    );
    assert_eq!((status, answer["statusCode"].clone()), (200, json!(1)));
    let fd_delete = |fpid: &str| {
        client.json(
            "PUT",
            "/ISAPI/Intelligent/FDLib/FDDelete?format=json",
            &json!({"faceLibType": "blackFD", "FDID": "1", "FPID": fpid}),
        )
    };
    assert_eq!(fd_delete("2").0, 200);
    let (status, answer) = fd_delete("2");
    assert_eq!(
        (status, answer["statusCode"].clone()),
        (400, json!(4)),
        "no such face"
    );
    let (status, _) = client.json(
        "PUT",
        "/ISAPI/AccessControl/UserInfoDetail/Delete?format=json",
        &json!({"UserInfoDetail": {"mode": "byEmployeeNo", "EmployeeNoList": [{"employeeNo": "3"}]}}),
    );
    assert_eq!(status, 200);
    assert!(device.faces().is_empty(), "{:?}", device.faces());
}

#[test]
fn hikvision_firmware_without_setup_or_search_delete() {
    let device = digest_device(
        Kind::Hikvision,
        SimFaces {
            hikvision_setup: false,
            hikvision_search_delete: false,
            ..SimFaces::instant()
        },
    );
    let client = Digest::new(&device);
    hik_person(&client, "1");
    let (_, caps) = client.json(
        "GET",
        "/ISAPI/Intelligent/FDLib/capabilities?format=json",
        &Value::Null,
    );
    assert_eq!(caps["supportFDFunction"]["@opt"], "post,delete,put,get");
    assert_eq!(
        sub_status(&hik_upload(&client, true, "1", &good(1))),
        (404, "notSupport".into())
    );
    assert_eq!(hik_upload(&client, false, "1", &good(1)).0, 200);
    let (status, answer) = client.json(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDSearch/Delete?format=json&FDID=1&faceLibType=blackFD",
        &json!({"FPID": [{"value": "1"}]}),
    );
    assert_eq!(
        (
            status,
            answer["statusCode"].clone(),
            answer["statusString"].clone()
        ),
        (400, json!(6), json!("Invalid Content"))
    );
    assert!(device.face("1").is_some());
    let (status, _) = client.json(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDDelete?format=json",
        &json!({"faceLibType": "blackFD", "FDID": "1", "FPID": "1"}),
    );
    assert_eq!(status, 200);
    assert!(device.face("1").is_none());
}

#[test]
fn hikvision_with_an_infrared_library_takes_faces_in_black_fd_only() {
    let device = digest_device(
        Kind::Hikvision,
        SimFaces {
            hikvision_infrared_library: true,
            ..SimFaces::instant()
        },
    );
    let client = Digest::new(&device);
    let (_, lib) = client.json("GET", "/ISAPI/Intelligent/FDLib?format=json", &Value::Null);
    let libraries: Vec<(String, String)> = lib["FDLib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["FDID"].as_str().unwrap().into(),
                l["faceLibType"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        libraries,
        [
            ("2".into(), "infraredFD".into()),
            ("1".into(), "blackFD".into())
        ]
    );
    hik_person(&client, "1");
    let infrared = json!({"faceLibType": "infraredFD", "FDID": "2", "FPID": "1"}).to_string();
    let body = multipart(&[
        (
            "FaceDataRecord",
            None,
            "application/json",
            infrared.as_bytes(),
        ),
        ("img", Some("f.jpg"), "image/jpeg", &good(1)),
    ]);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let (status, text) = client.send(
        "PUT",
        "/ISAPI/Intelligent/FDLib/FDSetUp?format=json",
        &content_type,
        &body,
    );
    assert_eq!(status, 400);
    assert!(text.contains("faceLibNotExist"), "{text}");
    assert_eq!(hik_upload(&client, true, "1", &good(1)).0, 200);
}

#[test]
fn hikvision_a_card_model_has_no_face_library_and_counts_each_call() {
    let device = digest_device(Kind::Hikvision, SimFaces::default());
    let client = Digest::new(&device);
    hik_person(&client, "1");
    let (status, answer) = client.json(
        "GET",
        "/ISAPI/Intelligent/FDLib/capabilities?format=json",
        &Value::Null,
    );
    assert_eq!(
        (status, answer["subStatusCode"].clone()),
        (404, json!("notSupport"))
    );
    assert_eq!(hik_upload(&client, true, "1", &good(1)).0, 404);
    let body = json!({"UserInfoSearchCond": {"searchID": "1", "searchResultPosition": 0, "maxResults": 30}});
    let (_, users) = client.json(
        "POST",
        "/ISAPI/AccessControl/UserInfo/Search?format=json",
        &body,
    );
    assert!(users["UserInfoSearch"]["UserInfo"][0]
        .get("numOfFace")
        .is_none());
    let stats = device.face_stats();
    assert_eq!((stats.calls, stats.photos_received), (2, 0));
    assert!(device.faces().is_empty());
}

#[test]
fn hikvision_works_on_one_upload_at_a_time() {
    let device = digest_device(
        Kind::Hikvision,
        SimFaces {
            // Long enough for the second upload to arrive meanwhile on a busy machine.
            time_per_photo: Duration::from_secs(4),
            ..SimFaces::on()
        },
    );
    let client = Digest::new(&device);
    hik_person(&client, "1");
    hik_person(&client, "2");
    std::thread::scope(|scope| {
        let first = scope.spawn(|| hik_upload(&Digest::new(&device), true, "1", &good(1)));
        // Until the first upload is being modeled.
        while device.face_stats().calls == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let second = hik_upload(&client, true, "2", &good(2));
        assert_eq!(second.0, 503);
        assert_eq!(second.1["statusCode"], 2);
        assert_eq!(first.join().unwrap().0, 200);
    });
    assert_eq!(device.face_stats().busy, 1);
    assert!(device.face("1").is_some() && device.face("2").is_none());
}

fn intelbras_users(client: &Digest, ids: &[&str]) {
    let list: Vec<Value> = ids
        .iter()
        .map(|id| json!({"UserID": id, "UserName": format!("P {id}")}))
        .collect();
    let (status, text) = client.json(
        "POST",
        "/cgi-bin/AccessUser.cgi?action=insertMulti",
        &json!({"UserList": list}),
    );
    assert_eq!(status, 200, "{text}");
}

fn face_list(faces: &[(&str, &[u8])]) -> Value {
    let list: Vec<Value> = faces
        .iter()
        .map(|(id, photo)| json!({"UserID": id, "PhotoData": [b64(photo)]}))
        .collect();
    json!({"FaceList": list})
}

fn intelbras_faces(client: &Digest, action: &str, faces: &[(&str, &[u8])]) -> (u16, Value) {
    client.json(
        "POST",
        &format!("/cgi-bin/AccessFace.cgi?action={action}"),
        &face_list(faces),
    )
}

fn fail_codes(answer: &(u16, Value)) -> Vec<i64> {
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert_eq!(answer.1["code"], 268_632_336);
    assert_eq!(answer.1["message"], "Batch Process Error");
    let codes: Vec<i64> = answer.1["detail"]["FailCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    assert_eq!(answer.1["detail"]["FailCount"], codes.len());
    codes
}

/// `Total` of a face search for one user, closing the search.
fn intelbras_has_face(client: &Digest, user: &str) -> u64 {
    let (status, found) = client.json(
        "GET",
        &format!("/cgi-bin/FaceInfoManager.cgi?action=startFind&Condition.UserID={user}"),
        &Value::Null,
    );
    assert_eq!(status, 200, "{found}");
    let token = found["Token"].as_u64().unwrap();
    let (status, _) = client.json(
        "GET",
        &format!("/cgi-bin/FaceInfoManager.cgi?action=stopFind&Token={token}"),
        &Value::Null,
    );
    assert_eq!(status, 200);
    found["Total"].as_u64().unwrap()
}

#[test]
fn intelbras_insert_multi_stores_a_batch_and_start_find_sees_it() {
    let device = digest_device(Kind::Intelbras, SimFaces::instant());
    let client = Digest::new(&device);
    intelbras_users(&client, &["1001", "1002", "1003"]);
    let (p1, p2) = (good(1), good(2));
    let answer = intelbras_faces(&client, "insertMulti", &[("1001", &p1), ("1002", &p2)]);
    assert_eq!(answer, (200, Value::String("OK\r\n".into())));
    assert_eq!(intelbras_has_face(&client, "1001"), 1);
    assert_eq!(intelbras_has_face(&client, "1003"), 0);
    assert_eq!(device.open_searches(), 0);
    assert_eq!(device.face("1002").unwrap().sha256, face::sha256_hex(&p2));
    // A second insert for a user with a face is refused; an update replaces.
    let p3 = good(3);
    let again = intelbras_faces(&client, "insertMulti", &[("1001", &p3)]);
    assert_eq!(fail_codes(&again), [286_064_926]);
    assert_eq!(
        intelbras_faces(&client, "updateMulti", &[("1001", &p3)]).0,
        200
    );
    assert_eq!(device.face("1001").unwrap().sha256, face::sha256_hex(&p3));
    let stats = device.face_stats();
    assert_eq!((stats.photos_stored, stats.photos_refused), (3, 1));
}

#[test]
fn intelbras_refuses_photos_beyond_its_limits_with_their_codes() {
    let device = digest_device(Kind::Intelbras, SimFaces::instant());
    let client = Digest::new(&device);
    intelbras_users(&client, &["1"]);
    let heavy = TestPhoto::new(600, 800).quality(98).grain(40).build();
    assert!(heavy.len() > 100 * 1024);
    let cases: [(Vec<u8>, i64); 8] = [
        (heavy, 286_064_923),
        (
            TestPhoto::new(700, 1000).grain(0).quality(40).build(),
            286_064_923,
        ),
        (
            TestPhoto::new(400, 1300).grain(0).quality(40).build(),
            286_064_923,
        ),
        (TestPhoto::new(140, 300).build(), 288_686_087),
        (TestPhoto::new(300, 700).build(), 288_686_087),
        (TestPhoto::new(480, 640).grain(0).png().build(), 288_686_087),
        (TestPhoto::new(480, 640).no_face().build(), 288_686_087),
        (TestPhoto::flat_grey(480, 640), 288_686_087),
    ];
    for (photo, code) in cases {
        let answer = intelbras_faces(&client, "insertMulti", &[("1", &photo)]);
        assert_eq!(fail_codes(&answer), [code]);
    }
    assert!(device.faces().is_empty());
    // The documented extremes are taken.
    for (w, h) in [(150, 300), (600, 1200)] {
        let photo = TestPhoto::new(w, h).quality(60).build();
        assert_eq!(
            intelbras_faces(&client, "updateMulti", &[("1", &photo)]).0,
            200,
            "{w}x{h}"
        );
    }
}

#[test]
fn intelbras_an_asi_takes_smaller_photos() {
    let device = digest_device(
        Kind::Intelbras,
        SimFaces {
            intelbras_max_photo: 75 * 1024,
            ..SimFaces::instant()
        },
    );
    let client = Digest::new(&device);
    intelbras_users(&client, &["1"]);
    let photo = TestPhoto::new(480, 640).quality(88).grain(14).build();
    assert!(
        (75 * 1024..100 * 1024).contains(&photo.len()),
        "{}",
        photo.len()
    );
    let answer = intelbras_faces(&client, "insertMulti", &[("1", &photo)]);
    assert_eq!(fail_codes(&answer), [286_064_923]);
    let (_, caps) = client.json(
        "GET",
        "/cgi-bin/FaceInfoManager.cgi?action=getCaps",
        &Value::Null,
    );
    assert_eq!(caps["caps"]["MaxPhotoSize"], 75 * 1024);
    assert_eq!(
        intelbras_faces(&client, "insertMulti", &[("1", &good(1))]).0,
        200
    );
}

#[test]
fn intelbras_a_batch_with_a_refused_photo_stores_none_of_it() {
    let device = digest_device(Kind::Intelbras, SimFaces::instant());
    let client = Digest::new(&device);
    intelbras_users(&client, &["1", "2", "3"]);
    let grey = TestPhoto::flat_grey(480, 640);
    let answer = intelbras_faces(
        &client,
        "insertMulti",
        &[("1", &good(1)), ("2", &grey), ("3", &good(3))],
    );
    assert_eq!(fail_codes(&answer), [288_686_087]);
    assert!(device.faces().is_empty());
    assert_eq!(device.face_stats().photos_refused, 3);
}

#[test]
fn intelbras_requests_it_cannot_read_are_a_bare_bad_request() {
    let device = digest_device(Kind::Intelbras, SimFaces::instant());
    let client = Digest::new(&device);
    let ids: Vec<String> = (1..=11).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    intelbras_users(&client, &id_refs[..10]);
    intelbras_users(&client, &id_refs[10..]);
    let photo = good(1);
    let bad = "Error\r\nBad Request!\r\n".to_owned();
    let eleven: Vec<(&str, &[u8])> = id_refs.iter().map(|id| (*id, photo.as_slice())).collect();
    let (status, text) = intelbras_faces(&client, "insertMulti", &eleven);
    assert_eq!((status, text), (400, Value::String(bad.clone())));
    for body in [
        json!({"FaceList": [{"UserID": "1", "PhotoData": ["%%% not base64"]}]}),
        json!({"FaceList": [{"UserID": "99", "PhotoData": [b64(&photo)]}]}),
        json!({"FaceList": [{"UserID": "1", "PhotoData": [b64(&photo)]}, {"UserID": "1", "PhotoData": [b64(&photo)]}]}),
        json!({"FaceList": [{"UserID": "1", "PhotoData": b64(&photo)}]}),
        json!({"Faces": []}),
    ] {
        let (status, text) =
            client.json("POST", "/cgi-bin/AccessFace.cgi?action=insertMulti", &body);
        assert_eq!((status, text), (400, Value::String(bad.clone())), "{body}");
    }
    let (status, text) = client.send(
        "POST",
        "/cgi-bin/AccessFace.cgi?action=insertMulti",
        "application/json",
        b"{not json",
    );
    assert_eq!((status, text), (400, bad));
    assert!(device.faces().is_empty());
}

#[test]
fn intelbras_remove_is_idempotent_and_a_removed_user_leaves_the_face() {
    let device = digest_device(Kind::Intelbras, SimFaces::instant());
    let client = Digest::new(&device);
    intelbras_users(&client, &["1", "2"]);
    assert_eq!(
        intelbras_faces(&client, "insertMulti", &[("1", &good(1)), ("2", &good(2))]).0,
        200
    );
    for _ in 0..2 {
        let (status, text) = client.json(
            "GET",
            "/cgi-bin/FaceInfoManager.cgi?action=remove&UserID=1",
            &Value::Null,
        );
        assert_eq!((status, text), (200, Value::String("OK\r\n".into())));
    }
    assert_eq!(intelbras_has_face(&client, "1"), 0);
    let (status, _) = client.json(
        "GET",
        "/cgi-bin/AccessUser.cgi?action=removeMulti&UserIDList[0]=2",
        &Value::Null,
    );
    assert_eq!(status, 200);
    let faces = device.faces();
    assert_eq!(faces.len(), 1);
    assert!(faces[0].dangling && faces[0].key == "2");
    assert_eq!(intelbras_has_face(&client, "2"), 1);
}

#[test]
fn intelbras_without_access_face_takes_faces_through_the_face_manager() {
    let device = digest_device(
        Kind::Intelbras,
        SimFaces {
            intelbras_access_face: false,
            ..SimFaces::instant()
        },
    );
    let client = Digest::new(&device);
    intelbras_users(&client, &["1"]);
    let (status, text) = intelbras_faces(&client, "insertMulti", &[("1", &good(1))]);
    assert_eq!(
        (status, text),
        (501, Value::String("Error\r\nNot Implemented!\r\n".into()))
    );
    let add = |action: &str, photo: &[u8]| {
        client.json(
            "POST",
            &format!("/cgi-bin/FaceInfoManager.cgi?action={action}"),
            &json!({"UserID": "1", "Info": {"UserName": "P 1", "PhotoData": [b64(photo)]}}),
        )
    };
    assert_eq!(add("add", &good(1)).0, 200);
    assert_eq!(fail_codes(&add("add", &good(2))), [286_064_926]);
    assert_eq!(
        fail_codes(&add("update", &TestPhoto::flat_grey(480, 640))),
        [288_686_087]
    );
    assert_eq!(add("update", &good(2)).0, 200);
    assert_eq!(device.face("1").unwrap().sha256, face::sha256_hex(&good(2)));
    let (status, caps) = client.json(
        "GET",
        "/cgi-bin/FaceInfoManager.cgi?action=getCaps",
        &Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(caps["caps"]["MaxPhotoSize"], 102_400);
}

#[test]
fn intelbras_a_card_model_answers_not_implemented_and_counts_each_call() {
    let device = digest_device(Kind::Intelbras, SimFaces::default());
    let client = Digest::new(&device);
    intelbras_users(&client, &["1"]);
    let not_implemented = Value::String("Error\r\nNot Implemented!\r\n".into());
    let (status, text) = client.json(
        "GET",
        "/cgi-bin/FaceInfoManager.cgi?action=getCaps",
        &Value::Null,
    );
    assert_eq!((status, text), (501, not_implemented.clone()));
    let (status, text) = intelbras_faces(&client, "insertMulti", &[("1", &good(1))]);
    assert_eq!((status, text), (501, not_implemented));
    let stats = device.face_stats();
    assert_eq!((stats.calls, stats.photos_received), (2, 0));
    device.set_facial(true);
    assert_eq!(
        intelbras_faces(&client, "insertMulti", &[("1", &good(1))]).0,
        200
    );
}
