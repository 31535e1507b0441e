//! When a monitor runs: every N seconds (ticks at whole multiples of N since the epoch, so every
//! server computes the same ones) or on a cron pattern (croner: five fields, or six with seconds).

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use mlops_core::ToolError;

/// The shortest interval a monitor may run at.
const MIN_SECONDS: u64 = 1;

/// A monitor's schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(u64),
    Cron(Box<Cron>),
}

impl Schedule {
    /// One of `every_seconds` or `cron`.
    pub fn parse(every_seconds: Option<u64>, cron: Option<&str>) -> Result<Self, ToolError> {
        match (every_seconds, cron) {
            (Some(s), None) if s >= MIN_SECONDS => Ok(Schedule::Every(s)),
            (Some(s), None) => Err(ToolError::validation(format!(
                "every_seconds must be at least {MIN_SECONDS}; got {s}"
            ))),
            (None, Some(pattern)) => Cron::from_str(pattern).map(|c| Schedule::Cron(Box::new(c))).map_err(|e| {
                ToolError::validation(format!(
                    "cron `{pattern}` is not a cron pattern ({e}); e.g. `0 * * * *` for every hour, `*/15 * * * *` for every 15 minutes"
                ))
            }),
            _ => Err(ToolError::validation(
                "give one of every_seconds (e.g. 3600) or cron (e.g. `0 6 * * *`)",
            )),
        }
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, ToolError> {
        match self {
            Schedule::Every(seconds) => {
                let step = *seconds as i64 * 1000;
                let next = (t.timestamp_millis().div_euclid(step) + 1) * step;
                Utc.timestamp_millis_opt(next).single().ok_or_else(|| {
                    ToolError::Execution("the next run is out of the calendar's range".into())
                })
            }
            Schedule::Cron(cron) => cron.find_next_occurrence(&t, false).map_err(|e| {
                ToolError::Execution(format!("the cron pattern has no next run: {e}"))
            }),
        }
    }

    /// The tick to run after `tick` at time `now`: the next one, unless that and the one after
    /// it are both past — then the latest past one, so a monitor that fell behind (a server was
    /// down) runs once for the ticks it missed, not once for each.
    pub fn next_due(
        &self,
        tick: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, ToolError> {
        let mut next = self.next_after(tick)?;
        if let Schedule::Every(seconds) = self {
            let step = *seconds as i64 * 1000;
            let latest = now.timestamp_millis().div_euclid(step) * step;
            if latest > next.timestamp_millis() {
                next = Utc.timestamp_millis_opt(latest).single().unwrap_or(next);
            }
            return Ok(next);
        }
        // Cron: walk forward (bounded; past that, the next tick after now).
        for _ in 0..10_000 {
            let after = self.next_after(next)?;
            if after > now {
                return Ok(next);
            }
            next = after;
        }
        self.next_after(now)
    }

    /// A typical gap between ticks, for the default prediction-log window.
    pub fn period(&self, from: DateTime<Utc>) -> Result<chrono::Duration, ToolError> {
        let first = self.next_after(from)?;
        Ok(self.next_after(first)? - first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_tick_on_whole_multiples() {
        let s = Schedule::parse(Some(60), None).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 30).unwrap();
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 7, 10, 1, 0).unwrap()
        );
        let on_tick = Utc.with_ymd_and_hms(2026, 12, 7, 10, 1, 0).unwrap();
        assert_eq!(
            s.next_after(on_tick).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 7, 10, 2, 0).unwrap()
        );
        assert_eq!(s.period(t).unwrap(), chrono::Duration::seconds(60));
    }

    #[test]
    fn a_late_run_keeps_every_tick_and_an_outage_is_caught_up_once() {
        let s = Schedule::parse(Some(60), None).unwrap();
        let tick = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        // Finished 70 s late: the next tick (10:01) is past but still runs.
        let late = tick + chrono::Duration::seconds(70);
        assert_eq!(
            s.next_due(tick, late).unwrap(),
            tick + chrono::Duration::seconds(60)
        );
        // Down for an hour: one run for the latest missed tick, then on schedule.
        let outage = tick + chrono::Duration::seconds(3630);
        assert_eq!(
            s.next_due(tick, outage).unwrap(),
            tick + chrono::Duration::seconds(3600)
        );
        let c = Schedule::parse(None, Some("*/5 * * * *")).unwrap();
        assert_eq!(
            c.next_due(tick, late).unwrap(),
            tick + chrono::Duration::minutes(5)
        );
        assert_eq!(
            c.next_due(tick, outage).unwrap(),
            tick + chrono::Duration::minutes(60)
        );
    }

    #[test]
    fn cron_patterns_are_followed_and_bad_ones_refused() {
        let s = Schedule::parse(None, Some("0 6 * * *")).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 8, 6, 0, 0).unwrap()
        );
        let e = Schedule::parse(None, Some("61 * * * *"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a cron pattern"), "{e}");
        assert!(Schedule::parse(Some(0), None).is_err());
        assert!(Schedule::parse(Some(5), Some("* * * * *")).is_err());
        assert!(Schedule::parse(None, None).is_err());
    }
}
