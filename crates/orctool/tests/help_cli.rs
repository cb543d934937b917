//! What a newcomer meets first: the help of every command and the errors of a command run
//! without what it needs (issue 17's "small things").

use std::process::{Command, Output};

fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf-8 help")
}

/// The commands, as `orctool --help` lists them (every line of its "Commands:" block that
/// starts a command; the wrapped continuation lines are indented further).
fn commands() -> Vec<String> {
    let help = stdout(&orctool(&["--help"]));
    let block = help.split_once("Commands:\n").expect("a Commands: block").1;
    block
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|&c| c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn unwind_without_a_target_names_all_three() {
    let out = orctool(&["unwind"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for option in ["--snapshot", "--pid", "--core"] {
        assert!(err.contains(option), "no {option} in: {err}");
    }
    // Options that only shape the output do not stand in for a target.
    let out = orctool(&["unwind", "--json", "--no-lines"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--core"));
}

#[test]
fn unwind_takes_one_target_only() {
    for pair in [["--pid", "1", "--core", "c"], ["--snapshot", "s", "--pid", "1"], ["--snapshot", "s", "--core", "c"]] {
        let out = orctool(&[&["unwind"][..], &pair[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{pair:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot be used with"), "{pair:?}: {err}");
    }
}

#[test]
fn the_one_line_help_of_check_names_programs_and_libraries() {
    let help = stdout(&orctool(&["--help"]));
    // The command's summary, wrapped over several lines: up to the next command.
    let from = help.find("\n  check ").expect("check is listed");
    let summary: String = help[from + 1..].lines().take_while(|l| l.starts_with("  check ") || l.starts_with("   ")).collect::<Vec<_>>().join(" ");
    let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(summary.contains("kernel object"), "{summary}");
    assert!(summary.contains("executable"), "{summary}");
    assert!(summary.contains("shared library"), "{summary}");
}

#[test]
fn every_command_has_the_same_shape_of_help() {
    let commands = commands();
    assert!(commands.len() >= 7, "{commands:?}");
    assert!(commands.iter().any(|c| c == "verify-exec"), "{commands:?}");
    for command in &commands {
        let long = stdout(&orctool(&[command, "--help"]));
        let short = stdout(&orctool(&[command, "-h"]));
        // One form of help: clap prints a separate long form (one paragraph per option, "see
        // a summary with '-h'") only when some option has a help of its own kind.
        assert_eq!(long, short, "{command}: --help and -h differ");
        assert!(long.starts_with(char::is_uppercase), "{command}: {long}");
        assert!(long.contains(&format!("Usage: orctool {command} ")), "{command}: {long}");
        let options = long.split_once("\nOptions:\n").unwrap_or_else(|| panic!("{command}: no Options: block")).1;
        // Each option's help starts on the option's own line.
        for line in options.lines().filter(|l| l.trim_start().starts_with('-')) {
            let (_, help) = line.trim_start().split_once("  ").unwrap_or_else(|| panic!("{command}: no help on the line {line:?}"));
            assert!(help.trim_start().starts_with(char::is_uppercase), "{command}: {line:?}");
        }
    }
}

#[test]
fn each_command_describes_itself_as_the_command_list_does() {
    // Commands are built lazily (clap's `defer`); a doc comment on a command's options struct
    // would then replace the description main.rs gives it. Words are compared, not wrapping.
    let help = stdout(&orctool(&["--help"]));
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for command in commands() {
        let from = help.find(&format!("\n  {command} ")).expect("listed") + 1;
        let listed: Vec<&str> = help[from..]
            .lines()
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with("   "))
            .map(|(_, l)| l)
            .collect();
        let listed = words(&listed.join(" "));
        let listed = listed.strip_prefix(&command).expect("starts with the command").trim();
        let own = stdout(&orctool(&[&command, "--help"]));
        let own = words(own.split("\n\n").next().expect("a first paragraph"));
        let listed = listed.trim_end_matches('.');
        assert!(own.starts_with(listed), "{command}: `orctool --help` says {listed:?}, its own help {own:?}");
    }
}
