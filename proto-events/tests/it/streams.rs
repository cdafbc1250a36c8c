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

#[test]
fn customers_values_are_named_by_a_keyed_hash_and_the_companys_in_the_clear() {
    let key = streams::NameKey::new([1; 32]);
    let named = key.unique(UniqueScope::ContactEmail, " Ada@Example.com ");
    assert_eq!(
        named,
        key.unique(UniqueScope::ContactEmail, "ada@example.com")
    );
    assert!(named.starts_with("unique-contact-email-#"), "{named}");
    assert_eq!(named.len(), "unique-contact-email-#".len() + 64);
    assert!(!named.contains("ada"), "{named}");
    assert_ne!(
        named,
        streams::NameKey::new([2; 32]).unique(UniqueScope::ContactEmail, "ada@example.com"),
        "another key, another name"
    );
    let digest = |name: String| name.rsplit_once('#').unwrap().1.to_owned();
    assert_ne!(
        digest(key.unique(UniqueScope::ContactChatVisitor, "v-1")),
        digest(key.unique(UniqueScope::ContactMessenger, "v-1")),
        "the scope is hashed with the value"
    );
    assert_eq!(
        key.unique(UniqueScope::ChannelEmail, "Support@Acme.test"),
        "unique-channel-email-support@acme.test"
    );
    assert_eq!(
        key.unique(UniqueScope::UserEmail, "ana@acme.test"),
        "unique-user-email-ana@acme.test"
    );
    assert!(format!("{key:?}").contains("redacted"));
}

#[test]
fn only_plain_names_of_customers_values_have_an_erased_form() {
    let key = streams::NameKey::new([1; 32]);
    assert_eq!(
        streams::erased_reservation_name("unique-contact-email-ada@example.com").as_deref(),
        Some("unique-contact-email-(erased)")
    );
    assert_eq!(
        streams::erased_reservation_name("unique-contact-chat-visitor-v1").as_deref(),
        Some("unique-contact-chat-visitor-(erased)")
    );
    // A plain address may start with `#`: only `#` and 64 hex digits is a keyed name.
    assert_eq!(
        streams::erased_reservation_name("unique-contact-email-#sales@example.com").as_deref(),
        Some("unique-contact-email-(erased)")
    );
    for unchanged in [
        key.unique(UniqueScope::ContactEmail, "ada@example.com"),
        "unique-contact-email-(erased)".to_owned(),
        "unique-channel-email-support@acme.test".to_owned(),
        "contact-0190a0b2-0000-7000-8000-000000000001".to_owned(),
    ] {
        assert_eq!(
            streams::erased_reservation_name(&unchanged),
            None,
            "{unchanged}"
        );
    }
}
