//! Runs the `gateway-doctor` binary from a test (included by the doctor tests only: the binary
//! exists with the `cli` feature).
#![allow(dead_code)]

use serde_json::Value;
use std::process::Command;

use crate::support::PROXY_VARS;

/// Runs the doctor (in a blocking thread: the servers live on this runtime) with no proxy in
/// its environment but `env`; returns its exit status and standard output.
pub async fn doctor(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-doctor"));
        cmd.args(&args);
        for var in PROXY_VARS {
            cmd.env_remove(var);
        }
        cmd.envs(env);
        let out = cmd.output().expect("run gateway-doctor");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .expect("doctor thread")
}

/// The doctor with `--json`: its exit status and document.
pub async fn doctor_json(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, text) = doctor(&all, env).await;
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (code, doc)
}

pub fn verdict<'a>(doc: &'a Value, key: &str) -> &'a Value {
    &doc["verdict"][key]
}

/// The steps named `step` of hop `hop` (1-based).
pub fn steps<'a>(doc: &'a Value, hop: usize, step: &str) -> Vec<&'a Value> {
    doc["hops"][hop - 1]["steps"]
        .as_array()
        .map(|all| all.iter().filter(|s| s["step"] == step).collect())
        .unwrap_or_default()
}
