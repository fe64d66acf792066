//! Per-user mail counts from Exim main logs (owned by the report work).

/// Arguments of `exim-policy report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

/// Runs `exim-policy report`.
pub fn run(_args: &ReportArgs) -> crate::error::Result<i32> {
    Err(crate::Error::Usage("report: not implemented yet".into()))
}
