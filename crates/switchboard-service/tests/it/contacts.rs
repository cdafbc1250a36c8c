//! Contacts through the service: one contact per identity, also under concurrency; merges.

use std::collections::BTreeMap;
use std::sync::Arc;

use proto_events::event::{Identity, RecordKind, RecordRef};
use proto_events::streams;
use switchboard_domain::DomainError;
use switchboard_domain::contact::{ContactCommand, MergeContacts};
use switchboard_service::{Command, CommandMeta, ServiceError};
use switchboard_store::{Direction, EventStore, StreamFrom};
use uuid::Uuid;

use crate::support::*;

fn email(address: &str) -> Identity {
    Identity::Email {
        address: address.into(),
    }
}

fn create(contact_id: Uuid, identities: Vec<Identity>) -> Command {
    Command::CreateContact {
        contact_id,
        identities,
        properties: BTreeMap::new(),
        from_conversation: None,
    }
}

fn taken_by(result: Result<switchboard_service::Outcome, ServiceError>) -> String {
    match result {
        Err(ServiceError::Domain(DomainError::Rejected {
            code: "TAKEN",
            message,
            ..
        })) => message,
        other => panic!("expected TAKEN, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creations_for_one_address_give_one_contact() {
    let app = Arc::new(app().await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let id = Uuid::now_v7();
            (
                id,
                app.service
                    .execute(
                        CommandMeta::by(admin()),
                        create(id, vec![email("Ada@Example.com")]),
                    )
                    .await,
            )
        }));
    }
    let mut winners = Vec::new();
    let mut messages = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, Ok(_)) => winners.push(id),
            (_, result) => messages.push(taken_by(result)),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one contact is created");
    let winner = winners[0];
    assert!(
        messages.iter().all(|m| m.contains(&winner.to_string())),
        "losers are told who has it: {messages:?}"
    );
    // Only the winner's contact stream exists, and the reservation names it.
    let mut contacts = 0;
    let mut after = switchboard_store::Position::START;
    loop {
        let page = app.store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        contacts += page
            .iter()
            .filter(|e| e.event_type == "ContactRecordCreated")
            .count();
    }
    assert_eq!(contacts, 1);
    let reservation = app
        .store
        .read_stream(
            &streams::contact_identity(&email("ada@example.com")),
            Direction::Backwards,
            StreamFrom::End,
            1,
        )
        .await
        .unwrap();
    assert_eq!(reservation[0].event_type, "UniqueValueReserved");
}

#[tokio::test]
async fn a_lost_creation_releases_what_it_reserved() {
    let app = app().await;
    let first = Uuid::now_v7();
    app.service
        .execute(
            CommandMeta::by(admin()),
            create(first, vec![email("ada@example.com")]),
        )
        .await
        .unwrap();
    let second = Uuid::now_v7();
    // Claims a free address, then one that is taken: the free one must not stay reserved.
    let result = app
        .service
        .execute(
            CommandMeta::by(admin()),
            create(
                second,
                vec![email("bob@example.com"), email("ada@example.com")],
            ),
        )
        .await;
    assert!(taken_by(result).contains(&first.to_string()));
    let third = Uuid::now_v7();
    app.service
        .execute(
            CommandMeta::by(admin()),
            create(third, vec![email("bob@example.com")]),
        )
        .await
        .expect("bob@ was released by the creation that lost");
    let exists = app
        .store
        .stream_version(&streams::contact(second))
        .await
        .unwrap();
    assert_eq!(exists, None, "the losing contact was never written");
}

#[tokio::test]
async fn linking_a_taken_identity_is_refused_and_merging_moves_it() {
    let app = app().await;
    let (ada, ada2) = (Uuid::now_v7(), Uuid::now_v7());
    app.service
        .execute(
            CommandMeta::by(admin()),
            create(ada, vec![email("ada@example.com")]),
        )
        .await
        .unwrap();
    app.service
        .execute(
            CommandMeta::by(admin()),
            create(ada2, vec![email("ada@work.example")]),
        )
        .await
        .unwrap();
    let link = Command::Contact {
        contact_id: ada2,
        command: ContactCommand::LinkIdentity {
            identity: email("ADA@example.com"),
        },
    };
    taken_by(
        app.service
            .execute(CommandMeta::by(admin()), link.clone())
            .await,
    );

    let merge = Command::MergeContacts(MergeContacts {
        survivor_id: ada,
        merged_id: ada2,
    });
    app.service
        .execute(CommandMeta::by(admin()), merge)
        .await
        .unwrap();
    // The merged contact's address now belongs to the survivor: a new contact cannot take it.
    let result = app
        .service
        .execute(
            CommandMeta::by(admin()),
            create(Uuid::now_v7(), vec![email("ada@work.example")]),
        )
        .await;
    assert!(taken_by(result).contains(&ada.to_string()));
    // And the merged contact refuses further changes.
    match app.service.execute(CommandMeta::by(admin()), link).await {
        Err(ServiceError::Domain(DomainError::Rejected { code: "MERGED", .. })) => {}
        other => panic!("expected MERGED, got {other:?}"),
    }
}

/// Every stream name in the log.
async fn stream_names(store: &dyn EventStore) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = switchboard_store::Position::START;
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        names.extend(page.into_iter().map(|e| e.stream));
    }
    names
}

/// With the name key (ADR 0007), a customer's address is reserved under a keyed name, so no
/// stream name holds it; one reserved before under its plain name stays held there, is refused
/// to others and moves with a merge there, and only a free value goes to its keyed name.
#[tokio::test]
async fn customers_addresses_are_reserved_under_keyed_names_and_plain_ones_still_hold() {
    use proto_events::event::UniqueScope;
    use proto_events::streams::NameKey;
    let app = app().await;
    let names = NameKey::new([7; 32]);
    let keyed = app_service(&app)
        .await
        .with_reservation_names(names.clone());
    // Reserved in the clear, by a service from before.
    let old = Uuid::now_v7();
    app.service
        .execute(
            CommandMeta::by(admin()),
            create(old, vec![email("old@example.com")]),
        )
        .await
        .unwrap();
    let plain = streams::unique(UniqueScope::ContactEmail, "old@example.com");
    assert_eq!(app.store.stream_version(&plain).await.unwrap(), Some(0));

    let result = keyed
        .execute(
            CommandMeta::by(admin()),
            create(Uuid::now_v7(), vec![email("OLD@example.com")]),
        )
        .await;
    assert!(taken_by(result).contains(&old.to_string()));

    let new = Uuid::now_v7();
    keyed
        .execute(
            CommandMeta::by(admin()),
            create(new, vec![email("New@Example.com")]),
        )
        .await
        .unwrap();
    let at = names.unique(UniqueScope::ContactEmail, "new@example.com");
    assert!(at.starts_with("unique-contact-email-#"), "{at}");
    assert_eq!(
        read(&(Arc::new(app.store.clone()) as Arc<dyn EventStore>), &at).await[0].event_type,
        "UniqueValueReserved"
    );
    let result = keyed
        .execute(
            CommandMeta::by(admin()),
            create(Uuid::now_v7(), vec![email("new@example.COM")]),
        )
        .await;
    assert!(taken_by(result).contains(&new.to_string()));
    assert_eq!(
        keyed
            .contact_holding(&email("NEW@example.com"))
            .await
            .unwrap(),
        Some(new)
    );

    // A merge moves the plain reservation where it is: still nobody else's.
    keyed
        .execute(
            CommandMeta::by(admin()),
            Command::MergeContacts(MergeContacts {
                survivor_id: new,
                merged_id: old,
            }),
        )
        .await
        .unwrap();
    let result = keyed
        .execute(
            CommandMeta::by(admin()),
            create(Uuid::now_v7(), vec![email("old@example.com")]),
        )
        .await;
    assert!(taken_by(result).contains(&new.to_string()));
    assert_eq!(
        keyed
            .contact_holding(&email("old@example.com"))
            .await
            .unwrap(),
        Some(new)
    );

    let names_in_log = stream_names(&app.store).await;
    assert!(
        !names_in_log.iter().any(|n| n.contains("new@")),
        "{names_in_log:?}"
    );
    assert!(
        names_in_log
            .iter()
            .all(|n| !n.contains("old@") || *n == plain),
        "{names_in_log:?}"
    );
}

#[tokio::test]
async fn records_are_created_and_associated_once() {
    let app = app().await;
    let (company, contact) = (Uuid::now_v7(), Uuid::now_v7());
    app.service
        .execute(
            CommandMeta::by(admin()),
            Command::CreateCompany {
                company_id: company,
                name: "Initech".into(),
                domain: Some("initech.test".into()),
            },
        )
        .await
        .unwrap();
    app.service
        .execute(
            CommandMeta::by(admin()),
            create(contact, vec![email("peter@initech.test")]),
        )
        .await
        .unwrap();
    let associate = Command::AssociateRecords {
        from: RecordRef {
            kind: RecordKind::Company,
            id: company,
        },
        to: RecordRef {
            kind: RecordKind::Contact,
            id: contact,
        },
    };
    let outcome = app
        .service
        .execute(CommandMeta::by(admin()), associate.clone())
        .await
        .unwrap();
    assert_eq!(
        outcome.stream,
        streams::contact(contact),
        "recorded in the canonical (lesser) record's stream"
    );
    match app
        .service
        .execute(CommandMeta::by(admin()), associate)
        .await
    {
        Err(ServiceError::Domain(DomainError::Rejected {
            code: "ALREADY_ASSOCIATED",
            ..
        })) => {}
        other => panic!("expected ALREADY_ASSOCIATED, got {other:?}"),
    }
    let missing = Command::AssociateRecords {
        from: RecordRef {
            kind: RecordKind::Company,
            id: company,
        },
        to: RecordRef {
            kind: RecordKind::Deal,
            id: Uuid::now_v7(),
        },
    };
    match app.service.execute(CommandMeta::by(admin()), missing).await {
        Err(ServiceError::Domain(DomainError::NotFound { what: "deal" })) => {}
        other => panic!("expected NotFound deal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_half_done_command_is_finished_by_its_retry_not_reported_as_done() {
    let setup = app().await;
    let store = Arc::new(Instrumented::new(setup.store.clone()));
    store.fail_first_append_to("contact-");
    let service = switchboard_service::CommandService::open(store.clone(), setup.clock.clone())
        .await
        .unwrap();
    let contact = Uuid::now_v7();
    let meta = CommandMeta {
        idempotency_key: Some("create-ada".into()),
        fingerprint: None,
        ..CommandMeta::by(admin())
    };
    let first = service
        .execute(
            meta.clone(),
            create(contact, vec![email("ada@example.com")]),
        )
        .await;
    assert!(first.is_err(), "the contact append failed: {first:?}");
    // The reservation was written; the retry with the same key must create the contact.
    let retry = service
        .execute(meta, create(contact, vec![email("ada@example.com")]))
        .await
        .unwrap();
    assert!(!retry.replayed, "a half-done command is not done");
    assert_eq!(retry.stream, streams::contact(contact));
    assert_eq!(
        store
            .stream_version(&streams::contact(contact))
            .await
            .unwrap(),
        Some(0)
    );
}

#[tokio::test]
async fn a_stale_expected_version_writes_nothing_even_where_reservations_come_first() {
    let app = app().await;
    let survivor = Uuid::now_v7();
    let merged = Uuid::now_v7();
    run(
        &app,
        admin(),
        create(survivor, vec![email("a@example.com")]),
    )
    .await;
    run(&app, admin(), create(merged, vec![email("b@example.com")])).await;
    let head = app.service.store().head().await.unwrap();
    let stale = |command| {
        let meta = CommandMeta {
            expected_version: Some(7),
            ..CommandMeta::by(admin())
        };
        app.service.execute(meta, command)
    };
    let link = stale(Command::Contact {
        contact_id: survivor,
        command: ContactCommand::LinkIdentity {
            identity: email("c@example.com"),
        },
    })
    .await;
    assert!(
        matches!(link, Err(ServiceError::Conflict { .. })),
        "{link:?}"
    );
    let merge = stale(Command::MergeContacts(MergeContacts {
        survivor_id: survivor,
        merged_id: merged,
    }))
    .await;
    assert!(
        matches!(merge, Err(ServiceError::Conflict { .. })),
        "{merge:?}"
    );
    assert_eq!(
        app.service.store().head().await.unwrap(),
        head,
        "nothing was written"
    );
}

/// A service over a store read through a keyring, sealing personal fields with it when `seal`
/// (else only destroying keys on erasure, as `serve` does with sealing off).
async fn keyed_app(
    seal: bool,
) -> (
    App,
    Arc<dyn EventStore>,
    switchboard_service::CommandService,
) {
    use switchboard_codec::keyring::{KeyedStore, Keyring};
    use switchboard_store::secret::{MasterKey, Vault};
    let app = app().await;
    let keys = Arc::new(Keyring::new(Vault::new(
        app.store.secrets(),
        &MasterKey::generate(),
    )));
    let keyed: Arc<dyn EventStore> =
        Arc::new(KeyedStore::new(Arc::new(app.store.clone()), keys.clone()));
    let service = switchboard_service::CommandService::open(keyed.clone(), app.clock.clone())
        .await
        .unwrap();
    let service = if seal {
        service.with_keyring(keys)
    } else {
        service.with_erasure_keys(keys)
    };
    (app, keyed, service)
}

async fn read(store: &Arc<dyn EventStore>, stream: &str) -> Vec<switchboard_store::RecordedEvent> {
    store
        .read_stream(stream, Direction::Forwards, StreamFrom::Start, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_erased_contact_reads_as_erased_and_its_visitor_starts_afresh() {
    erasure(true).await;
}

#[tokio::test]
async fn a_contact_erased_while_sealing_is_off_reads_as_erased_too() {
    erasure(false).await;
}

/// Zelda, with Zed merged into her, both chatted; Otto too. Erasing Zelda erases both
/// conversations and nothing of Otto's, idempotently; what was recorded of them reads as erased
/// (sealed: keys destroyed; in the clear: redacted on reading).
async fn erasure(seal: bool) {
    use proto_events::DomainEvent as E;
    use switchboard_domain::conversation::ConversationCommand;
    use switchboard_domain::setup::SetupCommand;

    let (_app, keyed, service) = keyed_app(seal).await;
    let channel = Uuid::now_v7();
    let inbox = Uuid::now_v7();
    let zelda = Uuid::now_v7();
    let by_admin = || CommandMeta::by(admin());
    for command in [
        Command::Setup(SetupCommand::CreateInbox {
            inbox_id: inbox,
            name: "Support".into(),
        }),
        Command::Channel(switchboard_domain::channel::ChannelCommand::ConnectChat {
            channel_id: channel,
            inbox_id: inbox,
            name: "Website".into(),
        }),
        Command::CreateContact {
            contact_id: zelda,
            identities: vec![Identity::ChatVisitor {
                visitor_id: "v-zelda".into(),
            }],
            properties: BTreeMap::from([("name".into(), "Zelda Quibble".into())]),
            from_conversation: None,
        },
    ] {
        service.execute(by_admin(), command).await.unwrap();
    }
    let said = service
        .execute(
            CommandMeta::by(system()),
            chat(channel, "v-zelda", "my unique order text 7f3a"),
        )
        .await
        .unwrap();
    let conversation = conversation_of(&said);
    let conversation_stream = streams::conversation(conversation);
    // Zed, found to be Zelda too and merged into her, wrote from another visitor id; Otto is
    // someone else.
    let zed = Uuid::now_v7();
    service
        .execute(
            by_admin(),
            Command::CreateContact {
                contact_id: zed,
                identities: vec![Identity::ChatVisitor {
                    visitor_id: "v-zed".into(),
                }],
                properties: BTreeMap::from([("name".into(), "Zed Quibble".into())]),
                from_conversation: None,
            },
        )
        .await
        .unwrap();
    let zeds = conversation_of(
        &service
            .execute(
                CommandMeta::by(system()),
                chat(channel, "v-zed", "zed writes"),
            )
            .await
            .unwrap(),
    );
    service
        .execute(
            by_admin(),
            Command::MergeContacts(MergeContacts {
                survivor_id: zelda,
                merged_id: zed,
            }),
        )
        .await
        .unwrap();
    let ottos = conversation_of(
        &service
            .execute(
                CommandMeta::by(system()),
                chat(channel, "v-otto", "otto writes"),
            )
            .await
            .unwrap(),
    );
    let body_of = |events: &[switchboard_store::RecordedEvent]| {
        events
            .iter()
            .map(|e| switchboard_service::codec::decode(e).unwrap().payload)
            .find_map(|event| match event {
                E::MessageReceived(e) => Some(e.message.body_text),
                _ => None,
            })
    };
    assert_eq!(
        body_of(&read(&keyed, &conversation_stream).await).as_deref(),
        Some("my unique order text 7f3a")
    );

    // Sealed, the log is read before the command (as the API does); in the clear, by it.
    let prepared = if seal {
        service.prepare_erasure(zelda).await.unwrap()
    } else {
        None
    };
    assert_eq!(prepared.is_some(), seal);
    let erase = || Command::EraseContact {
        contact_id: zelda,
        reason: "Art. 17 request, ticket 4711".into(),
        prepared: prepared.clone(),
    };
    let keyed_meta = || {
        let mut meta = by_admin();
        meta.idempotency_key = Some("erase-zelda".into());
        meta
    };
    let first = service.execute(keyed_meta(), erase()).await.unwrap();
    let again = service.execute(keyed_meta(), erase()).await.unwrap();
    assert!(again.replayed && again.last_position == first.last_position);

    // The tombstones are in the log, naming nobody; what was sealed reads as erased.
    let history: Vec<E> = keyed
        .read_all(switchboard_store::Position::START, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| switchboard_service::codec::decode(e).unwrap().payload)
        .collect();
    let mut theirs = vec![conversation, zeds];
    theirs.sort();
    assert!(history.iter().any(|e| matches!(e, E::ContactErased(e)
        if e.contact_id == zelda && e.conversation_ids == theirs)));
    assert!(!history.iter().any(|e| matches!(e, E::ConversationErased(e)
        if e.conversation_id == ottos)));
    assert_eq!(
        body_of(&read(&keyed, &streams::conversation(zeds)).await).as_deref(),
        Some("")
    );
    assert_eq!(
        body_of(&read(&keyed, &streams::conversation(ottos)).await).as_deref(),
        Some("otto writes")
    );
    assert!(history.iter().any(|e| matches!(e, E::ConversationErased(e)
        if e.conversation_id == conversation && e.contact_id == Some(zelda))));
    assert!(
        history
            .iter()
            .any(|e| matches!(e, E::UniqueValueReleased(_)))
    );
    assert_eq!(
        body_of(&read(&keyed, &conversation_stream).await).as_deref(),
        Some("")
    );
    let created = read(&keyed, &streams::contact(zelda)).await;
    let properties = created
        .iter()
        .map(|e| switchboard_service::codec::decode(e).unwrap().payload)
        .find_map(|event| match event {
            E::ContactRecordCreated(e) => Some(e.properties),
            _ => None,
        })
        .unwrap();
    assert!(properties.is_empty(), "{properties:?}");

    // Both refuse everything now; erasing again has nothing left to do.
    let refused = |result: Result<switchboard_service::Outcome, ServiceError>| {
        assert!(
            matches!(
                &result,
                Err(ServiceError::Domain(DomainError::Rejected {
                    code: "ERASED",
                    ..
                }))
            ),
            "{result:?}"
        );
    };
    refused(
        service
            .execute(
                by_admin(),
                Command::Conversation {
                    conversation_id: conversation,
                    command: Box::new(ConversationCommand::Close),
                },
            )
            .await,
    );
    refused(
        service
            .execute(
                by_admin(),
                Command::Contact {
                    contact_id: zelda,
                    command: ContactCommand::LinkIdentity {
                        identity: email("zelda@quibble.example"),
                    },
                },
            )
            .await,
    );
    refused(service.execute(by_admin(), erase()).await);
    // Nothing new may name an erased conversation.
    let ticket = service
        .execute(
            by_admin(),
            Command::CreateTicket {
                ticket_id: Uuid::now_v7(),
                subject: "Follow up".into(),
                conversation_id: Some(conversation),
            },
        )
        .await;
    assert!(
        matches!(
            ticket,
            Err(ServiceError::Domain(DomainError::NotFound {
                what: "conversation"
            }))
        ),
        "{ticket:?}"
    );

    // The visitor writing again starts a new conversation, with no contact (their identity
    // was released), readable under a new key.
    let again = service
        .execute(
            CommandMeta::by(system()),
            chat(channel, "v-zelda", "hello again"),
        )
        .await
        .unwrap();
    let next = conversation_of(&again);
    assert_ne!(next, conversation);
    let events = read(&keyed, &streams::conversation(next)).await;
    assert_eq!(body_of(&events).as_deref(), Some("hello again"));
    let started = events
        .iter()
        .map(|e| switchboard_service::codec::decode(e).unwrap().payload)
        .find_map(|event| match event {
            E::ConversationStarted(e) => Some(e.contact_id),
            _ => None,
        });
    assert_eq!(started, Some(None));
}

#[tokio::test]
async fn only_admins_erase_contacts() {
    let app = app().await;
    let zelda = Uuid::now_v7();
    run(
        &app,
        admin(),
        create(zelda, vec![email("zelda@quibble.example")]),
    )
    .await;
    let result = app
        .service
        .execute(
            CommandMeta::by(proto_events::Actor::Bot { id: Uuid::now_v7() }),
            Command::EraseContact {
                contact_id: zelda,
                reason: "no".into(),
                prepared: None,
            },
        )
        .await;
    assert!(
        matches!(
            result,
            Err(ServiceError::Domain(DomainError::Forbidden { .. }))
        ),
        "{result:?}"
    );
    let stream = app
        .store
        .read_stream(
            &streams::contact(zelda),
            Direction::Forwards,
            StreamFrom::Start,
            10,
        )
        .await
        .unwrap();
    assert_eq!(stream.len(), 1, "a refused erasure writes nothing");
}

/// An e-mail from `from` on `channel` with `file` attached and `original` as its raw message,
/// sent with both blobs.
async fn mail_with_file(
    service: &switchboard_service::CommandService,
    channel: Uuid,
    from: &str,
    file: &switchboard_store::blob::Blob,
    original: &switchboard_store::blob::Blob,
) -> Uuid {
    threaded_mail_with_file(service, channel, from, None, file, original).await
}

/// [`mail_with_file`] with a Message-ID (`<sha256 of the original>@test`), answering the mail
/// whose original is `answers`: it goes into that mail's conversation.
async fn threaded_mail_with_file(
    service: &switchboard_service::CommandService,
    channel: Uuid,
    from: &str,
    answers: Option<&switchboard_store::blob::Blob>,
    file: &switchboard_store::blob::Blob,
    original: &switchboard_store::blob::Blob,
) -> Uuid {
    use proto_events::event::{Attachment, BlobRef, ChannelKind, EmailHeaders, RawMessage};
    let reference = |blob: &switchboard_store::blob::Blob| BlobRef {
        sha256: blob.sha256().to_owned(),
        size: blob.bytes().len() as u64,
    };
    let id = |blob: &switchboard_store::blob::Blob| format!("<{}@test>", blob.sha256());
    let mut command = inbound(channel, ChannelKind::Email, email(from), "see attached");
    if let Command::ReceiveMessage { message, .. } = &mut command {
        message.email = Some(EmailHeaders {
            message_id: id(original),
            in_reply_to: answers.map(id),
            references: answers.map(id).into_iter().collect(),
            to: vec!["support@acme.test".into()],
            cc: Vec::new(),
        });
        message.attachments = vec![Attachment {
            blob: reference(file),
            file_name: Some("order.pdf".into()),
            content_type: "application/pdf".into(),
            content_id: None,
            inline: false,
        }];
        message.raw = Some(RawMessage {
            blob: reference(original),
            warnings: Vec::new(),
        });
    }
    let outcome = service
        .execute_with_blobs(
            CommandMeta::by(proto_events::Actor::Channel { id: channel }),
            command,
            vec![file.clone(), original.clone()],
        )
        .await
        .unwrap();
    conversation_of(&outcome)
}

#[tokio::test]
async fn an_erased_contacts_files_are_deleted_unless_someone_else_sent_them_too() {
    use switchboard_store::blob::Blob;
    let (_app, keyed, service) = keyed_app(true).await;
    let channel = Uuid::now_v7();
    let inbox = Uuid::now_v7();
    let zelda = Uuid::now_v7();
    for command in [
        Command::Setup(switchboard_domain::setup::SetupCommand::CreateInbox {
            inbox_id: inbox,
            name: "Support".into(),
        }),
        Command::Channel(switchboard_domain::channel::ChannelCommand::ConnectEmail {
            channel_id: channel,
            inbox_id: inbox,
            address: "support@acme.test".into(),
            access: proto_events::event::EmailAccess::Shared,
        }),
        create(zelda, vec![email("zelda@quibble.example")]),
    ] {
        service
            .execute(CommandMeta::by(admin()), command)
            .await
            .unwrap();
    }
    let shared = Blob::new(b"the price list everyone sends".to_vec());
    let hers = Blob::new(b"Zelda's own scan of her passport".to_vec());
    let her_mail = Blob::new(b"From: zelda@quibble.example\r\n\r\nZelda's original".to_vec());
    let otto_mail = Blob::new(b"From: otto@example.org\r\n\r\nOtto's original".to_vec());
    mail_with_file(
        &service,
        channel,
        "zelda@quibble.example",
        &shared,
        &her_mail,
    )
    .await;
    mail_with_file(&service, channel, "zelda@quibble.example", &hers, &her_mail).await;
    let ottos = mail_with_file(&service, channel, "otto@example.org", &shared, &otto_mail).await;
    // She answers Otto's mail too (copied on it), with a file of hers: his conversation (he is
    // no contact; she is, but not its first sender) stays, her file in it goes.
    let in_ottos = Blob::new(b"Zelda's photo, sent into Otto's thread".to_vec());
    let her_answer = Blob::new(b"From: zelda@quibble.example\r\n\r\nRe: Otto".to_vec());
    let answered = threaded_mail_with_file(
        &service,
        channel,
        "zelda@quibble.example",
        Some(&otto_mail),
        &in_ottos,
        &her_answer,
    )
    .await;
    assert_eq!(answered, ottos, "her answer is in Otto's conversation");

    let erased = service
        .execute(
            CommandMeta::by(admin()),
            Command::EraseContact {
                contact_id: zelda,
                reason: "Art. 17 request".into(),
                prepared: None,
            },
        )
        .await
        .unwrap();
    let blobs = keyed.blobs();
    assert_eq!(blobs.get(hers.sha256()).await.unwrap(), None);
    assert_eq!(blobs.get(her_mail.sha256()).await.unwrap(), None);
    assert_eq!(blobs.get(in_ottos.sha256()).await.unwrap(), None);
    assert_eq!(blobs.get(her_answer.sha256()).await.unwrap(), None);
    let erased_conversations = match keyed
        .read_stream(
            &streams::contact(zelda),
            Direction::Backwards,
            StreamFrom::End,
            1,
        )
        .await
        .unwrap()
        .first()
        .map(|e| switchboard_codec::decode(e).unwrap().payload)
    {
        Some(proto_events::DomainEvent::ContactErased(e)) => e.conversation_ids,
        other => panic!("{other:?} after {erased:?}"),
    };
    assert!(!erased_conversations.contains(&ottos), "Otto's stays");
    assert_eq!(
        blobs.get(shared.sha256()).await.unwrap().as_deref(),
        Some(shared.bytes())
    );
    assert_eq!(
        blobs.get(otto_mail.sha256()).await.unwrap().as_deref(),
        Some(otto_mail.bytes())
    );
}
