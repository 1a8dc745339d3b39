//! The layers of a configuration, lowest first: the defaults, the TOML file, `BULKHOST_*`
//! environment variables, files named by `BULKHOST_*_FILE` variables, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::Serialize;

use super::{Config, Invalid};

/// The prefix of every environment variable of the configuration.
const PREFIX: &str = "BULKHOST_";
/// Variables named for what they set rather than for its key, as the flags they stand beside:
/// `BULKHOST_DATABASE` (`--database`) is the URL alone, `BULKHOST_MIGRATE` is `--migrate`.
const ALIASES: [(&str, &str); 2] = [
    ("database", "database__url"),
    ("migrate", "database__migrate"),
];
/// A variable whose name ends so names a file holding the value of the key without it (a
/// secret mounted as a file): `BULKHOST_WEBHOOKS__SECRET_FILE=/run/secrets/whsec`.
const FILE_SUFFIX: &str = "_file";
/// Separates a section from its key in a variable's name: `BULKHOST_PLUGINS__MEMORY_MIB`.
const NESTING: &str = "__";

/// Why no configuration could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A layer holds a key that does not exist or a value of the wrong type: the message names
    /// the key and the layer, never the value, which may be a secret.
    #[error("{0}")]
    Layers(String),
    /// Values the server cannot run with.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Invalid>),
}

/// What flags set, above every other layer; an absent flag leaves its key to the layers below.
#[derive(Debug, Default, Serialize)]
pub struct Flags {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// `--schemas`, added to the directories of the layers below.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_dirs: Vec<PathBuf>,
    /// `--log-json`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub log_json: bool,
    /// `--database` and `--migrate`.
    pub database: DatabaseFlags,
}

/// The flags of `[database]`.
#[derive(Debug, Default, Serialize)]
pub struct DatabaseFlags {
    /// `--database`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `--migrate`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub migrate: bool,
}

/// The configuration of `file` (if any), the environment and `flags`, checked.
pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        figment = figment.merge(TomlFile::read(path)?);
    }
    let figment = figment
        .merge(environment())
        .merge(SecretFiles)
        .admerge(Serialized::defaults(flags));
    let mut config: Config = figment.extract().map_err(without_values)?;
    take_paths_from_their_files(&figment, &mut config);
    config.finished()
}

impl Config {
    /// The configuration in one spelling and checked: what [`load`] answers, and what a server
    /// is bound with however its configuration was made.
    pub fn finished(mut self) -> Result<Config, ConfigError> {
        normalize(&mut self);
        let invalid = self.check();
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid(invalid))
        }
    }
}

/// Figment's errors with the values they found left out: a value of the wrong type at a
/// secret's key (a password URL given to a section, say) must not reach a log.
fn without_values(errors: figment::Error) -> ConfigError {
    use figment::error::{Actual, Kind};
    let lines: Vec<String> = errors
        .into_iter()
        .map(|mut error| {
            let found = |actual: &Actual| match actual {
                Actual::Bool(_) => "a boolean".to_string(),
                Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) => "a number".into(),
                Actual::Char(_) | Actual::Str(_) => "a string".into(),
                Actual::Bytes(_) => "bytes".into(),
                Actual::Other(_) => "another value".into(),
                shape => shape.to_string(),
            };
            let said = match &error.kind {
                Kind::InvalidType(actual, expected) => Some(format!(
                    "invalid type: found {}, expected {expected}",
                    found(actual)
                )),
                Kind::InvalidValue(actual, expected) => Some(format!(
                    "invalid value: found {}, expected {expected}",
                    found(actual)
                )),
                _ => None,
            };
            if let Some(said) = said {
                error.kind = Kind::Message(said);
            }
            error.to_string()
        })
        .collect();
    ConfigError::Layers(lines.join("\n"))
}

/// The key a variable's name (prefix stripped) stands for, its aliases resolved.
fn unaliased(variable: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| variable.eq_ignore_ascii_case(alias))
        .map_or(variable, |(_, key)| key)
}

/// `BULKHOST_KEY` and `BULKHOST_SECTION__KEY` for every key. Variables whose first part names
/// no key of the configuration are someone else's (`BULKHOST_CONFIG`, the log filter, those
/// an orchestrator derives from a service's name) and are left alone; a misspelt key in a
/// section is an error.
fn environment() -> Env {
    let keys = top_level_keys();
    Env::prefixed(PREFIX)
        .map(|variable| unaliased(variable.as_str()).to_string().into())
        .filter(move |key| file_key(key.as_str()).is_none() && names_a_key(&keys, key.as_str()))
        .split(NESTING)
}

/// The configuration's top-level keys and sections.
fn top_level_keys() -> Vec<String> {
    Serialized::defaults(Config::default())
        .data()
        .ok()
        .and_then(|mut profiles| profiles.remove(&Profile::Default))
        .map(|dict| dict.into_keys().collect())
        .unwrap_or_default()
}

/// The key a `…_FILE` variable's name (prefix stripped) names a file for, in any case.
fn file_key(variable: &str) -> Option<&str> {
    let split = variable.len().checked_sub(FILE_SUFFIX.len())?;
    let suffix = variable.get(split..)?;
    suffix
        .eq_ignore_ascii_case(FILE_SUFFIX)
        .then(|| &variable[..split])
}

/// Whether a variable's name (prefix stripped) starts with one of `keys`.
fn names_a_key(keys: &[String], variable: &str) -> bool {
    let first = variable.split(NESTING).next().unwrap_or_default();
    keys.iter().any(|key| key.eq_ignore_ascii_case(first))
}

/// Values read from the files `BULKHOST_*_FILE` variables name, each without its final
/// newline: secrets kept out of the environment and the file.
struct SecretFiles;

impl Provider for SecretFiles {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!(
            "file named by a {PREFIX}*{}",
            FILE_SUFFIX.to_uppercase()
        ))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let keys = top_level_keys();
        let mut values = Figment::new();
        for (variable, path) in Env::prefixed(PREFIX).iter() {
            let Some(key) = file_key(variable.as_str()) else {
                continue;
            };
            let key = unaliased(key);
            if !names_a_key(&keys, key) {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| {
                let variable = variable.as_str().to_uppercase();
                format!("reading {path}, which {PREFIX}{variable} names: {e}")
            })?;
            let value = text.trim_end_matches(['\n', '\r']).to_string();
            let key = key.to_ascii_lowercase().replace(NESTING, ".");
            values = values.merge(Serialized::default(&key, value));
        }
        values.data()
    }
}

/// The TOML file, parsed by the same TOML crate as the rest of the build.
struct TomlFile {
    path: PathBuf,
    text: String,
}

impl TomlFile {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(TomlFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Where the file is not TOML, without quoting the line, which may hold a secret.
    fn syntax_error(&self, error: &toml::de::Error) -> String {
        let at = error.span().map_or(0, |span| span.start);
        let before = self.text.get(..at).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(
            "{} is not TOML at line {line}, column {column}: {}",
            self.path.display(),
            error.message()
        )
    }
}

impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", self.path.as_path())
            .interpolater(|_profile: &Profile, keys: &[&str]| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = toml::from_str(&self.text).map_err(|e| self.syntax_error(&e))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// Relative paths written in the file are taken from the file's directory, wherever the server
/// starts; those of the environment and flags from the working directory.
fn take_paths_from_their_files(figment: &Figment, config: &mut Config) {
    resolve(figment, "schema_dirs", &mut config.schema_dirs);
    resolve(figment, "plugins.dir", config.plugins.dir.as_mut_slice());
    for (name, grant) in &mut config.plugins.grants {
        let key = format!("plugins.grants.{name}.read_dirs");
        resolve(figment, &key, &mut grant.read_dirs);
    }
}

/// Makes each relative path of `key` (a path or a list of them) relative to the directory of
/// the file it was written in, if it was.
fn resolve(figment: &Figment, key: &str, paths: &mut [PathBuf]) {
    let Ok(value) = figment.find_value(key) else {
        return;
    };
    let file_dir = |value: &Value| match figment.get_metadata(value.tag())?.source.as_ref()? {
        Source::File(file) => file.parent().map(Path::to_path_buf),
        _ => None,
    };
    let dirs: Vec<Option<PathBuf>> = match &value {
        Value::Array(_, items) => items.iter().map(file_dir).collect(),
        single => vec![file_dir(single)],
    };
    for (path, dir) in paths.iter_mut().zip(dirs) {
        if let Some(dir) = dir
            && path.is_relative()
        {
            *path = dir.join(&*path);
        }
    }
}

/// One spelling for values written several ways: a public URL without its final `/`, token
/// digests in lower case.
fn normalize(config: &mut Config) {
    if let Some(url) = &mut config.public_url {
        let trimmed = url.trim_end_matches('/').len();
        url.truncate(trimmed);
    }
    for digest in &mut config.admin.token_sha256 {
        *digest = digest.trim().to_ascii_lowercase();
    }
}
