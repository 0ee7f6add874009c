//! The `izzi` binary: starts tracing, runs the command, maps the result to an exit code.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "mimalloc")]
    allocator::return_freed_memory_soon();
    izzi::run()
}

#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)] // mimalloc's options are set through its C API only.
mod allocator {
    use libmimalloc_sys::{mi_option_set, mi_option_t};

    /// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (`include/mimalloc.h`);
    /// libmimalloc-sys names only the options of mimalloc 2. The test below pins it.
    const PURGE_DELAY: mi_option_t = 15;

    /// How long freed pages wait before they go back to the OS, in milliseconds.
    ///
    /// mimalloc's default is a second, and it purges only when it next does allocator work: a
    /// gateway that goes idle after a burst of streams would keep the burst's memory. At 0 every
    /// freed page went back at once, and under load the next request faulted it in again: 6 %
    /// more CPU per request at 15,000 requests/s than at 50 ms (docs/bench.md). At 50 ms the
    /// pages a steady load reuses stay, and 1,000 streams leave 22–25 MB 1.5 s after them
    /// (20 MB at 0; the idle gateway holds 15).
    const PURGE_DELAY_MS: std::ffi::c_long = 50;

    /// Sets the purge delay, unless `MIMALLOC_PURGE_DELAY` chose one (mimalloc reads it itself).
    pub(super) fn return_freed_memory_soon() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: setting an option is a plain store mimalloc allows at any time.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
    }

    #[cfg(test)]
    mod tests {
        use libmimalloc_sys::mi_option_get;

        use super::*;

        #[test]
        fn the_option_set_is_the_purge_delay_unless_the_environment_set_it() {
            // mimalloc 3's default purge delay is 1000 ms; `MIMALLOC_PURGE_DELAY` sets the same
            // option from the environment.
            let configured = std::env::var("MIMALLOC_PURGE_DELAY")
                .ok()
                .and_then(|v| v.parse().ok());
            // SAFETY: reading an option is a plain load.
            let get = || unsafe { mi_option_get(PURGE_DELAY) };
            assert_eq!(get(), configured.unwrap_or(1000));
            return_freed_memory_soon();
            assert_eq!(get(), configured.unwrap_or(PURGE_DELAY_MS));
        }
    }
}
