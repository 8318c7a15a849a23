//! How long to wait before each retry.

use std::fmt;
use std::time::Duration;

/// A retry schedule: the pause before each retry of one logical request.
///
/// Implement it to plug in your own schedule. It is called once per retry, with the retry's
/// number (1 before the first retry) and the pause used before the previous retry (zero before
/// the first); `None` stops retrying.
///
/// ```
/// use reqwest_resilience::retry::Backoff;
/// use std::time::Duration;
///
/// /// A constant pause.
/// #[derive(Debug)]
/// struct Every(Duration);
///
/// impl Backoff for Every {
///     fn delay(&self, _retry: u32, _previous: Duration) -> Option<Duration> {
///         Some(self.0)
///     }
/// }
/// ```
pub trait Backoff: fmt::Debug + Send + Sync + 'static {
    /// The pause before retry number `retry` (counting from 1), or `None` to stop.
    fn delay(&self, retry: u32, previous: Duration) -> Option<Duration>;
}

/// How random noise is added to the exponential schedule (see AWS's "Exponential Backoff And
/// Jitter": full jitter spreads retries best for the least total work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// No noise: `min(cap, base × multiplier^(retry-1))`.
    None,
    /// A uniform pause in `[0, min(cap, base × multiplier^(retry-1))]`.
    Full,
    /// `min(cap, uniform(base, previous × 3))`, starting from `base`.
    Decorrelated,
}

/// Exponential backoff with a base, a multiplier, a cap and jitter.
///
/// The default is a base of 100 ms, a multiplier of 2, a cap of 10 s and full jitter.
///
/// ```
/// use reqwest_resilience::retry::{Backoff, ExponentialBackoff, Jitter};
/// use std::time::Duration;
///
/// let backoff = ExponentialBackoff::new(Duration::from_millis(50))
///     .multiplier(3.0)
///     .cap(Duration::from_secs(2))
///     .jitter(Jitter::None);
/// assert_eq!(backoff.delay(2, Duration::ZERO), Some(Duration::from_millis(150)));
/// assert_eq!(backoff.delay(9, Duration::ZERO), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialBackoff {
    base: Duration,
    multiplier: f64,
    cap: Duration,
    jitter: Jitter,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoff {
            base: Duration::from_millis(100),
            multiplier: 2.0,
            cap: Duration::from_secs(10),
            jitter: Jitter::Full,
        }
    }
}

impl ExponentialBackoff {
    /// The default schedule with this base pause.
    pub fn new(base: Duration) -> Self {
        ExponentialBackoff {
            base,
            ..Self::default()
        }
    }

    /// The growth factor per retry; values below 1 (or not finite) are taken as 1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() && multiplier >= 1.0 {
            multiplier
        } else {
            1.0
        };
        self
    }

    /// The longest pause.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The pause before `retry` without jitter.
    fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(1024) as i32;
        let factor = self.multiplier.powi(exponent);
        let secs = self.base.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::try_from_secs_f64(secs).map_or(self.cap, |d| d.min(self.cap))
        }
    }
}

fn uniform(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_nanos().min(u128::from(u64::MAX)) as u64;
    low + Duration::from_nanos(fastrand::u64(0..=span))
}

impl Backoff for ExponentialBackoff {
    fn delay(&self, retry: u32, previous: Duration) -> Option<Duration> {
        Some(match self.jitter {
            Jitter::None => self.ceiling(retry),
            Jitter::Full => uniform(Duration::ZERO, self.ceiling(retry)),
            Jitter::Decorrelated => {
                let from = if previous.is_zero() {
                    self.base
                } else {
                    previous
                };
                let high = from.checked_mul(3).unwrap_or(self.cap);
                uniform(self.base.min(self.cap), high.min(self.cap))
            }
        })
    }
}

/// Drives the schedule with a [`backoff`](https://docs.rs/backoff) crate schedule, such as
/// `backoff::ExponentialBackoff` (needs the `backoff` feature).
///
/// Each logical request starts from a fresh copy of the template (`reset()` is called on it), so
/// concurrent requests do not share one schedule's state. `None` from the schedule (e.g. its
/// `max_elapsed_time` passed) stops retrying. The `backoff` crate is unmaintained
/// (RUSTSEC-2025-0012); prefer [`ExponentialBackoff`].
#[cfg(feature = "backoff")]
#[cfg_attr(docsrs, doc(cfg(feature = "backoff")))]
#[derive(Debug, Clone)]
pub struct BackoffCrate<B>(pub B);

#[cfg(feature = "backoff")]
impl<B> Backoff for BackoffCrate<B>
where
    B: backoff::backoff::Backoff + Clone + fmt::Debug + Send + Sync + 'static,
{
    fn delay(&self, retry: u32, _previous: Duration) -> Option<Duration> {
        let mut schedule = self.0.clone();
        schedule.reset();
        let mut delay = None;
        for _ in 0..retry.max(1) {
            delay = Some(schedule.next_backoff()?);
        }
        delay
    }
}
