//! Logging setup: stderr for people, and for the commands that change the ledger a
//! daily file in the log directory (`lrci.YYYY-MM-DD.log`, UTC dates, 14 kept).
//! `LRCI_LOG` (an env filter) overrides `--log-level`. Only `main` calls [`init`];
//! the returned guard must live until the program ends so the file writer flushes.
//!
//! Two guarantees live here rather than at each call site:
//! - **No log injection.** Every byte written to stderr or the file passes through
//!   [`Sanitize`]: control characters (C0 but the line's final `\n`, DEL, C1),
//!   line and paragraph separators, bidi controls and zero-width characters are
//!   written as visible escapes (`\n`, `\u{1b}`), so an untrusted value can neither
//!   start a forged line, move the cursor, nor reorder what a reader sees. Colours
//!   are therefore off: the fmt layer's own ANSI codes would be escaped too.
//! - **Private files.** Log files are created 0600 (and an existing one is
//!   tightened to 0600) by this module's own daily writer, whatever the umask;
//!   the directory, when created here, is 0700.

use crate::platform;
use chrono::NaiveDate;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

/// Log files kept by the daily rotation.
pub const MAX_LOG_FILES: usize = 14;

/// The log file name prefix and suffix: `lrci.YYYY-MM-DD.log`.
const PREFIX: &str = "lrci.";
const SUFFIX: &str = ".log";

/// Keeps the file writer alive.
pub struct Guard {
    _file: Option<WorkerGuard>,
}

fn level(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The log line format: `text` (tracing's fmt lines) or `json` (one object per
/// line, [`JsonLayer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// The format named `json` or anything else (`text`).
    pub fn named(name: &str) -> Format {
        if name.eq_ignore_ascii_case("json") {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// Installs the subscriber in the text format (see [`init_with`]).
pub fn init(lvl: Level, log_dir: Option<&Path>) -> (Guard, Option<io::Error>) {
    init_with(lvl, Format::Text, log_dir)
}

fn filter(lvl: Level) -> EnvFilter {
    EnvFilter::try_from_env("LRCI_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,lrci={}", level(lvl))))
}

type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// One output (stderr or the file) in `format`.
fn output<W>(format: Format, lvl: Level, make: W, target: bool) -> Boxed
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        Format::Text => fmt::layer()
            .with_writer(make)
            .with_ansi(false)
            .with_target(target)
            .with_filter(filter(lvl))
            .boxed(),
        Format::Json => JsonLayer { make }.with_filter(filter(lvl)).boxed(),
    }
}

/// Installs the subscriber. With a log directory, a file layer too; if that
/// directory cannot be used, the error is returned (the caller decides whether it
/// is fatal) and stderr logging is still installed.
pub fn init_with(lvl: Level, format: Format, log_dir: Option<&Path>) -> (Guard, Option<io::Error>) {
    let mut layers: Vec<Boxed> = vec![output(format, lvl, || Sanitize::new(io::stderr()), false)];
    let mut file_error = None;
    let mut guard = None;
    if let Some(dir) = log_dir {
        match DailyFile::open(dir) {
            Ok(daily) => {
                let (writer, g) = tracing_appender::non_blocking(daily);
                guard = Some(g);
                layers.push(output(
                    format,
                    lvl,
                    move || Sanitize::new(writer.clone()),
                    true,
                ));
            }
            Err(e) => file_error = Some(e),
        }
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    (Guard { _file: guard }, file_error)
}

// ---------------------------------------------------------------------------------
// The run context and the JSON format

/// What every JSON line carries about the run: set once by the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
    pub run_id: String,
    pub profile: String,
    pub command: String,
}

static CONTEXT: std::sync::Mutex<Option<RunContext>> = std::sync::Mutex::new(None);

/// Sets the run context the JSON lines carry.
pub fn set_context(c: RunContext) {
    if let Ok(mut g) = CONTEXT.lock() {
        *g = Some(c);
    }
}

/// The run context, if set.
pub fn context() -> Option<RunContext> {
    CONTEXT.lock().ok().and_then(|g| g.clone())
}

/// Writes each event as one JSON object on one line: `timestamp` (RFC 3339 UTC),
/// `level`, `target`, `message`, `run_id`, `profile`, `command`, then the event's
/// own fields by name (an event field never replaces one of those).
pub struct JsonLayer<W> {
    make: W,
}

#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_string(), format!("{v:?}").into());
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.0.insert(f.name().to_string(), v.into());
    }
    fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
        self.0.insert(f.name().to_string(), v.into());
    }
    fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
        self.0.insert(f.name().to_string(), v.into());
    }
    fn record_bool(&mut self, f: &tracing::field::Field, v: bool) {
        self.0.insert(f.name().to_string(), v.into());
    }
}

/// The JSON line of one event (without the newline): field order is fixed.
pub fn json_line(
    level: &tracing::Level,
    target: &str,
    fields: serde_json::Map<String, serde_json::Value>,
    ctx: Option<&RunContext>,
) -> String {
    let mut fields = fields;
    let mut obj = serde_json::Map::new();
    obj.insert(
        "timestamp".into(),
        crate::clock::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    obj.insert("level".into(), level.as_str().into());
    obj.insert("target".into(), target.into());
    obj.insert(
        "message".into(),
        fields.remove("message").unwrap_or_else(|| "".into()),
    );
    let c = ctx.cloned().unwrap_or_default();
    obj.insert("run_id".into(), c.run_id.into());
    obj.insert("profile".into(), c.profile.into());
    obj.insert("command".into(), c.command.into());
    for (k, v) in fields {
        obj.entry(k).or_insert(v);
    }
    json_safe(&serde_json::Value::Object(obj).to_string())
}

/// serde_json leaves DEL, C1, bidi and zero-width characters raw: written here as
/// `\uXXXX` escapes (all are in the BMP), so a JSON line is as safe as a text one.
pub fn json_safe(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if is_unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: tracing::Subscriber,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut line = json_line(meta.level(), meta.target(), fields.0, context().as_ref());
        line.push('\n');
        let _ = self.make.make_writer().write_all(line.as_bytes());
    }
}

// ---------------------------------------------------------------------------------
// Sanitising

/// True for a character that must never reach a log line raw: the one table,
/// [`crate::text::is_unsafe`].
pub use crate::text::is_unsafe as is_unsafe_char;

/// `text` with every unsafe character written as a visible escape (`\n`, `\r`,
/// `\t`, otherwise `\u{hex}`); borrowed when nothing needed escaping.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    crate::text::escape_log(text)
}

/// The longest error line `main` prints (reliability-bar.md §6: ≤ 300 characters).
pub const MAX_ERROR_LINE: usize = 300;

/// A message made fit for the one `error:` line: [`sanitize`]d, and when longer
/// than [`MAX_ERROR_LINE`] (a 100 KB path, a huge server message) every word of
/// more than 80 characters is cut to its first 40 and last 24 around `…`, then
/// the whole is cut to the limit.
pub fn error_line(msg: &str) -> String {
    let clean = sanitize(msg).into_owned();
    if clean.chars().count() + "error: ".len() <= MAX_ERROR_LINE {
        return clean;
    }
    let words: Vec<String> = clean
        .split(' ')
        .map(|w| {
            let n = w.chars().count();
            if n > 80 {
                let head: String = w.chars().take(40).collect();
                let tail: String = w.chars().skip(n - 24).collect();
                format!("{head}…{tail}")
            } else {
                w.to_string()
            }
        })
        .collect();
    let short = words.join(" ");
    let room = MAX_ERROR_LINE - "error: ".len();
    if short.chars().count() <= room {
        return short;
    }
    let mut cut: String = short.chars().take(room - 1).collect();
    cut.push('…');
    cut
}

/// A writer that escapes unsafe characters in everything written through it.
///
/// The fmt layer writes one whole event per `write_all`, ending in `\n`: that
/// final newline is kept, every other one is escaped, so one event is always one
/// line. Bytes that are not UTF-8 are written as U+FFFD.
#[derive(Debug)]
pub struct Sanitize<W> {
    inner: W,
}

impl<W: Write> Sanitize<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Sanitize<W> {
        Sanitize { inner }
    }
}

impl<W: Write> Write for Sanitize<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, newline) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (buf, false),
        };
        let text = String::from_utf8_lossy(body);
        let clean = sanitize(&text);
        if newline {
            let mut line = clean.into_owned().into_bytes();
            line.push(b'\n');
            self.inner.write_all(&line)?;
        } else {
            self.inner.write_all(clean.as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------------
// The daily file

/// Appends to `lrci.YYYY-MM-DD.log` (UTC date) in one directory, switching files
/// when the date changes. Files are opened with mode 0600 and tightened to 0600
/// if they already existed with looser bits; after each switch only the newest
/// [`MAX_LOG_FILES`] are kept.
#[derive(Debug)]
pub struct DailyFile {
    dir: PathBuf,
    date: NaiveDate,
    file: File,
}

impl DailyFile {
    /// Opens today's file in `dir`, creating `dir` (0700) if it does not exist.
    pub fn open(dir: &Path) -> io::Result<DailyFile> {
        if !dir.exists() {
            crate::ledger::create_private_dir(dir)?;
        }
        let date = crate::clock::now().date_naive();
        let file = open_private(&file_for(dir, date))?;
        prune(dir);
        Ok(DailyFile {
            dir: dir.to_path_buf(),
            date,
            file,
        })
    }

    /// The file being written.
    pub fn path(&self) -> PathBuf {
        file_for(&self.dir, self.date)
    }
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let today = crate::clock::now().date_naive();
        if today != self.date {
            // Keep writing to yesterday's file if today's cannot be opened.
            if let Ok(f) = open_private(&file_for(&self.dir, today)) {
                self.file = f;
                self.date = today;
                prune(&self.dir);
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn file_for(dir: &Path, date: NaiveDate) -> PathBuf {
    dir.join(format!("{PREFIX}{}{SUFFIX}", date.format("%Y-%m-%d")))
}

fn open_private(path: &Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    let f = platform::private_file(&mut o).open(path)?;
    if platform::mode(&f.metadata()?).is_some_and(|m| m & 0o077 != 0) {
        platform::set_file_mode(&f, platform::PRIVATE_FILE)?;
    }
    Ok(f)
}

/// Deletes all but the newest [`MAX_LOG_FILES`] log files (by the date in the
/// name). Failures are ignored: a file that cannot be removed stays.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<(NaiveDate, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let date = name
                .to_str()?
                .strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
            Some((date, e.path()))
        })
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(MAX_LOG_FILES);
    for (_, p) in logs.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sanitize_escapes_every_unsafe_class_and_keeps_the_rest() {
        let cases = [
            ("plain text é 中", "plain text é 中"),
            ("a\nb", "a\\nb"),
            ("a\r\nfake", "a\\r\\nfake"),
            (
                "\u{1b}[2J\u{1b}]0;pwned\u{7}",
                "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}",
            ),
            ("nul\u{0}byte", "nul\\u{0}byte"),
            ("nel\u{85}x", "nel\\u{85}x"),
            ("del\u{7f}", "del\\u{7f}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("bidi \u{202e}txt.exe", "bidi \\u{202e}txt.exe"),
            ("iso\u{2066}x\u{2069}", "iso\\u{2066}x\\u{2069}"),
            ("zw\u{200b}sp", "zw\\u{200b}sp"),
            ("tab\there", "tab\\there"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize(raw), want, "{raw:?}");
            assert!(!sanitize(raw).chars().any(is_unsafe_char));
        }
        assert!(matches!(sanitize("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn error_line_is_short_and_keeps_both_ends_of_a_long_path() {
        let path = format!("/tmp/{}/ledger.sqlite3", "a".repeat(100_000));
        let line = error_line(&format!(
            "cannot lock {path}: File name too long (os error 36)"
        ));
        assert!(line.chars().count() + 7 <= MAX_ERROR_LINE, "{}", line.len());
        assert!(line.starts_with("cannot lock /tmp/aaa"), "{line}");
        assert!(line.contains("ledger.sqlite3"), "{line}");
        assert!(line.ends_with("File name too long (os error 36)"), "{line}");
        assert_eq!(error_line("short\nline"), "short\\nline");
        let long = "word ".repeat(100);
        assert!(error_line(&long).chars().count() + 7 <= MAX_ERROR_LINE);
    }

    #[test]
    fn sanitize_writer_keeps_one_event_on_one_line() {
        let mut w = Sanitize::new(Vec::new());
        w.write_all(b"2024-01-01T00:00:00Z WARN x=evil\n2024-01-01T00:00:00Z ERROR forged\n")
            .unwrap();
        w.write_all(b"bad \xff utf8\n").unwrap();
        let out = String::from_utf8(w.inner).unwrap();
        assert_eq!(
            out,
            "2024-01-01T00:00:00Z WARN x=evil\\n2024-01-01T00:00:00Z ERROR forged\nbad \u{fffd} utf8\n"
        );
    }

    #[test]
    fn daily_file_is_private_whatever_existed_and_prunes_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        for day in 1..=20 {
            std::fs::write(logs.join(format!("lrci.2020-01-{day:02}.log")), b"old\n").unwrap();
        }
        std::fs::write(logs.join("unrelated.txt"), b"keep\n").unwrap();
        let today = file_for(&logs, crate::clock::now().date_naive());
        std::fs::write(&today, b"earlier run\n").unwrap();
        std::fs::set_permissions(&today, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = DailyFile::open(&logs).unwrap();
        assert_eq!(f.path(), today);
        f.write_all(b"line\n").unwrap();
        assert_eq!(
            std::fs::metadata(&today).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read(&today).unwrap(), b"earlier run\nline\n");
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), MAX_LOG_FILES + 1, "{names:?}");
        assert!(names.contains(&"unrelated.txt".to_string()));
        assert!(!names.contains(&"lrci.2020-01-07.log".to_string()));
        assert!(names.contains(&"lrci.2020-01-08.log".to_string()));
    }

    #[test]
    fn daily_file_creates_a_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("a/b");
        let f = DailyFile::open(&logs).unwrap();
        assert_eq!(
            std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
