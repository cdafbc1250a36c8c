//! The e-mail filter: each built-in rule, allow and deny rules, known contacts, and the order in
//! which the checks decide.

use proto_events::DomainEvent;
use proto_events::event::*;
use switchboard_domain::directory::Directory;
use switchboard_domain::filter::{MailSignals, evaluate};

use crate::channel::{CHAT, MAIL, email_connected, filters_set};
use crate::support::*;

/// Support's shared address with every built-in filter on, plus `more`.
fn mailbox(more: impl IntoIterator<Item = DomainEvent>) -> Directory {
    let mut history = organisation();
    history.extend(email_connected(MAIL, SUPPORT, "support@acme.test"));
    history.extend(more);
    directory(&history)
}

fn from(address: &str) -> MailSignals {
    MailSignals {
        from: address.into(),
        ..MailSignals::default()
    }
}

fn rule(n: u128, action: FilterAction, pattern: SenderPattern) -> DomainEvent {
    EmailFilterRuleAdded {
        rule_id: id(n),
        channel_id: id(MAIL),
        action,
        pattern,
    }
    .into()
}

fn address(a: &str) -> SenderPattern {
    SenderPattern::Address { address: a.into() }
}

fn domain(d: &str) -> SenderPattern {
    SenderPattern::Domain { domain: d.into() }
}

fn only(
    automated_replies: bool,
    bulk_mail: bool,
    role_addresses: bool,
    unsubscribe_header: bool,
) -> DomainEvent {
    BuiltInEmailFiltersSet {
        channel_id: id(MAIL),
        automated_replies,
        bulk_mail,
        role_addresses,
        unsubscribe_header,
    }
    .into()
}

/// Runs a table: each signal set with the reason expected under `directory`, unknown sender.
fn table(directory: &Directory, cases: &[(MailSignals, Option<FilterReason>)]) {
    for (signals, expected) in cases {
        assert_eq!(
            &evaluate(directory, id(MAIL), signals, false),
            expected,
            "{signals:?}"
        );
    }
}

#[test]
fn ordinary_mail_goes_to_the_inbox() {
    let d = mailbox([]);
    table(
        &d,
        &[
            (from("ada@customer.test"), None),
            (
                MailSignals {
                    auto_submitted: Some("no".into()),
                    precedence: Some("first-class".into()),
                    subject: Some("Re: out of office hours pricing".into()),
                    ..from("Ada Lovelace <ada@customer.test>")
                },
                None,
            ),
        ],
    );
}

#[test]
fn automated_replies_are_recognised_by_header_and_subject() {
    let d = mailbox([]);
    let automated = Some(FilterReason::AutomatedReply);
    table(
        &d,
        &[
            (
                MailSignals {
                    auto_submitted: Some("auto-replied".into()),
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    auto_submitted: Some("Auto-Generated; owner-email=\"x@y.test\"".into()),
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    auto_submitted: Some(" No ".into()),
                    ..from("ada@customer.test")
                },
                None,
            ),
            (
                MailSignals {
                    x_autoreply: true,
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    x_autorespond: true,
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    precedence: Some("Auto_Reply".into()),
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    x_auto_response_suppress: Some("DR, OOF, AutoReply".into()),
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    x_auto_response_suppress: Some("DR, RN".into()),
                    ..from("ada@customer.test")
                },
                None,
            ),
            (
                MailSignals {
                    subject: Some("Out of Office: back on Monday".into()),
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    subject: Some("Automatic reply: Your order".into()),
                    ..from("ada@customer.test")
                },
                automated.clone(),
            ),
            (
                MailSignals {
                    subject: Some("Abwesenheitsnotiz: Urlaub".into()),
                    ..from("ada@customer.test")
                },
                automated,
            ),
        ],
    );
}

#[test]
fn bulk_mail_is_recognised_by_precedence_and_list_id() {
    let d = mailbox([]);
    let bulk = Some(FilterReason::BulkMail);
    let precedence = |value: &str| MailSignals {
        precedence: Some(value.into()),
        ..from("news@shop.test")
    };
    table(
        &d,
        &[
            (precedence("bulk"), bulk.clone()),
            (precedence("List"), bulk.clone()),
            (precedence(" junk "), bulk.clone()),
            (precedence("normal"), None),
            (
                MailSignals {
                    list_id: true,
                    ..from("group@lists.test")
                },
                bulk,
            ),
        ],
    );
}

#[test]
fn role_addresses_are_recognised_by_their_local_part() {
    let d = mailbox([]);
    let role = Some(FilterReason::RoleAddress);
    table(
        &d,
        &[
            (from("noreply@shop.test"), role.clone()),
            (from("No-Reply@Shop.test"), role.clone()),
            (from("no_reply@shop.test"), role.clone()),
            (from("donotreply@shop.test"), role.clone()),
            (from("do-not-reply@shop.test"), role.clone()),
            (from("MAILER-DAEMON@mx.shop.test"), role.clone()),
            (from("postmaster@shop.test"), role.clone()),
            (from("bounce@shop.test"), role.clone()),
            (
                from("bounces+12345-ada=customer.test@shop.test"),
                role.clone(),
            ),
            (from("bounce-7f3a@shop.test"), role.clone()),
            (from("noreply-alerts@shop.test"), role.clone()),
            (from("noreply2@shop.test"), role.clone()),
            (from("Shop <noreply@shop.test>"), role),
            (from("bouncer@shop.test"), None),
            (from("norah@shop.test"), None),
            (from("reply@shop.test"), None),
            (from("ada@noreply.test"), None),
        ],
    );
}

#[test]
fn unsubscribe_headers_are_recognised() {
    let d = mailbox([]);
    table(
        &d,
        &[(
            MailSignals {
                list_unsubscribe: true,
                ..from("news@shop.test")
            },
            Some(FilterReason::UnsubscribeHeader),
        )],
    );
}

/// Mail that every built-in rule would catch.
fn everything() -> MailSignals {
    MailSignals {
        auto_submitted: Some("auto-generated".into()),
        precedence: Some("bulk".into()),
        list_unsubscribe: true,
        ..from("noreply@shop.test")
    }
}

#[test]
fn built_in_rules_decide_in_order_and_only_when_switched_on() {
    let order = [
        (
            only(true, true, true, true),
            Some(FilterReason::AutomatedReply),
        ),
        (only(false, true, true, true), Some(FilterReason::BulkMail)),
        (
            only(false, false, true, true),
            Some(FilterReason::RoleAddress),
        ),
        (
            only(false, false, false, true),
            Some(FilterReason::UnsubscribeHeader),
        ),
        (only(false, false, false, false), None),
    ];
    for (setting, expected) in order {
        let d = mailbox([setting.clone()]);
        assert_eq!(
            evaluate(&d, id(MAIL), &everything(), false),
            expected,
            "{setting:?}"
        );
    }
    // Each rule alone catches its own kind of mail and nothing else.
    let d = mailbox([only(false, true, false, false)]);
    table(
        &d,
        &[
            (
                MailSignals {
                    x_autoreply: true,
                    ..from("ada@customer.test")
                },
                None,
            ),
            (from("noreply@shop.test"), None),
            (
                MailSignals {
                    list_id: true,
                    ..from("news@shop.test")
                },
                Some(FilterReason::BulkMail),
            ),
        ],
    );
}

#[test]
fn known_contacts_are_never_caught_by_the_built_in_rules() {
    let d = mailbox([]);
    assert_eq!(evaluate(&d, id(MAIL), &everything(), true), None);
    assert_eq!(
        evaluate(&d, id(MAIL), &everything(), false),
        Some(FilterReason::AutomatedReply)
    );
}

#[test]
fn deny_rules_match_addresses_and_domains_with_their_subdomains() {
    let d = mailbox([
        filters_set(MAIL, false),
        rule(55, FilterAction::Deny, address("Spammer@Mail.test")),
        rule(56, FilterAction::Deny, domain("shop.test")),
    ]);
    let by_address = Some(FilterReason::DenyRule {
        rule_id: id(55),
        pattern: address("spammer@mail.test"),
    });
    let by_domain = Some(FilterReason::DenyRule {
        rule_id: id(56),
        pattern: domain("shop.test"),
    });
    table(
        &d,
        &[
            (from("SPAMMER@mail.TEST"), by_address),
            (
                from("Spam <spammer@mail.test>"),
                Some(FilterReason::DenyRule {
                    rule_id: id(55),
                    pattern: address("spammer@mail.test"),
                }),
            ),
            (from("friend@mail.test"), None),
            (from("ada@Shop.Test"), by_domain.clone()),
            (from("news@eu.mail.shop.test"), by_domain),
            (from("ada@badshop.test"), None),
            (from("ada@shop.test.evil"), None),
        ],
    );
}

#[test]
fn the_most_specific_deny_rule_is_reported() {
    let d = mailbox([
        rule(55, FilterAction::Deny, domain("shop.test")),
        rule(56, FilterAction::Deny, domain("news.shop.test")),
        rule(57, FilterAction::Deny, address("promo@news.shop.test")),
    ]);
    let reason = |n, pattern| {
        Some(FilterReason::DenyRule {
            rule_id: id(n),
            pattern,
        })
    };
    table(
        &d,
        &[
            (
                from("promo@news.shop.test"),
                reason(57, address("promo@news.shop.test")),
            ),
            (
                from("deals@news.shop.test"),
                reason(56, domain("news.shop.test")),
            ),
            (from("ada@shop.test"), reason(55, domain("shop.test"))),
        ],
    );
}

#[test]
fn deny_rules_filter_known_contacts_too() {
    let d = mailbox([rule(55, FilterAction::Deny, domain("shop.test"))]);
    assert_eq!(
        evaluate(&d, id(MAIL), &from("ada@shop.test"), true),
        Some(FilterReason::DenyRule {
            rule_id: id(55),
            pattern: domain("shop.test"),
        })
    );
}

#[test]
fn allow_rules_win_over_deny_rules_and_built_in_rules() {
    let d = mailbox([
        rule(55, FilterAction::Deny, address("noreply@shop.test")),
        rule(56, FilterAction::Allow, domain("shop.test")),
        rule(57, FilterAction::Deny, domain("partner.test")),
        rule(58, FilterAction::Allow, address("alerts@partner.test")),
    ]);
    let mut allowed = everything();
    allowed.from = "noreply@shop.test".into();
    table(
        &d,
        &[
            (allowed, None),
            (
                MailSignals {
                    list_unsubscribe: true,
                    ..from("alerts@partner.test")
                },
                None,
            ),
            (
                from("sales@partner.test"),
                Some(FilterReason::DenyRule {
                    rule_id: id(57),
                    pattern: domain("partner.test"),
                }),
            ),
            (
                from("noreply@elsewhere.test"),
                Some(FilterReason::RoleAddress),
            ),
        ],
    );
}

#[test]
fn removed_rules_no_longer_apply() {
    let d = mailbox([
        rule(55, FilterAction::Deny, domain("shop.test")),
        EmailFilterRuleRemoved {
            rule_id: id(55),
            channel_id: id(MAIL),
        }
        .into(),
    ]);
    assert_eq!(evaluate(&d, id(MAIL), &from("ada@shop.test"), false), None);
}

#[test]
fn channels_without_filter_settings_filter_nothing() {
    let d = mailbox([ChannelConnected {
        channel_id: id(CHAT),
        inbox_id: id(SUPPORT),
        config: ChannelConfig::Chat {
            name: "Website".into(),
        },
    }
    .into()]);
    assert_eq!(evaluate(&d, id(CHAT), &everything(), false), None);
    assert_eq!(evaluate(&d, id(404), &everything(), false), None);
}
