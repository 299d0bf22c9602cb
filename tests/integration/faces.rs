//! Face photos end to end: the real binary against facial simulators over HTTP, with
//! photos made by the simulator's generator (docs/face-api.md; README "Faces").

use crate::harness::{
    assert_holds_exactly, assert_people, csv, fleet, mixed_fleet, people, requests, Row, Sandbox,
};
use catraca_sim::test_photo::TestPhoto;
use catraca_sim::{ControlIdFaces, Fleet, Kind, PhotoFormat, SimConfig, SimDevice, SimFaces};
use serde_json::Value;

/// Writes `rows` as `p.csv` with a `foto` column naming `fotos/<registration>.jpg` for
/// the people `in_column` picks (others get an empty cell), and a photo per person in
/// `fotos/` from `photo`.
fn with_photos(
    sandbox: &Sandbox,
    rows: &[Row],
    in_column: impl Fn(usize) -> bool,
    photo: impl Fn(usize) -> Vec<u8>,
) {
    std::fs::create_dir_all(sandbox.path("fotos")).unwrap();
    for (i, row) in rows.iter().enumerate() {
        sandbox.write(&format!("fotos/{}.jpg", row.registration), photo(i));
    }
    let mut lines = csv(rows).lines().map(str::to_string).collect::<Vec<_>>();
    lines[0].push_str(",foto");
    for (i, row) in rows.iter().enumerate() {
        let cell = if in_column(i) {
            format!("fotos/{}.jpg", row.registration)
        } else {
            String::new()
        };
        lines[i + 1].push_str(&format!(",{cell}"));
    }
    sandbox.write("p.csv", lines.join("\n") + "\n");
}

fn run(sandbox: &Sandbox, fleet: &Fleet, extra: &[&str]) -> crate::harness::Ran {
    let users = sandbox.path("p.csv").display().to_string();
    sandbox
        .catraca(&["enroll", "--users", &users, "--json"])
        .embedded_cache()
        .devices(fleet)
        .args(extra)
        .run()
}

fn facial_fleet(count: usize) -> Fleet {
    fleet(
        count,
        SimConfig {
            faces: SimFaces::instant(),
            ..SimConfig::default()
        },
    )
}

fn photo_counts(report: &Value, device: usize) -> (u64, u64) {
    let line = &report["per_device"][device];
    (
        line["photos_sent"].as_u64().unwrap(),
        line["photos_refused"].as_u64().unwrap(),
    )
}

/// Every face `device` holds is one per row, a canonical JPEG: portrait 3:4 within
/// 480x640 and 70 KB, stored with the timestamp catraca chose.
fn assert_one_canonical_face_each(device: &SimDevice, rows: &[Row]) {
    let faces = device.faces();
    assert_eq!(faces.len(), rows.len(), "{faces:#?}");
    for row in rows {
        let face = device
            .face(&row.registration)
            .unwrap_or_else(|| panic!("{} has no face on {}", row.registration, device.name()));
        assert!(!face.dangling);
        assert_eq!(face.identity, row.registration);
        assert!(face.width <= 480 && face.height <= 640, "{face:?}");
        assert_eq!(face.width * 4, face.height * 3, "3:4 portrait: {face:?}");
        assert!(face.bytes <= 70_000, "{face:?}");
        assert!(
            face.timestamp.is_some_and(|t| t > 1_000_000_000),
            "{face:?}"
        );
    }
}

#[test]
fn sixty_photos_on_control_id_end_once_each_fitted_and_a_rerun_sends_no_photo_but_a_changed_one() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(3);
    // The third is a card turnstile: it gets the people, and no photo call at all.
    fleet.devices[2].set_facial(false);
    let rows = people(60);
    // Half named in the CSV's column, half found by --photos.
    with_photos(
        &sandbox,
        &rows,
        |i| i % 2 == 0,
        |i| TestPhoto::new(800, 600).seed(i as u64).build(),
    );
    let fotos = sandbox.path("fotos").display().to_string();
    let first = run(&sandbox, &fleet, &["--photos", &fotos]);
    first.expect_code(0);
    let report = first.report();
    assert_eq!(report["registered"], 180, "{}", first.shown);
    for device in &fleet.devices[..2] {
        assert_one_canonical_face_each(device, &rows);
        assert_holds_exactly(device, &rows);
    }
    assert_eq!(photo_counts(&report, 0), (60, 0));
    assert_eq!(photo_counts(&report, 1), (60, 0));
    assert_eq!(photo_counts(&report, 2), (0, 0));
    assert_holds_exactly(&fleet.devices[2], &rows);
    assert_eq!(
        fleet.devices[2].face_stats().calls,
        0,
        "a card turnstile gets no photo call"
    );
    // Fitted once for all: both facial devices hold the same bytes.
    let sha = |d: &SimDevice, r: &Row| d.face(&r.registration).unwrap().sha256;
    assert!(rows
        .iter()
        .all(|r| sha(&fleet.devices[0], r) == sha(&fleet.devices[1], r)));

    // A rerun: everything skipped by the cache, no photo sent.
    let received = |d: &SimDevice| d.face_stats().photos_received;
    let before: Vec<u64> = fleet.devices.iter().map(received).collect();
    let again = run(&sandbox, &fleet, &["--photos", &fotos]);
    again.expect_code(0);
    assert_eq!(again.report()["skipped_cache"], 180, "{}", again.shown);
    // Without the cache, the devices tell: Control iD keeps the timestamp catraca sent.
    let unchecked = run(&sandbox, &fleet, &["--photos", &fotos, "--skip-cache"]);
    unchecked.expect_code(0);
    assert_eq!(unchecked.report()["unchanged"], 180, "{}", unchecked.shown);
    assert_eq!(
        fleet.devices.iter().map(received).collect::<Vec<_>>(),
        before
    );

    // One photo changes: it alone goes again, to each facial device.
    let changed = &rows[7];
    let old = sha(&fleet.devices[0], changed);
    sandbox.write(
        &format!("fotos/{}.jpg", changed.registration),
        TestPhoto::new(900, 700).seed(999).build(),
    );
    let third = run(&sandbox, &fleet, &["--photos", &fotos]);
    third.expect_code(0);
    let report = third.report();
    assert_eq!(report["updated"], 2, "{}", third.shown);
    assert_eq!(report["skipped_cache"], 178, "{}", third.shown);
    assert_eq!(photo_counts(&report, 0), (1, 0));
    for (device, before) in fleet.devices[..2].iter().zip(&before) {
        assert_eq!(received(device), before + 1);
        assert_ne!(sha(device, changed), old);
        assert_one_canonical_face_each(device, &rows);
    }
    assert_eq!(fleet.devices[2].face_stats().calls, 0);
}

#[test]
fn a_rotated_four_megabyte_phone_photo_is_fitted_upright_and_accepted() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(1);
    let rows = people(2);
    let phone = TestPhoto::phone_photo(3);
    assert!(phone.len() > 3_000_000, "{}", phone.len());
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| {
            if i == 0 {
                phone.clone()
            } else {
                TestPhoto::new(600, 800).seed(4).build()
            }
        },
    );
    let ran = run(&sandbox, &fleet, &[]);
    ran.expect_code(0);
    let face = fleet.devices[0].face(&rows[0].registration).unwrap();
    // The simulator refuses a photo still lying on its side (EXIF orientation 6): it
    // was stored, so it arrived upright, as catraca's own fit of the file makes it.
    assert_eq!((face.width, face.height), (480, 640));
    assert!(face.bytes <= 70_000);
    let fitted = catraca::photo::fit::fit(&phone).unwrap();
    let expected: String = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
        &fitted.jpeg,
    ))
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect();
    assert_eq!(face.sha256, expected);
    assert_eq!(fleet.devices[0].face_stats().photos_refused, 0);
}

#[test]
fn photos_without_a_face_too_small_or_of_someone_else_fail_their_person_alone_with_the_reason() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(1);
    let rows = people(6);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| match i {
            // A flat grey picture has no face, whatever catraca strips.
            1 => TestPhoto::flat_grey(600, 800),
            // 90 x 120 once fitted: the face is under Control iD's 60 px.
            2 => TestPhoto::new(100, 120).seed(2).build(),
            _ => TestPhoto::new(600, 800).seed(i as u64).build(),
        },
    );
    let ran = run(&sandbox, &fleet, &[]);
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 2, "{}", ran.shown);
    assert_eq!(photo_counts(&report, 0), (4, 2));
    let reason = |registration: &str| {
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["registration"] == registration)
            .map(|f| f["error"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(
        reason(&rows[1].registration).contains("no face found"),
        "{}",
        ran.shown
    );
    assert!(
        reason(&rows[2].registration).contains("face too small"),
        "{}",
        ran.shown
    );
    // Nothing lost for the others: each person is on the device, four with their face.
    assert_holds_exactly(&fleet.devices[0], &rows);
    assert_eq!(fleet.devices[0].faces().len(), 4);

    // A better photo for one of them: the rerun sends that photo and nothing else.
    sandbox.write(
        &format!("fotos/{}.jpg", rows[1].registration),
        TestPhoto::new(600, 800).seed(77).build(),
    );
    let users_before = fleet.devices[0].users();
    let rerun = run(&sandbox, &fleet, &[]);
    let report = rerun.report();
    assert_eq!(report["updated"], 1, "{}", rerun.shown);
    assert_eq!(report["failed"], 1, "{}", rerun.shown);
    assert_eq!(photo_counts(&report, 0), (1, 1));
    assert_eq!(
        fleet.devices[0].users(),
        users_before,
        "only the photo was sent"
    );
    assert!(fleet.devices[0].face(&rows[1].registration).is_some());
}

#[test]
fn with_photo_match_a_face_already_enrolled_for_someone_else_is_refused_naming_them() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(1);
    let rows = people(3);
    let owner = rows[0].registration.clone();
    // As given: the simulator's same-as comment survives only without fitting.
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| {
            let photo = TestPhoto::new(480, 640).seed(i as u64);
            if i == 2 {
                photo.same_as(&owner).build()
            } else {
                photo.build()
            }
        },
    );
    let ran = run(
        &sandbox,
        &fleet,
        &[
            "--photo-match",
            "--photo-fit",
            "none",
            "--threads",
            "1",
            "--batch-size",
            "1",
        ],
    );
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 1, "{}", ran.shown);
    let failure = &report["failures"][0];
    assert_eq!(failure["registration"], rows[2].registration.as_str());
    let error = failure["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("face already enrolled for registration {owner}")),
        "{error}"
    );
    assert!(fleet.devices[0].face(&rows[2].registration).is_none());
}

#[test]
fn a_missing_or_non_image_photo_stops_the_run_before_anything_is_sent() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(1);
    let rows = people(3);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64).build(),
    );
    std::fs::remove_file(sandbox.path(&format!("fotos/{}.jpg", rows[1].registration))).unwrap();
    let ran = run(&sandbox, &fleet, &[]);
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("p.csv line 3, field foto: photo")
            && ran
                .stderr
                .contains(&format!("{}.jpg: cannot be read", rows[1].registration)),
        "{}",
        ran.shown
    );
    sandbox.write(
        &format!("fotos/{}.jpg", rows[1].registration),
        "a text file",
    );
    let ran = run(&sandbox, &fleet, &[]);
    ran.expect_code(2);
    assert!(ran.stderr.contains("is not an image"), "{}", ran.shown);
    assert!(fleet.devices[0].users().is_empty());
    assert_eq!(fleet.devices[0].face_stats().calls, 0);
}

#[test]
fn remove_and_prune_take_the_photos_off_with_the_people() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(1);
    let rows = people(10);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64).build(),
    );
    run(&sandbox, &fleet, &[]).expect_code(0);
    assert_eq!(fleet.devices[0].faces().len(), 10);

    // `remove` of two people: their photos go first, nothing dangling is left.
    let leaving = sandbox.write(
        "leaving.csv",
        format!(
            "matricula\n{}\n{}\n",
            rows[0].registration, rows[1].registration
        ),
    );
    sandbox
        .catraca(&["remove", "--users", leaving.to_str().unwrap()])
        .embedded_cache()
        .devices(&fleet)
        .run()
        .expect_code(0);
    // `--prune` of one more, no longer in the CSV.
    let staying = &rows[2..9];
    with_photos(
        &sandbox,
        staying,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64 + 2).build(),
    );
    run(&sandbox, &fleet, &["--prune", "--max-remove", "50%"]).expect_code(0);
    let faces = fleet.devices[0].faces();
    assert_eq!(faces.len(), 7, "{faces:#?}");
    assert!(faces.iter().all(|f| !f.dangling), "{faces:#?}");
    assert_holds_exactly(&fleet.devices[0], staying);
}

/// A devices file for `fleet`, each device with its kind, and `faces = false` for the
/// devices `card_only` picks (the others are asked).
fn devices_file(sandbox: &Sandbox, fleet: &Fleet, card_only: impl Fn(usize) -> bool) -> String {
    let mut text = String::new();
    for (i, device) in fleet.devices.iter().enumerate() {
        let kind = match device.kind() {
            Kind::Controlid => "controlid",
            Kind::Hikvision => "hikvision",
            Kind::Intelbras => "intelbras",
        };
        text.push_str(&format!(
            "[[device]]\nname = \"{}\"\nurl = \"{}\"\nkind = \"{kind}\"\n{}\n",
            device.name(),
            device.url(),
            if card_only(i) { "faces = false\n" } else { "" }
        ));
    }
    sandbox.write("devices.toml", text).display().to_string()
}

fn run_on_file(sandbox: &Sandbox, devices: &str, extra: &[&str]) -> crate::harness::Ran {
    let users = sandbox.path("p.csv").display().to_string();
    sandbox
        .catraca(&["enroll", "--users", &users, "--devices", devices, "--json"])
        .embedded_cache()
        .args(extra)
        .run()
}

fn facial_mixed(kinds: &[(Kind, usize)], faces: SimFaces) -> Fleet {
    mixed_fleet(
        kinds,
        SimConfig {
            faces,
            ..SimConfig::default()
        },
    )
}

/// Every face `device` holds is one per row, within its family's limits.
fn assert_one_face_each(device: &SimDevice, rows: &[Row]) {
    let faces = device.faces();
    assert_eq!(faces.len(), rows.len(), "{}: {faces:#?}", device.name());
    for row in rows {
        let face = device
            .face(&row.registration)
            .unwrap_or_else(|| panic!("{} has no face on {}", row.registration, device.name()));
        assert_eq!(face.format, PhotoFormat::Jpeg);
        assert_eq!((face.width, face.height), (480, 640), "{face:?}");
        assert!(face.bytes <= 70_000, "{face:?}");
    }
}

#[test]
fn a_mixed_fleet_gets_one_face_each_on_every_facial_family_and_a_card_turnstile_no_face_call() {
    let sandbox = Sandbox::new();
    let fleet = facial_mixed(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 2),
            (Kind::Intelbras, 2),
        ],
        SimFaces::instant(),
    );
    // The last Hikvision is a card model the devices file says so of; the last
    // Intelbras one catraca asks (its getCaps is refused).
    fleet.devices[2].set_facial(false);
    fleet.devices[4].set_facial(false);
    let devices = devices_file(&sandbox, &fleet, |i| i == 2);
    let rows = people(60);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| TestPhoto::new(900, 700).seed(i as u64).build(),
    );
    let first = run_on_file(&sandbox, &devices, &[]);
    first.expect_code(0);
    let report = first.report();
    assert_eq!(report["registered"], 300, "{}", first.shown);
    for (i, device) in fleet.devices.iter().enumerate() {
        assert_people(device, &rows);
        let sent = report["per_device"][i]["photos_sent"].as_u64().unwrap();
        if matches!(i, 2 | 4) {
            assert!(device.faces().is_empty());
            assert_eq!(device.face_stats().photos_received, 0, "{}", device.name());
            assert_eq!(sent, 0);
        } else {
            assert_one_face_each(device, &rows);
            assert_eq!(sent, 60, "{}", device.name());
        }
    }
    assert_eq!(
        fleet.devices[2].face_stats().calls,
        0,
        "faces = false: not even asked"
    );

    // A rerun sends no photo; one changed photo goes again to each facial device alone.
    let received: Vec<u64> = fleet
        .devices
        .iter()
        .map(|d| d.face_stats().photos_received)
        .collect();
    let again = run_on_file(&sandbox, &devices, &[]);
    again.expect_code(0);
    assert_eq!(again.report()["skipped_cache"], 300, "{}", again.shown);
    let changed = &rows[11];
    let old: Vec<Option<String>> = fleet
        .devices
        .iter()
        .map(|d| d.face(&changed.registration).map(|f| f.sha256))
        .collect();
    sandbox.write(
        &format!("fotos/{}.jpg", changed.registration),
        TestPhoto::new(700, 900).seed(4242).build(),
    );
    let third = run_on_file(&sandbox, &devices, &[]);
    third.expect_code(0);
    let report = third.report();
    assert_eq!(report["updated"], 3, "{}", third.shown);
    for (i, device) in fleet.devices.iter().enumerate() {
        let now = device.face_stats().photos_received;
        if matches!(i, 2 | 4) {
            assert_eq!(now, 0);
            continue;
        }
        assert_eq!(now, received[i] + 1, "{}", device.name());
        assert_ne!(device.face(&changed.registration).map(|f| f.sha256), old[i]);
        assert_one_face_each(device, &rows);
    }
}

#[test]
fn photos_too_small_or_without_a_face_fail_on_hikvision_and_intelbras_with_their_reasons() {
    let sandbox = Sandbox::new();
    let fleet = facial_mixed(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimFaces::instant(),
    );
    let devices = devices_file(&sandbox, &fleet, |_| false);
    let rows = people(12);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| match i {
            3 => TestPhoto::flat_grey(600, 800),
            // 200 x 266 once fitted: under both families' minimum.
            5 => TestPhoto::new(200, 266).seed(5).build(),
            _ => TestPhoto::new(600, 800).seed(i as u64).build(),
        },
    );
    let ran = run_on_file(&sandbox, &devices, &[]);
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 4, "{}", ran.shown);
    let reason = |device: &str, registration: &str| {
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["registration"] == registration && f["device"] == device)
            .map(|f| f["error"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (hik, intelbras) = (fleet.devices[0].name(), fleet.devices[1].name());
    assert!(
        reason(hik, &rows[3].registration).contains("could not model a face"),
        "{}",
        ran.shown
    );
    assert!(
        reason(intelbras, &rows[3].registration).contains("no usable face"),
        "{}",
        ran.shown
    );
    assert!(
        reason(hik, &rows[5].registration).contains("photo too small"),
        "{}",
        ran.shown
    );
    assert!(
        reason(intelbras, &rows[5].registration).contains("photo too small"),
        "{}",
        ran.shown
    );
    for device in &fleet.devices {
        assert_people(device, &rows);
        assert_eq!(device.faces().len(), 10, "{}", device.name());
    }
    // A refused photo in a batch of ten cost only its own person on Intelbras.
    assert_eq!(report["per_device"][1]["photos_sent"], 10);
    assert_eq!(report["per_device"][1]["photos_refused"], 2);
}

#[test]
fn older_firmware_without_fdsetup_accessface_or_image_timestamps_still_ends_with_one_face_each() {
    let sandbox = Sandbox::new();
    let faces = SimFaces {
        hikvision_setup: false,
        hikvision_search_delete: false,
        intelbras_access_face: false,
        controlid: ControlIdFaces::Old,
        ..SimFaces::instant()
    };
    let fleet = facial_mixed(
        &[
            (Kind::Controlid, 1),
            (Kind::Hikvision, 1),
            (Kind::Intelbras, 1),
        ],
        faces,
    );
    let devices = devices_file(&sandbox, &fleet, |_| false);
    let rows = people(14);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64).build(),
    );
    run_on_file(&sandbox, &devices, &[]).expect_code(0);
    for device in &fleet.devices {
        assert_one_face_each(device, &rows);
    }
    // A changed photo: FaceDataRecord refuses a second face, so the old one is deleted
    // (FDSearch/Delete refused here: FDDelete) and the new one added; FaceInfoManager
    // updates; old Control iD firmware is listed with user_list_images.
    let changed = &rows[4];
    sandbox.write(
        &format!("fotos/{}.jpg", changed.registration),
        TestPhoto::new(640, 800).seed(31).build(),
    );
    let old: Vec<String> = fleet
        .devices
        .iter()
        .map(|d| d.face(&changed.registration).unwrap().sha256)
        .collect();
    let ran = run_on_file(&sandbox, &devices, &[]);
    ran.expect_code(0);
    assert_eq!(ran.report()["updated"], 3, "{}", ran.shown);
    for (device, old) in fleet.devices.iter().zip(&old) {
        assert_ne!(&device.face(&changed.registration).unwrap().sha256, old);
        assert_one_face_each(device, &rows);
    }
    let (controlid, hikvision, intelbras) =
        (&fleet.devices[0], &fleet.devices[1], &fleet.devices[2]);
    assert!(requests(controlid, "user_list_images") >= 2);
    assert_eq!(requests(hikvision, "face_setup"), 0);
    // 14 added; the changed one refused (it has a face), deleted, added again.
    assert_eq!(requests(hikvision, "face_record"), 16);
    assert_eq!(
        requests(hikvision, "face_delete"),
        1,
        "FDDelete after FDSearch/Delete was refused"
    );
    assert_eq!(
        requests(intelbras, "face_insertMulti"),
        1,
        "refused once (501), then never"
    );
    assert_eq!(
        requests(intelbras, "face_add") + requests(intelbras, "face_update"),
        15
    );
}

#[test]
fn remove_and_prune_take_faces_off_hikvision_and_intelbras() {
    let sandbox = Sandbox::new();
    let fleet = facial_mixed(
        &[(Kind::Hikvision, 1), (Kind::Intelbras, 1)],
        SimFaces::instant(),
    );
    let devices = devices_file(&sandbox, &fleet, |_| false);
    let rows = people(10);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64).build(),
    );
    run_on_file(&sandbox, &devices, &[]).expect_code(0);
    let leaving = sandbox.write(
        "leaving.csv",
        format!("matricula\n{}\n", rows[0].registration),
    );
    sandbox
        .catraca(&[
            "remove",
            "--users",
            leaving.to_str().unwrap(),
            "--devices",
            &devices,
        ])
        .embedded_cache()
        .run()
        .expect_code(0);
    let staying = &rows[1..9];
    with_photos(
        &sandbox,
        staying,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64 + 1).build(),
    );
    run_on_file(&sandbox, &devices, &["--prune", "--max-remove", "50%"]).expect_code(0);
    for device in &fleet.devices {
        let faces = device.faces();
        assert_eq!(faces.len(), 8, "{}: {faces:#?}", device.name());
        assert!(faces.iter().all(|f| !f.dangling));
        assert_people(device, staying);
    }
}

#[test]
fn photos_added_to_people_already_enrolled_are_sent_despite_the_cache() {
    let sandbox = Sandbox::new();
    let fleet = facial_fleet(1);
    let rows = people(8);
    sandbox.write("p.csv", csv(&rows));
    run(&sandbox, &fleet, &[]).expect_code(0);
    assert!(fleet.devices[0].faces().is_empty());
    // The same people, now with a photo each: the cache vouched for them without one.
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| TestPhoto::new(600, 800).seed(i as u64).build(),
    );
    let ran = run(&sandbox, &fleet, &[]);
    ran.expect_code(0);
    assert_eq!(ran.report()["updated"], 8, "{}", ran.shown);
    assert_one_canonical_face_each(&fleet.devices[0], &rows);
}

#[test]
fn check_says_which_devices_take_faces_and_what_they_hold() {
    let sandbox = Sandbox::new();
    let fleet = facial_mixed(
        &[(Kind::Controlid, 2), (Kind::Hikvision, 1)],
        SimFaces::instant(),
    );
    fleet.devices[1].set_facial(false);
    let rows = people(3);
    fleet.devices[0].insert_user(&rows[0].registration, "Ana");
    fleet.devices[0].put_face(
        &rows[0].registration,
        &TestPhoto::new(480, 640).build(),
        Some(1_600_000_000),
    );
    let devices = devices_file(&sandbox, &fleet, |_| false);
    let ran = sandbox
        .catraca(&["check", "--json", "--devices", &devices])
        .run();
    ran.expect_code(0);
    let checks: Value = serde_json::from_str(&ran.stdout).unwrap();
    let learned = |i: usize| checks[i]["learned"].to_string();
    assert!(
        learned(0).contains("faces: taken; 1 photos held"),
        "{}",
        ran.shown
    );
    assert!(learned(1).contains("faces: not taken"), "{}", ran.shown);
    assert!(
        learned(2).contains("face library capacity 3000"),
        "{}",
        ran.shown
    );
}

#[test]
fn a_png_sent_as_given_to_the_oem_control_id_fails_its_person_alone() {
    let sandbox = Sandbox::new();
    let fleet = facial_mixed(
        &[(Kind::Controlid, 1)],
        SimFaces {
            controlid: ControlIdFaces::Oem,
            ..SimFaces::instant()
        },
    );
    let rows = people(4);
    with_photos(
        &sandbox,
        &rows,
        |_| true,
        |i| {
            let photo = TestPhoto::new(480, 640).seed(i as u64);
            if i == 1 {
                photo.png().build()
            } else {
                photo.build()
            }
        },
    );
    let ran = run(&sandbox, &fleet, &["--photo-fit", "none"]);
    ran.expect_code(1);
    let report = ran.report();
    assert_eq!(report["failed"], 1, "{}", ran.shown);
    assert_eq!(
        report["failures"][0]["registration"],
        rows[1].registration.as_str()
    );
    let error = report["failures"][0]["error"].as_str().unwrap();
    assert!(error.contains("Image file not recognized"), "{error}");
    assert_eq!(fleet.devices[0].faces().len(), 3);
    // Fitted (the default), the same PNG becomes a JPEG the OEM build takes.
    let fitted = run(&sandbox, &fleet, &[]);
    fitted.expect_code(0);
    assert_eq!(fleet.devices[0].faces().len(), 4);
}
