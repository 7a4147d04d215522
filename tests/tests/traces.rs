//! Traces across services (issue 13): one submission's trace spans intake, identity,
//! continuity, kogaku and relay, exported over OTLP to a real OTLP receiver (the collector's
//! gRPC TraceService from the OpenTelemetry protos), the trace context carried in NATS headers.
//! Its own test binary: telemetry is installed once per process.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kokuho_e2e::app::{CHIYODA, spawn_system};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
const KK: &str = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";

/// Every span the receiver was sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The span's `consumer` attribute (`<service>-<projection>`), if it is a runner's.
fn consumer(span: &Span) -> Option<String> {
    span.attributes.iter().find(|a| a.key == "consumer").and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_submission_is_one_trace_across_every_service() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tonic::transport::Server::builder().add_service(TraceServiceServer::new(receiver.clone()));
    tokio::spawn(kokuho_runtime::grpc::serve(router, listener, std::future::pending()));
    let settings = kokuho_runtime::telemetry::TelemetrySettings {
        otlp_endpoint: Some(format!("http://{addr}")),
        filter: Some("warn,kokuho_store=info,kokuho_intake=info".into()),
        ..Default::default()
    };
    let telemetry = kokuho_runtime::telemetry::init("kokuho", &settings).unwrap();

    let mut sys = spawn_system(20260401).await;
    let files = vec![("KS.csv".to_string(), KS.as_bytes().to_vec()), ("KK.csv".to_string(), KK.as_bytes().to_vec())];
    sys.client.submit(CHIYODA, files).await.unwrap();
    sys.settle().await;
    sys.stop().await;
    drop(telemetry); // flushes every span to the receiver
    tokio::time::sleep(Duration::from_millis(200)).await;

    let spans = receiver.0.lock().unwrap().clone();
    let submit = spans.iter().find(|s| s.name == "submit").expect("intake's submit span");
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == submit.trace_id).collect();
    let services: BTreeSet<String> =
        trace.iter().filter_map(|s| consumer(s)).filter_map(|c| c.split('-').next().map(String::from)).collect();
    let by_consumer: BTreeMap<String, usize> =
        trace.iter().filter_map(|s| consumer(s)).fold(BTreeMap::new(), |mut m, c| {
            *m.entry(c).or_default() += 1;
            m
        });
    for service in ["intake", "identity", "continuity", "kogaku", "relay"] {
        assert!(services.contains(service), "no span of {service} in the submission's trace: {by_consumer:?}");
    }
    // One trace, not one per hop: every runner span in it has its parent in it.
    let ids: BTreeSet<&[u8]> = trace.iter().map(|s| s.span_id.as_slice()).collect();
    for s in trace.iter().filter(|s| consumer(s).is_some()) {
        assert!(ids.contains(s.parent_span_id.as_slice()), "{:?} has its parent outside the trace", consumer(s));
    }
}
