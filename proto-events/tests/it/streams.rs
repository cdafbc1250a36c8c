//! Stream names as every crate must spell them.

use proto_events::event::{Identity, UniqueScope};
use proto_events::streams;

use crate::samples::id;

#[test]
fn aggregate_streams_are_category_dash_id() {
    let id = id(0x71);
    let cases = [
        (streams::organisation(id), "organisation"),
        (streams::user(id), "user"),
        (streams::team(id), "team"),
        (streams::bot(id), "bot"),
        (streams::inbox(id), "inbox"),
        (streams::channel(id), "channel"),
        (streams::conversation(id), "conversation"),
        (streams::contact(id), "contact"),
        (streams::company(id), "company"),
        (streams::deal(id), "deal"),
        (streams::ticket(id), "ticket"),
    ];
    for (stream, category) in cases {
        assert_eq!(
            stream,
            format!("{category}-00000000-0000-0000-0000-000000000071")
        );
        assert_eq!(streams::category(&stream), category);
    }
}

#[test]
fn unique_streams_normalise_the_value() {
    assert_eq!(
        streams::unique(UniqueScope::ContactEmail, "  Ada@Example.ORG "),
        "unique-contact-email-ada@example.org"
    );
    assert_eq!(
        streams::contact_identity(&Identity::Email {
            address: "ADA@example.org".into()
        }),
        streams::unique(UniqueScope::ContactEmail, "ada@example.org"),
    );
    // Chat and Messenger ids are opaque: case matters.
    assert_eq!(
        streams::contact_identity(&Identity::ChatVisitor {
            visitor_id: "v-AbC".into()
        }),
        "unique-contact-chat-visitor-v-AbC"
    );
    assert_eq!(
        streams::contact_identity(&Identity::Messenger { psid: "625".into() }),
        "unique-contact-messenger-625"
    );
    assert_eq!(streams::category("unique-user-email-a@b.c"), "unique");
}
