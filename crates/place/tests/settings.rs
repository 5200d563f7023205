//! Every setting of `place serve` is one name in three places that must agree: the TOML key (a
//! field of `ServeConfig`), the flag and its environment variable (`place serve --help`), and
//! the README's tables. This test reads all three, so a setting added to one and forgotten in
//! another fails here. Needs no outside service.

use std::collections::BTreeSet;
use std::process::Command;

use place::config::ServeConfig;

/// Settings only the TOML file can carry (a list): the README shows them as TOML.
const TOML_ONLY: [&str; 1] = ["palette"];

/// The TOML keys: the fields of `ServeConfig`.
fn keys() -> BTreeSet<String> {
    let value = serde_json::to_value(ServeConfig::default()).expect("serialise the defaults");
    value
        .as_object()
        .expect("a table of settings")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_setting_has_a_flag_an_environment_variable_and_a_readme_row() {
    let help = Command::new(env!("CARGO_BIN_EXE_place"))
        .args(["serve", "--help"])
        .output()
        .expect("place serve --help");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let keys = keys();
    assert!(keys.len() >= 30, "only {} settings read", keys.len());
    let mut missing = Vec::new();
    for key in &keys {
        if TOML_ONLY.contains(&key.as_str()) {
            if !readme.contains(&format!("`{key} = ")) {
                missing.push(format!("{key}: the README does not show it as TOML"));
            }
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        let env = format!("PLACE_{}", key.to_uppercase());
        if !help.contains(&format!("{flag} ")) {
            missing.push(format!("{key}: no {flag} in `place serve --help`"));
        }
        if !help.contains(&format!("[env: {env}=")) {
            missing.push(format!("{key}: no {env} in `place serve --help`"));
        }
        for (what, text) in [
            ("key", format!("`{key}`")),
            ("flag", format!("`{flag}`")),
            ("environment variable", format!("`{env}`")),
        ] {
            if !readme.contains(&text) {
                missing.push(format!("{key}: the README does not name its {what} {text}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
