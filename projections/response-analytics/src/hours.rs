//! The organisation's opening hours, and how much of an interval falls inside them.
//!
//! Business time is computed at query time from the schedule stored now, never frozen into
//! rows, so a new `BusinessHoursSet` (other hours, another time zone) recomputes the past.

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc, Weekday,
};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension};

/// The opening hours in force: the last `BusinessHoursSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The IANA time zone the schedule is written in.
    pub time_zone: Tz,
    /// Opening intervals: the local day they start on, opening and closing local time. If
    /// `closes` is not after `opens` the interval runs past midnight.
    pub weekly: Vec<(Weekday, NaiveTime, NaiveTime)>,
    /// Local dates on which no interval starts.
    pub holidays: Vec<NaiveDate>,
}

fn conversion_error(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

/// An invalid value stored by the fold (a time zone this build of chrono-tz does not know).
#[derive(Debug)]
struct InvalidValue(String);

impl std::fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid stored value: {}", self.0)
    }
}

impl std::error::Error for InvalidValue {}

impl Schedule {
    /// The schedule stored in the read model; `None` if no `BusinessHoursSet` was applied.
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Option<Schedule>> {
        let Some(zone) = conn
            .query_row(
                "SELECT time_zone FROM business_hours WHERE id = 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let time_zone: Tz = zone
            .parse()
            .map_err(|_| conversion_error(InvalidValue(zone.clone())))?;
        let mut stmt = conn.prepare(
            "SELECT day, opens, closes FROM opening_intervals ORDER BY day, opens, closes",
        )?;
        let weekly = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, u8>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .map(|row| {
                let (day, opens, closes) = row?;
                let day = Weekday::try_from(day).map_err(conversion_error)?;
                let opens =
                    NaiveTime::parse_from_str(&opens, "%H:%M:%S").map_err(conversion_error)?;
                let closes =
                    NaiveTime::parse_from_str(&closes, "%H:%M:%S").map_err(conversion_error)?;
                Ok((day, opens, closes))
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut stmt = conn.prepare("SELECT date FROM holidays ORDER BY date")?;
        let holidays = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .map(|row| NaiveDate::parse_from_str(&row?, "%Y-%m-%d").map_err(conversion_error))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Schedule {
            time_zone,
            weekly,
            holidays,
        }))
    }

    /// The instant a local wall-clock time denotes: the earlier of two in a DST fold, and the
    /// first valid instant after a DST gap.
    fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        // A gap is at most a few hours; step forward minute by minute until time exists again.
        for _ in 0..(26 * 60) {
            match self.time_zone.from_local_datetime(&probe) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
        local.and_utc()
    }

    /// Whole seconds of `[start, end)` inside opening hours.
    pub fn business_seconds(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
        if end <= start || self.weekly.is_empty() {
            return 0;
        }
        let first = start.with_timezone(&self.time_zone).date_naive() - Days::new(1);
        let last = end.with_timezone(&self.time_zone).date_naive();
        let mut micros = 0i64;
        let mut day = first;
        while day <= last {
            if !self.holidays.contains(&day) {
                for &(weekday, opens, closes) in &self.weekly {
                    if day.weekday() != weekday {
                        continue;
                    }
                    let close_day = if closes > opens {
                        day
                    } else {
                        day + Days::new(1)
                    };
                    let open_at = self.instant(day.and_time(opens));
                    let close_at = self.instant(close_day.and_time(closes));
                    let from = open_at.max(start);
                    let to = close_at.min(end);
                    if to > from {
                        micros += (to - from).num_microseconds().unwrap_or(0);
                    }
                }
            }
            day = day + Days::new(1);
        }
        micros.div_euclid(1_000_000)
    }
}
