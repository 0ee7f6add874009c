//! The `izzi` binary: starts tracing, runs the command, maps the result to an exit code.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    izzi::run()
}
