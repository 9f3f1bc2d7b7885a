use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = dicom_deid::cli::Cli::parse();
    match dicom_deid::run_cli(cli) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) => {
            eprintln!("dicom-deid: error: {e}");
            ExitCode::from(dicom_deid::ExitStatus::Fatal as u8)
        }
    }
}
