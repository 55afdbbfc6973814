//! The README's commands, run as a user would type them.
//!
//! Every ```sh block of README.md is run, in order, by one bash in a
//! scratch directory, against this checkout's `kiln` and a real origin on
//! loopback; a block marked `<!-- ci -->` (installing, the two commands)
//! is run by `.ci/run` instead. What cannot exist here is put where it can,
//! and only that: the app at `127.0.0.1:8000` is the test's origin, the
//! daemon's `7878` is a port the test picked, `/srv/www` and
//! `/etc/nginx/conf.d/` are inside the scratch directory, `nginx -t` checks
//! against a scratch nginx.conf, `systemctl` (no systemd here) only says
//! what it would do, and a `kiln serve` is stopped once it answers, as a
//! user's Ctrl-C would. A block that fails fails the test, naming its line.

use std::path::Path;

use crate::require;
use crate::util::{Nginx, Origin, Page, free_port};

/// A fenced shell block: its first line number and text.
struct Block {
    line: usize,
    text: String,
}

/// The ```sh blocks not marked `<!-- ci -->`, and how many were marked.
fn sh_blocks(readme: &str) -> (Vec<Block>, usize) {
    let mut blocks = Vec::new();
    let mut ci = 0;
    let mut lines = readme.lines().enumerate().peekable();
    let mut previous = "";
    while let Some((n, line)) = lines.next() {
        if line.trim_start().starts_with("```sh") {
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            if previous.trim() == "<!-- ci -->" {
                ci += 1;
            } else {
                blocks.push(Block { line: n + 1, text });
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    (blocks, ci)
}

/// What stands in for what a machine of the README's reader has.
fn localize(text: &str) -> String {
    text.replace("http://127.0.0.1:8000", "$ORIGIN")
        .replace("localhost:7878", "$KILN_DAEMON")
        .replace("/srv/www", "$SCRATCH/srv/www")
        .replace("/etc/nginx/conf.d/", "$SCRATCH/nginx/conf.d/")
}

/// Shell functions the blocks run with (see the module doc).
const PRELUDE: &str = r#"
set -eo pipefail
wait_port() {
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
next_port() { PORT=${PORTS%% *}; PORTS=${PORTS#* }; }
kiln() {
    case " $* " in
    *" serve "*)
        next_port
        "$KILN_BIN" "$@" --listen "127.0.0.1:$PORT" >>"$SCRATCH/serve.log" 2>&1 &
        local pid=$!
        echo "$pid" >>"$SCRATCH/pids"
        wait_port "$PORT" || { cat "$SCRATCH/serve.log"; return 1; }
        # What the reader would look at, then Ctrl-C.
        exec 3<>"/dev/tcp/127.0.0.1/$PORT"
        printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        head -1 <&3 | grep -q ' 200 ' || { echo "kiln serve did not answer 200 for /"; return 1; }
        exec 3>&-
        kill -INT "$pid"
        wait "$pid" || true
        ;;
    *" daemon "*)
        next_port
        "$KILN_BIN" "$@" --listen "127.0.0.1:$PORT" >>"$SCRATCH/daemon.log" 2>&1 &
        echo $! >>"$SCRATCH/pids"
        wait_port "$PORT" || { cat "$SCRATCH/daemon.log"; return 1; }
        KILN_DAEMON="127.0.0.1:$PORT"
        ;;
    *) "$KILN_BIN" "$@" ;;
    esac
}
nginx() {
    if [ "$1" = "-t" ]; then
        command nginx -t -p "$SCRATCH/nginx" -c "$SCRATCH/nginx/nginx.conf"
    else
        echo "(README test: nginx $* not run)"
    fi
}
systemctl() { echo "(README test: no systemd here; would run systemctl $*)"; }
"#;

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_block_of_the_readme_runs() {
    require!("nginx");
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (blocks, ci) = sh_blocks(&readme);
    assert!(blocks.len() >= 6, "only {} blocks found", blocks.len());
    assert!(
        ci >= 2,
        "the install and two-commands blocks are marked for .ci/run"
    );
    // The app the README's examples talk about.
    let origin = Origin::start(vec![
        (
            "/",
            Page::html(
                r#"<a href="/blog/">blog</a> <a href="/blog/post-1/">post</a> <a href="/old-page/">old</a>"#,
            ),
        ),
        (
            "/blog/",
            Page::html(r#"<a href="/blog/post-1/">post 1</a>"#).with_header("surrogate-key", "post:42 list"),
        ),
        ("/blog/post-1/", Page::html("post 1").with_header("surrogate-key", "post:42")),
        ("/old-page/", Page::html("old")),
    ])
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let nginx_dir = scratch.path().join("nginx");
    std::fs::create_dir_all(nginx_dir.join("conf.d")).unwrap();
    Nginx::write_conf(
        &nginx_dir,
        &format!("include {}/conf.d/*.conf;", nginx_dir.display()),
    );
    let mut script = String::from(PRELUDE);
    for b in &blocks {
        script.push_str(&format!(
            "echo '### README.md line {}'\n{}\n",
            b.line,
            localize(&b.text)
        ));
    }
    script.push_str("echo '### every block ran'\n");
    let ports: Vec<String> = (0..8).map(|_| free_port().to_string()).collect();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(180),
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(scratch.path())
            .env("KILN_BIN", env!("CARGO_BIN_EXE_kiln"))
            .env("ORIGIN", origin.url())
            .env("SCRATCH", scratch.path())
            .env("PORTS", ports.join(" ") + " ")
            .env("KILN_DAEMON", "127.0.0.1:1")
            .env_remove("KILN_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    // Whatever happened, the daemons the blocks started stop with the test.
    let pids = std::fs::read_to_string(scratch.path().join("pids")).unwrap_or_default();
    for pid in pids.lines().filter_map(|p| p.parse::<u32>().ok()) {
        crate::util::signal(pid, libc::SIGTERM);
    }
    let run = run
        .expect("the README's blocks did not finish within 180 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let daemon_log = std::fs::read_to_string(scratch.path().join("daemon.log")).unwrap_or_default();
    let failed_at = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("### "))
        .unwrap_or("before the first block");
    assert!(
        run.status.success() && stdout.contains("### every block ran"),
        "a README block failed (last started: {failed_at}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- daemon log\n{daemon_log}"
    );
    // The commands did what the README says they do.
    assert!(
        scratch.path().join("my-blog/public/index.html").is_file(),
        "kiln init --render + kiln build made a site"
    );
    assert!(
        scratch
            .path()
            .join("my-site/public/blog/post-1/index.html")
            .is_file()
    );
    assert!(scratch.path().join("srv/www/index.html").is_file());
    assert!(scratch.path().join("srv/.kiln/www/index.db").is_file());
    assert!(
        std::fs::read_to_string(nginx_dir.join("conf.d/kiln.conf"))
            .unwrap()
            .contains("server_name example.org"),
    );
    assert!(
        stdout.contains("\"job\""),
        "the curl block reached the daemon: {stdout}"
    );
}
