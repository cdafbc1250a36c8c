//! Chat replies by e-mail: a visitor who left an address and does not see an answer in the
//! widget gets it by e-mail (ADR 0006).
//!
//! Whether a visitor is online is not a fact of the log, so the rules here decide on facts
//! that are: the address they left (`ChatVisitorEmailLeft`, the latest counts), the replies
//! their widget was handed (`ChatRepliesSeen`), and the delivery worker's request, once a
//! reply has gone unseen for the configured delay, to e-mail it (`ChatReplyEmailed`). All three
//! are decided on the conversation's stream, so a reply seen and a reply e-mailed exclude each
//! other: whichever is appended first wins, and the other writes nothing.

use proto_events::DomainEvent;
use proto_events::event::{
    ChannelKind, ChatRepliesSeen, ChatReplyEmailed, ChatVisitorEmailLeft, Identity,
};
use uuid::Uuid;

use super::{Caller, Conversation, caller, message_id_for, reply_subject};
use crate::{Context, DomainError};

/// Only the conversation's own chat channel speaks for its visitor.
fn require_visitor_channel(state: &Conversation, ctx: &Context<'_>) -> Result<(), DomainError> {
    match caller(state, ctx)? {
        Caller::Channel(id) if id == state.channel_id => require_chat(state),
        _ => Err(DomainError::forbidden(
            "only the conversation's chat channel speaks for its visitor",
        )),
    }
}

fn require_chat(state: &Conversation) -> Result<(), DomainError> {
    if state.channel_kind == Some(ChannelKind::Chat) {
        Ok(())
    } else {
        Err(DomainError::rejected(
            "NOT_CHAT",
            None,
            "this is not a chat conversation",
        ))
    }
}

/// [`super::ConversationCommand::RecordVisitorEmail`].
pub(super) fn record_visitor_email(
    state: &Conversation,
    ctx: &Context<'_>,
    address: &str,
) -> Result<Vec<DomainEvent>, DomainError> {
    require_visitor_channel(state, ctx)?;
    let given = Identity::Email {
        address: address.to_owned(),
    };
    let address = match crate::contact::valid_identity("email", &given)? {
        Identity::Email { address } => address.to_lowercase(),
        _ => return Err(DomainError::invalid("email", "must be an e-mail address")),
    };
    if state.visitor_email.as_deref() == Some(address.as_str()) {
        return Ok(Vec::new());
    }
    Ok(vec![
        ChatVisitorEmailLeft {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            address,
        }
        .into(),
    ])
}

/// [`super::ConversationCommand::RecordRepliesSeen`].
pub(super) fn record_replies_seen(
    state: &Conversation,
    ctx: &Context<'_>,
    message_ids: &[Uuid],
) -> Result<Vec<DomainEvent>, DomainError> {
    require_visitor_channel(state, ctx)?;
    let mut seen: Vec<Uuid> = message_ids
        .iter()
        .copied()
        .filter(|id| state.unseen_replies.contains(id))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![
        ChatRepliesSeen {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            message_ids: seen,
        }
        .into(),
    ])
}

/// [`super::ConversationCommand::EmailUnseenReply`].
pub(super) fn email_unseen_reply(
    state: &Conversation,
    ctx: &Context<'_>,
    message_id: Uuid,
) -> Result<Vec<DomainEvent>, DomainError> {
    if !matches!(caller(state, ctx)?, Caller::System(_)) {
        return Err(DomainError::forbidden(
            "only the delivery worker e-mails unseen chat replies",
        ));
    }
    require_chat(state)?;
    if !state.outbound.contains_key(&message_id) {
        return Err(DomainError::NotFound { what: "message" });
    }
    // Seen meanwhile, or e-mailed already: nothing to do.
    if !state.unseen_replies.contains(&message_id) {
        return Ok(Vec::new());
    }
    let Some(to) = &state.visitor_email else {
        return Err(DomainError::rejected(
            "NO_RECIPIENT",
            None,
            "the visitor left no e-mail address",
        ));
    };
    let Some(channel) = ctx.directory.inbox_email_channel(state.inbox_id) else {
        return Err(DomainError::rejected(
            "NO_SENDER_ADDRESS",
            None,
            "the inbox has no e-mail address to send from",
        ));
    };
    let from = ctx.directory.inbox_email_address(state.inbox_id);
    let subject = match &state.subject {
        Some(subject) => reply_subject(subject),
        None => {
            let inbox = ctx
                .directory
                .inboxes
                .get(&state.inbox_id)
                .map_or("us", |inbox| inbox.name.as_str());
            format!("Your chat with {inbox}")
        }
    };
    let email = state
        .thread
        .reply_headers(message_id_for(message_id, from), vec![to.clone()]);
    Ok(vec![
        ChatReplyEmailed {
            conversation_id: state.id,
            inbox_id: state.inbox_id,
            message_id,
            email_channel_id: channel.id,
            subject,
            email,
        }
        .into(),
    ])
}
