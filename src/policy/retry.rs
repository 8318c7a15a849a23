//! What is retried, how often, and how long to wait.

use super::backoff::{Backoff, ExponentialBackoff};
use super::budget::RetryBudget;
use crate::clock::DeadlineAt;
use crate::error::GatewayError;
use http::{HeaderMap, Method, StatusCode};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

type Predicate = Arc<dyn Fn(&GatewayError) -> bool + Send + Sync>;
type ResponsePredicate = Arc<dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync>;

/// The retry rules: attempts, backoff, causes, idempotency, `Retry-After`, budget.
///
/// Cheap to clone; clones share the budget. The defaults are safe for a user who never reads
/// this: 3 attempts in all, full-jitter exponential backoff (100 ms base, ×2, 10 s cap), the
/// causes for which [`GatewayError::is_retryable`] is true, idempotent methods only (unless the
/// request carries an `Idempotency-Key` or provably never reached a server), `Retry-After`
/// honoured up to 30 s, and a [`RetryBudget`] on.
///
/// ```
/// use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(4)
///     .backoff(ExponentialBackoff::new(Duration::from_millis(20)))
///     .max_retry_after(Duration::from_secs(5));
/// assert_eq!(policy.attempts(), 4);
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    // Shared: a policy is cloned for every request, and moves with it (a request's own
    // policy is in its options); the builder methods copy the rules when shared.
    pub(crate) rules: Arc<Rules>,
    // Beside the shared rules: a request's own policy that chose no budget is given its
    // client's, which must not copy the rules.
    pub(crate) budget: Option<RetryBudget>,
    /// Whether the budget was chosen ([`budget`](Self::budget), [`no_budget`](Self::no_budget)):
    /// a per-request policy that did not choose one draws on the client's.
    pub(crate) budget_chosen: bool,
}

/// The rules of a [`RetryPolicy`].
#[derive(Clone)]
pub(crate) struct Rules {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Arc<dyn Backoff>,
    pub(crate) retry_if: Option<Predicate>,
    pub(crate) non_idempotent: bool,
    pub(crate) honor_retry_after: bool,
    pub(crate) max_retry_after: Duration,
    pub(crate) retry_too_many_requests: bool,
    pub(crate) retry_request_timeout: bool,
    /// Statuses the user retries (a bit per status code, 100–999).
    pub(crate) retry_statuses: Option<Arc<StatusSet>>,
    pub(crate) retry_on_response: Option<ResponsePredicate>,
    /// Send one backup copy when no response head came within this long.
    pub(crate) hedge_after: Option<super::hedge::HedgeDelay>,
}

/// A set of status codes, a bit each.
#[derive(Debug, Default)]
pub(crate) struct StatusSet([u64; 16]);

impl StatusSet {
    fn insert(&mut self, status: StatusCode) {
        let n = status.as_u16() as usize;
        if let Some(word) = self.0.get_mut(n / 64) {
            *word |= 1 << (n % 64);
        }
    }

    fn contains(&self, status: StatusCode) -> bool {
        let n = status.as_u16() as usize;
        self.0
            .get(n / 64)
            .is_some_and(|word| word & (1 << (n % 64)) != 0)
    }
}

/// The default rules, shared by every default policy until one is changed.
static DEFAULT_RULES: std::sync::LazyLock<Arc<Rules>> = std::sync::LazyLock::new(|| {
    Arc::new(Rules {
        max_attempts: 3,
        backoff: Arc::new(ExponentialBackoff::default()),
        retry_if: None,
        non_idempotent: false,
        honor_retry_after: true,
        max_retry_after: Duration::from_secs(30),
        retry_too_many_requests: true,
        retry_request_timeout: true,
        retry_statuses: None,
        retry_on_response: None,
        hedge_after: None,
    })
});

/// The rules of [`RetryPolicy::never`] (`no_retry()` makes one per request).
static NEVER_RULES: std::sync::LazyLock<Arc<Rules>> = std::sync::LazyLock::new(|| {
    let mut rules = Rules::clone(&DEFAULT_RULES);
    rules.max_attempts = 1;
    Arc::new(rules)
});

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rules: DEFAULT_RULES.clone(),
            budget: Some(RetryBudget::default()),
            budget_chosen: false,
        }
    }
}

impl RetryPolicy {
    /// This policy drawing on `budget` (a request's own policy that chose none draws on its
    /// client's).
    pub(crate) fn with_budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// The rules, to change: copied first when another policy shares them.
    fn rules_mut(&mut self) -> &mut Rules {
        Arc::make_mut(&mut self.rules)
    }

    /// A policy that never retries (one attempt).
    pub fn never() -> Self {
        RetryPolicy {
            rules: NEVER_RULES.clone(),
            budget: None,
            budget_chosen: true,
        }
    }

    /// Attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.rules_mut().max_attempts = attempts.max(1);
        self
    }

    /// Hedging: when an attempt has had no response head for `delay`, one backup copy of the
    /// request is sent (to the next fallback server when there are several, else to the same
    /// one) and the first good answer wins; the other is dropped, which closes its connection.
    ///
    /// Only for a request the retry rules may send twice (an idempotent method, an
    /// `Idempotency-Key` or an opt-in) whose body can be copied; never for another. A hedge
    /// counts as an attempt (the response's [`attempts`](crate::attempts), the spans, the
    /// attempts allowed) and draws the retry's cost from the [`RetryBudget`] without a refund,
    /// so a slow outage cannot double the load: once the budget is dry, no more hedges. Off by
    /// default; with it off, a request costs nothing more.
    ///
    /// ```
    /// use reqwest_resilience::retry::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::default().hedge_after(Duration::from_millis(20));
    /// ```
    pub fn hedge_after(mut self, delay: Duration) -> Self {
        self.rules_mut().hedge_after = Some(super::hedge::HedgeDelay::Fixed(delay));
        self
    }

    /// Hedging as with [`hedge_after`](Self::hedge_after), the delay being the `percentile`
    /// (0–100, e.g. 95.0) of the host's recent response-head latencies, kept within `min` and
    /// `max` (`max` until the host has 16 samples). The latencies are those of first attempts
    /// that were answered, per host (scheme, host, port), the last 128 of each of at most 256
    /// hosts, shared by clones of this policy. Costs a clock read and a short lock per request.
    ///
    /// ```
    /// use reqwest_resilience::retry::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::default().hedge_at_percentile(
    ///     95.0,
    ///     Duration::from_millis(5),
    ///     Duration::from_millis(500),
    /// );
    /// ```
    pub fn hedge_at_percentile(mut self, percentile: f64, min: Duration, max: Duration) -> Self {
        self.rules_mut().hedge_after = Some(super::hedge::HedgeDelay::Percentile {
            percentile,
            min,
            max,
            latencies: Arc::default(),
        });
        self
    }

    /// The attempts in all this policy allows.
    pub fn attempts(&self) -> u32 {
        self.rules.max_attempts
    }

    /// The retry schedule.
    pub fn backoff(mut self, backoff: impl Backoff) -> Self {
        self.rules_mut().backoff = Arc::new(backoff);
        self
    }

    /// Decides which failures are retried, replacing [`GatewayError::is_retryable`]. Method and
    /// idempotency rules still apply; an invalid request or an exceeded deadline is never
    /// retried whatever the predicate says.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&GatewayError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.rules_mut().retry_if = Some(Arc::new(predicate));
        self
    }

    /// Treats every request as idempotent: POST and PATCH are retried too. Only for APIs whose
    /// non-idempotent calls are safe to repeat.
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.rules_mut().non_idempotent = yes;
        self
    }

    /// Whether `Retry-After` and rate-limit reset hints on a 503 or 429 set the pause.
    pub fn honor_retry_after(mut self, yes: bool) -> Self {
        self.rules_mut().honor_retry_after = yes;
        self
    }

    /// Whether a `429 Too Many Requests` answer is retried (default: yes), by the same rules
    /// as a 503: its `Retry-After` or rate-limit hint sets the pause, the budget, the deadline
    /// and the idempotency rule apply, and the [`retry_if`](Self::retry_if) predicate is not
    /// consulted. A 429 that is not retried (or still comes after the last attempt) is handed
    /// back as the `Ok` response it is: it is not a gateway failure.
    pub fn retry_too_many_requests(mut self, yes: bool) -> Self {
        self.rules_mut().retry_too_many_requests = yes;
        self
    }

    /// Whether a `408 Request Timeout` answer is retried (default: yes). RFC 9110 §15.5.9:
    /// the server did not receive the whole request and the client may repeat it on a new
    /// connection. It is retried by the same rules as a 429 (idempotency, budget, deadline,
    /// backoff) and handed back as the `Ok` response it is when not retried.
    pub fn retry_request_timeout(mut self, yes: bool) -> Self {
        self.rules_mut().retry_request_timeout = yes;
        self
    }

    /// Also retries responses with these statuses — an application's `500`, a `409` you know
    /// to be transient — by the same rules as a 429: the idempotency rule, the backoff or the
    /// response's `Retry-After`, the budget and the deadline apply. A response that is not
    /// retried (or still comes after the last attempt) is handed back as the `Ok` response it
    /// is. Adds to the statuses given before.
    ///
    /// Gateway failures (a classified 502, 503 or 504) never reach this rule: they are errors,
    /// retried by [`retry_if`](Self::retry_if) or [`GatewayError::is_retryable`].
    ///
    /// ```
    /// use reqwest_resilience::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy::default().retry_on_status([500, 409]);
    /// ```
    pub fn retry_on_status<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator,
        I::Item: TryInto<StatusCode>,
    {
        let mut set = StatusSet::default();
        if let Some(old) = &self.rules.retry_statuses {
            set.0 = old.0;
        }
        for status in statuses {
            if let Ok(status) = status.try_into() {
                set.insert(status);
            }
        }
        self.rules_mut().retry_statuses = Some(Arc::new(set));
        self
    }

    /// Also retries the responses for which `predicate` (given the status and the headers) is
    /// true, by the same rules as [`retry_on_status`](Self::retry_on_status). It sees every
    /// response the retry layer receives, so keep it cheap: it runs on the healthy path.
    ///
    /// ```
    /// use reqwest_resilience::retry::RetryPolicy;
    ///
    /// // An API that says "try again" in a header of its own.
    /// let policy = RetryPolicy::default()
    ///     .retry_on_response(|_status, headers| headers.contains_key("x-retryable"));
    /// ```
    pub fn retry_on_response(
        mut self,
        predicate: impl Fn(StatusCode, &HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.rules_mut().retry_on_response = Some(Arc::new(predicate));
        self
    }

    /// Whether a response (not a failure) is retried like a failure: a 429 or 408, or a
    /// status or response the user's rules name.
    pub(crate) fn retries_response(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        (status == StatusCode::TOO_MANY_REQUESTS && self.rules.retry_too_many_requests)
            || (status == StatusCode::REQUEST_TIMEOUT && self.rules.retry_request_timeout)
            || self.retries_by_user_rule(status, headers)
    }

    fn retries_by_user_rule(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        self.rules
            .retry_statuses
            .as_ref()
            .is_some_and(|set| set.contains(status))
            || self
                .rules
                .retry_on_response
                .as_ref()
                .is_some_and(|rule| rule(status, headers))
    }

    /// The longest pause a hint may ask for; a longer one ends the request with the error at
    /// once rather than sleep in vain.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.rules_mut().max_retry_after = max;
        self
    }

    /// The retry budget (shared by every clone of this policy).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self.budget_chosen = true;
        self
    }

    /// No retry budget: every failure may use all its attempts. Use with care: in a full
    /// outage this multiplies the load on the upstream by the number of attempts.
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self.budget_chosen = true;
        self
    }

    /// The budget, if any.
    pub fn retry_budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// Whether the cause is one this policy retries.
    pub(crate) fn retries_cause(&self, err: &GatewayError) -> bool {
        use crate::error::ErrorKind;
        // Never, whatever the predicate says: an invalid request fails the same way again, the
        // deadline is over, and an open circuit is meant to fail fast.
        if matches!(
            err.kind(),
            ErrorKind::InvalidRequest | ErrorKind::DeadlineExceeded | ErrorKind::CircuitOpen
        ) {
            return false;
        }
        match &self.rules.retry_if {
            Some(predicate) => predicate(err),
            None => err.is_transient(),
        }
    }

    /// Whether sending this request again cannot do harm, before knowing the failure.
    pub(crate) fn is_idempotent(
        &self,
        method: &Method,
        headers: &http::HeaderMap,
        opted_in: bool,
    ) -> bool {
        self.rules.non_idempotent || crate::idempotency::may_resend(method, headers, opted_in)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.rules.max_attempts)
            .field("backoff", &self.rules.backoff)
            .field("custom_predicate", &self.rules.retry_if.is_some())
            .field("retry_statuses", &self.rules.retry_statuses.is_some())
            .field("retry_on_response", &self.rules.retry_on_response.is_some())
            .field("hedge_after", &self.rules.hedge_after)
            .field("non_idempotent", &self.rules.non_idempotent)
            .field("honor_retry_after", &self.rules.honor_retry_after)
            .field("max_retry_after", &self.rules.max_retry_after)
            .field("budget", &self.budget)
            .field(
                "retry_too_many_requests",
                &self.rules.retry_too_many_requests,
            )
            .field("retry_request_timeout", &self.rules.retry_request_timeout)
            .finish()
    }
}

/// What to do after a failed attempt.
pub(crate) enum Next {
    RetryAfter(Duration, &'static str),
    GiveUp(Option<Cow<'static, str>>),
}

/// What the retry loop knows about the attempt that just failed.
pub(crate) struct AttemptFacts {
    /// Its number, from 1.
    pub(crate) number: u32,
    /// Whether the request may be sent again whatever the failure.
    pub(crate) idempotent: bool,
    /// Whether a copy of the request can be made (its body is not a stream).
    pub(crate) replayable: bool,
    /// The pause before this attempt.
    pub(crate) previous_delay: Duration,
    /// The deadline in force.
    pub(crate) deadline: Option<DeadlineAt>,
}

impl RetryPolicy {
    /// Whether and when to retry after `err`, by the rules in order (see the module docs):
    /// the cause, the attempts left, idempotency or proof the request was unsent, a replayable
    /// body, a `Retry-After` hint within bounds or the backoff, and the time the deadline
    /// leaves. The budget is [`charge`](Self::charge)'s.
    pub(crate) fn decide(
        &self,
        err: &GatewayError,
        cause_retried: bool,
        attempt: &AttemptFacts,
    ) -> Next {
        if !cause_retried {
            return Next::GiveUp(None);
        }
        if attempt.number >= self.rules.max_attempts {
            // With retries off there is nothing to explain.
            let why = (self.rules.max_attempts > 1).then(|| {
                format!(
                    "all {} tries of the retry policy failed",
                    self.rules.max_attempts
                )
                .into()
            });
            return Next::GiveUp(why);
        }
        if !attempt.idempotent && !err.is_request_unsent() {
            return Next::GiveUp(Some(
                "the method is not idempotent and the request may have reached the server (send an Idempotency-Key to allow retries)".into(),
            ));
        }
        if !attempt.replayable {
            return Next::GiveUp(Some(
                "the request body is a stream and cannot be sent again".into(),
            ));
        }
        let (delay, reason) = match self.hint(err) {
            Some(asked) if asked > self.rules.max_retry_after => {
                return Next::GiveUp(Some(
                    format!(
                        "the server asked to wait {}s, more than the {}s allowed",
                        asked.as_secs(),
                        self.rules.max_retry_after.as_secs()
                    )
                    .into(),
                ));
            }
            Some(asked) => (asked, "Retry-After"),
            None => match self
                .rules
                .backoff
                .delay(attempt.number, attempt.previous_delay)
            {
                Some(delay) => (delay, "backoff"),
                None => return Next::GiveUp(Some("the backoff schedule ended".into())),
            },
        };
        if attempt.deadline.is_some_and(|d| delay >= d.remaining()) {
            return Next::GiveUp(Some(
                "the deadline leaves no time for another attempt".into(),
            ));
        }
        Next::RetryAfter(delay, reason)
    }

    /// The pause a 503's or 429's `Retry-After` (or rate-limit reset) asks for, when honoured.
    fn hint(&self, err: &GatewayError) -> Option<Duration> {
        let response = err.response().filter(|_| self.rules.honor_retry_after)?;
        // A 503 or 429; or a response retried by the user's rules, whose server may say when.
        let hinted = matches!(response.status().as_u16(), 503 | 429)
            || (err.kind() == crate::error::ErrorKind::Other
                && self.retries_by_user_rule(response.status(), response.headers()));
        if !hinted {
            return None;
        }
        super::retry_after::retry_after(response.headers(), SystemTime::now())
    }

    /// Takes a retry's cost from the budget (adding it to `spent`), or turns the retry into a
    /// give-up when the budget is exhausted.
    pub(crate) fn charge(
        &self,
        next: Next,
        after_timeout: bool,
        spent: &mut u32,
        host: Option<u64>,
    ) -> Next {
        match (next, &self.budget) {
            (Next::RetryAfter(delay, reason), Some(budget)) => {
                let cost = budget.cost(after_timeout);
                if budget.try_withdraw(host.unwrap_or(0), cost) {
                    *spent += cost;
                    Next::RetryAfter(delay, reason)
                } else {
                    Next::GiveUp(Some("the retry budget is exhausted".into()))
                }
            }
            (next, _) => next,
        }
    }

    /// A success: the tokens its retries spent go back to the budget, or it earns a deposit.
    /// `host` (the request's host key) is asked only when a bucket per host may need it.
    /// Whether a bucket changed.
    pub(crate) fn settle(&self, spent: u32, host: impl FnOnce() -> Option<u64>) -> bool {
        match &self.budget {
            Some(budget) if spent > 0 => budget.refund(host, spent),
            Some(budget) => budget.reward(host),
            None => false,
        }
    }
}
