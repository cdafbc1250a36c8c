//! Every contact command: its success and each of its rejections; merges; identity
//! reservations, including fifty creations racing for one e-mail address.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Utc};
use proto_events::event::*;
use proto_events::{Actor, DomainEvent, streams};
use switchboard_domain::contact::reservation::{self, Reservation};
use switchboard_domain::contact::{
    self, Contact, ContactCommand as C, MergeContacts, MergeDecision,
};
use switchboard_domain::record::ConversationRef;
use switchboard_domain::{Context, DomainError};

use crate::support::*;

pub(crate) const ADA: u128 = 100;
pub(crate) const GRACE: u128 = 101;
pub(crate) const LINUS: u128 = 102;
pub(crate) const CONVERSATION: u128 = 500;
const CHANNEL: u128 = 40;
const COMPANY: u128 = 200;
const DEAL: u128 = 300;

/// The time every command is decided at; contact deciders never read it.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_740_000_000, 0).unwrap()
}

pub(crate) fn email(address: &str) -> Identity {
    Identity::Email {
        address: address.into(),
    }
}

fn visitor(visitor_id: &str) -> Identity {
    Identity::ChatVisitor {
        visitor_id: visitor_id.into(),
    }
}

fn messenger(psid: &str) -> Identity {
    Identity::Messenger { psid: psid.into() }
}

pub(crate) fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A conversation in the Support inbox, which the agent sees and the outsider does not.
pub(crate) fn support_conversation() -> ConversationRef {
    ConversationRef {
        id: id(CONVERSATION),
        inbox_id: id(SUPPORT),
        private_owner: None,
    }
}

pub(crate) fn contact_ref(n: u128) -> RecordRef {
    RecordRef {
        kind: RecordKind::Contact,
        id: id(n),
    }
}

fn channel() -> Actor {
    Actor::Channel { id: id(CHANNEL) }
}

/// Ada: an e-mail address and a chat visitor id, a name.
pub(crate) fn ada_created() -> DomainEvent {
    ContactRecordCreated {
        contact_id: id(ADA),
        identities: vec![email("ada@example.com"), visitor("v-ada")],
        properties: props(&[("name", "Ada Lovelace")]),
        from_conversation_id: None,
    }
    .into()
}

/// Grace: an e-mail address and a Messenger id, a name and a job title.
fn grace_created() -> DomainEvent {
    ContactRecordCreated {
        contact_id: id(GRACE),
        identities: vec![email("grace@example.com"), messenger("1234")],
        properties: props(&[("name", "Grace Hopper"), ("job_title", "Rear Admiral")]),
        from_conversation_id: None,
    }
    .into()
}

pub(crate) fn merged(survivor: u128, gone: u128) -> DomainEvent {
    ContactsMerged {
        survivor_id: id(survivor),
        merged_id: id(gone),
    }
    .into()
}

fn fold(history: &[DomainEvent]) -> Contact {
    let mut state = Contact::default();
    for event in history {
        state.evolve(event);
    }
    state
}

/// A decision's result, and the state it was decided over.
pub(crate) struct Outcome<T, S> {
    result: Result<T, DomainError>,
    state: S,
}

impl<T: Debug + PartialEq, S> Outcome<T, S> {
    pub(crate) fn new(result: Result<T, DomainError>, state: S) -> Self {
        Outcome { result, state }
    }

    pub(crate) fn decided(self) -> (T, S) {
        let decided = self
            .result
            .unwrap_or_else(|e| panic!("expected events, got {e:?}"));
        (decided, self.state)
    }

    pub(crate) fn then_error(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    /// Expects a rejection with this code, and returns its message.
    pub(crate) fn then_rejected(self, expected_code: &str) -> String {
        match self.result {
            Err(DomainError::Rejected { code, message, .. }) => {
                assert_eq!(code, expected_code);
                message
            }
            other => panic!("expected rejection {expected_code}, got {other:?}"),
        }
    }

    pub(crate) fn then_invalid(self, expected_field: &str) {
        match self.result {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, expected_field),
            other => panic!("expected invalid {expected_field}, got {other:?}"),
        }
    }

    pub(crate) fn then_forbidden(self) {
        match self.result {
            Err(DomainError::Forbidden { .. }) => {}
            other => panic!("expected forbidden, got {other:?}"),
        }
    }
}

impl Outcome<Vec<DomainEvent>, Contact> {
    /// Expects exactly these events, and returns the contact after them.
    fn then(self, expected: Vec<DomainEvent>) -> Contact {
        let (events, mut state) = self.decided();
        assert_eq!(events, expected);
        for event in &events {
            state.evolve(event);
        }
        state
    }
}

/// A contact scenario: the contact's history, then one command, in the test organisation.
struct Scenario {
    history: Vec<DomainEvent>,
}

fn given_contact(history: Vec<DomainEvent>) -> Scenario {
    Scenario { history }
}

impl Scenario {
    fn when(self, actor: Actor, command: C) -> Outcome<Vec<DomainEvent>, Contact> {
        let directory = directory(&organisation());
        let state = fold(&self.history);
        let ctx = Context {
            directory: &directory,
            actor: &actor,
            now: now(),
        };
        Outcome::new(contact::decide(&state, &command, &ctx), state)
    }
}

/// A merge scenario: both contacts' histories, then the merge.
struct MergeScenario {
    survivor: Vec<DomainEvent>,
    merged: Vec<DomainEvent>,
}

fn given_contacts(survivor: Vec<DomainEvent>, merged: Vec<DomainEvent>) -> MergeScenario {
    MergeScenario { survivor, merged }
}

impl MergeScenario {
    fn when_merged(
        self,
        actor: Actor,
        survivor: u128,
        gone: u128,
    ) -> Outcome<MergeDecision, (Contact, Contact)> {
        let directory = directory(&organisation());
        let states = (fold(&self.survivor), fold(&self.merged));
        let ctx = Context {
            directory: &directory,
            actor: &actor,
            now: now(),
        };
        let command = MergeContacts {
            survivor_id: id(survivor),
            merged_id: id(gone),
        };
        Outcome::new(
            contact::decide_merge(&states.0, &states.1, &command, &[], &ctx),
            states,
        )
    }
}

impl Outcome<MergeDecision, (Contact, Contact)> {
    /// Expects these events for the merged contact and the survivor, and returns both contacts
    /// after them with the decision.
    fn then(
        self,
        merged_events: Vec<DomainEvent>,
        survivor_events: Vec<DomainEvent>,
    ) -> (Contact, Contact, MergeDecision) {
        let (decision, (mut survivor, mut gone)) = self.decided();
        assert_eq!(decision.merged_events, merged_events);
        assert_eq!(decision.survivor_events, survivor_events);
        for event in &decision.merged_events {
            gone.evolve(event);
        }
        for event in &decision.survivor_events {
            survivor.evolve(event);
        }
        (survivor, gone, decision)
    }
}

fn create(identities: Vec<Identity>, properties: &[(&str, &str)]) -> C {
    C::Create {
        contact_id: id(ADA),
        identities,
        properties: props(properties),
    }
}

fn from_visitor(identities: Vec<Identity>, conversation: Option<ConversationRef>) -> C {
    C::CreateFromVisitor {
        contact_id: id(ADA),
        identities,
        properties: props(&[]),
        conversation,
    }
}

#[test]
fn contacts_are_created_by_hand_with_valid_identities_and_properties() {
    let state = given_contact(vec![])
        .when(
            user(AGENT),
            create(
                vec![email(" Ada@Example.com "), visitor(" v-ada ")],
                &[("name", " Ada Lovelace "), ("job_title", "Countess")],
            ),
        )
        .then(vec![
            ContactRecordCreated {
                contact_id: id(ADA),
                identities: vec![email("Ada@Example.com"), visitor("v-ada")],
                properties: props(&[("name", "Ada Lovelace"), ("job_title", "Countess")]),
                from_conversation_id: None,
            }
            .into(),
        ]);
    assert!(state.has_identity(&email("ada@EXAMPLE.com")));
    assert_eq!(state.properties()["name"], "Ada Lovelace");
    given_contact(vec![])
        .when(system(), create(vec![], &[("name", "Imported")]))
        .then(vec![
            ContactRecordCreated {
                contact_id: id(ADA),
                identities: vec![],
                properties: props(&[("name", "Imported")]),
                from_conversation_id: None,
            }
            .into(),
        ]);

    given_contact(vec![ada_created()])
        .when(user(AGENT), create(vec![], &[]))
        .then_rejected("ALREADY_EXISTS");
    for bad in [
        email("ada"),
        email("ada@localhost"),
        email("@example.com"),
        email("ada lovelace@example.com"),
        visitor("  "),
        messenger("12 34"),
    ] {
        given_contact(vec![])
            .when(user(AGENT), create(vec![bad], &[]))
            .then_invalid("identities");
    }
    given_contact(vec![])
        .when(
            user(AGENT),
            create(
                vec![email("ada@example.com"), email("ADA@example.com ")],
                &[],
            ),
        )
        .then_invalid("identities");
    for bad_name in ["", "First Name", "1st", "jobTitle"] {
        given_contact(vec![])
            .when(user(AGENT), create(vec![], &[(bad_name, "x")]))
            .then_invalid("properties");
    }
    given_contact(vec![])
        .when(user(AGENT), create(vec![], &[("name", "  ")]))
        .then_invalid("properties");

    for actor in [
        user(AUDITOR),
        user(404),
        channel(),
        Actor::Contact { id: id(GRACE) },
        Actor::Bot { id: id(5) },
    ] {
        given_contact(vec![])
            .when(actor, create(vec![email("ada@example.com")], &[]))
            .then_forbidden();
    }
}

#[test]
fn visitors_become_contacts_from_their_conversation() {
    let expected = |from_conversation_id| -> Vec<DomainEvent> {
        vec![
            ContactRecordCreated {
                contact_id: id(ADA),
                identities: vec![visitor("v-ada")],
                properties: props(&[]),
                from_conversation_id,
            }
            .into(),
        ]
    };
    given_contact(vec![])
        .when(
            channel(),
            from_visitor(vec![visitor("v-ada")], Some(support_conversation())),
        )
        .then(expected(Some(id(CONVERSATION))));
    given_contact(vec![])
        .when(
            user(AGENT),
            from_visitor(vec![visitor("v-ada")], Some(support_conversation())),
        )
        .then(expected(Some(id(CONVERSATION))));
    given_contact(vec![])
        .when(system(), from_visitor(vec![visitor("v-ada")], None))
        .then(expected(None));

    given_contact(vec![])
        .when(
            user(OUTSIDER),
            from_visitor(vec![visitor("v-ada")], Some(support_conversation())),
        )
        .then_error(DomainError::NotFound {
            what: "conversation",
        });
    let private = ConversationRef {
        private_owner: Some(id(OUTSIDER)),
        ..support_conversation()
    };
    given_contact(vec![])
        .when(
            user(AGENT),
            from_visitor(vec![visitor("v-ada")], Some(private)),
        )
        .then_error(DomainError::NotFound {
            what: "conversation",
        });
    given_contact(vec![])
        .when(
            channel(),
            from_visitor(vec![], Some(support_conversation())),
        )
        .then_invalid("identities");
    given_contact(vec![])
        .when(channel(), from_visitor(vec![email("nobody")], None))
        .then_invalid("identities");
    given_contact(vec![ada_created()])
        .when(channel(), from_visitor(vec![visitor("v-ada")], None))
        .then_rejected("ALREADY_EXISTS");
    for actor in [
        user(AUDITOR),
        Actor::Contact { id: id(ADA) },
        Actor::Bot { id: id(5) },
    ] {
        given_contact(vec![])
            .when(actor, from_visitor(vec![visitor("v-ada")], None))
            .then_forbidden();
    }
}

fn change(set: &[(&str, &str)], unset: &[&str]) -> C {
    C::ChangeProperties {
        set: props(set),
        unset: unset.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn properties_change_only_where_they_differ() {
    let state = given_contact(vec![ada_created()])
        .when(
            user(AGENT),
            change(
                &[("name", "Ada Lovelace"), ("phone", " +44 20 7946 0000 ")],
                &["job_title"],
            ),
        )
        .then(vec![
            ContactPropertiesChanged {
                contact_id: id(ADA),
                changes: BTreeMap::from([(
                    "phone".to_owned(),
                    Some("+44 20 7946 0000".to_owned()),
                )]),
            }
            .into(),
        ]);
    assert_eq!(state.properties().len(), 2);
    given_contact(vec![ada_created()])
        .when(user(ADMIN), change(&[], &["name"]))
        .then(vec![
            ContactPropertiesChanged {
                contact_id: id(ADA),
                changes: BTreeMap::from([("name".to_owned(), None)]),
            }
            .into(),
        ]);

    given_contact(vec![ada_created()])
        .when(
            user(AGENT),
            change(&[("name", "Ada Lovelace")], &["job_title"]),
        )
        .then_rejected("UNCHANGED");
    given_contact(vec![ada_created()])
        .when(user(AGENT), change(&[], &[]))
        .then_rejected("UNCHANGED");
    given_contact(vec![ada_created()])
        .when(user(AGENT), change(&[("phone", "1")], &["phone"]))
        .then_invalid("unset");
    given_contact(vec![ada_created()])
        .when(user(AGENT), change(&[("Phone", "1")], &[]))
        .then_invalid("set");
    given_contact(vec![ada_created()])
        .when(user(AGENT), change(&[("phone", " ")], &[]))
        .then_invalid("set");
    given_contact(vec![ada_created()])
        .when(user(AGENT), change(&[], &[""]))
        .then_invalid("unset");
    given_contact(vec![])
        .when(user(AGENT), change(&[("phone", "1")], &[]))
        .then_error(DomainError::NotFound { what: "contact" });
    let message = given_contact(vec![ada_created(), merged(GRACE, ADA)])
        .when(user(AGENT), change(&[("phone", "1")], &[]))
        .then_rejected("MERGED");
    assert!(message.contains(&id(GRACE).to_string()), "{message}");
    given_contact(vec![ada_created()])
        .when(user(AUDITOR), change(&[("phone", "1")], &[]))
        .then_forbidden();
}

#[test]
fn names_are_kept_without_bidi_or_control_characters() {
    // A name (as a form, the widget or the bot's question gives it) loses what would make it
    // read otherwise than it is; another property keeps its characters.
    given_contact(vec![ada_created()])
        .when(
            user(AGENT),
            change(
                &[
                    ("name", "\u{202E}Ada\u{200F}  Byron\u{7}"),
                    ("first_name", "\u{2067}Ada\u{2069}"),
                    ("company", "Acme \u{200F}Ltd"),
                ],
                &[],
            ),
        )
        .then(vec![
            ContactPropertiesChanged {
                contact_id: id(ADA),
                changes: BTreeMap::from([
                    ("company".to_owned(), Some("Acme \u{200F}Ltd".to_owned())),
                    ("first_name".to_owned(), Some("Ada".to_owned())),
                    ("name".to_owned(), Some("Ada Byron".to_owned())),
                ]),
            }
            .into(),
        ]);
    // A name of invisible characters only is an empty value.
    given_contact(vec![ada_created()])
        .when(user(AGENT), change(&[("name", "\u{202E}\u{061C}")], &[]))
        .then_invalid("set");
}

#[test]
fn identities_are_linked_once() {
    let state = given_contact(vec![ada_created()])
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: messenger(" 98765 "),
            },
        )
        .then(vec![
            ContactIdentityLinked {
                contact_id: id(ADA),
                identity: messenger("98765"),
            }
            .into(),
        ]);
    assert_eq!(state.identities().len(), 3);

    given_contact(vec![ada_created()])
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: email("ADA@example.COM"),
            },
        )
        .then_rejected("ALREADY_LINKED");
    given_contact(vec![ada_created()])
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: email("ada.example.com"),
            },
        )
        .then_invalid("identity");
    given_contact(vec![])
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: messenger("1"),
            },
        )
        .then_error(DomainError::NotFound { what: "contact" });
    given_contact(vec![ada_created(), merged(GRACE, ADA)])
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: messenger("1"),
            },
        )
        .then_rejected("MERGED");
    given_contact(vec![ada_created()])
        .when(
            channel(),
            C::LinkIdentity {
                identity: messenger("1"),
            },
        )
        .then_forbidden();
}

#[test]
fn owners_are_users_who_work_conversations() {
    let owner = |n: Option<u128>| C::ChangeOwner {
        owner_user_id: n.map(id),
    };
    let state = given_contact(vec![ada_created()])
        .when(user(ADMIN), owner(Some(AGENT)))
        .then(vec![
            ContactOwnerChanged {
                contact_id: id(ADA),
                owner_user_id: Some(id(AGENT)),
            }
            .into(),
        ]);
    assert_eq!(state.owner_user_id(), Some(id(AGENT)));
    let owned = ContactOwnerChanged {
        contact_id: id(ADA),
        owner_user_id: Some(id(AGENT)),
    };
    given_contact(vec![ada_created(), owned.clone().into()])
        .when(user(AGENT), owner(None))
        .then(vec![
            ContactOwnerChanged {
                contact_id: id(ADA),
                owner_user_id: None,
            }
            .into(),
        ]);

    given_contact(vec![ada_created(), owned.into()])
        .when(user(AGENT), owner(Some(AGENT)))
        .then_rejected("UNCHANGED");
    given_contact(vec![ada_created()])
        .when(user(AGENT), owner(None))
        .then_rejected("UNCHANGED");
    given_contact(vec![ada_created()])
        .when(user(AGENT), owner(Some(404)))
        .then_error(DomainError::NotFound { what: "user" });
    given_contact(vec![ada_created()])
        .when(user(AGENT), owner(Some(AUDITOR)))
        .then_rejected("NOT_AN_AGENT");
    given_contact(vec![])
        .when(user(AGENT), owner(Some(AGENT)))
        .then_error(DomainError::NotFound { what: "contact" });
    given_contact(vec![ada_created(), merged(GRACE, ADA)])
        .when(user(AGENT), owner(Some(AGENT)))
        .then_rejected("MERGED");
    given_contact(vec![ada_created()])
        .when(user(AUDITOR), owner(Some(AGENT)))
        .then_forbidden();
}

#[test]
fn admins_erase_contacts_which_then_refuse_everything() {
    let erase = |reason: &str| C::Erase {
        conversation_ids: vec![id(CONVERSATION), id(CONVERSATION), id(CONVERSATION + 1)],
        reason: reason.into(),
    };
    let erased = ContactErased {
        contact_id: id(ADA),
        conversation_ids: vec![id(CONVERSATION), id(CONVERSATION + 1)],
        reason: "Art. 17 request".into(),
    };
    let state = given_contact(vec![ada_created()])
        .when(user(ADMIN), erase("  Art. 17 request "))
        .then(vec![erased.clone().into()]);
    assert!(state.exists());
    given_contact(vec![ada_created()])
        .when(system(), erase("Art. 17 request"))
        .then(vec![erased.clone().into()]);

    given_contact(vec![ada_created()])
        .when(user(AGENT), erase("Art. 17 request"))
        .then_forbidden();
    given_contact(vec![ada_created()])
        .when(user(AUDITOR), erase("Art. 17 request"))
        .then_forbidden();
    given_contact(vec![ada_created()])
        .when(channel(), erase("Art. 17 request"))
        .then_forbidden();
    given_contact(vec![ada_created()])
        .when(user(ADMIN), erase(" "))
        .then_invalid("reason");
    given_contact(vec![ada_created()])
        .when(user(ADMIN), erase(&"x".repeat(1_001)))
        .then_invalid("reason");
    given_contact(vec![])
        .when(user(ADMIN), erase("Art. 17 request"))
        .then_error(DomainError::NotFound { what: "contact" });

    // Afterwards, nothing: not again, not a change, not a merge either way.
    let history = vec![ada_created(), erased.into()];
    let message = given_contact(history.clone())
        .when(user(ADMIN), erase("again"))
        .then_rejected("ERASED");
    assert!(message.contains(&id(ADA).to_string()), "{message}");
    given_contact(history.clone())
        .when(user(AGENT), change(&[("name", "Ada")], &[]))
        .then_rejected("ERASED");
    given_contact(history.clone())
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: email("ada@elsewhere.example"),
            },
        )
        .then_rejected("ERASED");
    given_contacts(vec![grace_created()], history.clone())
        .when_merged(user(AGENT), GRACE, ADA)
        .then_rejected("ERASED");
    given_contacts(history, vec![grace_created()])
        .when_merged(user(AGENT), ADA, GRACE)
        .then_rejected("ERASED");
}

fn associated(from: RecordRef, to: RecordRef) -> DomainEvent {
    AssociationAdded { from, to }.into()
}

fn company() -> RecordRef {
    RecordRef {
        kind: RecordKind::Company,
        id: id(COMPANY),
    }
}

fn deal() -> RecordRef {
    RecordRef {
        kind: RecordKind::Deal,
        id: id(DEAL),
    }
}

#[test]
fn merging_moves_what_the_survivor_lacks_and_freezes_the_merged_contact() {
    let ada = vec![
        ada_created(),
        associated(contact_ref(ADA), deal()),
        associated(contact_ref(ADA), contact_ref(GRACE)),
    ];
    let grace = vec![
        grace_created(),
        ContactOwnerChanged {
            contact_id: id(GRACE),
            owner_user_id: Some(id(AGENT)),
        }
        .into(),
        associated(contact_ref(GRACE), company()),
        associated(contact_ref(GRACE), deal()),
        associated(contact_ref(GRACE), contact_ref(LINUS)),
    ];
    let (survivor, gone, decision) = given_contacts(ada.clone(), grace.clone())
        .when_merged(user(AGENT), ADA, GRACE)
        .then(
            vec![merged(ADA, GRACE)],
            vec![
                merged(ADA, GRACE),
                ContactIdentityLinked {
                    contact_id: id(ADA),
                    identity: email("grace@example.com"),
                }
                .into(),
                ContactIdentityLinked {
                    contact_id: id(ADA),
                    identity: messenger("1234"),
                }
                .into(),
                ContactPropertiesChanged {
                    contact_id: id(ADA),
                    changes: BTreeMap::from([(
                        "job_title".to_owned(),
                        Some("Rear Admiral".to_owned()),
                    )]),
                }
                .into(),
                ContactOwnerChanged {
                    contact_id: id(ADA),
                    owner_user_id: Some(id(AGENT)),
                }
                .into(),
                associated(contact_ref(ADA), contact_ref(LINUS)),
                associated(contact_ref(ADA), company()),
                AssociationRemoved {
                    from: contact_ref(ADA),
                    to: contact_ref(GRACE),
                }
                .into(),
            ],
        );
    assert_eq!(decision.merged_stream, streams::contact(id(GRACE)));
    assert_eq!(decision.survivor_stream, streams::contact(id(ADA)));
    assert_eq!(
        decision.transfers,
        vec![email("grace@example.com"), messenger("1234")]
    );
    assert_eq!(survivor.identities().len(), 4);
    assert_eq!(
        survivor.properties()["name"],
        "Ada Lovelace",
        "the survivor's own value wins"
    );
    assert_eq!(
        survivor.associations().iter().copied().collect::<Vec<_>>(),
        vec![contact_ref(LINUS), company(), deal()]
    );
    assert_eq!(gone.merged_into(), Some(id(ADA)));
    assert!(survivor.absorbed().contains(&id(GRACE)));

    // A merged contact refuses everything, naming the survivor.
    let mut grace_after = grace.clone();
    grace_after.push(merged(ADA, GRACE));
    let message = given_contact(grace_after.clone())
        .when(
            user(AGENT),
            C::LinkIdentity {
                identity: messenger("1"),
            },
        )
        .then_rejected("MERGED");
    assert!(message.contains(&id(ADA).to_string()), "{message}");

    // Only the tombstone was appended: deciding again resumes with the survivor's part.
    let (_, _, resumed) = given_contacts(ada.clone(), grace_after.clone())
        .when_merged(user(ADMIN), ADA, GRACE)
        .then(vec![], decision.survivor_events.clone());
    assert_eq!(resumed.transfers, decision.transfers);

    // Both parts appended: the merge is done.
    let mut ada_after = ada.clone();
    ada_after.extend(decision.survivor_events.clone());
    given_contacts(ada_after.clone(), grace_after.clone())
        .when_merged(user(AGENT), ADA, GRACE)
        .then_rejected("MERGED");
    // Merged into someone else, or merging into a contact merged away.
    given_contacts(vec![ada_created()], grace_after.clone())
        .when_merged(user(AGENT), LINUS, GRACE)
        .then_error(DomainError::NotFound { what: "contact" });
    let linus = vec![
        ContactRecordCreated {
            contact_id: id(LINUS),
            identities: vec![],
            properties: props(&[]),
            from_conversation_id: None,
        }
        .into(),
    ];
    given_contacts(linus.clone(), grace_after.clone())
        .when_merged(system(), LINUS, GRACE)
        .then_rejected("MERGED");
    given_contacts(grace_after, linus)
        .when_merged(system(), GRACE, LINUS)
        .then_rejected("MERGED");

    given_contacts(ada.clone(), ada.clone())
        .when_merged(user(AGENT), ADA, ADA)
        .then_invalid("mergedId");
    given_contacts(ada.clone(), vec![])
        .when_merged(user(AGENT), ADA, GRACE)
        .then_error(DomainError::NotFound { what: "contact" });
    given_contacts(vec![], grace.clone())
        .when_merged(user(AGENT), ADA, GRACE)
        .then_error(DomainError::NotFound { what: "contact" });
    for actor in [user(AUDITOR), channel(), Actor::Bot { id: id(5) }] {
        given_contacts(ada.clone(), grace.clone())
            .when_merged(actor, ADA, GRACE)
            .then_forbidden();
    }
}

#[test]
fn associations_a_survivor_cannot_own_stay_behind() {
    // Ada (100) is associated with Grace (101) in Ada's stream; merged into Linus (102), that
    // pair's canonical stream is Grace's, not Linus's, so it is not copied.
    let linus = vec![
        ContactRecordCreated {
            contact_id: id(LINUS),
            identities: vec![],
            properties: props(&[("name", "Linus")]),
            from_conversation_id: None,
        }
        .into(),
    ];
    let ada = vec![
        ada_created(),
        associated(contact_ref(ADA), contact_ref(GRACE)),
    ];
    let (survivor, _, _) = given_contacts(linus, ada)
        .when_merged(user(AGENT), LINUS, ADA)
        .then(
            vec![merged(LINUS, ADA)],
            vec![
                merged(LINUS, ADA),
                ContactIdentityLinked {
                    contact_id: id(LINUS),
                    identity: email("ada@example.com"),
                }
                .into(),
                ContactIdentityLinked {
                    contact_id: id(LINUS),
                    identity: visitor("v-ada"),
                }
                .into(),
            ],
        );
    assert!(survivor.associations().is_empty());
}

#[test]
fn claimed_identities_are_those_created_or_linked() {
    let linked: DomainEvent = ContactIdentityLinked {
        contact_id: id(ADA),
        identity: messenger("1"),
    }
    .into();
    let events = [ada_created(), merged(ADA, GRACE), linked];
    assert_eq!(
        contact::claimed_identities(&events),
        vec![
            &email("ada@example.com"),
            &visitor("v-ada"),
            &messenger("1")
        ]
    );
}

fn reservation(identity: &Identity, history: &[DomainEvent]) -> Reservation {
    let mut state = Reservation::of_identity(identity);
    for event in history {
        state.evolve(event);
    }
    state
}

#[test]
fn a_free_value_is_reserved_and_reserving_it_again_is_a_no_op() {
    let ada = email("Ada@Example.com");
    let (stream, event) =
        reservation::reserve(UniqueScope::ContactEmail, " Ada@Example.com", id(ADA));
    assert_eq!(stream, "unique-contact-email-ada@example.com");
    assert_eq!(stream, streams::contact_identity(&ada));
    assert_eq!(
        event,
        UniqueValueReserved {
            scope: UniqueScope::ContactEmail,
            value: "ada@example.com".into(),
            owner_stream: streams::contact(id(ADA)),
        }
        .into()
    );

    let free = reservation(&ada, &[]);
    assert_eq!(free.stream(), stream);
    assert!(!free.is_held());
    assert_eq!(
        reservation::decide_reserve(&free, id(ADA)),
        Ok(vec![event.clone()])
    );

    let held = reservation(&ada, std::slice::from_ref(&event));
    assert_eq!(held.holder(), Some(id(ADA)));
    assert_eq!(
        held.holder_stream(),
        Some(streams::contact(id(ADA)).as_str())
    );
    assert_eq!(reservation::decide_reserve(&held, id(ADA)), Ok(vec![]));
    let message = match reservation::decide_reserve(&held, id(GRACE)) {
        Err(DomainError::Rejected {
            code: "TAKEN",
            message,
            ..
        }) => message,
        other => panic!("expected TAKEN, got {other:?}"),
    };
    assert!(message.contains(&id(ADA).to_string()), "{message}");

    // Events about another value do not count.
    let other = reservation(&email("grace@example.com"), &[event]);
    assert!(!other.is_held());
}

#[test]
fn released_values_may_be_claimed_again_and_only_the_holder_releases() {
    let ada = visitor("v-ada");
    let (_, reserved) = reservation::reserve(UniqueScope::ContactChatVisitor, "v-ada", id(ADA));
    let held = reservation(&ada, std::slice::from_ref(&reserved));
    assert_eq!(reservation::decide_release(&held, id(GRACE)), vec![]);
    let released = reservation::decide_release(&held, id(ADA));
    assert_eq!(
        released,
        vec![reservation::release(UniqueScope::ContactChatVisitor, "v-ada", id(ADA)).1]
    );
    let free = reservation(&ada, &[reserved, released[0].clone()]);
    assert!(!free.is_held());
    assert_eq!(free.holder(), None);
    assert_eq!(reservation::decide_release(&free, id(ADA)), vec![]);
    assert_eq!(
        reservation::decide_reserve(&free, id(GRACE)),
        Ok(vec![
            reservation::reserve(UniqueScope::ContactChatVisitor, "v-ada", id(GRACE)).1
        ])
    );
}

#[test]
fn a_merge_transfers_reservations_to_the_survivor() {
    let grace = email("grace@example.com");
    let scope = UniqueScope::ContactEmail;
    let value = "grace@example.com";
    let held = reservation(&grace, &[reservation::reserve(scope, value, id(GRACE)).1]);
    let moved = reservation::decide_transfer(&held, id(GRACE), id(ADA)).unwrap();
    assert_eq!(
        moved,
        vec![
            reservation::release(scope, value, id(GRACE)).1,
            reservation::reserve(scope, value, id(ADA)).1,
        ]
    );
    let mut after = vec![reservation::reserve(scope, value, id(GRACE)).1];
    after.extend(moved);
    let transferred = reservation(&grace, &after);
    assert_eq!(transferred.holder(), Some(id(ADA)));
    assert_eq!(
        reservation::decide_transfer(&transferred, id(GRACE), id(ADA)),
        Ok(vec![]),
        "transferring again is a no-op"
    );
    assert_eq!(
        reservation::decide_transfer(&reservation(&grace, &[]), id(GRACE), id(ADA)),
        Ok(vec![reservation::reserve(scope, value, id(ADA)).1]),
        "a free value is simply reserved"
    );
    let elsewhere = reservation(&grace, &[reservation::reserve(scope, value, id(LINUS)).1]);
    assert!(matches!(
        reservation::decide_transfer(&elsewhere, id(GRACE), id(ADA)),
        Err(DomainError::Rejected { code: "TAKEN", .. })
    ));
}

#[test]
fn fifty_concurrent_creations_with_one_address_make_one_contact() {
    // The reservation stream, appended to only with the expected version, as the store does.
    let identity = email("ada@example.com");
    let mut stream: Vec<DomainEvent> = Vec::new();
    let append = |stream: &mut Vec<DomainEvent>, expected: usize, events: Vec<DomainEvent>| {
        if stream.len() == expected {
            stream.extend(events);
            true
        } else {
            false
        }
    };
    // All fifty decide against the same empty stream before any appends.
    let claims: Vec<(u128, Vec<DomainEvent>)> = (0..50)
        .map(|n| {
            let contact = 1_000 + n;
            let state = reservation(&identity, &stream);
            (
                contact,
                reservation::decide_reserve(&state, id(contact)).unwrap(),
            )
        })
        .collect();
    let mut winners = Vec::new();
    for (contact, events) in claims {
        if append(&mut stream, 0, events) {
            winners.push(contact);
        } else {
            // The loser reloads, decides again and learns who holds it.
            let state = reservation(&identity, &stream);
            assert!(matches!(
                reservation::decide_reserve(&state, id(contact)),
                Err(DomainError::Rejected { code: "TAKEN", .. })
            ));
            assert_eq!(state.holder(), Some(id(1_000)));
        }
    }
    assert_eq!(winners, vec![1_000]);
    assert_eq!(stream.len(), 1);
}
