//! Tells the integration tests which server binaries this machine lacks, so
//! a test that needs one is reported by `cargo test` as *ignored* (with the
//! reason), not as passed. Under `CI=true` nothing is marked: the tests run
//! and fail loudly on a missing tool (tests/it/util.rs `require!`). The
//! kiln binary itself does not use these cfgs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Tools the integration tests start, and the cfg each one's absence sets.
const TOOLS: &[(&str, &str)] = &[
    ("nginx", "kiln_no_nginx"),
    ("chromium", "kiln_no_chromium"),
    ("redis-server", "kiln_no_redis"),
    ("s3s-fs", "kiln_no_s3s"),
    ("prlimit", "kiln_no_prlimit"),
    ("nox", "kiln_no_nox"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=CI");
    let mut cfgs: Vec<&str> = TOOLS.iter().map(|(_, c)| *c).collect();
    cfgs.extend(["kiln_no_django", "kiln_no_wagtail", "kiln_no_wordpress"]);
    for c in &cfgs {
        println!("cargo:rustc-check-cfg=cfg({c})");
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        return;
    }
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut missing_any = false;
    for (tool, cfg) in TOOLS {
        match path_dirs
            .iter()
            .map(|d| d.join(tool))
            .find(|p| is_executable(p))
        {
            // A tool removed later is noticed.
            Some(found) => println!("cargo:rerun-if-changed={}", found.display()),
            None => {
                println!("cargo:rustc-cfg={cfg}");
                missing_any = true;
            }
        }
    }
    for (module, cfg) in [("django", "kiln_no_django"), ("wagtail", "kiln_no_wagtail")] {
        let importable = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !importable {
            println!("cargo:rustc-cfg={cfg}");
            missing_any = true;
        }
    }
    // WordPress from Debian's packages: the PHP tree, php-fpm (named with
    // its version, in /usr/sbin), php-cli and MariaDB's server.
    let in_path = |name: &dyn Fn(&str) -> bool| {
        path_dirs
            .iter()
            .chain([PathBuf::from("/usr/sbin")].iter())
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(name) && is_executable(&e.path()))
    };
    let wordpress = Path::new("/usr/share/wordpress/wp-load.php").exists()
        && in_path(&|n| n.starts_with("php-fpm"))
        && ["php", "mariadbd", "mariadb-install-db", "mariadb"]
            .iter()
            .all(|tool| in_path(&|n| n == *tool));
    if !wordpress {
        println!("cargo:rustc-cfg=kiln_no_wordpress");
        missing_any = true;
    }
    if missing_any {
        // A tool installed later is noticed (the directories change).
        for d in path_dirs.iter().filter(|d| d.is_dir()) {
            println!("cargo:rerun-if-changed={}", d.display());
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
