//! Configuration: the file's shape (`raw`) and its checked form (`Config`). Parsing and
//! validation only; the live store, the watcher and the binding to running providers are
//! `crate::live`.
//!
//! `check-config` and the reloader both go through [`load`], so what the check accepts is
//! exactly what the server serves.

mod checked;
pub(crate) mod defaults;
pub mod ops;
pub mod raw;
pub mod security;
mod template;
mod validate;

use std::path::Path;

pub use checked::url_like::BaseUrl;
pub use checked::{
    CacheConfig, Config, Ensemble, Limits, ProviderConfig, Routing, ServerConfig, Target,
    TaskConfig,
};
pub use template::Template;
pub use validate::{ConfigError, ConfigErrors};

/// Reads, parses and validates the whole file. Every problem found is reported, each with
/// its TOML path.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_text(path, &read(path)?)
}

/// The file's text, or the error that says why it cannot be read.
pub fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(ConfigError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        ))
    })
}

/// The config in `text`, read from `path` (relative paths resolve against its folder).
pub fn load_text(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    load_str(text, path.parent().unwrap_or_else(|| Path::new(".")))
}

/// Parses and validates config text; relative paths resolve against `base`.
pub fn load_str(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let at = |e: &toml::de::Error| {
        e.span()
            .map(|s| line_col(text, s.start))
            .unwrap_or_default()
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigErrors::one(ConfigError::new(at(&e), e.message().to_owned())))?;
    // The key's path (`tasks.chat.strategy`) where serde knows it, then line and column.
    let raw: raw::RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let place = match (key.as_str(), at(&inner)) {
            ("" | ".", place) => place,
            (key, place) if place.is_empty() => key.to_owned(),
            (key, place) => format!("{key} ({place})"),
        };
        ConfigErrors::one(ConfigError::new(place, inner.message().to_owned()))
    })?;
    validate::validate(raw, base)
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {col}")
}
