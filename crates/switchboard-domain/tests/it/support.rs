//! Given / when / then for deciders, and a small organisation to start from.

use chrono::{DateTime, TimeZone, Utc};
use proto_events::event::{
    InboxCreated, InboxMemberAdded, Member, OrganisationCreated, Role, TeamCreated,
    TeamMemberAdded, UserCreated,
};
use proto_events::{Actor, DomainEvent};
use switchboard_domain::DomainError;
use switchboard_domain::directory::Directory;
use switchboard_domain::setup::{self, Decision, SetupCommand};
use uuid::Uuid;

/// Fixed ids, so failures are readable and tests deterministic.
pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub(crate) const ORG: u128 = 1;
pub(crate) const SUPER: u128 = 10;
pub(crate) const ADMIN: u128 = 11;
pub(crate) const AGENT: u128 = 12;
pub(crate) const OUTSIDER: u128 = 13;
pub(crate) const AUDITOR: u128 = 14;
pub(crate) const SALES_TEAM: u128 = 20;
pub(crate) const SUPPORT: u128 = 30;

/// When commands are decided.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 17, 30, 0)
        .single()
        .expect("a valid time")
}

pub(crate) fn user(n: u128) -> Actor {
    Actor::User { id: id(n) }
}

pub(crate) fn system() -> Actor {
    Actor::System {
        component: "test".into(),
    }
}

pub(crate) fn created_user(n: u128, role: Role) -> DomainEvent {
    UserCreated {
        user_id: id(n),
        email: format!("user{n}@example.com"),
        name: format!("User {n}"),
        role,
        availability: proto_events::event::Availability::Available,
    }
    .into()
}

/// An organisation with a super admin, an admin, two agents (one in the Sales team), an auditor,
/// and a Support inbox whose only member is the Sales team.
pub(crate) fn organisation() -> Vec<DomainEvent> {
    vec![
        OrganisationCreated {
            organisation_id: id(ORG),
            name: "Acme".into(),
            time_zone: "Europe/Paris".into(),
        }
        .into(),
        created_user(SUPER, Role::SuperAdmin),
        created_user(ADMIN, Role::Admin),
        created_user(AGENT, Role::Agent),
        created_user(OUTSIDER, Role::Agent),
        created_user(AUDITOR, Role::Auditor),
        TeamCreated {
            team_id: id(SALES_TEAM),
            name: "Sales".into(),
        }
        .into(),
        TeamMemberAdded {
            team_id: id(SALES_TEAM),
            user_id: id(AGENT),
        }
        .into(),
        InboxCreated {
            inbox_id: id(SUPPORT),
            name: "Support".into(),
        }
        .into(),
        InboxMemberAdded {
            inbox_id: id(SUPPORT),
            member: Member::Team { id: id(SALES_TEAM) },
        }
        .into(),
    ]
}

pub(crate) fn directory(events: &[DomainEvent]) -> Directory {
    let mut directory = Directory::default();
    for event in events {
        directory.evolve(event);
    }
    directory
}

/// A setup scenario: history, then one command.
pub(crate) struct Scenario {
    history: Vec<DomainEvent>,
}

pub(crate) fn given(history: Vec<DomainEvent>) -> Scenario {
    Scenario { history }
}

impl Scenario {
    pub(crate) fn and(mut self, more: impl IntoIterator<Item = DomainEvent>) -> Scenario {
        self.history.extend(more);
        self
    }

    pub(crate) fn when(self, actor: Actor, command: SetupCommand) -> Outcome {
        let directory = directory(&self.history);
        Outcome {
            result: setup::decide(&directory, &actor, &command, now()),
            directory,
        }
    }
}

pub(crate) struct Outcome {
    result: Result<Decision, DomainError>,
    directory: Directory,
}

impl Outcome {
    /// Expects exactly these events on this stream, and returns the directory after them.
    pub(crate) fn then(self, stream: &str, events: Vec<DomainEvent>) -> Directory {
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

    pub(crate) fn then_error(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    pub(crate) fn then_rejected(self, expected_code: &str) {
        match self.result {
            Err(DomainError::Rejected { code, .. }) => assert_eq!(code, expected_code),
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
