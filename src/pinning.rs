//! First contact with an `https://` site, as SSH meets a new host: the TUI
//! and the CLI show the certificate's fingerprint the site presents, ask
//! whether to trust it, and pin it in the config file's entry for the site.
//! A pinned fingerprint that changes is refused by the client itself
//! ([`ferry_api::Failure::Certificate`]), never asked about.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use ferry_api::Failure;

use crate::feed::Endpoint;

/// Why a certificate was not pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(transparent)]
    Client(#[from] ferry_api::ClientError),
    #[error("{site}: the certificate {seen} was not trusted; nothing was sent to the site")]
    NotTrusted { site: String, seen: String },
    #[error("{}: {error}", path.display())]
    ConfigFile {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("{url} has no entry in {} (given with --site?)", path.display())]
    NoEntry {
        url: String,
        path: std::path::PathBuf,
    },
}

/// How long first contact waits for a site's handshake.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pins the certificate of every `https://` endpoint that has none yet,
/// asking `confirm` first; stores each confirmed one in `config_file`.
/// Refuses when the operator declines. A site that cannot be reached is
/// left as it is: the dashboard says so.
pub async fn first_contact(
    endpoints: &mut [Endpoint],
    config_file: &Path,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<(), PinError> {
    for endpoint in endpoints.iter_mut() {
        if !endpoint.url.starts_with("https://") || endpoint.fingerprint.is_some() {
            continue;
        }
        let client = endpoint.client(PROBE_TIMEOUT)?;
        let seen = match client.site_info().await {
            Err(e) => match e.failure {
                Failure::Certificate { seen, .. } => seen,
                _ => continue,
            },
            Ok(_) => continue,
        };
        let question = format!(
            "{} ({}) presents the certificate {seen}, which is not pinned.\n\
             Check it against the fingerprint the site shows (`GET /api/v1/site`, or its \
             log at start). Trust it and pin it in {}?",
            endpoint.name,
            endpoint.url,
            config_file.display()
        );
        if !confirm(&question) {
            return Err(PinError::NotTrusted {
                site: endpoint.name.clone(),
                seen,
            });
        }
        endpoint.fingerprint = Some(seen.clone());
        if let Err(why) = store(config_file, &endpoint.url, &seen) {
            eprintln!("ferry: pinned for this session only: {why}");
        }
    }
    Ok(())
}

/// Asks on the terminal (`[y/N]`); without one, declines, saying how to pin.
pub fn ask_on_terminal(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "{question}\nferry: no terminal to ask on: add `fingerprint = \"sha256:…\"` to the \
             site's entry in the config file after checking it"
        );
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}

/// Writes `fingerprint = "…"` under the `url = "…"` line of the site's
/// `[[sites]]` entry, keeping the rest of the file (comments included) as
/// it is.
pub fn store(config_file: &Path, url: &str, fingerprint: &str) -> Result<(), PinError> {
    let in_file = |error| PinError::ConfigFile {
        path: config_file.to_path_buf(),
        error,
    };
    let text = std::fs::read_to_string(config_file).map_err(in_file)?;
    let mut out = String::with_capacity(text.len() + 100);
    let mut stored = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !stored && url_of(line).is_some_and(|u| u.trim_end_matches('/') == url) {
            if !line.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("fingerprint = \"{fingerprint}\"\n"));
            stored = true;
        }
    }
    if !stored {
        return Err(PinError::NoEntry {
            url: url.to_string(),
            path: config_file.to_path_buf(),
        });
    }
    std::fs::write(config_file, out).map_err(in_file)
}

/// The URL of a `url = "…"` line.
fn url_of(line: &str) -> Option<&str> {
    let (key, value) = line.split_once('=')?;
    if key.trim() != "url" {
        return None;
    }
    value.trim().strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_the_fingerprint_under_the_sites_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let text = "# mine\n[[sites]]\nname = \"a\"\nurl = \"https://a:1\"\ntoken = \"t\"\n\n\
                    [[sites]]\nname = \"b\"\nurl = \"https://b:1\"\ntoken = \"u\"\n";
        std::fs::write(&file, text).unwrap();
        store(&file, "https://b:1", "sha256:ab").unwrap();
        let config: crate::settings::ConfigFile =
            toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(config.sites[0].fingerprint, None);
        assert_eq!(config.sites[1].fingerprint.as_deref(), Some("sha256:ab"));
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .starts_with("# mine\n")
        );
        assert!(store(&file, "https://c:1", "sha256:cd").is_err());
    }
}
