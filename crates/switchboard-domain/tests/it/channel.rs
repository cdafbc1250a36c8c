//! Every channel command: its success and each of its rejections; fallback addresses and the
//! address reservations that go with e-mail channels.

use chrono::DateTime;
use proto_events::event::*;
use proto_events::{Actor, DomainEvent, streams};
use switchboard_domain::channel::{self, ChannelCommand as C};
use switchboard_domain::directory::Directory;
use switchboard_domain::setup::Decision;
use switchboard_domain::{Context, DomainError};

use crate::support::*;

pub(crate) const SALES: u128 = 31;
pub(crate) const MAIL: u128 = 40;
pub(crate) const CHAT: u128 = 41;
pub(crate) const PRIVATE: u128 = 42;
pub(crate) const BOT: u128 = 60;

/// An e-mail channel connected to an inbox, as `ConnectEmail` records it (filters on).
pub(crate) fn email_connected(channel: u128, inbox: u128, address: &str) -> Vec<DomainEvent> {
    vec![
        ChannelConnected {
            channel_id: id(channel),
            inbox_id: id(inbox),
            config: ChannelConfig::Email {
                address: address.into(),
                access: EmailAccess::Shared,
            },
        }
        .into(),
        filters_set(channel, true),
    ]
}

/// All four built-in filters of `channel` on or off.
pub(crate) fn filters_set(channel: u128, on: bool) -> DomainEvent {
    BuiltInEmailFiltersSet {
        channel_id: id(channel),
        automated_replies: on,
        bulk_mail: on,
        role_addresses: on,
        unsubscribe_header: on,
    }
    .into()
}

/// The organisation plus: a Sales inbox, a shared address and a chat on Support, the agent's
/// private account on Support, and a bot.
fn connected() -> Vec<DomainEvent> {
    let mut history = organisation();
    history.push(
        InboxCreated {
            inbox_id: id(SALES),
            name: "Sales".into(),
        }
        .into(),
    );
    history.extend(email_connected(MAIL, SUPPORT, "support@acme.test"));
    history.push(
        ChannelConnected {
            channel_id: id(CHAT),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Chat {
                name: "Website".into(),
            },
        }
        .into(),
    );
    history.push(
        ChannelConnected {
            channel_id: id(PRIVATE),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Email {
                address: "agent@acme.test".into(),
                access: EmailAccess::Private {
                    owner_user_id: id(AGENT),
                },
            },
        }
        .into(),
    );
    history.push(
        BotCreated {
            bot_id: id(BOT),
            name: "Helper".into(),
        }
        .into(),
    );
    history
}

struct Scenario {
    history: Vec<DomainEvent>,
}

fn given(history: Vec<DomainEvent>) -> Scenario {
    Scenario { history }
}

impl Scenario {
    fn and(mut self, more: impl IntoIterator<Item = DomainEvent>) -> Scenario {
        self.history.extend(more);
        self
    }

    fn when(self, actor: Actor, command: C) -> Outcome {
        let directory = directory(&self.history);
        let ctx = Context {
            directory: &directory,
            actor: &actor,
            now: DateTime::UNIX_EPOCH,
        };
        Outcome {
            result: channel::decide(&command, &ctx),
            directory,
        }
    }
}

struct Outcome {
    result: Result<Decision, DomainError>,
    directory: Directory,
}

impl Outcome {
    /// Expects exactly these events on this stream, and returns the directory after them.
    fn then(self, stream: &str, events: Vec<DomainEvent>) -> Directory {
        let decision = self
            .result
            .unwrap_or_else(|e| panic!("expected events, got {e:?}"));
        assert_eq!(decision.stream, stream);
        assert_eq!(decision.events, events);
        let mut directory = self.directory;
        for event in &decision.events {
            directory.evolve(event);
        }
        directory
    }

    fn decision(self) -> (Directory, Decision) {
        let decision = self
            .result
            .unwrap_or_else(|e| panic!("expected events, got {e:?}"));
        (self.directory, decision)
    }

    fn then_error(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    fn then_not_found(self, what: &str) {
        match self.result {
            Err(DomainError::NotFound { what: found }) => assert_eq!(found, what),
            other => panic!("expected {what} not found, got {other:?}"),
        }
    }

    fn then_rejected(self, expected_code: &str, expected_field: &str) {
        match self.result {
            Err(DomainError::Rejected { code, field, .. }) => {
                assert_eq!(code, expected_code);
                assert_eq!(field, Some(expected_field));
            }
            other => panic!("expected rejection {expected_code}, got {other:?}"),
        }
    }

    fn then_invalid(self, expected_field: &str) {
        match self.result {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, expected_field),
            other => panic!("expected invalid {expected_field}, got {other:?}"),
        }
    }

    fn then_forbidden(self) {
        match self.result {
            Err(DomainError::Forbidden { .. }) => {}
            other => panic!("expected forbidden, got {other:?}"),
        }
    }
}

fn connect_email(channel: u128, inbox: u128, address: &str, access: EmailAccess) -> C {
    C::ConnectEmail {
        channel_id: id(channel),
        inbox_id: id(inbox),
        address: address.into(),
        access,
    }
}

fn private(owner: u128) -> EmailAccess {
    EmailAccess::Private {
        owner_user_id: id(owner),
    }
}

#[test]
fn admins_connect_shared_addresses_with_the_built_in_filters_on() {
    let directory = given(organisation())
        .when(
            user(ADMIN),
            connect_email(MAIL, SUPPORT, " Support@Acme.TEST ", EmailAccess::Shared),
        )
        .then(
            &streams::channel(id(MAIL)),
            email_connected(MAIL, SUPPORT, "support@acme.test"),
        );
    let channel = &directory.channels[&id(MAIL)];
    assert!(channel.connected);
    assert_eq!(channel.inbox_id, id(SUPPORT));
    assert!(directory.inbox_has_team_email(id(SUPPORT)));
    assert!(
        directory
            .email_filters(id(MAIL))
            .unwrap()
            .built_in
            .bulk_mail
    );
    assert_eq!(
        directory
            .channel_by_address("SUPPORT@acme.test")
            .map(|c| c.id),
        Some(id(MAIL))
    );
    // The system (seeding, CLI) may too.
    given(organisation())
        .when(
            system(),
            connect_email(MAIL, SUPPORT, "support@acme.test", EmailAccess::Shared),
        )
        .then(
            &streams::channel(id(MAIL)),
            email_connected(MAIL, SUPPORT, "support@acme.test"),
        );
}

#[test]
fn connecting_a_shared_address_is_refused_with_a_reason() {
    let shared =
        |channel, inbox, address: &str| connect_email(channel, inbox, address, EmailAccess::Shared);
    given(connected())
        .when(user(AGENT), shared(43, SUPPORT, "sales@acme.test"))
        .then_forbidden();
    given(connected())
        .when(user(AUDITOR), shared(43, SUPPORT, "sales@acme.test"))
        .then_forbidden();
    given(connected())
        .when(
            Actor::Bot { id: id(BOT) },
            shared(43, SUPPORT, "sales@acme.test"),
        )
        .then_forbidden();
    given(connected())
        .when(user(404), shared(43, SUPPORT, "sales@acme.test"))
        .then_forbidden();
    given(connected())
        .when(user(ADMIN), shared(43, SUPPORT, "sales@"))
        .then_invalid("address");
    given(connected())
        .when(user(ADMIN), shared(43, SUPPORT, "sales at acme.test"))
        .then_invalid("address");
    given(connected())
        .when(user(ADMIN), shared(43, SUPPORT, "SUPPORT@acme.test"))
        .then_rejected("TAKEN", "address");
    given(connected())
        .when(user(ADMIN), shared(43, SALES, "agent@acme.test"))
        .then_rejected("TAKEN", "address");
    given(connected())
        .when(user(ADMIN), shared(MAIL, SUPPORT, "other@acme.test"))
        .then_rejected("ALREADY_EXISTS", "channelId");
    given(connected())
        .when(user(ADMIN), shared(43, 404, "sales@acme.test"))
        .then_not_found("inbox");
    // A disconnected channel's address is free again.
    given(connected())
        .and([ChannelDisconnected {
            channel_id: id(MAIL),
            inbox_id: id(SUPPORT),
        }
        .into()])
        .when(user(ADMIN), shared(43, SALES, "support@acme.test"))
        .then(
            &streams::channel(id(43)),
            email_connected(43, SALES, "support@acme.test"),
        );
}

#[test]
fn users_connect_their_own_private_accounts() {
    let mine = |channel| {
        vec![
            ChannelConnected {
                channel_id: id(channel),
                inbox_id: id(SUPPORT),
                config: ChannelConfig::Email {
                    address: "me@acme.test".into(),
                    access: private(AGENT),
                },
            }
            .into(),
            filters_set(channel, true),
        ]
    };
    let directory = given(organisation())
        .when(
            user(AGENT),
            connect_email(43, SUPPORT, "me@acme.test", private(AGENT)),
        )
        .then(&streams::channel(id(43)), mine(43));
    assert_eq!(directory.channels[&id(43)].private_owner(), Some(id(AGENT)));
    assert!(
        !directory.inbox_has_team_email(id(SUPPORT)),
        "a private account is not the inbox's team e-mail"
    );
    given(organisation())
        .when(
            user(ADMIN),
            connect_email(43, SUPPORT, "me@acme.test", private(AGENT)),
        )
        .then(&streams::channel(id(43)), mine(43));
    given(organisation())
        .when(
            user(OUTSIDER),
            connect_email(43, SUPPORT, "me@acme.test", private(AGENT)),
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(OUTSIDER),
            connect_email(43, SUPPORT, "me@acme.test", private(OUTSIDER)),
        )
        .then_rejected("NO_ACCESS", "inboxId");
    given(organisation())
        .when(
            user(ADMIN),
            connect_email(43, SUPPORT, "me@acme.test", private(AUDITOR)),
        )
        .then_rejected("NOT_AN_AGENT", "access");
    given(organisation())
        .when(
            user(ADMIN),
            connect_email(43, SUPPORT, "me@acme.test", private(404)),
        )
        .then_not_found("user");
    given(organisation())
        .when(
            user(AUDITOR),
            connect_email(43, SUPPORT, "me@acme.test", private(AUDITOR)),
        )
        .then_forbidden();
}

#[test]
fn chats_messenger_pages_and_forms_are_connected_by_admins() {
    given(organisation())
        .when(
            user(ADMIN),
            C::ConnectChat {
                channel_id: id(43),
                inbox_id: id(SUPPORT),
                name: " Website ".into(),
            },
        )
        .then(
            &streams::channel(id(43)),
            vec![
                ChannelConnected {
                    channel_id: id(43),
                    inbox_id: id(SUPPORT),
                    config: ChannelConfig::Chat {
                        name: "Website".into(),
                    },
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::ConnectChat {
                channel_id: id(43),
                inbox_id: id(SUPPORT),
                name: " ".into(),
            },
        )
        .then_invalid("name");
    given(organisation())
        .when(
            user(AGENT),
            C::ConnectChat {
                channel_id: id(43),
                inbox_id: id(SUPPORT),
                name: "Website".into(),
            },
        )
        .then_forbidden();
    given(connected())
        .when(
            user(ADMIN),
            C::ConnectChat {
                channel_id: id(CHAT),
                inbox_id: id(SUPPORT),
                name: "Again".into(),
            },
        )
        .then_rejected("ALREADY_EXISTS", "channelId");

    let messenger = |channel, page_id: &str| C::ConnectMessenger {
        channel_id: id(channel),
        inbox_id: id(SUPPORT),
        page_id: page_id.into(),
        page_name: "Acme".into(),
    };
    let directory = given(organisation())
        .when(user(ADMIN), messenger(44, " 1234 "))
        .then(
            &streams::channel(id(44)),
            vec![
                ChannelConnected {
                    channel_id: id(44),
                    inbox_id: id(SUPPORT),
                    config: ChannelConfig::Messenger {
                        page_id: "1234".into(),
                        page_name: "Acme".into(),
                    },
                }
                .into(),
            ],
        );
    let history: Vec<DomainEvent> = organisation()
        .into_iter()
        .chain([ChannelConnected {
            channel_id: id(44),
            inbox_id: id(SUPPORT),
            config: directory.channels[&id(44)].config.clone(),
        }
        .into()])
        .collect();
    given(history)
        .when(user(ADMIN), messenger(45, "1234"))
        .then_rejected("TAKEN", "pageId");
    given(organisation())
        .when(user(ADMIN), messenger(45, "12 34"))
        .then_invalid("pageId");
    given(organisation())
        .when(
            user(ADMIN),
            C::ConnectMessenger {
                channel_id: id(45),
                inbox_id: id(SUPPORT),
                page_id: "1234".into(),
                page_name: "".into(),
            },
        )
        .then_invalid("pageName");

    given(organisation())
        .when(
            user(ADMIN),
            C::ConnectForm {
                channel_id: id(46),
                inbox_id: id(SUPPORT),
                name: "Contact us".into(),
            },
        )
        .then(
            &streams::channel(id(46)),
            vec![
                ChannelConnected {
                    channel_id: id(46),
                    inbox_id: id(SUPPORT),
                    config: ChannelConfig::Form {
                        name: "Contact us".into(),
                    },
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::ConnectForm {
                channel_id: id(46),
                inbox_id: id(404),
                name: "Contact us".into(),
            },
        )
        .then_not_found("inbox");
}

#[test]
fn channels_are_disconnected_by_admins_and_private_ones_by_their_owner() {
    let disconnected = |channel| {
        vec![
            ChannelDisconnected {
                channel_id: id(channel),
                inbox_id: id(SUPPORT),
            }
            .into(),
        ]
    };
    let directory = given(connected())
        .when(
            user(ADMIN),
            C::Disconnect {
                channel_id: id(MAIL),
            },
        )
        .then(&streams::channel(id(MAIL)), disconnected(MAIL));
    let channel = &directory.channels[&id(MAIL)];
    assert!(!channel.connected, "disconnected, and still known");
    assert!(!directory.inbox_has_team_email(id(SUPPORT)));
    given(connected())
        .when(
            user(AGENT),
            C::Disconnect {
                channel_id: id(PRIVATE),
            },
        )
        .then(&streams::channel(id(PRIVATE)), disconnected(PRIVATE));
    given(connected())
        .when(
            user(AGENT),
            C::Disconnect {
                channel_id: id(MAIL),
            },
        )
        .then_forbidden();
    given(connected())
        .when(
            user(OUTSIDER),
            C::Disconnect {
                channel_id: id(PRIVATE),
            },
        )
        .then_forbidden();
    given(connected())
        .when(
            user(AUDITOR),
            C::Disconnect {
                channel_id: id(MAIL),
            },
        )
        .then_forbidden();
    given(connected())
        .when(
            user(ADMIN),
            C::Disconnect {
                channel_id: id(404),
            },
        )
        .then_not_found("channel");
    given(connected())
        .and(disconnected(CHAT))
        .when(
            user(ADMIN),
            C::Disconnect {
                channel_id: id(CHAT),
            },
        )
        .then_rejected("ALREADY_DISCONNECTED", "channelId");
}

#[test]
fn channels_move_between_inboxes_and_their_history_stays() {
    let directory = given(connected())
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(MAIL),
                inbox_id: id(SALES),
            },
        )
        .then(
            &streams::channel(id(MAIL)),
            vec![
                ChannelMoved {
                    channel_id: id(MAIL),
                    from_inbox_id: id(SUPPORT),
                    to_inbox_id: id(SALES),
                }
                .into(),
            ],
        );
    assert_eq!(directory.channels[&id(MAIL)].inbox_id, id(SALES));
    assert!(directory.inbox_has_team_email(id(SALES)));
    assert!(!directory.inbox_has_team_email(id(SUPPORT)));
    given(connected())
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(MAIL),
                inbox_id: id(SUPPORT),
            },
        )
        .then_rejected("UNCHANGED", "inboxId");
    given(connected())
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(MAIL),
                inbox_id: id(404),
            },
        )
        .then_not_found("inbox");
    given(connected())
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(404),
                inbox_id: id(SALES),
            },
        )
        .then_not_found("channel");
    given(connected())
        .when(
            user(AGENT),
            C::MoveToInbox {
                channel_id: id(MAIL),
                inbox_id: id(SALES),
            },
        )
        .then_forbidden();
    given(connected())
        .and([ChannelDisconnected {
            channel_id: id(MAIL),
            inbox_id: id(SUPPORT),
        }
        .into()])
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(MAIL),
                inbox_id: id(SALES),
            },
        )
        .then_rejected("DISCONNECTED", "channelId");
    // The agent is not a member of Sales, so their private account cannot feed it.
    given(connected())
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(PRIVATE),
                inbox_id: id(SALES),
            },
        )
        .then_rejected("NO_ACCESS", "inboxId");
}

fn set_rule(scope: RuleScope, strategy: RoutingStrategy, targets: Vec<Member>) -> C {
    C::SetRoutingRule {
        rule_id: id(50),
        scope,
        strategy,
        targets,
        bot_id: None,
    }
}

fn inbox_scope(n: u128) -> RuleScope {
    RuleScope::Inbox { id: id(n) }
}

fn channel_scope(n: u128) -> RuleScope {
    RuleScope::Channel { id: id(n) }
}

fn team(n: u128) -> Member {
    Member::Team { id: id(n) }
}

fn member(n: u128) -> Member {
    Member::User { id: id(n) }
}

#[test]
fn routing_rules_are_set_per_inbox_or_channel_and_the_channels_wins() {
    let directory = given(connected())
        .when(
            user(ADMIN),
            set_rule(
                inbox_scope(SUPPORT),
                RoutingStrategy::RoundRobin,
                vec![team(SALES_TEAM), member(ADMIN), team(SALES_TEAM)],
            ),
        )
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                RoutingRuleSet {
                    rule_id: id(50),
                    scope: inbox_scope(SUPPORT),
                    strategy: RoutingStrategy::RoundRobin,
                    targets: vec![team(SALES_TEAM), member(ADMIN)],
                    bot_id: None,
                }
                .into(),
            ],
        );
    assert_eq!(
        directory.rule_for(id(CHAT)).map(|r| r.id),
        Some(id(50)),
        "the inbox's rule routes every channel of the inbox"
    );
    assert_eq!(
        directory.expand_targets(&directory.rule_for(id(CHAT)).unwrap().targets),
        vec![id(ADMIN), id(AGENT)],
        "teams expand to members, in id order"
    );

    let channel_rule = RoutingRuleSet {
        rule_id: id(51),
        scope: channel_scope(CHAT),
        strategy: RoutingStrategy::LeastLoaded,
        targets: vec![member(AGENT)],
        bot_id: None,
    };
    let directory = given(connected())
        .and(directory_events(&directory))
        .when(
            user(ADMIN),
            C::SetRoutingRule {
                rule_id: id(51),
                scope: channel_scope(CHAT),
                strategy: RoutingStrategy::LeastLoaded,
                targets: vec![member(AGENT)],
                bot_id: None,
            },
        )
        .then(
            &streams::channel(id(CHAT)),
            vec![channel_rule.clone().into()],
        );
    assert_eq!(directory.rule_for(id(CHAT)).map(|r| r.id), Some(id(51)));
    assert_eq!(directory.rule_for(id(MAIL)).map(|r| r.id), Some(id(50)));

    // Setting a scope's rule again replaces it, under the same id or a new one.
    let directory = given(connected())
        .and([channel_rule.into()])
        .when(
            user(ADMIN),
            C::SetRoutingRule {
                rule_id: id(52),
                scope: channel_scope(CHAT),
                strategy: RoutingStrategy::ContactOwner,
                targets: vec![],
                bot_id: None,
            },
        )
        .then(
            &streams::channel(id(CHAT)),
            vec![
                RoutingRuleSet {
                    rule_id: id(52),
                    scope: channel_scope(CHAT),
                    strategy: RoutingStrategy::ContactOwner,
                    targets: vec![],
                    bot_id: None,
                }
                .into(),
            ],
        );
    assert_eq!(directory.routing_rules.len(), 1);
    assert!(directory.routing_rule_by_id(id(51)).is_none());
}

/// The routing rules of `directory`, as events, to carry a directory into a new scenario.
fn directory_events(directory: &Directory) -> Vec<DomainEvent> {
    directory
        .routing_rules
        .values()
        .map(|r| {
            RoutingRuleSet {
                rule_id: r.id,
                scope: r.scope.clone(),
                strategy: r.strategy,
                targets: r.targets.clone(),
                bot_id: r.bot_id,
            }
            .into()
        })
        .collect()
}

#[test]
fn bot_first_rules_name_an_existing_bot_and_only_they_do() {
    given(connected())
        .when(
            user(ADMIN),
            C::SetRoutingRule {
                rule_id: id(50),
                scope: channel_scope(CHAT),
                strategy: RoutingStrategy::BotFirst,
                targets: vec![],
                bot_id: Some(id(BOT)),
            },
        )
        .then(
            &streams::channel(id(CHAT)),
            vec![
                RoutingRuleSet {
                    rule_id: id(50),
                    scope: channel_scope(CHAT),
                    strategy: RoutingStrategy::BotFirst,
                    targets: vec![],
                    bot_id: Some(id(BOT)),
                }
                .into(),
            ],
        );
    given(connected())
        .when(
            user(ADMIN),
            set_rule(channel_scope(CHAT), RoutingStrategy::BotFirst, vec![]),
        )
        .then_invalid("botId");
    given(connected())
        .when(
            user(ADMIN),
            C::SetRoutingRule {
                rule_id: id(50),
                scope: channel_scope(CHAT),
                strategy: RoutingStrategy::BotFirst,
                targets: vec![],
                bot_id: Some(id(404)),
            },
        )
        .then_not_found("bot");
    given(connected())
        .when(
            user(ADMIN),
            C::SetRoutingRule {
                rule_id: id(50),
                scope: channel_scope(CHAT),
                strategy: RoutingStrategy::RoundRobin,
                targets: vec![member(AGENT)],
                bot_id: Some(id(BOT)),
            },
        )
        .then_invalid("botId");
}

#[test]
fn routing_rules_are_refused_with_a_reason() {
    let rr = |scope, targets| set_rule(scope, RoutingStrategy::RoundRobin, targets);
    given(connected())
        .when(user(AGENT), rr(inbox_scope(SUPPORT), vec![member(AGENT)]))
        .then_forbidden();
    given(connected())
        .when(user(AUDITOR), rr(inbox_scope(SUPPORT), vec![member(AGENT)]))
        .then_forbidden();
    given(connected())
        .when(user(ADMIN), rr(inbox_scope(SUPPORT), vec![]))
        .then_invalid("targets");
    given(connected())
        .when(
            user(ADMIN),
            set_rule(inbox_scope(SUPPORT), RoutingStrategy::LeastLoaded, vec![]),
        )
        .then_invalid("targets");
    given(connected())
        .when(user(ADMIN), rr(inbox_scope(404), vec![member(AGENT)]))
        .then_not_found("inbox");
    given(connected())
        .when(user(ADMIN), rr(channel_scope(404), vec![member(AGENT)]))
        .then_not_found("channel");
    given(connected())
        .when(user(ADMIN), rr(inbox_scope(SUPPORT), vec![member(404)]))
        .then_not_found("user");
    given(connected())
        .when(user(ADMIN), rr(inbox_scope(SUPPORT), vec![team(404)]))
        .then_not_found("team");
    // Targets must be able to work what the rule routes.
    given(connected())
        .when(
            user(ADMIN),
            rr(inbox_scope(SUPPORT), vec![member(OUTSIDER)]),
        )
        .then_rejected("NO_ACCESS", "targets");
    given(connected())
        .when(user(ADMIN), rr(inbox_scope(SALES), vec![team(SALES_TEAM)]))
        .then_rejected("NO_ACCESS", "targets");
    given(connected())
        .when(user(ADMIN), rr(inbox_scope(SUPPORT), vec![member(AUDITOR)]))
        .then_rejected("NO_ACCESS", "targets");
    given(connected())
        .when(
            user(ADMIN),
            rr(channel_scope(PRIVATE), vec![team(SALES_TEAM)]),
        )
        .then_rejected("NO_ACCESS", "targets");
    given(connected())
        .when(
            user(ADMIN),
            rr(channel_scope(PRIVATE), vec![member(AGENT), member(ADMIN)]),
        )
        .then(
            &streams::channel(id(PRIVATE)),
            vec![
                RoutingRuleSet {
                    rule_id: id(50),
                    scope: channel_scope(PRIVATE),
                    strategy: RoutingStrategy::RoundRobin,
                    targets: vec![member(AGENT), member(ADMIN)],
                    bot_id: None,
                }
                .into(),
            ],
        );
    // A restriction that shuts the team out makes it no target.
    given(connected())
        .and([InboxRestricted {
            inbox_id: id(SUPPORT),
            team_ids: vec![id(404)],
        }
        .into()])
        .when(
            user(ADMIN),
            rr(inbox_scope(SUPPORT), vec![team(SALES_TEAM)]),
        )
        .then_rejected("NO_ACCESS", "targets");
    given(connected())
        .and([ChannelDisconnected {
            channel_id: id(CHAT),
            inbox_id: id(SUPPORT),
        }
        .into()])
        .when(user(ADMIN), rr(channel_scope(CHAT), vec![member(AGENT)]))
        .then_rejected("DISCONNECTED", "channelId");
    // A rule id is one rule's: it cannot be reused for another scope.
    given(connected())
        .and([RoutingRuleSet {
            rule_id: id(50),
            scope: inbox_scope(SUPPORT),
            strategy: RoutingStrategy::ContactOwner,
            targets: vec![],
            bot_id: None,
        }
        .into()])
        .when(user(ADMIN), rr(channel_scope(CHAT), vec![member(AGENT)]))
        .then_rejected("ALREADY_EXISTS", "ruleId");
}

#[test]
fn removing_a_channel_rule_falls_back_to_the_inbox_rule() {
    let rules = [
        RoutingRuleSet {
            rule_id: id(50),
            scope: inbox_scope(SUPPORT),
            strategy: RoutingStrategy::RoundRobin,
            targets: vec![team(SALES_TEAM)],
            bot_id: None,
        }
        .into(),
        RoutingRuleSet {
            rule_id: id(51),
            scope: channel_scope(CHAT),
            strategy: RoutingStrategy::LeastLoaded,
            targets: vec![member(AGENT)],
            bot_id: None,
        }
        .into(),
    ];
    let directory = given(connected())
        .and(rules.clone())
        .when(user(ADMIN), C::RemoveRoutingRule { rule_id: id(51) })
        .then(
            &streams::channel(id(CHAT)),
            vec![
                RoutingRuleRemoved {
                    rule_id: id(51),
                    scope: channel_scope(CHAT),
                }
                .into(),
            ],
        );
    assert_eq!(directory.rule_for(id(CHAT)).map(|r| r.id), Some(id(50)));
    let directory = given(connected())
        .and(rules.clone())
        .when(user(ADMIN), C::RemoveRoutingRule { rule_id: id(50) })
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                RoutingRuleRemoved {
                    rule_id: id(50),
                    scope: inbox_scope(SUPPORT),
                }
                .into(),
            ],
        );
    assert!(directory.rule_for(id(MAIL)).is_none());
    given(connected())
        .and(rules.clone())
        .when(user(ADMIN), C::RemoveRoutingRule { rule_id: id(404) })
        .then_not_found("routing rule");
    given(connected())
        .and(rules)
        .when(user(AGENT), C::RemoveRoutingRule { rule_id: id(50) })
        .then_forbidden();
}

#[test]
fn a_stale_rule_removal_leaves_the_scopes_newer_rule() {
    let mut directory = directory(&connected());
    for event in [
        RoutingRuleSet {
            rule_id: id(50),
            scope: inbox_scope(SUPPORT),
            strategy: RoutingStrategy::ContactOwner,
            targets: vec![],
            bot_id: None,
        }
        .into(),
        RoutingRuleSet {
            rule_id: id(51),
            scope: inbox_scope(SUPPORT),
            strategy: RoutingStrategy::ContactOwner,
            targets: vec![],
            bot_id: None,
        }
        .into(),
        DomainEvent::from(RoutingRuleRemoved {
            rule_id: id(50),
            scope: inbox_scope(SUPPORT),
        }),
    ] {
        directory.evolve(&event);
    }
    assert_eq!(directory.rule_for(id(MAIL)).map(|r| r.id), Some(id(51)));
}

#[test]
fn built_in_filters_are_set_on_e_mail_channels_only() {
    let set = |channel| C::SetBuiltInEmailFilters {
        channel_id: id(channel),
        automated_replies: true,
        bulk_mail: false,
        role_addresses: true,
        unsubscribe_header: false,
    };
    let directory = given(connected()).when(user(ADMIN), set(MAIL)).then(
        &streams::channel(id(MAIL)),
        vec![
            BuiltInEmailFiltersSet {
                channel_id: id(MAIL),
                automated_replies: true,
                bulk_mail: false,
                role_addresses: true,
                unsubscribe_header: false,
            }
            .into(),
        ],
    );
    let built_in = directory.email_filters(id(MAIL)).unwrap().built_in;
    assert!(built_in.automated_replies && !built_in.bulk_mail);
    given(connected())
        .when(user(ADMIN), set(CHAT))
        .then_rejected("NOT_EMAIL", "channelId");
    given(connected())
        .when(user(ADMIN), set(404))
        .then_not_found("channel");
    given(connected())
        .when(user(AGENT), set(MAIL))
        .then_forbidden();
    given(connected())
        .and([ChannelDisconnected {
            channel_id: id(MAIL),
            inbox_id: id(SUPPORT),
        }
        .into()])
        .when(user(ADMIN), set(MAIL))
        .then_rejected("DISCONNECTED", "channelId");
}

fn add_rule(rule: u128, channel: u128, action: FilterAction, pattern: SenderPattern) -> C {
    C::AddEmailFilterRule {
        rule_id: id(rule),
        channel_id: id(channel),
        action,
        pattern,
    }
}

fn address(a: &str) -> SenderPattern {
    SenderPattern::Address { address: a.into() }
}

fn domain(d: &str) -> SenderPattern {
    SenderPattern::Domain { domain: d.into() }
}

#[test]
fn allow_and_deny_rules_are_added_and_removed() {
    let directory = given(connected())
        .when(
            user(ADMIN),
            add_rule(55, MAIL, FilterAction::Deny, address(" News@Shop.TEST ")),
        )
        .then(
            &streams::channel(id(MAIL)),
            vec![
                EmailFilterRuleAdded {
                    rule_id: id(55),
                    channel_id: id(MAIL),
                    action: FilterAction::Deny,
                    pattern: address("news@shop.test"),
                }
                .into(),
            ],
        );
    assert_eq!(directory.email_filters(id(MAIL)).unwrap().rules.len(), 1);
    given(connected())
        .when(
            user(ADMIN),
            add_rule(56, MAIL, FilterAction::Allow, domain("@Partner.test")),
        )
        .then(
            &streams::channel(id(MAIL)),
            vec![
                EmailFilterRuleAdded {
                    rule_id: id(56),
                    channel_id: id(MAIL),
                    action: FilterAction::Allow,
                    pattern: domain("partner.test"),
                }
                .into(),
            ],
        );
    let added = EmailFilterRuleAdded {
        rule_id: id(55),
        channel_id: id(MAIL),
        action: FilterAction::Deny,
        pattern: address("news@shop.test"),
    };
    given(connected())
        .when(
            user(ADMIN),
            add_rule(57, MAIL, FilterAction::Deny, domain("localhost")),
        )
        .then_invalid("pattern");
    given(connected())
        .when(
            user(ADMIN),
            add_rule(57, MAIL, FilterAction::Deny, address("news")),
        )
        .then_invalid("pattern");
    given(connected())
        .and([added.clone().into()])
        .when(
            user(ADMIN),
            add_rule(57, MAIL, FilterAction::Allow, address("NEWS@shop.test")),
        )
        .then_rejected("DUPLICATE", "pattern");
    given(connected())
        .and([added.clone().into()])
        .when(
            user(ADMIN),
            add_rule(55, MAIL, FilterAction::Deny, domain("shop.test")),
        )
        .then_rejected("ALREADY_EXISTS", "ruleId");
    given(connected())
        .when(
            user(ADMIN),
            add_rule(57, CHAT, FilterAction::Deny, domain("shop.test")),
        )
        .then_rejected("NOT_EMAIL", "channelId");
    given(connected())
        .when(
            user(AGENT),
            add_rule(57, MAIL, FilterAction::Deny, domain("shop.test")),
        )
        .then_forbidden();

    let remove = |rule| C::RemoveEmailFilterRule {
        rule_id: id(rule),
        channel_id: id(MAIL),
    };
    let directory = given(connected())
        .and([added.clone().into()])
        .when(user(ADMIN), remove(55))
        .then(
            &streams::channel(id(MAIL)),
            vec![
                EmailFilterRuleRemoved {
                    rule_id: id(55),
                    channel_id: id(MAIL),
                }
                .into(),
            ],
        );
    assert!(directory.email_filters(id(MAIL)).unwrap().rules.is_empty());
    given(connected())
        .and([added.clone().into()])
        .when(user(ADMIN), remove(56))
        .then_not_found("filter rule");
    given(connected())
        .and([added.into()])
        .when(user(AUDITOR), remove(55))
        .then_forbidden();
}

fn assign_fallback(channel: u128, inbox: u128, address: &str) -> C {
    C::AssignFallbackAddress {
        channel_id: id(channel),
        inbox_id: id(inbox),
        address: address.into(),
    }
}

fn fallback_assigned(channel: u128, inbox: u128, address: &str) -> Vec<DomainEvent> {
    vec![
        FallbackAddressAssigned {
            channel_id: id(channel),
            inbox_id: id(inbox),
            address: address.into(),
        }
        .into(),
        filters_set(channel, true),
    ]
}

#[test]
fn an_inbox_without_team_e_mail_gets_one_fallback_address_from_the_system() {
    let history = organisation();
    assert!(channel::fallback_address_needed(
        &directory(&history),
        id(SUPPORT)
    ));
    assert!(!channel::fallback_address_needed(
        &directory(&history),
        id(404)
    ));
    let directory = given(history.clone())
        .when(
            system(),
            assign_fallback(48, SUPPORT, "Support-7f3a@in.switchboard.test"),
        )
        .then(
            &streams::channel(id(48)),
            fallback_assigned(48, SUPPORT, "support-7f3a@in.switchboard.test"),
        );
    assert!(!channel::fallback_address_needed(&directory, id(SUPPORT)));
    let fallback = &directory.channels[&id(48)];
    assert!(fallback.connected, "listed as a connected channel");
    assert_eq!(fallback.private_owner(), None, "shared access");
    assert!(matches!(fallback.config, ChannelConfig::Email { .. }));
    assert!(directory.is_fallback(id(48)));
    assert_eq!(
        directory.fallback_address(id(SUPPORT)).map(|c| c.id),
        Some(id(48))
    );
    assert!(
        !directory.inbox_has_team_email(id(SUPPORT)),
        "a fallback is not team e-mail"
    );

    given(history.clone())
        .when(user(ADMIN), assign_fallback(48, SUPPORT, "s@in.test"))
        .then_forbidden();
    given(history.clone())
        .when(system(), assign_fallback(48, 404, "s@in.test"))
        .then_not_found("inbox");
    given(history.clone())
        .when(system(), assign_fallback(48, SUPPORT, "nope"))
        .then_invalid("address");
    given(history.clone())
        .and(fallback_assigned(48, SUPPORT, "s@in.test"))
        .when(system(), assign_fallback(49, SUPPORT, "t@in.test"))
        .then_rejected("FALLBACK_EXISTS", "inboxId");
    given(history.clone())
        .and(fallback_assigned(48, SUPPORT, "s@in.test"))
        .when(system(), assign_fallback(48, SUPPORT, "t@in.test"))
        .then_rejected("ALREADY_EXISTS", "channelId");
    given(connected())
        .when(system(), assign_fallback(48, SALES, "support@acme.test"))
        .then_rejected("TAKEN", "address");
    given(connected())
        .when(system(), assign_fallback(48, SUPPORT, "s@in.test"))
        .then_rejected("HAS_TEAM_EMAIL", "inboxId");
    // A private account alone leaves the inbox without team e-mail.
    let only_private: Vec<DomainEvent> = connected()
        .into_iter()
        .chain([ChannelDisconnected {
            channel_id: id(MAIL),
            inbox_id: id(SUPPORT),
        }
        .into()])
        .collect();
    assert!(channel::fallback_address_needed(
        &crate::support::directory(&only_private),
        id(SUPPORT)
    ));
}

#[test]
fn a_fallback_address_stays_with_its_inbox_but_takes_rules_and_filters() {
    let history: Vec<DomainEvent> = organisation()
        .into_iter()
        .chain([InboxCreated {
            inbox_id: id(SALES),
            name: "Sales".into(),
        }
        .into()])
        .chain(fallback_assigned(48, SUPPORT, "s@in.test"))
        .collect();
    given(history.clone())
        .when(user(ADMIN), C::Disconnect { channel_id: id(48) })
        .then_rejected("FALLBACK_ADDRESS", "channelId");
    given(history.clone())
        .when(
            user(ADMIN),
            C::MoveToInbox {
                channel_id: id(48),
                inbox_id: id(SALES),
            },
        )
        .then_rejected("FALLBACK_ADDRESS", "channelId");
    given(history.clone())
        .when(
            user(ADMIN),
            add_rule(55, 48, FilterAction::Deny, domain("spam.test")),
        )
        .then(
            &streams::channel(id(48)),
            vec![
                EmailFilterRuleAdded {
                    rule_id: id(55),
                    channel_id: id(48),
                    action: FilterAction::Deny,
                    pattern: domain("spam.test"),
                }
                .into(),
            ],
        );
    given(history)
        .when(
            user(ADMIN),
            connect_email(43, SALES, "S@in.test", EmailAccess::Shared),
        )
        .then_rejected("TAKEN", "address");
}

#[test]
fn e_mail_addresses_are_claimed_and_released_in_their_reservation_stream() {
    let (directory, decision) = given(organisation())
        .when(
            user(ADMIN),
            connect_email(43, SUPPORT, "Sales@Acme.test", EmailAccess::Shared),
        )
        .decision();
    let reservation = "unique-channel-email-sales@acme.test";
    assert_eq!(
        channel::address_claim(&directory, &decision),
        Some(Decision {
            stream: reservation.into(),
            events: vec![
                UniqueValueReserved {
                    scope: UniqueScope::ChannelEmail,
                    value: "sales@acme.test".into(),
                    owner_stream: streams::channel(id(43)),
                }
                .into(),
            ],
        })
    );
    let (directory, decision) = given(connected())
        .when(
            user(ADMIN),
            C::Disconnect {
                channel_id: id(MAIL),
            },
        )
        .decision();
    assert_eq!(
        channel::address_claim(&directory, &decision),
        Some(Decision {
            stream: "unique-channel-email-support@acme.test".into(),
            events: vec![
                UniqueValueReleased {
                    scope: UniqueScope::ChannelEmail,
                    value: "support@acme.test".into(),
                    owner_stream: streams::channel(id(MAIL)),
                }
                .into(),
            ],
        })
    );
    let (directory, decision) = given(organisation())
        .when(system(), assign_fallback(48, SUPPORT, "s@in.test"))
        .decision();
    assert_eq!(
        channel::address_claim(&directory, &decision).map(|d| d.stream),
        Some("unique-channel-email-s@in.test".to_owned())
    );
    for command in [
        C::Disconnect {
            channel_id: id(CHAT),
        },
        C::SetBuiltInEmailFilters {
            channel_id: id(MAIL),
            automated_replies: false,
            bulk_mail: false,
            role_addresses: false,
            unsubscribe_header: false,
        },
    ] {
        let (directory, decision) = given(connected()).when(user(ADMIN), command).decision();
        assert_eq!(channel::address_claim(&directory, &decision), None);
    }
}

#[test]
fn unknown_actors_and_channels_are_not_found_or_forbidden() {
    given(connected())
        .when(
            Actor::Contact { id: id(70) },
            C::Disconnect {
                channel_id: id(CHAT),
            },
        )
        .then_forbidden();
    given(connected())
        .when(
            Actor::Channel { id: id(CHAT) },
            C::Disconnect {
                channel_id: id(CHAT),
            },
        )
        .then_forbidden();
    given(connected())
        .when(
            user(ADMIN),
            C::RemoveEmailFilterRule {
                rule_id: id(55),
                channel_id: id(404),
            },
        )
        .then_error(DomainError::NotFound { what: "channel" });
}

fn imap_settings(password: Option<u128>) -> channel::ImapSettings {
    channel::ImapSettings {
        host: "imap.acme.test".into(),
        port: 993,
        security: ServerSecurity::Tls,
        username: "support@acme.test".into(),
        password_secret: password.map(id),
        mailbox: None,
    }
}

fn set_servers(
    channel: u128,
    imap: channel::Setting<channel::ImapSettings>,
    smtp: channel::Setting<channel::SmtpSettings>,
) -> C {
    C::SetEmailServers {
        channel_id: id(channel),
        imap,
        smtp,
        ingest_secret: channel::Setting::Keep,
    }
}

#[test]
fn email_servers_are_set_kept_and_cleared_with_their_passwords_by_id() {
    use channel::Setting::{Clear, Keep, Set};
    let smtp = channel::SmtpSettings {
        host: "smtp.acme.test".into(),
        port: 587,
        security: ServerSecurity::StartTls,
        username: Some("support@acme.test".into()),
        password_secret: Some(id(0x52)),
    };
    let imap = ImapServer {
        host: "imap.acme.test".into(),
        port: 993,
        security: ServerSecurity::Tls,
        username: "support@acme.test".into(),
        password_secret: id(0x51),
        mailbox: "INBOX".into(),
    };
    let set = EmailServersSet {
        channel_id: id(MAIL),
        imap: Some(imap.clone()),
        smtp: Some(SmtpServer {
            host: "smtp.acme.test".into(),
            port: 587,
            security: ServerSecurity::StartTls,
            username: Some("support@acme.test".into()),
            password_secret: Some(id(0x52)),
        }),
        ingest_secret: None,
    };
    let directory = given(connected())
        .when(
            user(ADMIN),
            set_servers(MAIL, Set(imap_settings(Some(0x51))), Set(smtp.clone())),
        )
        .then(&streams::channel(id(MAIL)), vec![set.clone().into()]);
    assert_eq!(
        directory.channels[&id(MAIL)].servers.imap.as_ref(),
        Some(&imap)
    );

    let history = || {
        let mut history = connected();
        history.push(set.clone().into());
        history
    };
    // Another mailbox without a password keeps the password; the ingest secret is added alone.
    let moved = ImapServer {
        mailbox: "Support".into(),
        ..imap.clone()
    };
    given(history())
        .when(
            user(ADMIN),
            C::SetEmailServers {
                channel_id: id(MAIL),
                imap: Set(channel::ImapSettings {
                    host: " IMAP.acme.test ".into(),
                    mailbox: Some("Support".into()),
                    ..imap_settings(None)
                }),
                smtp: Keep,
                ingest_secret: Set(id(0x53)),
            },
        )
        .then(
            &streams::channel(id(MAIL)),
            vec![
                EmailServersSet {
                    imap: Some(moved),
                    ingest_secret: Some(id(0x53)),
                    ..set.clone()
                }
                .into(),
            ],
        );
    // A saved password goes to no other server, login or weaker protection.
    for changed in [
        channel::ImapSettings {
            host: "imap.elsewhere.test".into(),
            ..imap_settings(None)
        },
        channel::ImapSettings {
            port: 143,
            ..imap_settings(None)
        },
        channel::ImapSettings {
            username: "someone@acme.test".into(),
            ..imap_settings(None)
        },
        channel::ImapSettings {
            security: ServerSecurity::Plain,
            ..imap_settings(None)
        },
    ] {
        given(history())
            .when(user(ADMIN), set_servers(MAIL, Set(changed), Keep))
            .then_invalid("imap.password");
    }
    given(history())
        .when(
            user(ADMIN),
            set_servers(
                MAIL,
                Keep,
                Set(channel::SmtpSettings {
                    host: "smtp.elsewhere.test".into(),
                    password_secret: None,
                    ..smtp.clone()
                }),
            ),
        )
        .then_invalid("smtp.password");
    // Cleared, they are gone.
    given(history())
        .when(user(ADMIN), set_servers(MAIL, Clear, Clear))
        .then(
            &streams::channel(id(MAIL)),
            vec![
                EmailServersSet {
                    channel_id: id(MAIL),
                    imap: None,
                    smtp: None,
                    ingest_secret: None,
                }
                .into(),
            ],
        );

    // A first IMAP setting needs its password; a username needs one for SMTP, a password needs
    // a username.
    given(connected())
        .when(
            user(ADMIN),
            set_servers(MAIL, Set(imap_settings(None)), Keep),
        )
        .then_invalid("imap.password");
    given(connected())
        .when(
            user(ADMIN),
            set_servers(
                MAIL,
                Keep,
                Set(channel::SmtpSettings {
                    password_secret: None,
                    ..smtp.clone()
                }),
            ),
        )
        .then_invalid("smtp.password");
    given(connected())
        .when(
            user(ADMIN),
            set_servers(
                MAIL,
                Keep,
                Set(channel::SmtpSettings {
                    username: None,
                    ..smtp.clone()
                }),
            ),
        )
        .then_invalid("smtp.password");
    for (host, port, field) in [
        ("169.254.169.254", 993, "imap.host"),
        ("[fe80::1]", 993, "imap.host"),
        ("::ffff:169.254.169.254", 993, "imap.host"),
        ("0.0.0.0", 993, "imap.host"),
        ("2852039166", 993, "imap.host"),
        ("0251.0376.0251.0376", 993, "imap.host"),
        ("0xa9fea9fe", 993, "imap.host"),
        ("imap.acme.test/x", 993, "imap.host"),
        ("imaps://imap.acme.test", 993, "imap.host"),
        ("", 993, "imap.host"),
        ("imap.acme.test", 0, "imap.port"),
    ] {
        given(connected())
            .when(
                user(ADMIN),
                set_servers(
                    MAIL,
                    Set(channel::ImapSettings {
                        host: host.into(),
                        port,
                        ..imap_settings(Some(1))
                    }),
                    Keep,
                ),
            )
            .then_invalid(field);
    }
    given(connected())
        .when(
            user(ADMIN),
            set_servers(
                MAIL,
                Set(channel::ImapSettings {
                    host: "::1".into(),
                    ..imap_settings(Some(1))
                }),
                Keep,
            ),
        )
        .decision();

    // Who: admins for shared addresses; the owner (or an admin) for a private account.
    given(connected())
        .when(user(AGENT), set_servers(MAIL, Clear, Keep))
        .then_forbidden();
    given(connected())
        .when(
            user(AGENT),
            set_servers(PRIVATE, Set(imap_settings(Some(0x54))), Keep),
        )
        .decision();
    given(connected())
        .when(user(ADMIN), set_servers(CHAT, Clear, Keep))
        .then_rejected("NOT_EMAIL", "channelId");
    given(connected())
        .when(user(ADMIN), set_servers(404, Clear, Keep))
        .then_not_found("channel");
}

const FORM: u128 = 46;
const KEY: &str = "k3y-0f-the-f0rm_1234567";

fn form_connected() -> Vec<DomainEvent> {
    let mut history = organisation();
    history.push(
        ChannelConnected {
            channel_id: id(FORM),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Form {
                name: "Contact us".into(),
            },
        }
        .into(),
    );
    history
}

fn field(name: &str, kind: FormFieldKind, required: bool) -> FormFieldSpec {
    FormFieldSpec {
        name: name.into(),
        label: format!("Your {name}"),
        kind,
        required,
        options: vec![],
    }
}

fn configure(fields: Vec<FormFieldSpec>, origins: &[&str], honeypot: Option<&str>) -> C {
    C::ConfigureForm {
        channel_id: id(FORM),
        new_public_key: KEY.into(),
        settings: switchboard_domain::form::FormSettings {
            fields,
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            honeypot_field: honeypot.map(str::to_owned),
        },
    }
}

#[test]
fn forms_are_configured_by_admins_with_one_email_field_and_keep_their_key() {
    let fields = vec![
        field("name", FormFieldKind::Text, false),
        field(" email ", FormFieldKind::Email, true),
    ];
    let expected = FormConfigured {
        channel_id: id(FORM),
        public_key: KEY.into(),
        fields: vec![
            field("name", FormFieldKind::Text, false),
            FormFieldSpec {
                label: "Your  email ".trim().into(),
                ..field("email", FormFieldKind::Email, true)
            },
        ],
        allowed_origins: vec![
            "https://www.acme.test".into(),
            "http://localhost:8080".into(),
        ],
        honeypot_field: Some("website".into()),
    };
    let directory = given(form_connected())
        .when(
            user(ADMIN),
            configure(
                fields.clone(),
                &["HTTPS://www.acme.test:443/", "http://localhost:8080"],
                Some("website"),
            ),
        )
        .then(&streams::channel(id(FORM)), vec![expected.clone().into()]);
    assert_eq!(directory.form_by_key(KEY).map(|c| c.id), Some(id(FORM)));

    // Configured again, with another proposed key: the form keeps its first one.
    let again = given(form_connected())
        .and([expected.clone().into()])
        .when(
            user(ADMIN),
            C::ConfigureForm {
                channel_id: id(FORM),
                new_public_key: "an0ther-key-0f-22-chars".into(),
                settings: switchboard_domain::form::FormSettings {
                    fields,
                    allowed_origins: vec![],
                    honeypot_field: None,
                },
            },
        )
        .decision()
        .1;
    match &again.events[..] {
        [DomainEvent::FormConfigured(e)] => assert_eq!(e.public_key, KEY),
        other => panic!("expected FormConfigured, got {other:?}"),
    }

    given(form_connected())
        .when(
            user(AGENT),
            configure(vec![field("email", FormFieldKind::Email, true)], &[], None),
        )
        .then_forbidden();
    given(form_connected())
        .and(email_connected(MAIL, SUPPORT, "support@acme.test"))
        .when(
            user(ADMIN),
            C::ConfigureForm {
                channel_id: id(MAIL),
                new_public_key: KEY.into(),
                settings: switchboard_domain::form::FormSettings {
                    fields: vec![field("email", FormFieldKind::Email, true)],
                    allowed_origins: vec![],
                    honeypot_field: None,
                },
            },
        )
        .then_rejected("NOT_FORM", "channelId");
}

#[test]
fn a_form_configuration_names_the_field_it_refuses() {
    let email = || field("email", FormFieldKind::Email, true);
    let refused = |fields: Vec<FormFieldSpec>, origins: &[&str], honeypot, expected: &str| {
        given(form_connected())
            .when(user(ADMIN), configure(fields, origins, honeypot))
            .then_invalid(expected);
    };
    refused(vec![], &[], None, "fields");
    refused(
        vec![field("name", FormFieldKind::Text, true)],
        &[],
        None,
        "fields",
    );
    refused(
        vec![email(), field("other", FormFieldKind::Email, false)],
        &[],
        None,
        "fields",
    );
    refused(
        vec![
            email(),
            field("a", FormFieldKind::Text, false),
            field("bad name", FormFieldKind::Text, false),
        ],
        &[],
        None,
        "fields.2.name",
    );
    refused(
        vec![email(), field("email", FormFieldKind::Text, false)],
        &[],
        None,
        "fields.1.name",
    );
    refused(
        vec![FormFieldSpec {
            label: " ".into(),
            ..email()
        }],
        &[],
        None,
        "fields.0.label",
    );
    refused(
        vec![email(), field("topic", FormFieldKind::Select, false)],
        &[],
        None,
        "fields.1.options",
    );
    refused(
        vec![
            email(),
            FormFieldSpec {
                options: vec!["A".into(), "A".into()],
                ..field("topic", FormFieldKind::Select, false)
            },
        ],
        &[],
        None,
        "fields.1.options.1",
    );
    refused(
        vec![FormFieldSpec {
            options: vec!["A".into()],
            ..email()
        }],
        &[],
        None,
        "fields.0.options",
    );
    for origin in [
        "http://www.acme.test",
        "https://www.acme.test/contact",
        "www.acme.test",
        "https://acme test",
        "https://acme.test:0",
    ] {
        refused(
            vec![email()],
            &["https://ok.test", origin],
            None,
            "allowedOrigins.1",
        );
    }
    refused(vec![email()], &[], Some("email"), "honeypotField");
    refused(vec![email()], &[], Some("a b"), "honeypotField");
}

fn bot_settings() -> switchboard_domain::chatbot::ChatBotSettings {
    switchboard_domain::chatbot::ChatBotSettings {
        bot_id: id(BOT),
        enabled: true,
        greeting: "  Hello! ".into(),
        questions: crate::chatbot::config().questions,
        answers: vec![BotAnswer {
            phrases: vec![" price ".into(), "how much".into()],
            reply: "10 EUR".into(),
        }],
        handoff: BotHandoffPolicy {
            phrases: vec!["human".into()],
            on_no_match: false,
            timeout_seconds: Some(60),
            message: Some("  ".into()),
        },
    }
}

fn configure_bot(settings: switchboard_domain::chatbot::ChatBotSettings) -> C {
    C::ConfigureChatBot {
        channel_id: id(CHAT),
        settings,
    }
}

#[test]
fn chat_bots_are_configured_by_admins_on_chat_channels_trimmed() {
    let expected = ChatBotConfigured {
        channel_id: id(CHAT),
        bot_id: id(BOT),
        enabled: true,
        greeting: "Hello!".into(),
        questions: bot_settings().questions,
        answers: vec![BotAnswer {
            phrases: vec!["price".into(), "how much".into()],
            reply: "10 EUR".into(),
        }],
        handoff: BotHandoffPolicy {
            phrases: vec!["human".into()],
            on_no_match: false,
            timeout_seconds: Some(60),
            message: None,
        },
    };
    let directory = given(connected())
        .when(user(ADMIN), configure_bot(bot_settings()))
        .then(&streams::channel(id(CHAT)), vec![expected.clone().into()]);
    assert_eq!(directory.channels[&id(CHAT)].chat_bot, Some(expected));

    given(connected())
        .when(user(AGENT), configure_bot(bot_settings()))
        .then_forbidden();
    given(connected())
        .when(
            user(ADMIN),
            C::ConfigureChatBot {
                channel_id: id(MAIL),
                settings: bot_settings(),
            },
        )
        .then_rejected("NOT_CHAT", "channelId");
    given(connected())
        .when(
            user(ADMIN),
            configure_bot(switchboard_domain::chatbot::ChatBotSettings {
                bot_id: id(404),
                ..bot_settings()
            }),
        )
        .then_not_found("bot");
}

#[test]
fn a_chat_bots_configuration_is_refused_naming_the_field() {
    let refused = |change: &dyn Fn(&mut switchboard_domain::chatbot::ChatBotSettings),
                   field: &str| {
        let mut settings = bot_settings();
        change(&mut settings);
        given(connected())
            .when(user(ADMIN), configure_bot(settings))
            .then_invalid(field);
    };
    refused(&|s| s.greeting = " \n ".into(), "greeting");
    refused(&|s| s.greeting = "x".repeat(2001), "greeting");
    refused(
        &|s| s.questions[1].prompt = String::new(),
        "questions.1.prompt",
    );
    refused(
        &|s| s.questions[1].collects = BotCollects::Name,
        "questions.1.collects",
    );
    refused(
        &|s| {
            s.questions = (0..11)
                .map(|_| BotQuestion {
                    prompt: "?".into(),
                    collects: BotCollects::Name,
                })
                .collect()
        },
        "questions",
    );
    // The same words in another case or with accents are the same phrase.
    refused(
        &|s| s.answers[0].phrases.push("Prícé".into()),
        "answers.0.phrases.2",
    );
    refused(
        &|s| s.handoff.phrases.push("HOW much".into()),
        "answers.0.phrases.1",
    );
    refused(
        &|s| s.answers[0].phrases = vec!["?!".into()],
        "answers.0.phrases.0",
    );
    refused(&|s| s.answers[0].phrases.clear(), "answers.0.phrases");
    refused(&|s| s.answers[0].reply = " ".into(), "answers.0.reply");
    refused(
        &|s| s.handoff.phrases = (0..21).map(|i| format!("word{i}")).collect(),
        "handoff.phrases",
    );
    refused(
        &|s| s.handoff.timeout_seconds = Some(0),
        "handoff.timeoutSeconds",
    );
    refused(
        &|s| s.handoff.timeout_seconds = Some(86_401),
        "handoff.timeoutSeconds",
    );
    refused(&|s| s.handoff.timeout_seconds = None, "handoff");
    refused(
        &|s| s.handoff.message = Some("a\u{7}b".into()),
        "handoff.message",
    );
}

// --- Messenger pages (issue 20) ---

const PAGE: u128 = 43;

fn page_connected() -> Vec<DomainEvent> {
    let mut history = connected();
    history.push(
        ChannelConnected {
            channel_id: id(PAGE),
            inbox_id: id(SUPPORT),
            config: ChannelConfig::Messenger {
                page_id: "1234567890".into(),
                page_name: "Acme".into(),
            },
        }
        .into(),
    );
    history
}

fn set_page(channel: u128, token: channel::Setting<uuid::Uuid>, tag: Option<bool>) -> C {
    C::SetMessengerPage {
        channel_id: id(channel),
        page_token: token,
        human_agent_tag: tag,
    }
}

#[test]
fn a_messenger_page_token_is_set_by_id_kept_and_cleared_by_admins_only() {
    use channel::Setting::{Clear, Keep, Set};
    let set = MessengerPageSet {
        channel_id: id(PAGE),
        page_token_secret: Some(id(0x61)),
        human_agent_tag: true,
    };
    let directory = given(page_connected())
        .when(user(ADMIN), set_page(PAGE, Set(id(0x61)), Some(true)))
        .then(&streams::channel(id(PAGE)), vec![set.clone().into()]);
    assert_eq!(
        directory.channels[&id(PAGE)].messenger.page_token_secret,
        Some(id(0x61))
    );
    // The tag alone: the token stays; clearing the token keeps the tag.
    given(page_connected())
        .and([set.clone().into()])
        .when(user(ADMIN), set_page(PAGE, Keep, Some(false)))
        .then(
            &streams::channel(id(PAGE)),
            vec![
                MessengerPageSet {
                    human_agent_tag: false,
                    ..set.clone()
                }
                .into(),
            ],
        );
    given(page_connected())
        .and([set.clone().into()])
        .when(user(ADMIN), set_page(PAGE, Clear, None))
        .then(
            &streams::channel(id(PAGE)),
            vec![
                MessengerPageSet {
                    page_token_secret: None,
                    ..set.clone()
                }
                .into(),
            ],
        );
    given(page_connected())
        .when(user(AGENT), set_page(PAGE, Set(id(0x61)), None))
        .then_forbidden();
    given(page_connected())
        .when(user(ADMIN), set_page(CHAT, Set(id(0x61)), None))
        .then_rejected("NOT_MESSENGER", "channelId");
}

// --- end Messenger pages ---
