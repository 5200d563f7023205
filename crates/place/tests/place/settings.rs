//! Every setting of every mode (`place serve`, `edge`, `shard`, `worker`) is one name in places
//! that must agree: the TOML key (a field of the mode's struct), the flag and its environment
//! variable (declared once, on that field, and shown by `place MODE --help`), the default, and the
//! README's tables. This test reads them all, so a setting added to one and forgotten in another
//! fails here; it also runs the binary to check the layering (flags over environment over file)
//! and that a bad value exits 64 naming the setting before anything is bound. Needs no outside
//! service.

use std::collections::BTreeMap;
use std::process::Command;

use clap::Args;
use place::config::{EdgeNodeConfig, ServeConfig, ShardNodeConfig, WorkerConfig};

/// Settings only the TOML file can carry (a list): the README shows them as TOML.
const TOML_ONLY: [&str; 1] = ["palette"];

/// A setting as its mode's struct declares it.
#[derive(Debug)]
struct Setting {
    flag: String,
    env: String,
    default: Option<String>,
}

/// The settings of a mode's struct `T`, by TOML key: every field, with the flag, variable and
/// default its attribute declares (none for the TOML-only ones).
fn settings<T: Args + serde::Serialize + Default>() -> BTreeMap<String, Option<Setting>> {
    let command = T::augment_args(clap::Command::new("place"));
    let value = serde_json::to_value(T::default()).expect("serialise the defaults");
    let keys = value.as_object().expect("a table of settings").keys();
    keys.map(|key| {
        let arg = command.get_arguments().find(|a| a.get_id().as_str() == key);
        let setting = arg.filter(|a| !a.is_hide_set()).map(|a| Setting {
            flag: format!("--{}", a.get_long().expect("a long flag")),
            env: a
                .get_env()
                .expect("an environment variable")
                .to_string_lossy()
                .into_owned(),
            default: a
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned()),
        });
        (key.clone(), setting)
    })
    .filter(|(key, setting)| setting.is_some() || TOML_ONLY.contains(&key.as_str()))
    .collect()
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md")
}

fn help(mode: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_place"))
        .args([mode, "--help"])
        .output()
        .expect("place --help");
    assert!(out.status.success(), "place {mode} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What is missing for `mode`'s settings in its help and in the README.
fn missing(mode: &str, settings: &BTreeMap<String, Option<Setting>>) -> Vec<String> {
    let help = help(mode);
    let readme = readme();
    let mut missing = Vec::new();
    for (key, setting) in settings {
        let Some(setting) = setting else {
            if !readme.contains(&format!("`{key} = ")) {
                missing.push(format!("{key}: the README does not show it as TOML"));
            }
            continue;
        };
        let Setting { flag, env, default } = setting;
        if !help.contains(&format!("{flag} ")) {
            missing.push(format!("{key}: no {flag} in `place {mode} --help`"));
        }
        if !help.contains(&format!("[env: {env}=")) {
            missing.push(format!("{key}: no {env} in `place {mode} --help`"));
        }
        // The settings' table rows name the key in their first column.
        let row = readme.lines().find(|line| {
            line.starts_with('|')
                && line
                    .split('|')
                    .nth(1)
                    .is_some_and(|cell| cell.contains(&format!("`{key}`")))
        });
        let Some(row) = row else {
            missing.push(format!("{key}: no row of the README's tables"));
            continue;
        };
        for text in [format!("`{flag}`"), format!("`{env}`")] {
            if !row.contains(&text) {
                missing.push(format!("{key}: its README row does not name {text}"));
            }
        }
        if let Some(default) = default {
            if !row.contains(default.as_str()) {
                missing.push(format!(
                    "{key}: its README row does not give its default {default}"
                ));
            }
        }
    }
    missing
}

#[test]
fn every_setting_of_every_mode_has_a_flag_an_environment_variable_and_a_readme_row() {
    let serve = settings::<ServeConfig>();
    assert!(serve.len() >= 30, "only {} settings read", serve.len());
    let mut missing = missing("serve", &serve);
    missing.extend(missing_for("edge", settings::<EdgeNodeConfig>()));
    missing.extend(missing_for("shard", settings::<ShardNodeConfig>()));
    missing.extend(missing_for("worker", settings::<WorkerConfig>()));
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

fn missing_for(mode: &str, settings: BTreeMap<String, Option<Setting>>) -> Vec<String> {
    for key in ["cluster", "database_url", "width"] {
        assert!(settings.contains_key(key), "{mode} has no {key}");
    }
    missing(mode, &settings)
}

#[test]
fn each_environment_variable_is_declared_once_in_the_binary() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("src") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for (i, _) in text.match_indices("\"PLACE_") {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            *seen.entry(name).or_default() += 1;
        }
    }
    assert!(seen.len() >= 30, "only {} names found", seen.len());
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "declared more than once: {twice:?}");
}

/// Runs `place ARGS` with `env` and returns its exit status and standard error.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_place"));
    command.args(args);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("PLACE_")) {
        command.env_remove(name);
    }
    let out = command
        .envs(env.iter().copied())
        .output()
        .expect("run place");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("place.toml");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    // Validation checks `width` before `cooldown_secs`: the first bad value left is the one named.
    std::fs::write(&file, "width = 0\ncooldown_secs = 100000\n").expect("write");
    let file = file.to_str().expect("utf-8 path");
    let serve = ["serve", "--config", file, "--data-dir", data];
    let (code, stderr) = run(&serve, &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("`width`"), "the file's width: {stderr}");
    let (code, stderr) = run(&serve, &[("PLACE_WIDTH", "64")]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("`cooldown_secs`"),
        "the environment's width wins: {stderr}"
    );
    let with_flag: Vec<&str> = serve.iter().copied().chain(["--width", "0"]).collect();
    let (code, stderr) = run(&with_flag, &[("PLACE_WIDTH", "64")]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("`width`"),
        "the flag's width wins: {stderr}"
    );
    // The file named by the environment, too.
    let (code, stderr) = run(&["serve", "--data-dir", data], &[("PLACE_CONFIG", file)]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("`width`"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is made before the settings are checked"
    );
}

#[test]
fn cluster_modes_check_their_settings_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, "id = \"edge-1\"\ncluster = \"Bad-Name\"\n").expect("write");
    let file = file.to_str().expect("utf-8 path");
    for (args, env, setting) in [
        (vec!["edge"], vec![], "id"),
        (vec!["edge", "--config", file], vec![], "cluster"),
        (
            vec!["edge", "--config", file, "--cluster", "good"],
            vec![("PLACE_REDIS_URL", "http://x")],
            "redis_url",
        ),
        (
            vec!["shard", "--id", "shard-1", "--listen-quic", "nowhere"],
            vec![],
            "listen_quic",
        ),
        (
            vec!["shard", "--id", "shard-1", "--failover-after-secs", "5000"],
            vec![],
            "failover_after_secs",
        ),
        (
            vec!["worker"],
            vec![("PLACE_AMQP_URL", "http://x")],
            "amqp_url",
        ),
        (
            vec!["worker", "--database-url", "mysql://x"],
            vec![],
            "database_url",
        ),
        (vec!["worker", "--width", "0"], vec![], "width"),
    ] {
        let (code, stderr) = run(&args, &env);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("`{setting}`")),
            "{args:?}: {stderr}"
        );
    }
}
