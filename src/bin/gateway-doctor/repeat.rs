//! `--repeat N`: N requests through the crate's default client (its retry policy, attempt
//! timeout and `--deadline`; redirects followed as by default), showing what it did — each
//! attempt from the crate's own `attempt` spans, the wait between attempts, the outcome.

use crate::outcome::Outcome;
use crate::report::Report;
use crate::{Args, settings, shown, tls};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One attempt, as its span told it.
#[derive(Debug, Clone)]
struct Attempt {
    started: Instant,
    took: Duration,
    status: Option<String>,
    error: Option<String>,
}

/// Collects the crate's `attempt` spans.
#[derive(Default, Clone)]
struct Attempts {
    open: Arc<Mutex<HashMap<Id, (Instant, Fields)>>>,
    done: Arc<Mutex<Vec<Attempt>>>,
}

#[derive(Default)]
struct Fields(HashMap<&'static str, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Attempts {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "attempt" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            if let Ok(mut open) = self.open.lock() {
                open.insert(id.clone(), (Instant::now(), fields));
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Ok(mut open) = self.open.lock() {
            if let Some((_, fields)) = open.get_mut(id) {
                values.record(fields);
            }
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let Some((started, Fields(f))) = self.open.lock().ok().and_then(|mut o| o.remove(&id))
        else {
            return;
        };
        let attempt = Attempt {
            started,
            took: started.elapsed(),
            status: f.get("http.response.status_code").cloned(),
            error: f.get("error.type").cloned(),
        };
        if let Ok(mut done) = self.done.lock() {
            done.push(attempt);
        }
    }
}

pub async fn run(args: &Args, headers: &HeaderMap, report: &mut Report) {
    let attempts = Attempts::default();
    let subscriber = tracing_subscriber::registry().with(attempts.clone());
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        report.line("repeat: cannot watch the attempts (a tracing subscriber is already set)");
        return;
    }
    let roots = match &args.cacert {
        Some(path) => tls::read_cacert(path).unwrap_or_default(),
        None => Vec::new(),
    };
    let client = match settings::builder(args, &roots).and_then(|b| {
        b.deadline(args.deadline)
            .attempt_timeout(args.timeout * 2)
            .build()
            .map_err(|err| format!("cannot build the client: {err}"))
    }) {
        Ok(client) => client,
        Err(why) => {
            report.line(format!("repeat: {why}"));
            return;
        }
    };
    let (Ok(url), Ok(method)) = (
        Url::parse(&args.url),
        Method::from_bytes(args.method.to_ascii_uppercase().as_bytes()),
    ) else {
        return;
    };
    report.line(format!(
        "repeat: {} request{} through the crate's default client (retry policy, deadline {:.1} s, {:.1} s per attempt)",
        args.repeat,
        if args.repeat == 1 { "" } else { "s" },
        args.deadline.as_secs_f64(),
        (args.timeout * 2).as_secs_f64()
    ));
    let mut runs = Vec::new();
    for n in 1..=args.repeat {
        if let Ok(mut done) = attempts.done.lock() {
            done.clear();
        }
        report.waiting(format!("request {n} of {}…", args.repeat));
        let started = Instant::now();
        let sent = client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .send()
            .await;
        let took = started.elapsed();
        let seen: Vec<Attempt> = attempts
            .done
            .lock()
            .map(|mut d| {
                d.sort_by_key(|a| a.started);
                d.clone()
            })
            .unwrap_or_default();
        report.line(format!("request {n}:"));
        let mut listed = Vec::new();
        let mut previous_end: Option<Instant> = None;
        for (i, attempt) in seen.iter().enumerate() {
            let wait = previous_end.map(|end| attempt.started.saturating_duration_since(end));
            let mut line = String::from("  ");
            if let Some(wait) = wait {
                line.push_str(&format!("waited {}, then ", shown::ms(wait)));
            }
            line.push_str(&format!(
                "attempt {}: {} in {}",
                i + 1,
                match (&attempt.status, &attempt.error) {
                    (_, Some(error)) => format!("failed ({error})"),
                    (Some(status), None) => format!("answered {status}"),
                    (None, None) => "ended".to_owned(),
                },
                shown::ms(attempt.took)
            ));
            report.line(line);
            listed.push(json!({
                "waited_ms": wait.map(|w| w.as_secs_f64() * 1000.0),
                "ms": attempt.took.as_secs_f64() * 1000.0,
                "status": attempt.status,
                "error": attempt.error,
            }));
            previous_end = Some(attempt.started + attempt.took);
        }
        let (outcome, text): (Outcome, String) = match &sent {
            Ok(response)
                if response.status().is_client_error() || response.status().is_server_error() =>
            {
                (
                    Outcome::OriginError,
                    format!("answered {}", response.status().as_u16()),
                )
            }
            Ok(response) => (
                Outcome::Ok,
                format!("answered {}", response.status().as_u16()),
            ),
            Err(err) => (Outcome::of_error(err), err.to_string()),
        };
        report.line(format!(
            "  outcome: {text} after {} ({})",
            shown::ms(took),
            outcome.words()
        ));
        runs.push(json!({
            "request": n,
            "outcome": outcome.name(),
            "ms": took.as_secs_f64() * 1000.0,
            "message": text,
            "attempts": Value::Array(listed),
        }));
    }
    report.set("repeat", Value::Array(runs));
}
