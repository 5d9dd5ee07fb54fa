//! JSON in and out for the offline commands that read one problem and write one answer
//! (`allocate`, `returns-plan`): the input read with the path of any problem
//! (`orders[1].lines[0].quantity: invalid value`), the output written to a file or `-`.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum JsonIoError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    /// Unreadable JSON or a value out of range, with where.
    #[error("{file}: {message}")]
    Input { file: String, message: String },
}

impl JsonIoError {
    /// 2 for bad input (nothing is written), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            JsonIoError::Input { .. } => 2,
            JsonIoError::Io { .. } => 1,
        }
    }

    /// Bad input found after reading (a check of the values), for `path`.
    pub fn input(path: &Path, message: impl std::fmt::Display) -> Self {
        JsonIoError::Input { file: path.display().to_string(), message: message.to_string() }
    }
}

/// Reads `path` as a `T`, naming where it is wrong.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, JsonIoError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| JsonIoError::Io { file: file.clone(), source })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| JsonIoError::Input { file, message: format!("{}: {}", e.path(), e.inner()) })
}

/// Writes `value` (pretty) to `path`, or to standard output for `-`.
pub fn write(path: &Path, value: &serde_json::Value) -> Result<(), JsonIoError> {
    let body = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    if path.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout()
            .write_all(body.as_bytes())
            .map_err(|source| JsonIoError::Io { file: "standard output".into(), source })
    } else {
        std::fs::write(path, body).map_err(|source| JsonIoError::Io { file: path.display().to_string(), source })
    }
}
