//! `GET /campaigns/{id}/export.csv`: every lead of a campaign with what its calls left, streamed.
//!
//! The body is produced page by page (keyset pages of [`PAGE`] leads, one query each) while the
//! client reads it, so memory stays constant whatever the campaign's size. Numbers are masked
//! unless the operator asks for full numbers. A database error mid-stream aborts the response
//! (the client sees a truncated transfer, never a silently short file that looks complete).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use chrono::SecondsFormat;
use serde_json::Value;

use crate::store::{Campaign, ExportRow, Store};

/// Leads per query and per chunk of the body.
pub const PAGE: i64 = 500;

const LEADING: [&str; 6] = ["lead_id", "name", "phone", "status", "outcome", "intent"];
const TRAILING: [&str; 4] = ["attempts", "last_call_at", "summary", "recording_url"];

/// The header row: fixed columns around one column per qualification field. A field named like
/// a fixed column is headed `qualification.<name>`, so no header repeats.
pub fn header(campaign: &Campaign) -> Vec<String> {
    let mut columns: Vec<String> = LEADING.map(String::from).to_vec();
    columns.extend(campaign.spec.qualification_fields.iter().map(|f| {
        if LEADING.contains(&f.name.as_str()) || TRAILING.contains(&f.name.as_str()) {
            format!("qualification.{}", f.name)
        } else {
            f.name.clone()
        }
    }));
    columns.extend(TRAILING.map(String::from));
    columns
}

/// Text a caller or the model wrote, made safe to open in a spreadsheet: a cell starting with
/// `=`, `+`, `-`, `@`, tab or carriage return would be run as a formula (CSV injection), so it
/// gets a leading `'`. Plain numbers (`-5`, `+3.5`) are left as they are.
fn guard(text: String) -> String {
    // The risky first characters are all ASCII, so `text[1..]` is on a char boundary.
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_signed_number(&text[1..]) {
        format!("'{text}")
    } else {
        text
    }
}

/// `3`, `3.5`: what follows a sign in a plain number.
fn is_signed_number(rest: &str) -> bool {
    rest.starts_with(|c: char| c.is_ascii_digit())
        && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn record(row: &ExportRow, fields: &[String], full_numbers: bool) -> Vec<String> {
    let mut out = vec![
        row.id.to_string(),
        guard(row.name.clone().unwrap_or_default()),
        if full_numbers {
            row.phone.clone()
        } else {
            crate::phone::mask(&row.phone)
        },
        row.status.as_str().to_string(),
        row.outcome.clone().unwrap_or_default(),
        row.last_intent.clone().unwrap_or_default(),
    ];
    out.extend(fields.iter().map(|f| guard(cell(row.qualification.get(f)))));
    out.push(row.attempts.to_string());
    out.push(
        row.last_call_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default(),
    );
    out.push(guard(row.summary.clone().unwrap_or_default()));
    out.push(row.recording_url.clone().unwrap_or_default());
    out
}

/// Writes records as CSV (RFC 4180 quoting by the `csv` crate).
fn to_csv<I: IntoIterator<Item = Vec<String>>>(records: I) -> Result<Bytes, std::io::Error> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
    for r in records {
        writer.write_record(&r).map_err(std::io::Error::other)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Bytes::from(bytes))
}

enum Next {
    Header(Vec<String>),
    After(i64),
    Done,
}

/// The streamed body: the header, then one chunk per page of leads.
pub fn body(store: Arc<dyn Store>, campaign: &Campaign, full_numbers: bool) -> Body {
    let fields: Vec<String> = campaign
        .spec
        .qualification_fields
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let campaign_id = campaign.id;
    let stream = futures::stream::unfold(Next::Header(header(campaign)), move |next| {
        let store = store.clone();
        let fields = fields.clone();
        async move {
            match next {
                Next::Header(row) => Some((to_csv([row]), Next::After(0))),
                Next::Done => None,
                Next::After(after) => match store.export_page(campaign_id, after, PAGE).await {
                    Ok(rows) if rows.is_empty() => None,
                    Ok(rows) => {
                        let last = rows.last().map_or(after, |r| r.id);
                        let more = rows.len() as i64 == PAGE;
                        let chunk = to_csv(rows.iter().map(|r| record(r, &fields, full_numbers)));
                        Some((chunk, if more { Next::After(last) } else { Next::Done }))
                    }
                    Err(e) => {
                        tracing::error!(campaign_id, error = %e, "export aborted");
                        Some((Err(std::io::Error::other(e.to_string())), Next::Done))
                    }
                },
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_commas_quotes_and_newlines_are_quoted() {
        let csv = to_csv([vec![
            "1".to_string(),
            "Rao, \"Ravi\"".to_string(),
            "line one\nline two".to_string(),
        ]])
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&csv).unwrap(),
            "1,\"Rao, \"\"Ravi\"\"\",\"line one\nline two\"\n"
        );
    }

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_defused() {
        for risky in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(guard(risky.to_string()), format!("'{risky}"));
        }
        for (text, shown) in [
            ("Asha", "Asha"),
            ("-5", "-5"),
            ("+3.5", "+3.5"),
            ("42", "42"),
            ("", ""),
            ("a=b", "a=b"),
            ("-", "'-"),
            ("+.5", "'+.5"),
            ("राम", "राम"),
            ("é=1", "é=1"),
        ] {
            assert_eq!(guard(text.to_string()), shown, "{text:?}");
        }
    }

    #[test]
    fn qualification_cells_are_plain_text() {
        assert_eq!(cell(Some(&Value::String("3 kW".into()))), "3 kW");
        assert_eq!(cell(Some(&serde_json::json!(42))), "42");
        assert_eq!(cell(Some(&serde_json::json!(true))), "true");
        assert_eq!(cell(Some(&Value::Null)), "");
        assert_eq!(cell(None), "");
    }
}
