use clap::Parser;
use std::process::ExitCode;

// Parsing and rewriting a dataset allocates a few hundred small values per file:
// glibc malloc/free took about a quarter of a run's instructions, mimalloc far less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // dicom-rs builds an error at the normal end of every dataset; with
    // RUST_BACKTRACE set, each one captures a backtrace (7% of a run's instructions).
    // Library backtraces are off unless asked for; panic backtraces are unaffected.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet, so nothing reads the environment
        // concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    // mimalloc asks for transparent huge pages for its arenas, and the kernel then
    // zeroes a whole 2 MiB page on the first touch of any byte in it: `perf` put
    // that at 1-5% of a run over small files, against 0.3% for 4 KiB faults.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it only sets a flag on this
    // process's memory map.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    dicom_deid::run::execute::install_panic_hook();
    let cli = dicom_deid::cli::Cli::parse();
    match dicom_deid::run_cli(cli) {
        Ok(status) => ExitCode::from(status as u8),
        // `dicom-deid profile show basic | head`: a closed stdout ends the output,
        // as in any Unix tool, without an error.
        Err(dicom_deid::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            dicom_deid::say!("dicom-deid: error: {e}");
            ExitCode::from(dicom_deid::ExitStatus::Fatal as u8)
        }
    }
}
