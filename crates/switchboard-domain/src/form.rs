//! Web forms: what a form channel may be configured with ([`configured`], behind
//! `ChannelCommand::ConfigureForm`) and whether a submission fits its configuration
//! ([`check_submission`], used by `POST /forms/{key}` before anything is written).
//!
//! Decisions:
//! - A form has exactly one field of kind `email`: the sender's address recognises (or creates)
//!   the contact, and replies go to it by e-mail. A form without one could open conversations
//!   nobody can answer.
//! - A submission's unknown fields are refused, not dropped: a typo in the company's HTML
//!   (`emial`) would otherwise lose what the visitor typed without anyone noticing. The honeypot
//!   is the one name outside the fields that a submission may carry.
//! - Allowed origins are `https://host[:port]`; plain `http` only for `localhost` and
//!   `127.0.0.1`, so a site can be tried on a developer's machine. They are kept lower-case,
//!   without a default port, so a browser's `Origin` header compares as a plain string.
//! - A form keeps its public key when configured again: pages that embed it keep working.

use proto_events::event::{FormConfigured, FormFieldKind, FormFieldSpec};
use uuid::Uuid;

use crate::DomainError;

/// Most fields a form may have.
pub const MAX_FIELDS: usize = 50;
/// Most choices of a `select` field.
pub const MAX_OPTIONS: usize = 100;
/// Most allowed origins of a form.
pub const MAX_ORIGINS: usize = 20;
/// Longest field name (the name a submission uses).
pub const MAX_FIELD_NAME: usize = 64;
/// Longest label or option.
pub const MAX_LABEL: usize = 200;
/// Longest submitted value of a `textarea` field, in characters.
pub const MAX_TEXTAREA: usize = 10_000;
/// Longest submitted value of any other field, in characters.
pub const MAX_VALUE: usize = 1_000;
/// Shortest public key accepted: 22 URL-safe base64 characters carry 132 bits.
pub const MIN_PUBLIC_KEY: usize = 22;

/// What a form is to be configured with, as `ChannelCommand::ConfigureForm` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSettings {
    /// The fields, in order.
    pub fields: Vec<FormFieldSpec>,
    /// Origins whose pages may post it from a script.
    pub allowed_origins: Vec<String>,
    /// The honeypot field's name; `None` or blank: none.
    pub honeypot_field: Option<String>,
}

/// The event configuring `channel_id` with `settings`, checked and normalised. `current_key` is
/// the form's key if it has one (kept); otherwise `new_key` becomes its key. Errors name the
/// input field, e.g. `fields.2.name` or `allowedOrigins.0`.
pub fn configured(
    channel_id: Uuid,
    current_key: Option<&str>,
    new_key: &str,
    settings: &FormSettings,
) -> Result<FormConfigured, DomainError> {
    let public_key = public_key(current_key, new_key)?;
    if settings.fields.is_empty() || settings.fields.len() > MAX_FIELDS {
        return Err(DomainError::invalid(
            "fields",
            format!("a form has 1 to {MAX_FIELDS} fields"),
        ));
    }
    let mut fields: Vec<FormFieldSpec> = Vec::with_capacity(settings.fields.len());
    for (i, field) in settings.fields.iter().enumerate() {
        let at = |part: &str| format!("fields.{i}.{part}");
        let name = field_name(&field.name).map_err(|m| DomainError::invalid(at("name"), m))?;
        if fields.iter().any(|f| f.name == name) {
            return Err(DomainError::invalid(
                at("name"),
                format!("{name:?} is the name of an earlier field"),
            ));
        }
        let label =
            text(&field.label, MAX_LABEL).map_err(|m| DomainError::invalid(at("label"), m))?;
        let options = match field.kind {
            FormFieldKind::Select => {
                if field.options.is_empty() || field.options.len() > MAX_OPTIONS {
                    return Err(DomainError::invalid(
                        at("options"),
                        format!("a select field has 1 to {MAX_OPTIONS} options"),
                    ));
                }
                let mut options: Vec<String> = Vec::with_capacity(field.options.len());
                for (j, option) in field.options.iter().enumerate() {
                    let option = text(option, MAX_LABEL)
                        .map_err(|m| DomainError::invalid(format!("fields.{i}.options.{j}"), m))?;
                    if options.contains(&option) {
                        return Err(DomainError::invalid(
                            format!("fields.{i}.options.{j}"),
                            format!("{option:?} is an earlier option"),
                        ));
                    }
                    options.push(option);
                }
                options
            }
            _ if !field.options.is_empty() => {
                return Err(DomainError::invalid(
                    at("options"),
                    "only select fields have options",
                ));
            }
            _ => Vec::new(),
        };
        fields.push(FormFieldSpec {
            name,
            label,
            kind: field.kind,
            required: field.required,
            options,
        });
    }
    let emails = fields
        .iter()
        .filter(|f| f.kind == FormFieldKind::Email)
        .count();
    if emails != 1 {
        return Err(DomainError::invalid(
            "fields",
            format!(
                "a form needs exactly one field of kind EMAIL (it has {emails}): the sender's \
                 address recognises the contact and takes the replies"
            ),
        ));
    }
    let allowed_origins = allowed_origins(&settings.allowed_origins)?;
    let honeypot_field = match settings.honeypot_field.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => {
            let name = field_name(name).map_err(|m| DomainError::invalid("honeypotField", m))?;
            if fields.iter().any(|f| f.name == name) {
                return Err(DomainError::invalid(
                    "honeypotField",
                    format!("{name:?} is the name of a field people fill in"),
                ));
            }
            Some(name)
        }
    };
    Ok(FormConfigured {
        channel_id,
        public_key,
        fields,
        allowed_origins,
        honeypot_field,
    })
}

/// The key a channel keeps: `current_key` if it has one, else `new_key`, which must be at least
/// [`MIN_PUBLIC_KEY`] URL-safe characters. Shared with the chat widget's configuration.
pub(crate) fn public_key(current_key: Option<&str>, new_key: &str) -> Result<String, DomainError> {
    if let Some(key) = current_key {
        return Ok(key.to_owned());
    }
    if new_key.len() < MIN_PUBLIC_KEY
        || !new_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(DomainError::invalid(
            "publicKey",
            format!("must be at least {MIN_PUBLIC_KEY} URL-safe characters"),
        ));
    }
    Ok(new_key.to_owned())
}

/// Checks and normalises allowed origins (see [`origin`]), dropping repeats; errors name
/// `allowedOrigins.<i>`. Shared with the chat widget's configuration.
pub(crate) fn allowed_origins(origins: &[String]) -> Result<Vec<String>, DomainError> {
    if origins.len() > MAX_ORIGINS {
        return Err(DomainError::invalid(
            "allowedOrigins",
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    let mut allowed: Vec<String> = Vec::with_capacity(origins.len());
    for (i, origin) in origins.iter().enumerate() {
        let origin = self::origin(origin)
            .map_err(|m| DomainError::invalid(format!("allowedOrigins.{i}"), m))?;
        if !allowed.contains(&origin) {
            allowed.push(origin);
        }
    }
    Ok(allowed)
}

/// A field name: 1 to [`MAX_FIELD_NAME`] ASCII letters, digits, `_`, `-` or `.`.
fn field_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > MAX_FIELD_NAME
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "must be 1 to {MAX_FIELD_NAME} ASCII letters, digits, '_', '-' or '.'"
        ));
    }
    Ok(value.to_owned())
}

/// A label or option: trimmed, not empty, at most `max` characters, no control characters.
pub(crate) fn text(value: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {max} characters without control characters"
        ));
    }
    Ok(value.to_owned())
}

/// An origin as a browser sends it: `https://host[:port]`, lower-case, without a default port.
fn origin(value: &str) -> Result<String, String> {
    let refused = || {
        format!(
            "{value:?} is not an origin: write https://host or https://host:port (http only for \
             localhost), without a path"
        )
    };
    let lower = value.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or_else(refused)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| refused())?;
            if port == 0 {
                return Err(refused());
            }
            (host, Some(port))
        }
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-']);
    let local = host == "localhost" || host == "127.0.0.1";
    let default_port = match scheme {
        "https" => 443,
        "http" if local => 80,
        _ => return Err(refused()),
    };
    if !host_ok {
        return Err(refused());
    }
    Ok(match port {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Why one submitted field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's name, as the submission carries it.
    pub field: String,
    /// What is wrong, for the visitor.
    pub message: String,
}

/// A submission that fits its form: the values to record, in the form's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// `(field, value)` for each field given a value, in the form's order. A checkbox's value is
    /// `"yes"` or `"no"`.
    pub values: Vec<(FormFieldSpec, String)>,
    /// The sender's address, from the form's `email` field.
    pub email: String,
}

/// The most unknown field names one answer lists.
const MAX_UNKNOWN_REPORTED: usize = 20;

/// Whether a submission may be taken: `values` are `(name, value)` pairs as posted (a name may
/// come twice; the last value counts, as in most form handlers). Returns every problem at once,
/// so a visitor fixes them in one go. The honeypot is not checked here.
pub fn check_submission(
    form: &FormConfigured,
    values: &[(String, String)],
) -> Result<Submission, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let problem = |field: &str, message: String| FieldProblem {
        field: field.to_owned(),
        message,
    };
    // Each unknown name once, and no more than a handful: the answer stays small.
    let mut unknown = std::collections::HashSet::new();
    for (name, _) in values {
        let known = form.fields.iter().any(|f| &f.name == name)
            || form.honeypot_field.as_deref() == Some(name.as_str());
        if !known && unknown.len() < MAX_UNKNOWN_REPORTED && unknown.insert(name.as_str()) {
            problems.push(problem(name, "this form has no such field".to_owned()));
        }
    }
    let mut kept = Vec::new();
    let mut email = String::new();
    for field in &form.fields {
        let given = values
            .iter()
            .rev()
            .find(|(name, _)| name == &field.name)
            .map(|(_, value)| value.trim());
        let value = match (field.kind, given) {
            (FormFieldKind::Checkbox, given) => {
                let ticked = given.is_some_and(|v| {
                    !matches!(
                        v.to_ascii_lowercase().as_str(),
                        "" | "false" | "off" | "no" | "0"
                    )
                });
                if field.required && !ticked {
                    problems.push(problem(&field.name, "must be ticked".to_owned()));
                    continue;
                }
                if given.is_none() {
                    continue;
                }
                if ticked { "yes" } else { "no" }.to_owned()
            }
            (_, None | Some("")) => {
                if field.required {
                    problems.push(problem(&field.name, "is required".to_owned()));
                }
                continue;
            }
            (kind, Some(value)) => match check_value(field, kind, value) {
                Ok(value) => value,
                Err(message) => {
                    problems.push(problem(&field.name, message));
                    continue;
                }
            },
        };
        if field.kind == FormFieldKind::Email {
            email = value.clone();
        }
        kept.push((field.clone(), value));
    }
    if problems.is_empty() && email.is_empty() {
        // Configuration guarantees one e-mail field; an optional one left blank leaves the
        // conversation without anyone to answer.
        if let Some(field) = form.fields.iter().find(|f| f.kind == FormFieldKind::Email) {
            problems.push(problem(
                &field.name,
                "is required: replies go to this address".to_owned(),
            ));
        }
    }
    if problems.is_empty() {
        Ok(Submission {
            values: kept,
            email,
        })
    } else {
        Err(problems)
    }
}

/// A non-blank value of a field of `kind`, checked and normalised.
fn check_value(field: &FormFieldSpec, kind: FormFieldKind, value: &str) -> Result<String, String> {
    let max = if kind == FormFieldKind::Textarea {
        MAX_TEXTAREA
    } else {
        MAX_VALUE
    };
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    let controls = value.chars().any(|c| {
        c.is_control() && !(kind == FormFieldKind::Textarea && matches!(c, '\n' | '\r' | '\t'))
    });
    if controls {
        return Err("must not contain control characters".to_owned());
    }
    match kind {
        FormFieldKind::Email => {
            if plausible_email(value) {
                Ok(value.to_owned())
            } else {
                Err("must be an e-mail address, like name@example.com".to_owned())
            }
        }
        FormFieldKind::Number => match value.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(value.to_owned()),
            _ => Err("must be a number".to_owned()),
        },
        FormFieldKind::Phone => {
            let digits = value.chars().filter(char::is_ascii_digit).count();
            let allowed = value
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'));
            if allowed && (5..=20).contains(&digits) {
                Ok(value.to_owned())
            } else {
                Err("must be a telephone number: 5 to 20 digits, spaces and + - ( ) .".to_owned())
            }
        }
        FormFieldKind::Select => {
            if field.options.iter().any(|o| o == value) {
                Ok(value.to_owned())
            } else {
                Err(format!("must be one of: {}", field.options.join(", ")))
            }
        }
        FormFieldKind::Text if value.contains(['\n', '\r']) => Err("must be one line".to_owned()),
        FormFieldKind::Text | FormFieldKind::Textarea | FormFieldKind::Checkbox => {
            Ok(value.to_owned())
        }
    }
}

/// An address of the form `local@domain.tld`: one `@`, no spaces, a dot in the domain, at most
/// 254 bytes. Whether it receives mail only sending can tell.
pub(crate) fn plausible_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && !value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> FormConfigured {
        let field = |name: &str, kind, required, options: &[&str]| FormFieldSpec {
            name: name.into(),
            label: name.to_uppercase(),
            kind,
            required,
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        };
        FormConfigured {
            channel_id: Uuid::nil(),
            public_key: "k".repeat(22),
            fields: vec![
                field("name", FormFieldKind::Text, false, &[]),
                field("email", FormFieldKind::Email, true, &[]),
                field("age", FormFieldKind::Number, false, &[]),
                field("phone", FormFieldKind::Phone, false, &[]),
                field("topic", FormFieldKind::Select, false, &["Sales", "Support"]),
                field("consent", FormFieldKind::Checkbox, true, &[]),
                field("message", FormFieldKind::Textarea, true, &[]),
            ],
            allowed_origins: vec![],
            honeypot_field: Some("website".into()),
        }
    }

    fn pairs(values: &[(&str, &str)]) -> Vec<(String, String)> {
        values
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_fitting_submission_is_kept_in_the_forms_order() {
        let taken = check_submission(
            &form(),
            &pairs(&[
                ("message", "Hello\nthere"),
                ("email", " ada@example.com "),
                ("consent", "on"),
                ("topic", "Sales"),
                ("phone", "+44 (0)20 7946-0000"),
                ("age", "36"),
                ("website", ""),
            ]),
        )
        .unwrap();
        assert_eq!(taken.email, "ada@example.com");
        let names: Vec<_> = taken
            .values
            .iter()
            .map(|(f, v)| (f.name.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("email", "ada@example.com"),
                ("age", "36"),
                ("phone", "+44 (0)20 7946-0000"),
                ("topic", "Sales"),
                ("consent", "yes"),
                ("message", "Hello\nthere"),
            ]
        );
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let problems = check_submission(
            &form(),
            &pairs(&[
                ("email", "not an address"),
                ("age", "many"),
                ("phone", "call me"),
                ("topic", "Other"),
                ("consent", "false"),
                ("name", "two\nlines"),
                ("emial", "typo@example.com"),
            ]),
        )
        .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "emial", "name", "email", "age", "phone", "topic", "consent", "message"
            ]
        );
        let long = "x".repeat(MAX_VALUE + 1);
        let problems = check_submission(
            &form(),
            &pairs(&[
                ("email", "a@b.example"),
                ("consent", "1"),
                ("message", "hi"),
                ("name", &long),
            ]),
        )
        .unwrap_err();
        assert_eq!(problems[0].field, "name");
    }
}
