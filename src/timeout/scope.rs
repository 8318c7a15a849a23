//! Which timers a deadline layer's inner future armed during one poll: what lets the deadline
//! layer leave its own timer unmade while an attempt timer below it fires first.
//!
//! A deadline layer polls its inner future inside [`polling`]; an attempt timeout (or a deadline
//! layer with its timer armed) whose timer is pending when polled calls [`timer_armed`] with the
//! instant it fires. The timer was registered with the waker of this very poll, so it wakes
//! the task at that instant (its attempt ends then, and the deadline layer is polled again and
//! asks again). Only a timer polled within the same call counts: one polled on another task
//! (a `spawn`, a `Buffer`'s worker), one a layer in between keeps without polling, or one
//! polled in an earlier call proves nothing, so the deadline layer arms its own timer then.
//!
//! The scope is per thread and lasts one synchronous call, so nothing of another task's poll
//! can be seen in it.

use std::cell::Cell;
use tokio::time::Instant;

thread_local! {
    /// The earliest instant a timer polled in the current [`polling`] scope fires, if any.
    static ARMED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `poll` (a poll of a deadline layer's inner future) and tells the earliest instant a
/// timer polled within it fires. What was found is also told to an enclosing scope.
pub(crate) fn polling<T>(poll: impl FnOnce() -> T) -> (T, Option<Instant>) {
    /// Restores the enclosing scope's finding (with this one's) even if `poll` panics.
    struct Restore {
        outer: Option<Instant>,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = ARMED.try_with(|armed| armed.set(earliest(self.outer, armed.get())));
        }
    }
    let Ok(outer) = ARMED.try_with(|armed| armed.replace(None)) else {
        // The thread is ending: nothing is known.
        return (poll(), None);
    };
    let restore = Restore { outer };
    let outcome = poll();
    let found = ARMED.try_with(Cell::get).ok().flatten();
    drop(restore);
    (outcome, found)
}

/// Tells the enclosing [`polling`] scope, if any, that a timer polled just now fires at `at`.
pub(crate) fn timer_armed(at: Instant) {
    let _ = ARMED.try_with(|armed| armed.set(earliest(armed.get(), Some(at))));
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
