//! `configureForm`: a form channel's fields, the sites that may post it, and its honeypot.
//!
//! The first configuration gives the form its public key (24 random bytes, URL-safe base64);
//! configuring it again keeps the key, so pages that embed it keep working. The key is drawn
//! here, not by the write side, which decides without IO.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use base64::Engine;
use proto_events::event::{FormFieldKind, FormFieldSpec};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::form::FormSettings;

use crate::ids::{self, Kind};
use crate::mutation::channel::{channel_after, channel_command};
use crate::mutation::common::payload;
use crate::types::directory::Channel;

/// Form mutations.
#[derive(Debug, Default)]
pub(crate) struct FormMutation;

/// What a form field holds, and how a submitted value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::FormFieldKind")]
pub(crate) enum FormFieldType {
    /// One line of text.
    Text,
    /// An e-mail address. A form has exactly one: it recognises the contact and takes replies.
    Email,
    /// A number.
    Number,
    /// A telephone number: 5 to 20 digits, with spaces and `+ - ( ) .`.
    Phone,
    /// Several lines of text.
    Textarea,
    /// A box ticked or not; a required one must be ticked.
    Checkbox,
    /// One of the field's `options`.
    Select,
}

/// One field of a form.
#[derive(Debug, InputObject)]
pub(crate) struct FormFieldSettingInput {
    /// The name a submission carries it under: ASCII letters, digits, `_`, `-`, `.`.
    name: String,
    /// What the conversation's first message calls it; the name when omitted.
    label: Option<String>,
    /// What it holds.
    #[graphql(default_with = "FormFieldType::Text")]
    kind: FormFieldType,
    /// Whether a submission without it is refused.
    #[graphql(default)]
    required: bool,
    /// The choices of a `SELECT` field.
    #[graphql(default)]
    options: Vec<String>,
}

/// Input of `configureForm`. Replaces the form's whole configuration.
#[derive(Debug, InputObject)]
pub(crate) struct ConfigureFormInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The form channel.
    channel_id: ID,
    /// Its fields, in the order the first message of a conversation lists them.
    fields: Vec<FormFieldSettingInput>,
    /// Origins (`https://host[:port]`; `http` for localhost only) whose pages may post the form
    /// (browsers send the page's origin with scripts' and forms' posts alike); others get 403.
    /// Empty: any page may post a plain HTML form, and no script may post JSON.
    #[graphql(default)]
    allowed_origins: Vec<String>,
    /// A field hidden from people: a submission that fills it in is answered as accepted and
    /// dropped.
    honeypot_field: Option<String>,
}

payload! {
    /// Result of `configureForm`.
    ConfigureFormPayload {
        /// The channel, with its form settings.
        channel: Channel,
    }
}

/// A new public key: 24 random bytes (192 bits), URL-safe base64 without padding.
pub(super) fn new_public_key() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[Object]
impl FormMutation {
    /// Configures a form channel (admins): the fields a submission carries and how each is
    /// checked, the origins whose pages may post it, and a honeypot field. Submissions go to
    /// `POST /forms/{publicKey}`.
    async fn configure_form(
        &self,
        ctx: &Context<'_>,
        input: ConfigureFormInput,
    ) -> async_graphql::Result<ConfigureFormPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let fields = input
            .fields
            .into_iter()
            .map(|f| FormFieldSpec {
                label: f.label.unwrap_or_else(|| f.name.clone()),
                name: f.name,
                kind: FormFieldKind::from(f.kind),
                required: f.required,
                options: f.options,
            })
            .collect();
        let command = ChannelCommand::ConfigureForm {
            channel_id,
            new_public_key: new_public_key(),
            settings: FormSettings {
                fields,
                allowed_origins: input.allowed_origins,
                honeypot_field: input.honeypot_field,
            },
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, Some(channel_id)).await?;
        Ok(ConfigureFormPayload {
            result: executed.result,
            channel,
        })
    }
}
