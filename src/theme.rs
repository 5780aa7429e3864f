//! Themes: semantic styles (`ok`, `warn`, `crit`, `stale`, `selected`, …)
//! from TOML files. The four built-in themes are embedded from themes/;
//! a file of the same name in the user's themes directory overrides one.
//! Widgets ask for a role, never for a colour.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

pub const BUILT_IN: [(&str, &str); 4] = [
    ("dark", include_str!("../themes/dark.toml")),
    ("light", include_str!("../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../themes/monochrome.toml")),
];

const ROLES: [&str; 13] = [
    "base", "title", "border", "dim", "accent", "ok", "warn", "crit", "stale", "selected", "badge",
    "gauge", "key",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    styles: BTreeMap<String, StyleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underlined: bool,
    #[serde(default)]
    reversed: bool,
}

/// A loaded theme: one style per role.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<&'static str, Style>,
}

/// Why a theme cannot be used: which file or name, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("unknown style {0:?}; known: {known}", known = ROLES.join(", "))]
    UnknownRole(String),
    #[error("style {role}: colour {colour:?}")]
    Colour { role: &'static str, colour: String },
    #[error("{}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: Box<ThemeError>,
    },
    #[error("no theme {name:?}: built in are {known}")]
    Unknown { name: String, known: String },
}

impl Theme {
    pub fn parse(text: &str) -> Result<Self, ThemeError> {
        let file: ThemeFile = toml::from_str(text)?;
        let mut styles = BTreeMap::new();
        for (role, spec) in &file.styles {
            let role = ROLES
                .iter()
                .find(|r| *r == role)
                .ok_or_else(|| ThemeError::UnknownRole(role.clone()))?;
            styles.insert(*role, style(role, spec)?);
        }
        Ok(Self {
            name: file.name,
            styles,
        })
    }

    /// Loads theme `name`: the user's file if there is one, else built in.
    pub fn load(name: &str, user_dir: &Path) -> Result<Self, ThemeError> {
        let path = user_dir.join(format!("{name}.toml"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Self::parse(&text).map_err(|e| ThemeError::File {
                path,
                source: Box::new(e),
            });
        }
        let text = BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| {
                let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                ThemeError::Unknown {
                    name: name.to_string(),
                    known: known.join(", "),
                }
            })?;
        Self::parse(text)
    }

    /// The style of `role` (the base style for roles a theme leaves out).
    pub fn get(&self, role: &str) -> Style {
        self.styles
            .get(role)
            .or_else(|| self.styles.get("base"))
            .copied()
            .unwrap_or_default()
    }
}

/// The style `spec` gives `role`.
fn style(role: &'static str, spec: &StyleSpec) -> Result<Style, ThemeError> {
    let colour = |text: &String| {
        Color::from_str(text).map_err(|_| ThemeError::Colour {
            role,
            colour: text.clone(),
        })
    };
    let mut style = Style::default();
    if let Some(fg) = &spec.fg {
        style = style.fg(colour(fg)?);
    }
    if let Some(bg) = &spec.bg {
        style = style.bg(colour(bg)?);
    }
    for (on, modifier) in [
        (spec.bold, Modifier::BOLD),
        (spec.italic, Modifier::ITALIC),
        (spec.underlined, Modifier::UNDERLINED),
        (spec.reversed, Modifier::REVERSED),
    ] {
        if on {
            style = style.add_modifier(modifier);
        }
    }
    Ok(style)
}

/// The theme to use: `NO_COLOR` forces monochrome, then `--theme`, then the
/// config file, then dark.
pub fn choose(flag: Option<&str>, config: Option<&str>) -> String {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return "monochrome".into();
    }
    flag.or(config).unwrap_or("dark").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_parses_and_defines_every_role() {
        for (name, text) in BUILT_IN {
            let theme = Theme::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(theme.name, name);
            for role in ROLES {
                assert!(theme.styles.contains_key(role), "{name} lacks {role}");
            }
        }
        let mono = Theme::load("monochrome", Path::new("/nonexistent")).unwrap();
        assert!(
            mono.get("selected")
                .add_modifier
                .contains(Modifier::REVERSED)
        );
        assert_eq!(mono.get("crit").fg, None, "no colour in monochrome");
    }

    #[test]
    fn user_themes_override_and_errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dark.toml"),
            "name = \"dark\"\n[styles]\nok = { fg = \"blue\" }\n",
        )
        .unwrap();
        assert_eq!(
            Theme::load("dark", dir.path()).unwrap().get("ok").fg,
            Some(Color::Blue)
        );
        std::fs::write(
            dir.path().join("bad.toml"),
            "name = \"bad\"\n[styles]\nok = { fg = \"nocolour\" }\n",
        )
        .unwrap();
        let err = Theme::load("bad", dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("nocolour"),
            "{err}"
        );
        assert!(
            Theme::load("nope", dir.path())
                .unwrap_err()
                .to_string()
                .contains("built in are")
        );
    }
}
