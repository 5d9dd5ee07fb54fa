//! Repository rules as tests: the dependency direction between workspace crates.

use qm_tests::TestApp;

fn dependencies(krate: &str) -> Vec<String> {
    let text = std::fs::read_to_string(TestApp::repo_root().join(krate).join("Cargo.toml")).expect("manifest");
    let manifest: toml::Table = toml::from_str(&text).expect("valid toml");
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| manifest.get(*section).and_then(|d| d.as_table()))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

#[test]
fn crates_depend_only_in_the_allowed_direction() {
    let io = [
        "tokio",
        "sea-orm",
        "sea-orm-migration",
        "sqlx",
        "actix-web",
        "reqwest",
        "lettre",
        "osrm_client",
        "async-graphql",
        "hyper",
    ];
    let domain = dependencies("domain");
    for d in &domain {
        assert!(!d.starts_with("qm-"), "domain depends on workspace crate {d}");
        assert!(!io.contains(&d.as_str()), "domain depends on IO crate {d}");
    }
    for (krate, forbidden) in [
        // Connectors reach providers through the integrations' guarded HTTP (`net`).
        ("connectors", &["qm-api", "qm-migrations"][..]),
        ("integrations", &["qm-connectors", "qm-api", "qm-migrations"][..]),
        ("migrations", &["qm-domain", "qm-api", "qm-connectors", "qm-integrations"][..]),
    ] {
        for d in dependencies(krate) {
            assert!(!forbidden.contains(&d.as_str()), "{krate} must not depend on {d}");
        }
    }
    assert!(dependencies("api").contains(&"qm-domain".to_owned()));
}
