//! `ferry pair`: pairing two sites as an operator ceremony, as SSH's first
//! contact or vSphere Replication's certificate thumbprint: both sites'
//! certificate fingerprints are shown and confirmed (by a person, or by a
//! script that names them) before each site pins the other's.

use std::io::IsTerminal;

use ferry_api::types::{PeerRequest, SiteInfo};
use ferry_api::{Call, Client};

use super::commands::{Failed, PROBLEM};

/// What the operator (or a script) confirmed.
pub struct PairOptions {
    /// Go ahead without asking; needs both expected fingerprints.
    pub yes: bool,
    /// The first site's fingerprint, as read from it out of band.
    pub expect: Option<String>,
    /// The second site's fingerprint.
    pub expect_peer: Option<String>,
    /// Pin a certificate other than the one a site pins now.
    pub replace: bool,
}

/// One side of the pair as the ceremony shows it.
struct Side<'a> {
    client: &'a Client,
    info: SiteInfo,
    fingerprint: String,
    replication: String,
}

/// Pairs the two configured sites with each other.
pub async fn pair(clients: &[Client], o: PairOptions) -> Result<u8, Failed> {
    let [a, b] = clients else {
        return Err(Failed::usage(format!(
            "pairing needs two sites (the config file's two, or --site twice); {} given",
            clients.len()
        )));
    };
    if o.yes && (o.expect.is_none() || o.expect_peer.is_none()) {
        return Err(Failed::usage(
            "--yes pairs without asking only when the script names both certificates: \
             add --expect-fingerprint (the first site's) and --expect-peer-fingerprint (the second's)",
        ));
    }
    let a = side(a).await?;
    let b = side(b).await?;
    for (site, expected) in [(&a, &o.expect), (&b, &o.expect_peer)] {
        if let Some(expected) = expected
            && !same(expected, &site.fingerprint)
        {
            return Err(Failed {
                message: format!(
                    "{} presents the certificate {}, not the expected {expected}: nothing was paired",
                    site.info.name, site.fingerprint
                ),
                code: PROBLEM,
            });
        }
    }
    eprintln!("Pairing, each site to pin the other's certificate on the replication link:");
    let mut replaces = Vec::new();
    for (site, other) in [(&a, &b), (&b, &a)] {
        eprintln!(
            "  {:<12} {}  certificate {}  replication {}",
            site.info.name,
            site.client.url(),
            site.fingerprint,
            site.replication
        );
        if let Some(old) = site
            .info
            .peer
            .as_ref()
            .and_then(|p| p.fingerprint.clone())
            .filter(|old| !old.is_empty() && !same(old, &other.fingerprint))
        {
            replaces.push(format!(
                "{} pins {old} now; this replaces it with {}",
                site.info.name, other.fingerprint
            ));
        }
    }
    for line in &replaces {
        eprintln!("  ! {line}");
    }
    if !replaces.is_empty() && !o.replace {
        return Err(Failed {
            message: format!(
                "{}. Re-pairing with a new certificate needs --replace (and is audited)",
                replaces.join("; ")
            ),
            code: PROBLEM,
        });
    }
    if !o.yes
        && !ask(
            "Check both fingerprints against the sites' own (their logs at start, or `GET /api/v1/site` there). Pair them?",
        )?
    {
        return Err(Failed {
            message: "not confirmed: nothing was paired".into(),
            code: PROBLEM,
        });
    }
    for (site, other) in [(&a, &b), (&b, &a)] {
        let request = PeerRequest {
            name: other.info.name.clone(),
            url: other.client.url().to_string(),
            replication: other.replication.clone(),
            fingerprint: other.fingerprint.clone(),
            replace: o.replace,
            secret: None,
        };
        site.client
            .send(&Call::PairPeer(request))
            .await
            .map_err(|e| Failed::site(&format!("pin {}'s certificate", other.info.name), &e))?;
    }
    println!(
        "paired: {} pins {}, {} pins {}",
        a.info.name, b.fingerprint, b.info.name, a.fingerprint
    );
    Ok(0)
}

/// Reads a site's name, fingerprint and replication address. An `https://`
/// API shows the certificate the link uses too: if the two differ, the
/// answer did not come from the site that holds the key.
async fn side(client: &Client) -> Result<Side<'_>, Failed> {
    let info = client
        .site_info()
        .await
        .map_err(|e| Failed::site("show its certificate", &e))?;
    let fingerprint = info.fingerprint.clone().ok_or_else(|| Failed {
        message: format!(
            "{} shows no certificate fingerprint: is it older than ferry pair?",
            info.name
        ),
        code: PROBLEM,
    })?;
    if let Some(seen) = client.seen_fingerprint()
        && !same(&seen, &fingerprint)
    {
        return Err(Failed {
            message: format!(
                "{} serves its API with the certificate {seen} but names {fingerprint} for its link: \
                 refusing to pair",
                info.name
            ),
            code: PROBLEM,
        });
    }
    let replication = replication_address(&info, client.url()).ok_or_else(|| Failed {
        message: format!(
            "{} shows no replication address: is it older than ferry pair?",
            info.name
        ),
        code: PROBLEM,
    })?;
    Ok(Side {
        client,
        info,
        fingerprint,
        replication,
    })
}

/// The site's replication listener as its peer can reach it: a listener
/// bound to every address (`0.0.0.0`, `[::]`) is reached at the host the
/// API was reached at.
fn replication_address(info: &SiteInfo, api_url: &str) -> Option<String> {
    let bound: std::net::SocketAddr = info.replication.as_deref()?.parse().ok()?;
    if !bound.ip().is_unspecified() {
        return Some(bound.to_string());
    }
    let host = api_url
        .split_once("://")
        .map_or(api_url, |(_, rest)| rest)
        .split('/')
        .next()?;
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    Some(format!("{host}:{}", bound.port()))
}

/// Fingerprints compare without regard to case.
fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Yes or no from the terminal; a script must say `--yes`.
fn ask(question: &str) -> Result<bool, Failed> {
    if !std::io::stdin().is_terminal() {
        return Err(Failed::usage(format!(
            "{question} There is no terminal to ask on: add --yes with --expect-fingerprint \
             and --expect-peer-fingerprint"
        )));
    }
    Ok(crate::pinning::ask_on_terminal(question))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(replication: &str) -> SiteInfo {
        SiteInfo {
            name: "site-a".into(),
            role: ferry_api::types::Role::Admin,
            peer: None,
            vm_count: 0,
            replicated_count: 0,
            fingerprint: None,
            replication: Some(replication.into()),
        }
    }

    #[test]
    fn a_listener_on_every_address_is_reached_at_the_apis_host() {
        let at = |bound, url| replication_address(&info(bound), url);
        assert_eq!(
            at("10.0.0.5:47801", "https://dr.example:47800").unwrap(),
            "10.0.0.5:47801"
        );
        assert_eq!(
            at("0.0.0.0:47801", "https://dr.example:47800/").unwrap(),
            "dr.example:47801"
        );
        assert_eq!(
            at("[::]:47801", "http://[fd00::1]:47800").unwrap(),
            "[fd00::1]:47801"
        );
    }
}
