//! Turning command-line operands into a list of inputs: files, folders
//! (walked for capture files, sorted by path) and `-` for standard input.
use std::path::{Path, PathBuf};

/// One capture to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    /// How the input is named in messages.
    pub fn display(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".to_string(),
        }
    }

    /// Size in bytes, when known (for progress).
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Stdin => None,
        }
    }
}

/// File name endings taken from a folder. Named files are read whatever their name.
const CAPTURE_ENDINGS: &[&str] = &[
    ".pcap",
    ".pcapng",
    ".cap",
    ".dmp",
    ".trace",
    ".ntar",
    ".pcap.gz",
    ".pcapng.gz",
    ".trace.gz",
    ".cap.gz",
];

fn looks_like_capture(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    !name.starts_with('.') && CAPTURE_ENDINGS.iter().any(|e| name.ends_with(e))
}

/// An operand that names no capture to read.
#[derive(Debug)]
pub enum InputError {
    /// The path cannot be looked at, or a folder cannot be walked.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A folder without a single capture file in it.
    NoCaptures { folder: PathBuf },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            InputError::NoCaptures { folder } => write!(
                f,
                "{}: folder holds no capture files ({})",
                folder.display(),
                CAPTURE_ENDINGS.join(" ")
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// Expands operands: `-` is standard input, a folder contributes its capture
/// files (recursively, sorted), anything else is taken as a file.
pub fn expand_inputs(operands: &[PathBuf]) -> Result<Vec<Input>, InputError> {
    let mut out = Vec::new();
    for op in operands {
        if op.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let io = |error| InputError::Io {
            path: op.clone(),
            error,
        };
        let meta = std::fs::metadata(op).map_err(io)?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(op, &mut found).map_err(io)?;
            if found.is_empty() {
                return Err(InputError::NoCaptures { folder: op.clone() });
            }
            found.sort();
            out.extend(found.into_iter().map(Input::Path));
        } else {
            out.push(Input::Path(op.clone()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            if !entry.file_name().to_string_lossy().starts_with('.') {
                walk(&path, out)?;
            }
        } else if looks_like_capture(&path) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_endings() {
        assert!(looks_like_capture(Path::new("a/b.pcap")));
        assert!(looks_like_capture(Path::new("x.PCAPNG")));
        assert!(looks_like_capture(Path::new("t.trace.gz")));
        assert!(!looks_like_capture(Path::new("README.md")));
        assert!(!looks_like_capture(Path::new(".hidden.pcap")));
    }

    #[test]
    fn dash_is_stdin_and_missing_file_is_an_error() {
        assert_eq!(expand_inputs(&["-".into()]).unwrap(), vec![Input::Stdin]);
        let e = expand_inputs(&["/nonexistent/x.pcap".into()])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/x.pcap: "), "{e}");
    }
}
