//! `ferry alarms` lists both sites' alarms with their acknowledgements;
//! `ferry alarm ack SITE#ID` acknowledges one at its site (operator), which
//! keeps it, audits it and shows it acknowledged to every client.

use serde::Serialize;

use super::commands::{Failed, Output, identify, print_json};
use super::{date_time, table};
use ferry_api::call::Call;
use ferry_api::client::Client;
use ferry_api::types::EventRow;

/// An alarm and the site that raised it: `site-a#12`.
#[derive(Debug, Serialize)]
struct SiteAlarm {
    site: String,
    #[serde(flatten)]
    row: EventRow,
}

/// How many alarms each site lists.
const LIMIT: usize = 200;

pub async fn alarms(clients: &[Client], output: Output) -> Result<u8, Failed> {
    let mut all = Vec::new();
    for (client, info) in clients.iter().zip(identify(clients).await) {
        let info = info.map_err(|e| Failed::site("describe itself", &e))?;
        let rows = client
            .alarms(LIMIT)
            .await
            .map_err(|e| Failed::site("list its alarms", &e))?;
        all.extend(rows.into_iter().map(|row| SiteAlarm {
            site: info.name.clone(),
            row,
        }));
    }
    all.sort_by_key(|a| std::cmp::Reverse(a.row.at_ms));
    if output == Output::Json {
        return print_json(&all);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|a| {
            vec![
                format!("{}#{}", a.site, a.row.id),
                date_time(a.row.at_ms),
                a.row.severity.clone(),
                a.row.acked.as_ref().map_or("open".into(), |k| {
                    format!("acked by {} {}", k.by, date_time(k.at_ms))
                }),
                a.row.message.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["Alarm", "When", "Severity", "State", "Message"], &rows)
    );
    Ok(0)
}

/// Acknowledges `SITE#ID` (or a bare `ID` when only one site has it).
pub async fn ack(clients: &[Client], alarm: &str) -> Result<u8, Failed> {
    let (site, id) = match alarm.split_once('#') {
        Some((site, id)) => (Some(site), id),
        None => (None, alarm),
    };
    let id: i64 = id
        .parse()
        .map_err(|_| Failed::usage(format!("{alarm:?} is not an alarm: give SITE#ID")))?;
    let mut holders = Vec::new();
    for (client, info) in clients.iter().zip(identify(clients).await) {
        let Ok(info) = info else { continue };
        if site.is_some_and(|s| s != info.name) {
            continue;
        }
        let has = client
            .alarms(1000)
            .await
            .is_ok_and(|rows| rows.iter().any(|r| r.id == id));
        if has {
            holders.push((client, info.name));
        }
    }
    let (client, name) = match holders.as_slice() {
        [one] => one,
        [] => {
            return Err(Failed::usage(format!(
                "no alarm {alarm} at any site that answered"
            )));
        }
        _ => {
            return Err(Failed::usage(format!(
                "both sites have an alarm {id}: give SITE#ID (see ferry alarms)"
            )));
        }
    };
    let what = format!("acknowledge alarm {name}#{id}");
    let row: EventRow = client
        .send_as(&Call::AckAlarm { id })
        .await
        .map_err(|e| Failed::site(&what, &e))?;
    let by = row.acked.map_or("?".into(), |k| k.by);
    eprintln!("acknowledged {name}#{id} (by {by}): {}", row.message);
    Ok(0)
}
