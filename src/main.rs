//! The `izzi` binary: starts tracing, runs the command, maps the result to an exit code.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "mimalloc")]
    allocator::return_freed_memory_soon();
    izzi::run()
}

#[cfg(feature = "mimalloc")]
mod allocator;
