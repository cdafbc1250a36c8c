//! Downloading a conversation's files: attachments, inline images and the originals of e-mails.
//!
//! `GET /files/{conversationId}/{sha256}` serves a blob that the conversation shows (the thread
//! view's `files` table says which), to a user who may see that conversation, checked at the
//! time of the download. It takes either a bearer token, like the GraphQL endpoint, or a
//! signed link: the `downloadUrl` fields of the API hand out
//! `/files/{conversationId}/{sha256}?link=...`, valid for [`LINK_LIFETIME`], naming the user it
//! was made for, so that a browser can follow it (an `<a href>`, an `<img src>`) without a
//! header. A link of a user who is deactivated, or whose tokens were revoked after the link was
//! made, is refused like their tokens.
//!
//! Every file is sent as an attachment with `X-Content-Type-Options: nosniff` and a sandboxing
//! Content-Security-Policy, so that a customer's HTML or SVG never runs on the API's origin.

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::auth::{Authentication, Viewer};
use crate::consistency::mac;
use crate::state::{ApiState, check_viewer};

/// How long a download link works.
pub(crate) const LINK_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// Signs and checks download links. `Debug` never prints the key.
#[derive(Clone)]
pub(crate) struct FileLinks(Vec<u8>);

impl std::fmt::Debug for FileLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLinks(<secret>)")
    }
}

impl FileLinks {
    /// A key derived from the server secret (domain-separated from tokens).
    pub(crate) fn new(secret: &[u8]) -> FileLinks {
        let mut mac = mac(secret);
        mac.update(b"switchboard file link v1");
        FileLinks(mac.finalize().into_bytes().to_vec())
    }

    /// The MAC over what a link says.
    fn mac(
        &self,
        viewer: &Viewer,
        expires: i64,
        conversation_id: Uuid,
        sha256: &str,
    ) -> Hmac<Sha256> {
        let mut mac = mac(&self.0);
        mac.update(viewer.user_id.as_bytes());
        mac.update(&viewer.issued_at.to_be_bytes());
        mac.update(&expires.to_be_bytes());
        mac.update(conversation_id.as_bytes());
        mac.update(sha256.as_bytes());
        mac
    }

    /// The path of `sha256` of `conversation_id` for `viewer`, signed, valid until `now` plus
    /// [`LINK_LIFETIME`].
    pub(crate) fn link(
        &self,
        viewer: &Viewer,
        conversation_id: Uuid,
        sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let expires = (now + LINK_LIFETIME).timestamp();
        let mut bytes = viewer.user_id.as_bytes().to_vec();
        bytes.extend_from_slice(&viewer.issued_at.to_be_bytes());
        bytes.extend_from_slice(&expires.to_be_bytes());
        let tag = self
            .mac(viewer, expires, conversation_id, sha256)
            .finalize()
            .into_bytes();
        bytes.extend_from_slice(&tag[..16]);
        format!(
            "/files/{conversation_id}/{sha256}?link={}",
            URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// The viewer a link was made for, if it is this server's, for this file, and unexpired.
    fn verify(
        &self,
        link: &str,
        conversation_id: Uuid,
        sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Viewer> {
        let bytes = URL_SAFE_NO_PAD.decode(link).ok()?;
        if bytes.len() != 16 + 8 + 8 + 16 {
            return None;
        }
        let user_id = Uuid::from_slice(&bytes[..16]).ok()?;
        let issued_at = i64::from_be_bytes(bytes[16..24].try_into().ok()?);
        let expires = i64::from_be_bytes(bytes[24..32].try_into().ok()?);
        let viewer = Viewer { user_id, issued_at };
        self.mac(&viewer, expires, conversation_id, sha256)
            .verify_truncated_left(&bytes[32..])
            .ok()?;
        (now.timestamp() < expires).then_some(viewer)
    }
}

/// The query of a download.
#[derive(Debug, Deserialize)]
pub(crate) struct Download {
    link: Option<String>,
}

/// A plain-text refusal.
fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why.to_owned(),
    )
        .into_response()
}

/// `GET /files/{conversationId}/{sha256}`.
pub(crate) async fn download(
    state: ApiState,
    Path((conversation, sha256)): Path<(String, String)>,
    Query(query): Query<Download>,
    headers: HeaderMap,
) -> Response {
    let inner = state.inner();
    let not_found = || refused(StatusCode::NOT_FOUND, "no such file");
    let Ok(conversation_id) = Uuid::parse_str(&conversation) else {
        return not_found();
    };
    if !switchboard_store::blob::is_blob_hash(&sha256) {
        return not_found();
    }
    let viewer = match query.link {
        Some(link) => {
            match inner
                .file_links
                .verify(&link, conversation_id, &sha256, chrono::Utc::now())
            {
                Some(viewer) => viewer,
                None => {
                    return refused(
                        StatusCode::UNAUTHORIZED,
                        "the link is not valid here or has expired: ask the API for a new one",
                    );
                }
            }
        }
        None => {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match inner.authenticate(authorization).await {
                Authentication::Viewer(viewer) => viewer,
                Authentication::Refused(why) => return refused(StatusCode::UNAUTHORIZED, &why),
            }
        }
    };
    let access = {
        let view = match inner.directory().await {
            Ok(view) => view,
            Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.message()),
        };
        if let Err(e) = check_viewer(&view.directory, &viewer) {
            return refused(StatusCode::UNAUTHORIZED, &e.message());
        }
        match inner.access(&view, viewer.user_id) {
            Ok(access) => access,
            Err(e) => return refused(StatusCode::FORBIDDEN, &e.message()),
        }
    };
    let wanted = sha256.clone();
    let found = inner
        .query("thread_view", move |conn| {
            let Some(header) = thread_view::conversation(conn, conversation_id)? else {
                return Ok(None);
            };
            let file = thread_view::file(conn, conversation_id, &wanted)?;
            Ok(file.map(|file| (header, file)))
        })
        .await;
    let (header, file) = match found {
        Ok(Some(found)) => found,
        // Unknown, or not shown by this conversation: the same answer.
        Ok(None) => return not_found(),
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.message()),
    };
    // A conversation the viewer may not see does not exist for them.
    if !access.conversation(header.inbox_id, header.private_owner_id) {
        return not_found();
    }
    let bytes = match inner.store.blobs().get(&sha256).await {
        Ok(Some(bytes)) => bytes,
        // Shown, but its bytes are gone (erased): nothing to serve.
        Ok(None) => return refused(StatusCode::GONE, "the file's contents were deleted"),
        Err(e) => {
            tracing::error!(error = %e, "reading a blob failed");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the file cannot be read now",
            );
        }
    };
    file_response(bytes, &file.content_type, file.file_name.as_deref())
}

/// `bytes` as a download that a browser never runs or renders on this origin.
fn file_response(bytes: Vec<u8>, content_type: &str, file_name: Option<&str>) -> Response {
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let name = file_name.unwrap_or("file");
    // RFC 6266: an ASCII fallback and the UTF-8 name, percent-encoded.
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_only_its_own_file_until_it_expires() {
        let links = FileLinks::new(b"secret");
        let viewer = Viewer {
            user_id: Uuid::from_u128(7),
            issued_at: 1_700_000_000,
        };
        let conversation = Uuid::from_u128(9);
        let sha = "ab".repeat(32);
        let now = chrono::Utc::now();
        let path = links.link(&viewer, conversation, &sha, now);
        let link = path
            .split_once("?link=")
            .map(|(_, l)| l)
            .unwrap_or_default();
        assert_eq!(links.verify(link, conversation, &sha, now), Some(viewer));
        assert_eq!(links.verify(link, Uuid::from_u128(10), &sha, now), None);
        assert_eq!(
            links.verify(link, conversation, &"cd".repeat(32), now),
            None
        );
        assert_eq!(
            links.verify(link, conversation, &sha, now + LINK_LIFETIME),
            None
        );
        assert_eq!(
            FileLinks::new(b"other").verify(link, conversation, &sha, now),
            None
        );
        assert_eq!(links.verify("garbage", conversation, &sha, now), None);
    }
}
