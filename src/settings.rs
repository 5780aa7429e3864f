//! The TUI's own settings: which sites to watch (from the config file or
//! `--site/--token`), the theme, and where config, themes and logs live.
//! A token can come from a file or the environment instead of the command
//! line, so it does not show in `ps`.

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
    /// One of `token`, `token_file` (a file holding it) or `token_env`
    /// (an environment variable holding it).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// The site's API certificate, pinned on first contact (`sha256:…`).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Where one site's API token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given as is (`--token`, `token =`): visible in `ps` on the command line.
    Given(String),
    /// Read from a file (`--token-file`, `token_file =`), trimmed.
    File(PathBuf),
    /// Read from an environment variable (`token_env =`, `FERRY_TOKEN`).
    Env(String),
}

/// Why a site's token cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {}: {error}", path.display())]
    UnreadableFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the environment variable {0} holding a token is not set")]
    EnvUnset(String),
    #[error("an empty --token")]
    EmptyGiven,
    #[error("the token file {} is empty", .0.display())]
    EmptyFile(PathBuf),
    #[error("the environment variable {0} is empty")]
    EmptyEnv(String),
}

/// Why the settings name no sites ferry can watch.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `reason` is the TOML parser's, on one line.
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("{}: {error}", path.display())]
    UnreadableFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("site {site} in the config file: give one of token, token_file and token_env")]
    TokenSources { site: String },
    #[error("site {site}: {error}")]
    Token { site: String, error: TokenError },
    #[error(
        "{sites} --site but {tokens} tokens: give one --token or --token-file after each --site, \
         or none and set {TOKEN_ENV}_1, {TOKEN_ENV}_2 or {TOKEN_ENV}"
    )]
    TokenCount { sites: usize, tokens: usize },
    #[error(
        "no sites to watch: give --site URL --token T (twice for a pair), \
         list them in the config file (see `ferry info`), or run `ferry demo`"
    )]
    NoSites,
    #[error("site URL {0:?} must start with http:// or https://")]
    NotHttp(String),
}

/// The environment variable read for site `n` (1-based) given with
/// `--site` but no token: `FERRY_TOKEN_<n>`, else `FERRY_TOKEN`.
pub const TOKEN_ENV: &str = "FERRY_TOKEN";

impl TokenSource {
    /// The token, or a sentence saying why there is none.
    pub fn read(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, TokenError> {
        let token = match self {
            Self::Given(token) => token.clone(),
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|error| TokenError::UnreadableFile {
                    path: path.clone(),
                    error,
                })?
                .trim()
                .to_string(),
            Self::Env(name) => env(name)
                .ok_or_else(|| TokenError::EnvUnset(name.clone()))?
                .trim()
                .to_string(),
        };
        if token.is_empty() {
            return Err(match self {
                Self::Given(_) => TokenError::EmptyGiven,
                Self::File(path) => TokenError::EmptyFile(path.clone()),
                Self::Env(name) => TokenError::EmptyEnv(name.clone()),
            });
        }
        Ok(token)
    }
}

impl SiteEntry {
    fn token_source(&self) -> Result<TokenSource, SettingsError> {
        let site = self.name.as_deref().unwrap_or(&self.url);
        match (&self.token, &self.token_file, &self.token_env) {
            (Some(t), None, None) => Ok(TokenSource::Given(t.clone())),
            (None, Some(f), None) => Ok(TokenSource::File(f.clone())),
            (None, None, Some(e)) => Ok(TokenSource::Env(e.clone())),
            (None, None, None) => Ok(TokenSource::Env(TOKEN_ENV.into())),
            _ => Err(SettingsError::TokenSources {
                site: site.to_string(),
            }),
        }
    }
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
pub fn load(path: &Path) -> Result<ConfigFile, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| SettingsError::BadFile {
            path: path.to_path_buf(),
            reason: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(error) => Err(SettingsError::UnreadableFile {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// The sites to watch: `--site` with its token (given, from a file, or
/// from the environment) wins over the config file. `env` looks up an
/// environment variable (the real one outside tests).
pub fn endpoints(
    config: &ConfigFile,
    sites: &[String],
    tokens: &[TokenSource],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Endpoint>, SettingsError> {
    let from_env = |n: usize| {
        let numbered = format!("{TOKEN_ENV}_{n}");
        if env(&numbered).is_some() {
            TokenSource::Env(numbered)
        } else {
            TokenSource::Env(TOKEN_ENV.into())
        }
    };
    let endpoints: Vec<Endpoint> = if sites.is_empty() {
        config
            .sites
            .iter()
            .map(|s| {
                let source = s.token_source()?;
                let name = s.name.clone().unwrap_or_else(|| s.url.clone());
                Ok(Endpoint {
                    token: source.read(env).map_err(|error| SettingsError::Token {
                        site: name.clone(),
                        error,
                    })?,
                    name,
                    url: s.url.trim_end_matches('/').to_string(),
                    fingerprint: s.fingerprint.clone(),
                })
            })
            .collect::<Result<_, SettingsError>>()?
    } else {
        if !tokens.is_empty() && sites.len() != tokens.len() {
            return Err(SettingsError::TokenCount {
                sites: sites.len(),
                tokens: tokens.len(),
            });
        }
        sites
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let source = tokens.get(i).cloned().unwrap_or_else(|| from_env(i + 1));
                Ok(Endpoint {
                    name: url.clone(),
                    url: url.trim_end_matches('/').to_string(),
                    token: source.read(env).map_err(|error| SettingsError::Token {
                        site: url.clone(),
                        error,
                    })?,
                    fingerprint: None,
                })
            })
            .collect::<Result<_, SettingsError>>()?
    };
    if endpoints.is_empty() {
        return Err(SettingsError::NoSites);
    }
    for e in &endpoints {
        if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
            return Err(SettingsError::NotHttp(e.url.clone()));
        }
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FERRY_TOKEN_2" => Some("two\n".into()),
            "FERRY_TOKEN" => Some("shared".into()),
            "MY_TOKEN" => Some("mine".into()),
            _ => None,
        }
    }

    #[test]
    fn tokens_come_from_the_command_line_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let sites = ["http://a:1".to_string(), "http://b:2".to_string()];
        let given = [
            TokenSource::Given("t1".into()),
            TokenSource::File(file.clone()),
        ];
        let got = endpoints(&ConfigFile::default(), &sites, &given, &env).unwrap();
        assert_eq!(got[0].token, "t1");
        assert_eq!(got[1].token, "from-file");
        // No token on the command line: FERRY_TOKEN_<n>, else FERRY_TOKEN.
        let got = endpoints(&ConfigFile::default(), &sites, &[], &env).unwrap();
        assert_eq!(got[0].token, "shared");
        assert_eq!(got[1].token, "two");
        let err = endpoints(&ConfigFile::default(), &sites, &given[..1], &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 --site but 1 tokens"), "{err}");
    }

    #[test]
    fn config_entries_name_their_token_file_or_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file").unwrap();
        let text = format!(
            "[[sites]]\nname = \"site-a\"\nurl = \"http://a:1\"\ntoken_file = {:?}\n\
             [[sites]]\nname = \"site-b\"\nurl = \"http://b:2\"\ntoken_env = \"MY_TOKEN\"\n",
            file.display().to_string()
        );
        let config: ConfigFile = toml::from_str(&text).unwrap();
        let got = endpoints(&config, &[], &[], &env).unwrap();
        assert_eq!(got[0].token, "from-file");
        assert_eq!(got[1].token, "mine");
        let text = "[[sites]]\nname = \"site-c\"\nurl = \"http://c:3\"\ntoken_env = \"UNSET\"\n";
        let config: ConfigFile = toml::from_str(text).unwrap();
        let err = endpoints(&config, &[], &[], &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "site site-c: the environment variable UNSET holding a token is not set"
        );
    }
}
