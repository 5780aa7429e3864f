//! The TUI's own settings: which sites to watch (from the config file or
//! `--site/--token`), the theme, and where config, themes and logs live.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::feed::Endpoint;

/// `config.toml` in the platform config directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub theme: Option<String>,
    #[serde(default)]
    pub sites: Vec<SiteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    pub name: Option<String>,
    pub url: String,
    pub token: String,
    /// The site's API certificate, pinned on first contact (`sha256:…`).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Where ferry keeps its files on this machine.
pub struct Paths {
    pub config_file: PathBuf,
    pub themes_dir: PathBuf,
    pub log_file: PathBuf,
}

impl Paths {
    pub fn discover() -> Self {
        let dirs = directories::ProjectDirs::from("dev", "ferry", "ferry");
        let config = dirs
            .as_ref()
            .map(|d| d.config_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".ferry"));
        let state = dirs
            .as_ref()
            .map(|d| d.data_local_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".ferry"));
        Self {
            config_file: config.join("config.toml"),
            themes_dir: config.join("themes"),
            log_file: state.join("ferry.log"),
        }
    }
}

/// Reads the config file; a missing file is an empty config, a bad one an
/// error naming the file and the problem.
pub fn load(path: &Path) -> Result<ConfigFile, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            format!(
                "{}: {}",
                path.display(),
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The sites to watch: `--site/--token` pairs win over the config file.
pub fn endpoints(
    config: &ConfigFile,
    sites: &[String],
    tokens: &[String],
) -> Result<Vec<Endpoint>, String> {
    if sites.len() != tokens.len() {
        return Err(format!(
            "{} --site but {} --token: give one --token after each --site",
            sites.len(),
            tokens.len()
        ));
    }
    let endpoints: Vec<Endpoint> = if sites.is_empty() {
        config
            .sites
            .iter()
            .map(|s| Endpoint {
                name: s.name.clone().unwrap_or_else(|| s.url.clone()),
                url: s.url.trim_end_matches('/').to_string(),
                token: s.token.clone(),
                fingerprint: s.fingerprint.clone(),
            })
            .collect()
    } else {
        sites
            .iter()
            .zip(tokens)
            .map(|(url, token)| Endpoint {
                name: url.clone(),
                url: url.trim_end_matches('/').to_string(),
                token: token.clone(),
                fingerprint: None,
            })
            .collect()
    };
    if endpoints.is_empty() {
        return Err(
            "no sites to watch: give --site URL --token T (twice for a pair), \
             list them in the config file (see `ferry info`), or run `ferry demo`"
                .into(),
        );
    }
    for e in &endpoints {
        if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
            return Err(format!(
                "site URL {:?} must start with http:// or https://",
                e.url
            ));
        }
    }
    Ok(endpoints)
}
