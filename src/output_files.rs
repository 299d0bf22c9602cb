//! The files a run writes for the operator: `--report`, `--failed`, `--metrics-file`
//! (written once the run is over) and `--events` (appended to as it goes).
//!
//! A path that cannot be written is found before any device is contacted, so a typo in
//! a folder name costs nothing: exit 2, nothing sent. That check cannot see the future,
//! though: a disk that fills up during the run still fails the write at the end. Then
//! the devices were already written, so the report is printed first, each file that
//! could not be written is named, and the exit status is 1 (some of what the operator
//! asked for did not happen), never 2, which promises that nothing was sent.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// A file the operator asked for, by the flag that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub flag: &'static str,
    pub path: PathBuf,
}

/// Why an output file cannot be written; checked before the run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OutputFileError {
    #[error("{flag} {path}: the folder {folder} does not exist: create it or choose another path (nothing was sent)")]
    NoFolder {
        flag: &'static str,
        path: String,
        folder: String,
    },
    #[error("{flag} {path}: it is a folder: give a file name (nothing was sent)")]
    IsFolder { flag: &'static str, path: String },
    #[error("{flag} {path}: cannot write there ({reason}): choose another path or fix its permissions (nothing was sent)")]
    NotWritable {
        flag: &'static str,
        path: String,
        reason: String,
    },
}

impl OutputFile {
    pub fn new(flag: &'static str, path: &Path) -> OutputFile {
        OutputFile {
            flag,
            path: path.to_path_buf(),
        }
    }

    /// Whether the file could be written now, without changing it: an existing file is
    /// opened for appending (not truncated), a new one's folder gets a temporary file
    /// that is removed at once.
    pub fn check(&self) -> Result<(), OutputFileError> {
        let flag = self.flag;
        let path = self.path.display().to_string();
        let not_writable = |e: std::io::Error| OutputFileError::NotWritable {
            flag,
            path: path.clone(),
            reason: e.to_string(),
        };
        if self.path.is_dir() {
            return Err(OutputFileError::IsFolder { flag, path });
        }
        if self.path.exists() {
            return OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map(drop)
                .map_err(not_writable);
        }
        let folder = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(OutputFileError::NoFolder {
                flag,
                path: path.clone(),
                folder: folder.display().to_string(),
            });
        }
        tempfile::NamedTempFile::new_in(folder)
            .map(drop)
            .map_err(not_writable)
    }
}

/// Checks every file, in order; the first that cannot be written.
pub fn check_all(files: &[OutputFile]) -> Result<(), OutputFileError> {
    files.iter().try_for_each(OutputFile::check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = OutputFile::new("--report", &dir.path().join("nope/report.json"));
        let error = file.check().unwrap_err();
        assert!(matches!(error, OutputFileError::NoFolder { .. }), "{error}");
        let text = error.to_string();
        assert!(text.starts_with("--report "), "{text}");
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn a_folder_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = OutputFile::new("--failed", dir.path()).check().unwrap_err();
        assert!(matches!(error, OutputFileError::IsFolder { .. }), "{error}");
    }

    #[test]
    fn an_existing_file_is_checked_without_being_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, "kept").unwrap();
        OutputFile::new("--report", &path).check().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept");
    }

    #[test]
    fn a_new_file_is_not_left_behind_by_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.prom");
        check_all(&[OutputFile::new("--metrics-file", &path)]).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
