//! The C test programs build, run deterministically, reach their stop mode with every thread
//! parked deep in a chain, and still contain the machine-code shapes they exist to test.

use orc_testkit::gdb;
use orc_testkit::programs::{self, Build, Compiler};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The builds every test runs on: gcc, and clang when installed.
fn builds() -> Vec<Build> {
    let mut builds = vec![Build::default()];
    if programs::clang_available() {
        builds.push(Build::with(Compiler::Clang));
    }
    builds
}

fn run(path: &Path, args: &[&str]) -> String {
    let out = Command::new(path).args(args).output().expect("run test program");
    assert!(out.status.success(), "{} {args:?}: {:?}\n{}", path.display(), out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The arguments each program is run with besides its defaults.
fn extra_args(name: &str) -> &'static [&'static str] {
    match name {
        "recursion" => &["37"],
        "threads" => &["3", "9"],
        "signal_leaf" => &["2"],
        _ => &["7"],
    }
}

#[test]
fn every_program_prints_the_same_result_at_o2_as_at_o0() {
    // -O0 compiles the same C without any of the shapes: equal output means the optimized
    // program computes what its source says, and does so deterministically.
    for build in builds() {
        let plain = Build { opt: "-O0", ..build.clone() };
        for name in programs::names() {
            let optimized = programs::build(name, &build).unwrap();
            let reference = programs::build(name, &plain).unwrap();
            for args in [&[][..], extra_args(name)] {
                let got = run(&optimized, args);
                assert!(got.starts_with(&format!("{name} ")), "{name} {args:?}: {got:?}");
                assert_eq!(got.lines().count(), 1, "{name} {args:?}: {got:?}");
                assert_eq!(got, run(&optimized, args), "{name} {args:?} is not deterministic");
                assert_eq!(got, run(&reference, args), "{name} {args:?}: -O2 and -O0 differ");
            }
        }
    }
}

#[test]
fn arguments_change_the_result() {
    // The programs really read their arguments (a run with other arguments is other work).
    let build = Build::default();
    for name in programs::names() {
        let path = programs::build(name, &build).unwrap();
        assert_ne!(run(&path, &[]), run(&path, extra_args(name)), "{name}");
    }
}

#[test]
fn signal_leaf_counts_the_signals_it_was_asked_for() {
    let path = programs::build("signal_leaf", &Build::default()).unwrap();
    assert_eq!(run(&path, &[]), "signal_leaf signals=3\n");
    assert_eq!(run(&path, &["5"]), "signal_leaf signals=5\n");
}

#[test]
fn builds_are_cached_and_keyed_by_flags() {
    let a = programs::build("recursion", &Build::default()).unwrap();
    let b = programs::build("recursion", &Build::default()).unwrap();
    assert_eq!(a, b);
    let fp = programs::build("recursion", &Build { omit_frame_pointer: false, ..Build::default() }).unwrap();
    let no_pie = programs::build("recursion", &Build { pie: false, ..Build::default() }).unwrap();
    assert_ne!(a, fp);
    assert_ne!(a, no_pie);
    assert_ne!(fp, no_pie);
    let header = |p: &Path| std::fs::read(p).unwrap()[16];
    // e_type: ET_DYN (3) for PIE, ET_EXEC (2) without.
    assert_eq!(header(&a), 3);
    assert_eq!(header(&no_pie), 2);
}

#[test]
fn unknown_program_and_bad_flags_are_errors() {
    let err = programs::build("nonexistent", &Build::default()).unwrap_err();
    assert!(err.contains("nonexistent"), "{err}");
    let err = programs::build("recursion", &Build { extra: vec!["-fno-such-flag-at-all".into()], ..Build::default() }).unwrap_err();
    assert!(err.contains("recursion.c") && err.contains("gcc failed"), "{err}");
}

/// Stop-mode arguments and the number of threads each program then has.
fn stop_cases() -> Vec<(&'static str, Vec<&'static str>, usize)> {
    programs::names()
        .iter()
        .map(|&name| match name {
            "threads" => (name, vec!["8", "32"], 9),
            _ => (name, vec![], 1),
        })
        .collect()
}

#[test]
fn stop_mode_parks_every_thread() {
    for build in builds() {
        for (name, args, threads) in stop_cases() {
            let path = programs::build(name, &build).unwrap();
            let stopped = programs::spawn_stopped(&path, &args).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(stopped.tasks().unwrap().len(), threads, "{name}");
            assert!(programs::all_parked(stopped.pid()).unwrap(), "{name}");
            // Still parked a moment later: nothing wakes them.
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(programs::all_parked(stopped.pid()).unwrap(), "{name}");
        }
    }
}

#[test]
fn dropping_a_stopped_program_kills_it() {
    let path = programs::build("threads", &Build::default()).unwrap();
    let stopped = programs::spawn_stopped(&path, &["2", "4"]).unwrap();
    let pid = stopped.pid();
    drop(stopped);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} outlived its guard");
}

#[test]
fn a_program_that_never_gets_ready_is_an_error() {
    // The normal mode ignores "stop" semantics only when the argument is not first: running
    // the program with a bad depth makes it exit before printing ready.
    let path = programs::build("threads", &Build::default()).unwrap();
    let err = programs::spawn_stopped(&path, &["0"]).unwrap_err();
    assert!(err.contains("expected \"ready\""), "{err}");
}

#[test]
fn stopped_chains_are_deep_distinct_frames_for_gdb() {
    if !gdb::available() {
        eprintln!("gdb not installed: skipped");
        return;
    }
    // The functions of each program's chain, and how many of their frames at least.
    let expect: BTreeMap<&str, (&[&str], usize)> = [
        ("recursion", (&["down_a", "down_b", "down_c"][..], 50)),
        ("tailcall", (&["frame_outer"][..], 9)),
        ("switch", (&["chain"][..], 9)),
        ("alloca_drap", (&["alloca_chain"][..], 9)),
        ("signal_leaf", (&["handler_chain"][..], 7)),
        ("setjmp", (&["dive", "dive_b"][..], 20)),
        ("threads", (&["climb_a", "climb_b"][..], 31)),
        ("noreturn", (&["deep_check"][..], 10)),
    ]
    .into_iter()
    .collect();
    for (name, args, threads) in stop_cases() {
        let path = programs::build(name, &Build::default()).unwrap();
        let stopped = programs::spawn_stopped(&path, &args).unwrap();
        let listed = gdb::frames(stopped.pid()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(listed.len(), threads, "{name}: {listed:?}");
        let (functions, at_least) = expect[name];
        for thread in &listed {
            let trace = thread.names();
            let count = trace.iter().filter(|f| functions.contains(f)).count();
            assert!(count >= at_least, "{name}: {count} frames of {functions:?} < {at_least}: {trace:?}");
            for f in functions {
                assert!(trace.contains(f), "{name}: no frame of {f}: {trace:?}");
            }
            assert!(trace.contains(&"park"), "{name}: not parked: {trace:?}");
            assert!(trace.contains(&"main") || trace.contains(&"worker"), "{name}: gdb lost the chain: {trace:?}");
        }
        if name == "signal_leaf" {
            // The interrupted leaf is the frame right after the signal trampoline's, wherever
            // in spin the signal landed.
            let frames = &listed[0].frames;
            let signal = frames.iter().position(|f| f.kind == gdb::FrameKind::Signal);
            let signal = signal.unwrap_or_else(|| panic!("{name}: no signal frame: {frames:?}"));
            assert_eq!(frames.get(signal + 1).map(|f| f.name.as_str()), Some("spin"), "{name}: the leaf is not below the signal: {frames:?}");
        }
    }
}

/// One function's instructions from `objdump -d`: (address, text after the address).
type Listing = BTreeMap<String, Vec<(u64, String)>>;

fn disassemble(path: &Path) -> Listing {
    let out = Command::new("objdump").args(["-d", "--no-show-raw-insn", "-M", "att"]).arg(path).output().expect("run objdump");
    assert!(out.status.success());
    let mut functions = Listing::new();
    let mut current = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "0000000000001340 <aligned_only>:"
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")).map(|(_, n)| n.to_string()) {
            functions.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if let (Some(name), Some((addr, text))) = (&current, line.trim_start().split_once(":\t")) {
            if let Ok(addr) = u64::from_str_radix(addr, 16) {
                functions.get_mut(name).unwrap().push((addr, text.split_whitespace().collect::<Vec<_>>().join(" ")));
            }
        }
    }
    functions
}

fn function<'a>(listing: &'a Listing, name: &str, program: &str) -> &'a [(u64, String)] {
    listing.get(name).unwrap_or_else(|| panic!("{program}: no function {name}"))
}

fn has(insns: &[(u64, String)], pred: impl Fn(&str) -> bool) -> bool {
    insns.iter().any(|(_, t)| pred(t))
}

#[test]
fn the_shapes_are_in_the_machine_code() {
    for build in builds() {
        let gcc = build.compiler == Compiler::Gcc;
        let listing = |name: &str| disassemble(&programs::build(name, &build).unwrap());

        // switch: an indirect jump through a table inside dispatch.
        let l = listing("switch");
        let dispatch = function(&l, "dispatch", "switch");
        assert!(has(dispatch, |t| t.starts_with("jmp *") || t.starts_with("notrack jmp *")), "switch: no table jump in dispatch");
        if gcc {
            assert!(has(dispatch, |t| t.starts_with("movslq (")), "switch: no PIC table load (movslq)");
        }

        // alloca_drap: stack realignment; with gcc, a DRAP register.
        let l = listing("alloca_drap");
        for f in ["aligned_only", "aligned_vla"] {
            assert!(has(function(&l, f, "alloca_drap"), |t| t == "and $0xffffffffffffffc0,%rsp"), "alloca_drap: {f} does not realign");
        }
        if gcc {
            let f = function(&l, "aligned_vla", "alloca_drap");
            assert!(has(f, |t| t.starts_with("lea 0x8(%rsp),%r")), "alloca_drap: aligned_vla has no DRAP");
            assert!(has(f, |t| t.starts_with("push -0x8(%r")), "alloca_drap: aligned_vla does not copy its return address");
        }
        assert!(has(function(&l, "vla_sum", "alloca_drap"), |t| t.starts_with("sub %r") && t.ends_with(",%rsp")), "alloca_drap: vla_sum has no variable-size allocation");

        // tailcall: functions that end by jumping to another function.
        let l = listing("tailcall");
        let jumps_to = |from: &str, to: &str| has(function(&l, from, "tailcall"), |t| t.starts_with("jmp ") && t.ends_with(&format!("<{to}>")));
        assert!(jumps_to("hop_plain", "leaf"), "tailcall: hop_plain does not tail-call leaf");
        assert!(jumps_to("hop_after_call", "hop_plain"), "tailcall: hop_after_call does not tail-call");
        assert!(jumps_to("even_hop", "odd_hop") && jumps_to("odd_hop", "even_hop"), "tailcall: no mutual tail calls");
        let after_call = function(&l, "hop_after_call", "tailcall");
        assert!(has(after_call, |t| t.starts_with("push ") || t.starts_with("sub $")), "tailcall: hop_after_call has no frame");

        // noreturn: cold parts (gcc), and a function whose last instruction is a call.
        let l = listing("noreturn");
        if gcc {
            let cold: Vec<&String> = l.keys().filter(|k| k.ends_with(".cold")).collect();
            assert!(cold.len() >= 2, "noreturn: cold parts: {cold:?}");
        }
        let finish = function(&l, "finish", "noreturn");
        let last = finish.iter().rev().find(|(_, t)| !t.starts_with("nop") && !t.starts_with("cs nop") && !t.starts_with("data16") && !t.starts_with("xchg %ax,%ax") && t != "int3").unwrap();
        assert!(last.1.starts_with("call ") && last.1.contains("exit"), "noreturn: finish ends with {last:?}");

        // signal_leaf: the interrupted function is a frameless leaf.
        let l = listing("signal_leaf");
        let spin = function(&l, "spin", "signal_leaf");
        assert!(!has(spin, |t| t.starts_with("call") || t.starts_with("push") || t.contains(",%rsp")), "signal_leaf: spin is not a frameless leaf: {spin:?}");

        // recursion: each level calls the next (no loop, no tail call).
        let l = listing("recursion");
        for (from, to) in [("down_a", "down_b"), ("down_b", "down_c"), ("down_c", "down_a")] {
            assert!(has(function(&l, from, "recursion"), |t| t.starts_with("call ") && t.ends_with(&format!("<{to}>"))), "recursion: {from} does not call {to}");
        }

        // setjmp: the frame that sets the jump target, and the jump out.
        let l = listing("setjmp");
        assert!(has(function(&l, "rounds_loop", "setjmp"), |t| t.starts_with("call ") && t.contains("setjmp")), "setjmp: rounds_loop calls no setjmp");
        assert!(has(function(&l, "escape", "setjmp"), |t| t.contains("longjmp")), "setjmp: escape does not longjmp");
    }
}
