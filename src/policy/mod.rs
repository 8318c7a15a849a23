//! The retry policy's core: what is retried, how long to wait, the budget. Plain values and
//! decisions, with no tower plumbing, so that the request's options can name a policy without
//! the request depending on the retry layer. Public through [`retry`](crate::retry).

pub(crate) mod backoff;
pub(crate) mod budget;
pub(crate) mod hedge;
pub(crate) mod retry;
pub(crate) mod retry_after;
