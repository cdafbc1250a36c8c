//! Files a mutation received as uploads (the `Upload` scalar, see `http::multipart`), checked
//! and kept in the blob store as attachments.
//!
//! A file is refused (a `userError` naming it, such as `["input", "attachments", "0"]`) when it
//! is empty or over the upload limits; the limits are enforced again here because the schema
//! runs without the HTTP reader too. What the client says about a file is cleaned rather than
//! refused: the name loses any directories, control characters and whatever is beyond
//! [`MAX_FILE_NAME_BYTES`]; a content type that is not a plain `type/subtype` (or is a
//! `multipart/*` or `message/*` type, which no single attachment part may be) becomes
//! `application/octet-stream`.
//!
//! # Blobs of refused commands
//! The bytes are stored before the command runs: an event must never name bytes that are not
//! durable (the delivery worker reads them to send the mail). A command the write side then
//! refuses (say, attachments on a chat reply) leaves its blobs unreferenced. That is accepted:
//! they are content-addressed, so sending the same files again stores nothing new; they are
//! bounded by the upload limits and come from signed-in users only; and ingestion leaves the
//! same after mail the write side refuses. Sweeping blobs no event names is the blob store's
//! business, not each writer's.

use std::io::Read;

use async_graphql::{Context, Upload};
use proto_events::event::{Attachment, BlobRef};

use crate::error::{ApiError, ApiResult, UserError};
use crate::state::state;

/// Longest file name kept, in bytes (what most file systems take).
const MAX_FILE_NAME_BYTES: usize = 255;

/// The name of a file whose name is nothing after cleaning.
const UNNAMED: &str = "attachment";

/// What [`receive`] kept.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// The files as attachments, in the input's order.
    pub(crate) attachments: Vec<Attachment>,
    /// The SHA-256 of each file by its upload's index: the request's fingerprint names files
    /// by content, so a `clientMutationId` repeated with other files is a misuse, not a
    /// repeat.
    pub(crate) hashes: Vec<(usize, String)>,
}

/// Checks the files of input field `field` and stores them. `Ok(Err(..))` holds the
/// `userErrors` of refused files (nothing was stored then).
pub(crate) async fn receive(
    ctx: &Context<'_>,
    field: &str,
    uploads: &[Upload],
) -> ApiResult<Result<Received, Vec<UserError>>> {
    // Nothing is kept for a stranger.
    crate::state::viewer(ctx).await?;
    let limits = &state(ctx).limits;
    let error = |path: Option<usize>, message: String| {
        let mut field = vec!["input".to_owned(), field.to_owned()];
        field.extend(path.map(|i| i.to_string()));
        UserError {
            field: Some(field),
            message,
            code: "INVALID".to_owned(),
        }
    };
    if uploads.len() > limits.max_upload_files {
        return Ok(Err(vec![error(
            None,
            format!("at most {} files are taken", limits.max_upload_files),
        )]));
    }
    let mut errors = Vec::new();
    let mut files = Vec::with_capacity(uploads.len());
    let mut total = 0_usize;
    for (i, upload) in uploads.iter().enumerate() {
        let value = upload
            .value(ctx)
            .map_err(|e| ApiError::internal(format!("an uploaded file: {e}")))?;
        let file_name = file_name(&value.filename);
        let content_type = content_type(value.content_type.as_deref());
        let most = limits.max_upload_file_bytes;
        // One byte more than allowed tells a file over the limit from one at it.
        let bytes = tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::new();
            value
                .into_read()
                .take(most as u64 + 1)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("reading an uploaded file: {e}")))?;
        if bytes.is_empty() {
            errors.push(error(Some(i), "the file is empty".to_owned()));
        } else if bytes.len() > most {
            errors.push(error(
                Some(i),
                format!("the file is larger than {most} bytes, the limit for one file"),
            ));
        }
        total = total.saturating_add(bytes.len());
        files.push((upload.0, bytes, file_name, content_type));
    }
    if errors.is_empty() && total > limits.max_upload_bytes {
        errors.push(error(
            None,
            format!(
                "the files are larger than {} bytes together, the limit of one request",
                limits.max_upload_bytes
            ),
        ));
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let blobs = state(ctx).store.blobs();
    let mut received = Received::default();
    for (index, bytes, file_name, content_type) in files {
        let size = bytes.len() as u64;
        let sha256 = blobs.put(bytes).await?;
        received.hashes.push((index, sha256.clone()));
        received.attachments.push(Attachment {
            blob: BlobRef { sha256, size },
            file_name: Some(file_name),
            content_type,
            content_id: None,
            inline: false,
        });
    }
    Ok(Ok(received))
}

/// A client's file name made safe to keep and to send: the last component of a path (a
/// browser may send `C:\Users\...\quote.pdf`), without control characters, trimmed, at most
/// [`MAX_FILE_NAME_BYTES`] (cut before the extension, which is kept), never empty.
pub(crate) fn file_name(given: &str) -> String {
    let last = given.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        return UNNAMED.to_owned();
    }
    if clean.len() <= MAX_FILE_NAME_BYTES {
        return clean.to_owned();
    }
    let (stem, extension) = match clean.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() && extension.len() <= 16 => {
            (stem, Some(extension))
        }
        _ => (clean, None),
    };
    let room = MAX_FILE_NAME_BYTES - extension.map_or(0, |e| e.len() + 1);
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    match extension {
        Some(extension) => format!("{}.{extension}", stem[..cut].trim_end()),
        None => stem[..cut].trim_end().to_owned(),
    }
}

/// A client's content type as a plain lower-case `type/subtype` (parameters dropped), or
/// `application/octet-stream` when it gives none, or none a single attachment may have.
pub(crate) fn content_type(given: Option<&str>) -> String {
    const DEFAULT: &str = "application/octet-stream";
    // RFC 2045 tokens: printable ASCII but spaces and tspecials.
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    let Some(essence) = given.and_then(|g| g.split(';').next()) else {
        return DEFAULT.to_owned();
    };
    let essence = essence.trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, sub))
            if token(kind) && token(sub) && !matches!(kind, "multipart" | "message") =>
        {
            essence
        }
        _ => DEFAULT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_directories_and_control_characters() {
        assert_eq!(file_name("quote.pdf"), "quote.pdf");
        assert_eq!(file_name("C:\\Users\\ada\\quote.pdf"), "quote.pdf");
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("a\r\nBcc: x@y.z.txt"), "aBcc: x@y.z.txt");
        assert_eq!(
            file_name("Vertrag über 20 Plätze.pdf"),
            "Vertrag über 20 Plätze.pdf"
        );
        for nothing in ["", "  ", "dir/", "..", "\u{7}"] {
            assert_eq!(file_name(nothing), UNNAMED, "{nothing:?}");
        }
    }

    #[test]
    fn long_file_names_are_cut_before_their_extension() {
        let long = format!("{}.pdf", "ä".repeat(300));
        let cut = file_name(&long);
        assert!(cut.len() <= MAX_FILE_NAME_BYTES, "{}", cut.len());
        assert!(cut.ends_with("ää.pdf"), "{cut}");
        let no_extension = "x".repeat(1000);
        assert_eq!(file_name(&no_extension).len(), MAX_FILE_NAME_BYTES);
    }

    #[test]
    fn content_types_are_plain_or_the_default() {
        assert_eq!(content_type(Some("application/pdf")), "application/pdf");
        assert_eq!(
            content_type(Some("Text/Plain; charset=utf-8")),
            "text/plain"
        );
        for bad in [
            None,
            Some(""),
            Some("pdf"),
            Some("text/"),
            Some("text/plain\r\nBcc: x"),
            Some("multipart/mixed; boundary=x"),
            Some("message/rfc822"),
            Some("a b/c"),
        ] {
            assert_eq!(content_type(bad), "application/octet-stream", "{bad:?}");
        }
    }
}
