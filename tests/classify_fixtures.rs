//! Every recorded gateway response in `../shared/fixtures/gateway-responses.jsonl` classifies to
//! its expected cause (or one of the causes the fixture also accepts).

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
fn every_shared_fixture_classifies_as_expected() {
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
