//! The `izzi` binary: starts tracing, runs the command, maps the result to an exit code.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "mimalloc")]
    allocator::return_freed_memory_at_once();
    izzi::run()
}

#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)] // mimalloc's options are set through its C API only.
mod allocator {
    use libmimalloc_sys::{mi_option_set, mi_option_t};

    /// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (`include/mimalloc.h`);
    /// libmimalloc-sys names only the options of mimalloc 2. The test below pins it.
    const PURGE_DELAY: mi_option_t = 15;

    /// mimalloc gives freed pages back to the OS only a second after they were freed, and only
    /// when it next does allocator work: a gateway that goes idle after a burst of streams would
    /// keep the burst's memory. Purging at once costs no measurable CPU under load
    /// (docs/bench.md) and brings the RSS back near its idle size.
    pub(super) fn return_freed_memory_at_once() {
        // SAFETY: setting an option is a plain store mimalloc allows at any time.
        unsafe { mi_option_set(PURGE_DELAY, 0) }
    }

    #[cfg(test)]
    mod tests {
        use libmimalloc_sys::mi_option_get;

        use super::*;

        #[test]
        fn the_option_set_is_the_purge_delay() {
            // mimalloc 3's default purge delay is 1000 ms; `MIMALLOC_PURGE_DELAY` sets the same
            // option from the environment.
            let configured = std::env::var("MIMALLOC_PURGE_DELAY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            // SAFETY: reading an option is a plain load.
            let get = || unsafe { mi_option_get(PURGE_DELAY) };
            assert_eq!(get(), configured);
            return_freed_memory_at_once();
            assert_eq!(get(), 0);
        }
    }
}
