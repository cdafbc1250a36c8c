//! A command service on a fresh embedded store, with an organisation and an admin.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proto_events::Actor;
use proto_events::clock::ManualClock;
use proto_events::event::Role;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;
use uuid::Uuid;

pub(crate) const ADMIN: Uuid = Uuid::from_u128(11);

pub(crate) fn system() -> Actor {
    Actor::System {
        component: "test".into(),
    }
}

pub(crate) fn admin() -> Actor {
    Actor::User { id: ADMIN }
}

pub(crate) struct App {
    pub(crate) dir: TempDir,
    pub(crate) store: SqliteStore,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) service: CommandService,
}

pub(crate) async fn service_on(dir: TempDir, clock: Arc<ManualClock>) -> App {
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let service = CommandService::open(
        Arc::new(store.clone()) as Arc<dyn EventStore>,
        clock.clone(),
    )
    .await
    .unwrap();
    App {
        dir,
        store,
        clock,
        service,
    }
}

/// A fresh store with an organisation and one admin, set up by the system actor.
pub(crate) async fn app() -> App {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ));
    let app = service_on(tempfile::tempdir().unwrap(), clock).await;
    let setup = [
        SetupCommand::CreateOrganisation {
            organisation_id: Uuid::from_u128(1),
            name: "Acme".into(),
            time_zone: "Europe/Paris".into(),
        },
        SetupCommand::CreateUser {
            user_id: ADMIN,
            email: "admin@acme.test".into(),
            name: "Admin".into(),
            role: Role::Admin,
        },
    ];
    for command in setup {
        app.service
            .execute(CommandMeta::by(system()), Command::Setup(command))
            .await
            .unwrap();
    }
    app
}
