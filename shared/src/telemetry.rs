//! Tracing set-up: human-readable lines in dev, JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; a second call is a no-op.
pub fn init(config: &LogConfig) {
    // The filter was validated with the configuration; fall back to `info` anyway.
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_target(true)
        // A closed stdout (the log reader gone, e.g. on Ctrl-C) must not turn every
        // later log line into a panic on the stderr report of the failed write.
        .log_internal_errors(false);
    let result = match config.format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Already installed (tests call this more than once): keep the first.
    drop(result);
}
