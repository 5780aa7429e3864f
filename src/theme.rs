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

impl Theme {
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut styles = BTreeMap::new();
        for (role, spec) in &file.styles {
            let role = ROLES
                .iter()
                .find(|r| *r == role)
                .ok_or_else(|| format!("unknown style {role:?}; known: {}", ROLES.join(", ")))?;
            styles.insert(
                *role,
                style(spec).map_err(|e| format!("style {role}: {e}"))?,
            );
        }
        Ok(Self {
            name: file.name,
            styles,
        })
    }

    /// Loads theme `name`: the user's file if there is one, else built in.
    pub fn load(name: &str, user_dir: &Path) -> Result<Self, String> {
        let path = user_dir.join(format!("{name}.toml"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()));
        }
        let text = BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| {
                let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                format!("no theme {name:?}: built in are {}", known.join(", "))
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

fn style(spec: &StyleSpec) -> Result<Style, String> {
    let mut style = Style::default();
    if let Some(fg) = &spec.fg {
        style = style.fg(Color::from_str(fg).map_err(|_| format!("colour {fg:?}"))?);
    }
    if let Some(bg) = &spec.bg {
        style = style.bg(Color::from_str(bg).map_err(|_| format!("colour {bg:?}"))?);
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
        let err = Theme::load("bad", dir.path()).unwrap_err();
        assert!(
            err.contains("bad.toml") && err.contains("nocolour"),
            "{err}"
        );
        assert!(
            Theme::load("nope", dir.path())
                .unwrap_err()
                .contains("built in are")
        );
    }
}
