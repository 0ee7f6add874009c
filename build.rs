//! Lays out the release binary's running code in one place: `layout/izzi.order` lists the
//! functions a gateway executes (written by `scripts/layout`), and lld links them first and
//! together. The kernel maps a binary's code 64 KB at a time around each page it faults in, so
//! the same few megabytes spread over the whole text section kept ~10 MB of it resident; together
//! they keep ~3.7 MB (docs/bench.md). Names the build no longer has are skipped, so a stale list
//! only lays out less.
//!
//! Only where the linker is known to be lld: x86_64 Linux with Rust 1.90 or later (which links
//! with its own lld by default) and no linker chosen by hand. Elsewhere the binary is linked as
//! before.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const ORDER: &str = "layout/izzi.order";
const LINKER: &str = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER";

fn main() {
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-env-changed={LINKER}");
    if let Some(order) = order_file() {
        let order = order.display();
        println!("cargo:rustc-link-arg-bin=izzi=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=izzi=-Wl,--no-warn-symbol-ordering");
    }
}

/// The order file, when this build links the release binary with lld.
fn order_file() -> Option<PathBuf> {
    let var = |name: &str| env::var(name).ok();
    if var("TARGET")? != "x86_64-unknown-linux-gnu" || var("PROFILE")? != "release" {
        return None;
    }
    if var(LINKER).is_some()
        || var("CARGO_ENCODED_RUSTFLAGS")
            .is_some_and(|flags| flags.contains("linker") || flags.contains("fuse-ld"))
    {
        return None;
    }
    let rustc = var("RUSTC").unwrap_or_else(|| "rustc".to_owned());
    let version = Command::new(rustc).arg("-vV").output().ok()?.stdout;
    let version = String::from_utf8(version).ok()?;
    let release = version.lines().find_map(|l| l.strip_prefix("release: "))?;
    let minor: u32 = release.split('.').nth(1)?.parse().ok()?;
    if minor < 90 {
        return None;
    }
    let path = PathBuf::from(var("CARGO_MANIFEST_DIR")?).join(ORDER);
    path.is_file().then_some(path)
}
