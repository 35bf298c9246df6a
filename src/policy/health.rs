//! A route's health as instances share it (Worker isolates, servers), through a store.
//!
//! Each instance keeps its own breakers (see [`super::breaker`]) and tells a store what it
//! learns: that a route's breaker opened (and until when), that it closed again (a probe
//! succeeded), that a server asked for a pause (a 429's wait hint). It reads what the others
//! told, and adopts it. So the instance that first meets an outage pays for it; the others skip
//! the route without a request.
//!
//! # The merge rule
//! A [`Record`] is four instants, and two records merge by taking the later of each
//! ([`Record::join`]): componentwise max is commutative, associative and idempotent, so records
//! from any number of instances, merged in any order, any number of times, give the same state,
//! and no update is lost. A store implements it with a per-field "set if greater" (a Redis
//! script, Deno KV's `max`, a Durable Object's own memory).
//!
//! What a merged record means ([`Record::open_until`]): the route is open until `open_until` if it
//! was last opened after it was last closed; the later `open_until` wins. Failures are counted per
//! instance: an instance opens its breaker on its own failures, and the others adopt the opening.

use super::config::MAX_MS;

/// What instances tell each other about one route. Instants are ms since the Unix epoch; 0: never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// When a breaker last opened (or re-opened after a failed probe).
    pub opened_at: u64,
    /// Until when an opening holds (the later one wins).
    pub open_until: u64,
    /// When a breaker last closed (a probe succeeded).
    pub closed_at: u64,
    /// Until when a server asked for a pause (a 429's wait hint).
    pub cooled_until: u64,
}

/// How far ahead of this instance's clock another's may run (an opening or a closing told from
/// up to this far in the future is still believed).
const SKEW_MS: u64 = 60_000;

/// An instant told from outside (a store, another instance, a saved state) that ends an opening
/// or a pause, read at `now`: past a day ahead (more than a breaker's cooldown or a wait hint can
/// be) it is read as never, so a record a store or a clock got wrong cannot hold a route shut.
pub fn until_told(t: u64, now: u64) -> u64 {
    if t > now.saturating_add(MAX_MS + SKEW_MS) {
        0
    } else {
        t
    }
}

impl Record {
    /// The record as told from outside, read at `now`: an opening or closing more than a minute
    /// ahead is read as never, and so is an end past a day ahead ([`until_told`]).
    #[must_use]
    pub fn sane(self, now: u64) -> Self {
        let at = |t: u64| if t > now.saturating_add(SKEW_MS) { 0 } else { t };
        Self {
            opened_at: at(self.opened_at),
            open_until: until_told(self.open_until, now),
            closed_at: at(self.closed_at),
            cooled_until: until_told(self.cooled_until, now),
        }
    }

    /// The merge of two records: the later of each instant.
    #[must_use]
    pub fn join(self, other: Self) -> Self {
        Self {
            opened_at: self.opened_at.max(other.opened_at),
            open_until: self.open_until.max(other.open_until),
            closed_at: self.closed_at.max(other.closed_at),
            cooled_until: self.cooled_until.max(other.cooled_until),
        }
    }

    /// Until when the route is open, if it is open at `now`: it was opened after it was last
    /// closed, and the opening has not run out.
    pub fn open_until(&self, now: u64) -> Option<u64> {
        (self.opened_at > self.closed_at && now < self.open_until).then_some(self.open_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(opened_at: u64, open_until: u64, closed_at: u64, cooled_until: u64) -> Record {
        Record { opened_at, open_until, closed_at, cooled_until }
    }

    #[test]
    fn what_no_instance_could_have_told_reads_as_never() {
        let now = 1_000_000_000;
        let day = MAX_MS;
        let told = r(now + 30_000, now + day, now - 5, now + day + SKEW_MS);
        assert_eq!(told.sane(now), told, "a clock a little ahead, a day's cooldown: believed");
        let wrong = r(now + 61_000, u64::MAX, now + 3_600_000, now + day + SKEW_MS + 1);
        assert_eq!(wrong.sane(now), r(0, 0, 0, 0));
        assert_eq!(r(now, u64::MAX, 0, 0).sane(now).open_until(now), None, "not held open for good");
    }

    #[test]
    fn join_is_a_semilattice() {
        let xs = [r(0, 0, 0, 0), r(100, 350, 0, 0), r(100, 350, 400, 0), r(500, 1250, 400, 900), r(0, 0, 0, 2000)];
        for &a in &xs {
            assert_eq!(a.join(a), a, "idempotent");
            for &b in &xs {
                assert_eq!(a.join(b), b.join(a), "commutative");
                for &c in &xs {
                    assert_eq!(a.join(b).join(c), a.join(b.join(c)), "associative");
                }
            }
        }
    }

    #[test]
    fn a_close_after_an_open_wins_and_a_later_open_wins_over_it() {
        let opened = r(100, 350, 0, 0);
        assert_eq!(opened.open_until(200), Some(350));
        assert_eq!(opened.open_until(350), None, "run out");
        let closed = opened.join(r(0, 0, 300, 0));
        assert_eq!(closed.open_until(200), None, "closed by a probe after the opening");
        let reopened = closed.join(r(400, 650, 0, 0));
        assert_eq!(reopened.open_until(500), Some(650));
        // Two openings: the later open_until wins.
        assert_eq!(r(100, 850, 0, 0).join(r(200, 450, 0, 0)).open_until(500), Some(850));
    }
}
