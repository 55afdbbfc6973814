//! The raw write floor for the benchmarks: writes N files of a given size as
//! `p/<i>/index.html` under OUT, each the way kiln does it (mkdir, temp file in
//! the same directory, write, chmod 0644, fdatasync, rename), and nothing else.
//! With a fourth argument `nosync`, the fdatasync is left out: the floor for a
//! writer that is not safe against power loss.
//!
//!     cargo run --release --example write_floor -- OUT N SIZE [nosync]
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("N");
    let size: usize = args[3].parse().expect("SIZE");
    let sync = args.get(4).map(String::as_str) != Some("nosync");
    let body = vec![b'x'; size];
    let start = std::time::Instant::now();
    for i in 0..n {
        let dir = out.join("p").join(i.to_string());
        std::fs::create_dir_all(&dir).expect("mkdir");
        let tmp = dir.join(format!(".tmp-{i}"));
        let mut f = std::fs::File::create(&tmp).expect("create");
        f.write_all(&body).expect("write");
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        if sync {
            f.sync_data().expect("sync");
        }
        std::fs::rename(&tmp, dir.join("index.html")).expect("rename");
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{n} files in {secs:.3}s ({:.0} files/s)", n as f64 / secs);
}
