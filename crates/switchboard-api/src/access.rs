//! What the viewer may see, computed from the directory once per viewer and directory position
//! (`crate::state::access` keeps it while the directory has not moved).
//!
//! The rules are the write side's (`switchboard_domain::directory`): admins and super admins see
//! every inbox and private conversation; auditors and analysts read every inbox but not private
//! conversations; agents see the inboxes they are members of, minus those restricted to teams
//! they are not in; a private conversation (a user's own e-mail account, not shared) is seen by
//! its owner and admins only. Everything the API returns is filtered through [`Access`]: lists,
//! lookups by id, subscriptions, analytics and the audit trail.

use std::collections::HashSet;

use proto_events::event::Role;
use switchboard_domain::directory::Directory;
use switchboard_projector::Scope;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The viewer's access, as of one directory snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    /// The viewer.
    pub(crate) user_id: Uuid,
    /// Their role.
    pub(crate) role: Role,
    /// The inboxes they see.
    pub(crate) inboxes: HashSet<Uuid>,
    /// Whether they see every inbox (then `inboxes` holds all of them).
    pub(crate) all_inboxes: bool,
}

impl Access {
    /// The access of `user_id` in `directory`; UNAUTHENTICATED if the user does not exist.
    pub(crate) fn of(directory: &Directory, user_id: Uuid) -> ApiResult<Access> {
        let user = directory.user(user_id).ok_or_else(|| {
            ApiError::Unauthenticated("the token's user does not exist".to_owned())
        })?;
        let inboxes: HashSet<Uuid> = directory
            .inboxes
            .keys()
            .copied()
            .filter(|inbox| directory.can_see_inbox(user_id, *inbox))
            .collect();
        Ok(Access {
            user_id,
            role: user.role,
            all_inboxes: inboxes.len() == directory.inboxes.len(),
            inboxes,
        })
    }

    /// Admins and super admins.
    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin | Role::SuperAdmin)
    }

    /// Whether the viewer sees `inbox_id`.
    pub(crate) fn inbox(&self, inbox_id: Uuid) -> bool {
        self.inboxes.contains(&inbox_id)
    }

    /// Whether the viewer sees a conversation of `inbox_id` whose private owner is
    /// `private_owner`.
    pub(crate) fn conversation(&self, inbox_id: Uuid, private_owner: Option<Uuid>) -> bool {
        match private_owner {
            Some(owner) => owner == self.user_id || self.is_admin(),
            None => self.inbox(inbox_id),
        }
    }

    /// Whether the viewer sees every conversation (no filtering needed).
    pub(crate) fn sees_everything(&self) -> bool {
        self.all_inboxes && self.is_admin()
    }

    /// The same rules as a read-model [`Scope`], for queries that filter in SQL.
    pub(crate) fn scope(&self) -> Scope {
        if self.sees_everything() {
            return Scope::Everything;
        }
        Scope::Limited {
            inboxes: (!self.all_inboxes).then(|| {
                let mut ids: Vec<Uuid> = self.inboxes.iter().copied().collect();
                ids.sort_unstable();
                ids
            }),
            viewer: self.user_id,
            every_private: self.is_admin(),
        }
    }

    /// FORBIDDEN unless the viewer has one of `roles`.
    pub(crate) fn require(&self, roles: &[Role], what: &str) -> ApiResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{what} is not available to your role"
            )))
        }
    }
}

/// Event types only admins read in the raw history and the audit trail: an e-mail channel's
/// servers (hosts and logins of users' private accounts), which only those who manage the
/// channel see through `Channel.imap` and `Channel.smtp` either; a Messenger page's settings
/// (which sealed token it sends with), which only admins set.
pub(crate) const ADMINS_ONLY: [&str; 2] = ["EmailServersSet", "MessengerPageSet"];
