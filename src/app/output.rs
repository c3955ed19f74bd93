//! Where a report goes: standard output, or a file written under a temporary
//! name and renamed into place only when complete ([`OutputFile`]).
use super::AppError;
use portflow::output::OutputFile;
use std::io::{self, Write};
use std::path::Path;

/// Standard output or a file; an error writing a file names it.
pub struct Output {
    w: Sink,
}

enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File(io::BufWriter<OutputFile>),
}

impl Output {
    pub fn open(path: Option<&Path>) -> Result<Output, AppError> {
        let w = match path {
            None => Sink::Stdout(io::BufWriter::with_capacity(1 << 16, io::stdout())),
            Some(p) => {
                let f = OutputFile::create(p).map_err(|error| AppError::Output {
                    path: p.to_path_buf(),
                    error,
                })?;
                Sink::File(io::BufWriter::with_capacity(1 << 16, f))
            }
        };
        Ok(Output { w })
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        match &mut self.w {
            Sink::Stdout(w) => w,
            Sink::File(w) => w,
        }
    }

    /// Writes with `f`, then commits; an error writing a file names the file
    /// (and the temporary file is removed).
    pub fn write_and_commit(
        mut self,
        f: impl FnOnce(&mut Output) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        match (f(&mut self), &self.w) {
            (Ok(()), _) => self.commit(),
            (Err(AppError::Io(error)), Sink::File(w)) => Err(AppError::Output {
                path: w.get_ref().dest().to_path_buf(),
                error,
            }),
            (Err(e), _) => Err(e),
        }
    }

    /// Flushes and, for a file, syncs it and renames it into place.
    pub fn commit(self) -> Result<(), AppError> {
        match self.w {
            Sink::Stdout(mut w) => Ok(w.flush()?),
            Sink::File(w) => {
                let path = w.get_ref().dest().to_path_buf();
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(OutputFile::commit)
                    .map_err(|error| AppError::Output { path, error })
            }
        }
    }
}
