//! The access rules of the directory, role by role.

use proto_events::event::{ChannelConfig, ChannelConnected, EmailAccess};

use crate::support::*;

#[test]
fn agents_see_only_inboxes_they_are_members_of() {
    let d = directory(&organisation());
    assert!(
        d.can_see_inbox(id(AGENT), id(SUPPORT)),
        "member through the Sales team"
    );
    assert!(!d.can_see_inbox(id(OUTSIDER), id(SUPPORT)), "not a member");
    assert!(d.can_see_inbox(id(ADMIN), id(SUPPORT)));
    assert!(d.can_see_inbox(id(SUPER), id(SUPPORT)));
    assert!(
        d.can_see_inbox(id(AUDITOR), id(SUPPORT)),
        "auditors read everything"
    );
    assert!(
        !d.can_see_inbox(id(404), id(SUPPORT)),
        "unknown users see nothing"
    );
    assert!(
        !d.can_see_inbox(id(ADMIN), id(404)),
        "unknown inboxes are not seen"
    );
    let agents: Vec<_> = d.inbox_agents(id(SUPPORT)).iter().map(|u| u.id).collect();
    assert_eq!(
        agents,
        vec![id(SUPER), id(ADMIN), id(AGENT)],
        "workers: writers who see it, auditors excluded"
    );
}

#[test]
fn private_email_conversations_are_the_owners_and_admins() {
    let mut history = organisation();
    history.push(
        ChannelConnected {
            channel_id: id(40),
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
    let d = directory(&history);
    let owner = d.channels[&id(40)].private_owner();
    assert_eq!(owner, Some(id(AGENT)));
    assert!(d.can_see_conversation(id(AGENT), id(SUPPORT), owner));
    assert!(d.can_see_conversation(id(ADMIN), id(SUPPORT), owner));
    assert!(!d.can_see_conversation(id(OUTSIDER), id(SUPPORT), owner));
    assert!(
        !d.can_see_conversation(id(AUDITOR), id(SUPPORT), owner),
        "private means owner and admins only"
    );
    assert!(d.can_see_conversation(id(AUDITOR), id(SUPPORT), None));
}
