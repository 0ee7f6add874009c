//! `izzi completions` and `izzi man` on the real binary: the bash script loads and completes,
//! every shell gets a script, and the man pages render with `man -l`.

use std::process::Command;

use tempfile::TempDir;

use crate::count_tokens::izzi;

fn completions(home: &TempDir, shell: &str) -> String {
    let out = izzi(home)
        .args(["completions", shell])
        .output()
        .expect("run izzi");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("a UTF-8 script")
}

/// Runs `script` in a non-interactive bash and gives its stdout.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .output()
        .expect("bash is installed");
    assert!(out.status.success(), "bash failed: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn bash_completion_loads_and_completes_commands_and_flags() {
    let home = TempDir::new().unwrap();
    let script = home.path().join("izzi.bash");
    std::fs::write(&script, completions(&home, "bash")).unwrap();
    let path = script.display();
    bash(&format!("bash -n '{path}'"));

    let registered = bash(&format!("source '{path}'; complete -p izzi"));
    assert!(registered.contains("-F _izzi"), "{registered}");

    // What bash does on `izzi se<TAB>`, `izzi serve --c<TAB>` and `izzi completions <TAB>`.
    let complete = |words: &[&str]| {
        let words_array = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let line = words.join(" ");
        bash(&format!(
            "source '{path}'; COMP_WORDS=({words_array}); COMP_CWORD={}; COMP_LINE='{line}'; \
             COMP_POINT=${{#COMP_LINE}}; _izzi izzi '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        ))
    };
    let subcommands: Vec<String> = complete(&["izzi", "se"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(subcommands, ["serve", "setup", "service"]);
    let flags = complete(&["izzi", "serve", "--c"]);
    assert_eq!(flags.trim(), "--config");
    let shells = complete(&["izzi", "completions", ""]);
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        assert!(shells.lines().any(|l| l == shell), "{shells}");
    }
}

#[test]
fn every_shell_gets_a_script_and_a_bad_shell_is_a_usage_error() {
    let home = TempDir::new().unwrap();
    assert!(completions(&home, "zsh").starts_with("#compdef izzi"));
    assert!(completions(&home, "fish").contains("complete -c izzi"));
    assert!(completions(&home, "powershell").contains("Register-ArgumentCompleter"));
    assert!(completions(&home, "elvish").contains("edit:completion:arg-completer[izzi]"));

    let out = izzi(&home).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn man_pages_render_with_man() {
    let home = TempDir::new().unwrap();
    let dir = home.path().join("man");
    let out = izzi(&home).arg("man").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "izzi.1",
        "izzi-serve.1",
        "izzi-keys-create.1",
        "izzi-completions.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} is missing");
    }
    assert!(
        !dir.join("izzi-man.1").exists(),
        "the hidden command got a page"
    );

    let render = |page: &str| {
        let out = Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(dir.join(page))
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man is installed (man-db)");
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `man` justifies lines: compare words.
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let main = render("izzi.1");
    assert!(main.contains("NAME"), "{main}");
    assert!(main.contains("izzi - One key and one endpoint"), "{main}");
    assert!(main.contains("izzi-serve(1)"), "{main}");
    let serve = render("izzi-serve.1");
    assert!(serve.contains("--config"), "{serve}");
    assert!(serve.contains("Run the local gateway"), "{serve}");
}
