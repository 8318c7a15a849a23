//! Sends one request through the default stack and prints what happened per attempt, then the
//! diagnosis: a tool to point at a failing endpoint.
//!
//! ```sh
//! cargo run --example probe -- URL [--proxy PROXY_URL] [--fallback URL]... [--timeout SECS] [--deadline SECS]
//! ```
//!
//! Exit status: 0 when the request succeeded, 1 when it failed, 2 on bad arguments.

use reqwest_resilience::Client;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Prints one line when an `attempt` (or fallback `server`) span of the crate closes.
#[derive(Default)]
struct AttemptPrinter {
    spans: Mutex<HashMap<Id, (Instant, Fields)>>,
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
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for AttemptPrinter {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if matches!(attrs.metadata().name(), "attempt" | "server") {
            let mut fields = Fields::default();
            fields.0.insert("span", attrs.metadata().name().to_owned());
            attrs.record(&mut fields);
            self.spans
                .lock()
                .unwrap()
                .insert(id.clone(), (Instant::now(), fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(id) {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let Some((started, Fields(f))) = self.spans.lock().unwrap().remove(&id) else {
            return;
        };
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("-");
        let mut line = String::new();
        if get("span") == "attempt" {
            let n = get("http.request.resend_count")
                .parse::<u32>()
                .map_or(0, |n| n + 1);
            let _ = write!(
                line,
                "attempt {n}: {} {}",
                get("http.request.method"),
                get("url.full")
            );
        } else {
            let _ = write!(
                line,
                "  server #{}: {}",
                get("fallback.index"),
                get("url.full")
            );
        }
        let _ = write!(
            line,
            " -> status {} error {} ({} ms)",
            get("http.response.status_code"),
            get("error.type"),
            started.elapsed().as_millis()
        );
        println!("{line}");
    }
}

struct Args {
    url: String,
    proxy: Option<String>,
    fallbacks: Vec<String>,
    timeout: Duration,
    deadline: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        url: String::new(),
        proxy: None,
        fallbacks: Vec::new(),
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(15),
    };
    let seconds = |v: Option<String>| -> Result<Duration, String> {
        let v = v.ok_or("a number of seconds is missing")?;
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or(format!("not a number of seconds: {v}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--proxy" => parsed.proxy = Some(args.next().ok_or("--proxy needs a URL")?),
            "--fallback" => parsed
                .fallbacks
                .push(args.next().ok_or("--fallback needs a URL")?),
            "--timeout" => parsed.timeout = seconds(args.next())?,
            "--deadline" => parsed.deadline = seconds(args.next())?,
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            url if parsed.url.is_empty() => parsed.url = url.to_owned(),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    if parsed.url.is_empty() {
        return Err("a URL is required".into());
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!(
                "probe: {why}\nusage: probe URL [--proxy URL] [--fallback URL]... [--timeout SECS] [--deadline SECS]"
            );
            std::process::exit(2);
        }
    };
    let subscriber = tracing_subscriber::registry().with(AttemptPrinter::default());
    let _ = tracing::subscriber::set_global_default(subscriber);

    let mut builder = Client::builder()
        .attempt_timeout(args.timeout)
        .deadline(args.deadline);
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy.as_str());
    }
    if !args.fallbacks.is_empty() {
        let mut servers = vec![base_of(&args.url)];
        servers.extend(args.fallbacks.iter().cloned());
        builder = builder.fallback_servers(servers);
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("probe: {err}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    match client.get(&args.url).send().await {
        Ok(response) => {
            println!(
                "result: {} in {} ms",
                response.status(),
                started.elapsed().as_millis()
            );
        }
        Err(err) => {
            println!("result: {err}");
            println!("diagnosis: {}", err.diagnosis());
            std::process::exit(1);
        }
    }
}

/// The URL's scheme, host and port: the primary server when fallbacks are given.
fn base_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}",
            u.scheme(),
            u.host_str().map_or(String::new(), |h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        ),
        Err(_) => url.to_owned(),
    }
}
