//! `ledger export`: every detection as JSON lines or CSV.

use super::*;

/// The CSV columns of `ledger export`, in the order of [`ExportRow`]'s fields.
pub const EXPORT_COLUMNS: [&str; 18] = [
    "detection_id",
    "alarm_id",
    "rule_name",
    "date_inserted",
    "entity_name",
    "rbp_max",
    "decision",
    "type",
    "value",
    "field",
    "state",
    "reason",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "sent_at",
    "submission_id",
];

/// A csv error as the I/O error it wraps (so a closed pipe stays a closed pipe).
pub(super) fn csv_io(e: csv::Error) -> io::Error {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return io;
        }
        return io::Error::other("csv writer I/O error");
    }
    io::Error::other(e)
}

pub(super) fn export(path: &Path, a: &ExportArgs, out: &mut dyn Write) -> Outcome {
    let filter = ExportFilter {
        state: a.state.map(DetectionState::from),
        from: parse_opt("--from", a.from.as_ref())?,
        to: parse_opt("--to", a.to.as_ref())?,
    };
    let l = open(path)?;
    let n = match a.format {
        ExportFormat::Jsonl => {
            let mut buf = Vec::with_capacity(512);
            l.export(&filter, |row: &ExportRow| {
                buf.clear();
                serde_json::to_writer(&mut buf, row).map_err(io::Error::other)?;
                out.write_all(&json_safe(&buf))?;
                out.write_all(b"\n")
            })?
        }
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *out);
            w.write_record(EXPORT_COLUMNS).map_err(csv_io)?;
            let n = l.export(&filter, |row| w.serialize(row).map_err(csv_io))?;
            w.flush()?;
            n
        }
    };
    tracing::debug!(rows = n, "export finished");
    Ok(())
}
