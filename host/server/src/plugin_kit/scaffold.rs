//! `bulkhost plugin new`: a plugin crate that builds where it is written. It carries the
//! contract (`wit/`) and the SDK (`vendor/`) it was made with, is a Cargo workspace of its
//! own, and builds for `wasm32-wasip2` by default, so `cargo build --release` in it makes a
//! component, whichever directory (or other workspace) it sits in.

use std::path::{Path, PathBuf};

/// What kind of plugin to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Winfra XXL data sets (world `dataset-generator`).
    Dataset,
    /// LogiCommerce batch endpoints (world `batch-endpoint`).
    Endpoint,
}

/// The contract, one file per interface, as `wit/` holds it.
const WIT: [(&str, &str); 7] = [
    ("types.wit", include_str!("../../../../wit/types.wit")),
    (
        "documents.wit",
        include_str!("../../../../wit/documents.wit"),
    ),
    ("sink.wit", include_str!("../../../../wit/sink.wit")),
    ("log.wit", include_str!("../../../../wit/log.wit")),
    ("writes.wit", include_str!("../../../../wit/writes.wit")),
    (
        "generator.wit",
        include_str!("../../../../wit/generator.wit"),
    ),
    ("endpoint.wit", include_str!("../../../../wit/endpoint.wit")),
];
/// The worlds plugins target.
const WORLDS: (&str, &str) = ("worlds.wit", include_str!("../../../../wit/worlds.wit"));

const CARGO_TOML: &str = include_str!("../../kit/Cargo.toml.tmpl");
const SDK_CARGO_TOML: &str = include_str!("../../kit/sdk-Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("../../kit/cargo-config.toml");
const GITIGNORE: &str = include_str!("../../kit/gitignore");
const SAMPLE_SHOPS: &str = include_str!("../../kit/shops.json");

/// What differs between the two kinds.
struct Template {
    sdk: &'static str,
    sdk_source: &'static str,
    lib: &'static str,
}

impl Kind {
    fn template(self) -> Template {
        match self {
            Kind::Dataset => Template {
                sdk: "bulkhost-plugin-sdk",
                sdk_source: include_str!("../../../../plugins/sdk/src/lib.rs"),
                lib: include_str!("../../kit/dataset.rs"),
            },
            Kind::Endpoint => Template {
                sdk: "bulkhost-endpoint-sdk",
                sdk_source: include_str!("../../../../plugins/endpoint-sdk/src/lib.rs"),
                lib: include_str!("../../kit/endpoint.rs"),
            },
        }
    }
}

/// Why a crate was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Cargo would refuse the name.
    #[error(
        "`{0}` is not a usable crate name: use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter"
    )]
    Name(String),
    /// Something is in the way.
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// Writes a new plugin crate `name` of `kind` into `parent/name`, answering its directory.
pub fn write(parent: &Path, name: &str, kind: Kind) -> Result<PathBuf, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::Name(name.to_string()));
    }
    let root = parent.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let template = kind.template();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{sdk}}", template.sdk)
    };
    let sdk_dir = format!("vendor/{}", template.sdk);
    let mut files: Vec<(String, String)> = vec![
        ("Cargo.toml".into(), fill(CARGO_TOML)),
        ("src/lib.rs".into(), template.lib.into()),
        (".cargo/config.toml".into(), CARGO_CONFIG.into()),
        (".gitignore".into(), GITIGNORE.into()),
        ("documents/shops.json".into(), SAMPLE_SHOPS.into()),
        (format!("{sdk_dir}/Cargo.toml"), fill(SDK_CARGO_TOML)),
        (format!("{sdk_dir}/src/lib.rs"), template.sdk_source.into()),
    ];
    files.extend(
        WIT.iter()
            .chain([&WORLDS])
            .map(|(file, text)| (format!("wit/{file}"), text.to_string())),
    );
    for (file, text) in files {
        let path = root.join(file);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        written.map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_what_cargo_accepts() {
        for good in ["my-datasets", "shops_2", "a"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "My", "2shops", "../x", "a b", "ä", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
