//! The window schedule: which cap holds when, and what a bad policy is told.

use super::*;

/// 2026-11-30 was a Monday: ms at `day` days later (0 = Monday), `hh:mm` UTC.
fn at(day: u64, hh: u64, mm: u64) -> u64 {
    const MONDAY: u64 = 1_796_000_000_000 / 86_400_000 * 86_400_000;
    (MONDAY / 86_400_000 + day) * 86_400_000 + (hh * 60 + mm) * 60_000
}

fn office_hours() -> BandwidthPolicy {
    BandwidthPolicy {
        mib_per_second: None,
        windows: vec![BandwidthWindow {
            days: "mon-fri".into(),
            from: "08:00".into(),
            to: "18:00".into(),
            mib_per_second: Some(50),
        }],
    }
}

#[test]
fn the_monday_helper_is_a_monday() {
    // 2026-11-30T00:00Z; checked by hand against a calendar.
    assert_eq!(at(0, 0, 0), 1_796_000_000_000 / 86_400_000 * 86_400_000);
    let days = at(0, 0, 0) / 86_400_000;
    assert_eq!((days + 3) % 7, 0, "the helper's base day is a Monday");
}

#[test]
fn weekday_office_hours_are_capped_and_the_rest_is_not() {
    let s = office_hours().validate().unwrap();
    let cap = |d, h, m| s.cap_at(at(d, h, m)).mib_per_second;
    assert_eq!(cap(0, 8, 0), Some(50), "Monday at the start of the window");
    assert_eq!(cap(2, 12, 30), Some(50), "Wednesday noon");
    assert_eq!(cap(4, 17, 59), Some(50), "Friday's last minute");
    assert_eq!(cap(4, 18, 0), None, "the end is not in the window");
    assert_eq!(cap(0, 7, 59), None, "before the window");
    assert_eq!(cap(5, 12, 0), None, "Saturday");
    assert_eq!(cap(6, 12, 0), None, "Sunday");
    assert_eq!(s.cap_at(at(1, 9, 0)).window, Some(0));
    assert!(!s.is_unlimited());
}

#[test]
fn the_first_matching_window_wins_and_the_default_fills_the_rest() {
    let policy = BandwidthPolicy {
        mib_per_second: Some(200),
        windows: vec![
            BandwidthWindow {
                days: "sat,sun".into(),
                from: "00:00".into(),
                to: "24:00".into(),
                mib_per_second: None,
            },
            BandwidthWindow {
                days: "daily".into(),
                from: "09:00".into(),
                to: "17:00".into(),
                mib_per_second: Some(20),
            },
        ],
    };
    let s = policy.validate().unwrap();
    assert_eq!(s.cap_at(at(5, 10, 0)).mib_per_second, None, "weekend first");
    assert_eq!(s.cap_at(at(6, 23, 59)).mib_per_second, None);
    assert_eq!(s.cap_at(at(3, 10, 0)).mib_per_second, Some(20));
    assert_eq!(s.cap_at(at(3, 20, 0)).mib_per_second, Some(200));
    assert_eq!(s.cap_at(at(3, 20, 0)).bytes_per_second(), Some(200 << 20));
    assert_eq!(s.cap_at(at(3, 10, 0)).to_string(), "20 MiB/s (window 2)");
}

#[test]
fn no_policy_is_unlimited() {
    let s = BandwidthPolicy::default().validate().unwrap();
    assert!(s.is_unlimited());
    assert_eq!(s.cap_at(at(1, 12, 0)).to_string(), "unlimited");
}

#[test]
fn bad_policies_name_the_field_and_why() {
    let with = |f: &dyn Fn(&mut BandwidthPolicy)| {
        let mut p = office_hours();
        f(&mut p);
        p.validate().unwrap_err()
    };
    let e = with(&|p| p.mib_per_second = Some(0));
    assert_eq!(e.field, "mib_per_second");
    assert!(e.message.contains("outside 1 to 102400"), "{}", e.message);
    let e = with(&|p| p.windows[0].mib_per_second = Some(MAX_MIB_PER_SECOND + 1));
    assert_eq!(e.field, "windows[0].mib_per_second");
    let e = with(&|p| p.windows[0].days = "mon-fry".into());
    assert_eq!(e.field, "windows[0].days");
    assert!(e.message.contains("\"fry\" is not a day"), "{}", e.message);
    let e = with(&|p| p.windows[0].days = "fri-mon".into());
    assert!(e.message.contains("runs backwards"), "{}", e.message);
    let e = with(&|p| p.windows[0].from = "8:00".into());
    assert_eq!(e.field, "windows[0].from");
    assert!(e.message.contains("HH:MM in UTC"), "{}", e.message);
    let e = with(&|p| p.windows[0].from = "24:00".into());
    assert_eq!(e.field, "windows[0].from");
    let e = with(&|p| p.windows[0].to = "18:60".into());
    assert_eq!(e.field, "windows[0].to");
    let e = with(&|p| p.windows[0].to = "07:00".into());
    assert_eq!(e.field, "windows[0].to");
    assert!(e.message.contains("not after 08:00"), "{}", e.message);
    let e = with(&|p| p.windows = vec![p.windows[0].clone(); MAX_WINDOWS + 1]);
    assert_eq!(e.field, "windows");
}

#[test]
fn a_policy_reads_from_json_and_refuses_unknown_keys() {
    let p: BandwidthPolicy = serde_json::from_str(
        r#"{"mib_per_second": 500, "windows": [{"days": "mon-fri", "from": "08:00", "to": "18:00", "mib_per_second": 50}]}"#,
    )
    .unwrap();
    assert_eq!(p.windows[0].mib_per_second, Some(50));
    assert_eq!(p.mib_per_second, Some(500));
    assert!(serde_json::from_str::<BandwidthPolicy>(r#"{"cap": 5}"#).is_err());
}
