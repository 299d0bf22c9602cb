//! What a Hikvision terminal says about itself, and what its error codes mean
//! (`docs/field-evidence.md`, section 3). Limits differ by model and firmware, and
//! the device reports them in `UserInfo/capabilities` (JSON) and
//! `AccessControl/capabilities` (often XML whatever the format asked): read once per
//! device, with the documented fallbacks where a field or the whole answer is missing.
//! Every `subStatusCode` in the evidence gets a reason an operator understands.

use serde_json::Value;

/// `employeeNo` length when the device does not say: 32 on every capture.
pub const DEFAULT_EMPLOYEE_MAX: usize = 32;
/// Name bytes when the device does not say: 32, the HCNetSDK `byName[32]` of older
/// models (newer ones report 128).
pub const DEFAULT_NAME_MAX: usize = 32;
/// Search page and ID list size when the device does not say: 30, the `@max` and
/// `maxSize` of every capture.
pub const DEFAULT_LIST_SIZE: usize = 30;
/// People per `UserInfo/Delete` at most: a DS-K1T323 did not answer a delete of 50
/// within 5 s, batches of 20 worked.
pub const MAX_DELETE_BATCH: usize = 20;

/// What to do with a name longer than the device takes (`long_names` per device).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongNames {
    /// Cut at a character boundary and count it in the report (the default: a cut
    /// name still opens the door; a refused person does not).
    #[default]
    Cut,
    /// Fail the pair, naming the limit.
    Fail,
}

/// The limits a device reported, or their fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `employeeNo.@max`.
    pub employee_max: usize,
    /// `EmployeeNoInfo.characterType` other than `any`: the device takes digits only.
    pub employee_digits_only: bool,
    /// `name.@max`, counted in UTF-8 bytes.
    pub name_max: usize,
    /// `maxRecordNum`: people capacity, when told.
    pub max_records: Option<u64>,
    /// `UserInfoSearchCond.maxResults.@max`.
    pub search_page: usize,
    /// `EmployeeNoList.maxSize` of searches and deletes.
    pub list_size: usize,
    /// `isSupportUserInfoDetailDelete`: `None` when the device does not say (then
    /// `UserInfoDetail/Delete` is tried, `UserInfo/Delete` on refusal).
    pub detail_delete: Option<bool>,
    /// Whether `UserInfo/capabilities` answered at all.
    pub reported: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            employee_max: DEFAULT_EMPLOYEE_MAX,
            employee_digits_only: false,
            name_max: DEFAULT_NAME_MAX,
            max_records: None,
            search_page: DEFAULT_LIST_SIZE,
            list_size: DEFAULT_LIST_SIZE,
            detail_delete: None,
            reported: false,
        }
    }
}

fn at_max(value: Option<&Value>) -> Option<usize> {
    value
        .and_then(|v| v.get("@max"))
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
}

impl Limits {
    /// Reads `UserInfo/capabilities` (JSON) and `AccessControl/capabilities` (XML or
    /// JSON); either may be `None` (not answered).
    pub fn read(user_info: Option<&[u8]>, access_control: Option<&[u8]>) -> Limits {
        let mut limits = Limits::default();
        let parsed: Option<Value> = user_info.and_then(|b| serde_json::from_slice(b).ok());
        if let Some(info) = parsed.as_ref().and_then(|v| v.get("UserInfo")) {
            limits.reported = true;
            if let Some(max) = at_max(info.get("employeeNo")) {
                limits.employee_max = max;
            }
            if let Some(max) = at_max(info.get("name")) {
                limits.name_max = max;
            }
            limits.max_records = info.get("maxRecordNum").and_then(Value::as_u64);
            let search = info.get("UserInfoSearchCond");
            if let Some(max) = at_max(search.and_then(|s| s.get("maxResults"))) {
                limits.search_page = max;
            }
            let sizes = [search, info.get("UserInfoDelCond")].map(|cond| {
                cond.and_then(|c| c.get("EmployeeNoList"))
                    .and_then(|l| l.get("maxSize"))
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
            });
            if let Some(size) = sizes.into_iter().flatten().min() {
                limits.list_size = size;
            }
            if let Some(detail) = info
                .get("isSupportUserInfoDetailDelete")
                .and_then(Value::as_bool)
            {
                limits.detail_delete = Some(detail);
            }
        }
        if let Some(text) = access_control.and_then(|b| std::str::from_utf8(b).ok()) {
            if let Some(detail) = xml_or_json_flag(text, "isSupportUserInfoDetailDelete") {
                limits.detail_delete = Some(detail);
            }
            if let Some(kind) = character_type(text) {
                limits.employee_digits_only = !kind.eq_ignore_ascii_case("any");
            }
        }
        limits
    }

    /// Why a registration cannot go on this device, if it cannot.
    pub fn refuse_employee(&self, employee: &str) -> Option<String> {
        let length = employee.chars().count();
        if length > self.employee_max {
            return Some(format!(
                "registration {employee:?} has {length} characters; this device takes at most {} (employeeNo, from its capabilities)",
                self.employee_max
            ));
        }
        if self.employee_digits_only && !employee.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!(
                "registration {employee:?} is not all digits; this device takes digits only (employeeNo, from its capabilities)"
            ));
        }
        None
    }
}

/// `<name>true</name>` in XML or `"name":true` in JSON.
fn xml_or_json_flag(text: &str, name: &str) -> Option<bool> {
    let xml = format!("<{name}>");
    if let Some(start) = text.find(&xml) {
        let rest = &text[start + xml.len()..];
        return Some(rest.trim_start().starts_with("true"));
    }
    let json = format!("\"{name}\"");
    let start = text.find(&json)?;
    let rest = text[start + json.len()..].trim_start().strip_prefix(':')?;
    Some(rest.trim_start().starts_with("true"))
}

/// The `opt` of `<characterType opt="..."/>` inside `EmployeeNoInfo`.
fn character_type(text: &str) -> Option<&str> {
    let info = &text[text.find("EmployeeNoInfo")?..];
    let at = info.find("characterType")?;
    let rest = &info[at..];
    let opt = rest.find("opt=\"")? + "opt=\"".len();
    let end = rest[opt..].find('"')? + opt;
    Some(&rest[opt..end])
}

/// What a `subStatusCode` means, for the operator; `None` for codes not in the evidence.
pub fn reason(sub: &str) -> Option<&'static str> {
    let lower = sub.to_ascii_lowercase();
    Some(match lower.as_str() {
        "employeenoalreadyexist" | "deviceuseralreadyexist" | "personidalreadyexist" => {
            "the person is already on the device"
        }
        "employeenonotexist" => "the person is not on the device",
        "cardnoalreadyexist" | "duplicatecardno" | "cardalreadyexist" | "cardnoconflict" => {
            "the card number is already on the device, perhaps another person's"
        }
        "cardnoexist" => "the card number is not on the device",
        "devicecardfull" | "cardfullperuser" => {
            "the person holds as many cards as the device allows (5 per person on DS-K1T323)"
        }
        "userexceedlimit" | "deviceuserfull" | "userfull" => {
            "the device holds as many people as it can"
        }
        "cardnumoverlimit" | "cardnumfull" | "cardfull" => {
            "the device holds as many cards as it can"
        }
        "badjsoncontent" | "invalidcontent" => {
            "the device refused a value (errorMsg names the field)"
        }
        "badjsonformat" | "badxmlcontent" => "the device could not read the request body",
        "notsupport" => "this model or firmware does not support the call",
        "methodnotallowed" => "the call does not take this HTTP method",
        "devicebusy" => "the device is busy; catraca retries later",
        "subpicanalysismodelingerror" | "picfeaturepoints" | "facedatamodeling" => {
            "the terminal could not model a face in the photo (none found, too small, blurred or badly encoded): send a sharp head-and-shoulders photo"
        }
        "lowfacepicquality" => "the photo's quality is too low for the terminal: send a sharper photo",
        "deviceuseralreadyexistface" => "the person already has a face on the terminal",
        "exceedmaxfacenumber" | "devicememorylimited" => {
            "the terminal's face library is full"
        }
        "facelibnotexist" => "the terminal has no such face library (FDID 1, blackFD)",
        "writedatabaseerror" | "savefacepic" => "the terminal could not save the face",
        "urldownloadfail" => "the terminal could not download the photo from its URL",
        "notactivated" => "the device is not activated: activate it in its web page first",
        "riskpassword" => "the device refuses a weak password: change it in its web page",
        "permissiondenied" => "the account lacks the rights to manage people on this device",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_both_capabilities_with_fallbacks() {
        let user_info = br#"{"UserInfo":{"supportFunction":{"@opt":"post,delete,put,get,setUp"},
            "UserInfoSearchCond":{"maxResults":{"@min":1,"@max":30},
              "EmployeeNoList":{"maxSize":30,"employeeNo":{"@min":1,"@max":32}}},
            "UserInfoDelCond":{"EmployeeNoList":{"maxSize":20}},
            "employeeNo":{"@min":1,"@max":16},"name":{"@min":0,"@max":128},
            "maxRecordNum":3000}}"#;
        let access = br#"<AccessControl><EmployeeNoInfo><employeeNo min="1" max="32"/><characterType opt="number"/></EmployeeNoInfo><isSupportUserInfoDetailDelete>false</isSupportUserInfoDetailDelete></AccessControl>"#;
        let limits = Limits::read(Some(user_info), Some(access));
        assert_eq!(
            limits,
            Limits {
                employee_max: 16,
                employee_digits_only: true,
                name_max: 128,
                max_records: Some(3000),
                search_page: 30,
                list_size: 20,
                detail_delete: Some(false),
                reported: true,
            }
        );
        assert_eq!(Limits::read(None, None), Limits::default());
        assert_eq!(Limits::read(Some(b"<html>404</html>"), None).name_max, 32);
        assert!(limits
            .refuse_employee("A1001")
            .unwrap()
            .contains("digits only"));
        assert!(limits
            .refuse_employee("12345678901234567")
            .unwrap()
            .contains("at most 16"));
        assert_eq!(limits.refuse_employee("1001"), None);
    }

    #[test]
    fn every_code_in_the_evidence_has_a_reason() {
        for code in [
            "employeeNoAlreadyExist",
            "employeeNoNotExist",
            "cardNoAlreadyExist",
            "deviceCardFull",
            "deviceUserAlreadyExist",
            "duplicateCardNo",
            "cardAlreadyExist",
            "cardNoConflict",
            "personIDAlreadyExist",
            "cardNoExist",
            "userExceedLimit",
            "deviceUserFull",
            "userFull",
            "cardNumOverLimit",
            "cardNumFull",
            "cardFull",
            "cardFullPerUser",
            "badJsonContent",
            "invalidContent",
            "badJsonFormat",
            "badXmlContent",
            "notSupport",
            "methodNotAllowed",
            "deviceBusy",
            "notActivated",
            "riskPassword",
            "permissionDenied",
        ] {
            assert!(reason(code).is_some(), "{code}");
        }
        assert_eq!(reason("somethingNew"), None);
    }
}
