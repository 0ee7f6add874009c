//! The only module that prints: plain lines and JSON on stdout, errors and notices on stderr.
//!
//! A closed stdout (`izzi models | head`) is not an error: writes that hit a broken pipe are
//! dropped quietly.

use std::fmt::Display;
use std::io::{self, Write};
use std::process::ExitCode;

use rust_decimal::Decimal;

/// An error caused by how the command was called: exit code 2 instead of 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// Writes `text` and a newline to stdout.
pub(crate) fn line(text: impl Display) {
    write_stdout(format_args!("{text}\n"));
}

/// Writes `data` to stdout as it is (a generated script).
pub(crate) fn bytes(data: &[u8]) {
    write_stdout(format_args!("{}", String::from_utf8_lossy(data)));
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub(crate) fn json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        Err(err) => notice(format_args!("error: could not encode JSON output: {err}")),
    }
}

/// Writes rows under a header, each column padded to its widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        text.trim_end().to_owned()
    };
    let mut out = render(&mut header.iter().copied());
    for row in rows {
        out.push('\n');
        out.push_str(&render(&mut row.iter().map(String::as_str)));
    }
    line(out);
}

/// Writes a header line and rows as CSV (RFC 4180: CRLF line ends; a field holding a comma, a
/// quote or a line break is quoted, its quotes doubled).
pub(crate) fn csv(header: &[&str], rows: &[Vec<String>]) {
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\r', '\n']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    }
    let mut out = String::new();
    let lines = std::iter::once(header.iter().map(|h| field(h)).collect::<Vec<_>>()).chain(
        rows.iter()
            .map(|row| row.iter().map(|c| field(c)).collect()),
    );
    for cells in lines {
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    write_stdout(format_args!("{out}"));
}

/// Writes one line to stderr: progress notes, warnings, hints.
pub(crate) fn notice(text: impl Display) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    // A closed pipe means the reader has what it wanted; anything else is worth a notice.
    if let Err(err) = out.write_fmt(args).and_then(|()| out.flush())
        && err.kind() != io::ErrorKind::BrokenPipe
    {
        notice(format_args!("error: could not write to stdout: {err}"));
    }
}

/// Prints a clap parse outcome (help, version or a usage error) and gives its exit code.
pub(crate) fn clap_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a failed command's error as one sentence and gives exit code 1, or 2 for misuse.
pub(crate) fn failure(err: &anyhow::Error) -> ExitCode {
    // `{:#}` joins the context chain into one line: "reading `x`: permission denied".
    notice(format_args!("error: {err:#}"));
    if err.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Whether a person is at the keyboard: stdin and stderr (where prompts draw) are terminals.
pub(crate) fn interactive() -> bool {
    use std::io::IsTerminal as _;
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// A progress bar on stderr; it draws nothing when stderr is not a terminal.
pub(crate) fn progress(len: usize, message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// US dollars for people: `$0.003702`, `$12.5`; amounts are rounded to a millionth of a dollar.
pub(crate) fn usd(amount: Decimal) -> String {
    format!("${}", amount.round_dp(6).normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_money() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(usd(Decimal::new(3_702_000, 9)), "$0.003702");
        assert_eq!(usd(Decimal::new(1250, 2)), "$12.5");
        assert_eq!(usd(Decimal::ZERO), "$0");
    }
}
