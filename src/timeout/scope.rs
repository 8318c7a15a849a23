//! Which timers a deadline layer's inner future armed during one poll: what lets the deadline
//! layer leave its own timer unmade while an attempt timer below it fires first.
//!
//! A deadline layer polls its inner future inside [`polling`]; an attempt timeout (or a deadline
//! layer with its timer armed) whose timer is pending when polled calls [`timer_armed`] with the
//! instant it fires and the waker it was polled with. Such a timer, registered with the waker
//! of this very poll, wakes the task at that instant (its attempt ends then, and the deadline
//! layer is polled again and asks again). Anything that breaks that chain makes the finding
//! unknown, and the deadline layer arms its own timer:
//!
//! - a timer polled with another waker (a layer that polls with its own waker, or with none);
//! - an attempt dropped in the same call after its timer was told (a `select!` whose other
//!   branch won): timers told before the drop no longer count; one told after it does.
//!
//! A timer polled on another task (a `spawn`, a `Buffer`'s worker) or in an earlier call is
//! never seen: the scope is per thread and lasts one synchronous call. One polled within that
//! call by an executor nested in it comes with that executor's waker, which makes the finding
//! unknown.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWakerVTable, Waker};
use tokio::time::{Instant, Sleep};

/// What one scope found.
#[derive(Clone, Copy)]
enum Found {
    Nothing,
    /// Timers polled with the scope's waker, the earliest firing at this instant.
    Armed(Instant),
    /// Something that proves nothing: the deadline layer arms its own timer.
    Unknown,
}

/// The waker a scope's timers must be polled with, by identity.
type WakerId = (*const (), *const RawWakerVTable);

thread_local! {
    static SCOPE: Cell<Option<(WakerId, Found)>> = const { Cell::new(None) };
}

fn id(waker: &Waker) -> WakerId {
    (waker.data(), waker.vtable())
}

/// Runs `poll` (a poll of a deadline layer's inner future with `waker`) and sets `armed` to the
/// earliest instant a timer polled within it fires, when nothing made that unknown (else to
/// `None`). What was found is also told to an enclosing scope. (`poll`'s outcome is returned
/// as it came, not in a pair: a response is not copied on its way out.)
pub(crate) fn polling<T>(
    waker: &Waker,
    armed: &mut Option<Instant>,
    poll: impl FnOnce() -> T,
) -> T {
    /// Restores the enclosing scope, told what this one found, even if `poll` panics.
    struct Restore {
        outer: Option<(WakerId, Found)>,
        waker: WakerId,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = SCOPE.try_with(|scope| {
                let found = scope.get().map_or(Found::Unknown, |(_, found)| found);
                scope.set(self.outer.map(|(outer, before)| {
                    let found = match found {
                        Found::Armed(_) if outer != self.waker => Found::Unknown,
                        found => found,
                    };
                    (outer, after(before, found))
                }));
            });
        }
    }
    let waker = id(waker);
    let Ok(outer) = SCOPE.try_with(|scope| scope.replace(Some((waker, Found::Nothing)))) else {
        // The thread is ending: nothing is known.
        *armed = None;
        return poll();
    };
    let restore = Restore { outer, waker };
    let outcome = poll();
    let found = SCOPE.try_with(Cell::get).ok().flatten();
    drop(restore);
    *armed = match found {
        Some((_, Found::Armed(at))) => Some(at),
        _ => None,
    };
    outcome
}

/// Polls a timer (an attempt's, or a deadline layer's own); while it is pending, tells the
/// enclosing [`polling`] scope, if any, when it fires.
pub(crate) fn poll_timer(sleep: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Poll<()> {
    let at = sleep.deadline();
    let polled = sleep.poll(cx);
    if polled.is_pending() {
        timer_armed(at, cx.waker());
    }
    polled
}

/// Tells the enclosing [`polling`] scope, if any, that a timer polled just now with `waker`
/// fires at `at`.
fn timer_armed(at: Instant, waker: &Waker) {
    let _ = SCOPE.try_with(|scope| {
        if let Some((expected, found)) = scope.get() {
            let told = if id(waker) == expected {
                Found::Armed(at)
            } else {
                Found::Unknown
            };
            scope.set(Some((expected, after(found, told))));
        }
    });
}

/// Tells the enclosing scope, if any, that an attempt (and its timer) was dropped.
pub(crate) fn timer_dropped() {
    let _ = SCOPE.try_with(|scope| {
        if let Some((expected, _)) = scope.get() {
            scope.set(Some((expected, Found::Unknown)));
        }
    });
}

/// What a scope knows once `told` follows what it knew: an unknown forgets earlier timers (a
/// drop may have taken them); a timer told later stands on its own.
fn after(known: Found, told: Found) -> Found {
    match (known, told) {
        (_, Found::Unknown) => Found::Unknown,
        (known, Found::Nothing) => known,
        (Found::Armed(a), Found::Armed(b)) => Found::Armed(a.min(b)),
        (Found::Nothing | Found::Unknown, Found::Armed(b)) => Found::Armed(b),
    }
}
