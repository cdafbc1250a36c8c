//! The history queries: the raw event log from a position (for analysts and auditors), and a
//! conversation as it stood at a past time or position.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use proto_events::event::Role;
use switchboard_store::{Direction, Position, StreamFrom};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::conversation::{Conversation, Snapshot};
use crate::types::event::{Event, LogGate};
use crate::types::page::{Window, encode_cursor};

/// Roles that may read the raw log: they see every inbox, and the log leaves out only the
/// private conversations they may not see (see `LogGate`).
pub(crate) const HISTORY_READERS: [Role; 4] =
    [Role::SuperAdmin, Role::Admin, Role::Auditor, Role::Analyst];

/// Which events of the log to return.
#[derive(Debug, Default, InputObject)]
pub(crate) struct EventFilter {
    /// Only these event types, e.g. `["MessageReceived", "ReplySent"]`.
    types: Option<Vec<String>>,
    /// Only streams of this category, e.g. `conversation`.
    category: Option<String>,
}

/// The history queries.
#[derive(Debug, Default)]
pub(crate) struct HistoryQuery;

#[Object]
impl HistoryQuery {
    /// The event log in global order, after a position (cursor `after`, or `afterPosition`):
    /// replay it to rebuild anything. Admins, auditors and analysts only. The events of
    /// conversations the viewer may not see (other users' private e-mail, for auditors and
    /// analysts) are left out, not redacted, so positions may skip; admins read every event.
    #[graphql(complexity = "crate::types::page::complexity(first, None, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start after this position (0: from the beginning).")]
        after_position: Option<u64>,
        filter: Option<EventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Event>> {
        Ok(events(
            ctx,
            after_position,
            filter.unwrap_or_default(),
            first,
            after,
        )
        .await?)
    }

    /// A conversation as it stood at a past moment: after the event at `position`, or after
    /// everything that happened up to `at`. Folded on demand from the conversation's own
    /// stream (its header and timeline; names of people come from today's directory).
    async fn conversation_at(
        &self,
        ctx: &Context<'_>,
        id: ID,
        position: Option<u64>,
        at: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Option<Conversation>> {
        let id = ids::decode(&id, Kind::Conversation, "id")?;
        Ok(conversation_at(ctx, id, position, at).await?)
    }

    /// Everything recorded about one person, as one JSON document, for a subject access request
    /// (GDPR Art. 15; admins only): the contact (properties, identities, owner, merged
    /// contacts, associations), then every event of its own stream, of the contacts merged into
    /// it and of each of its conversations, with type, time, position, actor (staff as ids)
    /// and payload. Files are listed by reference (name, type, size, SHA-256); download them
    /// with the file route. Null when no such contact was ever created. An erased contact's
    /// document holds only what erasure left (its erased fields read as empty). The same
    /// document as `switchboard contact export`.
    async fn contact_data(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
    ) -> async_graphql::Result<Option<async_graphql::Json<serde_json::Value>>> {
        let contact_id = ids::decode(&contact_id, Kind::Contact, "contactId")?;
        access(ctx)
            .await?
            .require(&[Role::SuperAdmin, Role::Admin], "a person's data")?;
        let document = state(ctx)
            .service
            .subject_access(contact_id, Utc::now())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(document.map(async_graphql::Json))
    }
}

async fn events(
    ctx: &Context<'_>,
    after_position: Option<u64>,
    filter: EventFilter,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<Connection<String, Event>> {
    let access = access(ctx).await?;
    access.require(&HISTORY_READERS, "the raw event history")?;
    let inner = state(ctx);
    let Window::First { count, after } = Window::new(&inner.limits, first, after, None, None)?
    else {
        return Err(ApiError::internal("a first-only window"));
    };
    let start = match (after, after_position) {
        (Some(cursor), _) => cursor
            .parse::<u64>()
            .map_err(|_| ApiError::bad_input("after", "not a cursor returned by this list"))?,
        (None, Some(position)) => position,
        (None, None) => 0,
    };
    let keep = |event: &switchboard_store::RecordedEvent| {
        filter
            .types
            .as_ref()
            .is_none_or(|types| types.contains(&event.event_type))
            && filter
                .category
                .as_ref()
                .is_none_or(|c| proto_events::streams::category(&event.stream) == c)
    };
    let head = inner.store.head().await?;
    let mut found = Vec::new();
    let mut cursor = Position(start);
    let mut gate = LogGate::default();
    // Filters may skip many events: read in chunks until the page is full or the log ends.
    let mut scanned = 0usize;
    while found.len() <= count && cursor < head && scanned < 100_000 {
        let batch = inner.store.read_all(cursor, 1000).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.position;
        scanned += batch.len();
        let batch: Vec<_> = batch.into_iter().filter(|e| keep(e)).collect();
        let admitted = gate.admit(inner, &access, &batch).await?;
        found.extend(
            batch
                .into_iter()
                .zip(admitted)
                .filter(|(_, admitted)| *admitted)
                .map(|(e, _)| e),
        );
    }
    let has_next = found.len() > count || cursor < head;
    found.truncate(count);
    let mut connection = Connection::new(start > 0, has_next);
    for event in found {
        connection.edges.push(Edge::new(
            encode_cursor(&event.position.0.to_string()),
            Event::new(event),
        ));
    }
    Ok(connection)
}

async fn conversation_at(
    ctx: &Context<'_>,
    conversation_id: Uuid,
    position: Option<u64>,
    at: Option<DateTime<Utc>>,
) -> ApiResult<Option<Conversation>> {
    if position.is_some() == at.is_some() {
        return Err(ApiError::bad_input(
            "position",
            "pass exactly one of `position` and `at`",
        ));
    }
    // The viewer must see the conversation as it is now.
    if Conversation::load(ctx, conversation_id).await?.is_none() {
        return Ok(None);
    }
    let inner = state(ctx);
    let stream = proto_events::streams::conversation(conversation_id);
    let mut envelopes = Vec::new();
    let mut from = StreamFrom::Start;
    loop {
        let batch = inner
            .store
            .read_stream(&stream, Direction::Forwards, from, 1000)
            .await?;
        let Some(last) = batch.last() else { break };
        from = StreamFrom::Version(last.stream_version + 1);
        let full = batch.len() == 1000;
        for recorded in &batch {
            let envelope = switchboard_codec::decode(recorded)
                .map_err(|e| ApiError::internal(format!("decoding {stream}: {e}")))?;
            let include = match (position, at) {
                (Some(p), _) => envelope.position <= p,
                (_, Some(t)) => envelope.metadata.occurred_at <= t,
                _ => false,
            };
            if include {
                envelopes.push(envelope);
            }
        }
        if !full {
            break;
        }
    }
    let version = envelopes.last().map(|e| e.stream_version);
    let snapshot = tokio::task::spawn_blocking(move || {
        let projector = thread_view::ThreadView;
        let mut conn = switchboard_projector::model::open_in_memory(&projector)?;
        if !envelopes.is_empty() {
            switchboard_projector::model::apply_batch(&mut conn, &projector, &envelopes)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        }
        let header = thread_view::conversation(&conn, conversation_id)?;
        let timeline = thread_view::timeline(&conn, conversation_id)?;
        Ok::<_, rusqlite::Error>(header.map(|h| (h, timeline)))
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(snapshot
        .map(|(header, timeline)| Conversation::past(header, Snapshot { timeline, version })))
}
