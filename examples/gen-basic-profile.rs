//! Regenerates profiles/basic.yaml from profiles/standard/ps3.15-e1-1.csv.
//! Usage: cargo run --example gen-basic-profile [-- TABLE.csv OUT.yaml]

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let table = args
        .next()
        .unwrap_or_else(|| "profiles/standard/ps3.15-e1-1.csv".into());
    let out = args.next().unwrap_or_else(|| "profiles/basic.yaml".into());
    let result = std::fs::read_to_string(&table)
        .map_err(|e| format!("{table}: {e}"))
        .and_then(|csv| dicom_deid::profile::generate::basic_yaml(&csv))
        .and_then(|yaml| std::fs::write(&out, yaml).map_err(|e| format!("{out}: {e}")));
    match result {
        Ok(()) => {
            eprintln!("wrote {out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
