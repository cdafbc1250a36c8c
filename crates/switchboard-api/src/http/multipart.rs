//! GraphQL multipart requests: file uploads for the `Upload` scalar, as the GraphQL multipart
//! request spec (<https://github.com/jaydenseric/graphql-multipart-request-spec>) sends them.
//!
//! Such a request is `multipart/form-data` with, in this order, an `operations` part (the
//! GraphQL request as JSON, each file's place in its variables `null`), a `map` part (which file
//! goes where: `{"0": ["variables.input.attachments.0"]}`) and one part per file, named as in
//! the map. The files reach resolvers as async-graphql's `UploadValue`s, spooled to anonymous
//! temporary files while the client sends them, never held in memory; resolvers decide what to
//! keep (nothing is stored here).
//!
//! async-graphql has a reader of its own, but it neither counts files (its `max_num_files` only
//! scales a size limit) nor parts (each named part with a file name opens a temporary file, so
//! a body of many tiny parts holds thousands of descriptors), and reports every overrun as one
//! bare "payload too large". This one reads the parts with multer, the parser that reader uses
//! too, and refuses, before spooling anything more:
//! - a map placing more files than `limits.max_upload_files` (413);
//! - a file larger than `limits.max_upload_file_bytes` (413, naming its variable), or files
//!   larger than `limits.max_upload_bytes` together (413);
//! - an `operations` or `map` part larger than `limits.max_body_bytes` (413);
//! - parts out of order, a part the map does not name (or a second part of one name), a file
//!   the map names that never came, a batch (400).
//!
//! # Cross-site requests
//! `multipart/form-data` is a "simple" request: a page on any origin can make a browser post
//! it without a CORS preflight, which is why Apollo Server refuses multipart requests without a
//! header that forces one. That defence matters when a browser adds the credentials by itself
//! (cookies, HTTP authentication). This API takes credentials only from the `Authorization`
//! header, which a cross-site form cannot set and a cross-site script cannot set without a
//! preflight the API does not answer; a forged request is therefore anonymous, and the handler
//! refuses anonymous uploads before reading their bodies. Should the API ever accept a cookie,
//! multipart requests must then require a non-simple header (such as
//! `GraphQL-Require-Preflight`) as well.

use std::collections::HashMap;
use std::io::SeekFrom;

use async_graphql::UploadValue;
use axum::body::Body;
use axum::http::StatusCode;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::state::Limits;

/// The prefix async-graphql gives the variables it replaced with an upload (see
/// `async_graphql::Request::set_upload`): `#__graphql_file__:<index>`.
const UPLOAD_PLACEHOLDER: &str = "#__graphql_file__:";

/// Why a request was not read: the status and a message for the client.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Refused {
    fn bad(message: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn too_large(message: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
        }
    }
}

/// Whether a `Content-Type` is `multipart/form-data` (parameters aside).
pub(crate) fn is_multipart(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// The largest body of a multipart request: its files together, plus the `operations` and
/// `map` parts and the parts' headers, bounded as a JSON request is.
pub(crate) fn body_limit(limits: &Limits) -> usize {
    limits
        .max_upload_bytes
        .saturating_add(limits.max_body_bytes)
}

/// Refuses a request that names an upload it does not carry: the placeholder async-graphql
/// puts in the variables for a file, written into the query or the variables by the client.
/// async-graphql trusts it (a wrong index panics when a resolver reads the file), so only this
/// module's reader may write it.
pub(crate) fn forged_upload(request: &async_graphql::Request) -> Option<Refused> {
    fn holds(value: &async_graphql::Value) -> bool {
        match value {
            async_graphql::Value::String(s) => s.starts_with(UPLOAD_PLACEHOLDER),
            async_graphql::Value::List(items) => items.iter().any(holds),
            async_graphql::Value::Object(fields) => fields.values().any(holds),
            _ => false,
        }
    }
    let in_variables = request.variables.iter().any(|(_, value)| holds(value));
    (in_variables || request.query.contains(UPLOAD_PLACEHOLDER)).then(|| {
        Refused::bad(format!(
            "{UPLOAD_PLACEHOLDER:?} is reserved: send files as a multipart request (the GraphQL \
             multipart request spec)"
        ))
    })
}

/// Reads a multipart request whose `Content-Type` is `content_type`.
pub(crate) async fn read(
    content_type: &str,
    body: Body,
    limits: &Limits,
) -> Result<async_graphql::Request, Refused> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| Refused::bad(format!("the multipart request has no boundary: {e}")))?;
    let json_limit = limits.max_body_bytes as u64;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(body_limit(limits) as u64)
            .for_field("operations", json_limit)
            .for_field("map", json_limit),
    );
    let mut parts =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut operations = None;
    let mut map: Option<HashMap<String, Vec<String>>> = None;
    let mut files = Vec::new();
    let mut total = 0_u64;
    while let Some(part) = parts
        .next_field()
        .await
        .map_err(|e| unreadable(e, limits))?
    {
        let name = part.name().unwrap_or_default().to_owned();
        match (&mut operations, &mut map) {
            (None, _) if name == "operations" => {
                let bytes = part.bytes().await.map_err(|e| unreadable(e, limits))?;
                operations = Some(parse_operations(&bytes)?);
            }
            (Some(_), None) if name == "map" => {
                let bytes = part.bytes().await.map_err(|e| unreadable(e, limits))?;
                map = Some(parse_map(&bytes, limits)?);
            }
            (Some(_), Some(map)) => {
                let Some(paths) = map.remove(&name) else {
                    return Err(Refused::bad(format!(
                        "the part {name:?} is not in the map, or came twice"
                    )));
                };
                let filename = part.file_name().unwrap_or_default().to_owned();
                let content_type = part.content_type().map(ToString::to_string);
                let what = paths.first().map_or(name.as_str(), String::as_str);
                let content = spool(part, what, limits, &mut total).await?;
                let upload = UploadValue {
                    filename,
                    content_type,
                    content,
                };
                files.push((paths, upload));
            }
            _ => {
                return Err(Refused::bad(format!(
                    "expected the parts `operations`, `map`, then the files, in this order \
                     (the GraphQL multipart request spec); got {name:?}"
                )));
            }
        }
    }
    let (Some(mut request), Some(map)) = (operations, map) else {
        return Err(Refused::bad(
            "a multipart request needs the parts `operations` and `map`",
        ));
    };
    if !map.is_empty() {
        let mut missing: Vec<&String> = map.keys().collect();
        missing.sort();
        return Err(Refused::bad(format!(
            "the map names files the request does not carry: {missing:?}"
        )));
    }
    for (paths, upload) in files {
        for path in paths {
            let upload = upload
                .try_clone()
                .map_err(|e| Refused::bad(format!("an uploaded file could not be read: {e}")))?;
            request.set_upload(&path, upload);
        }
    }
    Ok(request)
}

/// The `operations` part: one GraphQL request, without uploads of its own making.
fn parse_operations(bytes: &[u8]) -> Result<async_graphql::Request, Refused> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Refused::bad(format!("the `operations` part is not JSON: {e}")))?;
    if value.is_array() {
        return Err(Refused::bad(
            "batched requests are not supported: send one operation per request",
        ));
    }
    let request: async_graphql::Request = serde_json::from_value(value).map_err(|e| {
        Refused::bad(format!(
            "the `operations` part is not a GraphQL request: {e}"
        ))
    })?;
    match forged_upload(&request) {
        Some(refused) => Err(refused),
        None => Ok(request),
    }
}

/// The `map` part: each file's part name and the places of the variables it fills.
fn parse_map(bytes: &[u8], limits: &Limits) -> Result<HashMap<String, Vec<String>>, Refused> {
    let map: HashMap<String, Vec<String>> = serde_json::from_slice(bytes).map_err(|e| {
        Refused::bad(format!(
            "the `map` part is not a JSON object of arrays of paths: {e}"
        ))
    })?;
    // Places, not parts: each place of a file holds a descriptor of its own.
    let places: usize = map.values().map(Vec::len).sum();
    if places > limits.max_upload_files {
        return Err(Refused::too_large(format!(
            "the request places {places} files; at most {} are taken",
            limits.max_upload_files
        )));
    }
    Ok(map)
}

/// Writes a file part to an anonymous temporary file, within the size limits; `what` names it
/// in errors (its first variable path).
async fn spool(
    mut part: multer::Field<'_>,
    what: &str,
    limits: &Limits,
    total: &mut u64,
) -> Result<std::fs::File, Refused> {
    let io = |e: std::io::Error| Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("the upload could not be received now: {e}"),
    };
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let mut size = 0_u64;
    while let Some(chunk) = part.chunk().await.map_err(|e| unreadable(e, limits))? {
        size += chunk.len() as u64;
        *total += chunk.len() as u64;
        if size > limits.max_upload_file_bytes as u64 {
            return Err(Refused::too_large(format!(
                "the file for {what} is larger than {} bytes, the limit for one file",
                limits.max_upload_file_bytes
            )));
        }
        if *total > limits.max_upload_bytes as u64 {
            return Err(Refused::too_large(format!(
                "the files are larger than {} bytes together, the limit of one request",
                limits.max_upload_bytes
            )));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    let mut file = file.into_inner();
    file.seek(SeekFrom::Start(0)).await.map_err(io)?;
    Ok(file.into_std().await)
}

/// A multipart reading error as a refusal.
fn unreadable(error: multer::Error, limits: &Limits) -> Refused {
    match error {
        multer::Error::StreamSizeExceeded { .. } => Refused::too_large(format!(
            "the request is larger than {} bytes: files may have {} bytes together, {} each",
            body_limit(limits),
            limits.max_upload_bytes,
            limits.max_upload_file_bytes
        )),
        multer::Error::FieldSizeExceeded { field_name, .. } => Refused::too_large(format!(
            "the part {:?} is larger than {} bytes",
            field_name.unwrap_or_default(),
            limits.max_body_bytes
        )),
        other => Refused::bad(format!("the multipart request could not be read: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_written_by_the_client_are_refused() {
        let query = async_graphql::Request::new(r##"{ a(f: "#__graphql_file__:7") }"##);
        assert!(forged_upload(&query).is_some());
        let variables = async_graphql::Request::new("mutation($f: Upload!) { a(f: $f) }")
            .variables(async_graphql::Variables::from_json(
                serde_json::json!({"input": {"files": ["#__graphql_file__:x"]}}),
            ));
        assert!(forged_upload(&variables).is_some());
        let plain = async_graphql::Request::new("{ a }").variables(
            async_graphql::Variables::from_json(serde_json::json!({"name": "file.pdf"})),
        );
        assert!(forged_upload(&plain).is_none());
    }

    #[test]
    fn multipart_is_form_data_only() {
        assert!(is_multipart("multipart/form-data; boundary=x"));
        assert!(is_multipart("Multipart/Form-Data"));
        assert!(!is_multipart("multipart/mixed; boundary=x"));
        assert!(!is_multipart("application/json"));
    }
}
