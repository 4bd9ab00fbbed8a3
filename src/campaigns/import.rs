//! Lead import from spreadsheet CSV exports.
//!
//! The upload is streamed: the HTTP body is pumped chunk by chunk into a bounded channel, a
//! blocking thread parses it with the `csv` crate (delimiter sniffed, BOM stripped, quoted
//! newlines handled) and hands back batches of leads, which are inserted into one database
//! transaction. Memory stays constant whatever the file size, the runtime never blocks on
//! parsing, and a file that fails half-way (too large, connection lost) leaves nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Cursor, Read};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::limits::fields;
use crate::phone::E164;
use crate::store::NewLead;

/// Leads per database batch: big enough to amortise a round trip, small enough to bound memory.
pub const BATCH_SIZE: usize = 1000;
/// Row errors reported in detail; the rest are only counted.
pub const MAX_REPORTED_INVALID: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvalidRow {
    /// Spreadsheet row number: the header is row 1, the first lead row 2.
    pub row: u64,
    pub reason: String,
}

/// The answer to an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Lead rows read (blank rows are not counted).
    pub total: u64,
    pub imported: u64,
    /// Numbers already in the campaign or earlier in the file.
    pub duplicates: u64,
    pub do_not_call: u64,
    /// The first 100 invalid rows ([`MAX_REPORTED_INVALID`]); `invalid_count` counts them all.
    pub invalid: Vec<InvalidRow>,
    pub invalid_count: u64,
}

/// Why a file as a whole was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the CSV file is empty")]
    Empty,
    #[error("the CSV file has a header row but no lead rows")]
    NoRows,
    #[error("the file is not CSV text (it contains binary data)")]
    Binary,
    #[error("the header row is not UTF-8 text")]
    NotUtf8,
    #[error("no phone column: name one of {expected} (found: {found})")]
    NoPhoneColumn { expected: String, found: String },
    #[error("column {column}'s header is longer than {max} characters")]
    LongHeader { column: usize, max: usize },
    #[error("the file is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("could not read the upload: {0}")]
    Read(String),
}

impl ImportError {
    fn from_io(e: io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TooLargeMarker>())
        {
            Some(m) => ImportError::TooLarge(m.0),
            None => ImportError::Read(e.to_string()),
        }
    }
}

/// Carried through `io::Error` from the pump to the parser when the size limit is crossed.
#[derive(Debug)]
pub struct TooLargeMarker(pub u64);

impl std::fmt::Display for TooLargeMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upload larger than {} bytes", self.0)
    }
}

impl std::error::Error for TooLargeMarker {}

pub fn too_large(limit: u64) -> io::Error {
    io::Error::other(TooLargeMarker(limit))
}

/// A blocking `Read` over chunks arriving on a channel, for the parser thread.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

const PHONE_NAMES: &[&str] = &[
    "phone",
    "mobile",
    "number",
    "phone_number",
    "mobile_number",
    "phone_no",
    "mobile_no",
    "contact",
    "contact_number",
    "msisdn",
    "telephone",
    "tel",
    "cell",
];
const NAME_NAMES: &[&str] = &[
    "name",
    "full_name",
    "customer_name",
    "lead_name",
    "contact_name",
];
const TIMEZONE_NAMES: &[&str] = &["timezone", "time_zone", "tz"];

/// How header columns map onto lead fields.
#[derive(Debug)]
struct Columns {
    phone: usize,
    name: Option<usize>,
    timezone: Option<usize>,
    /// Every other column: (index, attribute key).
    attributes: Vec<(usize, String)>,
}

/// `Phone Number` → `phone_number`, `E-mail` → `e_mail`.
fn normalise_header(h: &str) -> String {
    let mut out = String::with_capacity(h.len());
    for c in h.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

fn map_columns(header: &csv::ByteRecord) -> Result<Columns, ImportError> {
    let mut names = Vec::with_capacity(header.len());
    let mut seen: HashMap<String, u32> = HashMap::new();
    for (i, raw) in header.iter().enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| ImportError::NotUtf8)?;
        let mut key = normalise_header(text);
        if key.chars().count() > fields::CSV_HEADER {
            return Err(ImportError::LongHeader {
                column: i + 1,
                max: fields::CSV_HEADER,
            });
        }
        if key.is_empty() {
            key = format!("column_{}", i + 1);
        }
        let n = seen.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            key = format!("{key}_{n}");
        }
        names.push(key);
    }
    let find = |aliases: &[&str]| {
        aliases
            .iter()
            .find_map(|a| names.iter().position(|n| n == a))
    };
    // The header may be long: the message lists what fits in a line.
    let phone = find(PHONE_NAMES).ok_or_else(|| ImportError::NoPhoneColumn {
        expected: PHONE_NAMES[..4].join(", "),
        found: crate::text::short_list(&names, 200),
    })?;
    let name = find(NAME_NAMES);
    let timezone = find(TIMEZONE_NAMES);
    let attributes = names
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != phone && Some(*i) != name && Some(*i) != timezone)
        .collect();
    Ok(Columns {
        phone,
        name,
        timezone,
        attributes,
    })
}

/// Picks the delimiter that occurs most often in the header line outside quotes.
fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in first_line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    candidates[best]
}

/// Reads the start of the file (up to the end of the header line, at most 64 KiB), strips a
/// UTF-8 BOM, refuses binary data and picks the delimiter; returns a reader over the whole file.
fn sniff(mut input: impl Read) -> Result<(u8, impl Read), ImportError> {
    const SNIFF_MAX: usize = 64 * 1024;
    let mut head = Vec::with_capacity(8 * 1024);
    let mut buf = [0u8; 8 * 1024];
    // Read until the first non-blank line is complete (blank lines may precede the header).
    let header_complete = |head: &[u8]| {
        head.iter()
            .position(|b| !b.is_ascii_whitespace())
            .is_some_and(|start| head[start..].contains(&b'\n'))
    };
    while head.len() < SNIFF_MAX && !header_complete(&head) {
        let n = input.read(&mut buf).map_err(ImportError::from_io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        head.drain(..3);
    }
    let Some(start) = head.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(ImportError::Empty);
    };
    if head.contains(&0) {
        return Err(ImportError::Binary);
    }
    let line_end = head[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |i| start + i);
    let first_line = head[start..line_end].to_vec();
    if std::str::from_utf8(&first_line).is_err() {
        return Err(ImportError::NotUtf8);
    }
    Ok((sniff_delimiter(&first_line), Cursor::new(head).chain(input)))
}

/// Parses one data row into a lead, or says why it is invalid.
fn parse_row(record: &csv::ByteRecord, columns: &Columns) -> Result<NewLead, String> {
    let field = |i: usize| -> Result<&str, String> {
        let raw = record.get(i).unwrap_or(b"");
        std::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| format!("column {} is not UTF-8 text", i + 1))
    };
    let phone_raw = field(columns.phone)?;
    let phone = E164::parse(phone_raw).map_err(|e| e.to_string())?;
    let name = match columns.name {
        Some(i) => Some(field(i)?)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        None => None,
    };
    if let Some(n) = &name {
        crate::text::check("name", n, fields::LEAD_NAME).map_err(|e| e.to_string())?;
    }
    let timezone = match columns.timezone {
        Some(i) => {
            let tz = field(i)?;
            if tz.is_empty() {
                None
            } else if tz.parse::<chrono_tz::Tz>().is_ok() {
                Some(tz.to_string())
            } else {
                return Err(format!(
                    "timezone `{tz}` is not an IANA time zone like Asia/Kolkata"
                ));
            }
        }
        None => None,
    };
    let mut attributes = BTreeMap::new();
    for (i, key) in &columns.attributes {
        let value = field(*i)?;
        crate::text::check(key, value, fields::LEAD_ATTRIBUTE).map_err(|e| e.to_string())?;
        if !value.is_empty() {
            attributes.insert(key.clone(), value.to_string());
        }
    }
    Ok(NewLead {
        phone: phone.as_str().to_string(),
        name,
        timezone,
        attributes,
    })
}

/// What the parser thread found, besides the leads it sent.
#[derive(Debug, Default)]
pub struct ParseSummary {
    pub total: u64,
    pub invalid: Vec<InvalidRow>,
    pub invalid_count: u64,
}

/// Parses the whole CSV from `input`, sending valid leads in batches of `batch_size`.
/// Runs on a blocking thread. Stops early (without error) if the receiver is gone.
pub fn parse_csv(
    input: impl Read,
    batches: mpsc::Sender<Vec<NewLead>>,
    batch_size: usize,
) -> Result<ParseSummary, ImportError> {
    let (delimiter, reader) = sniff(input)?;
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(BufReader::with_capacity(64 * 1024, reader));
    let mut record = csv::ByteRecord::new();
    let mut summary = ParseSummary::default();

    // The header is the first non-blank record.
    let columns = loop {
        if !csv.read_byte_record(&mut record).map_err(csv_error)? {
            return Err(ImportError::Empty);
        }
        if !is_blank(&record) {
            break map_columns(&record)?;
        }
    };
    let mut row: u64 = 1;
    let mut batch = Vec::with_capacity(batch_size);
    while csv.read_byte_record(&mut record).map_err(csv_error)? {
        row += 1;
        if is_blank(&record) {
            continue;
        }
        summary.total += 1;
        match parse_row(&record, &columns) {
            Ok(lead) => batch.push(lead),
            Err(reason) => {
                summary.invalid_count += 1;
                if summary.invalid.len() < MAX_REPORTED_INVALID {
                    summary.invalid.push(InvalidRow { row, reason });
                }
            }
        }
        if batch.len() == batch_size {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
            if batches.blocking_send(full).is_err() {
                return Ok(summary);
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    if summary.total == 0 {
        return Err(ImportError::NoRows);
    }
    Ok(summary)
}

fn is_blank(record: &csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
}

fn csv_error(e: csv::Error) -> ImportError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ImportError::from_io(io),
        other => ImportError::Read(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<(ParseSummary, Vec<NewLead>), ImportError> {
        let (tx, mut rx) = mpsc::channel(1024);
        let summary = parse_csv(text, tx, 2)?;
        let mut leads = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            leads.extend(batch);
        }
        Ok((summary, leads))
    }

    #[test]
    fn semicolon_file_with_bom_and_quoted_newlines() {
        let text = "\u{feff}Name;Mobile Number;City\n\"Asha\nKumar\";98765 43210;Pune\nRavi;+91 91234 56789;\n";
        let (summary, leads) = parse(text.as_bytes()).unwrap();
        assert_eq!(summary.total, 2);
        assert_eq!(leads[0].name.as_deref(), Some("Asha\nKumar"));
        assert_eq!(leads[0].phone, "+919876543210");
        assert_eq!(
            leads[0].attributes.get("city").map(String::as_str),
            Some("Pune")
        );
        assert_eq!(leads[1].phone, "+919123456789");
        assert!(leads[1].attributes.is_empty());
    }

    #[test]
    fn tab_separated_with_timezone_and_extra_columns() {
        let text = "phone\tname\ttimezone\tproduct interest\n9876543210\tअमित\tAsia/Dubai\tsolar\n";
        let (_, leads) = parse(text.as_bytes()).unwrap();
        assert_eq!(leads[0].name.as_deref(), Some("अमित"));
        assert_eq!(leads[0].timezone.as_deref(), Some("Asia/Dubai"));
        assert_eq!(
            leads[0]
                .attributes
                .get("product_interest")
                .map(String::as_str),
            Some("solar")
        );
    }

    #[test]
    fn invalid_rows_are_reported_with_spreadsheet_row_numbers() {
        let text =
            "phone,name,tz\n12345,Bad,\n9876543210,Good,\n,Empty,\n9876543211,Zone,Mars/X\n\n";
        let (summary, leads) = parse(text.as_bytes()).unwrap();
        assert_eq!(leads.len(), 1);
        assert_eq!(summary.total, 4);
        assert_eq!(summary.invalid_count, 3);
        let rows: Vec<u64> = summary.invalid.iter().map(|r| r.row).collect();
        assert_eq!(rows, [2, 4, 5]);
        assert!(summary.invalid[2].reason.contains("Mars/X"));
    }

    #[test]
    fn files_that_are_not_lead_lists_are_refused() {
        assert!(matches!(parse(b""), Err(ImportError::Empty)));
        assert!(matches!(parse(b"\n\n  \n"), Err(ImportError::Empty)));
        assert!(matches!(parse(b"phone,name\n"), Err(ImportError::NoRows)));
        assert!(matches!(
            parse(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Err(ImportError::Binary)
        ));
        let err = parse(b"email,name\na@b.c,x\n").unwrap_err();
        assert!(err.to_string().contains("found: email, name"), "{err}");
    }

    #[test]
    fn size_limit_error_travels_through_the_reader() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"phone\n9876543210\n")))
            .unwrap();
        tx.try_send(Err(too_large(10))).unwrap();
        drop(tx);
        let (btx, _brx) = mpsc::channel(16);
        let err = parse_csv(ChannelReader::new(rx), btx, 1000).unwrap_err();
        assert!(matches!(err, ImportError::TooLarge(10)), "{err:?}");
    }

    #[test]
    fn headers_are_normalised_and_deduplicated() {
        assert_eq!(normalise_header(" Phone Number "), "phone_number");
        assert_eq!(normalise_header("E-mail"), "e_mail");
        let text = "phone,City,city,\n9876543210,a,b,c\n";
        let (_, leads) = parse(text.as_bytes()).unwrap();
        let keys: Vec<&String> = leads[0].attributes.keys().collect();
        assert_eq!(keys, ["city", "city_2", "column_4"]);
    }
}
