//! Every projector the product runs, in one list.
//!
//! The projector crates never depend on each other, so something above them has to name them
//! all; the server, the CLI and the benchmarks take the list from here, so a new read model is
//! added in one place.

use std::sync::Arc;

use switchboard_projector::Projector;

/// Every projector, in the order they are started and rebuilt.
pub fn all() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(thread_view::ThreadView),
        Arc::new(contact_sidebar::ContactSidebar),
        Arc::new(response_analytics::ResponseAnalytics),
        Arc::new(audit_trail::AuditTrail),
    ]
}
