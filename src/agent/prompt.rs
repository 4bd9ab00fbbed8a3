//! The system prompt and the greeting, built from the campaign, the lead and the local time.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::store::{Campaign, Lead};

/// Fills `{field}` placeholders from the lead (`name`, `phone` masked never — only attributes
/// and name are offered). Unknown or empty fields vanish, and the spacing left behind is tidied.
pub fn render_greeting(template: &str, lead: Option<&Lead>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let key = after[..close].trim().to_ascii_lowercase();
                out.push_str(&lead_field(lead, &key).unwrap_or_default());
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    tidy(&out)
}

/// Checks a greeting template: every `{` closes before the next one opens, every `}` was opened,
/// and each placeholder names a field (1–64 letters, digits or `_`). `Hi {name` would otherwise
/// be spoken as typed, braces and all.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    loop {
        let open = rest.find('{');
        let close = rest.find('}');
        match (open, close) {
            (None, None) => return Ok(()),
            (None, Some(_)) => return Err("a `}` closes no placeholder".into()),
            (Some(o), Some(c)) if c < o => return Err("a `}` closes no placeholder".into()),
            (Some(_), None) => {
                return Err("a `{` is never closed (write placeholders as `{name}`)".into());
            }
            (Some(o), Some(c)) => {
                let key = rest[o + 1..c].trim();
                if key.contains('{') {
                    return Err("a `{` is never closed (write placeholders as `{name}`)".into());
                }
                let valid = !key.is_empty()
                    && key.len() <= 64
                    && key
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
                if !valid {
                    return Err(format!(
                        "placeholder `{{{}}}` must name a lead field (letters, digits, `_`)",
                        crate::text::LogSafe(key)
                    ));
                }
                rest = &rest[c + 1..];
            }
        }
    }
}

fn lead_field(lead: Option<&Lead>, key: &str) -> Option<String> {
    let lead = lead?;
    match key {
        "name" => lead.name.clone(),
        "first_name" => lead
            .name
            .as_deref()
            .and_then(|n| n.split_whitespace().next())
            .map(str::to_string),
        other => lead.attributes.get(other).cloned(),
    }
}

/// Collapses the gaps an empty placeholder leaves ("Namaste , hi" → "Namaste, hi").
fn tidy(s: &str) -> String {
    let mut t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in [",", ".", "!", "?", "।"] {
        t = t.replace(&format!(" {p}"), p);
    }
    t.trim().to_string()
}

/// The model's instructions for this call.
pub fn system_prompt(campaign: &Campaign, lead: Option<&Lead>, now: DateTime<Utc>) -> String {
    let tz: Tz = lead
        .and_then(|l| l.timezone.as_deref())
        .unwrap_or(&campaign.spec.timezone)
        .parse()
        .unwrap_or(chrono_tz::Asia::Kolkata);
    let local = now.with_timezone(&tz);
    let mut p = String::new();
    p.push_str(campaign.spec.instructions.trim());
    p.push_str("\n\n# The call\n");
    p.push_str(&format!(
        "You are on a live phone call. Current local time: {} ({tz}).\n",
        local.format("%A %Y-%m-%d %H:%M")
    ));
    p.push_str(&format!("Language: {}. ", campaign.spec.language));
    if campaign.spec.language.starts_with("hi") {
        p.push_str("Reply in Hindi (Devanagari script). ");
    }
    p.push_str(
        "Speak naturally in one or two short sentences per reply; no lists, no markdown, no \
         emojis. When you learn the caller's intent, call record_outcome. If they ask to be \
         called later, call schedule_callback with an exact time. When the conversation is \
         over, say a short goodbye and call end_call.\n",
    );
    if let Some(lead) = lead {
        p.push_str("\n# The person you are calling\n");
        if let Some(name) = &lead.name {
            p.push_str(&format!("Name: {name}\n"));
        }
        for (k, v) in &lead.attributes {
            if k != "persona" {
                p.push_str(&format!("{k}: {v}\n"));
            }
        }
    }
    if !campaign.spec.qualification_fields.is_empty() {
        p.push_str("\n# Qualify the lead\nFind out, if you can: ");
        let fields: Vec<String> = campaign
            .spec
            .qualification_fields
            .iter()
            .map(|f| {
                if f.description.is_empty() {
                    f.name.clone()
                } else {
                    format!("{} ({})", f.name, f.description)
                }
            })
            .collect();
        p.push_str(&fields.join("; "));
        p.push('\n');
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn lead(name: Option<&str>) -> Lead {
        Lead {
            id: 1,
            campaign_id: 1,
            phone: "+919876543210".into(),
            name: name.map(str::to_string),
            timezone: None,
            attributes: BTreeMap::from([("city".to_string(), "Pune".to_string())]),
            status: crate::store::LeadStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_result: None,
            outcome: None,
            qualification: Default::default(),
            summary: None,
            callback_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn templates_must_close_their_placeholders() {
        assert_eq!(check_template("Namaste {name}, about {city}."), Ok(()));
        assert_eq!(check_template("No placeholders."), Ok(()));
        for bad in [
            "Hi {name",
            "Hi name}",
            "Hi {first name}",
            "Hi {}",
            "Hi {a{b}}",
            "}{",
        ] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn greeting_fills_lead_fields_and_tidies_missing_ones() {
        let t = "Namaste {name}, calling about solar in {city}. {unknown}";
        assert_eq!(
            render_greeting(t, Some(&lead(Some("Asha")))),
            "Namaste Asha, calling about solar in Pune."
        );
        assert_eq!(
            render_greeting(t, Some(&lead(None))),
            "Namaste, calling about solar in Pune."
        );
        assert_eq!(
            render_greeting("नमस्ते {name} जी।", Some(&lead(Some("अमित")))),
            "नमस्ते अमित जी।"
        );
        assert_eq!(render_greeting("Hello {name", None), "Hello {name");
    }
}
