//! The baseline: the same data read from the same thread-view database the server's API reads,
//! through the same `ReadModel` (a pool of read-only connections, queries on tokio's blocking
//! pool), turned into the same JSON shape by hand and served by a bare axum handler: no
//! GraphQL, no authentication, no access rules, no directory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use switchboard_projector::ReadModel;
use thread_view::{
    Author, ConversationHeader, ListFilter, PageRequest, TimelineEntry, conversation,
    list_conversations, timeline,
};
use tokio::net::TcpListener;
use uuid::Uuid;

/// The thread-view read model's current file in a read-model directory.
pub(crate) fn thread_view_file(read_models: &Path) -> anyhow::Result<std::path::PathBuf> {
    let name = "thread_view";
    let current = read_models.join(format!("{name}.current"));
    let generation = match std::fs::read_to_string(&current) {
        Ok(text) => text.trim().parse::<u64>().context("a bad .current file")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", current.display())),
    };
    Ok(read_models.join(format!("{name}.{generation}.sqlite3")))
}

/// Starts the baseline server on a free loopback port: `GET /thread/{conversation}` and
/// `GET /inbox/{inbox}` (the first 25 conversations).
pub(crate) async fn serve(model: Arc<ReadModel>, page: usize) -> anyhow::Result<SocketAddr> {
    let router = Router::new()
        .route("/thread/{id}", get(thread))
        .route("/inbox/{id}", get(inbox))
        .with_state((model, page));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("baseline server stopped: {error}");
        }
    });
    Ok(addr)
}

type Shared = (Arc<ReadModel>, usize);

async fn thread(State((model, _)): State<Shared>, UrlPath(id): UrlPath<Uuid>) -> Response {
    let read = model
        .query(move |conn| Ok((conversation(conn, id)?, timeline(conn, id)?)))
        .await;
    match read {
        Ok((Some(header), entries)) => {
            let mut value = header_json(&header);
            value["timeline"] = json!({
                "pageInfo": {"hasNextPage": false},
                "nodes": entries.iter().map(entry_json).collect::<Vec<_>>(),
            });
            json_response(json!({"data": {"conversation": value}}))
        }
        Ok((None, _)) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn inbox(State((model, page)): State<Shared>, UrlPath(id): UrlPath<Uuid>) -> Response {
    let read = model
        .query(move |conn| {
            list_conversations(
                conn,
                &ListFilter {
                    inbox_id: Some(id),
                    ..ListFilter::default()
                },
                &PageRequest::First {
                    count: page,
                    after: None,
                },
                &thread_view::Scope::Everything,
            )
        })
        .await;
    match read {
        Ok(page) => {
            let end_cursor = page.items.last().map(cursor);
            let edges: Vec<Value> = page
                .items
                .iter()
                .map(|h| json!({"cursor": cursor(h), "node": header_json(h)}))
                .collect();
            json_response(json!({"data": {"inbox": {"conversations": {
                "pageInfo": {"hasNextPage": page.has_next_page, "endCursor": end_cursor},
                "edges": edges,
            }}}}))
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

fn cursor(header: &ConversationHeader) -> String {
    let c = header.cursor();
    format!(
        "{}:{}",
        c.last_activity_at.timestamp_micros(),
        c.conversation_id
    )
}

fn header_json(h: &ConversationHeader) -> Value {
    json!({
        "id": h.conversation_id,
        "status": format!("{:?}", h.status),
        "subject": h.subject,
        "channelKind": format!("{:?}", h.channel_kind),
        "createdAt": h.created_at,
        "lastActivityAt": h.last_activity_at,
        "lastMessagePreview": h.last_message_preview,
        "inboundCount": h.inbound_count,
        "outboundCount": h.outbound_count,
        "commentCount": h.comment_count,
        "unreadCount": h.unread_count,
    })
}

fn entry_json(e: &TimelineEntry) -> Value {
    let author_kind = e.author.as_ref().map(|a| match a {
        Author::Contact { .. } => "CONTACT",
        Author::User(_) => "USER",
        Author::Bot(_) => "BOT",
        Author::Automation(_) => "AUTOMATION",
    });
    json!({
        "position": e.position,
        "kind": format!("{:?}", e.kind),
        "occurredAt": e.occurred_at,
        "subject": e.subject,
        "bodyText": e.body_text,
        "messageId": e.message_id,
        "commentId": e.comment_id,
        "author": author_kind.map(|kind| json!({"kind": kind})),
    })
}

fn json_response(value: Value) -> Response {
    match serde_json::to_vec(&value) {
        Ok(bytes) => ([("content-type", "application/json")], bytes).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
