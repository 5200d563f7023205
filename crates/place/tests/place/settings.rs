//! Every setting of every mode (`place serve`, `edge`, `shard`, `worker`) is one name in places
//! that must agree: the TOML key (a field of the mode's struct), the flag and its environment
//! variable (declared once, on that field, and shown by `place MODE --help`), the default, and the
//! README's tables (a row also names the modes that take it). This test reads them all, so a
//! setting added to one and forgotten in another fails here, and so does a setting a mode lists
//! or takes without using it (its sections are by role: a shard has no cookies). It also runs the
//! binary to check the layering (flags over environment over file) and that a bad value exits 64
//! naming the setting before anything is bound. Needs no outside service.

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

/// Every mode's settings, by mode.
fn every_mode() -> BTreeMap<&'static str, BTreeMap<String, Option<Setting>>> {
    BTreeMap::from([
        ("serve", settings::<ServeConfig>()),
        ("edge", settings::<EdgeNodeConfig>()),
        ("shard", settings::<ShardNodeConfig>()),
        ("worker", settings::<WorkerConfig>()),
    ])
}

#[test]
fn every_setting_of_every_mode_has_a_flag_an_environment_variable_and_a_readme_row() {
    let modes = every_mode();
    assert!(
        modes["serve"].len() >= 30,
        "only {} settings read",
        modes["serve"].len()
    );
    for mode in ["edge", "shard", "worker"] {
        for key in ["cluster", "database_url", "width", "log_format"] {
            assert!(modes[mode].contains_key(key), "{mode} has no {key}");
        }
    }
    let missing: Vec<String> = modes
        .iter()
        .flat_map(|(mode, settings)| missing(mode, settings))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The modes the README's tables say take each setting: the row's cell made of mode names.
fn readme_modes() -> BTreeMap<String, Vec<String>> {
    let names = ["serve", "edge", "shard", "worker"];
    let mut by_key = BTreeMap::new();
    for line in readme().lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(modes) = cells
            .iter()
            .find(|cell| !cell.is_empty() && cell.split(", ").all(|mode| names.contains(&mode)))
        else {
            continue;
        };
        let modes: Vec<String> = modes.split(", ").map(String::from).collect();
        let keys = cells[1].split(", ").map(|key| key.trim_matches('`'));
        // A TOML-only setting is shown in the row of the one it goes with.
        let toml_only = TOML_ONLY
            .into_iter()
            .filter(|key| line.contains(&format!("`{key} = ")));
        for key in keys.chain(toml_only) {
            by_key.insert(key.to_owned(), modes.clone());
        }
    }
    by_key
}

#[test]
fn a_mode_lists_and_takes_only_its_own_settings() {
    let modes = every_mode();
    let all: std::collections::BTreeSet<&String> = modes.values().flat_map(|s| s.keys()).collect();
    let readme = readme_modes();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("place.toml");
    let file_arg = file.to_str().expect("utf-8 path");
    let mut wrong = Vec::new();
    for (mode, settings) in &modes {
        let help = help(mode);
        for key in &all {
            let taken = settings.contains_key(*key);
            let listed = readme
                .get(*key)
                .is_some_and(|m| m.iter().any(|m| m == mode));
            if taken != listed {
                wrong.push(format!(
                    "{key}: taken by {mode} {taken}, its README row says {listed}"
                ));
            }
            if taken {
                continue;
            }
            let flag = format!("--{} ", key.replace('_', "-"));
            if help.contains(&flag) {
                wrong.push(format!(
                    "{key}: not {mode}'s, yet `place {mode} --help` lists {flag}"
                ));
            }
            // Refused in the file, naming the key (before any value is read).
            std::fs::write(&file, format!("{key} = 1\n")).expect("write");
            let (code, stderr) = run(&[mode, "--config", file_arg], &[]);
            if code != Some(64) || !stderr.contains(&format!("unknown setting `{key}`")) {
                wrong.push(format!(
                    "{key}: not {mode}'s, yet its file took it: {stderr}"
                ));
            }
        }
    }
    assert!(all.len() >= 40, "only {} settings read", all.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What a shard, an edge and a worker do not use, for the reader.
    assert!(!modes["shard"].contains_key("cooldown_secs"));
    assert!(!modes["shard"].contains_key("max_websockets_per_address"));
    assert!(!modes["worker"].contains_key("listen"));
    assert!(!modes["edge"].contains_key("data_dir"));
    assert!(!modes["worker"].contains_key("redis_url"));
    assert!(!modes["shard"].contains_key("amqp_url"));
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
