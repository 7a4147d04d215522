//! Tracing and OpenTelemetry, initialised once per process.
//!
//! Logs go to stderr as text (or JSON with `KOKUHO_LOG_FORMAT=json`), filtered by `RUST_LOG`
//! (default `info`). When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over
//! OTLP/gRPC. PII rule (style.md §4.10): no span or event records a 個人番号, a name or a birth
//! date; services log partitions, receipts, sequences and counts only.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Keeps the exporter alive; dropping it flushes pending spans.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Where telemetry goes.
#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    /// `RUST_LOG`-style filter; `None` means `info`.
    pub filter: Option<String>,
    /// OTLP/gRPC endpoint; `None` means no export.
    pub otlp_endpoint: Option<String>,
    pub json: bool,
    /// Write logs to this file instead of stderr.
    pub log_file: Option<std::path::PathBuf>,
}

impl TelemetrySettings {
    /// From the process environment (`RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `KOKUHO_LOG_FORMAT`).
    pub fn from_env() -> Self {
        Self {
            filter: std::env::var("RUST_LOG").ok(),
            otlp_endpoint: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|s| !s.is_empty()),
            json: std::env::var("KOKUHO_LOG_FORMAT").is_ok_and(|v| v == "json"),
            log_file: None,
        }
    }
}

/// Installs the global subscriber for `service`. Call once, from `main`.
pub fn init(service: &'static str, settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(settings.filter.as_deref().unwrap_or("info,h2=warn,tower=warn,hyper=warn"))?;
    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let exporter =
                opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint.clone()).build()?;
            let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match &settings.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            let file = std::sync::Arc::new(file);
            Box::new(move || Box::new(FileWriter(file.clone())) as Box<dyn std::io::Write>)
        }
        None => Box::new(|| Box::new(std::io::stderr()) as Box<dyn std::io::Write>),
    };
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if settings.json {
        registry.with(fmt.json()).try_init()?;
    } else {
        registry.with(fmt).try_init()?;
    }
    Ok(Telemetry { provider })
}

struct FileWriter(std::sync::Arc<std::fs::File>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}
