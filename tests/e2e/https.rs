//! The API over HTTPS with the site's own certificate: a client that pins
//! it gets answers, one that pinned another certificate is refused with a
//! sentence naming the site and both fingerprints, first contact pins it in
//! the config file, and a cleartext client gets nothing.

use std::time::Duration;

use ferry::feed::Endpoint;
use ferry::pinning;
use ferry_api::{Client, Failure};

use super::support::*;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A site serving its API over TLS, and its certificate's fingerprint.
fn https_site(dir: &std::path::Path) -> (SiteProcess, String) {
    site_config("site-a", 0).api_tls(true).write(dir);
    let site = SiteProcess::start(dir);
    assert!(site.api.starts_with("https://"), "{}", site.api);
    (site, ferry_testkit::site_fingerprint(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_only_a_client_that_pinned_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (site, fingerprint) = https_site(dir.path());

    let pinned = Client::pinned("site-a", &site.api, VIEWER, TIMEOUT, Some(&fingerprint)).unwrap();
    let info = pinned.site_info().await.unwrap();
    assert_eq!(info.fingerprint.as_deref(), Some(fingerprint.as_str()));

    // The site was given a new key (or someone sits on the path).
    let old = format!("sha256:{}", "ab".repeat(32));
    let changed = Client::pinned("site-a", &site.api, VIEWER, TIMEOUT, Some(&old)).unwrap();
    let refused = changed.site_info().await.unwrap_err();
    assert_eq!(
        refused.failure,
        Failure::Certificate {
            pinned: Some(old.clone()),
            seen: fingerprint.clone()
        }
    );
    let sentence = refused.to_string();
    assert!(sentence.starts_with("site-a: "), "{sentence}");
    assert!(sentence.contains("certificate changed"), "{sentence}");
    assert!(
        sentence.contains(&old) && sentence.contains(&fingerprint),
        "{sentence}"
    );

    let unpinned = Client::new("site-a", &site.api, VIEWER, TIMEOUT).unwrap();
    let refused = unpinned.site_info().await.unwrap_err();
    assert!(
        matches!(&refused.failure, Failure::Certificate { pinned: None, seen } if *seen == fingerprint),
        "{refused:?}"
    );

    // Cleartext on the TLS port gets no answer.
    let plain = site.api.replacen("https://", "http://", 1);
    let cleartext = Client::new("site-a", &plain, VIEWER, TIMEOUT).unwrap();
    assert!(cleartext.site_info().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_asks_and_pins_the_certificate_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let (site, fingerprint) = https_site(dir.path());
    let config_file = dir.path().join("config.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[sites]]\nname = \"site-a\"\nurl = \"{}\"\ntoken = \"{VIEWER}\"\n",
            site.api
        ),
    )
    .unwrap();
    let config = ferry::settings::load(&config_file).unwrap();
    let mut endpoints: Vec<Endpoint> =
        ferry::settings::endpoints(&config, &[], &[], &|_| None).unwrap();

    // Declined: nothing pinned, nothing stored.
    let mut asked = Vec::new();
    let declined = pinning::first_contact(&mut endpoints, &config_file, &mut |q: &str| {
        asked.push(q.to_string());
        false
    })
    .await;
    assert!(declined.unwrap_err().to_string().contains("not trusted"));
    assert!(asked[0].contains(&fingerprint), "{}", asked[0]);
    assert_eq!(endpoints[0].fingerprint, None);

    pinning::first_contact(&mut endpoints, &config_file, &mut |_: &str| true)
        .await
        .unwrap();
    assert_eq!(
        endpoints[0].fingerprint.as_deref(),
        Some(fingerprint.as_str())
    );
    let stored = ferry::settings::load(&config_file).unwrap();
    assert_eq!(
        stored.sites[0].fingerprint.as_deref(),
        Some(fingerprint.as_str())
    );
    let info = endpoints[0]
        .client(TIMEOUT)
        .unwrap()
        .site_info()
        .await
        .unwrap();
    assert_eq!(info.name, "site-a");
}

/// What the TUI shows of a site whose certificate changed: its feed goes
/// down with the sentence naming both fingerprints, never with data; and a
/// pin in the config that is no fingerprint at all is said to be one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tuis_feed_refuses_a_changed_certificate_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (site, fingerprint) = https_site(dir.path());
    let old = format!("sha256:{}", "cd".repeat(32));
    let endpoint = |pin: &str| Endpoint {
        name: "site-a".into(),
        url: site.api.clone(),
        token: VIEWER.into(),
        fingerprint: Some(pin.into()),
    };
    for (pin, says) in [
        (
            old.as_str(),
            vec!["certificate changed", old.as_str(), fingerprint.as_str()],
        ),
        (
            "sha256:abcd",
            vec!["sha256:abcd", "not a SHA-256 fingerprint"],
        ),
    ] {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let feed = tokio::spawn(ferry::feed::run(0, endpoint(pin), tx));
        let update = tokio::time::timeout(TIMEOUT, rx.recv())
            .await
            .expect("the feed said nothing")
            .expect("the feed ended");
        feed.abort();
        match update {
            ferry::model::FeedUpdate::Down { site: 0, error } => {
                for said in says {
                    assert!(error.contains(said), "{pin}: {error:?} lacks {said:?}");
                }
            }
            other => panic!("{pin}: the feed went on with {other:?}"),
        }
    }
}
