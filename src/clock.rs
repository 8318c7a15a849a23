//! Points in time the layers agree on: the deadline of a logical request.

use std::time::Duration;

/// When the logical request must end, set by the deadline layer for the layers inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadlineAt {
    pub(crate) at: tokio::time::Instant,
    pub(crate) total: Duration,
}

impl DeadlineAt {
    /// Time left, zero when passed.
    pub(crate) fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

/// `now + duration`, or a time far in the future when that does not fit (a `Duration::MAX`
/// setting means "no limit", not a panic).
pub(crate) fn instant_after(duration: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}
