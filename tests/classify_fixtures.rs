//! Every recorded gateway response in `tests/fixtures/gateway-responses.jsonl` (and any newer
//! case of the shared copy beside the repository) classifies to its expected cause (or one of the
//! causes the fixture also accepts).

mod support;

use reqwest_resilience::ErrorKind;
use reqwest_resilience::classify::classify_response;

fn kind_of(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "cgi-timeout" => ErrorKind::CgiTimeout,
        "premature-exit" => ErrorKind::PrematureExit,
        "forwarder-connection" => ErrorKind::ForwarderConnection,
        "no-server" => ErrorKind::NoServer,
        "websocket" => ErrorKind::WebSocket,
        "forwarded-request" => ErrorKind::ForwardedRequest,
        "execute-request" => ErrorKind::ExecuteRequest,
        "bad-gateway" => ErrorKind::BadGateway,
        "service-unavailable" => ErrorKind::ServiceUnavailable,
        "none" => return None,
        other => panic!("fixture names an unknown cause {other:?}"),
    })
}

#[test]
fn every_recorded_fixture_classifies_as_expected() {
    let fixtures = support::fixtures::load();
    let mut failures = Vec::new();
    for case in &fixtures {
        let expect = kind_of(&case.expect);
        let also_ok: Vec<Option<ErrorKind>> = case.also_ok.iter().map(|c| kind_of(c)).collect();
        let got = classify_response(case.status, &case.headers, &case.body).map(|c| c.kind);
        if got != expect && !also_ok.contains(&got) {
            failures.push(format!(
                "{}: expected {expect:?} (or {also_ok:?}), got {got:?}",
                case.id
            ));
        }
    }
    let path = support::fixtures::path();
    assert!(
        fixtures.len() >= 40,
        "only {} fixtures read from {}",
        fixtures.len(),
        path.display()
    );
    assert!(
        failures.is_empty(),
        "misclassified:\n{}",
        failures.join("\n")
    );
}

/// Where the shared copy is beside the repository, the cases both copies have are compared.
/// New or changed shared cases are classified by the test above either way; with
/// `FIXTURES_STRICT=1` a difference also fails here, to catch a copy that fell behind
/// (nothing requires the shared copy to exist).
#[test]
fn the_repository_copy_agrees_with_the_shared_one() {
    let Some(shared) = support::fixtures::shared_path() else {
        eprintln!("no shared fixtures beside the repository: nothing to compare");
        return;
    };
    let ours = support::fixtures::lines_by_id(&support::fixtures::path());
    let theirs = support::fixtures::lines_by_id(&shared);
    let differ: Vec<&str> = theirs
        .iter()
        .filter(|(id, line)| ours.iter().any(|(i, l)| i == id && l != line))
        .map(|(id, _)| id.as_str())
        .collect();
    if std::env::var_os("FIXTURES_STRICT").is_some() {
        assert!(
            differ.is_empty(),
            "cases that differ between the copies (run scripts/sync-fixtures.sh): {differ:?}"
        );
    } else if !differ.is_empty() {
        eprintln!(
            "note: cases that differ between the copies (run scripts/sync-fixtures.sh): {differ:?}"
        );
    }
    let mut ids: Vec<&str> = ours.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "duplicate ids in the repository's copy");
}
