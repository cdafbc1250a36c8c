//! Every record command (companies, deals, tickets, associations): its success and each of its
//! rejections, and the canonical stream an association is recorded in.

use proto_events::event::*;
use proto_events::{Actor, DomainEvent, streams};
use switchboard_domain::record::{
    self, ConversationRef, Counterpart, Record, RecordCommand as C, RecordDetails,
};
use switchboard_domain::{Context, DomainError};

use crate::contact::{
    ADA, CONVERSATION, Outcome, ada_created, contact_ref, merged, now, support_conversation,
};
use crate::support::*;

const ACME: u128 = 200;
const GLOBEX: u128 = 201;
const RENEWAL: u128 = 300;
const TICKET: u128 = 400;

fn company_ref(n: u128) -> RecordRef {
    RecordRef {
        kind: RecordKind::Company,
        id: id(n),
    }
}

fn deal_ref() -> RecordRef {
    RecordRef {
        kind: RecordKind::Deal,
        id: id(RENEWAL),
    }
}

fn ticket_ref() -> RecordRef {
    RecordRef {
        kind: RecordKind::Ticket,
        id: id(TICKET),
    }
}

fn conversation_ref() -> RecordRef {
    RecordRef {
        kind: RecordKind::Conversation,
        id: id(CONVERSATION),
    }
}

fn acme_created() -> DomainEvent {
    CompanyCreated {
        company_id: id(ACME),
        name: "Acme".into(),
        domain: Some("acme.test".into()),
    }
    .into()
}

fn renewal_created() -> DomainEvent {
    DealCreated {
        deal_id: id(RENEWAL),
        name: "Renewal 2025".into(),
        stage: None,
        owner_user_id: None,
    }
    .into()
}

fn fold(history: &[DomainEvent]) -> Record {
    let mut state = Record::default();
    for event in history {
        state.evolve(event);
    }
    state
}

impl Outcome<Vec<DomainEvent>, Record> {
    /// Expects exactly these events, and returns the record after them.
    fn then(self, expected: Vec<DomainEvent>) -> Record {
        let (events, mut state) = self.decided();
        assert_eq!(events, expected);
        for event in &events {
            state.evolve(event);
        }
        state
    }
}

/// A record scenario: the history of the stream the command writes to, then the command.
struct Scenario {
    history: Vec<DomainEvent>,
}

fn given_record(history: Vec<DomainEvent>) -> Scenario {
    Scenario { history }
}

impl Scenario {
    fn when(self, actor: Actor, command: C) -> Outcome<Vec<DomainEvent>, Record> {
        let directory = directory(&organisation());
        let state = fold(&self.history);
        let ctx = Context {
            directory: &directory,
            actor: &actor,
            now: now(),
        };
        Outcome::new(record::decide(&state, &command, &ctx), state)
    }
}

fn forbidden_actors() -> [Actor; 4] {
    [
        user(AUDITOR),
        Actor::Channel { id: id(40) },
        Actor::Contact { id: id(ADA) },
        Actor::Bot { id: id(5) },
    ]
}

fn create_company(name: &str, domain: Option<&str>) -> C {
    C::CreateCompany {
        company_id: id(ACME),
        name: name.into(),
        domain: domain.map(Into::into),
    }
}

#[test]
fn companies_are_created_with_a_name_and_a_web_domain() {
    let command = create_company(" Acme ", Some(" Acme.TEST. "));
    assert_eq!(command.stream(), streams::company(id(ACME)));
    let state = given_record(vec![])
        .when(user(AGENT), command)
        .then(vec![acme_created()]);
    assert_eq!(state.reference(), Some(company_ref(ACME)));
    assert_eq!(
        state.details(),
        Some(&RecordDetails::Company {
            name: "Acme".into(),
            domain: Some("acme.test".into()),
        })
    );
    given_record(vec![])
        .when(system(), create_company("Acme", None))
        .then(vec![
            CompanyCreated {
                company_id: id(ACME),
                name: "Acme".into(),
                domain: None,
            }
            .into(),
        ]);

    given_record(vec![acme_created()])
        .when(user(AGENT), create_company("Acme", None))
        .then_rejected("ALREADY_EXISTS");
    given_record(vec![])
        .when(user(AGENT), create_company(" ", None))
        .then_invalid("name");
    given_record(vec![])
        .when(user(AGENT), create_company(&"x".repeat(201), None))
        .then_invalid("name");
    for bad in [
        "",
        "acme",
        "https://acme.test",
        "acme..test",
        "-acme.test",
        "a b.test",
    ] {
        given_record(vec![])
            .when(user(AGENT), create_company("Acme", Some(bad)))
            .then_invalid("domain");
    }
    for actor in forbidden_actors() {
        given_record(vec![])
            .when(actor, create_company("Acme", None))
            .then_forbidden();
    }
}

fn create_deal(stage: Option<&str>, owner: Option<u128>) -> C {
    C::CreateDeal {
        deal_id: id(RENEWAL),
        name: " Renewal 2025 ".into(),
        stage: stage.map(Into::into),
        owner_user_id: owner.map(id),
    }
}

#[test]
fn deals_are_owned_by_users_who_work_conversations() {
    let command = create_deal(Some(" qualified "), Some(AGENT));
    assert_eq!(command.stream(), streams::deal(id(RENEWAL)));
    given_record(vec![]).when(user(ADMIN), command).then(vec![
        DealCreated {
            deal_id: id(RENEWAL),
            name: "Renewal 2025".into(),
            stage: Some("qualified".into()),
            owner_user_id: Some(id(AGENT)),
        }
        .into(),
    ]);
    given_record(vec![])
        .when(user(AGENT), create_deal(None, None))
        .then(vec![renewal_created()]);

    given_record(vec![renewal_created()])
        .when(user(AGENT), create_deal(None, None))
        .then_rejected("ALREADY_EXISTS");
    given_record(vec![])
        .when(
            user(AGENT),
            C::CreateDeal {
                deal_id: id(RENEWAL),
                name: "".into(),
                stage: None,
                owner_user_id: None,
            },
        )
        .then_invalid("name");
    given_record(vec![])
        .when(user(AGENT), create_deal(Some("  "), None))
        .then_invalid("stage");
    given_record(vec![])
        .when(user(AGENT), create_deal(None, Some(404)))
        .then_error(DomainError::NotFound { what: "user" });
    given_record(vec![])
        .when(user(AGENT), create_deal(None, Some(AUDITOR)))
        .then_rejected("NOT_AN_AGENT");
    for actor in forbidden_actors() {
        given_record(vec![])
            .when(actor, create_deal(None, None))
            .then_forbidden();
    }
}

fn create_ticket(subject: &str, conversation: Option<ConversationRef>) -> C {
    C::CreateTicket {
        ticket_id: id(TICKET),
        subject: subject.into(),
        conversation,
    }
}

#[test]
fn tickets_are_created_from_conversations_the_agent_can_see() {
    let command = create_ticket(" Printer on fire ", Some(support_conversation()));
    assert_eq!(command.stream(), streams::ticket(id(TICKET)));
    let state = given_record(vec![]).when(user(AGENT), command).then(vec![
        TicketCreated {
            ticket_id: id(TICKET),
            subject: "Printer on fire".into(),
            from_conversation_id: Some(id(CONVERSATION)),
        }
        .into(),
        AssociationAdded {
            from: ticket_ref(),
            to: conversation_ref(),
        }
        .into(),
    ]);
    assert!(state.associations().contains(&conversation_ref()));
    given_record(vec![])
        .when(user(AGENT), create_ticket("Refund", None))
        .then(vec![
            TicketCreated {
                ticket_id: id(TICKET),
                subject: "Refund".into(),
                from_conversation_id: None,
            }
            .into(),
        ]);
    // A private e-mail conversation is its owner's and the admins'.
    let private = ConversationRef {
        private_owner: Some(id(AGENT)),
        ..support_conversation()
    };
    given_record(vec![])
        .when(user(ADMIN), create_ticket("Refund", Some(private)))
        .decided();

    given_record(vec![])
        .when(
            user(OUTSIDER),
            create_ticket("Refund", Some(support_conversation())),
        )
        .then_error(DomainError::NotFound {
            what: "conversation",
        });
    given_record(vec![])
        .when(
            user(OUTSIDER),
            create_ticket(
                "Refund",
                Some(ConversationRef {
                    private_owner: Some(id(ADMIN)),
                    ..support_conversation()
                }),
            ),
        )
        .then_error(DomainError::NotFound {
            what: "conversation",
        });
    let ticket_created: DomainEvent = TicketCreated {
        ticket_id: id(TICKET),
        subject: "Refund".into(),
        from_conversation_id: None,
    }
    .into();
    given_record(vec![ticket_created])
        .when(user(AGENT), create_ticket("Refund", None))
        .then_rejected("ALREADY_EXISTS");
    given_record(vec![])
        .when(user(AGENT), create_ticket("\n", None))
        .then_invalid("subject");
    for actor in forbidden_actors() {
        given_record(vec![])
            .when(actor, create_ticket("Refund", None))
            .then_forbidden();
    }
}

fn associate(from: RecordRef, to: RecordRef, counterpart: Counterpart) -> C {
    C::AssociateRecords {
        from,
        to,
        counterpart,
    }
}

#[test]
fn associations_are_recorded_once_in_the_lesser_records_stream() {
    // Named company first, recorded in the contact's stream all the same.
    let command = associate(
        company_ref(ACME),
        contact_ref(ADA),
        Counterpart::Found(company_ref(ACME)),
    );
    assert_eq!(command.stream(), streams::contact(id(ADA)));
    assert_eq!(
        record::canonical(company_ref(ACME), contact_ref(ADA)),
        (contact_ref(ADA), company_ref(ACME))
    );
    let added: DomainEvent = AssociationAdded {
        from: contact_ref(ADA),
        to: company_ref(ACME),
    }
    .into();
    let state = given_record(vec![ada_created()])
        .when(user(AGENT), command.clone())
        .then(vec![added.clone()]);
    assert!(state.associations().contains(&company_ref(ACME)));
    // Companies with companies, decided in the lesser id's stream.
    given_record(vec![acme_created()])
        .when(
            system(),
            associate(
                company_ref(GLOBEX),
                company_ref(ACME),
                Counterpart::Found(company_ref(GLOBEX)),
            ),
        )
        .then(vec![
            AssociationAdded {
                from: company_ref(ACME),
                to: company_ref(GLOBEX),
            }
            .into(),
        ]);
    // A deal with a conversation the agent can see.
    given_record(vec![renewal_created()])
        .when(
            user(AGENT),
            associate(
                conversation_ref(),
                deal_ref(),
                Counterpart::Conversation(support_conversation()),
            ),
        )
        .then(vec![
            AssociationAdded {
                from: deal_ref(),
                to: conversation_ref(),
            }
            .into(),
        ]);

    given_record(vec![ada_created(), added])
        .when(user(AGENT), command.clone())
        .then_rejected("ALREADY_ASSOCIATED");
    given_record(vec![ada_created()])
        .when(
            user(AGENT),
            associate(
                contact_ref(ADA),
                contact_ref(ADA),
                Counterpart::Found(contact_ref(ADA)),
            ),
        )
        .then_invalid("to");
    given_record(vec![])
        .when(
            user(AGENT),
            associate(
                conversation_ref(),
                RecordRef {
                    kind: RecordKind::Conversation,
                    id: id(501),
                },
                Counterpart::Conversation(support_conversation()),
            ),
        )
        .then_invalid("to");
    given_record(vec![])
        .when(user(AGENT), command.clone())
        .then_error(DomainError::NotFound { what: "contact" });
    given_record(vec![ada_created()])
        .when(
            user(AGENT),
            associate(contact_ref(ADA), company_ref(ACME), Counterpart::Missing),
        )
        .then_error(DomainError::NotFound { what: "company" });
    given_record(vec![ada_created()])
        .when(
            user(AGENT),
            associate(
                contact_ref(ADA),
                company_ref(ACME),
                Counterpart::Found(company_ref(GLOBEX)),
            ),
        )
        .then_error(DomainError::NotFound { what: "company" });
    given_record(vec![renewal_created()])
        .when(
            user(OUTSIDER),
            associate(
                deal_ref(),
                conversation_ref(),
                Counterpart::Conversation(support_conversation()),
            ),
        )
        .then_error(DomainError::NotFound {
            what: "conversation",
        });
    // A contact merged away can be neither end.
    given_record(vec![ada_created(), merged(101, ADA)])
        .when(user(AGENT), command)
        .then_rejected("MERGED");
    let message = given_record(vec![ada_created()])
        .when(
            user(AGENT),
            associate(
                contact_ref(ADA),
                contact_ref(102),
                Counterpart::MergedContact {
                    survivor_id: id(103),
                },
            ),
        )
        .then_rejected("MERGED");
    assert!(message.contains(&id(103).to_string()), "{message}");
    for actor in forbidden_actors() {
        given_record(vec![ada_created()])
            .when(
                actor,
                associate(
                    contact_ref(ADA),
                    company_ref(ACME),
                    Counterpart::Found(company_ref(ACME)),
                ),
            )
            .then_forbidden();
    }
}

#[test]
fn associations_are_removed_in_whichever_order_they_are_named() {
    let added: DomainEvent = AssociationAdded {
        from: contact_ref(ADA),
        to: ticket_ref(),
    }
    .into();
    let dissociate = C::DissociateRecords {
        from: ticket_ref(),
        to: contact_ref(ADA),
    };
    assert_eq!(dissociate.stream(), streams::contact(id(ADA)));
    let state = given_record(vec![ada_created(), added.clone()])
        .when(user(AGENT), dissociate.clone())
        .then(vec![
            AssociationRemoved {
                from: contact_ref(ADA),
                to: ticket_ref(),
            }
            .into(),
        ]);
    assert!(state.associations().is_empty());

    given_record(vec![ada_created()])
        .when(user(AGENT), dissociate.clone())
        .then_rejected("NOT_ASSOCIATED");
    given_record(vec![ada_created(), added.clone()])
        .when(
            user(AGENT),
            C::DissociateRecords {
                from: ticket_ref(),
                to: ticket_ref(),
            },
        )
        .then_invalid("to");
    given_record(vec![])
        .when(user(AGENT), dissociate.clone())
        .then_error(DomainError::NotFound { what: "contact" });
    given_record(vec![ada_created(), added.clone(), merged(101, ADA)])
        .when(user(AGENT), dissociate.clone())
        .then_rejected("MERGED");
    for actor in forbidden_actors() {
        given_record(vec![ada_created(), added.clone()])
            .when(actor, dissociate.clone())
            .then_forbidden();
    }
}

#[test]
fn records_describe_themselves_as_counterparts() {
    assert_eq!(fold(&[]).counterpart(), Counterpart::Missing);
    assert_eq!(
        fold(&[acme_created()]).counterpart(),
        Counterpart::Found(company_ref(ACME))
    );
    assert_eq!(
        fold(&[ada_created()]).counterpart(),
        Counterpart::Found(contact_ref(ADA))
    );
    let gone = fold(&[ada_created(), merged(101, ADA)]);
    assert_eq!(gone.merged_into(), Some(id(101)));
    assert_eq!(
        gone.counterpart(),
        Counterpart::MergedContact {
            survivor_id: id(101)
        }
    );
    assert_eq!(
        record::stream_of(conversation_ref()),
        streams::conversation(id(CONVERSATION))
    );
}
