//! Mutations of conversations: replies, internal comments with @mentions, assignment to a user,
//! team or bot, closing and reopening, a bot's handoff, sharing a private conversation,
//! restoring filtered mail, delivery reports, and inbound messages.
//!
//! The work on a conversation is for users who write and see it (the write side's
//! `switchboard_domain::conversation` decides; one who cannot see it is told it does not
//! exist). Every such input takes an optional `expectedVersion`: the conversation's `version`
//! the client decided on; when it has moved on, nothing is written and the mutation fails with
//! CONFLICT.
//!
//! # Inbound messages and delivery reports
//! The write side accepts these only from channels and the system, never from a user: a
//! customer's message is not something an agent can type into the history. Real channel
//! integrations (mail gateways, webhooks) are outside this API; `receiveMessage` and
//! `recordDelivery` let **admins** stand in for them, to ingest or simulate traffic. They run as
//! the system actor with the component `api:user:<admin id>`, so the audit trail names the admin
//! who sent them, and a `clientMutationId` is the admin's own.

use async_graphql::{Context, Enum, ID, InputObject, Object, Upload};
use proto_events::DomainEvent;
use proto_events::event::{
    Assignee, ChannelConfig, EmailHeaders, FormField, Identity, InboundMessage,
};
use switchboard_domain::conversation::{ConversationCommand, DeliveryOutcome};
use switchboard_domain::filter::MailSignals;
use switchboard_service::Command;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::mutation::common::{
    Executed, RunOptions, acting_for, decode_all, minted_id, minted_id_by, minted_id_with_files,
    payload, require_admin, run, settle,
};
use crate::mutation::contact::ContactIdentityInput;
use crate::mutation::upload;
use crate::state::state;
use crate::types::conversation::Conversation;

/// Conversation mutations.
#[derive(Debug, Default)]
pub(crate) struct ConversationMutation;

/// The domain of the Message-IDs given to e-mails ingested without one.
const INGESTED_MESSAGE_ID_DOMAIN: &str = "ingest.switchboard.invalid";

/// Input of `sendReply`.
#[derive(Debug, InputObject)]
pub(crate) struct SendReplyInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation.
    conversation_id: ID,
    /// The body as plain text; not blank.
    body_text: String,
    /// The body as HTML (e-mail only; other channels drop it).
    body_html: Option<String>,
    /// The subject (e-mail only); by default `Re:` the conversation's subject.
    subject: Option<String>,
    /// Files to attach (e-mail only: a reply on another channel with files is refused). Send
    /// them with the GraphQL multipart request spec: `multipart/form-data` with the parts
    /// `operations`, `map` and one per file, each in the `Upload` variable the map names. Each
    /// file is kept with its name (without directories or control characters) and content type
    /// (`application/octet-stream` when it gives none usable). An empty file is refused in
    /// `userErrors` naming it (`["input", "attachments", "0"]`); a request with more or larger
    /// files than the server's limits (by default 20 files, 25 MiB each and in all) is refused
    /// with HTTP 413 before anything is kept.
    attachments: Option<Vec<Upload>>,
    /// The conversation's `version` the reply was written against. Without it, a reply to a
    /// conversation that changed meanwhile (say, the customer wrote again) also fails with
    /// CONFLICT rather than being sent blindly.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `sendReply`.
    SendReplyPayload {
        /// The conversation, with the reply.
        conversation: Conversation,
        /// The id of the new message (a repeat returns the first call's).
        message_id: Uuid,
    }
}

/// Input of `addComment`.
#[derive(Debug, InputObject)]
pub(crate) struct AddCommentInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation.
    conversation_id: ID,
    /// The text; not blank. Never sent to the customer.
    body_text: String,
    /// Users @mentioned; each must be able to see the conversation (`MENTION_NO_ACCESS`).
    #[graphql(default)]
    mention_ids: Vec<ID>,
    /// The conversation's `version` the client decided on.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `addComment`.
    AddCommentPayload {
        /// The conversation, with the comment.
        conversation: Conversation,
        /// The id of the new comment (a repeat returns the first call's).
        comment_id: Uuid,
    }
}

/// Input of `assignConversation`.
#[derive(Debug, InputObject)]
pub(crate) struct AssignConversationInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation.
    conversation_id: ID,
    /// A user who sees it, a team that works its inbox (not for private conversations), or a
    /// bot.
    assignee_id: ID,
    /// The conversation's `version` the client decided on.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `assignConversation`.
    AssignConversationPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

/// Input of the mutations that only name a conversation: `unassignConversation`,
/// `closeConversation`, `reopenConversation`, `shareConversation`.
#[derive(Debug, InputObject)]
pub(crate) struct ConversationActionInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation.
    conversation_id: ID,
    /// The conversation's `version` the client decided on.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `unassignConversation`.
    UnassignConversationPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

payload! {
    /// Result of `closeConversation`.
    CloseConversationPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

payload! {
    /// Result of `reopenConversation`.
    ReopenConversationPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

payload! {
    /// Result of `shareConversation`.
    ShareConversationPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

/// Input of `handOffConversation`.
#[derive(Debug, InputObject)]
pub(crate) struct HandOffConversationInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation a bot is handling.
    conversation_id: ID,
    /// The user or team to hand it to; when omitted it goes back to unassigned, and routing
    /// picks it up.
    assignee_id: Option<ID>,
    /// The conversation's `version` the client decided on.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `handOffConversation`.
    HandOffConversationPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

/// Input of `restoreFilteredMessage`.
#[derive(Debug, InputObject)]
pub(crate) struct RestoreFilteredMessageInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation of the filtered message.
    conversation_id: ID,
    /// The filtered message.
    message_id: Uuid,
    /// The conversation's `version` the client decided on.
    expected_version: Option<u64>,
}

payload! {
    /// Result of `restoreFilteredMessage`.
    RestoreFilteredMessagePayload {
        /// The conversation, now in the inbox (reopened if it was closed).
        conversation: Conversation,
    }
}

/// What became of an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum DeliveryStatus {
    /// The provider accepted it.
    Succeeded,
    /// It could not be delivered yet; the channel retries.
    FailedTemporarily,
    /// It cannot be delivered (a bounce).
    FailedPermanently,
}

/// Input of `recordDelivery`.
#[derive(Debug, InputObject)]
pub(crate) struct RecordDeliveryInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The conversation.
    conversation_id: ID,
    /// The outbound message (a reply's `messageId`).
    message_id: Uuid,
    /// What became of it.
    status: DeliveryStatus,
    /// The provider's id of the sent message, for `SUCCEEDED`.
    provider_message_id: Option<String>,
    /// What the provider said, for the failures (required with them).
    reason: Option<String>,
}

payload! {
    /// Result of `recordDelivery`.
    RecordDeliveryPayload {
        /// The conversation.
        conversation: Conversation,
    }
}

/// E-mail headers of an inbound e-mail, for threading.
#[derive(Debug, InputObject)]
pub(crate) struct EmailHeadersInput {
    /// `Message-ID`, without angle brackets.
    message_id: String,
    /// `In-Reply-To`, without angle brackets: a reply threads into the conversation of the
    /// message it answers.
    in_reply_to: Option<String>,
    /// `References`, oldest first, without angle brackets.
    #[graphql(default)]
    references: Vec<String>,
    /// `To` addresses; the channel's address when empty.
    #[graphql(default)]
    to: Vec<String>,
    /// `Cc` addresses.
    #[graphql(default)]
    cc: Vec<String>,
}

/// The headers of an inbound e-mail the e-mail filters look at.
#[derive(Debug, Default, InputObject)]
pub(crate) struct MailSignalsInput {
    /// `Auto-Submitted` (anything but `no` marks an automated message).
    auto_submitted: Option<String>,
    /// `Precedence` (`bulk`, `list`, `junk`, `auto_reply`).
    precedence: Option<String>,
    /// Whether a `List-Unsubscribe` header is present.
    #[graphql(default)]
    list_unsubscribe: bool,
    /// Whether a `List-Id` header is present.
    #[graphql(default)]
    list_id: bool,
    /// Whether an `X-Autoreply` header is present.
    #[graphql(default)]
    x_autoreply: bool,
    /// Whether an `X-Autorespond` header is present.
    #[graphql(default)]
    x_autorespond: bool,
    /// `X-Auto-Response-Suppress`.
    x_auto_response_suppress: Option<String>,
}

/// One field of a form submission.
#[derive(Debug, InputObject)]
pub(crate) struct FormFieldInput {
    /// The field's label.
    name: String,
    /// What the visitor entered.
    value: String,
}

/// Input of `receiveMessage`.
#[derive(Debug, InputObject)]
pub(crate) struct ReceiveMessageInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The channel it arrives through.
    channel_id: ID,
    /// Who sent it: an e-mail address (e-mail, forms), a chat visitor id or a Messenger PSID.
    from: ContactIdentityInput,
    /// The sender's display name.
    from_name: Option<String>,
    /// The subject (e-mail, forms).
    subject: Option<String>,
    /// The body as plain text.
    body_text: String,
    /// The body as HTML (e-mail only).
    body_html: Option<String>,
    /// The provider's id of the message (a Messenger `mid`), for de-duplication: a message
    /// delivered twice is recorded once.
    provider_message_id: Option<String>,
    /// Threading headers (e-mail only). When omitted, an e-mail gets a new Message-ID and
    /// starts a conversation.
    email: Option<EmailHeadersInput>,
    /// What the e-mail filters look at (e-mail only); none set by default.
    mail_signals: Option<MailSignalsInput>,
    /// The submitted fields (forms only).
    #[graphql(default)]
    form_fields: Vec<FormFieldInput>,
}

payload! {
    /// Result of `receiveMessage`.
    ReceiveMessagePayload {
        /// The conversation it went to: a new one, or the one it threads into (reopened if it
        /// was closed). Its status is `FILTERED` when the e-mail filters sent the message to
        /// the Filtered view of a conversation that holds nothing else.
        conversation: Conversation,
        /// The conversation's id.
        conversation_id: ID,
        /// The id of the new message (a repeat returns the first call's; null when the message
        /// was a duplicate delivery, recorded once before).
        message_id: Uuid,
    }
}

/// The conversation `executed` wrote to, once the read models include the write.
async fn conversation_after(
    ctx: &Context<'_>,
    executed: &Executed,
) -> ApiResult<Option<Conversation>> {
    let Some(outcome) = &executed.outcome else {
        return Ok(None);
    };
    let Some(conversation_id) = executed.created_id("conversation") else {
        return Ok(None);
    };
    settle(ctx, outcome).await?;
    Conversation::load(ctx, conversation_id).await
}

/// Runs `command` on the conversation `id` names, as the viewer (or `options.actor`).
async fn act(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    id: &ID,
    command: ConversationCommand,
    options: RunOptions,
) -> ApiResult<Executed> {
    let conversation_id = ids::decode(id, Kind::Conversation, "conversationId")?;
    let command = Command::Conversation {
        conversation_id,
        command: Box::new(command),
    };
    run(ctx, client_mutation_id, command, options).await
}

/// [`RunOptions`] with an expected version and renamed fields.
fn options(
    expected_version: Option<u64>,
    renames: &'static [(&'static str, &'static str)],
) -> RunOptions {
    RunOptions {
        expected_version,
        renames,
        ..RunOptions::default()
    }
}

/// A user, team or bot, from its global id.
fn assignee(id: &ID, field: &str) -> ApiResult<Assignee> {
    match ids::decode_any(id, field)? {
        (Kind::User, id) => Ok(Assignee::User { id }),
        (Kind::Team, id) => Ok(Assignee::Team { id }),
        (Kind::Bot, id) => Ok(Assignee::Bot { id }),
        (kind, _) => Err(ApiError::bad_input(
            field,
            format!("expected a User, Team or Bot id, got a {} id", kind.name()),
        )),
    }
}

/// An assignee is `assigneeId` in inputs.
const ASSIGNEE: &[(&str, &str)] = &[("to", "assigneeId")];

#[Object]
impl ConversationMutation {
    /// Replies to the customer through the conversation's channel (e-mail with threading
    /// headers and any attachments, or chat). Replying to a closed conversation does not
    /// reopen it.
    async fn send_reply(
        &self,
        ctx: &Context<'_>,
        input: SendReplyInput,
    ) -> async_graphql::Result<SendReplyPayload> {
        let uploads = input.attachments.unwrap_or_default();
        let files = match upload::receive(ctx, "attachments", &uploads).await? {
            Ok(files) => files,
            Err(errors) => {
                return Ok(SendReplyPayload {
                    result: Executed::refused(input.client_mutation_id, errors).result,
                    conversation: None,
                    message_id: None,
                });
            }
        };
        let message_id =
            minted_id_with_files(ctx, input.client_mutation_id.as_deref(), &files.hashes).await?;
        let command = ConversationCommand::SendReply {
            message_id,
            body_text: input.body_text,
            body_html: input.body_html,
            subject: input.subject,
            attachments: files.attachments,
        };
        let options = RunOptions {
            files: files.hashes,
            ..options(input.expected_version, &[])
        };
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            command,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        let message_id = executed
            .minted_id(ctx, message_id, |event| match event {
                DomainEvent::ReplySent(reply) => Some(reply.message_id),
                _ => None,
            })
            .await?;
        Ok(SendReplyPayload {
            message_id,
            result: executed.result,
            conversation,
        })
    }

    /// Adds an internal comment, never sent to the customer; may @mention users who see the
    /// conversation.
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        input: AddCommentInput,
    ) -> async_graphql::Result<AddCommentPayload> {
        let comment_id = minted_id(ctx, input.client_mutation_id.as_deref()).await?;
        let command = ConversationCommand::AddComment {
            comment_id,
            body_text: input.body_text,
            mentions: decode_all(&input.mention_ids, Kind::User, "mentionIds")?,
        };
        let options = options(input.expected_version, &[("mentions", "mentionIds")]);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            command,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        let comment_id = executed
            .minted_id(ctx, comment_id, |event| match event {
                DomainEvent::CommentAdded(comment) => Some(comment.comment_id),
                _ => None,
            })
            .await?;
        Ok(AddCommentPayload {
            comment_id,
            result: executed.result,
            conversation,
        })
    }

    /// Assigns or reassigns a conversation to a user, a team or a bot.
    async fn assign_conversation(
        &self,
        ctx: &Context<'_>,
        input: AssignConversationInput,
    ) -> async_graphql::Result<AssignConversationPayload> {
        let command = ConversationCommand::Assign {
            to: assignee(&input.assignee_id, "assigneeId")?,
        };
        let options = options(input.expected_version, ASSIGNEE);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            command,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(AssignConversationPayload {
            result: executed.result,
            conversation,
        })
    }

    /// Takes a conversation's assignee away (`NOT_ASSIGNED` if it has none).
    async fn unassign_conversation(
        &self,
        ctx: &Context<'_>,
        input: ConversationActionInput,
    ) -> async_graphql::Result<UnassignConversationPayload> {
        let options = options(input.expected_version, &[]);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            ConversationCommand::Unassign,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(UnassignConversationPayload {
            result: executed.result,
            conversation,
        })
    }

    /// Closes a conversation, ending its cycle (`ALREADY_CLOSED` if it is).
    async fn close_conversation(
        &self,
        ctx: &Context<'_>,
        input: ConversationActionInput,
    ) -> async_graphql::Result<CloseConversationPayload> {
        let options = options(input.expected_version, &[]);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            ConversationCommand::Close,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(CloseConversationPayload {
            result: executed.result,
            conversation,
        })
    }

    /// Reopens a closed conversation by hand, starting a new cycle (`ALREADY_OPEN` if it is
    /// open). The customer writing again reopens it by itself.
    async fn reopen_conversation(
        &self,
        ctx: &Context<'_>,
        input: ConversationActionInput,
    ) -> async_graphql::Result<ReopenConversationPayload> {
        let options = options(input.expected_version, &[]);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            ConversationCommand::Reopen,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(ReopenConversationPayload {
            result: executed.result,
            conversation,
        })
    }

    /// Hands a conversation a bot is handling over to humans, on the bot's behalf: to a user or
    /// team, or back to routing (`NO_BOT` if no bot handles it).
    async fn hand_off_conversation(
        &self,
        ctx: &Context<'_>,
        input: HandOffConversationInput,
    ) -> async_graphql::Result<HandOffConversationPayload> {
        let to = input
            .assignee_id
            .as_ref()
            .map(|id| assignee(id, "assigneeId"))
            .transpose()?;
        let options = options(input.expected_version, ASSIGNEE);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            ConversationCommand::HandOffFromBot { to },
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(HandOffConversationPayload {
            result: executed.result,
            conversation,
        })
    }

    /// Makes a private conversation (from a user's own e-mail account) visible to its inbox:
    /// its owner or an admin (`NOT_PRIVATE` if it is shared already).
    async fn share_conversation(
        &self,
        ctx: &Context<'_>,
        input: ConversationActionInput,
    ) -> async_graphql::Result<ShareConversationPayload> {
        let options = options(input.expected_version, &[]);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            ConversationCommand::Share,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(ShareConversationPayload {
            result: executed.result,
            conversation,
        })
    }

    /// Moves a filtered message from the Filtered view into the inbox, reopening its
    /// conversation if it was closed.
    async fn restore_filtered_message(
        &self,
        ctx: &Context<'_>,
        input: RestoreFilteredMessageInput,
    ) -> async_graphql::Result<RestoreFilteredMessagePayload> {
        let command = ConversationCommand::RestoreFilteredMessage {
            message_id: input.message_id,
        };
        let options = options(input.expected_version, &[]);
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            command,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(RestoreFilteredMessagePayload {
            result: executed.result,
            conversation,
        })
    }

    /// Records what became of an outbound message, as its channel would report it (admins,
    /// standing in for the channel; see the module notes). A report after a final one, or the
    /// same temporary failure again, writes nothing.
    async fn record_delivery(
        &self,
        ctx: &Context<'_>,
        input: RecordDeliveryInput,
    ) -> async_graphql::Result<RecordDeliveryPayload> {
        let admin = require_admin(ctx, "record deliveries").await?;
        let failure = |permanent: bool| match &input.reason {
            Some(reason) if !reason.trim().is_empty() => Ok(DeliveryOutcome::Failed {
                reason: reason.trim().to_owned(),
                permanent,
                status: None,
            }),
            _ => Err(ApiError::bad_input("reason", "a failure needs a reason")),
        };
        let outcome = match input.status {
            DeliveryStatus::Succeeded => DeliveryOutcome::Succeeded {
                provider_message_id: input.provider_message_id.clone(),
            },
            DeliveryStatus::FailedTemporarily => failure(false)?,
            DeliveryStatus::FailedPermanently => failure(true)?,
        };
        let command = ConversationCommand::RecordDelivery {
            message_id: input.message_id,
            outcome,
        };
        let options = RunOptions {
            actor: Some(acting_for(admin)),
            ..RunOptions::default()
        };
        let executed = act(
            ctx,
            input.client_mutation_id,
            &input.conversation_id,
            command,
            options,
        )
        .await?;
        let conversation = conversation_after(ctx, &executed).await?;
        Ok(RecordDeliveryPayload {
            result: executed.result,
            conversation,
        })
    }

    /// A customer's message arrives through a channel (admins, standing in for the channel; see
    /// the module notes). It goes to the conversation it belongs to: an e-mail threads by its
    /// `In-Reply-To`/`References`, a chat or Messenger visitor continues their conversation, a
    /// form submission starts one. A closed conversation reopens. The sender is recognised as a
    /// contact by their identity; e-mail filters may send it to the Filtered view instead.
    /// Routing then assigns a new conversation.
    async fn receive_message(
        &self,
        ctx: &Context<'_>,
        input: ReceiveMessageInput,
    ) -> async_graphql::Result<ReceiveMessagePayload> {
        let admin = require_admin(ctx, "ingest inbound messages").await?;
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let config = {
            let view = state(ctx).directory().await?;
            view.directory
                .channels
                .get(&channel_id)
                .map(|c| c.config.clone())
                .ok_or_else(|| ApiError::not_found("channel"))?
        };
        let message_id =
            minted_id_by(ctx, &acting_for(admin), input.client_mutation_id.as_deref()).await?;
        let from = input.from.identity();
        let (email, signals) = match &config {
            ChannelConfig::Email { address, .. } => {
                let headers = match input.email {
                    Some(h) => EmailHeaders {
                        message_id: h.message_id.trim().to_owned(),
                        in_reply_to: h.in_reply_to,
                        references: h.references,
                        to: if h.to.is_empty() {
                            vec![address.clone()]
                        } else {
                            h.to
                        },
                        cc: h.cc,
                    },
                    None => EmailHeaders {
                        message_id: format!("{message_id}@{INGESTED_MESSAGE_ID_DOMAIN}"),
                        in_reply_to: None,
                        references: Vec::new(),
                        to: vec![address.clone()],
                        cc: Vec::new(),
                    },
                };
                if headers.message_id.is_empty() {
                    return Err(ApiError::bad_input("email", "messageId must not be empty").into());
                }
                let Identity::Email { address: sender } = &from else {
                    return Err(ApiError::bad_input(
                        "from",
                        "an e-mail comes from an EMAIL identity",
                    )
                    .into());
                };
                let s = input.mail_signals.unwrap_or_default();
                let signals = MailSignals {
                    from: sender.clone(),
                    auto_submitted: s.auto_submitted,
                    precedence: s.precedence,
                    list_unsubscribe: s.list_unsubscribe,
                    list_id: s.list_id,
                    x_autoreply: s.x_autoreply,
                    x_autorespond: s.x_autorespond,
                    x_auto_response_suppress: s.x_auto_response_suppress,
                    subject: input.subject.clone(),
                };
                (Some(headers), Some(signals))
            }
            _ => {
                let field = if input.email.is_some() {
                    Some("email")
                } else {
                    input.mail_signals.as_ref().map(|_| "mailSignals")
                };
                if let Some(field) = field {
                    return Err(ApiError::bad_input(
                        field,
                        "only e-mail channels take e-mail headers and signals",
                    )
                    .into());
                }
                (None, None)
            }
        };
        let message = InboundMessage {
            message_id,
            channel_id,
            channel_kind: config.kind(),
            provider_message_id: input.provider_message_id,
            from,
            from_name: input.from_name,
            // The service recognises the contact.
            contact_id: None,
            subject: input.subject,
            body_text: input.body_text,
            body_html: input.body_html,
            email,
            form_fields: input
                .form_fields
                .into_iter()
                .map(|f| FormField {
                    name: f.name,
                    value: f.value,
                })
                .collect(),
            attachments: Vec::new(),
            raw: None,
        };
        let command = Command::ReceiveMessage {
            channel_id,
            message: Box::new(message),
            signals,
        };
        let options = RunOptions {
            actor: Some(acting_for(admin)),
            ..RunOptions::default()
        };
        let executed = run(ctx, input.client_mutation_id, command, options).await?;
        let conversation = conversation_after(ctx, &executed).await?;
        let message_id = executed
            .minted_id(ctx, message_id, |event| match event {
                DomainEvent::MessageReceived(received) => Some(received.message.message_id),
                _ => None,
            })
            .await?;
        Ok(ReceiveMessagePayload {
            conversation_id: executed
                .created_id("conversation")
                .map(|id| ids::encode(Kind::Conversation, id)),
            message_id,
            result: executed.result,
            conversation,
        })
    }
}
