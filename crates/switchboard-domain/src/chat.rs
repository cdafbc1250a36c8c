//! Website chat: what a chat channel's widget may be configured with ([`configured`], behind
//! `ChannelCommand::ConfigureChatWidget`) and whether the team can answer now ([`status`], which
//! the widget shows visitors).
//!
//! Decisions:
//! - The widget's public key is drawn once and kept when the widget is configured again, so
//!   pages that embed it keep working (as a form's).
//! - Allowed origins follow the form's rules (`https://host[:port]`, plain `http` only for
//!   `localhost`). An empty list lets no page run the widget: a chat channel hands out visitor
//!   identities, and a widget any site could embed would let any site open conversations in the
//!   company's name.
//! - "Someone is available" means: the organisation is open now (its business hours, holidays
//!   included; an organisation without hours is always open) and an active user who may write,
//!   member of the channel's inbox directly or through a team, is set available. Nobody
//!   available is not a refusal: visitors may still write, and the widget asks for an e-mail
//!   address so the answer can reach them.

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;
use proto_events::event::{Availability, ChatWidgetConfigured};
use uuid::Uuid;

use crate::DomainError;
use crate::directory::{Directory, Organisation};
use crate::form;

/// Longest team name shown by the widget.
pub const MAX_TEAM_NAME: usize = 100;
/// Longest reply-time wording.
pub const MAX_EXPECTED_REPLY: usize = 200;

/// What a chat widget is to be configured with, as `ChannelCommand::ConfigureChatWidget`
/// carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatWidgetSettings {
    /// Origins whose pages may run the widget.
    pub allowed_origins: Vec<String>,
    /// The name the widget shows.
    pub team_name: String,
    /// The reply-time wording while someone is available; `None` or blank: the widget's own.
    pub expected_reply: Option<String>,
}

/// The event configuring `channel_id`'s widget with `settings`, checked and normalised.
/// `current_key` is the widget's key if it has one (kept); otherwise `new_key` becomes its key.
/// Errors name the input field (`teamName`, `allowedOrigins.1`).
pub fn configured(
    channel_id: Uuid,
    current_key: Option<&str>,
    new_key: &str,
    settings: &ChatWidgetSettings,
) -> Result<ChatWidgetConfigured, DomainError> {
    let public_key = form::public_key(current_key, new_key)?;
    let allowed_origins = form::allowed_origins(&settings.allowed_origins)?;
    let team_name = form::text(&settings.team_name, MAX_TEAM_NAME)
        .map_err(|m| DomainError::invalid("teamName", m))?;
    let expected_reply = match settings.expected_reply.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(wording) => Some(
            form::text(wording, MAX_EXPECTED_REPLY)
                .map_err(|m| DomainError::invalid("expectedReply", m))?,
        ),
    };
    Ok(ChatWidgetConfigured {
        channel_id,
        public_key,
        allowed_origins,
        team_name,
        expected_reply,
    })
}

/// Whether the team behind a chat channel can answer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The organisation is within its business hours (always, without hours).
    pub open: bool,
    /// Open, and a member of the inbox is available.
    pub available: bool,
}

/// Whether the team of `inbox_id` can answer at `now`.
pub fn status(directory: &Directory, inbox_id: Uuid, now: DateTime<Utc>) -> Status {
    let open = directory
        .organisation
        .as_ref()
        .is_none_or(|org| is_open(org, now));
    let someone = directory.inboxes.get(&inbox_id).is_some_and(|inbox| {
        directory.users.values().any(|user| {
            user.active
                && user.can_write()
                && user.availability == Availability::Available
                && (inbox.member_users.contains(&user.id)
                    || user.teams.iter().any(|t| inbox.member_teams.contains(t)))
        })
    });
    Status {
        open,
        available: open && someone,
    }
}

/// Whether `now` falls inside the organisation's opening hours and not on one of its holidays
/// (in the hours' time zone). An interval whose closing time is not after its opening time runs
/// past midnight into the next day; the holiday of the day it opened on closes all of it.
pub fn is_open(org: &Organisation, now: DateTime<Utc>) -> bool {
    if org.business_hours.is_empty() {
        return true;
    }
    let Ok(tz) = org.business_hours_time_zone.parse::<Tz>() else {
        return true;
    };
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    let time = local.time();
    let yesterday = today - Duration::days(1);
    let holiday = |date| org.holidays.iter().any(|h| h.date == date);
    org.business_hours.iter().any(|interval| {
        let day = chrono::Weekday::from(interval.day);
        let overnight = interval.closes <= interval.opens;
        let opened_today = day == today.weekday()
            && time >= interval.opens
            && (overnight || time < interval.closes)
            && !holiday(today);
        let from_yesterday = overnight
            && day == yesterday.weekday()
            && time < interval.closes
            && !holiday(yesterday);
        opened_today || from_yesterday
    })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeZone};
    use proto_events::event::{Holiday, OpeningInterval, Weekday};

    use super::*;

    fn org(hours: Vec<OpeningInterval>, holidays: Vec<Holiday>) -> Organisation {
        Organisation {
            id: Uuid::nil(),
            name: "Acme".into(),
            time_zone: "Europe/Paris".into(),
            business_hours: hours,
            business_hours_time_zone: "Europe/Paris".into(),
            holidays,
        }
    }

    fn at(h: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default()
    }

    #[test]
    fn opening_hours_in_their_time_zone_with_holidays_and_overnight_intervals() {
        let hours = vec![
            OpeningInterval {
                day: Weekday::Monday,
                opens: at(9),
                closes: at(17),
            },
            OpeningInterval {
                day: Weekday::Friday,
                opens: at(22),
                closes: at(2),
            },
        ];
        let o = org(hours.clone(), Vec::new());
        // Monday 7 December 2026, 08:30 UTC is 09:30 in Paris.
        assert!(is_open(
            &o,
            Utc.with_ymd_and_hms(2026, 12, 7, 8, 30, 0).unwrap()
        ));
        assert!(!is_open(
            &o,
            Utc.with_ymd_and_hms(2026, 12, 7, 7, 30, 0).unwrap()
        ));
        assert!(!is_open(
            &o,
            Utc.with_ymd_and_hms(2026, 12, 7, 16, 30, 0).unwrap()
        ));
        // Saturday 01:00 in Paris continues Friday's night interval.
        assert!(is_open(
            &o,
            Utc.with_ymd_and_hms(2026, 12, 12, 0, 0, 0).unwrap()
        ));
        assert!(!is_open(
            &o,
            Utc.with_ymd_and_hms(2026, 12, 12, 2, 0, 0).unwrap()
        ));
        let closed = org(
            hours,
            vec![Holiday {
                date: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap_or_default(),
                name: "Closed".into(),
            }],
        );
        assert!(!is_open(
            &closed,
            Utc.with_ymd_and_hms(2026, 12, 7, 8, 30, 0).unwrap()
        ));
        assert!(is_open(&org(Vec::new(), Vec::new()), Utc::now()));
    }
}
