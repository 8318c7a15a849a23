//! Where the doctor's findings go: step lines on standard output as they happen (text), or one
//! JSON document at the end (`--json`); a spinner on standard error while it waits, on a
//! terminal only.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Write};
use std::time::Duration;

pub struct Report {
    json: bool,
    spinner: ProgressBar,
    /// The JSON document being built.
    doc: Map<String, Value>,
    /// Its hops, each with its steps.
    hops: Vec<Value>,
}

impl Report {
    pub fn new(json: bool) -> Report {
        let spinner = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            ProgressBar::hidden()
        };
        Report {
            json,
            spinner,
            doc: Map::new(),
            hops: Vec::new(),
        }
    }

    /// What the doctor is waiting for now (the spinner's message on a terminal).
    pub fn waiting(&self, what: impl Into<String>) {
        self.spinner.set_message(what.into());
    }

    /// One line of text output (nothing with `--json`), printed above the spinner.
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.json {
            // What a server sent (a certificate's names, a page's words) cannot write lines
            // or terminal escapes of its own.
            let text = crate::shown::printable(text.as_ref());
            // A closed pipe (`| head`) ends the output, not the program.
            self.spinner.suspend(|| {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            });
        }
    }

    /// A step of the walk: `name` padded, then what was found; `value` goes into the current
    /// hop's steps in the JSON document.
    pub fn step(&mut self, name: &str, text: impl AsRef<str>, mut value: Value) {
        self.line(format!("  {name:<8} {}", text.as_ref()));
        if let Value::Object(map) = &mut value {
            map.insert("step".into(), Value::String(name.to_owned()));
        }
        if let Some(Value::Object(hop)) = self.hops.last_mut() {
            if let Some(Value::Array(steps)) = hop.get_mut("steps") {
                steps.push(value);
            }
        }
    }

    /// A new hop (the URL first, then each redirect's target).
    pub fn hop(&mut self, index: usize, url: &str, note: &str) {
        self.line(format!("hop {index}: {url}{note}"));
        self.hops
            .push(json!({ "index": index, "url": url, "steps": [] }));
    }

    /// A top-level field of the JSON document.
    pub fn set(&mut self, key: &str, value: Value) {
        self.doc.insert(key.to_owned(), value);
    }

    /// Stops the spinner and, with `--json`, prints the document.
    pub fn finish(mut self) {
        self.spinner.finish_and_clear();
        if self.json {
            self.doc.insert("hops".into(), Value::Array(self.hops));
            let doc = Value::Object(self.doc);
            match serde_json::to_string_pretty(&doc) {
                Ok(text) => {
                    let _ = writeln!(std::io::stdout().lock(), "{text}");
                }
                Err(err) => eprintln!("gateway-doctor: cannot write JSON: {err}"),
            }
        }
    }
}
