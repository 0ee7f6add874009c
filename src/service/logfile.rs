//! The gateway's log file, for managers that keep no journal (launchd, Task Scheduler):
//! `IZZI_HOME/logs/izzi.log`, rotated when it would pass 10 MiB, the last three kept as
//! `izzi.log.1` (newest) to `izzi.log.3`. Plain lines, no colour codes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context as _, Result};

const FILE: &str = "izzi.log";
const LIMIT: u64 = 10 * 1024 * 1024;
const KEEP: usize = 3;

/// The log directory under `izzi_home`.
pub(crate) fn dir(izzi_home: &Path) -> PathBuf {
    izzi_home.join("logs")
}

/// The current log file in `dir`.
pub(crate) fn current(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// A log file that rotates itself; `tracing` writes each event in one call.
pub(crate) struct Rotating {
    state: Mutex<State>,
}

struct State {
    dir: PathBuf,
    limit: u64,
    file: File,
    written: u64,
}

impl Rotating {
    /// Opens (appends to) `dir/izzi.log`, creating `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        Self::with_limit(dir, LIMIT)
    }

    fn with_limit(dir: &Path, limit: u64) -> Result<Self> {
        crate::files::create_dirs(dir)?;
        let (file, written) = open(dir)
            .with_context(|| format!("cannot open the log file in `{}`", dir.display()))?;
        Ok(Self {
            state: Mutex::new(State {
                dir: dir.to_owned(),
                limit,
                file,
                written,
            }),
        })
    }
}

fn open(dir: &Path) -> io::Result<(File, u64)> {
    let file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(current(dir))?
        .into_parts()
        .0;
    let written = file.metadata()?.len();
    Ok((file, written))
}

impl State {
    fn rotate(&mut self) -> io::Result<()> {
        let name = |n: usize| self.dir.join(format!("{FILE}.{n}"));
        for n in (1..KEEP).rev() {
            let from = name(n);
            if from.exists() {
                fs_err::rename(&from, name(n + 1))?;
            }
        }
        fs_err::rename(current(&self.dir), name(1))?;
        (self.file, self.written) = open(&self.dir)?;
        Ok(())
    }
}

impl Write for &Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.written > 0 && state.written + buf.len() as u64 > state.limit {
            state.rotate()?;
        }
        state.file.write_all(buf)?;
        state.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.file.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Rotating {
    type Writer = &'a Rotating;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// The last `n` lines of the current log file in `dir` (fewer if it has fewer), and its length.
pub(crate) fn tail(dir: &Path, n: usize) -> Result<(Vec<String>, u64)> {
    let path = current(dir);
    let text = match fs_err::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    Ok((
        lines[start..].iter().map(|l| (*l).to_owned()).collect(),
        text.len() as u64,
    ))
}

/// The whole lines written to the current log file in `dir` after byte `seen` (from its start
/// when it is shorter: it was rotated), and the offset to ask from next.
pub(crate) fn since(dir: &Path, seen: u64) -> Result<(Vec<String>, u64)> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = match fs_err::File::open(current(dir)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(err) => return Err(err.into()),
    };
    let len = file.metadata()?.len();
    let from = if len < seen { 0 } else { seen };
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return Ok((Vec::new(), from));
    };
    let text = String::from_utf8_lossy(&bytes[..end]);
    Ok((
        text.lines().map(str::to_owned).collect(),
        from + end as u64 + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_the_limit_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let log = Rotating::with_limit(dir.path(), 100).unwrap();
        for i in 0..10 {
            (&log).write_all(format!("{i:0>59}\n").as_bytes()).unwrap();
        }
        let mut names: Vec<String> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["izzi.log", "izzi.log.1", "izzi.log.2", "izzi.log.3"]
        );
        // One 60-byte line per file: each file stays under the limit, the newest is current.
        let (lines, len) = tail(dir.path(), 5).unwrap();
        assert_eq!(lines, [format!("{:0>59}", 9)]);
        assert_eq!(len, 60);
        let oldest = fs_err::read_to_string(dir.path().join("izzi.log.3")).unwrap();
        assert_eq!(oldest, format!("{:0>59}\n", 6));
    }

    #[test]
    fn reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        (&Rotating::open(dir.path()).unwrap())
            .write_all(b"one\n")
            .unwrap();
        (&Rotating::open(dir.path()).unwrap())
            .write_all(b"two\n")
            .unwrap();
        assert_eq!(tail(dir.path(), 10).unwrap().0, ["one", "two"]);
        assert_eq!(tail(dir.path(), 1).unwrap().0, ["two"]);
        let (lines, seen) = since(dir.path(), 4).unwrap();
        assert_eq!((lines, seen), (vec!["two".to_owned()], 8));
        // A half-written line waits for its end.
        (&Rotating::open(dir.path()).unwrap())
            .write_all(b"thr")
            .unwrap();
        assert_eq!(since(dir.path(), 8).unwrap(), (vec![], 8));
        // A shorter file was rotated: read from its start.
        assert_eq!(since(dir.path(), 100).unwrap().0, ["one", "two"]);
    }
}
