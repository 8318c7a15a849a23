//! Every recorded gateway response in `tests/fixtures/gateway-responses.jsonl` (and any newer
//! case of the shared copy beside the repository) classifies to its expected cause (or one of the
//! causes the fixture also accepts); the application answers in
//! `tests/fixtures/application-answers.jsonl` stay answers. Both figures are measured here.

mod support;

use reqwest_resilience::ErrorKind;
use reqwest_resilience::classify::classify_response;

/// The 502.4 cases whose gateway says the name did not resolve (HAProxy with a backend that
/// does not resolve says only "no server is available": no healthy server, as far as a caller
/// can tell). The fixtures name causes by
/// their IIS substatus (`no-server`), which this crate splits into two variants.
const NAME_NOT_RESOLVED: &[&str] = &["cloudflare-530-1016"];

/// The cause a fixture expects for case `id`, from its name in the fixture file.
fn expected(id: &str, name: &str) -> Option<ErrorKind> {
    match name {
        "no-server" if NAME_NOT_RESOLVED.contains(&id) => Some(ErrorKind::NameNotResolved),
        "no-server" => Some(ErrorKind::NoHealthyServer),
        other => kind_of(other),
    }
}

fn kind_of(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "cgi-timeout" => ErrorKind::TimedOut,
        "premature-exit" => ErrorKind::ConnectionClosed,
        "forwarder-connection" => ErrorKind::ConnectFailed,
        "websocket" => ErrorKind::WebSocket,
        "forwarded-request" => ErrorKind::SendFailed,
        "execute-request" => ErrorKind::InvalidResponse,
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
        let expect = expected(&case.id, &case.expect);
        let also_ok: Vec<Option<ErrorKind>> =
            case.also_ok.iter().map(|c| expected(&case.id, c)).collect();
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

/// Where the shared copy is beside the repository, the cases both copies have must agree (run
/// `scripts/sync-fixtures.sh` when they do not); new shared cases are classified by the test
/// above either way. Nothing requires the shared copy to exist: a user's clone has none.
#[test]
fn the_repository_copy_agrees_with_the_shared_one() {
    let Some(shared) = support::fixtures::shared_path() else {
        println!("no shared fixtures beside the repository: nothing to compare");
        return;
    };
    let ours = support::fixtures::lines_by_id(&support::fixtures::path());
    let theirs = support::fixtures::lines_by_id(&shared);
    let differ: Vec<&str> = theirs
        .iter()
        .filter(|(id, line)| ours.iter().any(|(i, l)| i == id && l != line))
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        differ.is_empty(),
        "cases that differ between the copies (run scripts/sync-fixtures.sh): {differ:?}"
    );
    let mut ids: Vec<&str> = ours.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "duplicate ids in the repository's copy");
}

/// Both directions, measured: the share of gateway pages classified to their cause (recall),
/// and the share of applications' own error answers — frameworks' default error handlers and
/// handlers that quote their dependency's connection, DNS or timeout error, captured on
/// loopback with no proxy in front — that stay answers (precision). Run with `--nocapture` to
/// see the figures the README quotes.
#[test]
fn application_answers_stay_answers_and_gateway_pages_keep_their_cause() {
    let gateway_file = support::fixtures::load();
    let apps_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/application-answers.jsonl");
    let mut answers = support::fixtures::read(&apps_path);
    assert!(
        answers.len() >= 40,
        "only {} application answers",
        answers.len()
    );
    let gateway_pages: Vec<_> = gateway_file.iter().filter(|c| c.expect != "none").collect();
    answers.extend(gateway_file.iter().filter(|c| c.expect == "none").map(|c| {
        support::fixtures::Fixture {
            id: c.id.clone(),
            status: c.status,
            headers: c.headers.clone(),
            body: c.body.clone(),
            expect: c.expect.clone(),
            also_ok: c.also_ok.clone(),
        }
    }));
    let misread: Vec<String> = answers
        .iter()
        .filter_map(|c| {
            classify_response(c.status, &c.headers, &c.body)
                .map(|found| format!("{}: {:?}", c.id, found.kind))
        })
        .collect();
    let right = gateway_pages
        .iter()
        .filter(|c| {
            let got = classify_response(c.status, &c.headers, &c.body).map(|f| f.kind);
            got == expected(&c.id, &c.expect) || c.also_ok.iter().any(|a| expected(&c.id, a) == got)
        })
        .count();
    let kept = answers.len() - misread.len();
    let precision = kept as f64 / answers.len() as f64;
    let recall = right as f64 / gateway_pages.len() as f64;
    println!(
        "application answers kept as answers: {kept}/{} ({:.1}%); gateway pages classified to their cause: {right}/{} ({:.1}%)",
        answers.len(),
        precision * 100.0,
        gateway_pages.len(),
        recall * 100.0
    );
    assert!(
        precision >= 0.98,
        "answers read as gateway failures:\n{}",
        misread.join("\n")
    );
    assert_eq!(
        right,
        gateway_pages.len(),
        "every gateway page keeps its cause"
    );
}
