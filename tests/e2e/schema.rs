//! The committed SDL is the contract: a change to the schema must update `api/schema.graphql`
//! (run with `UPDATE_SCHEMA=1` to rewrite it) so the diff shows up in review.

use qm_tests::TestApp;

#[test]
fn the_committed_schema_matches_the_code() {
    let path = TestApp::repo_root().join("api/schema.graphql");
    let current = qm_api::graphql::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).expect("write schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "api/schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test -p qm-tests schema`"
    );
}
