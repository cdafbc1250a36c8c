//! Every setup command: its success and each of its rejections.

use chrono::NaiveTime;
use proto_events::event::*;
use proto_events::{Actor, streams};
use switchboard_domain::DomainError;
use switchboard_domain::setup::SetupCommand as C;

use crate::support::*;

fn at(h: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, 0, 0).unwrap()
}

#[test]
fn organisation_is_created_once_by_the_system() {
    let command = C::CreateOrganisation {
        organisation_id: id(ORG),
        name: " Acme ".into(),
        time_zone: "Europe/Paris".into(),
    };
    let directory = given(vec![]).when(system(), command.clone()).then(
        &streams::organisation(id(ORG)),
        vec![
            OrganisationCreated {
                organisation_id: id(ORG),
                name: "Acme".into(),
                time_zone: "Europe/Paris".into(),
            }
            .into(),
        ],
    );
    assert_eq!(directory.organisation.unwrap().name, "Acme");
    given(organisation())
        .when(system(), command.clone())
        .then_rejected("ALREADY_EXISTS");
    given(organisation())
        .when(user(SUPER), command)
        .then_forbidden();
    given(vec![])
        .when(
            system(),
            C::CreateOrganisation {
                organisation_id: id(ORG),
                name: "Acme".into(),
                time_zone: "Mars/Olympus".into(),
            },
        )
        .then_invalid("timeZone");
    given(vec![])
        .when(
            system(),
            C::CreateOrganisation {
                organisation_id: id(ORG),
                name: "  ".into(),
                time_zone: "UTC".into(),
            },
        )
        .then_invalid("name");
}

#[test]
fn time_zone_is_set_by_admins() {
    given(organisation())
        .when(
            user(ADMIN),
            C::SetTimeZone {
                time_zone: "America/New_York".into(),
            },
        )
        .then(
            &streams::organisation(id(ORG)),
            vec![
                OrganisationTimeZoneSet {
                    organisation_id: id(ORG),
                    time_zone: "America/New_York".into(),
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(AGENT),
            C::SetTimeZone {
                time_zone: "UTC".into(),
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(ADMIN),
            C::SetTimeZone {
                time_zone: "nowhere".into(),
            },
        )
        .then_invalid("timeZone");
    given(vec![])
        .when(
            system(),
            C::SetTimeZone {
                time_zone: "UTC".into(),
            },
        )
        .then_error(DomainError::NotFound {
            what: "organisation",
        });
}

#[test]
fn business_hours_must_be_well_formed() {
    let weekly = vec![
        OpeningInterval {
            day: Weekday::Monday,
            opens: at(9),
            closes: at(12),
        },
        OpeningInterval {
            day: Weekday::Monday,
            opens: at(13),
            closes: at(17),
        },
    ];
    let command = C::SetBusinessHours {
        time_zone: "Europe/Paris".into(),
        weekly: weekly.clone(),
        holidays: vec![],
    };
    let directory = given(organisation()).when(user(ADMIN), command).then(
        &streams::organisation(id(ORG)),
        vec![
            BusinessHoursSet {
                organisation_id: id(ORG),
                time_zone: "Europe/Paris".into(),
                weekly,
                holidays: vec![],
            }
            .into(),
        ],
    );
    assert_eq!(directory.organisation.unwrap().business_hours.len(), 2);

    let backwards = vec![OpeningInterval {
        day: Weekday::Tuesday,
        opens: at(17),
        closes: at(9),
    }];
    given(organisation())
        .when(
            user(ADMIN),
            C::SetBusinessHours {
                time_zone: "UTC".into(),
                weekly: backwards,
                holidays: vec![],
            },
        )
        .then_invalid("weekly");
    let overlapping = vec![
        OpeningInterval {
            day: Weekday::Friday,
            opens: at(9),
            closes: at(13),
        },
        OpeningInterval {
            day: Weekday::Friday,
            opens: at(12),
            closes: at(17),
        },
    ];
    given(organisation())
        .when(
            user(ADMIN),
            C::SetBusinessHours {
                time_zone: "UTC".into(),
                weekly: overlapping,
                holidays: vec![],
            },
        )
        .then_invalid("weekly");
    given(organisation())
        .when(
            user(AGENT),
            C::SetBusinessHours {
                time_zone: "UTC".into(),
                weekly: vec![],
                holidays: vec![],
            },
        )
        .then_forbidden();
}

#[test]
fn users_are_created_by_admins_with_unique_addresses() {
    let command = C::CreateUser {
        user_id: id(99),
        email: " Ada@Example.COM ".into(),
        name: "Ada".into(),
        role: Role::Agent,
    };
    let directory = given(organisation()).when(user(ADMIN), command).then(
        &streams::user(id(99)),
        vec![
            UserCreated {
                user_id: id(99),
                email: "ada@example.com".into(),
                name: "Ada".into(),
                role: Role::Agent,
                availability: Availability::Away,
            }
            .into(),
        ],
    );
    assert!(directory.user_by_email("ADA@example.com").is_some());

    let again = C::CreateUser {
        user_id: id(98),
        email: "user12@example.com".into(),
        name: "Twin".into(),
        role: Role::Agent,
    };
    given(organisation())
        .when(user(ADMIN), again)
        .then_rejected("TAKEN");
    let same_id = C::CreateUser {
        user_id: id(AGENT),
        email: "new@example.com".into(),
        name: "New".into(),
        role: Role::Agent,
    };
    given(organisation())
        .when(user(ADMIN), same_id)
        .then_rejected("ALREADY_EXISTS");
    let bad = C::CreateUser {
        user_id: id(97),
        email: "not-an-address".into(),
        name: "X".into(),
        role: Role::Agent,
    };
    given(organisation())
        .when(user(ADMIN), bad)
        .then_invalid("email");
    let by_agent = C::CreateUser {
        user_id: id(96),
        email: "x@example.com".into(),
        name: "X".into(),
        role: Role::Agent,
    };
    given(organisation())
        .when(user(AGENT), by_agent)
        .then_forbidden();
    let super_by_admin = C::CreateUser {
        user_id: id(95),
        email: "s@example.com".into(),
        name: "S".into(),
        role: Role::SuperAdmin,
    };
    given(organisation())
        .when(user(ADMIN), super_by_admin.clone())
        .then_forbidden();
    given(organisation())
        .when(user(SUPER), super_by_admin)
        .then(
            &streams::user(id(95)),
            vec![
                UserCreated {
                    user_id: id(95),
                    email: "s@example.com".into(),
                    name: "S".into(),
                    role: Role::SuperAdmin,
                    availability: Availability::Away,
                }
                .into(),
            ],
        );
    let by_auditor = C::CreateUser {
        user_id: id(94),
        email: "a@example.com".into(),
        name: "A".into(),
        role: Role::Agent,
    };
    given(organisation())
        .when(user(AUDITOR), by_auditor)
        .then_forbidden();
    let by_bot = C::CreateUser {
        user_id: id(93),
        email: "b@example.com".into(),
        name: "B".into(),
        role: Role::Agent,
    };
    given(organisation())
        .when(proto_events::Actor::Bot { id: id(5) }, by_bot)
        .then_forbidden();
}

#[test]
fn roles_change_under_the_super_admin_rules() {
    given(organisation())
        .when(
            user(ADMIN),
            C::ChangeRole {
                user_id: id(AGENT),
                role: Role::Analyst,
            },
        )
        .then(
            &streams::user(id(AGENT)),
            vec![
                UserRoleChanged {
                    user_id: id(AGENT),
                    role: Role::Analyst,
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::ChangeRole {
                user_id: id(AGENT),
                role: Role::SuperAdmin,
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(ADMIN),
            C::ChangeRole {
                user_id: id(SUPER),
                role: Role::Agent,
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(SUPER),
            C::ChangeRole {
                user_id: id(SUPER),
                role: Role::Admin,
            },
        )
        .then_rejected("LAST_SUPER_ADMIN");
    given(organisation())
        .when(
            user(ADMIN),
            C::ChangeRole {
                user_id: id(AGENT),
                role: Role::Agent,
            },
        )
        .then_rejected("UNCHANGED");
    given(organisation())
        .when(
            user(AGENT),
            C::ChangeRole {
                user_id: id(OUTSIDER),
                role: Role::Admin,
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(ADMIN),
            C::ChangeRole {
                user_id: id(404),
                role: Role::Agent,
            },
        )
        .then_error(DomainError::NotFound { what: "user" });
    // With a second super admin, one of them may step down.
    given(organisation())
        .and([UserRoleChanged {
            user_id: id(ADMIN),
            role: Role::SuperAdmin,
        }
        .into()])
        .when(
            user(SUPER),
            C::ChangeRole {
                user_id: id(SUPER),
                role: Role::Admin,
            },
        )
        .then(
            &streams::user(id(SUPER)),
            vec![
                UserRoleChanged {
                    user_id: id(SUPER),
                    role: Role::Admin,
                }
                .into(),
            ],
        );
}

#[test]
fn availability_is_set_by_the_user_or_an_admin() {
    given(organisation())
        .when(
            user(AGENT),
            C::SetAvailability {
                user_id: id(AGENT),
                availability: Availability::Away,
            },
        )
        .then(
            &streams::user(id(AGENT)),
            vec![
                UserAvailabilityChanged {
                    user_id: id(AGENT),
                    availability: Availability::Away,
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::SetAvailability {
                user_id: id(AGENT),
                availability: Availability::Away,
            },
        )
        .then(
            &streams::user(id(AGENT)),
            vec![
                UserAvailabilityChanged {
                    user_id: id(AGENT),
                    availability: Availability::Away,
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(OUTSIDER),
            C::SetAvailability {
                user_id: id(AGENT),
                availability: Availability::Away,
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(AGENT),
            C::SetAvailability {
                user_id: id(AGENT),
                availability: Availability::Available,
            },
        )
        .then_rejected("UNCHANGED");
    given(organisation())
        .when(
            user(ADMIN),
            C::SetAvailability {
                user_id: id(AUDITOR),
                availability: Availability::Away,
            },
        )
        .then_rejected("NOT_AN_AGENT");
}

#[test]
fn capacity_is_set_by_admins_and_is_positive() {
    given(organisation())
        .when(
            user(ADMIN),
            C::SetCapacity {
                user_id: id(AGENT),
                max_open_conversations: Some(5),
            },
        )
        .then(
            &streams::user(id(AGENT)),
            vec![
                UserCapacitySet {
                    user_id: id(AGENT),
                    max_open_conversations: Some(5),
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::SetCapacity {
                user_id: id(AGENT),
                max_open_conversations: Some(0),
            },
        )
        .then_invalid("maxOpenConversations");
    given(organisation())
        .when(
            user(AGENT),
            C::SetCapacity {
                user_id: id(AGENT),
                max_open_conversations: None,
            },
        )
        .then_forbidden();
}

#[test]
fn notification_preferences_belong_to_their_user() {
    let preferences = NotificationPreferencesChanged {
        user_id: id(AGENT),
        new_conversation_in_my_inboxes: false,
        assigned_to_me: true,
        new_message_on_my_conversations: true,
        mentioned_in_comment: true,
    };
    given(organisation())
        .when(
            user(AGENT),
            C::SetNotificationPreferences {
                preferences: preferences.clone(),
            },
        )
        .then(&streams::user(id(AGENT)), vec![preferences.clone().into()]);
    given(organisation())
        .when(
            user(OUTSIDER),
            C::SetNotificationPreferences { preferences },
        )
        .then_forbidden();
}

#[test]
fn teams_are_managed_by_admins() {
    given(organisation())
        .when(
            user(ADMIN),
            C::CreateTeam {
                team_id: id(21),
                name: "Support".into(),
            },
        )
        .then(
            &streams::team(id(21)),
            vec![
                TeamCreated {
                    team_id: id(21),
                    name: "Support".into(),
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::CreateTeam {
                team_id: id(21),
                name: "sales".into(),
            },
        )
        .then_rejected("TAKEN");
    given(organisation())
        .when(
            user(AGENT),
            C::CreateTeam {
                team_id: id(21),
                name: "X".into(),
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(ADMIN),
            C::RenameTeam {
                team_id: id(SALES_TEAM),
                name: "Deals".into(),
            },
        )
        .then(
            &streams::team(id(SALES_TEAM)),
            vec![
                TeamRenamed {
                    team_id: id(SALES_TEAM),
                    name: "Deals".into(),
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::RenameTeam {
                team_id: id(404),
                name: "X".into(),
            },
        )
        .then_error(DomainError::NotFound { what: "team" });
    let directory = given(organisation())
        .when(
            user(ADMIN),
            C::AddTeamMember {
                team_id: id(SALES_TEAM),
                user_id: id(OUTSIDER),
            },
        )
        .then(
            &streams::team(id(SALES_TEAM)),
            vec![
                TeamMemberAdded {
                    team_id: id(SALES_TEAM),
                    user_id: id(OUTSIDER),
                }
                .into(),
            ],
        );
    assert!(
        directory.can_see_inbox(id(OUTSIDER), id(SUPPORT)),
        "joining a member team gives access"
    );
    given(organisation())
        .when(
            user(ADMIN),
            C::AddTeamMember {
                team_id: id(SALES_TEAM),
                user_id: id(AGENT),
            },
        )
        .then_rejected("ALREADY_MEMBER");
    given(organisation())
        .when(
            user(ADMIN),
            C::AddTeamMember {
                team_id: id(SALES_TEAM),
                user_id: id(404),
            },
        )
        .then_error(DomainError::NotFound { what: "user" });
    let directory = given(organisation())
        .when(
            user(ADMIN),
            C::RemoveTeamMember {
                team_id: id(SALES_TEAM),
                user_id: id(AGENT),
            },
        )
        .then(
            &streams::team(id(SALES_TEAM)),
            vec![
                TeamMemberRemoved {
                    team_id: id(SALES_TEAM),
                    user_id: id(AGENT),
                }
                .into(),
            ],
        );
    assert!(
        !directory.can_see_inbox(id(AGENT), id(SUPPORT)),
        "leaving the team removes access"
    );
    given(organisation())
        .when(
            user(ADMIN),
            C::RemoveTeamMember {
                team_id: id(SALES_TEAM),
                user_id: id(OUTSIDER),
            },
        )
        .then_rejected("NOT_MEMBER");
}

#[test]
fn inboxes_are_managed_by_admins() {
    given(organisation())
        .when(
            user(ADMIN),
            C::CreateInbox {
                inbox_id: id(31),
                name: "Sales".into(),
            },
        )
        .then(
            &streams::inbox(id(31)),
            vec![
                InboxCreated {
                    inbox_id: id(31),
                    name: "Sales".into(),
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::CreateInbox {
                inbox_id: id(SUPPORT),
                name: "Again".into(),
            },
        )
        .then_rejected("ALREADY_EXISTS");
    given(organisation())
        .when(
            user(AGENT),
            C::CreateInbox {
                inbox_id: id(31),
                name: "Sales".into(),
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(ADMIN),
            C::RenameInbox {
                inbox_id: id(SUPPORT),
                name: "Help".into(),
            },
        )
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                InboxRenamed {
                    inbox_id: id(SUPPORT),
                    name: "Help".into(),
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::RenameInbox {
                inbox_id: id(SUPPORT),
                name: "".into(),
            },
        )
        .then_invalid("name");
    let member = Member::User { id: id(OUTSIDER) };
    let directory = given(organisation())
        .when(
            user(ADMIN),
            C::AddInboxMember {
                inbox_id: id(SUPPORT),
                member: member.clone(),
            },
        )
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                InboxMemberAdded {
                    inbox_id: id(SUPPORT),
                    member: member.clone(),
                }
                .into(),
            ],
        );
    assert!(directory.can_see_inbox(id(OUTSIDER), id(SUPPORT)));
    given(organisation())
        .when(
            user(ADMIN),
            C::AddInboxMember {
                inbox_id: id(SUPPORT),
                member: Member::Team { id: id(SALES_TEAM) },
            },
        )
        .then_rejected("ALREADY_MEMBER");
    given(organisation())
        .when(
            user(ADMIN),
            C::AddInboxMember {
                inbox_id: id(SUPPORT),
                member: Member::Team { id: id(404) },
            },
        )
        .then_error(DomainError::NotFound { what: "team" });
    given(organisation())
        .when(
            user(ADMIN),
            C::RemoveInboxMember {
                inbox_id: id(SUPPORT),
                member: Member::Team { id: id(SALES_TEAM) },
            },
        )
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                InboxMemberRemoved {
                    inbox_id: id(SUPPORT),
                    member: Member::Team { id: id(SALES_TEAM) },
                }
                .into(),
            ],
        );
    given(organisation())
        .when(
            user(ADMIN),
            C::RemoveInboxMember {
                inbox_id: id(SUPPORT),
                member,
            },
        )
        .then_rejected("NOT_MEMBER");
}

#[test]
fn inbox_restriction_hides_the_inbox_from_members_outside_the_teams() {
    let history = organisation().into_iter().chain([
        TeamCreated {
            team_id: id(22),
            name: "Billing".into(),
        }
        .into(),
        InboxMemberAdded {
            inbox_id: id(SUPPORT),
            member: Member::User { id: id(OUTSIDER) },
        }
        .into(),
    ]);
    let history: Vec<_> = history.collect();
    assert!(directory(&history).can_see_inbox(id(OUTSIDER), id(SUPPORT)));
    let directory = given(history.clone())
        .when(
            user(ADMIN),
            C::RestrictInbox {
                inbox_id: id(SUPPORT),
                team_ids: vec![id(SALES_TEAM), id(SALES_TEAM)],
            },
        )
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                InboxRestricted {
                    inbox_id: id(SUPPORT),
                    team_ids: vec![id(SALES_TEAM)],
                }
                .into(),
            ],
        );
    assert!(
        directory.can_see_inbox(id(AGENT), id(SUPPORT)),
        "a member in the team still sees it"
    );
    assert!(
        !directory.can_see_inbox(id(OUTSIDER), id(SUPPORT)),
        "a member outside the teams no longer does"
    );
    assert!(
        directory.can_see_inbox(id(ADMIN), id(SUPPORT)),
        "admins always do"
    );
    given(history.clone())
        .when(
            user(ADMIN),
            C::RestrictInbox {
                inbox_id: id(SUPPORT),
                team_ids: vec![],
            },
        )
        .then_invalid("teamIds");
    given(history.clone())
        .when(
            user(ADMIN),
            C::RestrictInbox {
                inbox_id: id(SUPPORT),
                team_ids: vec![id(404)],
            },
        )
        .then_error(DomainError::NotFound { what: "team" });
    given(history.clone())
        .when(
            user(ADMIN),
            C::LiftInboxRestriction {
                inbox_id: id(SUPPORT),
            },
        )
        .then_rejected("NOT_RESTRICTED");
    let directory = given(history)
        .and([InboxRestricted {
            inbox_id: id(SUPPORT),
            team_ids: vec![id(22)],
        }
        .into()])
        .when(
            user(ADMIN),
            C::LiftInboxRestriction {
                inbox_id: id(SUPPORT),
            },
        )
        .then(
            &streams::inbox(id(SUPPORT)),
            vec![
                InboxRestrictionLifted {
                    inbox_id: id(SUPPORT),
                }
                .into(),
            ],
        );
    assert!(directory.can_see_inbox(id(OUTSIDER), id(SUPPORT)));
}

#[test]
fn inbox_retention_is_set_and_cleared_by_admins_within_bounds() {
    let set = |days: Option<u32>| C::SetInboxRetention {
        inbox_id: id(SUPPORT),
        closed_days: days,
    };
    let directory = given(organisation()).when(user(ADMIN), set(Some(30))).then(
        &streams::inbox(id(SUPPORT)),
        vec![
            InboxRetentionSet {
                inbox_id: id(SUPPORT),
                closed_days: Some(30),
            }
            .into(),
        ],
    );
    assert_eq!(directory.inboxes[&id(SUPPORT)].retention_days, Some(30));
    assert_eq!(
        directory.inboxes[&id(SUPPORT)].restricted_to,
        None,
        "nothing else of the inbox changes"
    );
    given(organisation()).when(system(), set(Some(3650))).then(
        &streams::inbox(id(SUPPORT)),
        vec![
            InboxRetentionSet {
                inbox_id: id(SUPPORT),
                closed_days: Some(3650),
            }
            .into(),
        ],
    );

    let retained = || {
        given(organisation()).and([InboxRetentionSet {
            inbox_id: id(SUPPORT),
            closed_days: Some(30),
        }
        .into()])
    };
    let cleared = retained().when(user(ADMIN), set(None)).then(
        &streams::inbox(id(SUPPORT)),
        vec![
            InboxRetentionSet {
                inbox_id: id(SUPPORT),
                closed_days: None,
            }
            .into(),
        ],
    );
    assert_eq!(cleared.inboxes[&id(SUPPORT)].retention_days, None);

    // The same value again writes nothing: refused as unchanged, like a role or availability.
    retained()
        .when(user(ADMIN), set(Some(30)))
        .then_rejected("UNCHANGED");
    given(organisation())
        .when(user(ADMIN), set(None))
        .then_rejected("UNCHANGED");

    for days in [0, 3651, u32::MAX] {
        given(organisation())
            .when(user(ADMIN), set(Some(days)))
            .then_invalid("closedDays");
    }
    for who in [AGENT, AUDITOR, OUTSIDER] {
        given(organisation())
            .when(user(who), set(Some(30)))
            .then_forbidden();
    }
    given(organisation())
        .when(
            user(ADMIN),
            C::SetInboxRetention {
                inbox_id: id(404),
                closed_days: Some(30),
            },
        )
        .then_error(DomainError::NotFound { what: "inbox" });
}

#[test]
fn bots_are_registered_by_admins_once_under_a_free_name() {
    use proto_events::event::BotCreated;
    let created = given(organisation())
        .when(
            user(ADMIN),
            C::CreateBot {
                bot_id: id(31),
                name: "Greeter".into(),
            },
        )
        .then(
            &streams::bot(id(31)),
            vec![
                BotCreated {
                    bot_id: id(31),
                    name: "Greeter".into(),
                }
                .into(),
            ],
        );
    assert_eq!(
        created.bots.get(&id(31)).map(String::as_str),
        Some("Greeter")
    );
    given(organisation())
        .when(
            user(AGENT),
            C::CreateBot {
                bot_id: id(31),
                name: "Mine".into(),
            },
        )
        .then_forbidden();
    given(organisation())
        .when(
            user(ADMIN),
            C::CreateBot {
                bot_id: id(31),
                name: "  ".into(),
            },
        )
        .then_error(DomainError::Invalid {
            field: "name".into(),
            message: "must not be empty".into(),
        });
}

fn deactivated(n: u128, by: Actor) -> DomainEvent {
    UserDeactivated {
        user_id: id(n),
        by,
        at: now(),
    }
    .into()
}

#[test]
fn an_admin_deactivates_and_reactivates_a_user() {
    let directory = given(organisation())
        .when(user(ADMIN), C::DeactivateUser { user_id: id(AGENT) })
        .then(
            &streams::user(id(AGENT)),
            vec![deactivated(AGENT, user(ADMIN))],
        );
    let agent = directory.user(id(AGENT)).unwrap();
    assert!(!agent.active);
    // Every token issued up to the deactivation's second is refused; later ones too, while
    // deactivated.
    assert!(!agent.accepts_token_issued_at(now().timestamp() + 60));
    given(organisation())
        .and([deactivated(AGENT, user(ADMIN))])
        .when(user(ADMIN), C::DeactivateUser { user_id: id(AGENT) })
        .then_rejected("UNCHANGED");
    let directory = given(organisation())
        .and([deactivated(AGENT, user(ADMIN))])
        .when(user(SUPER), C::ReactivateUser { user_id: id(AGENT) })
        .then(
            &streams::user(id(AGENT)),
            vec![
                UserReactivated {
                    user_id: id(AGENT),
                    by: user(SUPER),
                }
                .into(),
            ],
        );
    let agent = directory.user(id(AGENT)).unwrap();
    assert!(agent.active);
    // Tokens from before the deactivation stay refused; new ones are honoured (it happened on
    // a whole second, so a token of that second was issued after it).
    assert!(!agent.accepts_token_issued_at(now().timestamp() - 1));
    assert!(agent.accepts_token_issued_at(now().timestamp()));
    // A cut-off within a second refuses the tokens of that whole second.
    let mut later = agent.clone();
    later.tokens_not_before = Some(now() + chrono::TimeDelta::milliseconds(400));
    assert!(!later.accepts_token_issued_at(now().timestamp()));
    assert!(later.accepts_token_issued_at(now().timestamp() + 1));
    given(organisation())
        .when(user(ADMIN), C::ReactivateUser { user_id: id(AGENT) })
        .then_rejected("UNCHANGED");
}

#[test]
fn only_admins_deactivate_and_only_super_admins_deactivate_super_admins() {
    for who in [AGENT, AUDITOR] {
        given(organisation())
            .when(
                user(who),
                C::DeactivateUser {
                    user_id: id(OUTSIDER),
                },
            )
            .then_forbidden();
    }
    given(organisation())
        .and([created_user(15, Role::SuperAdmin)])
        .when(user(ADMIN), C::DeactivateUser { user_id: id(15) })
        .then_forbidden();
    given(organisation())
        .and([
            created_user(15, Role::SuperAdmin),
            deactivated(15, user(SUPER)),
        ])
        .when(user(ADMIN), C::ReactivateUser { user_id: id(15) })
        .then_forbidden();
    given(organisation())
        .when(user(ADMIN), C::DeactivateUser { user_id: id(99) })
        .then_error(DomainError::NotFound { what: "user" });
}

#[test]
fn nobody_deactivates_themselves_nor_the_last_active_admin() {
    given(organisation())
        .when(user(ADMIN), C::DeactivateUser { user_id: id(ADMIN) })
        .then_rejected("SELF");
    // The only super admin, by the system (the command line): refused, an admin remains but
    // could no longer manage super admins.
    given(organisation())
        .when(system(), C::DeactivateUser { user_id: id(SUPER) })
        .then_rejected("LAST_SUPER_ADMIN");
    // With a second super admin deactivated, the first is still the last active one.
    given(organisation())
        .and([
            created_user(15, Role::SuperAdmin),
            deactivated(15, user(SUPER)),
        ])
        .when(system(), C::DeactivateUser { user_id: id(SUPER) })
        .then_rejected("LAST_SUPER_ADMIN");
    // The last active admin (the super admin gone): refused.
    given(organisation())
        .and([
            created_user(15, Role::SuperAdmin),
            deactivated(SUPER, user(15)),
        ])
        .when(user(15), C::DeactivateUser { user_id: id(ADMIN) })
        .then(
            &streams::user(id(ADMIN)),
            vec![deactivated(ADMIN, user(15))],
        );
    given(organisation())
        .and([
            created_user(15, Role::SuperAdmin),
            deactivated(SUPER, user(15)),
            deactivated(ADMIN, user(15)),
            UserRoleChanged {
                user_id: id(15),
                role: Role::Admin,
            }
            .into(),
        ])
        .when(system(), C::DeactivateUser { user_id: id(15) })
        .then_rejected("LAST_ADMIN");
    // Nor is the last active super admin demoted while another, deactivated, remains.
    given(organisation())
        .and([
            created_user(15, Role::SuperAdmin),
            deactivated(15, user(SUPER)),
        ])
        .when(
            system(),
            C::ChangeRole {
                user_id: id(SUPER),
                role: Role::Admin,
            },
        )
        .then_rejected("LAST_SUPER_ADMIN");
}

#[test]
fn users_revoke_their_own_tokens_and_admins_anyones() {
    let revoked = |n: u128, by: Actor| -> DomainEvent {
        UserTokensRevoked {
            user_id: id(n),
            by,
            not_before: now(),
        }
        .into()
    };
    // Auditors too: revoking writes nothing about conversations.
    let directory = given(organisation())
        .when(
            user(AUDITOR),
            C::RevokeTokens {
                user_id: id(AUDITOR),
            },
        )
        .then(
            &streams::user(id(AUDITOR)),
            vec![revoked(AUDITOR, user(AUDITOR))],
        );
    let auditor = directory.user(id(AUDITOR)).unwrap();
    assert!(auditor.active);
    assert!(!auditor.accepts_token_issued_at(now().timestamp() - 3_600));
    assert!(auditor.accepts_token_issued_at(now().timestamp() + 1));
    given(organisation())
        .when(user(ADMIN), C::RevokeTokens { user_id: id(AGENT) })
        .then(&streams::user(id(AGENT)), vec![revoked(AGENT, user(ADMIN))]);
    given(organisation())
        .when(
            user(AGENT),
            C::RevokeTokens {
                user_id: id(OUTSIDER),
            },
        )
        .then_forbidden();
    given(organisation())
        .when(user(ADMIN), C::RevokeTokens { user_id: id(SUPER) })
        .then_forbidden();
}
